"""Merge matrix multiplications that share their right-hand operand: ``A @ C`` and ``B @ C``
become one ``cat([A, B]) @ C`` whose result is split back into the two products."""

from __future__ import annotations

import itertools
import operator
from typing import Dict, List, Tuple, Union

import torch

from fxkit import _foreign
from fxkit.graph_module import GraphModule
from fxkit.node import Node
from fxkit.passes.tools_common import legalize_graph
from fxkit.tracer import symbolic_trace

__all__ = ["split_result_tensors", "may_depend_on", "are_nodes_independent", "merge_matmul"]


def split_result_tensors(result: torch.Tensor, inputs: List[torch.Tensor]) -> Tuple[torch.Tensor, ...]:
    """Cut the product of a merged matmul back into one product per input (rows in the order
    and numbers the inputs had)."""
    return torch.split(result, [piece.shape[0] for piece in inputs])


def may_depend_on(a: Node, b: Node, search_depth: int = 6) -> bool:
    """Whether ``a`` may read ``b``'s value, directly or through other nodes. The search stops
    ``search_depth`` nodes up from ``a`` and then answers True (it cannot rule it out)."""
    if a is b:
        return True
    if not a.all_input_nodes:
        return False
    if search_depth == 0:
        return True
    return any(may_depend_on(node, b, search_depth - 1) for node in a.all_input_nodes)


def are_nodes_independent(nodes: List[Node]) -> bool:
    """True when no node of ``nodes`` may depend on another (see ``may_depend_on``)."""
    _foreign.reject_all(nodes, "are_nodes_independent")
    return not any(may_depend_on(x, y) or may_depend_on(y, x) for x, y in itertools.combinations(nodes, 2))


def merge_matmul(in_mod: torch.nn.Module) -> GraphModule:
    """Trace ``in_mod`` and merge the ``torch.matmul`` calls that share a right-hand operand
    (the same node, or the same attribute) and whose left-hand operands are independent of each
    other: their left operands are concatenated along dim 0, multiplied once and the product is
    split with ``split_result_tensors``. The left operands must agree in every dimension but
    the first. After a merge the graph is sorted topologically (``legalize_graph``)."""
    in_mod = _foreign.convert(in_mod)  # only read: the result is a new module
    gm = symbolic_trace(in_mod)
    graph = gm.graph
    # Right-hand operands: attributes are keyed by their name, so two reads of one
    # parameter count as the same operand.
    by_rhs: Dict[Union[Node, str], List[Node]] = {}
    for node in graph.nodes:
        if (
            node.op != "call_function"
            or node.target is not torch.matmul
            or node.kwargs
            or len(node.args) != 2
        ):
            continue
        lhs, rhs = node.args
        if not isinstance(lhs, Node) or not isinstance(rhs, Node):
            continue
        key = rhs.target if rhs.op == "get_attr" else rhs
        by_rhs.setdefault(key, []).append(node)  # type: ignore[arg-type]

    merged_any = False
    for rhs_key, matmuls in by_rhs.items():
        if len(matmuls) < 2:
            continue
        lhs = [matmul.args[0] for matmul in matmuls]
        if not are_nodes_independent(lhs):
            continue
        rhs = graph.get_attr(rhs_key) if isinstance(rhs_key, str) else rhs_key
        merged_lhs = graph.call_function(torch.cat, (lhs,), {})
        merged = graph.call_function(torch.matmul, (merged_lhs, rhs), {})
        pieces = graph.call_function(split_result_tensors, (merged, lhs), {})
        for index, matmul in enumerate(matmuls):
            matmul.replace_all_uses_with(graph.call_function(operator.getitem, (pieces, index), {}))
            graph.erase_node(matmul)
        merged_any = True

    if merged_any:  # the new nodes were appended at the end: sort them into place
        legalize_graph(gm)
    gm.recompile()
    return gm
