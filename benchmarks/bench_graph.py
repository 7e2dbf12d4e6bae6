"""Graph IR, code generation and GraphModule workloads (issue 2).

Every graph is built through the public Graph API with the same calls on both sides, so the
two libraries get identical graphs.
"""

from __future__ import annotations

import copy
import itertools
import operator
import pickle
from types import ModuleType
from typing import Any

import torch

from benchmarks.harness import Workload, mirrored

#: Within 5% of eager: eager time / GraphModule time must be at least 1 / 1.05.
WITHIN_FIVE_PERCENT = 1 / 1.05


def build_chain(fx: ModuleType, n_nodes: int) -> Any:
    """A straight-line graph of exactly ``n_nodes`` nodes that runs on a float tensor.

    It cycles through the kinds of node codegen has to print: an infix operator with a constant,
    a torch function, an operator on two nodes (the input stays live to the end), a method call,
    and a function with keyword arguments.
    """
    if n_nodes < 3:
        raise ValueError(f"build_chain: need at least 3 nodes (placeholder, one op, output), got {n_nodes}")
    graph = fx.Graph()
    x = graph.placeholder("x")
    value = x
    for step in range(n_nodes - 2):
        kind = step % 5
        if kind == 0:
            value = graph.call_function(operator.add, (value, 1.0))
        elif kind == 1:
            value = graph.call_function(torch.relu, (value,))
        elif kind == 2:
            value = graph.call_function(operator.mul, (value, x))
        elif kind == 3:
            value = graph.call_method("neg", (value,))
        else:
            value = graph.call_function(torch.clamp, (value,), {"min": -1.0, "max": 1.0})
    graph.output(value)
    return graph


def chain_module(fx: ModuleType, n_nodes: int) -> Any:
    return fx.GraphModule(torch.nn.Module(), build_chain(fx, n_nodes))


def build_mlp_graph(fx: ModuleType, model: torch.nn.Module) -> Any:
    """The graph symbolic tracing gives for a zoo MLP, written out with the Graph API."""
    graph = fx.Graph()
    value = graph.placeholder("x", type_expr=torch.Tensor)
    last = len(model.layers) - 1
    for index in range(len(model.layers)):
        value = graph.call_module(f"layers.{index}", (value,))
        if index != last:
            value = graph.call_function(torch.relu, (value,))
    graph.output(value, type_expr=torch.Tensor)
    return graph


def mlp_module(fx: ModuleType) -> tuple[Any, torch.nn.Module, tuple[torch.Tensor, ...]]:
    """(GraphModule, the eager model it came from, example inputs) for the zoo MLP."""
    from fxkit import zoo  # imported here so that a broken fxkit fails workloads, not discovery

    model = zoo.get_model("mlp")
    module = fx.GraphModule(model, build_mlp_graph(fx, model))
    inputs = zoo.example_inputs("mlp")
    module(*inputs)  # steady state: fxkit generates and compiles forward at the first call
    return module, model, inputs


def _build(fx: ModuleType, n_nodes: int) -> Any:
    return build_chain(fx, n_nodes)


def _python_code(fx: ModuleType, graph: Any) -> Any:
    return graph.python_code(root_module="self")


def _chain_and_input(fx: ModuleType, n_nodes: int) -> tuple[Any, torch.Tensor]:
    return chain_module(fx, n_nodes), torch.linspace(-2.0, 2.0, 8)


def _recompile_and_call(fx: ModuleType, state: tuple[Any, torch.Tensor]) -> Any:
    module, x = state
    module.recompile()
    return module(x)


_EDIT_COUNTER = itertools.count(1)


def _edited_chain_and_input(fx: ModuleType, n_nodes: int) -> tuple[Any, torch.Tensor]:
    """A 10k chain whose first constant differs from every earlier sample's, so no code is reused."""
    module, x = _chain_and_input(fx, n_nodes)
    first_op = next(node for node in module.graph.nodes if node.op == "call_function")
    first_op.update_arg(1, 1.0 + next(_EDIT_COUNTER) * 1e-6)
    return module, x


def _recompile_five_times(fx: ModuleType, state: tuple[Any, torch.Tensor]) -> None:
    module, _ = state
    for _ in range(5):
        module.recompile()


def _pickle_round_trip(fx: ModuleType, module: Any) -> Any:
    return pickle.loads(pickle.dumps(module))


def _deepcopy(fx: ModuleType, module: Any) -> Any:
    return copy.deepcopy(module)


def _call_mlp(state: tuple[Any, torch.nn.Module, tuple[torch.Tensor, ...]]) -> Any:
    module, _, inputs = state
    return module(*inputs)


def _call_eager_mlp(state: tuple[Any, torch.nn.Module, tuple[torch.Tensor, ...]]) -> Any:
    _, model, inputs = state
    return model(*inputs)


def workloads() -> list[Workload]:
    size_10k = 10_000
    return [
        mirrored(
            "build-1k",
            lambda fx, _: _build(fx, 1_000),
            number=5,
            description="Graph API: placeholder, 998 call_function/call_method nodes, output",
        ),
        mirrored("build-10k", lambda fx, _: _build(fx, size_10k)),
        mirrored("build-100k", lambda fx, _: _build(fx, 100_000), track_memory=True),
        mirrored(
            "python_code-10k",
            _python_code,
            lambda fx: build_chain(fx, size_10k),
            target=3.0,
            description="Graph.python_code of a 10k-node graph",
        ),
        mirrored(
            "recompile+call-10k",
            _recompile_and_call,
            lambda fx: _chain_and_input(fx, size_10k),
            target=1.5,
            description="GraphModule.recompile() then the first forward call (the same source each "
            "sample: fxkit reuses the compiled code)",
        ),
        mirrored(
            "recompile+call-10k-new-source",
            _recompile_and_call,
            lambda fx: _edited_chain_and_input(fx, size_10k),
            target=1.5,
            description="recompile() then the first call, on a graph whose source was never compiled "
            "before (no reuse of compiled code)",
        ),
        mirrored(
            "recompile-x5-10k",
            _recompile_five_times,
            lambda fx: _chain_and_input(fx, size_10k),
            description="five recompiles with no call in between (lazy compilation makes these cheap)",
        ),
        Workload(
            "forward-mlp-vs-eager",
            _call_mlp,
            _call_eager_mlp,
            mlp_module,
            baseline_name="eager",
            target=WITHIN_FIVE_PERCENT,
            number=100,
            min_repeats=21,
            description="fxkit GraphModule forward against the eager module it came from",
        ),
        mirrored(
            "forward-mlp",
            lambda fx, state: _call_mlp(state),
            mlp_module,
            number=100,
            min_repeats=21,
            description="GraphModule forward, fxkit against torch.fx",
        ),
        mirrored("deepcopy-10k", _deepcopy, lambda fx: chain_module(fx, size_10k)),
        mirrored("deepcopy-mlp", _deepcopy, lambda fx: mlp_module(fx)[0], number=20),
        mirrored(
            "pickle-10k",
            _pickle_round_trip,
            lambda fx: chain_module(fx, size_10k),
            target=5.0,
            track_memory=True,
            description="pickle.dumps + pickle.loads (torch.fx re-traces on load)",
        ),
        mirrored("pickle-mlp", _pickle_round_trip, lambda fx: mlp_module(fx)[0], number=20),
    ]
