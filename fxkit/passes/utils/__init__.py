"""Helpers shared by the graph passes; ``matcher_utils`` finds pattern subgraphs in a graph."""

from .common import HolderModule, compare_graphs, lift_subgraph_as_module

__all__ = ["HolderModule", "compare_graphs", "lift_subgraph_as_module"]
