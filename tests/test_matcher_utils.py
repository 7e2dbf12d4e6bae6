"""fxkit.passes.utils.matcher_utils.SubgraphMatcher against torch.fx's on the same traced graphs."""

import copy
import random
from typing import Any, Callable, Dict, List, Tuple

import pytest
import torch
import torch.fx
from torch.fx.passes.utils import matcher_utils as torch_matcher_utils

import fxkit
from fxkit.passes.utils import matcher_utils
from fxkit.passes.utils.matcher_utils import InternalMatch, SubgraphMatcher, use_fast_path


@pytest.fixture(autouse=True, params=["plain", "fast"])
def engine(request):
    """Every test runs with the plain matcher (``_extend`` alone) and with its fast path."""
    with use_fast_path(request.param == "fast"):
        yield request.param


def _names(value: Any) -> Any:
    if isinstance(value, (torch.fx.Node, fxkit.Node)):
        return value.name
    if isinstance(value, (list, tuple)):
        return type(value)(_names(v) for v in value)
    return value


def _summary(matches: List[Any]) -> List[Tuple[Any, ...]]:
    return [
        (
            _names(m.anchors),
            [(pn.name, _names(gn)) for pn, gn in m.nodes_map.items()],
            _names(m.placeholder_nodes),
            _names(m.returning_nodes),
        )
        for m in matches
    ]


def match_both(
    model: Callable[..., Any], pattern: Callable[..., Any], node_name_match: str = "", **options: Any
) -> List[InternalMatch]:
    """Match ``pattern`` in ``model`` with both libraries and check the results agree."""
    torch_matcher = torch_matcher_utils.SubgraphMatcher(torch.fx.symbolic_trace(pattern).graph, **options)
    matcher = SubgraphMatcher(fxkit.symbolic_trace(pattern).graph, **options)
    graph = fxkit.symbolic_trace(model).graph
    try:
        expected = torch_matcher.match(torch.fx.symbolic_trace(model).graph, node_name_match=node_name_match)
    except KeyError:
        # An anchor without candidates leaves pattern nodes unbound: torch.fx raises KeyError.
        with pytest.raises(KeyError):
            matcher.match(graph, node_name_match=node_name_match)
        return []
    actual = matcher.match(graph, node_name_match=node_name_match)
    assert _summary(actual) == _summary(expected)
    return actual


def three_relus(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    return torch.relu(torch.relu(torch.relu(x))) + w


def relu_pair(x: torch.Tensor) -> torch.Tensor:
    return torch.relu(torch.relu(x))


OPTION_SETS: List[Dict[str, Any]] = [
    {},
    {"remove_overlapping_matches": False},
    {"match_output": True},
    {"match_placeholder": True},
    {"match_output": True, "match_placeholder": True},
    {"ignore_literals": True},
]


@pytest.mark.parametrize("options", OPTION_SETS, ids=str)
def test_options_agree_with_torch_fx(options: Dict[str, Any]) -> None:
    match_both(three_relus, relu_pair, **options)
    match_both(three_relus, lambda x, w: torch.relu(torch.relu(torch.relu(x))) + w, **options)
    match_both(lambda x: (x + 1) * (x + 2), lambda x: x + 1, **options)


def test_overlapping_matches_kept_when_asked() -> None:
    assert len(match_both(three_relus, relu_pair, remove_overlapping_matches=False)) == 2
    assert len(match_both(three_relus, relu_pair)) == 1


@pytest.mark.parametrize("name", ["", "relu", "relu_1", "elu_2", "output", "r.*2", "add"])
def test_node_name_match(name: str) -> None:
    match_both(
        three_relus, lambda x: torch.sigmoid(x), node_name_match=name, remove_overlapping_matches=False
    )
    match_both(three_relus, lambda x: torch.sigmoid(torch.sigmoid(x)), node_name_match=name)


def test_multi_anchor_pattern() -> None:
    def model(x: torch.Tensor, y: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return x.relu() + x.sigmoid(), y.relu() * y.sigmoid(), x.relu() - y.sigmoid()

    match_both(model, lambda a: (a.relu(), a.sigmoid()))
    match_both(model, lambda a, b: (a.relu(), b.sigmoid()))
    match_both(model, lambda a, b: (a.relu(), b.sigmoid()), remove_overlapping_matches=False)


def test_a_match_that_would_form_a_cycle_when_fused_is_dropped() -> None:
    def model(x: torch.Tensor) -> torch.Tensor:
        a = x.relu()
        b = a.neg()  # outside the pattern, between its two halves
        return a.sigmoid() + b.sigmoid()

    def pattern(x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        a = x.relu()
        return a.sigmoid(), a

    def pattern_through_outside(p: torch.Tensor, q: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        r = p.relu()
        return r, q.sigmoid()

    match_both(model, pattern)
    # Only remove_overlapping_matches=True drops the match that re-enters itself through 'neg'.
    assert match_both(model, pattern_through_outside) == []
    assert len(match_both(model, pattern_through_outside, remove_overlapping_matches=False)) == 1


def test_placeholder_can_bind_a_literal_or_a_list() -> None:
    match_both(lambda x: (x + 1) * (x + 2), lambda x, y: x + y)
    match_both(lambda x, y: torch.cat([x.relu(), y], 1), lambda a, b: torch.cat(a, b))
    match_both(lambda x, y: torch.cat([x.relu(), y, y], 1), lambda a, b: torch.cat([a, b], 1))


def test_get_attr_and_call_module() -> None:
    class M(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lin = torch.nn.Linear(2, 2)
            self.w = torch.nn.Parameter(torch.ones(2))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.lin(x) + self.w

    class P(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lin = torch.nn.Linear(2, 2)
            self.other = torch.nn.Parameter(torch.ones(3))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.lin(x) + self.other

    model = M()
    expected = torch_matcher_utils.SubgraphMatcher(torch.fx.symbolic_trace(P()).graph).match(
        torch.fx.symbolic_trace(model).graph
    )
    actual = SubgraphMatcher(fxkit.symbolic_trace(P()).graph).match(fxkit.symbolic_trace(model).graph)
    assert _summary(actual) == _summary(expected) and len(actual) == 1


def test_pattern_validation() -> None:
    with pytest.raises(ValueError, match="empty pattern"):
        SubgraphMatcher(fxkit.Graph())

    def dead(x: torch.Tensor) -> torch.Tensor:
        x.sigmoid()
        return x.relu()

    with pytest.raises(AssertionError, match="dead code"):
        SubgraphMatcher(fxkit.symbolic_trace(dead).graph)


def test_internal_match_copy_is_independent() -> None:
    graph = fxkit.symbolic_trace(relu_pair).graph
    nodes = list(graph.nodes)
    match = InternalMatch(anchors=[nodes[1]], nodes_map={nodes[1]: nodes[1]}, placeholder_nodes=[nodes[0]])
    duplicate = copy.copy(match)
    duplicate.nodes_map[nodes[0]] = nodes[0]
    duplicate.placeholder_nodes.append(nodes[2])
    assert match.nodes_map == {nodes[1]: nodes[1]} and match.placeholder_nodes == [nodes[0]]
    assert duplicate.anchors is match.anchors
    assert matcher_utils.__all__ == ["SubgraphMatcher", "InternalMatch"]


def test_long_pattern_does_not_hit_the_recursion_limit() -> None:
    def long_chain(x: torch.Tensor) -> torch.Tensor:
        for _ in range(1500):
            x = torch.neg(x)
        return x

    graph = fxkit.symbolic_trace(long_chain).graph
    matches = SubgraphMatcher(graph, match_output=True).match(graph)  # one candidate: the output
    assert len(matches) == 1 and len(matches[0].nodes_map) == 1502


def random_program(rng: random.Random, size: int) -> Callable[..., Any]:
    """A straight-line program of relu/sigmoid/neg/add/mul over two inputs, mostly chained."""
    templates = (
        "torch.relu({a})",
        "torch.sigmoid({a})",
        "torch.neg({a})",
        "{a} + 1",
        "torch.add({a}, {b})",
        "{a} * {b}",
    )
    values = ["x", "y"]
    lines = ["def program(x, y):"]
    for index in range(size):
        a, b = rng.choice(values[-4:]), rng.choice(values)
        lines.append(f"    v{index} = " + rng.choice(templates).format(a=a, b=b))
        values.append(f"v{index}")
    lines.append(f"    return ({values[-1]}, {rng.choice(values[2:])})")
    namespace: Dict[str, Any] = {"torch": torch}
    exec("\n".join(lines), namespace)
    return namespace["program"]


RANDOM_PATTERNS: List[Callable[..., Any]] = [
    lambda a, b: torch.relu(torch.add(a, b)),
    lambda a: torch.neg(torch.neg(a)),
    lambda a: a * a,
    lambda a: (torch.relu(a), torch.sigmoid(a)),
    lambda a, b: (torch.neg(a), torch.relu(b)),
    lambda a: torch.sigmoid(a + 1),
    lambda a: torch.add(torch.relu(a), torch.sigmoid(a)),
]


@pytest.mark.parametrize("seed", range(3))
def test_random_graphs_agree_with_torch_fx(seed: int, engine: str) -> None:
    # Each engine gets programs of its own (six in all), keeping the test's time what it was.
    rng = random.Random(1000 + seed + (3 if engine == "fast" else 0))
    for _ in range(3):
        program = random_program(rng, rng.randint(4, 18))
        for pattern in RANDOM_PATTERNS:
            for options in ({}, {"remove_overlapping_matches": False}, {"ignore_literals": True}):
                match_both(program, pattern, **options)
