"""Graph passes with torch.fx's module paths (``fxkit.passes.shape_prop``, ``fxkit.passes.split_module``,
``fxkit.passes.graph_drawer`` ...)."""

from . import (
    cse,
    dce,
    graph_drawer,
    operator_support,
    profiler,
    shape_prop,
    split_module,
    split_utils,
    tools_common,
)

__all__ = [
    "cse",
    "dce",
    "graph_drawer",
    "operator_support",
    "profiler",
    "shape_prop",
    "split_module",
    "split_utils",
    "tools_common",
]
