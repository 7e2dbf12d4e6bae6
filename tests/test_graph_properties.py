"""Property tests on random graphs built from a small op vocabulary over small tensors.

For every drawn program: the GraphModule's generated code agrees with a direct node-by-node evaluation
(a tiny evaluator written here), the graph lints after random edit sequences, building the same program
twice prints and generates the same text, and pickle/deepcopy round trips keep code and outputs.
"""

from __future__ import annotations

import copy
import operator
import pickle
from typing import Any, Callable, Dict, List, Tuple

import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fxkit
from fxkit.node import map_arg

PROPERTY_SETTINGS = settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# (kind, target, arity): kind is the node op, arity the number of node operands
VOCABULARY: List[Tuple[str, Any, int]] = [
    ("call_function", torch.relu, 1),
    ("call_function", torch.sin, 1),
    ("call_function", torch.tanh, 1),
    ("call_function", operator.neg, 1),
    ("call_method", "abs", 1),
    ("call_module", "lin", 1),
    ("call_function", operator.add, 2),
    ("call_function", operator.sub, 2),
    ("call_function", operator.mul, 2),
    ("call_function", torch.maximum, 2),
    ("call_method", "add", 2),
    ("add_alpha", torch.add, 2),
    ("add_const", operator.add, 1),
    ("weight", operator.mul, 1),
    ("chunk", torch.chunk, 1),
    ("stack_sum", torch.stack, 2),
]

UNARY_INSERTS = [torch.relu, torch.sin, torch.neg, torch.cos]


def make_root() -> torch.nn.Module:
    torch.manual_seed(0)
    root = torch.nn.Module()
    root.lin = torch.nn.Linear(4, 4)
    root.scale = torch.nn.Parameter(torch.randn(4))
    return root


ROOT = make_root()

program_steps = st.lists(
    st.tuples(st.integers(0, len(VOCABULARY) - 1), st.integers(0, 1000), st.integers(0, 1000)),
    min_size=1,
    max_size=12,
)
programs = st.tuples(st.integers(1, 3), program_steps, st.lists(st.integers(0, 1000), min_size=1, max_size=3))


def build(program: Tuple[int, List[Tuple[int, int, int]], List[int]]) -> fxkit.Graph:
    """Turn a drawn program into a graph; operand indices pick among the values defined so far."""
    num_inputs, steps, outputs = program
    g = fxkit.Graph()
    values: List[fxkit.Node] = [g.placeholder(f"in{i}") for i in range(num_inputs)]
    for placeholder in values:
        placeholder.meta["vector"] = True
    for op_index, first, second in steps:
        kind, target, arity = VOCABULARY[op_index]
        a, b = values[first % len(values)], values[second % len(values)]
        if kind in ("call_function", "call_method"):
            node = g.create_node(kind, target, (a, b)[:arity])
        elif kind == "call_module":
            node = g.call_module(target, (a,))
        elif kind == "add_alpha":
            node = g.call_function(target, (a, b), {"alpha": 0.5})
        elif kind == "add_const":
            node = g.call_function(target, (a, 1.25))
        elif kind == "weight":
            node = g.call_function(target, (a, g.get_attr("scale")))
        elif kind == "chunk":
            pieces = g.call_function(target, (a, 2))
            node = g.call_function(
                torch.cat,
                (
                    [
                        g.call_function(operator.getitem, (pieces, 1)),
                        g.call_function(operator.getitem, (pieces, 0)),
                    ],
                ),
            )
        else:  # stack_sum
            node = g.call_method("sum", (g.call_function(target, ([a, b],)),), {"dim": 0})
        node.meta["vector"] = True  # a tensor of shape (4,): any other vector may stand in for it
        values.append(node)
    g.output(tuple(values[index % len(values)] for index in outputs))
    return g


def evaluate(graph: fxkit.Graph, root: torch.nn.Module, inputs: List[torch.Tensor]) -> Any:
    """Run the graph node by node, without generated code."""
    env: Dict[fxkit.Node, Any] = {}
    remaining = iter(inputs)
    for node in graph.nodes:
        args = map_arg(node.args, lambda n: env[n])
        kwargs = map_arg(node.kwargs, lambda n: env[n])
        if node.op == "placeholder":
            env[node] = next(remaining)
        elif node.op == "get_attr":
            value: Any = root
            for atom in node.target.split("."):
                value = getattr(value, atom)
            env[node] = value
        elif node.op == "call_function":
            env[node] = node.target(*args, **kwargs)
        elif node.op == "call_method":
            env[node] = getattr(args[0], node.target)(*args[1:], **kwargs)
        elif node.op == "call_module":
            env[node] = root.get_submodule(node.target)(*args, **kwargs)
        else:
            return args[0]
    raise AssertionError("graph without output")


def make_inputs(graph: fxkit.Graph) -> List[torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    count = sum(1 for node in graph.nodes if node.op == "placeholder")
    return [torch.randn(4, generator=generator) for _ in range(count)]


def assert_same(got: Any, expected: Any) -> None:
    torch.testing.assert_close(got, expected, equal_nan=True)


def check_runs_like_evaluator(graph: fxkit.Graph) -> fxkit.GraphModule:
    module = fxkit.GraphModule(ROOT, graph)
    inputs = make_inputs(graph)
    with torch.no_grad():
        assert_same(module(*inputs), evaluate(module.graph, ROOT, inputs))
    return module


def assert_users_exact(graph: fxkit.Graph) -> None:
    readers: Dict[fxkit.Node, List[fxkit.Node]] = {node: [] for node in graph.nodes}
    for node in graph.nodes:
        found: List[fxkit.Node] = []
        map_arg((node.args, node.kwargs), found.append)
        for used in dict.fromkeys(found):
            readers[used].append(node)
    for node in graph.nodes:
        assert set(node.users) == set(readers[node]), node.name


# ---------------------------------------------------------------------------------------------
# Random edits that keep the graph valid
# ---------------------------------------------------------------------------------------------


def _body(graph: fxkit.Graph) -> List[fxkit.Node]:
    return [node for node in graph.nodes if node.op not in ("placeholder", "output")]


def _vectors(graph: fxkit.Graph) -> List[fxkit.Node]:
    return [node for node in graph.nodes if node.meta.get("vector")]


def edit_insert(graph: fxkit.Graph, pick: int, choice: int) -> None:
    candidates = _vectors(graph)
    anchor = candidates[pick % len(candidates)]
    with graph.inserting_after(anchor):
        fresh = graph.call_function(UNARY_INSERTS[choice % len(UNARY_INSERTS)], (anchor,))
    fresh.meta["vector"] = True
    if choice % 2:
        anchor.replace_all_uses_with(fresh, delete_user_cb=lambda user: user is not fresh)


def edit_erase_unused(graph: fxkit.Graph, pick: int, choice: int) -> None:
    unused = [node for node in _body(graph) if not node.users]
    if unused:
        graph.erase_node(unused[pick % len(unused)])


def edit_replace_uses(graph: fxkit.Graph, pick: int, choice: int) -> None:
    order = _vectors(graph)
    if len(order) < 2:
        return
    later = order[1:][pick % (len(order) - 1)]
    position = order.index(later)
    earlier = order[choice % position]
    later.replace_all_uses_with(earlier)


def edit_move(graph: fxkit.Graph, pick: int, choice: int) -> None:
    """Move a node anywhere between its last input and its first user."""
    body = _body(graph)
    if not body:
        return
    order = list(graph.nodes)
    node = body[pick % len(body)]
    position = {n: i for i, n in enumerate(order)}
    low = max([position[used] for used in node.all_input_nodes], default=-1)
    low = max(low, max(i for i, n in enumerate(order) if n.op == "placeholder"))
    high = min([position[user] for user in node.users], default=len(order) - 1)
    slots = [order[i] for i in range(low + 1, high + 1) if order[i] is not node]
    if slots:
        slots[choice % len(slots)].prepend(node)


def edit_dead_code(graph: fxkit.Graph, pick: int, choice: int) -> None:
    graph.eliminate_dead_code()


EDITS: List[Callable[[fxkit.Graph, int, int], None]] = [
    edit_insert,
    edit_erase_unused,
    edit_replace_uses,
    edit_move,
    edit_dead_code,
]

edit_sequences = st.lists(
    st.tuples(st.integers(0, len(EDITS) - 1), st.integers(0, 1000), st.integers(0, 1000)), max_size=10
)


# ---------------------------------------------------------------------------------------------
# Properties
# ---------------------------------------------------------------------------------------------


@PROPERTY_SETTINGS
@given(programs)
def test_generated_code_agrees_with_direct_evaluation(program: Any) -> None:
    graph = build(program)
    graph.lint()
    check_runs_like_evaluator(graph)


@PROPERTY_SETTINGS
@given(programs, edit_sequences)
def test_lint_passes_after_random_edits(program: Any, edits: List[Tuple[int, int, int]]) -> None:
    graph = build(program)
    for edit_index, pick, choice in edits:
        EDITS[edit_index](graph, pick, choice)
        graph.lint()
        assert_users_exact(graph)
    assert len(graph.nodes) == len(list(graph.nodes))
    names = [node.name for node in graph.nodes]
    assert len(set(names)) == len(names)
    check_runs_like_evaluator(graph)


@PROPERTY_SETTINGS
@given(programs)
def test_same_program_prints_and_generates_the_same_text(program: Any) -> None:
    first, second = build(program), build(program)
    assert str(first) == str(second)
    assert first.python_code("self").src == second.python_code("self").src
    assert fxkit.GraphModule(ROOT, first).code == fxkit.GraphModule(ROOT, second).code


@settings(PROPERTY_SETTINGS, max_examples=30)
@given(programs, edit_sequences)
def test_pickle_and_deepcopy_keep_code_and_outputs(program: Any, edits: List[Tuple[int, int, int]]) -> None:
    graph = build(program)
    for edit_index, pick, choice in edits:
        EDITS[edit_index](graph, pick, choice)
    module = fxkit.GraphModule(ROOT, graph)
    inputs = make_inputs(graph)
    with torch.no_grad():
        expected = module(*inputs)
        for clone in (pickle.loads(pickle.dumps(module)), copy.deepcopy(module)):
            assert clone.code == module.code
            assert str(clone.graph) == str(module.graph)
            clone.graph.lint()
            assert_same(clone(*inputs), expected)
