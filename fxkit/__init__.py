"""fxkit: capture PyTorch programs as graphs, transform them, and turn them back into modules.

The public API mirrors torch.fx, so ``import fxkit as fx`` runs code written for torch.fx.
"""

from . import annotate, experimental, operator_schemas, passes, traceback  # noqa: F401  (torch.fx exposes these as attributes too)
from .capture_tracer import capture
from .graph import CodeGen, Graph, PythonCode
from .graph_module import GraphModule
from .interpreter import Interpreter, Transformer
from .node import Node, has_side_effect, map_aggregate, map_arg
from .serialize import load, save
from .subgraph_rewriter import replace_pattern
from .tracer import PH, Proxy, ProxyableClassMeta, Tracer, symbolic_trace, wrap

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
    "load",
    "map_aggregate",
    "map_arg",
    "replace_pattern",
    "save",
    "symbolic_trace",
    "wrap",
]
