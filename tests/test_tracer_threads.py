"""Tracing from many threads at once: identical graphs every time and no patch left behind."""

from __future__ import annotations

import functools
import math
import threading
from typing import Any, Callable, Dict, List

import torch
from torch import nn

import fxkit
from fxkit import tracer as tracer_module

THREADS = 8
TRACES_PER_THREAD = 100


def relu_times_sqrt_of_rank(x: torch.Tensor) -> torch.Tensor:
    return torch.relu(x) * math.sqrt(x.dim())


class Scaled(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(3, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x) * math.sqrt(x.dim()) + math.floor(x.size(0))


def _run_in_threads(work: Callable[[int], None], count: int = THREADS) -> None:
    errors: List[BaseException] = []
    barrier = threading.Barrier(count)

    def guarded(index: int) -> None:
        try:
            barrier.wait(30)
            work(index)
        except BaseException as error:  # reported in the main thread
            errors.append(error)

    threads = [threading.Thread(target=guarded, args=(index,)) for index in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not any(thread.is_alive() for thread in threads)
    assert errors == []


def _nothing_patched() -> None:
    assert tracer_module._PATCHES._patches == {}
    assert globals()["math"].sqrt is math.sqrt and math.sqrt.__module__ == "math"
    assert nn.Module.__call__ is torch.nn.modules.module.Module.__call__
    assert vars(nn.Module)["_call_impl"].__name__ == "_call_impl"
    assert "__call__" in vars(nn.Module) and vars(nn.Module)["__call__"].__name__ == "_wrapped_call_impl"


def test_concurrent_symbolic_traces_all_wrap_math_and_give_identical_graphs() -> None:
    model = Scaled()
    expected_fn = fxkit.symbolic_trace(relu_times_sqrt_of_rank).code
    expected_module = fxkit.symbolic_trace(model).code
    codes: Dict[str, List[str]] = {"fn": [], "module": []}

    def work(index: int) -> None:
        # Half the threads patch nn.Module.__call__, half nn.Module._call_impl, at the same time.
        with tracer_module.use_fast_patches(index % 2 == 0):
            for _ in range(TRACES_PER_THREAD // 2):
                codes["fn"].append(fxkit.symbolic_trace(relu_times_sqrt_of_rank).code)
                codes["module"].append(fxkit.symbolic_trace(model).code)

    _run_in_threads(work)
    assert len(codes["fn"]) == THREADS * TRACES_PER_THREAD // 2
    assert set(codes["fn"]) == {expected_fn}
    assert set(codes["module"]) == {expected_module}
    assert "math_sqrt(" in expected_fn and "math_floor(" in expected_module
    _nothing_patched()
    x = torch.randn(2, 3)
    torch.testing.assert_close(fxkit.symbolic_trace(model)(x), model(x))


class Helpers:
    @staticmethod
    def double(x: Any) -> Any:
        return x * 2

    @classmethod
    def triple(cls, x: Any) -> Any:
        return x * 3


class SubHelpers(Helpers):
    pass


def test_overlapping_patches_of_static_and_class_methods_are_put_back_as_they_were() -> None:
    registry = tracer_module._PATCHES
    before = {name: Helpers.__dict__[name] for name in ("double", "triple")}

    def work(index: int) -> None:
        for _ in range(50):
            keys = [
                registry.acquire(Helpers, "double", tracer_module._recording_wrapper),
                registry.acquire(Helpers, "triple", tracer_module._recording_wrapper),
                registry.acquire(SubHelpers, "double", tracer_module._recording_wrapper),
            ]
            # While patched, the methods still behave as static / class methods.
            assert Helpers.double(2) == 4 and Helpers().double(2) == 4
            assert Helpers.triple(2) == 6 and SubHelpers().double(5) == 10
            for key in reversed(keys):
                registry.release(key)

    _run_in_threads(work)
    assert {name: Helpers.__dict__[name] for name in ("double", "triple")} == before
    assert "double" not in vars(SubHelpers)
    assert registry._patches == {}


def test_a_patched_static_method_records_one_call_while_tracing() -> None:
    key = tracer_module._PATCHES.acquire(Helpers, "double", tracer_module._recording_wrapper)
    try:
        traced = fxkit.symbolic_trace(lambda x: Helpers.double(x) + 1)
    finally:
        tracer_module._PATCHES.release(key)
    targets = [node.target for node in traced.graph.nodes if node.op == "call_function"]
    assert targets[0] is Helpers.__dict__["double"].__func__
    torch.testing.assert_close(traced(torch.ones(2)), torch.full((2,), 3.0))


def test_a_trace_next_to_one_with_the_plain_patches_keeps_its_own_and_the_same_graph() -> None:
    from fxkit import zoo

    model = zoo.get_model("resnet")
    expected = fxkit.symbolic_trace(model).code
    registry = tracer_module._PATCHES
    # What a trace with use_fast_patches(False) in another thread holds while it runs.
    keys = [
        registry.acquire(nn.Module, "__call__", tracer_module._traced_module_call),
        registry.acquire(nn.Module, "__getattr__", tracer_module._traced_module_getattr),
    ]
    try:
        tracer = tracer_module.Tracer()
        graph = tracer.trace(model)
        assert tracer._getattr_per_class and tracer._module_call_patched == "_call_impl"
        assert fxkit.GraphModule(tracer.root, graph, "ResNet").code == expected
    finally:
        for key in reversed(keys):
            registry.release(key)
    _nothing_patched()


class _ReadsLinearWeight(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(3, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x @ self.linear.weight.t() + self.linear.bias


def test_a_trace_patching_nn_module_records_reads_behind_another_traces_class_patch() -> None:
    model = _ReadsLinearWeight()
    expected = fxkit.symbolic_trace(model).code
    registry = tracer_module._PATCHES
    # What a per-class trace in another thread holds: a patch on nn.Linear, installed before this
    # trace patches nn.Module, so a lookup on a Linear stops at it and never reaches nn.Module's.
    per_class = functools.partial(tracer_module._traced_module_getattr, per_class=True)
    key = registry.acquire(nn.Linear, "__getattr__", per_class)
    try:
        with tracer_module.use_fast_patches(False):
            traced = fxkit.symbolic_trace(model)
            captured = fxkit.capture(model, (torch.randn(2, 3),))
    finally:
        registry.release(key)
    assert traced.code == expected
    assert (
        "self.linear.weight" in captured.graph_module.code
        and "_tensor_constant" not in captured.graph_module.code
    )
    _nothing_patched()


class _OwnGetattrScale(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(3))

    def __getattr__(self, name: str) -> Any:
        return super().__getattr__(name)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.weight.exp()


class _WithUnregistered(nn.Module):
    """A registered Linear, and two modules capture installs mid-trace (one with its own __getattr__)."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(3, 3)
        self.extra = [nn.Linear(3, 3), _OwnGetattrScale()]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.extra[1](self.extra[0](self.linear(x)) + self.extra[0].weight.sum())


def test_concurrent_captures_with_either_patch_kind_and_symbolic_traces_agree() -> None:
    model, traced_model = _WithUnregistered(), Scaled()
    x = torch.randn(2, 3)
    expected_capture = fxkit.capture(model, (x,)).graph_module.code
    expected_trace = fxkit.symbolic_trace(traced_model).code
    codes: Dict[str, List[str]] = {"capture": [], "trace": []}

    def work(index: int) -> None:
        # Per-class __getattr__ patches (installed modules included) beside nn.Module's, at once.
        with tracer_module.use_fast_patches(index % 2 == 0):
            for _ in range(10):
                codes["capture"].append(fxkit.capture(model, (x,)).graph_module.code)
                codes["trace"].append(fxkit.symbolic_trace(traced_model).code)

    _run_in_threads(work, count=4)
    assert set(codes["capture"]) == {expected_capture} and set(codes["trace"]) == {expected_trace}
    # Both installed modules' parameters are read as nodes, and methods on them are recorded.
    assert "self._unregistered_extra_0.weight" in expected_capture
    assert "self._unregistered_extra_1.weight" in expected_capture
    assert "exp()" in expected_capture and "sum()" in expected_capture
    _nothing_patched()
    assert vars(_OwnGetattrScale)["__getattr__"].__qualname__ == "_OwnGetattrScale.__getattr__"
    assert "__getattr__" not in vars(nn.Linear)
    torch.testing.assert_close(fxkit.capture(model, (x,)).graph_module(x), model(x))
