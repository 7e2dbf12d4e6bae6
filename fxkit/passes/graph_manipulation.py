"""Sizes of node outputs and target replacement (torch.fx's ``passes.graph_manipulation``)."""

from __future__ import annotations

from typing import Any, Callable, Dict, List, NamedTuple, Optional, Union

import torch

from fxkit import _foreign
from fxkit.graph import Graph
from fxkit.graph_module import GraphModule
from fxkit.node import Node, map_arg
from fxkit.passes.shape_prop import ShapeProp, TensorMetadata

__all__ = [
    "get_size_of_all_nodes",
    "get_size_of_node",
    "get_tensor_meta",
    "replace_target_nodes_with",
    "size_bytes",
]


def replace_target_nodes_with(
    fx_module: GraphModule,
    old_op: str,
    old_target: Union[Callable[..., Any], str],
    new_op: str,
    new_target: Union[Callable[..., Any], str],
) -> None:
    """Turn every ``old_op`` node calling ``old_target`` into a ``new_op`` node calling
    ``new_target`` with the same arguments and name (its metadata is not kept)."""
    _foreign.reject(fx_module, "replace_target_nodes_with")  # edits fx_module in place
    new_graph = Graph()
    copies: Dict[Node, Node] = {}
    for node in fx_module.graph.nodes:
        if node.op == old_op and node.target == old_target:
            args = map_arg(node.args, copies.__getitem__)
            kwargs = map_arg(node.kwargs, copies.__getitem__)
            copies[node] = new_graph.create_node(new_op, new_target, args, kwargs, node.name)
        else:
            copies[node] = new_graph.node_copy(node, copies.__getitem__)
    fx_module.graph = new_graph


class size_bytes(NamedTuple):
    output_size: int
    total_size: int


def get_size_of_all_nodes(fx_module: GraphModule, args: Optional[List[torch.Tensor]] = None) -> None:
    """Set ``node.size_bytes`` on every node before the output, running ShapeProp on ``args``
    first when they are given (otherwise the nodes must already carry ``tensor_meta``)."""
    _foreign.reject(fx_module, "get_size_of_all_nodes")  # sets node.size_bytes
    if args is not None:
        ShapeProp(fx_module).propagate(*args)
    for node in fx_module.graph.nodes:
        if node.op == "output":
            break
        node.size_bytes = get_size_of_node(fx_module, node)  # type: ignore[attr-defined]


def get_tensor_meta(node: Node) -> Any:
    """``node.meta['tensor_meta']``; raises when shape propagation has not run."""
    _foreign.reject(node, "get_tensor_meta")
    tensor_meta = node.meta.get("tensor_meta")
    if not tensor_meta:
        raise RuntimeError(
            f"Node {node} has no tensor metadata associated with it! Check that shape propagation has run."
        )
    return tensor_meta


def get_size_of_node(fx_module: GraphModule, node: Node) -> size_bytes:
    """Bytes of the node's output, and of its output plus the parameters of the module it calls
    (counted at the output's element size)."""
    _foreign.reject(node, "get_size_of_node")
    elements = 0
    if node.op == "call_module":
        submodule = dict(fx_module.named_modules())[node.target]
        elements += sum(parameter.numel() for parameter in submodule.parameters())
    tensor_meta: TensorMetadata = get_tensor_meta(node)
    output_elements = tensor_meta.shape.numel()
    elements += output_elements
    if tensor_meta.is_quantized:
        element_size = torch._empty_affine_quantized([], dtype=tensor_meta.dtype).element_size()
    else:
        element_size = torch.empty((), dtype=tensor_meta.dtype).element_size()
    return size_bytes(element_size * output_elements, element_size * elements)
