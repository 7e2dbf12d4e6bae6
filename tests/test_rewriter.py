"""experimental.rewriter.RewritingTracer against torch.fx's (where torch.fx's can trace the
program) and against eager execution."""

from __future__ import annotations

import pytest
import torch
import torch.fx
import torch.nn as nn
from torch.fx.annotate import annotate  # noqa: F401  (torch.fx's rewritten code looks this name up here)
from torch.fx.experimental.rewriter import RewritingTracer as OracleRewritingTracer

import fxkit as fx
from fxkit.experimental.rewriter import AST_Rewriter, RewritingTracer


def double(x):
    return x * 2


def clamp_rows(x):
    return x[: x.shape[0]]


fx.wrap("clamp_rows")


class Checked(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(3, 3)

    def forward(self, x: torch.Tensor, y):
        assert x.shape[0] == 2, "batch of two"
        assert x.dim() == 2
        assert y is not None
        z: torch.Tensor = self.lin(x)
        w: int = 3
        return double(z) + w


def _trace(tracer_class, graph_module_class, root):
    tracer = tracer_class()
    graph = tracer.trace(root)
    return graph_module_class(tracer.root, graph)


def test_rewriting_tracer_matches_torch_fx_on_a_module() -> None:
    model = Checked()
    ours = _trace(RewritingTracer, fx.GraphModule, model)
    oracle = _trace(OracleRewritingTracer, torch.fx.GraphModule, model)
    assert ours.code == oracle.code
    assert [(n.name, n.type) for n in ours.graph.nodes] == [(n.name, n.type) for n in oracle.graph.nodes]
    assert type(ours).__name__ == type(oracle).__name__ == "GraphModule"
    x = torch.randn(2, 3)
    torch.testing.assert_close(ours(x, 1), model(x, 1))
    for bad in (torch.randn(3, 3), torch.randn(2, 3, 1)):
        with pytest.raises(AssertionError) as ours_error:
            ours(bad, 1)
        with pytest.raises(AssertionError) as oracle_error:
            oracle(bad, 1)
        assert str(ours_error.value) == str(oracle_error.value)


def test_the_traced_root_shares_state_and_keeps_methods() -> None:
    """torch.fx's rewritten module is a bare nn.Module (calling another method of the model
    fails there); fxkit's is a subclass of the model's class."""

    class WithHelper(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.scale = 3.0
            self.lin = nn.Linear(2, 2)

        def check(self, x):
            return x * self.scale

        def forward(self, x):
            assert x.shape[-1] == 2, "two features"
            return self.check(self.lin(x))

    model = WithHelper()
    tracer = RewritingTracer()
    graph = tracer.trace(model)
    gm = fx.GraphModule(tracer.root, graph)
    assert type(tracer.root).__name__ == "RewrittenModule" and isinstance(tracer.root, WithHelper)
    assert tracer.root.lin is model.lin
    x = torch.randn(4, 2)
    torch.testing.assert_close(gm(x), model(x))
    with pytest.raises(AttributeError):
        OracleRewritingTracer().trace(model)


def module_level(x, k=2):
    assert x.sum() > 0, "sum must be positive"
    return x * k


def test_functions_and_closures_are_rewritten() -> None:
    def positive(x, k=2):
        assert x.sum() > 0, "sum must be positive"
        return x * k

    def make(scale):
        def scaled(x):
            assert x.dim() == 1
            return x * scale

        return scaled

    cases = ((positive, torch.ones(2), -torch.ones(2)), (make(3.0), torch.ones(2), torch.ones(2, 2)))
    for fn, good, bad in cases:
        gm = _trace(RewritingTracer, fx.GraphModule, fn)
        if fn is positive:  # torch.fx's rewritten closure cannot see its free variables (NameError)
            assert gm.code == _trace(OracleRewritingTracer, torch.fx.GraphModule, fn).code
        assert any(node.target is torch._assert for node in gm.graph.nodes)
        torch.testing.assert_close(gm(good), fn(good))
        with pytest.raises(AssertionError):
            gm(bad)


def test_module_level_functions_are_rewritten() -> None:
    """torch.fx's RewritingTracer fails on a function defined at module level (2.13); fxkit's
    traces it."""
    gm = _trace(RewritingTracer, fx.GraphModule, module_level)
    torch.testing.assert_close(gm(torch.ones(2)), module_level(torch.ones(2)))
    with pytest.raises(AssertionError, match="sum must be positive"):
        gm(-torch.ones(2))
    with pytest.raises(AssertionError, match="new key"):
        OracleRewritingTracer().trace(module_level)


def test_wrapped_functions_stay_leaves() -> None:
    class UsesWrapped(nn.Module):
        def forward(self, x):
            assert x.dim() == 2
            return clamp_rows(x) + 1

    gm = _trace(RewritingTracer, fx.GraphModule, UsesWrapped())
    assert [node.target for node in gm.graph.nodes if node.op == "call_function"][-2:] == [
        clamp_rows,
        __import__("operator").add,
    ]


def test_ast_rewriter_without_source_says_why() -> None:
    namespace = {}
    exec("def made_up(x):\n    assert x\n    return x\n", namespace)  # noqa: S102
    with pytest.raises(OSError, match="source code of 'made_up'"):
        AST_Rewriter().rewrite(namespace["made_up"])


class MultiLineMessage(nn.Module):
    def forward(self, a, b):
        message = """
A message whose lines
start at column zero
        """
        assert a == b, message
        return a + b


def test_method_with_a_multi_line_string_at_column_zero_is_rewritten() -> None:
    ours = _trace(RewritingTracer, fx.GraphModule, MultiLineMessage())
    oracle = _trace(OracleRewritingTracer, torch.fx.GraphModule, MultiLineMessage())
    assert ours.code == oracle.code
    assert ours(3, 3) == oracle(3, 3) == 6
    with pytest.raises(AssertionError, match="start at column zero"):
        ours(3, 4)
