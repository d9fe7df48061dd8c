"""Typed, validated, frozen specs: the edge between raw data and the memory model."""
