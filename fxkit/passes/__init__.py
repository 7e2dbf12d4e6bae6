"""Graph passes with torch.fx's module paths (``fxkit.passes.shape_prop``, ``fxkit.passes.split_module``,
``fxkit.passes.graph_drawer`` ...)."""

from . import (
    annotate_getitem_nodes,
    cse,
    dce,
    fake_tensor_prop,
    graph_drawer,
    graph_manipulation,
    operator_support,
    param_fetch,
    pass_manager,
    profiler,
    shape_prop,
    split_module,
    split_utils,
    splitter_base,
    tools_common,
)

__all__ = [
    "annotate_getitem_nodes",
    "cse",
    "dce",
    "fake_tensor_prop",
    "graph_drawer",
    "graph_manipulation",
    "operator_support",
    "param_fetch",
    "pass_manager",
    "profiler",
    "shape_prop",
    "split_module",
    "split_utils",
    "splitter_base",
    "tools_common",
]
