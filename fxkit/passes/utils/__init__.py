"""Helpers shared by the graph passes; ``matcher_utils`` finds pattern subgraphs in a graph."""
