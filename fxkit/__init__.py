"""fxkit: capture PyTorch programs as graphs, transform them, and turn them back into modules.

The public API mirrors torch.fx, so ``import fxkit as fx`` runs code written for torch.fx.
"""
from .graph import CodeGen, Graph, PythonCode
from .graph_module import GraphModule
from .node import Node, has_side_effect, map_aggregate, map_arg
from .tracer import PH, Proxy, ProxyableClassMeta, Tracer, symbolic_trace, wrap
from .capture import capture
from .interpreter import Interpreter, Transformer
from .subgraph_rewriter import replace_pattern
from . import experimental, operator_schemas, passes  # noqa: E402  (torch.fx exposes these as attributes too)

__all__ = [
    "PH",
    "CodeGen",
    "Graph",
    "GraphModule",
    "Interpreter",
    "Node",
    "Proxy",
    "ProxyableClassMeta",
    "PythonCode",
    "Tracer",
    "Transformer",
    "capture",
    "has_side_effect",
    "map_aggregate",
    "map_arg",
    "replace_pattern",
    "symbolic_trace",
    "wrap",
]
