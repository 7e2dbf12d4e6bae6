"""More tracing corners: unpacking, setitem, no_grad, custom proxies and meta.

Run once with torch.fx (the oracle) and once with fxkit; results must be equal. Each snippet takes
the library module as ``fx`` and returns plain data; helpers are in tests/parity/oracle.py.
"""

from __future__ import annotations

import torch
import torch.fx
import torch.fx.passes.shape_prop
import torch.fx.passes.split_module
import torch.nn.functional as F
from torch import nn

from .models import AddRelu, SmallNet, TwoLayer
from .oracle import (
    error_of,
    in_fresh_module,
    is_fxkit,
    parity_test,
    snippet,
    summary,
)


@snippet
def unpacking_sizes_and_leaf_outputs(fx):
    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm = nn.LSTM(3, 4, batch_first=True)

        def forward(self, x):
            b, t, f = x.size()
            out, (h, c) = self.lstm(x)
            return out.reshape(b * t, -1), h, c

    gm = fx.symbolic_trace(M())
    return gm.code, summary(gm.graph)


@snippet
def star_unpacking_a_proxy_in_a_call(fx):
    def fn(x):
        return x.view(*x.shape[:1], -1)

    return error_of(lambda: fx.symbolic_trace(fn))[0]


@snippet(raises=(TypeError, "'Proxy' object does not support item assignment"))
def setitem_on_proxy(fx):
    def fn(x):
        y = x.clone()
        y[0] = 5.0
        y[:, 1] = y[:, 0]
        return y

    gm = fx.symbolic_trace(fn)
    return gm.code, summary(gm.graph), gm(torch.zeros(2, 2))


@snippet
def boolean_dispatch_functional(fx):
    class M(nn.Module):
        def forward(self, x):
            pooled, indices = F.max_pool2d(x, 2, return_indices=True)
            return F.max_pool2d(x, 2) + pooled, indices, F.pad(x, (1, 1)), F.adaptive_avg_pool2d(x, 1)

    gm = fx.symbolic_trace(M())
    return gm.code, gm(torch.randn(1, 1, 4, 4))


@snippet
def no_grad_block_inside_forward(fx):
    class M(nn.Module):
        def forward(self, x):
            with torch.no_grad():
                y = x * 2
            return y + 1

    gm = fx.symbolic_trace(M())
    return gm.code, summary(gm.graph)


@snippet
def torch_factories_with_proxy_sizes(fx):
    def arange(x):
        return torch.arange(x.shape[0])

    def zeros(x):
        return torch.zeros(x.shape[0], 2)

    def full_like(x):
        return torch.full_like(x, 3), torch.empty_like(x).shape

    outcomes = []
    for fn in (arange, zeros, full_like):
        outcome = error_of(lambda: fx.symbolic_trace(fn))
        outcomes.append(outcome[0] if outcome else fx.symbolic_trace(fn).code)
    return outcomes


@snippet
def super_forward_and_inheritance(fx):
    class Base(nn.Module):
        def forward(self, x):
            return x + 1

    class Child(Base):
        def forward(self, x):
            return super().forward(x) * 2

    gm = fx.symbolic_trace(Child())
    return gm.code, gm(torch.ones(1))


@snippet
def wrapped_function_with_nested_proxy_args(fx):
    source = (
        "def combine(parts, scale=1):\n    return sum(parts) * scale\n"
        "fx.wrap('combine')\n"
        "def fn(x, y):\n    return combine([x, (y + 1)], scale=x.shape[0])\n"
    )
    namespace = in_fresh_module(fx, source)
    gm = fx.symbolic_trace(namespace["fn"])
    return summary(gm.graph), gm(torch.ones(2), torch.ones(2))


@snippet
def parameter_names_shadowing_globals(fx):
    def fn(inf, nan, device, list, math):
        return inf + nan + device + list + math

    gm = fx.symbolic_trace(fn)
    ones = [torch.ones(1)] * 5
    return gm.code, gm(*ones)


@snippet
def module_dict_keys_that_are_not_identifiers(fx):
    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.heads = nn.ModuleDict({"0": nn.Linear(2, 2), "a-b": nn.ReLU(), "x y": nn.Tanh()})
            self.a_b = nn.Identity()

        def forward(self, x):
            return self.heads["a-b"](self.heads["0"](x)) + self.heads["x y"](x) + self.a_b(x)

    gm = fx.symbolic_trace(M())
    return gm.code, summary(gm.graph), gm(torch.ones(1, 2))


@snippet
def module_dict_key_that_is_a_keyword(fx):
    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.heads = nn.ModuleDict({"class": nn.ReLU()})

        def forward(self, x):
            return self.heads["class"](x)

    outcome = error_of(lambda: fx.symbolic_trace(M()))
    if is_fxkit(fx):
        # Documented difference: torch.fx writes `self.heads.class` (a SyntaxError); fxkit uses getattr.
        assert outcome is None
        assert 'getattr(self.heads, "class")(x)' in fx.symbolic_trace(M()).code
        return "SyntaxError"
    return outcome[0]


@snippet
def custom_proxy_class_via_tracer_proxy(fx):
    class TensorProxy(fx.Proxy):
        def double(self):
            return self * 2

    class ProxyTracer(fx.Tracer):
        def proxy(self, node):
            return TensorProxy(node, self)

    def fn(x):
        return x.double() + 1

    graph = ProxyTracer().trace(fn)
    return summary(graph)


@snippet
def proxy_attribute_chains(fx):
    def fn(x):
        return x.real.abs(), x.grad, x.data.shape[0], x.T.T

    gm = fx.symbolic_trace(fn)
    return gm.code, summary(gm.graph)


@snippet
def graph_iteration_while_erasing_and_inserting(fx):
    gm = fx.symbolic_trace(lambda x: ((x + 1).relu() + 2).relu())
    graph = gm.graph
    visited = []
    for node in graph.nodes:
        visited.append(node.name)
        if node.op == "call_method" and node.target == "relu":
            node.replace_all_uses_with(node.args[0])
            graph.erase_node(node)
        elif node.op == "call_function" and node.name == "add":
            with graph.inserting_after(node):
                extra = graph.call_function(torch.neg, (node,))
                node.replace_all_uses_with(extra, delete_user_cb=lambda user: user is not extra)
    gm.recompile()
    return visited, gm.code


@snippet
def inserting_before_none_and_after_none(fx):
    graph = fx.Graph()
    x = graph.placeholder("x")
    graph.output(x)
    with graph.inserting_before(None):
        first = graph.call_function(torch.zeros, (2,))
    with graph.inserting_after(None):
        second = graph.call_function(torch.ones, (2,))
    return [node.name for node in graph.nodes]


@snippet
def node_copy_keeps_meta_and_type(fx):
    graph = fx.Graph()
    x = graph.placeholder("x", type_expr=torch.Tensor)
    y = graph.call_function(torch.relu, (x,), type_expr=torch.Tensor)
    y.meta["custom"] = {"a": 1}
    graph.output(y)
    other = fx.Graph()
    env = {}
    for node in graph.nodes:
        env[node] = other.node_copy(node, lambda n: env[n])
    copied = env[y]
    return (
        copied.meta,
        copied.meta is y.meta,
        copied.meta["custom"] is y.meta["custom"],
        repr(copied.type),
        copied.name,
    )


@snippet
def get_attr_warning_for_missing_reference(fx):
    import warnings

    gm = fx.symbolic_trace(AddRelu())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with gm.graph.inserting_before(gm.graph.output_node()):
            gm.graph.get_attr("not_there")
            gm.graph.get_attr("linear_not_there.weight")
    # torch.fx adds a second "Failed to fetch module" warning for the dotted path; the first is common.
    return type(caught[0].message).__name__, len(caught) >= 2


@snippet
def interpreter_boxed_run_and_no_io_processing(fx):
    gm = fx.symbolic_trace(AddRelu())
    arguments = [torch.ones(2), torch.ones(2)]
    boxed = fx.Interpreter(gm).boxed_run(arguments)
    plain = fx.Interpreter(gm).run(torch.ones(2), torch.ones(2), enable_io_processing=False)
    return boxed, arguments, plain


@snippet
def interpreter_attributes(fx):
    gm = fx.symbolic_trace(TwoLayer())
    interpreter = fx.Interpreter(gm)
    return (
        interpreter.module is gm,
        sorted(interpreter.submodules),
        interpreter.garbage_collect_values,
        interpreter.graph is gm.graph,
        interpreter.extra_traceback,
    )


@snippet
def transformer_keeps_submodules_and_names(fx):
    gm = fx.symbolic_trace(SmallNet())
    new_gm = fx.Transformer(gm).transform()
    return (
        new_gm.code,
        [n for n, _ in new_gm.named_modules()],
        sorted(new_gm.state_dict()),
        [n.name for n in new_gm.graph.nodes],
        type(new_gm).__name__,
    )


@snippet
def transformer_meta_propagation(fx):
    gm = fx.symbolic_trace(AddRelu())
    for node in gm.graph.nodes:
        node.meta["stack_trace"] = f"trace of {node.name}"
        node.meta["custom"] = node.name
        node.meta["other"] = 1
    new_gm = fx.Transformer(gm).transform()
    # torch.fx also records its own provenance entries ("from_node", "seq_nr"); fxkit has no such entries.
    return [
        (
            n.name,
            sorted(set(n.meta) - {"from_node", "seq_nr"}),
            n.meta.get("stack_trace"),
            n.meta.get("custom"),
        )
        for n in new_gm.graph.nodes
    ]


@snippet
def output_of_dict_and_list(fx):
    graph = fx.Graph()
    x = graph.placeholder("x")
    y = graph.call_function(torch.neg, (x,))
    graph.output({"y": y, "both": [x, y], "nothing": None})
    gm = fx.GraphModule(nn.Module(), graph)
    return gm.code, gm(torch.ones(1))


@snippet
def split_module_with_qualname_map(fx):
    root = TwoLayer()
    gm = fx.symbolic_trace(root)
    qualname_map = {}
    split = fx.passes.split_module.split_module(
        gm, root, lambda node: 0 if node.name in ("fc", "x") else 1, qualname_map=qualname_map
    )
    return qualname_map, split.code, [n for n, _ in split.named_modules()]


@snippet
def shape_prop_returns_output_and_handles_ints(fx):
    gm = fx.symbolic_trace(lambda x: (x.sum(), x.shape[0], x.dim()))
    result = fx.passes.shape_prop.ShapeProp(gm).propagate(torch.ones(3, 2))
    return result, [
        (n.name, "tensor_meta" in n.meta, n.meta.get("type").__name__ if "type" in n.meta else None)
        for n in gm.graph.nodes
    ]


@snippet
def script_a_graph_module(fx):
    gm = fx.symbolic_trace(AddRelu())
    scripted = torch.jit.script(gm)
    return scripted(torch.ones(2), torch.ones(2)), scripted.code.strip().splitlines()[0]


test_fxkit_matches_torch_fx = parity_test(__name__)
