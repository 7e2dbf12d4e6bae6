"""Interpreter and Transformer against torch.fx (the oracle) and eager execution."""

from __future__ import annotations

import copy
import operator
import weakref

import pytest
import torch
import torch.fx

import fxkit as fx
from fxkit import _interpreter_fast, zoo
from fxkit.interpreter import Interpreter, Transformer, use_fast_path


@pytest.fixture(autouse=True, params=["plain", "fast", "fast-compiled"])
def engine(request, monkeypatch):
    """Every test runs on the plain loop (the definition), on the fast path's first-run loop, and
    on its compiled per-node runners (normally used from an interpreter's second run on)."""
    if request.param == "plain":
        with use_fast_path(False):
            yield request.param
        return
    if request.param == "fast-compiled":
        monkeypatch.setattr(_interpreter_fast, "COMPILE_AFTER_RUNS", 0)
    yield request.param


def _pair(fn_or_module):
    """The same program traced by fxkit and by torch.fx."""
    return fx.symbolic_trace(fn_or_module), torch.fx.symbolic_trace(fn_or_module)


@pytest.mark.parametrize("name", ["mlp", "resnet", "transformer"])
def test_run_matches_eager_and_torch_fx(name: str) -> None:
    model = zoo.get_model(name).eval()
    inputs = zoo.example_inputs(name)
    ours, theirs = _pair(model)
    with torch.no_grad():
        expected = model(*inputs)
        got = Interpreter(ours).run(*inputs)
        oracle = torch.fx.Interpreter(theirs).run(*inputs)
    torch.testing.assert_close(got, expected)
    torch.testing.assert_close(got, oracle)


def _many_argument_shapes(x: torch.Tensor, y: torch.Tensor) -> tuple:
    parts = torch.cat([x, y * 2], dim=0)
    sliced = parts[1:3, ::2]
    stacked = torch.stack((x, y)).sum(dim=(0, 1), keepdim=True)
    viewed = sliced.reshape([-1]).view(-1, 1)
    clipped = torch.clamp(viewed, min=-0.5, max=0.5)
    pair = torch.max(x, dim=1)
    return {"clipped": clipped, "stacked": stacked}, [pair[0], pair.indices], x.shape[0] + 1


def test_argument_shapes_kwargs_containers_and_getitem() -> None:
    x, y = torch.randn(4, 6), torch.randn(4, 6)
    ours, theirs = _pair(_many_argument_shapes)
    expected = _many_argument_shapes(x, y)
    got = Interpreter(ours).run(x, y)
    torch.testing.assert_close(got, expected)
    torch.testing.assert_close(torch.fx.Interpreter(theirs).run(x, y), got)


def test_last_uses_match_torch_fx_and_env_is_emptied() -> None:
    model = zoo.get_model("transformer")
    ours, theirs = _pair(model)
    interp = Interpreter(ours)
    oracle = torch.fx.Interpreter(theirs)
    by_name = {
        user.name: [used.name for used in used_list] for user, used_list in interp.user_to_last_uses.items()
    }
    oracle_by_name = {
        user.name: [used.name for used in used_list] for user, used_list in oracle.user_to_last_uses.items()
    }
    assert by_name == oracle_by_name
    assert list(by_name) == list(oracle_by_name)  # readers listed from the last one back
    interp.run(*zoo.example_inputs("transformer"))
    assert [node.op for node in interp.env] == ["output"]


def test_values_are_freed_after_last_use() -> None:
    def chain(x):
        for _ in range(20):
            x = torch.relu(x) + 1
        return x

    traced = fx.symbolic_trace(chain)
    alive_counts = []

    class Watching(Interpreter):
        def call_function(self, target, args, kwargs):
            alive_counts.append(len(self.env))
            return super().call_function(target, args, kwargs)

    result = Watching(traced).run(torch.randn(3))
    torch.testing.assert_close(result, chain(torch.randn(3)) * 0 + result)
    assert max(alive_counts) <= 2


def test_input_tensor_can_be_freed_by_boxed_run() -> None:
    traced = fx.symbolic_trace(lambda x: torch.relu(x) * 2)
    big = torch.randn(10)
    watcher = weakref.ref(big)
    seen_alive = []

    class Probe(Interpreter):
        def call_method(self, target, args, kwargs):
            seen_alive.append(watcher() is not None)
            return super().call_method(target, args, kwargs)

        def call_function(self, target, args, kwargs):
            if target is operator.mul:
                seen_alive.append(watcher() is not None)
            return super().call_function(target, args, kwargs)

    args = [big]
    del big
    Probe(traced).boxed_run(args)
    assert args == []
    assert seen_alive == [False]


def test_garbage_collect_values_false_keeps_everything() -> None:
    traced = fx.symbolic_trace(lambda x: torch.relu(x) * 2)
    interp = Interpreter(traced, garbage_collect_values=False)
    interp.run(torch.randn(3))
    assert [node.name for node in interp.env] == [node.name for node in traced.graph.nodes]


def test_call_function_override_matches_torch_fx() -> None:
    def fn(x):
        return torch.sigmoid(x).neg()

    class NegSigmSwap:
        def call_function(self, target, args, kwargs):
            if target is torch.sigmoid:
                return torch.neg(*args, **kwargs)
            return super().call_function(target, args, kwargs)

        def call_method(self, target, args, kwargs):
            if target == "neg":
                call_self, *rest = args
                return call_self.sigmoid(*rest, **kwargs)
            return super().call_method(target, args, kwargs)

    ours_cls = type("Ours", (NegSigmSwap, Interpreter), {})
    theirs_cls = type("Theirs", (NegSigmSwap, torch.fx.Interpreter), {})
    ours, theirs = _pair(fn)
    x = torch.randn(5)
    torch.testing.assert_close(ours_cls(ours).run(x), theirs_cls(theirs).run(x))
    torch.testing.assert_close(ours_cls(ours).run(x), torch.neg(x).sigmoid())


def test_run_node_override_is_called_for_every_node() -> None:
    traced = fx.symbolic_trace(zoo.get_model("mlp"))
    visited = []

    class Recording(Interpreter):
        def run_node(self, n):
            visited.append(n.name)
            return super().run_node(n)

    inputs = zoo.example_inputs("mlp")
    torch.testing.assert_close(Recording(traced).run(*inputs), traced(*inputs))
    assert visited == [node.name for node in traced.graph.nodes]


def test_placeholder_defaults_varargs_and_initial_env() -> None:
    def fn(x, y=3, *args):
        return x + y, args

    ours, theirs = _pair(fn)
    one = torch.ones(1)
    for call_args in [(one,), (one, 2, 5, 6)]:
        assert str(Interpreter(ours).run(*call_args)) == str(torch.fx.Interpreter(theirs).run(*call_args))
    x_node = next(iter(ours.graph.nodes))
    result = Interpreter(ours).run(initial_env={x_node: torch.full((1,), 5.0)})
    torch.testing.assert_close(result[0], torch.full((1,), 8.0))


def _error_of(callable_, *args):
    with pytest.raises(Exception) as info:
        callable_(*args)
    return info.value


def test_error_in_node_keeps_type_and_names_node_and_generated_line() -> None:
    class M(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(3, 4)

        def forward(self, x, y):
            return torch.mm(self.lin(x + 1), y)

    ours, theirs = _pair(M())
    bad = (torch.randn(2, 3), torch.randn(5, 2))
    error = _error_of(Interpreter(ours).run, *bad)
    oracle_error = _error_of(torch.fx.Interpreter(theirs).run, *bad)
    assert type(error) is type(oracle_error)
    assert str(error).startswith(str(oracle_error).split("\n")[0])
    notes = "\n".join(error.__notes__)
    assert "%mm" in notes and "call_function" in notes
    line = next(text for text in ours.code.splitlines() if text.strip().startswith("mm = "))
    assert line.strip() in notes


def test_missing_and_extra_arguments() -> None:
    ours, theirs = _pair(lambda x, y: x + y)
    error = _error_of(Interpreter(ours).run, torch.ones(1))
    oracle_error = _error_of(torch.fx.Interpreter(theirs).run, torch.ones(1))
    assert type(error) is type(oracle_error) is RuntimeError
    assert str(error) == str(oracle_error).split("\n")[0]
    assert "placeholder" in "\n".join(error.__notes__)
    extra = _error_of(Interpreter(ours).run, 1, 2, 3)
    assert isinstance(extra, TypeError) and "(x, y)" in str(extra) and "received 3" in str(extra)


def test_boxed_run_argument_count_errors_match_torch_fx() -> None:
    ours, theirs = _pair(lambda x: x * 2)
    for args in ([], [1, 2]):
        error = _error_of(Interpreter(ours).boxed_run, list(args))
        oracle_error = _error_of(torch.fx.Interpreter(theirs).boxed_run, list(args))
        assert type(error) is type(oracle_error)
        assert str(error) == str(oracle_error)


def test_missing_attribute_error_matches_torch_fx() -> None:
    class M(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(2, 2)

        def forward(self, x):
            return x + self.lin.weight

    ours, theirs = _pair(M())
    del ours.lin.weight
    del theirs.lin.weight
    error = _error_of(Interpreter(ours).run, torch.ones(2, 2))
    oracle_error = _error_of(torch.fx.Interpreter(theirs).run, torch.ones(2, 2))
    assert type(error) is type(oracle_error)
    assert str(error) == str(oracle_error).split("\n")[0]


def test_key_error_from_target_stays_key_error() -> None:
    graph = fx.Graph()
    x = graph.placeholder("x")
    graph.output(graph.call_function(operator.getitem, (x, "k")))
    module = fx.GraphModule(torch.nn.Module(), graph)
    error = _error_of(Interpreter(module).run, {})
    assert isinstance(error, KeyError)
    assert "%getitem" in "\n".join(error.__notes__)


def test_transformer_identity_and_rewrite_match_torch_fx() -> None:
    class M(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(3, 4)
            self.scale = torch.nn.Parameter(torch.full((4,), 2.0))

        def forward(self, x):
            return (torch.relu(self.lin(x)) * self.scale).sum(dim=-1)

    def rewrite(base):
        class ReluToSigmoid(base):
            def call_function(self, target, args, kwargs):
                if target is torch.relu:
                    return torch.sigmoid(args[0]) * 2
                return super().call_function(target, args, kwargs)

        return ReluToSigmoid

    ours, theirs = _pair(M())
    x = torch.randn(2, 3)
    identity = Transformer(ours).transform()
    assert identity.code == torch.fx.Transformer(theirs).transform().code
    torch.testing.assert_close(identity(x), ours(x))
    rewritten = rewrite(Transformer)(ours).transform()
    oracle = rewrite(torch.fx.Transformer)(theirs).transform()
    assert rewritten.code == oracle.code
    torch.testing.assert_close(rewritten(x), oracle(x))


def test_transformer_copies_provenance_meta_to_new_nodes() -> None:
    traced = fx.symbolic_trace(lambda x: torch.relu(x) + 1)
    relu = next(node for node in traced.graph.nodes if node.target is torch.relu)
    relu.meta["nn_module_stack"] = {"block": ("block", torch.nn.Module)}
    relu.meta["unrelated"] = 1

    class Decompose(Transformer):
        def call_function(self, target, args, kwargs):
            if target is torch.relu:
                return (args[0] > 0) * args[0]
            return super().call_function(target, args, kwargs)

    result = Decompose(traced).transform()
    created = [node for node in result.graph.nodes if node.op in ("call_function", "call_method")]
    assert [node.meta.get("nn_module_stack") is not None for node in created] == [True, True, False]
    assert all("unrelated" not in node.meta for node in created)
    x = torch.randn(6)
    torch.testing.assert_close(result(x), torch.relu(x) + 1)


def test_interpreter_is_freed_without_the_cycle_collector() -> None:
    import gc

    traced = fx.symbolic_trace(torch.nn.Linear(2, 2))
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        interp = Interpreter(traced)
        interp.run(torch.ones(2))
        watcher = weakref.ref(interp)
        del interp
        assert watcher() is None
    finally:
        if was_enabled:
            gc.enable()


def _random_graph(library, choices):
    """A graph over one (3,)-tensor input built from ``choices``: each picks an argument layout
    (plain nodes, constants, kwargs, lists/tuples/dicts/slices holding nodes, method calls)."""
    graph = library.Graph()
    values = [graph.placeholder("x")]
    for kind, first, second in choices:
        a, b = values[first % len(values)], values[second % len(values)]
        if kind == 0:
            node = graph.call_function(operator.add, (a, b))
        elif kind == 1:
            node = graph.call_function(operator.mul, (a, 0.5))
        elif kind == 2:
            node = graph.call_function(torch.add, (a, b), {"alpha": 2})
        elif kind == 3:
            node = graph.call_function(
                torch.sum, (graph.call_function(torch.stack, ([a, b, a],)),), {"dim": 0}
            )
        elif kind == 4:
            node = graph.call_function(torch.clamp, (a,), {"min": -1.0, "max": 1.5})
        elif kind == 5:
            node = graph.call_method("sub", (a, b))
        elif kind == 6:
            node = graph.call_function(operator.getitem, (a, slice(None, None, 1)))
        elif kind == 7:
            node = graph.call_function(operator.getitem, ({"left": a, "right": b}, "right"))
        else:
            pair = graph.call_function(tuple, ((a, b),))
            node = graph.call_function(operator.getitem, (pair, 0))
        values.append(node)
    graph.output((values[-1], [values[len(values) // 2]]))
    return library.GraphModule(torch.nn.Module(), graph)


def test_random_graphs_run_like_their_generated_code() -> None:
    hypothesis = pytest.importorskip("hypothesis")
    strategies = hypothesis.strategies

    @hypothesis.settings(max_examples=15, deadline=None)  # per engine: 45 graphs in all
    @hypothesis.given(
        strategies.lists(
            strategies.tuples(
                strategies.integers(0, 8), strategies.integers(0, 50), strategies.integers(0, 50)
            ),
            min_size=1,
            max_size=25,
        )
    )
    def check(choices):
        ours = _random_graph(fx, choices)
        theirs = _random_graph(torch.fx, choices)
        x = torch.linspace(-2, 2, 3)
        expected = ours(x)
        torch.testing.assert_close(Interpreter(ours).run(x), expected)
        torch.testing.assert_close(torch.fx.Interpreter(theirs).run(x), expected)
        kept = Interpreter(ours, garbage_collect_values=False)
        torch.testing.assert_close(kept.run(x), expected)

    check()


def test_reused_interpreter_gives_the_same_results_run_after_run() -> None:
    model = zoo.get_model("transformer").eval()
    traced = fx.symbolic_trace(model)
    interp = Interpreter(traced)
    with torch.no_grad():
        for batch in (2, 3, 1):
            (x,) = zoo.example_inputs("transformer", batch=batch)
            torch.testing.assert_close(interp.run(x), model(x))
            assert [node.op for node in interp.env] == ["output"]


def test_overridden_argument_fetching_is_called_like_torch_fx() -> None:
    def fn(x, y):
        return torch.relu(x) * y + 1

    def doubling(base):
        class DoubleInputs(base):
            def map_nodes_to_values(self, args, n):
                values = super().map_nodes_to_values(args, n)
                if n.op == "call_function" and isinstance(values, tuple):
                    return tuple(v * 2 if isinstance(v, torch.Tensor) else v for v in values)
                return values

        return DoubleInputs

    ours, theirs = _pair(fn)
    x, y = torch.randn(4), torch.randn(4)
    for _ in range(2):  # the second run is where a reused interpreter would switch engines
        expected = doubling(torch.fx.Interpreter)(theirs).run(x, y)
        torch.testing.assert_close(doubling(Interpreter)(ours).run(x, y), expected)


def test_fast_path_switch_is_per_thread_and_restored_on_error(engine) -> None:
    import threading

    from fxkit._fast_path import FastPathSwitch

    switch = FastPathSwitch("test")
    seen = []
    with switch.use(False):
        thread = threading.Thread(target=lambda: seen.append(switch.enabled()))
        thread.start()
        thread.join()
        seen.append(switch.enabled())
    assert seen == [True, False] and switch.enabled()
    with pytest.raises(ZeroDivisionError):
        with switch.use(False):
            1 / 0
    assert switch.enabled()
    with pytest.raises(TypeError, match="expected True or False"):
        with switch.use("no"):
            pass
    # The interpreter's own switch: off inside the block only, whatever the parametrized engine.
    with use_fast_path(False):
        assert not fx.interpreter._FAST_PATH.enabled()
    assert fx.interpreter._FAST_PATH.enabled() is (engine != "plain")


def test_module_hooks_run_as_when_the_module_is_called() -> None:
    # The fast path calls a submodule's forward directly only when calling it would do nothing else.
    traced = fx.symbolic_trace(zoo.get_model("mlp"))
    x = zoo.example_inputs("mlp")[0]
    seen = []
    first = next(module for name, module in traced.named_modules() if name and not list(module.children()))
    handle = first.register_forward_hook(lambda module, args, output: seen.append("own"))
    global_handle = torch.nn.modules.module.register_module_forward_hook(
        lambda module, args, output: seen.append("global")
    )
    try:
        Interpreter(traced).run(x)
    finally:
        global_handle.remove()
    assert "own" in seen and "global" in seen
    seen.clear()
    Interpreter(traced).run(x)
    assert seen == ["own"]
    handle.remove()
    Interpreter(traced).run(x)
    assert seen == ["own"]


class _Nested(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.block = torch.nn.Sequential(torch.nn.Linear(3, 3), torch.nn.ReLU())

    def forward(self, x):
        return self.block(x) + 1


def test_swapped_submodules_and_plain_callables_are_called_like_torch_fx() -> None:
    # Submodules may be looked up through getters cached by path, never by object: a swap made
    # after a run is seen by the next run, of the same interpreter or of a fresh one.
    torch.manual_seed(0)
    model = _Nested()
    x = torch.randn(2, 3)
    results = {}
    for lib in (fx, torch.fx):
        traced = lib.symbolic_trace(model)
        interp = lib.Interpreter(traced)
        seen = [interp.run(x)]
        setattr(traced.block, "1", torch.nn.Tanh())
        seen += [interp.run(x), lib.Interpreter(traced).run(x)]
        traced.block.__dict__["1"] = torch.sigmoid  # not a Module: called as it is
        seen += [interp.run(x), lib.Interpreter(traced).run(x)]
        results[lib] = seen
    assert not torch.equal(results[fx][0], results[fx][1])
    for ours, oracle in zip(results[fx], results[torch.fx]):
        torch.testing.assert_close(ours, oracle)


def test_methods_patched_on_the_interpreter_class_are_called(monkeypatch) -> None:
    # A method replaced on Interpreter itself is an override too, as with torch.fx.
    counts = {}
    for cls in (Interpreter, torch.fx.Interpreter):
        original = cls.call_module

        def counting(self, target, args, kwargs, original=original, cls=cls):
            counts[cls] = counts.get(cls, 0) + 1
            return original(self, target, args, kwargs)

        monkeypatch.setattr(cls, "call_module", counting)
    ours, theirs = _pair(_Nested())
    x = torch.randn(2, 3)
    for _ in range(2):  # a reused interpreter switches engines on its second run
        torch.testing.assert_close(Interpreter(ours).run(x), torch.fx.Interpreter(theirs).run(x))
    assert counts[Interpreter] == counts[torch.fx.Interpreter] == 4


class _LoudReLU(torch.nn.ReLU):
    def __call__(self, *args, **kwargs):  # a class-level __call__: forward must not be called directly
        return super().__call__(*args, **kwargs) + 100


def test_submodules_whose_call_does_more_than_forward_are_called_like_torch_fx() -> None:
    torch.manual_seed(0)
    model, x = _Nested(), torch.randn(2, 3)
    results = {}
    for lib in (fx, torch.fx):
        traced = lib.symbolic_trace(copy.deepcopy(model))  # the edits below reach shared submodules
        seen = [lib.Interpreter(traced).run(x)]
        setattr(traced.block, "1", _LoudReLU())
        seen.append(lib.Interpreter(traced).run(x))
        # What torch.compile installs: calling the module runs this instead of _call_impl.
        traced.block.get_submodule("0")._compiled_call_impl = lambda *args, **kwargs: args[0] * 0 - 7
        seen.append(lib.Interpreter(traced).run(x))
        results[lib] = seen
    assert float(results[fx][2].min()) > 50
    for ours, oracle in zip(results[fx], results[torch.fx]):
        torch.testing.assert_close(ours, oracle)


def test_graph_edits_after_runs_are_seen_by_the_same_interpreter() -> None:
    # A reused interpreter compiles per-node runners; editing the graph must not leave them stale.
    def fn(x):
        return torch.relu(x) + 1

    x = torch.tensor([-1.0, 2.0])
    results = {}
    for lib in (fx, torch.fx):
        traced = lib.symbolic_trace(fn)
        interp = lib.Interpreter(traced)
        seen = [interp.run(x) for _ in range(3)]
        (relu,) = [node for node in traced.graph.nodes if node.target is torch.relu]
        relu.target = torch.sigmoid
        traced.recompile()
        seen.append(interp.run(x))
        relu.target = torch.tanh  # edited in place, without recompile
        seen.append(interp.run(x))
        (add,) = [node for node in traced.graph.nodes if node.target is operator.add]
        add.args = (add.args[0], 5)
        seen.append(interp.run(x))
        with traced.graph.inserting_after(add):
            doubled = traced.graph.call_function(operator.mul, (add, 2))
        add.replace_all_uses_with(doubled, delete_user_cb=lambda user: user is not doubled)
        seen.append(interp.run(x))
        results[lib] = seen
    assert len({tuple(value.tolist()) for value in results[fx]}) == 5
    for ours, oracle in zip(results[fx], results[torch.fx]):
        torch.testing.assert_close(ours, oracle)
