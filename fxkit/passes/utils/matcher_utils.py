"""Find the places where a small pattern graph occurs inside a larger graph.

``SubgraphMatcher`` has torch.fx's interface and gives torch.fx's answers (the same matches, in the
same order, with the same node maps), but it is built to stay near-linear in the size of the graph:

* candidates for each pattern anchor come from one walk over the graph, indexed by ``(op, target)``;
* each candidate is matched by walking the pattern backwards from the anchor, stopping at the first
  difference;
* for patterns with several anchors, the candidates of a later anchor are looked up from the users of
  nodes that the earlier anchors already bound, instead of trying every pairing;
* the check that fusing a match would not create a cycle only looks at the nodes that sit between
  the match's first and last node in program order, since an edge never points backwards.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import Any, Dict, Hashable, Iterable, List, Optional, Sequence, Tuple

import torch

from fxkit import _foreign, _paths
from fxkit._fast_path import FastPathSwitch
from fxkit.graph import Graph, _order_of
from fxkit.node import Node
from fxkit.passes.utils import _matcher_fast

__all__ = ["SubgraphMatcher", "InternalMatch"]

# The ops whose target identifies what they compute, so that candidates can be indexed by target.
_INDEXABLE_OPS = ("call_function", "call_method", "call_module")
_NOT_COMPUTE_OPS = ("placeholder", "output")

# Kinds of the pending comparisons in ``SubgraphMatcher._extend``.
_NODE, _SEQUENCE, _LEAF = "node", "seq", "leaf"

_FAST_PATH = FastPathSwitch("SubgraphMatcher")

#: ``with use_fast_path(False): ...`` matches with ``_extend`` alone in this thread (see
#: ``_matcher_fast`` for the precomputed walk it otherwise tries first).
use_fast_path = _FAST_PATH.use


def _starts_empty(container: type) -> Any:
    """A dataclass field whose default is a new empty ``container`` per instance."""
    return field(default_factory=container)


@dataclass
class InternalMatch:
    """One occurrence of a pattern: ``nodes_map`` maps each pattern node to the graph value it matched.

    ``placeholder_nodes`` and ``returning_nodes`` list, in the pattern's order, what the pattern's
    inputs and outputs matched. A pattern placeholder may match a literal (an int, a list of nodes, ...)
    as well as a node.
    """

    def __copy__(self) -> "InternalMatch":
        # The anchors list is shared; every other container gets its own shallow copy.
        copied = {f.name: getattr(self, f.name).copy() for f in fields(self) if f.name != "anchors"}
        return replace(self, **copied)

    anchors: List[Node]
    nodes_map: Dict[Node, Any] = _starts_empty(dict)
    placeholder_nodes: List[Any] = _starts_empty(list)
    returning_nodes: List[Node] = _starts_empty(list)
    name_node_map: Dict[str, Node] = _starts_empty(dict)


def _attribute(module: Optional[torch.nn.Module], qualified_name: str) -> Any:
    """The attribute ``a.b.c`` of ``module``."""
    if module is None:
        raise RuntimeError(
            f"cannot match get_attr '{qualified_name}': its graph has no owning module to read the "
            "attribute from; build the graph through a GraphModule"
        )
    try:
        return _paths.resolve(module, qualified_name)
    except _paths.MissingAttribute as missing:
        raise missing.error from None


def _hashable_key(node: Node) -> Optional[Tuple[str, Hashable]]:
    try:
        hash(node.target)
    except TypeError:
        return None
    return (node.op, node.target)


class _Binding:
    """A partial match under construction: pattern node -> graph value, plus the graph nodes used."""

    __slots__ = ("nodes_map", "bound_graph_nodes")

    def __init__(self, nodes_map: Dict[Node, Any], bound_graph_nodes: Dict[Node, None]) -> None:
        self.nodes_map = nodes_map
        # Only nodes are recorded here: a placeholder bound to a literal does not claim anything.
        self.bound_graph_nodes = bound_graph_nodes

    def copy(self) -> "_Binding":
        return _Binding(self.nodes_map.copy(), self.bound_graph_nodes.copy())

    def bind(self, pattern_node: Node, value: Any) -> None:
        self.nodes_map[pattern_node] = value
        if isinstance(value, Node):
            self.bound_graph_nodes[value] = None


class SubgraphMatcher:
    """Finds the occurrences of ``pattern`` in a graph (see ``match``).

    Args:
        pattern: the graph to look for. Its placeholders match any value; its output node lists the
            values the pattern produces.
        match_output: also require the pattern's output node to match the graph's output node, so the
            pattern must produce exactly what the graph returns.
        match_placeholder: require pattern placeholders to match graph placeholders, so the pattern
            must start at the graph's inputs.
        remove_overlapping_matches: drop a match that shares a compute node with an earlier one.
        ignore_literals: treat every literal argument of the pattern as a wildcard.
    """

    # fmt: off
    def __init__(
        self, pattern: Graph, match_output: bool = False, match_placeholder: bool = False,
        remove_overlapping_matches: bool = True, ignore_literals: bool = False,
    ) -> None:
        # fmt: on
        pattern = _foreign.convert(pattern)
        self.pattern = pattern
        self.match_output, self.match_placeholder = match_output, match_placeholder
        self.remove_overlapping_matches, self.ignore_literals = remove_overlapping_matches, ignore_literals

        pattern_nodes = list(pattern.nodes)
        if not pattern_nodes:
            raise ValueError("SubgraphMatcher cannot be initialized with an empty pattern")
        for node in pattern_nodes:
            if node.op not in _NOT_COMPUTE_OPS and not node.users and not node.is_impure():
                raise AssertionError(
                    "SubgraphMatcher cannot be initialized with an pattern with dead code: pattern node "
                    f"'{node.name}' ({node.format_node()}) is never used; remove it from the pattern"
                )
        self.pattern_placeholder_nodes: List[Node] = [n for n in pattern_nodes if n.op == "placeholder"]
        output_node = pattern_nodes[-1]
        self.pattern_returning_nodes: List[Node] = output_node.all_input_nodes
        if match_output:
            self.pattern_anchors: List[Node] = [output_node]
        else:
            # A value that only the output uses is a sink of the pattern: matching starts there.
            self.pattern_anchors = [n for n in self.pattern_returning_nodes if len(n.users) == 1]
        self._returning_set = dict.fromkeys(self.pattern_returning_nodes)
        # What a finished match must keep to itself: every matched node but the placeholders is
        # "inside", and only the ones that are not returned need checking for outside users.
        self._pattern_output = output_node
        self._compute_pattern_nodes = [n for n in pattern_nodes if n.op not in _NOT_COMPUTE_OPS]
        self._private_pattern_nodes = [
            n for n in pattern_nodes if n.op != "placeholder" and n not in self._returning_set
        ]
        # A finished match that leaves one of these unbound is an error.
        self._must_bind = (*self.pattern_placeholder_nodes, *self.pattern_returning_nodes)
        self._anchor_paths = self._paths_to_earlier_anchors()
        # The walk from the first anchor, worked out once, for candidates tried with nothing bound
        # yet. Not used in the modes where placeholders or literals compare differently.
        self._first_anchor_walk: Optional[List[_matcher_fast.WalkStep]] = None
        if self.pattern_anchors and not match_placeholder and not ignore_literals:
            self._first_anchor_walk = _matcher_fast.walk_plan(self.pattern_anchors[0])

    # ----------------------------------------------------------------------------------------------
    # node and argument comparison

    def _match_attributes(self, pn: Node, gn: Node) -> bool:
        """get_attr nodes match when both read a tensor (values are not compared)."""
        if not isinstance(pn.target, str) or not isinstance(gn.target, str):
            raise AssertionError(f"get_attr targets must be strings, got {pn.target!r} and {gn.target!r}")
        pn_value = _attribute(pn.graph.owning_module, pn.target)
        gn_value = _attribute(gn.graph.owning_module, gn.target)
        if type(pn_value) is not type(gn_value):
            return False
        if isinstance(pn_value, torch.Tensor):
            return isinstance(gn_value, torch.Tensor)
        raise RuntimeError(
            f"Unsupported type {pn_value} when matching attributes: pattern node '{pn.name}' reads "
            f"'{pn.target}', but only tensor attributes can be matched"
        )

    def _nodes_are_equal(self, pn: Node, gn: Node, node_name_match: str = "") -> bool:
        if not self.match_placeholder and pn.op == "placeholder":
            return True
        if node_name_match and node_name_match in gn.name:
            return True
        if pn.op != gn.op:
            return False
        if pn.op in _NOT_COMPUTE_OPS:
            return True
        if pn.op == "get_attr":
            return self._match_attributes(pn, gn)
        return pn.target == gn.target

    def _match_literals(self, pn: Any, gn: Any, match: InternalMatch) -> bool:
        """Compare two argument leaves that are not both nodes (public, as torch.fx's)."""
        binding = _Binding(
            match.nodes_map, {v: None for v in match.nodes_map.values() if isinstance(v, Node)}
        )
        return self._leaves_match(pn, gn, binding)

    def _leaves_match(self, pn: Any, gn: Any, binding: _Binding) -> bool:
        pn_is_node, gn_is_node = isinstance(pn, Node), isinstance(gn, Node)
        if pn_is_node and gn_is_node:
            raise AssertionError("pn and gn cannot both be Node")
        if pn_is_node:
            # A pattern input may stand for a literal of the graph: bind it like a node.
            if pn.op != "placeholder":
                return False
            if pn in binding.nodes_map:
                return bool(binding.nodes_map[pn] == gn)
            binding.bind(pn, gn)
            return True
        if gn_is_node:
            return False
        return type(gn) is type(pn) and bool(gn == pn)

    @staticmethod
    def _arguments_by_schema(target: Any, args: Sequence[Any], kwargs: Dict[str, Any]) -> List[Any]:
        """An aten overload's arguments in schema order, defaults filled in."""
        positional_count = len(args)
        return [
            kwargs[param.name]
            if param.name in kwargs
            else args[position]
            if position < positional_count and not param.kwarg_only
            else param.default_value
            for position, param in enumerate(target._schema.arguments)
        ]

    def _paired_arguments(self, pn: Node, gn: Node) -> Optional[Tuple[Sequence[Any], Sequence[Any]]]:
        """The arguments of ``pn`` and ``gn`` lined up for comparison, or None if they cannot match."""
        pn_args, gn_args, pn_kwargs, gn_kwargs = pn.args, gn.args, pn.kwargs, gn.kwargs
        if not pn_kwargs and not gn_kwargs and len(pn_args) == len(gn_args):
            return pn_args, gn_args  # the common case, without building lists
        same_shape = len(pn_args) == len(gn_args) and list(pn_kwargs) == list(gn_kwargs)
        if not same_shape and pn.op == "call_function" and isinstance(pn.target, torch._ops.OpOverload):
            return (
                self._arguments_by_schema(pn.target, pn.args, pn.kwargs),
                self._arguments_by_schema(pn.target, gn.args, gn.kwargs),
            )
        if not same_shape:
            return None
        return [*pn_args, *pn_kwargs.values()], [*gn_args, *gn_kwargs.values()]

    def _match_nodes(self, pn: Node, gn: Node, match: InternalMatch) -> bool:
        """Extend ``match`` so that ``pn`` matches ``gn``; False (``match`` is then partial) if it cannot."""
        binding = _Binding(
            match.nodes_map, {v: None for v in match.nodes_map.values() if isinstance(v, Node)}
        )
        return self._extend(pn, gn, binding)

    def _extend(
        self, anchor: Node, anchor_graph_node: Node, binding: _Binding, node_name_match: str = ""
    ) -> bool:
        """Walk the pattern backwards from ``anchor``, binding as it goes; stop at the first difference.

        The walk is depth-first, arguments left to right, exactly the order in which torch.fx binds,
        so that the resulting maps (and which of two equal candidates gets bound) are the same.
        A work stack replaces recursion so that long patterns cannot exhaust Python's stack.
        ``node_name_match`` applies to the anchor only.
        """
        nodes_map = binding.nodes_map
        bound = binding.bound_graph_nodes
        ignore_literals = self.ignore_literals
        # Items are (_NODE, pattern node, graph node), (_SEQUENCE, pattern list, graph list) or
        # (_LEAF, pattern node, graph literal); popped in order, so pushed in reverse. Leaves with a
        # literal on the pattern side change nothing, so they are compared as soon as they are seen.
        work: List[Tuple[str, Any, Any]] = [(_NODE, anchor, anchor_graph_node)]
        while work:
            kind, pv, gv = work.pop()
            if kind is _NODE:
                if pv in nodes_map:
                    if nodes_map[pv] is not gv:
                        return False
                    continue
                if gv in bound:
                    return False
                if not self._nodes_are_equal(pv, gv, node_name_match if pv is anchor else ""):
                    return False
                binding.bind(pv, gv)
                if pv.op == "placeholder":
                    continue
                paired = self._paired_arguments(pv, gv)
                if paired is None or not self._push_arguments(paired[0], paired[1], work):
                    return False
            elif kind is _SEQUENCE:
                if not self._push_arguments(pv, gv, work):
                    return False
            elif not self._leaves_match(pv, gv, binding) and not ignore_literals:
                return False
        return True

    def _push_arguments(
        self, pattern_args: Sequence[Any], graph_args: Sequence[Any], work: List[Tuple[str, Any, Any]]
    ) -> bool:
        """Queue the argument pairs for ``_extend``; False if they visibly cannot match."""
        if len(pattern_args) != len(graph_args):
            return False
        push = work.append
        for pa, ga in zip(reversed(pattern_args), reversed(graph_args)):
            if isinstance(pa, Node):
                push((_NODE if isinstance(ga, Node) else _LEAF, pa, ga))
            elif isinstance(pa, (list, tuple)) and isinstance(ga, (list, tuple)):
                push((_SEQUENCE, pa, ga))
            elif not self.ignore_literals and (
                isinstance(ga, Node) or type(ga) is not type(pa) or not bool(ga == pa)
            ):
                return False
        return True

    # ----------------------------------------------------------------------------------------------
    # whole-match filters

    def _is_contained(self, nodes_map: Dict[Node, Any], compute: List[Node]) -> bool:
        """True if no value computed inside the match, other than what it returns, is used outside it.

        ``compute`` lists the graph nodes bound to the pattern's compute nodes; the graph's output
        node also counts as inside when the pattern's output was matched to it.
        """
        inside = dict.fromkeys(compute)
        if self.match_output:
            output = nodes_map.get(self._pattern_output)
            if output is not None:
                inside[output] = None
        for pn in self._private_pattern_nodes:
            gn = nodes_map.get(pn)
            if gn is not None:
                for user in gn.users:
                    if user not in inside:
                        return False
        return True

    @staticmethod
    def _fusing_makes_cycle(compute_nodes: List[Node]) -> bool:
        """True if a path leaves the matched nodes and comes back into them.

        Edges go forward in program order, so a path that re-enters the match never passes a node
        that comes after the match's last node: the search stops there.
        """
        inside = dict.fromkeys(compute_nodes)
        last = max((n._order for n in compute_nodes), default=-1)
        pending = [user for node in compute_nodes for user in node.users if user not in inside]
        seen: Dict[Node, None] = {}
        while pending:
            node = pending.pop()
            if node in inside:
                return True
            if node in seen or node._order > last:
                continue
            seen[node] = None
            pending.extend(node.users)
        return False

    # ----------------------------------------------------------------------------------------------
    # candidate search

    def _paths_to_earlier_anchors(self) -> List[Optional[List[Node]]]:
        """For each anchor after the first, the shortest pattern path (anchor first) down its inputs to
        a node that the earlier anchors' walks bind; None if there is none (disconnected pattern)."""
        paths: List[Optional[List[Node]]] = [None]
        bound_before: Dict[Node, None] = {}
        for index, anchor in enumerate(self.pattern_anchors):
            if index > 0:
                paths.append(self._shortest_path_down(anchor, bound_before))
            bound_before.update(dict.fromkeys(self._ancestors(anchor)))
        return paths

    @staticmethod
    def _ancestors(node: Node) -> List[Node]:
        found: Dict[Node, None] = {node: None}
        pending = [node]
        while pending:
            for arg in pending.pop().all_input_nodes:
                if arg not in found:
                    found[arg] = None
                    pending.append(arg)
        return list(found)

    @staticmethod
    def _shortest_path_down(start: Node, targets: Dict[Node, None]) -> Optional[List[Node]]:
        came_from: Dict[Node, Optional[Node]] = {start: None}
        frontier = [start]
        while frontier:
            next_frontier: List[Node] = []
            for node in frontier:
                for arg in node.all_input_nodes:
                    if arg in came_from:
                        continue
                    came_from[arg] = node
                    if arg in targets:
                        path = [arg]
                        step = came_from[arg]
                        while step is not None:
                            path.append(step)
                            step = came_from[step]
                        return path[::-1]
                    next_frontier.append(arg)
            frontier = next_frontier
        return None

    def _anchor_candidates(self, graph: Graph, node_name_match: str) -> List[List[Node]]:
        """Per anchor, the graph nodes it could match at, in program order."""
        graph_nodes: Optional[List[Node]] = None
        candidates: List[List[Node]] = []
        for anchor in self.pattern_anchors:
            if anchor.op in _INDEXABLE_OPS and _hashable_key(anchor) is not None and not node_name_match:
                # The graph keeps its nodes indexed by (op, target): no walk needed.
                candidates.append(graph.find_nodes(op=anchor.op, target=anchor.target))
                continue
            if graph_nodes is None:
                graph_nodes = list(graph.nodes)
            candidates.append([n for n in graph_nodes if self._nodes_are_equal(anchor, n, node_name_match)])
        return candidates

    def _narrowed(self, anchor_index: int, candidates: List[Node], binding: _Binding) -> Iterable[Node]:
        """The candidates of a later anchor that can still agree with what is already bound."""
        path = self._anchor_paths[anchor_index]
        if path is None or self.ignore_literals:
            # ignore_literals lets a pattern edge face a graph literal, so no edge can be relied on.
            return candidates
        reached = binding.nodes_map.get(path[-1])
        if not isinstance(reached, Node):
            return candidates
        frontier: Dict[Node, None] = {reached: None}
        for pattern_node in reversed(path[1:-1]):
            frontier = {
                user: None
                for node in frontier
                for user in node.users
                if self._nodes_are_equal(pattern_node, user)
            }
        allowed = dict.fromkeys(candidates)
        found = {user: None for node in frontier for user in node.users if user in allowed}
        return sorted(found, key=_order_of)

    # ----------------------------------------------------------------------------------------------

    def match(self, graph: Graph, node_name_match: str = "") -> List[InternalMatch]:
        """All occurrences of the pattern in ``graph``, in torch.fx's order.

        An occurrence is kept only if nothing computed inside it (other than the values the pattern
        returns) is used outside it. With ``remove_overlapping_matches``, an occurrence is also dropped
        if collapsing it into one node would create a cycle, or if it shares a compute node with an
        earlier one. ``node_name_match``: a graph node whose name contains this text is a candidate
        for every anchor, whatever its op.
        """
        _foreign.reject(graph, "SubgraphMatcher.match")  # matches name nodes of the graph given
        candidates = self._anchor_candidates(graph, node_name_match)
        # An anchor without candidates is skipped, not failed (as torch.fx does).
        searched = [(i, c) for i, c in enumerate(candidates) if c]
        # Narrowing needs every anchor bound along the way: only when none was skipped.
        search = _Search(searched, node_name_match, can_narrow=len(searched) == len(candidates))
        if searched:
            self._search(search, 0, _Binding({}, {}))
        return search.found

    def _search(self, search: "_Search", step: int, binding: _Binding) -> None:
        """Bind the anchors from ``step`` on, every way the candidates allow; keep finished matches.

        A method rather than a recursive closure: a closure that calls itself is a reference cycle,
        which would keep every match alive until the next garbage collection.
        """
        anchor_index, anchor_candidates = search.searched[step]
        anchor = self.pattern_anchors[anchor_index]
        if step > 0 and search.can_narrow:
            anchor_candidates = list(self._narrowed(anchor_index, anchor_candidates, binding))
        last_step = step + 1 == len(search.searched)
        node_name_match = search.node_name_match
        walk = None
        if step == 0 and anchor_index == 0 and not node_name_match and _FAST_PATH.enabled():
            walk = self._first_anchor_walk
        for graph_node in anchor_candidates:
            trial = binding.copy()
            matched = _matcher_fast.follow_walk(self, walk, graph_node, trial) if walk is not None else None
            if matched is None:  # the graph's shape differs from the pattern's: the general walk decides
                trial = binding.copy()
                matched = self._extend(anchor, graph_node, trial, node_name_match)
            if matched:
                if last_step:
                    self._keep_if_acceptable(trial.nodes_map, search)
                else:
                    self._search(search, step + 1, trial)

    def _keep_if_acceptable(self, nodes_map: Dict[Node, Any], search: "_Search") -> None:
        """Add a complete binding to the results unless a whole-match rule rejects it.

        The rules, in torch.fx's order: the match must be contained; with
        ``remove_overlapping_matches`` it must also not form a cycle when fused and not share a
        compute node with a match kept before it. Each depends only on the match and the ones
        kept earlier, so they are applied as matches are found, in search order.
        """
        for pattern_node in self._must_bind:
            if pattern_node not in nodes_map:
                raise _UnboundPatternNodeError(pattern_node)
        # Pattern nodes facing a literal can stay unbound (ignore_literals): they are skipped.
        compute = [nodes_map[pn] for pn in self._compute_pattern_nodes if pn in nodes_map]
        if not self._is_contained(nodes_map, compute):
            return
        if self.remove_overlapping_matches:
            # With one returning node no cycle is possible: every matched node is upstream of it
            # (the pattern has no dead code) and, the match being contained, only it has outside users.
            if len(self.pattern_returning_nodes) > 1 and self._fusing_makes_cycle(compute):
                return
            claimed = search.claimed
            for gn in compute:
                if gn in claimed:
                    return
            for gn in compute:
                claimed[gn] = None
        search.found.append(
            InternalMatch(
                self.pattern_anchors,
                nodes_map,
                [nodes_map[pn] for pn in self.pattern_placeholder_nodes],
                [nodes_map[pn] for pn in self.pattern_returning_nodes],
            )
        )


class _Search:
    """The state of one ``SubgraphMatcher.match`` call."""

    __slots__ = ("searched", "node_name_match", "can_narrow", "found", "claimed")

    def __init__(
        self, searched: List[Tuple[int, List[Node]]], node_name_match: str, can_narrow: bool
    ) -> None:
        self.searched = searched  # (anchor index, its candidates) for each anchor that has any
        self.node_name_match = node_name_match
        self.can_narrow = can_narrow
        self.found: List[InternalMatch] = []
        # Graph compute nodes of the matches kept so far (used to drop overlapping ones).
        self.claimed: Dict[Node, None] = {}


class _UnboundPatternNodeError(KeyError):
    """A pattern node that a match leaves unbound (a KeyError, as in torch.fx)."""

    def __init__(self, pattern_node: Node) -> None:
        super().__init__(pattern_node)
        self.pattern_node = pattern_node

    def __str__(self) -> str:
        if self.pattern_node.op == "placeholder":
            return (
                f"pattern placeholder '{self.pattern_node.name}' is not used by any node of the pattern, "
                "so a match cannot say what it stands for; remove that parameter from the pattern (and "
                "the replacement) or use it"
            )
        return (
            f"pattern output '{self.pattern_node.name}' ({self.pattern_node.format_node()}) occurs nowhere "
            "in the graph while the pattern's other outputs do, so the match is incomplete; split the "
            "pattern into one pattern per output"
        )
