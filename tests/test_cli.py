"""The ``fxkit`` command line: what it prints for each way of naming a model, and its errors."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
import torch.fx

from fxkit import zoo
from fxkit.cli import COMMANDS, main


def run(capsys, *argv):
    status = main(list(argv))
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def oracle_code(model) -> str:
    return torch.fx.symbolic_trace(model).code.strip("\n").rstrip()


@pytest.mark.parametrize("name", zoo.list_models())
def test_trace_prints_the_code_of_each_bundled_model(capsys, name):
    status, out, err = run(capsys, "trace", name)
    assert status == 0 and err == ""
    assert out.rstrip("\n") == oracle_code(zoo.get_model(name))


def test_show_graph_and_table(capsys):
    status, out, _ = run(capsys, "trace", "mlp", "--show", "graph")
    assert status == 0
    assert out.rstrip("\n") == str(torch.fx.symbolic_trace(zoo.get_model("mlp")).graph)
    status, out, _ = run(capsys, "trace", "mlp", "--show", "table")
    assert status == 0
    lines = out.splitlines()
    assert lines[0].split() == ["opcode", "name", "target", "args", "kwargs"]
    assert [line.split()[1] for line in lines[2:]] == [
        n.name for n in torch.fx.symbolic_trace(zoo.get_model("mlp")).graph.nodes
    ]


def test_module_attribute_forms(capsys, tmp_path):
    source = tmp_path / "models.py"
    source.write_text(
        textwrap.dedent(
            """
        import torch

        class Doubler(torch.nn.Module):
            def forward(self, x):
                return x * 2

        instance = Doubler()

        def build():
            return torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.ReLU())

        def not_a_module():
            return 3

        class NeedsArgs(torch.nn.Module):
            def __init__(self, width):
                super().__init__()
        """
        )
    )
    for attr in ("Doubler", "instance"):
        status, out, _ = run(capsys, "trace", f"{source}:{attr}")
        assert status == 0 and "mul = x * 2" in out
    status, out, _ = run(capsys, "trace", f"{source}:build")
    assert status == 0 and '_0 = getattr(self, "0")(input_1)' in out
    status, out, _ = run(capsys, "trace", "fxkit.zoo:mlp")
    assert status == 0 and out.rstrip("\n") == oracle_code(zoo.get_model("mlp"))

    for spec, expected in (
        (f"{source}:not_a_module", "returned int, not a torch.nn.Module"),
        (f"{source}:NeedsArgs", "cannot build NeedsArgs without arguments"),
        (f"{source}:missing", "has no attribute 'missing'"),
        (f"{tmp_path}/absent.py:x", "no such file"),
        ("no_such_package_xyz:thing", "cannot import 'no_such_package_xyz'"),
        ("nope", "unknown model 'nope'"),
    ):
        status, out, err = run(capsys, "trace", spec)
        assert status == 1 and out == ""
        assert err.startswith("fxkit: error: ") and expected in err and err.count("\n") == 1


def test_trace_error_is_one_line_naming_the_user_code(capsys, tmp_path):
    source = tmp_path / "dyn.py"
    source.write_text(
        "import torch\n\nclass D(torch.nn.Module):\n    def forward(self, x):\n        if x.sum() > 0:\n            return x\n        return -x\n"
    )
    status, out, err = run(capsys, "trace", f"{source}:D")
    assert status == 1 and out == ""
    assert "symbolically traced variables cannot be used as inputs to control flow" in err
    assert f"{source}:5" in err and err.count("\n") == 1 and "Traceback" not in err


def test_the_command_as_a_process_fails_without_traceback():
    bad = subprocess.run([sys.executable, "-m", "fxkit.cli", "trace", "nope"], capture_output=True, text=True)
    assert bad.returncode == 1 and bad.stderr.count("\n") == 1 and "Traceback" not in bad.stderr


def test_usage_errors_and_command_table():
    assert [command.name for command in COMMANDS][0] == "trace"
    with pytest.raises(SystemExit) as info:
        main([])
    assert info.value.code == 2
    with pytest.raises(SystemExit):
        main(["trace", "mlp", "--show", "pictures"])
