"""Find-and-replace on graphs: ``replace_pattern`` swaps every occurrence of a pattern for a replacement.

Same interface and results as torch.fx's subgraph rewriter (same matches, same rewritten code, same
node names), but each replacement costs time in proportion to the pattern, not to the graph: the
insertion point is found with order keys kept alongside the node list instead of walking the graph.
"""

from __future__ import annotations

import contextlib
import copy
import gc
from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterable, Iterator, List, NamedTuple, Optional, Tuple, Union

import torch

from fxkit.graph import Graph
from fxkit.graph_module import GraphModule
from fxkit.node import Node, map_arg
from fxkit.passes.utils.matcher_utils import InternalMatch, SubgraphMatcher

__all__ = ["Match", "replace_pattern", "replace_pattern_with_filters", "ReplacedPatterns"]

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


class _ProgramOrder:
    """Order keys for the nodes of a graph that is being edited, so "which comes first" is O(1).

    Keys are floats; nodes inserted between two neighbours get keys spread between theirs. When the
    gap gets too small to split (or a node has no key because someone else inserted it), the whole
    graph is renumbered, which happens rarely enough to cost O(1) per insertion on average.
    """

    def __init__(self, graph: Graph) -> None:
        self._graph = graph
        self._key: Dict[Node, float] = {}
        self.renumber()

    def renumber(self) -> None:
        self._key = {node: float(index) for index, node in enumerate(self._graph.nodes)}

    def key(self, node: Node) -> float:
        if node not in self._key:
            self.renumber()
        return self._key[node]

    def first(self, nodes: Iterable[Node]) -> Node:
        return min(nodes, key=self.key)

    def last(self, nodes: Iterable[Node]) -> Node:
        return max(nodes, key=self.key)

    def inserted_before(self, new_nodes: List[Node], successor: Node) -> None:
        """Record that ``new_nodes`` now sit, in this order, right before ``successor``."""
        if not new_nodes:
            return
        upper = self.key(successor)
        predecessor = new_nodes[0].prev
        if predecessor.op == "root":  # the list's sentinel: nothing comes before
            lower = upper - 1.0
        elif predecessor in self._key:
            lower = self._key[predecessor]
        else:
            self.renumber()
            return
        step = (upper - lower) / (len(new_nodes) + 1)
        keys = [lower + step * (i + 1) for i in range(len(new_nodes))]
        if not all(a < b for a, b in zip([lower, *keys], [*keys, upper])):
            self.renumber()
            return
        self._key.update(zip(new_nodes, keys))

    def forget(self, node: Node) -> None:
        self._key.pop(node, None)


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while nodes are created and erased in bulk.

    The collector otherwise keeps re-walking the whole (large, long-lived) graph as allocations
    pile up; the loop creates no garbage cycles worth collecting early. Restored even on error.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _graph_of(pattern: PatternLike) -> Graph:
    if isinstance(pattern, GraphModule):
        return pattern.graph
    if isinstance(pattern, Graph):
        return pattern
    from fxkit.tracer import symbolic_trace

    return symbolic_trace(pattern).graph


def _get_attribute(module: torch.nn.Module, qualified_name: str) -> Optional[Any]:
    value: Any = module
    for part in qualified_name.split("."):
        if not hasattr(value, part):
            return None
        value = getattr(value, part)
    return value


def _set_attribute(module: torch.nn.Module, qualified_name: str, value: Any) -> None:
    """Set ``a.b.c`` on ``module``, creating empty intermediate modules as needed."""
    *path, name = qualified_name.split(".")
    owner = module
    for part in path:
        if not hasattr(owner, part):
            owner.add_module(part, torch.nn.Module())
        owner = getattr(owner, part)
    setattr(owner, name, value)


def _copy_missing_attributes(gm: GraphModule, source: torch.nn.Module, source_name: str) -> None:
    """Give ``gm`` a copy of every attribute its graph reads that it lacks and ``source`` has."""
    for node in gm.graph.nodes:
        if node.op not in ("call_module", "get_attr"):
            continue
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
    replaced = _replace_pattern(gm, pattern, replacement)
    return [Match(anchor=r.anchor, nodes_map=r.nodes_map) for r in replaced]


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
    return _replace_pattern(
        gm, pattern, replacement, match_filters, ignore_literals, replacement_callback, node_name_match
    )


def _replace_pattern(
    gm: GraphModule,
    pattern: PatternLike,
    replacement: Optional[PatternLike] = None,
    match_filters: Optional[List[MatchFilter]] = None,
    ignore_literals: bool = False,
    replacement_callback: Optional[ReplacementCallback] = None,
    node_name_match: str = "",
) -> List[ReplacedPatterns]:
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
    pattern_compute_nodes = [n for n in reversed(list(pattern_graph.nodes)) if n.op not in ("placeholder", "output")]
    plan = _ReplacementPlan(replacement_graph) if replacement_graph is not None else None
    # An earlier replacement may have swapped out a node that a later match takes as an input.
    replaced_by: Dict[Node, Node] = {}
    results: List[ReplacedPatterns] = []
    with _collector_paused():
        matches = [
            m
            for m in matcher.match(original_graph, node_name_match=node_name_match)
            if all(keep(m, original_graph, pattern_graph) for keep in match_filters or [])
        ]
        order = _ProgramOrder(original_graph)
        for match in matches:
            if replacement_callback is not None:
                replacement_graph = replacement_callback(match, original_graph, pattern_graph)
            assert replacement_graph is not None
            if plan is None or plan.graph is not replacement_graph:
                plan = _ReplacementPlan(replacement_graph)
            results.append(_replace_one(match, original_graph, pattern_compute_nodes, plan, order, replaced_by))

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
        self.output = next((n for n in nodes if n.op == "output"), None)
        # Flat argument tuples (no lists or dicts) are mapped with a comprehension, not map_arg.
        self.flat = {n: _is_flat(n.args) and _is_flat(tuple(n.kwargs.values())) for n in self.body}

    def copy_into(self, graph: Graph, value_map: Dict[Node, Any]) -> Tuple[Any, List[Node]]:
        """Copy the body into ``graph`` at its insertion point (like ``graph.graph_copy``); return
        what the replacement outputs (mapped) and the new nodes, in order."""
        lookup = value_map.__getitem__
        create_node = graph.create_node
        copied_nodes: List[Node] = []
        for node in self.body:
            if node in value_map:
                continue
            node_args, node_kwargs = node.args, node.kwargs
            if self.flat[node]:
                args = tuple([lookup(a) if isinstance(a, Node) else a for a in node_args])
                kwargs = {k: lookup(v) if isinstance(v, Node) else v for k, v in node_kwargs.items()} if node_kwargs else {}
            else:
                args, kwargs = map_arg(node_args, lookup), map_arg(node_kwargs, lookup)
            copied = create_node(node.op, node.target, args, kwargs, node.name, node.type)
            meta = node.meta
            copied.meta = meta.copy() if type(meta) is dict else copy.copy(meta)
            value_map[node] = copied
            copied_nodes.append(copied)
        if self.output is None:
            return None, copied_nodes
        return map_arg(self.output.args[0], lookup), copied_nodes


def _is_flat(values: Tuple[Any, ...]) -> bool:
    return not any(isinstance(v, (list, tuple, dict, slice)) for v in values)


def _replace_one(
    match: InternalMatch,
    original_graph: Graph,
    pattern_compute_nodes: List[Node],
    plan: _ReplacementPlan,
    order: _ProgramOrder,
    replaced_by: Dict[Node, Node],
) -> ReplacedPatterns:
    replacement_placeholders = plan.placeholders
    if len(match.placeholder_nodes) != len(replacement_placeholders):
        raise AssertionError(
            f"Placeholder count mismatch: {len(match.placeholder_nodes)} vs {len(replacement_placeholders)}: "
            "the pattern and the replacement must take the same inputs"
        )

    value_map: Dict[Node, Any] = {}
    external_inputs: List[Node] = []
    for replacement_input, graph_value in zip(replacement_placeholders, match.placeholder_nodes):
        if isinstance(graph_value, Node):
            replacement = replaced_by.get(graph_value)
            if replacement is not None:
                _point_match_at(match, graph_value, replacement)
                graph_value = replacement
            external_inputs.append(graph_value)
        value_map[replacement_input] = graph_value

    insert_point = _insertion_point(match, order)
    with original_graph.inserting_before(insert_point):
        copied_outputs, copied_nodes = plan.copy_into(original_graph, value_map)
    if copied_nodes:
        order.inserted_before(copied_nodes, insert_point)
        if external_inputs and order.key(order.last(external_inputs)) > order.key(copied_nodes[0]):
            _move_after_late_inputs(copied_nodes, order)
    if isinstance(copied_outputs, Node):
        copied_outputs = (copied_outputs,)

    added_nodes = [v for v in value_map.values() if v not in match.placeholder_nodes]

    if len(match.returning_nodes) != len(copied_outputs):
        raise AssertionError(
            f"the pattern returns {len(match.returning_nodes)} values but the replacement returns "
            f"{len(copied_outputs)}; make them return the same number of values"
        )
    for old, new in zip(match.returning_nodes, copied_outputs):
        old.replace_all_uses_with(new)
        replaced_by[old] = new
    for pattern_node in pattern_compute_nodes:
        erased = match.nodes_map[pattern_node]
        original_graph.erase_node(erased)
        order.forget(erased)
    return ReplacedPatterns(anchor=match.anchors[0], nodes_map=match.nodes_map, replacements=added_nodes)


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


def _insertion_point(match: InternalMatch, order: _ProgramOrder) -> Node:
    """Replacement nodes go right before the first user of the match's results (or, if they have no
    users, right after the last of them)."""
    returned_nodes = [n for n in match.returning_nodes if isinstance(n, Node)]
    users: Dict[Node, None] = {}
    for returned in returned_nodes:
        users.update(returned.users)
    if users:
        return order.first(users)
    last_returned = order.last(returned_nodes) if returned_nodes else None
    if last_returned is None or last_returned.op == "output" or last_returned.next.op == "root":
        raise AssertionError(
            "The insert point can't be None: the values this match returns have no users and nothing "
            "follows them; the pattern must compute something (it cannot just return an input)"
        )
    return last_returned.next


def _move_after_late_inputs(copied_nodes: List[Node], order: _ProgramOrder) -> None:
    """Keep every use after its definition when the insertion point came too early.

    The replacement goes before the first user of what the match returns; when a replacement input
    is defined only after that point (possible when a pattern's outputs do not depend on all its
    inputs), torch.fx leaves a graph that uses a value before defining it. Here each such copied
    node moves to just after its latest input instead; in every other case nothing moves.
    """
    for node in copied_nodes:
        inputs = node.all_input_nodes
        if not inputs:
            continue
        latest_input = order.last(inputs)
        if order.key(latest_input) < order.key(node):
            continue
        successor = latest_input.next
        successor.prepend(node)
        order.inserted_before([node], successor)
        for user in node.users:
            if order.key(user) < order.key(node):
                raise RuntimeError(
                    f"replace_pattern: replacement node '{node.name}' needs '{latest_input.name}', which is "
                    f"defined after '{user.name}', a user of the replaced values; no placement of the "
                    "replacement keeps the graph in order. Make each replacement output depend only on "
                    "the inputs the corresponding pattern output depends on"
                )
