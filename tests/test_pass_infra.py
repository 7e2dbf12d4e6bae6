"""PassBase / PassManager, compared with torch.fx's pass infrastructure."""

import pytest
import torch
import torch.fx
from torch.fx.passes.infra import pass_base as fx_pass_base
from torch.fx.passes.infra import pass_manager as fx_pass_manager

import fxkit
from fxkit.passes.infra import pass_base, pass_manager


def _module(fx):
    class Small(torch.nn.Module):
        def forward(self, x):
            return torch.relu(x) + 1

    return fx.symbolic_trace(Small())


def _run_order(fx, base, manager, constraints_for, steps=1, modified=(False, False)):
    calls = []

    def first(gm):
        calls.append("first")
        return base.PassResult(gm, modified[0] and len(calls) < 3)

    def second(gm):
        calls.append("second")
        return base.PassResult(gm, modified[1])

    constraints = [manager.this_before_that_pass_constraint(a, b) for a, b in constraints_for(first, second)]
    result = manager.PassManager([first, second], constraints=constraints, steps=steps)(_module(fx))
    return calls, result.modified


@pytest.mark.parametrize(
    "constraints_for,steps,modified",
    [
        (lambda a, b: [], 1, (False, False)),
        (lambda a, b: [(b, a)], 1, (False, False)),
        (lambda a, b: [(b, a)], 3, (True, False)),
        (lambda a, b: [(a, b)], 3, (False, True)),
    ],
)
def test_pass_order_and_rounds_match_torch_fx(constraints_for, steps, modified):
    ours = _run_order(fxkit, pass_base, pass_manager, constraints_for, steps, modified)
    theirs = _run_order(torch.fx, fx_pass_base, fx_pass_manager, constraints_for, steps, modified)
    assert ours == theirs


def test_pass_base_runs_requires_call_ensures():
    seen = []

    class Recorder(pass_base.PassBase):
        def requires(self, gm):
            seen.append("requires")

        def call(self, gm):
            seen.append("call")
            return pass_base.PassResult(gm, True)

        def ensures(self, gm):
            seen.append("ensures")

    result = Recorder()(_module(fxkit))
    assert seen == ["requires", "call", "ensures"] and result.modified


def test_pass_result_wrapper_accepts_modules_and_none():
    gm = _module(fxkit)
    assert pass_manager.pass_result_wrapper(lambda m: m)(gm).graph_module is gm
    assert pass_manager.pass_result_wrapper(lambda m: None)(gm).modified


def test_non_pass_result_is_reported_with_the_pass_name():
    def bare(gm):
        return None

    with pytest.raises(Exception, match="bare"):
        pass_manager.PassManager([bare])(_module(fxkit))


def test_cyclic_constraints_are_rejected():
    def a(gm):
        return pass_base.PassResult(gm, False)

    def b(gm):
        return pass_base.PassResult(gm, False)

    manager = pass_manager.PassManager(
        [a, b],
        constraints=[
            pass_manager.this_before_that_pass_constraint(a, b),
            pass_manager.this_before_that_pass_constraint(b, a),
        ],
    )
    with pytest.raises(RuntimeError, match="cycle"):
        manager(_module(fxkit))


def test_checks_run_after_each_pass():
    checked = []

    def noop(gm):
        return pass_base.PassResult(gm, False)

    manager = pass_manager.PassManager([noop, noop], run_checks_after_each_pass=True)
    manager.add_checks(lambda gm: checked.append(gm))
    manager(_module(fxkit))
    assert len(checked) == 3
