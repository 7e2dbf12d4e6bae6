"""GraphModule: construction, submodules, recompile, printing, copying and pickling.

Run once with torch.fx (the oracle) and once with fxkit; results must be equal. Each snippet takes
the library module as ``fx`` and returns plain data; helpers are in tests/parity/oracle.py.
"""

from __future__ import annotations

import copy
import pickle
from typing import Any

import torch
import torch.fx
import torch.fx.passes.shape_prop
from torch import nn

from .models import AddRelu, SmallNet, TwoLayer
from .oracle import (
    error_type_of,
    is_fxkit,
    parity_test,
    snippet,
    summary,
)


@snippet
def graph_module_class_name_and_str(fx):
    gm = fx.symbolic_trace(SmallNet())
    named = fx.GraphModule(gm, gm.graph, class_name="MyNet")
    return type(named).__name__, str(named), type(gm).__name__, str(gm), named.graph.owning_module is named


@snippet
def graph_module_from_dict_root(fx):
    graph = fx.Graph()
    x = graph.placeholder("x")
    h = graph.call_module("encoder.proj", (x,))
    w = graph.get_attr("scale")
    graph.output(graph.call_function(torch.mul, (h, w)))
    root = {"encoder.proj": nn.Linear(2, 3), "scale": nn.Parameter(torch.full((3,), 2.0))}
    gm = fx.GraphModule(root, graph)
    return (
        gm.code,
        [name for name, _ in gm.named_modules()],
        [name for name, _ in gm.named_parameters()],
        list(gm.state_dict()),
        gm(torch.ones(1, 2)),
    )


@snippet
def graph_module_missing_attribute_in_root(fx):
    graph = fx.Graph()
    x = graph.placeholder("x")
    graph.output(graph.call_module("missing", (x,)))
    return error_type_of(lambda: fx.GraphModule(nn.Module(), graph))


@snippet
def add_submodule_then_call_module(fx):
    gm = fx.symbolic_trace(AddRelu())
    added = gm.add_submodule("extra.scale", nn.Linear(2, 2, bias=False))
    nn.init.ones_(gm.get_submodule("extra.scale").weight)
    out = gm.graph.output_node()
    with gm.graph.inserting_before(out):
        scaled = gm.graph.call_module("extra.scale", (out.args[0],))
    out.args = (scaled,)
    gm.recompile()
    return (
        added,
        gm.code,
        summary(gm.graph),
        gm(torch.ones(2), torch.ones(2)),
        [n for n, _ in gm.named_modules()],
    )


@snippet
def delete_submodule_and_unused(fx):
    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Linear(2, 2)
            self.b = nn.Sequential(nn.Linear(2, 2), nn.ReLU())

        def forward(self, x):
            return self.b(self.a(x))

    gm = fx.symbolic_trace(M())
    missing = gm.delete_submodule("nope")
    gm.add_submodule("unused.deep", nn.Linear(1, 1))
    names_before = [n for n, _ in gm.named_modules()]
    gm.delete_all_unused_submodules()
    names_after = [n for n, _ in gm.named_modules()]
    deleted = gm.delete_submodule("a")
    return missing, names_before, names_after, deleted, [n for n, _ in gm.named_modules()]


@snippet
def recompile_after_edit_returns_python_code(fx):
    gm = fx.symbolic_trace(AddRelu())
    for node in gm.graph.nodes:
        if node.target is torch.relu:
            node.target = torch.sigmoid
    result = gm.recompile()
    return (
        isinstance(result, fx.graph.PythonCode),
        result.src == gm.code,
        gm.code,
        gm(torch.zeros(2), torch.zeros(2)),
    )


@snippet
def print_readable_text(fx):
    class Inner(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(2, 2)

        def forward(self, x):
            return self.lin(x)

    inner_gm = fx.symbolic_trace(Inner())

    class Outer(nn.Module):
        def __init__(self):
            super().__init__()
            self.sub = inner_gm

        def forward(self, x):
            return torch.relu(x)

    outer = fx.symbolic_trace(SmallNet())
    outer.add_submodule("nested", inner_gm)
    return outer.print_readable(print_output=False), inner_gm.print_readable(False)


@snippet
def print_readable_after_shape_prop(fx):
    gm = fx.symbolic_trace(SmallNet())
    fx.passes.shape_prop.ShapeProp(gm).propagate(torch.randn(2, 4))
    return gm.print_readable(print_output=False)


@snippet
def named_members_of_traced_module(fx):
    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.block = nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2))
            self.unused = nn.Linear(5, 5)
            self.register_buffer("steps", torch.zeros(1))

        def forward(self, x):
            return self.block(x) + self.steps

    gm = fx.symbolic_trace(M())
    return (
        [n for n, _ in gm.named_modules()],
        [n for n, _ in gm.named_parameters()],
        [n for n, _ in gm.named_buffers()],
        list(gm.state_dict()),
        [n for n, _ in gm.named_children()],
    )


@snippet
def nested_graph_module_is_traced_through(fx):
    inner = fx.symbolic_trace(TwoLayer())

    class Outer(nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = inner

        def forward(self, x):
            return self.inner(x) - 1

    gm = fx.symbolic_trace(Outer())
    return gm.code, summary(gm.graph), gm(torch.ones(1, 3))


def copied_class_name(fx: Any, original: Any, copied: Any) -> str:
    """torch.fx names every copied or unpickled GraphModule class "GraphModule"; fxkit keeps the name."""
    if is_fxkit(fx):
        assert type(copied).__name__ == type(original).__name__
        return "GraphModule"
    return type(copied).__name__


@snippet
def graph_module_deepcopy(fx):
    gm = fx.symbolic_trace(lambda x: x + torch.tensor([1.0, 2.0]))
    copied = copy.deepcopy(gm)
    same_graph = copied.graph is gm.graph
    return (
        copied.code,
        same_graph,
        copied(torch.ones(2)),
        copied_class_name(fx, gm, copied),
        hasattr(copied, "_tensor_constant0"),
        copied_class_name(fx, gm, copy.copy(gm)),
    )


@snippet
def graph_module_pickle_round_trip(fx):
    gm = fx.symbolic_trace(SmallNet())
    restored = pickle.loads(pickle.dumps(gm))
    x = torch.randn(2, 4)
    return restored.code, summary(restored.graph), restored(x), gm(x), copied_class_name(fx, gm, restored)


@snippet
def graph_module_graph_setter(fx):
    gm = fx.symbolic_trace(AddRelu())
    graph = fx.Graph()
    a = graph.placeholder("a")
    graph.output(graph.call_function(torch.neg, (a,)))
    gm.graph = graph
    return gm.code, gm(torch.ones(2)), graph.owning_module is gm


@snippet
def graph_module_nested_get_attr_targets(fx):
    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.enc = nn.Module()
            self.enc.layer = nn.Linear(2, 2)
            self.enc.register_buffer("running", torch.ones(2))

        def forward(self, x):
            return x @ self.enc.layer.weight + self.enc.running

    gm = fx.symbolic_trace(M())
    return gm.code, summary(gm.graph), [n for n, _ in gm.named_modules()], list(gm.state_dict())


@snippet
def graph_module_forward_signature_and_meta(fx):
    import inspect

    gm = fx.symbolic_trace(lambda x, y=3: x + y)
    return str(inspect.signature(gm.forward)), isinstance(gm.meta, dict), gm(torch.ones(1))


@snippet
def graph_module_load_state_dict_and_modes(fx):
    source = SmallNet()
    gm = fx.symbolic_trace(source)
    other = fx.symbolic_trace(SmallNet())
    other.load_state_dict(gm.state_dict())
    x = torch.randn(2, 4)
    other.eval()
    return other(x), gm(x), other.training, gm.training


@snippet
def retrace_a_graph_module(fx):
    gm = fx.symbolic_trace(SmallNet())
    again = fx.symbolic_trace(gm)
    return again.code, summary(again.graph)


@snippet
def trace_sequential_directly(fx):
    gm = fx.symbolic_trace(nn.Sequential(nn.Linear(2, 2), nn.ReLU(), nn.Sequential(nn.Linear(2, 1))))
    return gm.code, summary(gm.graph), gm(torch.ones(1, 2))


test_fxkit_matches_torch_fx = parity_test(__name__)
