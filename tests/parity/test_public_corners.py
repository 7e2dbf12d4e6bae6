"""Tutorial-style transforms and other public corners: print_tabular, codegen, lint, passes.

Run once with torch.fx (the oracle) and once with fxkit; results must be equal. Each snippet takes
the library module as ``fx`` and returns plain data; helpers are in tests/parity/oracle.py.
"""

from __future__ import annotations

import operator

import torch
import torch.fx
import torch.fx.experimental.const_fold
import torch.fx.experimental.optimization
import torch.fx.subgraph_rewriter
import torch.nn.functional as F
from torch import nn

from .models import AddRelu, SmallNet, TwoLayer
from .oracle import (
    error_of,
    error_type_of,
    parity_test,
    snippet,
    summary,
)


@snippet
def tutorial_replace_add_with_mul(fx):
    class M(nn.Module):
        def forward(self, x, y):
            return torch.add(x, y), x + y

    gm = fx.symbolic_trace(M())
    for node in gm.graph.nodes:
        if node.op == "call_function":
            if node.target is torch.add:
                node.target = torch.mul
            elif node.target is operator.add:
                node.target = operator.mul
    gm.graph.lint()
    gm.recompile()
    return gm.code, gm(torch.full((2,), 3.0), torch.full((2,), 4.0))


@snippet
def tutorial_invert_transformer(fx):
    inverses = {torch.neg: torch.neg, torch.exp: torch.log}

    class Invert(fx.Transformer):
        def call_function(self, target, args, kwargs):
            return super().call_function(inverses[target], args, kwargs)

    def fn(x):
        return torch.exp(torch.neg(x))

    inverted = Invert(fx.symbolic_trace(fn)).transform()
    return inverted.code, inverted(fn(torch.arange(3.0)))


@snippet
def print_tabular_output(fx):
    import contextlib
    import io

    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        fx.symbolic_trace(SmallNet()).graph.print_tabular()
    return buffer.getvalue()


@snippet
def graph_str_with_constants_and_kwargs(fx):
    def fn(x):
        y = torch.sum(x, dim=(0, 1), keepdim=True, dtype=torch.float64)
        z = x.to("cpu", non_blocking=False).masked_fill(x > 0.5, -1.0)
        return y, z, x.new_full([2, 2], 1.5), torch.tensor([1, 2]).shape, "text", [1, [2, (3,)]]

    gm = fx.symbolic_trace(fn)
    return str(gm.graph), [node.format_node() for node in gm.graph.nodes]


@snippet
def custom_codegen_subclass(fx):
    class ListCodeGen(fx.graph.CodeGen):
        def gen_fn_def(self, free_vars, maybe_return_annotation):
            return f"def forward(self, args_list):\n    {', '.join(free_vars)} = args_list"

        def additional_globals(self):
            return [("List", list)]

        def process_inputs(self, *inputs):
            assert len(inputs) == 1
            return inputs[0]

    gm = fx.symbolic_trace(AddRelu())
    gm.graph.set_codegen(ListCodeGen())
    gm.recompile()
    return gm.code, gm([torch.ones(2), torch.ones(2)]), fx.Interpreter(gm).run([torch.ones(2), torch.ones(2)])


@snippet
def graph_constructor_options(fx):
    root = TwoLayer()
    graph = fx.Graph(owning_module=root, tracer_cls=fx.Tracer)
    x = graph.placeholder("x")
    graph.output(graph.call_module("fc", (x,)))
    return graph.owning_module is root, str(graph), graph._tracer_cls is fx.Tracer


@snippet
def lint_failures(fx):
    def unknown_op():
        graph = fx.Graph()
        x = graph.placeholder("x")
        node = graph.call_function(torch.relu, (x,))
        graph.output(node)
        node.op = "nonsense"
        graph.lint()

    def missing_module_target():
        root = nn.Module()
        graph = fx.Graph(owning_module=root)
        x = graph.placeholder("x")
        graph.output(graph.call_module("absent", (x,)))
        graph.lint()

    def non_callable_target():
        graph = fx.Graph()
        x = graph.placeholder("x")
        graph.output(graph.call_function("relu", (x,)))
        graph.lint()

    return [
        error_type_of(case) is not None for case in (unknown_op, missing_module_target, non_callable_target)
    ]


@snippet
def create_node_with_invalid_op(fx):
    graph = fx.Graph()
    outcome = error_of(lambda: graph.create_node("not_an_op", torch.relu))
    return outcome is not None, len(graph.nodes)


@snippet
def max_and_min_on_proxies(fx):
    def fn(x):
        return max(x.shape[0], 2)

    return error_of(lambda: fx.symbolic_trace(fn))[0]


@snippet
def isinstance_checks_inside_forward(fx):
    def fn(x):
        if isinstance(x, torch.Tensor):
            return x + 1
        return x - 1

    gm = fx.symbolic_trace(fn)
    return gm.code, isinstance(fx.Proxy, type)


@snippet
def interpreter_error_inside_node(fx):
    graph = fx.Graph()
    a = graph.placeholder("a")
    graph.output(graph.call_function(torch.mm, (a, a)))
    gm = fx.GraphModule(nn.Module(), graph)
    # Messages differ on purpose (torch.fx rewrites the message, fxkit adds a note); the type is common.
    return error_type_of(lambda: fx.Interpreter(gm).run(torch.ones(2, 3))), error_type_of(
        lambda: gm(torch.ones(2, 3))
    )


@snippet
def interpreter_runs_nested_graph_modules(fx):
    inner = fx.symbolic_trace(TwoLayer())
    graph = fx.Graph()
    x = graph.placeholder("x")
    graph.output(graph.call_module("inner.act", (graph.call_module("inner", (x,)),)))
    outer = fx.GraphModule({"inner": inner, "inner.act": inner.act}, graph)
    return outer.code, fx.Interpreter(outer).run(torch.ones(1, 3)), outer(torch.ones(1, 3))


@snippet
def transformer_keeps_nested_get_attr_paths(fx):
    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.block = nn.Linear(2, 2)

        def forward(self, x):
            return x @ self.block.weight.t() + self.block.bias

    new_gm = fx.Transformer(fx.symbolic_trace(M())).transform()
    return new_gm.code, summary(new_gm.graph), [n for n, _ in new_gm.named_parameters()]


@snippet
def replace_pattern_with_graph_module_pattern(fx):
    pattern = fx.symbolic_trace(lambda x: x.sigmoid() * x)
    replacement = fx.symbolic_trace(lambda x: F.silu(x))
    gm = fx.symbolic_trace(lambda a: (a.sigmoid() * a).sum() + (a.sigmoid() * a).mean())
    matches = fx.subgraph_rewriter.replace_pattern(gm, pattern, replacement)
    return len(matches), gm.code, gm(torch.arange(3.0))


@snippet
def replace_pattern_without_match(fx):
    gm = fx.symbolic_trace(lambda x: x.relu())
    matches = fx.subgraph_rewriter.replace_pattern(gm, lambda x: x.tanh(), lambda x: x.sigmoid())
    return matches, gm.code


@snippet
def const_fold_with_skip_function(fx):
    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Parameter(torch.ones(2))
            self.b = nn.Parameter(torch.ones(2))

        def forward(self, x):
            return x + (self.a + 1) * (self.b * 2)

    folded = fx.experimental.const_fold.split_const_subgraphs(
        M(), skip_folding_node_fn=lambda node: node.target is operator.mul
    )
    folded.run_folding()
    return folded.code, folded(torch.zeros(2))


@snippet
def optimization_remove_dropout(fx):
    model = nn.Sequential(nn.Linear(2, 2), nn.Dropout(0.5), nn.ReLU()).eval()
    cleaned = fx.experimental.optimization.remove_dropout(model)
    return cleaned.code, cleaned(torch.ones(1, 2)), model(torch.ones(1, 2))


@snippet
def graph_module_to_and_train_eval(fx):
    gm = fx.symbolic_trace(nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2)))
    gm = gm.to(torch.float64)
    gm.eval()
    return gm(torch.ones(3, 2, dtype=torch.float64)), [m.training for m in gm.modules()], gm.code


@snippet
def proxy_torch_function_kwargs_out_and_dtype(fx):
    def fn(x):
        return (
            torch.softmax(x, dim=-1, dtype=torch.float64),
            x.sum(dtype=torch.float64),
            torch.nn.functional.one_hot(x.long(), num_classes=3),
        )

    gm = fx.symbolic_trace(fn)
    return gm.code, gm(torch.tensor([0.0, 2.0]))


@snippet
def eliminate_dead_code_keeps_impure_and_placeholders(fx):
    graph = fx.Graph()
    x = graph.placeholder("x")
    unused = graph.placeholder("unused")
    graph.call_function(torch.relu, (x,))
    graph.call_method("add_", (x, 1))
    graph.call_function(operator.setitem, (x, 0, 1.0))
    graph.call_function(torch._assert, (True, "message"))
    graph.output(x)
    changed = graph.eliminate_dead_code()
    return changed, [n.name for n in graph.nodes]


test_fxkit_matches_torch_fx = parity_test(__name__)
