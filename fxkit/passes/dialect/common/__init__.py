"""Passes that work on any ATen-level graph."""
