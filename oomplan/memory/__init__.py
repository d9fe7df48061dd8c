"""The memory model: pure functions, one component each, bytes per GPU."""
