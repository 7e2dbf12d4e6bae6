"""A SubgraphMatcher whose pattern names some of its nodes (torch.fx's
``passes.utils.matcher_with_name_node_map_utils``).

The pattern module returns its outputs followed by a dict ``{name: node}``; the matcher strips
the dict from the pattern (editing and recompiling the pattern module) and gives every match a
``name_node_map`` from those names to the matched nodes of the searched graph.
"""

from __future__ import annotations

from typing import Dict, List, Tuple

import torch.utils._pytree as pytree

from fxkit import _foreign
from fxkit.graph import Graph
from fxkit.graph_module import GraphModule
from fxkit.node import Node
from fxkit.passes.utils.matcher_utils import InternalMatch, SubgraphMatcher

__all__ = ["SubgraphMatcherWithNameNodeMap"]


def _split_to_graph_and_name_node_map(gm: GraphModule) -> Tuple[GraphModule, Dict[str, Node]]:
    """Drop the trailing ``{name: node}`` dict from what ``gm`` returns; return ``gm`` (edited)
    and that dict. A module without a pytree output spec is returned unchanged with no names."""
    out_spec = getattr(gm, "_out_spec", None)
    if out_spec is None:
        return gm, {}
    output_node = gm.graph.output_node()
    returned = output_node.args[0]
    flat = list(returned) if isinstance(returned, (list, tuple)) else [returned]
    structured = pytree.tree_unflatten(flat, out_spec)
    assert isinstance(structured, tuple), "Expecting the pattern graph to return a tuple"
    *outputs, name_node_map = structured
    assert isinstance(name_node_map, dict), "Expecting the last output of the pattern graph to be a dict"
    flat_outputs, new_spec = pytree.tree_flatten(list(outputs))
    output_node.args = (flat_outputs,)
    codegen = gm.graph._codegen
    info = getattr(codegen, "pytree_info", None)
    if info is not None:
        codegen.pytree_info = info._replace(out_spec=new_spec)
    gm._out_spec = new_spec
    gm.recompile()
    return gm, name_node_map


class SubgraphMatcherWithNameNodeMap(SubgraphMatcher):
    """``SubgraphMatcher`` over a pattern module returning ``(outputs..., {name: node})``; each
    match's ``name_node_map`` maps those names to the matched nodes."""

    def __init__(
        self, pattern_gm: GraphModule, match_output: bool = False, match_placeholder: bool = False,
        remove_overlapping_matches: bool = True, ignore_literals: bool = False,
    ) -> None:  # fmt: skip
        pattern_gm = _foreign.convert(pattern_gm)  # the twin's pattern is edited, as SubgraphMatcher converts
        pattern_gm, self.name_node_map = _split_to_graph_and_name_node_map(pattern_gm)
        super().__init__(
            pattern_gm.graph, match_output, match_placeholder, remove_overlapping_matches, ignore_literals
        )

    def match(self, graph: Graph, node_name_match: str = "") -> List[InternalMatch]:
        """The matches of ``SubgraphMatcher.match``, each with its ``name_node_map`` filled in."""
        matches = super().match(graph, node_name_match)
        for match in matches:
            match.name_node_map = {name: match.nodes_map[node] for name, node in self.name_node_map.items()}
        return matches
