"""The planner: enumerate plans, prune the impossible, evaluate, rank by an objective."""
