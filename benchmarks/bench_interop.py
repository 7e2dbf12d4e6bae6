"""Interop workloads (issue 12).

Conversion: turning a 10k-node graph into the other library's objects, either way, must cost less
than torch.fx's own ``copy.deepcopy`` of the same GraphModule (the baseline side). Two graphs: a
10k-node chain of small ops (no meta), and a 10k-node deep MLP traced by torch.fx whose nodes carry
``tensor_meta`` from ShapeProp. Both directions give modules that generate their code when first
used (fxkit's GraphModule always does; ``to_torch_fx`` builds torch's lazily compiled GraphModule,
as Dynamo does), while ``deepcopy`` generates and compiles it at once: with
``fxkit.interop.use_fast_path(False)``, ``to_torch_fx`` compiles at once too, and is on a par.

Compile: ``torch.compile(model, backend=fxkit.interop.backend())`` (Dynamo's graph converted to
fxkit and back, then Inductor) against ``backend="inductor"``, from a reset Dynamo to the first
result; the round trip may cost at most 5% (target 0.95).
"""

from __future__ import annotations

import copy
import types
from types import ModuleType
from typing import Any, Callable

import torch

from benchmarks.bench_graph import chain_module
from benchmarks.harness import Workload

_NODES = 10_000


def _chain_state(library: ModuleType) -> types.SimpleNamespace:
    import torch.fx

    import fxkit

    return types.SimpleNamespace(theirs=chain_module(torch.fx, _NODES), ours=chain_module(fxkit, _NODES))


def _deep_mlp_state(library: ModuleType) -> types.SimpleNamespace:
    import torch.fx
    import torch.fx.passes.shape_prop

    from fxkit import zoo
    from fxkit.interop import from_torch_fx

    model = zoo.deep_mlp(_NODES // 2 - 1)  # a Linear and a tanh per layer, plus input and output
    theirs = torch.fx.symbolic_trace(model)
    torch.fx.passes.shape_prop.ShapeProp(theirs).propagate(torch.randn(2, 4))
    return types.SimpleNamespace(theirs=theirs, ours=from_torch_fx(theirs))


def _from_torch_fx(state: types.SimpleNamespace) -> object:
    from fxkit.interop import from_torch_fx

    return from_torch_fx(state.theirs)


def _to_torch_fx(state: types.SimpleNamespace) -> object:
    from fxkit.interop import to_torch_fx

    return to_torch_fx(state.ours)


def _torch_deepcopy(state: types.SimpleNamespace) -> object:
    return copy.deepcopy(state.theirs)


def _compile_state(name: str) -> Callable[[ModuleType], types.SimpleNamespace]:
    def setup(library: ModuleType) -> types.SimpleNamespace:
        from fxkit import zoo

        torch._dynamo.reset()
        return types.SimpleNamespace(model=zoo.get_model(name), inputs=zoo.example_inputs(name))

    return setup


def _compile_and_run(backend: Callable[[], Any]) -> Callable[[types.SimpleNamespace], object]:
    def run(state: types.SimpleNamespace) -> object:
        with torch.no_grad():
            return torch.compile(state.model, backend=backend())(*state.inputs)

    return run


def _fxkit_backend() -> Any:
    from fxkit.interop import backend

    return backend()


def _plain(run: Callable[[types.SimpleNamespace], object]) -> Callable[[types.SimpleNamespace], object]:
    """``run`` with interop's fast paths off: the conversion back always happens, and to_torch_fx
    builds a plain (not lazily compiled) GraphModule."""

    def plain_run(state: types.SimpleNamespace) -> object:
        from fxkit.interop import use_fast_path

        with use_fast_path(False):
            return run(state)

    return plain_run


def workloads() -> list[Workload]:
    conversions = [
        Workload(
            f"{direction}-{graph}-10k",
            fxkit=convert,
            baseline=_torch_deepcopy,
            setup=setup,
            baseline_name="torch.fx deepcopy",
            target=1.0,
            min_repeats=3,
            description=f"{direction.replace('-', '_')} of a 10k-node {graph} graph vs copy.deepcopy of it",
        )
        for graph, setup in (("chain", _chain_state), ("deep-mlp", _deep_mlp_state))
        for direction, convert in (("from-torch-fx", _from_torch_fx), ("to-torch-fx", _to_torch_fx))
    ]
    compiles = [
        Workload(
            f"compile-{name}",
            fxkit=_compile_and_run(_fxkit_backend),
            baseline=_compile_and_run(lambda: "inductor"),
            setup=_compile_state(name),
            baseline_name="inductor",
            target=0.95,
            # The backend's own time is 0.5% of a compile, but a compile's wall time swings by 50%
            # when the machine is shared: more interleaved samples keep the median honest.
            min_repeats=11,
            description=f"torch.compile of the zoo {name} to its first result, fxkit backend vs inductor",
        )
        for name in ("mlp", "transformer")
    ]
    # The plain versions, for the record: the full round trip (Dynamo's graph to fxkit and back on
    # every compile) and an eagerly compiled torch.fx GraphModule out of to_torch_fx.
    plain = [
        Workload(
            "compile-transformer-round-trip",
            fxkit=_plain(_compile_and_run(_fxkit_backend)),
            baseline=_compile_and_run(lambda: "inductor"),
            setup=_compile_state("transformer"),
            baseline_name="inductor",
            target=0.95,
            min_repeats=11,
            description="compile-transformer with interop.use_fast_path(False): converted back on every compile",
        ),
        Workload(
            "to-torch-fx-chain-10k-eager",
            fxkit=_plain(_to_torch_fx),
            baseline=_torch_deepcopy,
            setup=_chain_state,
            baseline_name="torch.fx deepcopy",
            min_repeats=3,
            description="to-torch-fx-chain-10k with interop.use_fast_path(False): code generated at once",
        ),
    ]
    return conversions + compiles + plain
