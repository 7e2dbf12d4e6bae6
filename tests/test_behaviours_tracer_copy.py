"""Tracer reuse and copies, side by side with torch.fx (the oracle): one tracer tracing several
methods of a class, deep copies of tracers and proxies, and the replica DataParallel makes."""

import copy
from typing import Any

import pytest
import torch
import torch.fx
from torch import nn

import fxkit

LIBRARIES = pytest.mark.parametrize("fx", [torch.fx, fxkit], ids=["torch.fx", "fxkit"])


class ThreeMethods(nn.Module):
    not_a_method = 3

    def forward(self, x, y):
        return x + y

    def minus_forward(self, x, y):
        return x - y

    def multiply_forward(self, x, y):
        return x * y


@LIBRARIES
def test_one_tracer_traces_several_methods(fx: Any) -> None:
    module = ThreeMethods()
    x, y = torch.randn(2), torch.randn(2)
    tracer = fx.Tracer()
    for name in ("forward", "minus_forward", "multiply_forward"):
        tracer.traced_func_name = name
        traced = fx.GraphModule(module, tracer.trace(module))
        torch.testing.assert_close(traced(x, y), getattr(module, name)(x, y))
    tracer.traced_func_name = "add_forward"
    with pytest.raises(AssertionError, match="traced_func_name=add_forward doesn't exist in ThreeMethods"):
        tracer.trace(module)
    tracer.traced_func_name = "not_a_method"
    with pytest.raises(AssertionError, match="Expected FunctionType, got <class 'int'>"):
        tracer.trace(module)


class Doubler(nn.Module):
    def forward(self, x):
        return 2 * x


def _named_tracer(fx: Any) -> Any:
    class NamedTracer(fx.Tracer):
        def __init__(self, name: str) -> None:
            super().__init__()
            self.name = name

        def is_leaf_module(self, module: nn.Module, qualified_name: str) -> bool:
            return True

    return NamedTracer("mytracer")


@LIBRARIES
def test_deepcopy_of_a_tracer_before_and_after_tracing(fx: Any) -> None:
    tracer = _named_tracer(fx)
    fresh = copy.deepcopy(tracer)
    # torch.fx's copy is a plain Tracer (it drops the subclass); fxkit keeps the subclass.
    assert isinstance(fresh, fx.Tracer) and fresh.name == "mytracer" and fresh is not tracer
    graph = tracer.trace(Doubler())
    used = copy.deepcopy(tracer)
    assert used.graph is not graph
    assert [node.name for node in used.graph.nodes] == [node.name for node in graph.nodes]


@LIBRARIES
def test_deepcopy_of_a_proxy_without_tracer(fx: Any) -> None:
    traced = fx.symbolic_trace(Doubler())
    node = list(traced.graph.nodes)[-2]
    proxy = fx.Proxy(node, None)
    node.proxy = proxy
    clone = copy.deepcopy(proxy)
    assert isinstance(clone, fx.Proxy)
    assert (clone.node.name, clone.node.target) == (node.name, node.target)
    assert clone.node is not node and clone.tracer.graph is clone.node.graph
    assert len(traced.graph.nodes) == 3  # the original graph is untouched


@LIBRARIES
def test_deepcopy_of_a_proxy_with_its_tracer(fx: Any) -> None:
    module = Doubler()
    tracer = _named_tracer(fx)
    traced = fx.GraphModule(module, tracer.trace(module))
    node = list(traced.graph.nodes)[-2]
    proxy = fx.Proxy(node, tracer)
    node.proxy = proxy
    clone = copy.deepcopy(proxy)
    assert isinstance(clone, fx.Proxy) and isinstance(clone.tracer, fx.Tracer)
    assert clone.tracer.name == "mytracer" and clone.tracer is not tracer
    assert (clone.node.name, clone.node.target) == (node.name, node.target) and clone.node is not node


class WithWeights(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(3, 3)
        self.register_buffer("offset", torch.ones(3))

    def forward(self, x):
        return torch.relu(self.lin(x) + self.offset)


@LIBRARIES
def test_data_parallel_replica_runs_and_is_independent(fx: Any) -> None:
    gm = fx.symbolic_trace(WithWeights())
    x = torch.randn(5, 3)
    expected = gm(x)
    replica = gm._replicate_for_data_parallel()
    torch.testing.assert_close(replica(x), expected)
    assert replica.graph is gm.graph and isinstance(replica, fx.GraphModule)
    # torch.nn.parallel.replicate then installs per-device copies of the children with setattr.
    child = copy.deepcopy(gm.lin)
    with torch.no_grad():
        child.bias.add_(1.0)
    setattr(replica, "lin", child)
    assert replica.lin is child and gm.lin is not child
    torch.testing.assert_close(replica(x), torch.relu(child(x) + gm.offset))
    torch.testing.assert_close(gm(x), expected)
    # Recompiling the replica with an edited graph leaves the original's forward alone.
    for node in replica.graph.nodes:
        if node.target is torch.relu:
            node.target = torch.sigmoid
    replica.recompile()
    torch.testing.assert_close(gm(x), expected)
    assert not torch.equal(replica(x), expected)


@LIBRARIES
def test_data_parallel_on_cpu_calls_the_module(fx: Any) -> None:
    gm = fx.symbolic_trace(WithWeights())
    x = torch.randn(4, 3)
    torch.testing.assert_close(nn.DataParallel(gm)(x), gm(x))
    with pytest.raises(ValueError, match="Expected a non cpu device"):
        torch.nn.parallel.replicate(gm, ["cpu"])
