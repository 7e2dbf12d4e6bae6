"""Group nodes by the source module or function they were traced from (torch.fx's
``passes.utils.source_matcher_utils``), read from ``node.meta['source_fn_stack']``.

These functions only read the graph, so a torch.fx Graph (one made by ``torch.export`` or Dynamo,
say) is read in place: its partitions hold its own nodes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional

from fxkit.graph import Graph
from fxkit.node import Node

__all__ = ["get_source_partitions", "check_subgraphs_connected", "SourcePartition"]


@dataclass
class SourcePartition:
    """The nodes of one call of ``source`` and the values crossing its border.

    ``nodes``: the partition, in graph order; ``source``: the module class or function they came
    from; ``input_nodes``: nodes outside it that its nodes read; ``output_nodes``: its nodes read
    outside it; ``params``: its get_attr nodes.
    """

    # fmt: off
    nodes: List[Node]; source: Any  # noqa: E702
    input_nodes: List[Node] = field(default_factory=list); output_nodes: List[Node] = field(default_factory=list)  # noqa: E501,E702
    params: List[Node] = field(default_factory=list)
    # fmt: on


def _partition(nodes: List[Node], source: Any) -> SourcePartition:
    members = set(nodes)
    inputs: Dict[Node, None] = {}
    outputs: Dict[Node, None] = {}
    for node in nodes:
        for used in node.all_input_nodes:
            if used not in members:
                inputs[used] = None
        if any(user not in members for user in node.users):
            outputs[node] = None
    params = [node for node in nodes if node.op == "get_attr"]
    return SourcePartition(nodes, source, list(inputs), list(outputs), params)


def get_source_partitions(
    graph: Graph, wanted_sources: List[Any], filter_fn: Optional[Callable[[Node], bool]] = None
) -> Dict[Any, List[SourcePartition]]:
    """``{source: [one SourcePartition per call of it]}`` for each of ``wanted_sources`` that
    some node came from, judged by the innermost entry ``(call name, source)`` of its
    ``meta['source_fn_stack']``. With ``filter_fn``, partitions holding a node it rejects are
    dropped (the source keeps its, maybe empty, list). Inputs are listed in order of first use
    and include nodes inside list arguments (torch.fx looks at top-level arguments only).
    """
    by_source: Dict[Any, Dict[str, List[Node]]] = {}
    for node in graph.nodes:
        stack = node.meta.get("source_fn_stack", None)
        if not stack:
            continue
        call_name, source = stack[-1]
        if source not in wanted_sources:
            continue
        by_source.setdefault(source, {}).setdefault(call_name, []).append(node)
    result: Dict[Any, List[SourcePartition]] = {}
    for source, calls in by_source.items():
        partitions = [_partition(nodes, source) for nodes in calls.values()]
        if filter_fn is not None:
            partitions = [p for p in partitions if all(filter_fn(node) for node in p.nodes)]
        result[source] = partitions
    return result


def check_subgraphs_connected(subgraph1: SourcePartition, subgraph2: SourcePartition) -> bool:
    """Whether an output of ``subgraph1`` is read by a node of ``subgraph2``."""
    members = set(subgraph2.nodes)
    return any(user in members for node in subgraph1.output_nodes for user in node.users)
