"""Interpreter and ShapeProp workloads (issue 4).

Interpreter: per-node overhead on a 1000-node chain of small-tensor ops (overhead dominates), as
a reused interpreter and as the one-shot ``Interpreter(gm).run(x)``; and runs of zoo models.
ShapeProp: fxkit with meta-device model and inputs against torch.fx with real ones.

``python3 -m benchmarks.bench_interpreter`` also prints the peak bytes of tensor storage each
ShapeProp side allocates (tracemalloc, which the harness uses, does not see tensor storage).
"""

from __future__ import annotations

import importlib
import types
import weakref
from types import ModuleType
from typing import Any, Callable, Dict, List, Tuple

import torch

from benchmarks.bench_graph import chain_module
from benchmarks.harness import Workload, mirrored


def _interpreter_module(fx: ModuleType) -> ModuleType:
    return importlib.import_module(f"{fx.__name__}.interpreter")


def _shape_prop_module(fx: ModuleType) -> ModuleType:
    return importlib.import_module(f"{fx.__name__}.passes.shape_prop")


def _chain_state(fx: ModuleType) -> types.SimpleNamespace:
    module = chain_module(fx, 1000)
    interpreter = _interpreter_module(fx).Interpreter(module)
    x = torch.randn(4)
    _warm_up(interpreter, x)
    return types.SimpleNamespace(module=module, interpreter=interpreter, x=x, fx=fx)


def _model_state(name: str) -> Callable[[ModuleType], types.SimpleNamespace]:
    def setup(fx: ModuleType) -> types.SimpleNamespace:
        from fxkit import zoo

        traced = fx.symbolic_trace(zoo.get_model(name).eval())
        interpreter = _interpreter_module(fx).Interpreter(traced)
        inputs = zoo.example_inputs(name)
        with torch.no_grad():
            _warm_up(interpreter, *inputs)
        return types.SimpleNamespace(interpreter=interpreter, inputs=inputs, traced=traced, fx=fx)

    return setup


def _warm_up(interpreter: Any, *inputs: Any) -> None:
    """Two runs: the reused-interpreter workloads measure steady state (fxkit compiles its
    per-node runners on an interpreter's second run)."""
    interpreter.run(*inputs)
    interpreter.run(*inputs)


# Small models where per-node overhead dominates (issue 10): a fresh Interpreter(gm).run(x),
# construction included, should take at most half of torch.fx's time.
_SMALL_MODELS: Dict[str, Callable[[], Tuple[torch.nn.Module, Tuple[torch.Tensor, ...]]]] = {
    "mlp": lambda: (_zoo().deep_mlp(50), (torch.randn(2, 4),)),
    "resnet": lambda: (_zoo().ResNet(widths=(4, 8, 16)).eval(), (torch.randn(1, 3, 8, 8),)),
}


def _zoo() -> ModuleType:
    from fxkit import zoo

    return zoo


def _small_model_state(name: str) -> Callable[[ModuleType], types.SimpleNamespace]:
    def setup(fx: ModuleType) -> types.SimpleNamespace:
        torch.manual_seed(0)
        model, inputs = _SMALL_MODELS[name]()
        return types.SimpleNamespace(traced=fx.symbolic_trace(model), inputs=inputs)

    return setup


def _fresh_run(fx: ModuleType, state: types.SimpleNamespace) -> object:
    with torch.no_grad():
        return _interpreter_module(fx).Interpreter(state.traced).run(*state.inputs)


def _run_model(fx: ModuleType, state: types.SimpleNamespace) -> object:
    with torch.no_grad():
        return state.interpreter.run(*state.inputs)


def _large_transformer() -> torch.nn.Module:
    from fxkit import zoo

    torch.manual_seed(0)
    return zoo.Transformer(dim=256, heads=8, depth=8).eval()


_LARGE_INPUT_SHAPE = (8, 128, 256)


def _shape_prop_state(library: ModuleType) -> types.SimpleNamespace:
    model = _large_transformer()
    if library.__name__ == "fxkit":
        model = model.to("meta")
        x = torch.empty(_LARGE_INPUT_SHAPE, device="meta")
    else:
        x = torch.randn(_LARGE_INPUT_SHAPE)
    traced = library.symbolic_trace(model)
    return types.SimpleNamespace(traced=traced, x=x, shape_prop=_shape_prop_module(library).ShapeProp)


def _propagate(state: types.SimpleNamespace) -> object:
    with torch.no_grad():
        return state.shape_prop(state.traced).propagate(state.x)


def workloads() -> list[Workload]:
    return [
        mirrored(
            "run-chain-1k",
            run=lambda fx, state: state.interpreter.run(state.x),
            setup=_chain_state,
            target=2.0,
            number=5,
            min_repeats=5,
            description="Interpreter.run on a 1000-node chain of ops on a 4-element tensor (reused interpreter)",
        ),
        mirrored(
            "oneshot-chain-1k",
            run=lambda fx, state: _interpreter_module(fx).Interpreter(state.module).run(state.x),
            setup=_chain_state,
            target=1.5,
            number=3,
            min_repeats=5,
            description="Interpreter(gm).run(x) on the 1000-node chain: construction and first run",
        ),
        mirrored(
            "oneshot-small-mlp",
            run=_fresh_run,
            setup=_small_model_state("mlp"),
            target=2.0,
            number=10,
            min_repeats=5,
            description="Interpreter(gm).run(x) on a 50-layer Linear+tanh MLP (102 nodes, [2, 4] input)",
        ),
        mirrored(
            "oneshot-small-resnet",
            run=_fresh_run,
            setup=_small_model_state("resnet"),
            target=2.0,
            number=10,
            min_repeats=5,
            description="Interpreter(gm).run(x) on a narrow zoo ResNet (54 nodes, [1, 3, 8, 8] input)",
        ),
        mirrored(
            "run-transformer",
            run=_run_model,
            setup=_model_state("transformer"),
            target=2.0,
            number=50,
            description="Interpreter.run on the zoo transformer (small inputs)",
        ),
        mirrored(
            "run-resnet",
            run=_run_model,
            setup=_model_state("resnet"),
            target=1.0,
            number=3,
            description="Interpreter.run on the zoo resnet (small inputs)",
        ),
        Workload(
            "shape-prop-meta-vs-real",
            fxkit=_propagate,
            baseline=_propagate,
            setup=_shape_prop_state,
            baseline_name="torch.fx",
            track_memory=True,
            description=(
                "ShapeProp of an 8-block dim-256 transformer on [8, 128, 256]: fxkit with model and "
                "input on the meta device, torch.fx with real ones"
            ),
        ),
    ]


class _StoragePeak:
    """Peak bytes of tensor storage allocated by ops while active (views share their storage)."""

    def __init__(self) -> None:
        self.live: Dict[int, List[int]] = {}
        self.current = 0
        self.peak = 0

    def __enter__(self) -> "_StoragePeak":
        from torch.utils._python_dispatch import TorchDispatchMode

        tracker = self

        class Track(TorchDispatchMode):
            def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
                result = func(*args, **(kwargs or {}))
                for value in torch.utils._pytree.tree_leaves(result):
                    if isinstance(value, torch.Tensor):
                        tracker.saw(value)
                return result

        self._mode = Track()
        self._mode.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._mode.__exit__(*exc)

    def saw(self, tensor: torch.Tensor) -> None:
        if tensor.device.type == "meta":
            return
        storage = tensor.untyped_storage()
        key = storage.data_ptr()
        if key in self.live:
            self.live[key][0] += 1
        else:
            self.live[key] = [1, storage.nbytes()]
            self.current += storage.nbytes()
            self.peak = max(self.peak, self.current)
        weakref.finalize(tensor, self._release, key)

    def _release(self, key: int) -> None:
        entry = self.live.get(key)
        if entry is None:
            return
        entry[0] -= 1
        if entry[0] == 0:
            self.current -= entry[1]
            del self.live[key]


def main() -> None:
    import time

    import torch.fx

    import fxkit

    for library in (fxkit, torch.fx):
        _propagate(_shape_prop_state(library))  # warm-up: first calls load kernels and meta rules
        state = _shape_prop_state(library)
        parameter_bytes = sum(
            p.numel() * p.element_size() for p in state.traced.parameters() if p.device.type != "meta"
        )
        start = time.perf_counter()
        _propagate(state)
        seconds = time.perf_counter() - start
        state = _shape_prop_state(library)
        with _StoragePeak() as peak:  # a second, tracked run: the tracking slows every op down
            _propagate(state)
        side = "fxkit (meta)" if library is fxkit else "torch.fx (real)"
        print(
            f"{side:<16} ShapeProp {seconds:8.3f} s   peak tensor storage during the run "
            f"{peak.peak / 2**20:8.1f} MiB   parameters held {parameter_bytes / 2**20:6.1f} MiB"
        )


if __name__ == "__main__":
    main()
