"""Find-and-replace on graphs: ``replace_pattern`` swaps every occurrence of a pattern for a replacement.

Same interface and results as torch.fx's subgraph rewriter (same matches, same rewritten code, same
node names), but each replacement costs time in proportion to the pattern, not to the graph: "which
node comes first" is answered with the order labels the graph keeps on its nodes, not by walking it.
"""

from __future__ import annotations

import copy
import heapq
import itertools
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, NamedTuple, Optional, Tuple, Union

import torch

from fxkit import _foreign, _paths, _rewriter_fast
from fxkit._fast_path import FastPathSwitch
from fxkit._gc import collector_paused
from fxkit.graph import Graph, _order_of
from fxkit.graph_module import GraphModule
from fxkit.node import Node
from fxkit.passes.utils.matcher_utils import InternalMatch, SubgraphMatcher

__all__ = ["Match", "replace_pattern", "replace_pattern_with_filters", "ReplacedPatterns"]

_FAST_PATH = FastPathSwitch("replace_pattern")

#: ``with use_fast_path(False): ...`` copies replacements with ``Graph.graph_copy`` in this thread
#: (see ``_rewriter_fast`` for the precomputed copy recipes used otherwise).
use_fast_path = _FAST_PATH.use

PatternLike = Union[Callable[..., Any], Graph, GraphModule]
MatchFilter = Callable[[InternalMatch, Graph, Graph], bool]
ReplacementCallback = Callable[[InternalMatch, Graph, Graph], Graph]


class Match(NamedTuple):
    """One replaced occurrence: the pattern's first anchor and the pattern node -> graph node map."""

    anchor: Node
    nodes_map: Dict[Node, Node]


@dataclass
class ReplacedPatterns:
    """One replaced occurrence, with the nodes the replacement added to the graph."""

    anchor: Node
    nodes_map: Dict[Node, Node]
    replacements: List[Node]


def _graph_of(pattern: PatternLike) -> Graph:
    if isinstance(pattern, GraphModule):
        return pattern.graph
    if isinstance(pattern, Graph):
        return pattern
    from fxkit.tracer import symbolic_trace

    return symbolic_trace(pattern).graph


def _get_attribute(module: torch.nn.Module, qualified_name: str) -> Optional[Any]:
    return _paths.lookup(module, qualified_name)


def _set_attribute(module: torch.nn.Module, qualified_name: str, value: Any) -> None:
    """Set ``a.b.c`` on ``module``, creating empty intermediate modules as needed."""
    owner, name = _paths.make_parents(module, qualified_name, torch.nn.Module, _is_there, _add_module)
    setattr(owner, name, value)


def _is_there(value: Any) -> bool:
    return value is not _paths.MISSING


def _add_module(owner: Any, name: str, module: torch.nn.Module) -> None:
    owner.add_module(name, module)


def _copy_missing_attributes(gm: GraphModule, source: torch.nn.Module, source_name: str) -> None:
    """Give ``gm`` a copy of every attribute its graph reads that it lacks and ``source`` has."""
    graph = gm.graph
    # Looked up in the graph's op index rather than by walking every node; kept in program order.
    readers = graph.find_nodes(op="call_module", sort=False) + graph.find_nodes(op="get_attr", sort=False)
    for node in sorted(readers, key=_order_of):
        if _get_attribute(gm, node.target) is not None:
            continue
        source_value = _get_attribute(source, node.target)
        if source_value is None:
            raise RuntimeError(
                f'Attempted to create a "{node.op}" node during subgraph rewriting with target '
                f"{node.target}, but the referenced attribute does not exist in the {source_name}; "
                f"add '{node.target}' to the {source_name}"
            )
        copied = copy.deepcopy(source_value)
        if isinstance(copied, torch.nn.Module):
            gm.add_submodule(node.target, copied)
        else:
            _set_attribute(gm, node.target, copied)


def replace_pattern(gm: GraphModule, pattern: PatternLike, replacement: PatternLike) -> List[Match]:
    """Replace every occurrence of ``pattern`` in ``gm``'s graph with ``replacement``; recompile ``gm``.

    ``pattern`` and ``replacement`` are functions or modules (traced with ``symbolic_trace``), Graphs
    or GraphModules, and take the same number of inputs. An occurrence must compute exactly what the
    pattern computes, with arguments in the same order (``a + b`` does not match ``b + a``), and none
    of its intermediate values may be used outside it. Occurrences never overlap: the earlier one in
    program order wins. Returns one ``Match`` per replaced occurrence, in program order.

    Example::

        def pattern(x, w):
            return torch.relu(torch.add(x, w))

        def replacement(x, w):
            return torch.clamp(x + w, min=0.0)

        matches = replace_pattern(traced_module, pattern, replacement)
    """
    with collector_paused():
        return [
            Match(anchor, nodes_map) for anchor, nodes_map, _ in _replace_pattern(gm, pattern, replacement)
        ]


def replace_pattern_with_filters(
    gm: GraphModule,
    pattern: PatternLike,
    replacement: Optional[PatternLike] = None,
    match_filters: Optional[List[MatchFilter]] = None,
    ignore_literals: bool = False,
    replacement_callback: Optional[ReplacementCallback] = None,
    node_name_match: str = "",
) -> List[ReplacedPatterns]:
    """``replace_pattern`` with more control.

    Args:
        match_filters: functions ``(match, original_graph, pattern_graph) -> bool``; an occurrence is
            replaced only if every filter returns True.
        ignore_literals: literal arguments of the pattern (``x + 1``) match any value.
        replacement_callback: ``(match, original_graph, pattern_graph) -> Graph`` builds the
            replacement for each occurrence; it takes precedence over ``replacement``.
        node_name_match: a graph node whose name contains this text may stand for a pattern anchor.

    Returns one ``ReplacedPatterns`` per replaced occurrence, including the nodes that were added.
    """
    with collector_paused():
        replaced = _replace_pattern(
            gm, pattern, replacement, match_filters, ignore_literals, replacement_callback, node_name_match
        )
        return [ReplacedPatterns(anchor, nodes_map, added) for anchor, nodes_map, added in replaced]


# What one replacement did: the match's first anchor, its node map, and the nodes it added.
_Replaced = Tuple[Node, Dict[Node, Any], List[Node]]


def _replace_pattern(
    gm: GraphModule,
    pattern: PatternLike,
    replacement: Optional[PatternLike] = None,
    match_filters: Optional[List[MatchFilter]] = None,
    ignore_literals: bool = False,
    replacement_callback: Optional[ReplacementCallback] = None,
    node_name_match: str = "",
) -> List[_Replaced]:
    """The rewrite itself; callers pause the garbage collector around it (nodes are made in bulk)."""
    # gm is edited in place, so a torch.fx one is refused; patterns are only read, so they convert.
    _foreign.reject(gm, "replace_pattern")
    pattern, replacement = _foreign.convert(pattern), _foreign.convert(replacement)
    original_graph = gm.graph
    pattern_graph = _graph_of(pattern)
    traced_replacement: Optional[GraphModule] = None
    replacement_graph: Optional[Graph] = None
    if isinstance(replacement, (GraphModule, Graph)):
        replacement_graph = _graph_of(replacement)
    elif replacement is not None:
        from fxkit.tracer import symbolic_trace

        traced_replacement = symbolic_trace(replacement)
        replacement_graph = traced_replacement.graph
    if replacement_graph is None and replacement_callback is None:
        raise AssertionError(
            "Must provide either a replacement GraphModule or a replacement callback: "
            "replace_pattern_with_filters got replacement=None and no replacement_callback"
        )

    # The matcher's defaults are what a rewrite wants: anchored nowhere, overlapping matches dropped.
    matcher = SubgraphMatcher(pattern_graph, ignore_literals=ignore_literals)
    # Erased last-to-first, so that every node is unused when it goes.
    pattern_compute_nodes = [
        n for n in reversed(pattern_graph.nodes) if n.op not in ("placeholder", "output")
    ]
    plan = _ReplacementPlan(replacement_graph) if replacement_graph is not None else None
    # An earlier replacement may have swapped out a node that a later match takes as an input.
    replaced_by: Dict[Node, Node] = {}
    # Copies placed before one of their inputs, checked again once every match is replaced.
    out_of_order: List[List[Node]] = []
    results: List[_Replaced] = []
    matches = matcher.match(original_graph, node_name_match=node_name_match)
    if match_filters:
        matches = [
            m for m in matches if all(keep(m, original_graph, pattern_graph) for keep in match_filters)
        ]
    for match in matches:
        if replacement_callback is not None:
            replacement_graph = replacement_callback(match, original_graph, pattern_graph)
        assert replacement_graph is not None
        if plan is None or plan.graph is not replacement_graph:
            plan = _ReplacementPlan(replacement_graph)
        results.append(
            _replace_one(match, original_graph, pattern_compute_nodes, plan, replaced_by, out_of_order)
        )
    if any(_defined_after_a_use(node) for copied_nodes in out_of_order for node in copied_nodes):
        _restore_definition_order(original_graph)

    gm.recompile()
    if isinstance(replacement, torch.nn.Module):
        if isinstance(replacement, GraphModule):
            replacement.graph.lint()
        # Copied before pruning (torch.fx prunes first): the same end state, and pruning can then
        # look up every module the graph calls.
        _copy_missing_attributes(gm, replacement, "replacement GraphModule")
        gm.delete_all_unused_submodules()
    elif traced_replacement is not None and results:
        # torch.fx leaves these out (its result then fails lint); copying them keeps gm runnable.
        _copy_missing_attributes(gm, traced_replacement, "traced replacement")
    return results


class _ReplacementPlan:
    """What copying a replacement graph needs, worked out once instead of once per match."""

    def __init__(self, replacement_graph: Graph) -> None:
        nodes = list(replacement_graph.nodes)
        self.graph = replacement_graph
        self.placeholders = [n for n in nodes if n.op == "placeholder"]
        self.body = [n for n in nodes if n.op not in ("placeholder", "output")]
        self.fast = _rewriter_fast.CopyRecipes(nodes) if _FAST_PATH.enabled() else None

    def copy_before(
        self, graph: Graph, successor: Node, value_map: Dict[Node, Any]
    ) -> Tuple[Any, List[Node]]:
        """Copy the replacement into ``graph`` right before ``successor``, its placeholders standing
        for what ``value_map`` maps them to; return what it outputs (a tuple) and the new nodes."""
        if self.fast is not None:
            return self.fast.copy_before(graph, successor, value_map)
        with graph.inserting_before(successor):
            outputs = graph.graph_copy(self.graph, value_map)
        copied_nodes = [value_map[n] for n in self.body]
        return ((outputs,) if isinstance(outputs, Node) else outputs), copied_nodes


def _replace_one(
    match: InternalMatch,
    original_graph: Graph,
    pattern_compute_nodes: List[Node],
    plan: _ReplacementPlan,
    replaced_by: Dict[Node, Node],
    out_of_order: List[List[Node]],
) -> _Replaced:
    replacement_placeholders = plan.placeholders
    graph_inputs = match.placeholder_nodes
    if len(graph_inputs) != len(replacement_placeholders):
        raise AssertionError(
            f"Placeholder count mismatch: {len(graph_inputs)} vs {len(replacement_placeholders)}: "
            "the pattern and the replacement must take the same inputs"
        )

    value_map: Dict[Node, Any] = {}
    latest_input: Optional[Node] = None
    for replacement_input, graph_value in zip(replacement_placeholders, graph_inputs):
        if isinstance(graph_value, Node):
            if replaced_by:
                replacement = replaced_by.get(graph_value)
                if replacement is not None:
                    _point_match_at(match, graph_value, replacement)
                    graph_value = replacement
            if latest_input is None or graph_value._order > latest_input._order:
                latest_input = graph_value
        value_map[replacement_input] = graph_value

    returning_nodes = match.returning_nodes
    insert_point = _insertion_point(returning_nodes)
    copied_outputs, copied_nodes = plan.copy_before(original_graph, insert_point, value_map)
    if copied_nodes and latest_input is not None and latest_input._order > copied_nodes[0]._order:
        out_of_order.append(copied_nodes)

    if len(returning_nodes) != len(copied_outputs):
        raise AssertionError(
            f"the pattern returns {len(returning_nodes)} values but the replacement returns "
            f"{len(copied_outputs)}; make them return the same number of values"
        )
    for old, new in zip(returning_nodes, copied_outputs):
        old.replace_all_uses_with(new)
        replaced_by[old] = new
    nodes_map = match.nodes_map
    erase_node = original_graph.erase_node
    for pattern_node in pattern_compute_nodes:
        erase_node(nodes_map[pattern_node])
    return match.anchors[0], nodes_map, copied_nodes


def _point_match_at(match: InternalMatch, old: Node, new: Node) -> None:
    """Make ``match`` refer to ``new`` where it referred to the input ``old``, which was replaced."""
    for index, value in enumerate(match.placeholder_nodes):
        if value is old:
            match.placeholder_nodes[index] = new
            break
    for pattern_node, value in match.nodes_map.items():
        if value is old:
            match.nodes_map[pattern_node] = new
            break


def _insertion_point(returning_nodes: List[Node]) -> Node:
    """Replacement nodes go right before the first user of the match's results (or, if they have no
    users, right after the last of them)."""
    first_user: Optional[Node] = None
    last_returned: Optional[Node] = None
    for returned in returning_nodes:
        if not isinstance(returned, Node):
            continue
        if last_returned is None or returned._order > last_returned._order:
            last_returned = returned
        for user in returned.users:
            if first_user is None or user._order < first_user._order:
                first_user = user
    if first_user is not None:
        return first_user
    if last_returned is None or last_returned.op == "output" or last_returned.next.op == "root":
        raise AssertionError(
            "The insert point can't be None: the values this match returns have no users and nothing "
            "follows them; the pattern must compute something (it cannot just return an input)"
        )
    return last_returned.next


def _defined_after_a_use(node: Node) -> bool:
    return any(used._order > node._order for used in node.all_input_nodes)


def _restore_definition_order(graph: Graph) -> None:
    """Reorder ``graph`` so that every value is defined before it is used, keeping the rest in place.

    The replacement goes before the first user of what the match returns; when a replacement input
    is defined only after that point (possible when a pattern's outputs do not depend on all its
    inputs), torch.fx leaves the copy before that input, and the graph is out of order unless a
    later replacement swaps the input for an earlier node. So this runs only once every match is
    replaced, and only if some copy is still out of order; wherever torch.fx's result is valid,
    nothing moves. The new order is a topological order that, among the nodes ready to go next,
    always takes the earliest one in the current order.
    """
    nodes = list(graph.nodes)
    missing_inputs = {node: len(node.all_input_nodes) for node in nodes}
    tie_breaker = itertools.count()  # order labels are unique: only keeps nodes from being compared
    ready = [(node._order, next(tie_breaker), node) for node in nodes if not missing_inputs[node]]
    heapq.heapify(ready)
    ordered: List[Node] = []
    while ready:
        node = heapq.heappop(ready)[2]
        ordered.append(node)
        for user in node.users:
            missing_inputs[user] -= 1
            if not missing_inputs[user]:
                heapq.heappush(ready, (user._order, next(tie_breaker), user))
    if len(ordered) != len(nodes):
        stuck = [node.name for node in nodes if missing_inputs[node]]
        raise RuntimeError(
            f"replace_pattern: after the replacements, nodes {stuck[:6]} depend on each other in a cycle, "
            "so no program order exists: a replacement output uses an input that is computed from "
            "another output of the same match. Make each replacement output depend only on the inputs "
            "the corresponding pattern output depends on"
        )
    if ordered[0] is not nodes[0]:
        nodes[0].prepend(ordered[0])
    for previous, node in zip(ordered, ordered[1:]):
        if node.prev is not previous:
            previous.append(node)
