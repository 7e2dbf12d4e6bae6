"""fxkit.explain: the report of a capture, through the API and the ``fxkit explain`` command."""

from __future__ import annotations

import os

import pytest
import torch

import fxkit
from fxkit import cli, zoo
from fxkit.explain import Explanation, explain, explain_capture
from tests.models import control_flow_zoo

ZOO_FILE = os.path.abspath(control_flow_zoo.__file__)


def _line(source: str) -> int:
    with open(ZOO_FILE, encoding="utf-8") as handle:
        return next(number for number, line in enumerate(handle, 1) if source in line)


def test_report_lists_guards_and_automatic_leaves_with_lines_and_suggestions():
    model = control_flow_zoo.LoggedSignBranch()
    report = explain(model, (torch.rand(4, 8),))
    assert isinstance(report, Explanation)
    [guard] = report.guards
    assert guard.name == "guard_0" and "data-dependent" in guard.summary
    assert (guard.location.filename, guard.location.lineno) == (ZOO_FILE, _line("if x.mean() > 0:"))
    assert "torch.where" in guard.suggestion
    [leaf] = report.leaves
    assert leaf.name == "logger" and "automatic leaf" in leaf.summary
    assert leaf.reason.startswith("tracing it failed with TypeError")
    assert leaf.location.lineno == _line("json.dumps(")
    assert "leaf_modules=['logger']" in leaf.suggestion
    text = str(report)
    assert f"{ZOO_FILE}:{_line('if x.mean() > 0:')}" in text
    assert "1 guards, 1 leaves (1 automatic), 0 specializations" in text.splitlines()[0]
    assert text.count("suggestion:") == 2


def test_specializations_of_arguments_and_sizes():
    class Model(torch.nn.Module):
        def forward(self, x, mask=None):
            for _ in range(x.shape[0]):
                x = x + 1
            return x if mask is None else x * mask

    result = fxkit.capture(Model(), (torch.zeros(3, 2),))
    report = result.explain()
    whats = [entry.name for entry in report.specializations]
    assert whats == ["argument mask", "getitem"]
    argument, size = report.specializations
    assert "checked by guard_0" in argument.summary and "example inputs" in argument.suggestion
    assert "= 3" in size.summary and "range(x.shape[0])" in size.location.source
    size_guard = next(entry for entry in report.guards if entry.name == "guard_1")
    assert "int" in size_guard.summary and "capture with the sizes you run" in size_guard.suggestion
    assert any("capture with an example that passes it" in entry.suggestion for entry in report.guards)


def test_every_record_of_a_real_model_is_in_the_report():
    pytest.importorskip("transformers")
    from tests.models.hf_zoo import hf_entries

    entry = next(entry for entry in hf_entries() if entry.name == "bert")
    model = entry.build().eval()
    result = fxkit.capture(model, entry.example(model))
    report = explain_capture(result)
    assert [e.name for e in report.guards] == [guard.name for guard in result.guards]
    assert len(report.specializations) == len(result.specializations)
    assert all(entry.location is not None for entry in report.guards)
    assert str(report) == str(explain_capture(result))  # deterministic


def test_requested_leaves_are_reported_as_such():
    report = explain(control_flow_zoo.LoggedSignBranch(), (torch.rand(2, 8),), leaf_modules=["logger"])
    [leaf] = report.leaves
    assert "requested leaf" in leaf.summary and leaf.reason == "named in leaf_modules"


def test_cli_explains_a_bundled_model(capsys):
    assert cli.main(["explain", "mlp"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("Capture of MLP:") and "0 guards" in out


def test_cli_explains_a_model_by_reference_with_shapes(capsys):
    assert cli.main(["explain", "tests.models.control_flow_zoo:RowLoop", "--shape", "3,8"]) == 0
    out = capsys.readouterr().out
    assert f"{ZOO_FILE}:{_line('for index in range(x.shape[0]):')}" in out
    assert "getitem = 3" in out


def test_cli_on_meta(capsys):
    assert cli.main(["explain", "transformer", "--meta"]) == 0
    assert capsys.readouterr().out.startswith("Capture of Transformer:")


def test_cli_errors_are_one_line(capsys):
    assert cli.main(["explain", "tests.models.control_flow_zoo:RowLoop"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("fxkit: error:") and "--shape" in err and len(err.strip().splitlines()) == 1
    assert cli.main(["explain", "mlp", "--shape", "2,y"]) == 1
    assert "--shape" in capsys.readouterr().err
    before = zoo.example_inputs("mlp")
    assert (
        cli.main(["explain", "tests.models.control_flow_zoo:SignBranch", "--shape", "4,8", "--dtype", "nope"])
        == 1
    )
    assert "not a torch dtype" in capsys.readouterr().err
    assert torch.equal(before[0], zoo.example_inputs("mlp")[0])
