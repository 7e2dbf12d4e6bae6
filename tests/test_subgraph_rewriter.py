"""fxkit.subgraph_rewriter against torch.fx's: same matches, same rewritten code, same outputs."""

import copy
import operator
import random
from typing import Any, Callable, Dict, List, Tuple

import pytest
import torch
import torch.fx
from torch.fx import subgraph_rewriter as torch_rewriter

import fxkit
from fxkit import subgraph_rewriter as fxkit_rewriter
from fxkit.graph_module import GraphModule
from fxkit.passes.utils import matcher_utils


@pytest.fixture(autouse=True, params=["plain", "fast"])
def engine(request):
    """Every test runs with the plain matcher and rewriter, and with their fast paths."""
    fast = request.param == "fast"
    with matcher_utils.use_fast_path(fast), fxkit_rewriter.use_fast_path(fast):
        yield request.param


class PerLibrary:
    """A pattern or replacement that has to be built with each library's own classes."""

    def __init__(self, build: Callable[[Any], Any]) -> None:
        self.build = build


def _resolve(value: Any, library: Any) -> Any:
    return value.build(library) if isinstance(value, PerLibrary) else value


def _names(value: Any) -> Any:
    """Nodes replaced by their names, so that results of the two libraries can be compared."""
    if isinstance(value, (torch.fx.Node, fxkit.Node)):
        return value.name
    if isinstance(value, (list, tuple)):
        return type(value)(_names(v) for v in value)
    return value


def _summary(results: List[Any]) -> List[Tuple[Any, ...]]:
    summary = []
    for result in results:
        pairs = [(pn.name, _names(gn)) for pn, gn in result.nodes_map.items()]
        replacements = _names(getattr(result, "replacements", None))
        summary.append((result.anchor.name, pairs, replacements))
    return summary


def rewrite_both(
    model: Any, pattern: Any, replacement: Any, inputs: Tuple[torch.Tensor, ...] = (), **options: Any
) -> Tuple[List[Any], GraphModule, torch.fx.GraphModule]:
    """Trace ``model`` with both libraries, rewrite both the same way, check they agree."""
    expected_gm = torch.fx.symbolic_trace(
        copy.deepcopy(model) if isinstance(model, torch.nn.Module) else model
    )
    actual_gm = fxkit.symbolic_trace(copy.deepcopy(model) if isinstance(model, torch.nn.Module) else model)
    assert actual_gm.code == expected_gm.code, "the tracers disagree before rewriting"
    try:
        expected = torch_rewriter.replace_pattern_with_filters(
            expected_gm, _resolve(pattern, torch.fx), _resolve(replacement, torch.fx), **options
        )
    except Exception as torch_error:
        # e.g. an anchor without candidates leaves a placeholder unbound: both raise the same type
        with pytest.raises(type(torch_error)):
            fxkit_rewriter.replace_pattern_with_filters(
                actual_gm, _resolve(pattern, fxkit), _resolve(replacement, fxkit), **options
            )
        return [], actual_gm, expected_gm
    actual = fxkit_rewriter.replace_pattern_with_filters(
        actual_gm, _resolve(pattern, fxkit), _resolve(replacement, fxkit), **options
    )
    assert _summary(actual) == _summary(expected)
    actual_gm.graph.lint()
    try:
        expected_gm.graph.lint()
    except RuntimeError:
        # torch.fx put a replacement before one of its inputs; fxkit moves it after that input.
        if inputs:
            actual_gm(*inputs)
        return actual, actual_gm, expected_gm
    assert actual_gm.code == expected_gm.code
    if inputs:
        torch.testing.assert_close(actual_gm(*inputs), expected_gm(*inputs))
    return actual, actual_gm, expected_gm


X = torch.randn(3, 4)
Y = torch.randn(3, 4)


def chain_of_relus(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    return torch.relu(torch.relu(torch.relu(x))) + w


def test_spec_basic_usage() -> None:
    class M(torch.nn.Module):
        def forward(self, x: torch.Tensor, w1: torch.Tensor, w2: torch.Tensor) -> torch.Tensor:
            m1 = torch.cat([w1, w2]).sum()
            m2 = torch.cat([w1, w2]).sum()
            return x + torch.max(m1) + torch.max(m2)

    def pattern(w1: torch.Tensor, w2: torch.Tensor) -> torch.Tensor:
        return torch.cat([w1, w2]).sum()

    def replacement(w1: torch.Tensor, w2: torch.Tensor) -> torch.Tensor:
        return torch.stack([w1, w2])

    results, gm, _ = rewrite_both(M(), pattern, replacement, (X, X, Y))
    assert len(results) == 2


def test_replace_pattern_returns_matches_like_torch_fx() -> None:
    expected_gm = torch.fx.symbolic_trace(chain_of_relus)
    actual_gm = fxkit.symbolic_trace(chain_of_relus)
    pattern = lambda x: torch.relu(torch.relu(x))  # noqa: E731
    replacement = lambda x: torch.sigmoid(x)  # noqa: E731
    expected = torch.fx.replace_pattern(expected_gm, pattern, replacement)
    actual = fxkit.replace_pattern(actual_gm, pattern, replacement)
    assert all(isinstance(m, fxkit_rewriter.Match) for m in actual)
    assert _summary(actual) == _summary(expected)
    assert actual_gm.code == expected_gm.code


def test_overlapping_candidates_keep_the_first() -> None:
    rewrite_both(
        lambda x: x.relu().relu().relu().relu().relu(), lambda x: x.relu().relu(), lambda x: x.sigmoid(), (X,)
    )


def test_no_match_leaves_graph_unchanged() -> None:
    results, gm, _ = rewrite_both(chain_of_relus, lambda x: torch.sigmoid(x), lambda x: torch.tanh(x), (X, Y))
    assert results == []


def test_pattern_equal_to_the_whole_graph() -> None:
    def model(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return (x + y).relu() * 2

    rewrite_both(model, model, lambda x, y: x - y, (X, Y))


def test_unused_pattern_placeholder_raises_key_error_like_torch_fx() -> None:
    def pattern(x: torch.Tensor, unused: torch.Tensor) -> torch.Tensor:
        return torch.relu(x)

    with pytest.raises(KeyError):
        torch_rewriter.replace_pattern(torch.fx.symbolic_trace(chain_of_relus), pattern, lambda x, u: x)
    with pytest.raises(KeyError, match="'unused' is not used"):
        fxkit_rewriter.replace_pattern(fxkit.symbolic_trace(chain_of_relus), pattern, lambda x, u: x)


def test_commutative_op_written_the_other_way_round_does_not_match() -> None:
    def model(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return torch.add(x, y.relu())

    results, _, _ = rewrite_both(model, lambda a, b: torch.add(a.relu(), b), lambda a, b: a * b, (X, Y))
    assert results == []


def test_argument_order_of_placeholders_is_respected() -> None:
    def model(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return torch.add(x, y).relu() + torch.add(y, x)

    rewrite_both(model, lambda a, b: torch.add(b, a), lambda a, b: torch.sub(a, b), (X, Y))


def test_inner_value_used_outside_rejects_the_match() -> None:
    def model(x: torch.Tensor, y: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        total = x + y
        return total.relu(), total

    results, _, _ = rewrite_both(model, lambda a, b: (a + b).relu(), lambda a, b: a - b, (X, Y))
    assert results == []


def test_multiple_outputs() -> None:
    def model(x: torch.Tensor, y: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        a, b, c, d = x.relu(), y.relu(), x.sigmoid(), y.sigmoid()
        return a + c, b * d

    results, _, _ = rewrite_both(
        model, lambda x: (x.relu(), x.sigmoid()), lambda x: (x.tanh(), x.neg()), (X, Y)
    )
    assert len(results) == 2


def test_multiple_outputs_with_two_inputs() -> None:
    def model(x: torch.Tensor, y: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return x.relu() + y.sigmoid(), y.relu() * x.sigmoid(), x.relu()

    rewrite_both(model, lambda a, b: (a.relu(), b.sigmoid()), lambda a, b: (a.neg(), b.tanh()), (X, Y))


def test_literals_and_ignore_literals() -> None:
    def model(x: torch.Tensor) -> torch.Tensor:
        return (x + 1) * (x + 2) + (x + 1.0)

    rewrite_both(model, lambda x: x + 1, lambda x: x - 1, (X,))
    rewrite_both(model, lambda x: x + 1, lambda x: x - 1, (X,), ignore_literals=True)


def test_placeholder_matches_a_literal_and_a_list() -> None:
    rewrite_both(lambda x: (x + 1) * (x + 2), lambda x, y: x + y, lambda x, y: x - y, (X,))
    rewrite_both(
        lambda x, y: torch.cat([x.relu(), y], 1),
        lambda a, b: torch.cat(a, b),
        lambda a, b: torch.stack(a, b),
        (X, Y),
    )


def test_kwargs_must_be_spelled_the_same() -> None:
    def model(x: torch.Tensor) -> torch.Tensor:
        return torch.sum(x, dim=1) + torch.sum(x, 1) + torch.sum(x, dim=1, keepdim=True)

    results, _, _ = rewrite_both(model, lambda x: torch.sum(x, dim=1), lambda x: torch.mean(x, dim=1), (X,))
    assert len(results) == 1


def test_replacement_that_returns_its_input() -> None:
    rewrite_both(chain_of_relus, lambda x: torch.relu(torch.relu(x)), lambda x: x, (X, Y))


class TwoLinears(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = torch.nn.Linear(4, 4)
        self.lin2 = torch.nn.Linear(4, 4)
        self.w = torch.nn.Parameter(torch.ones(4))
        self.register_buffer("b", torch.zeros(4))
        self.unused = torch.nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lin2(self.lin(x).relu() + self.w) + self.b


class LinearRelu(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = torch.nn.Linear(4, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lin(x).relu()


class NewAttributes(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = torch.nn.Linear(4, 4)
        self.newmod = torch.nn.Linear(4, 4)
        self.newp = torch.nn.Parameter(torch.full((4,), 2.0))
        self.register_buffer("nb", torch.ones(4))
        self.sub = torch.nn.Module()
        self.sub.q = torch.nn.Linear(4, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.sub.q(self.newmod(self.lin(x))) * self.newp + self.nb


@pytest.mark.parametrize("as_graph_module", [False, True])
def test_call_module_pattern_and_replacement_with_new_attributes(as_graph_module: bool) -> None:
    torch.manual_seed(0)
    pattern, replacement = LinearRelu(), NewAttributes()
    if as_graph_module:
        pattern_arg: Any = PerLibrary(lambda lib: lib.symbolic_trace(pattern))
        replacement_arg: Any = PerLibrary(lambda lib: lib.symbolic_trace(replacement))
    else:
        pattern_arg, replacement_arg = pattern, replacement
    _, gm, expected_gm = rewrite_both(TwoLinears(), pattern_arg, replacement_arg, (X,))
    assert [n for n, _ in gm.named_children()] == [n for n, _ in expected_gm.named_children()]
    assert dict(gm.named_parameters()).keys() == dict(expected_gm.named_parameters()).keys()
    assert isinstance(gm.newp, torch.nn.Parameter) and gm.newp is not replacement.newp
    assert torch.equal(gm.nb, replacement.nb) and gm.newmod is not replacement.newmod
    assert not hasattr(gm, "unused")  # unused submodules are dropped, as torch.fx does


def test_get_attr_pattern_matches_any_tensor_of_the_same_type() -> None:
    class ParamAdd(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.anything = torch.nn.Parameter(torch.ones(4))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x + self.anything

    class BufferAdd(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.register_buffer("anything", torch.ones(4))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x + self.anything

    rewrite_both(TwoLinears(), ParamAdd(), lambda x: x - 1, (X,))
    rewrite_both(TwoLinears(), BufferAdd(), lambda x: x - 1, (X,))


def test_function_replacement_with_a_tensor_constant_is_runnable() -> None:
    constant = torch.full((4,), 3.0)
    gm = fxkit.symbolic_trace(chain_of_relus)
    fxkit.replace_pattern(gm, lambda x: torch.relu(x), lambda x: x + constant)
    gm.graph.lint()  # torch.fx forgets to copy the constant here; fxkit copies it
    torch.testing.assert_close(gm(X, Y), X + 3 * constant + Y)


def test_graph_pattern_and_replacement() -> None:
    def graph_of(fn: Callable[..., Any]) -> PerLibrary:
        return PerLibrary(lambda lib: lib.symbolic_trace(fn).graph)

    rewrite_both(chain_of_relus, graph_of(lambda x: torch.relu(x)), graph_of(lambda x: torch.tanh(x)), (X, Y))


def test_match_filters_and_replacement_callback() -> None:
    def not_the_middle_one(match: Any, original_graph: Any, pattern_graph: Any) -> bool:
        return match.nodes_map[match.anchors[0]].name != "relu_1"

    rewrite_both(
        chain_of_relus, lambda x: torch.relu(x), lambda x: x.neg(), (X, Y), match_filters=[not_the_middle_one]
    )

    def build_replacement(match: Any, original_graph: Any, pattern_graph: Any) -> Any:
        library = fxkit if isinstance(original_graph, fxkit.Graph) else torch.fx
        return library.symbolic_trace(lambda x: x.tanh()).graph

    rewrite_both(
        chain_of_relus, lambda x: torch.relu(x), None, (X, Y), replacement_callback=build_replacement
    )


def test_node_name_match_makes_named_nodes_anchor_candidates() -> None:
    rewrite_both(
        chain_of_relus, lambda x: torch.sigmoid(x), lambda x: x.neg(), (X, Y), node_name_match="relu_1"
    )


def test_errors() -> None:
    gm = fxkit.symbolic_trace(chain_of_relus)
    with pytest.raises(AssertionError, match="Placeholder count mismatch"):
        fxkit_rewriter.replace_pattern(gm, lambda x: torch.relu(x), lambda x, y: x)
    with pytest.raises(AssertionError, match="replacement callback"):
        fxkit_rewriter.replace_pattern_with_filters(gm, lambda x: torch.relu(x))

    def dead_code(x: torch.Tensor) -> torch.Tensor:
        x.sigmoid()
        return x.relu()

    with pytest.raises(AssertionError, match="dead code"):
        fxkit_rewriter.replace_pattern(gm, dead_code, lambda x: x)


def test_transformer_from_the_zoo() -> None:
    from fxkit import zoo

    def scores(q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        return torch.matmul(q, k.transpose(-2, -1))

    def scores_replacement(q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        return torch.matmul(q, torch.transpose(k, -2, -1))

    results, _, _ = rewrite_both(
        zoo.get_model("transformer"), scores, scores_replacement, zoo.example_inputs("transformer")
    )
    assert len(results) == 2


def test_result_is_deterministic() -> None:
    codes = set()
    for _ in range(3):
        gm = fxkit.symbolic_trace(lambda x: x.relu().relu().relu().relu())
        fxkit.replace_pattern(gm, lambda x: x.relu().relu(), lambda x: x.neg())
        codes.add(gm.code)
    assert len(codes) == 1


# ---------------------------------------------------------------------------------------------
# random programs: the strongest check that matching and rewriting agree with torch.fx


_UNARY = ("torch.relu({a})", "torch.sigmoid({a})", "torch.neg({a})", "{a} + 1")
_BINARY = ("torch.add({a}, {b})", "{a} * {b}")


def random_program(rng: random.Random, size: int) -> Callable[..., Any]:
    values = ["x", "y"]
    lines = ["def program(x, y):"]
    for index in range(size):
        recent = values[-4:]
        a, b = rng.choice(recent), rng.choice(values if rng.random() < 0.3 else recent)
        template = rng.choice(_UNARY + _BINARY)
        lines.append(f"    v{index} = " + template.format(a=a, b=b))
        values.append(f"v{index}")
    returned = sorted(set(rng.sample(values[2:], k=min(3, size))), key=values.index)
    lines.append(f"    return ({', '.join(returned)},)")
    namespace: Dict[str, Any] = {"torch": torch}
    exec("\n".join(lines), namespace)
    return namespace["program"]


RANDOM_PATTERNS: List[Tuple[str, Callable[..., Any], Callable[..., Any]]] = [
    ("relu-add", lambda a, b: torch.relu(torch.add(a, b)), lambda a, b: torch.clamp(a + b, min=0.0)),
    ("neg-neg", lambda a: torch.neg(torch.neg(a)), lambda a: a),
    ("mul-shared", lambda a: a * a, lambda a: torch.square(a)),
    ("two-outputs", lambda a: (torch.relu(a), torch.sigmoid(a)), lambda a: (a.clamp(min=0), a.neg())),
    ("two-inputs-two-outputs", lambda a, b: (torch.neg(a), torch.relu(b)), lambda a, b: (a * -1, b.abs())),
    ("literal", lambda a: torch.sigmoid(a + 1), lambda a: torch.tanh(a)),
    ("diamond", lambda a: torch.add(torch.relu(a), torch.sigmoid(a)), lambda a: a * 2),
]


@pytest.mark.parametrize("seed", range(3))
def test_random_programs_agree_with_torch_fx(seed: int, engine: str) -> None:
    # Each engine gets programs of its own (six in all), keeping the test's time what it was.
    rng = random.Random(seed + (3 if engine == "fast" else 0))
    for _ in range(3):
        program = random_program(rng, rng.randint(4, 18))
        for _, pattern, replacement in RANDOM_PATTERNS:
            rewrite_both(program, pattern, replacement, (X, Y))
            rewrite_both(program, pattern, replacement, (X, Y), ignore_literals=True)


def test_many_repeated_blocks_agree_with_torch_fx() -> None:
    def blocks(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        for _ in range(60):
            x = operator.mul(torch.relu(torch.add(x, w)), 0.5)
        return x

    results, _, _ = rewrite_both(
        blocks,
        lambda x, w: torch.relu(torch.add(x, w)),
        lambda x, w: torch.clamp(torch.add(x, w), min=0.0),
        (X, Y),
    )
    assert len(results) == 60


def test_replacement_input_defined_after_the_insertion_point_is_moved_after_it() -> None:
    def model(x, y):
        rectified = torch.relu(x)
        shifted = rectified + 1
        late = torch.sigmoid(y)
        return shifted, torch.neg(late)

    def pattern(a, b):
        return torch.neg(a), torch.relu(b)

    def replacement(a, b):
        return a * -1, b.abs()

    expected_gm = torch.fx.symbolic_trace(model)
    torch.fx.replace_pattern(expected_gm, pattern, replacement)
    with pytest.raises(RuntimeError, match="used before it has been defined"):
        expected_gm.graph.lint()  # torch.fx's result is out of order
    results, gm, _ = rewrite_both(model, pattern, replacement, (X, Y))
    assert len(results) == 1
    torch.testing.assert_close(gm(X, Y), (X.abs() + 1, torch.sigmoid(Y) * -1))


def test_garbage_collector_state_is_restored_even_on_error() -> None:
    import gc

    def failing_filter(match: Any, original_graph: Any, pattern_graph: Any) -> bool:
        raise ValueError("filter failed")

    assert gc.isenabled()
    gm = fxkit.symbolic_trace(chain_of_relus)
    fxkit.replace_pattern(gm, lambda x: torch.relu(x), lambda x: torch.tanh(x))
    assert gc.isenabled()
    with pytest.raises(ValueError, match="filter failed"):
        fxkit_rewriter.replace_pattern_with_filters(
            gm, lambda x: torch.tanh(x), lambda x: x, match_filters=[failing_filter]
        )
    assert gc.isenabled()
    gc.disable()
    try:
        fxkit.replace_pattern(gm, lambda x: torch.tanh(x), lambda x: torch.relu(x))
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_replacement_whose_kwargs_are_all_nodes() -> None:
    def model(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        return torch.relu(x * w) + torch.relu(w * x)

    def pattern(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        return torch.relu(x * w)

    def replacement(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        return torch.clamp(torch.add(input=x, other=w), min=0.0)

    results, _, _ = rewrite_both(model, pattern, replacement, (X, Y))
    assert len(results) == 2
