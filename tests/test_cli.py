"""The ``fxkit`` command line: what it prints for each way of naming a model, and its errors."""

from __future__ import annotations

import io
import os
import resource
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest
import torch.fx

from fxkit import zoo
from fxkit.cli import COMMANDS, load_model, main, progress


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


def _run_module(*argv, **kwargs):
    return subprocess.run([sys.executable, "-m", "fxkit", *argv], capture_output=True, text=True, **kwargs)


def test_python_dash_m_fxkit_is_the_command(tmp_path):
    done = _run_module("trace", "mlp")
    assert done.returncode == 0 and done.stdout.rstrip("\n") == oracle_code(zoo.get_model("mlp"))
    bad = _run_module("explain", "mlp", "--inputs", "nope_pkg:x")
    assert bad.returncode == 1 and bad.stdout == ""
    assert bad.stderr.startswith("fxkit: error: ") and bad.stderr.count("\n") == 1, bad.stderr
    assert "Traceback" not in bad.stderr and "cannot import 'nope_pkg'" in bad.stderr


def test_ctrl_c_exits_130_without_a_traceback(tmp_path):
    started = tmp_path / "started"
    source = tmp_path / "slow.py"
    source.write_text(
        "import pathlib, time, torch\n"
        "def build():\n"
        f"    pathlib.Path({str(started)!r}).write_text('yes')\n"
        "    time.sleep(60)\n"
        "    return torch.nn.ReLU()\n"
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "fxkit", "trace", f"{source}:build"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # A test run started in the background (nohup, `&`) ignores SIGINT, and so would the child:
        # Python installs its KeyboardInterrupt handler only where SIGINT is not ignored.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        deadline = time.monotonic() + 60
        while not started.exists() and time.monotonic() < deadline and process.poll() is None:
            time.sleep(0.05)
        assert started.exists()
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 130 and out == ""
    assert "Traceback" not in err and err.strip() == "fxkit: interrupted"


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def test_progress_shows_on_a_terminal_only():
    terminal, pipe = _Terminal(), io.StringIO()
    with progress("working hard", terminal):
        time.sleep(0.6)
    with progress("working hard", pipe):
        time.sleep(0.3)
    assert "fxkit: working hard (" in terminal.getvalue() and terminal.getvalue().endswith("\r\x1b[2K")
    assert pipe.getvalue() == ""
    with pytest.raises(ZeroDivisionError):
        with progress("failing", terminal):
            1 / 0
    assert not [thread for thread in threading.enumerate() if thread.name == "fxkit-progress"]


def test_hf_models_from_their_default_config_with_overrides(capsys):
    pytest.importorskip("transformers")
    model = load_model("hf:GPT2LMHeadModel", config=["n_layer=1", "n_embd=32", "n_head=2", "vocab_size=50"])
    assert model.config.n_layer == 1 and len(model.transformer.h) == 1 and not model.training
    assert model.transformer.wte.weight.shape == (50, 32)
    on_meta = load_model("hf:GPT2LMHeadModel", meta=True, config=["n_layer=1"])
    assert {p.device.type for p in on_meta.parameters()} == {"meta"}
    for argv, expected in (
        (["hf:GPT2LMHeadModel", "--config", "n_layers=1"], "GPT2Config has no field 'n_layers'"),
        (["hf:NoSuchModel"], "transformers has no model class 'NoSuchModel'"),
        (["mlp", "--config", "a=1"], "--config applies to hf: models only"),
        (["hf:GPT2LMHeadModel", "--config", "n_layer"], "expected KEY=VALUE"),
    ):
        status, out, err = run(capsys, "trace", *argv)
        assert status == 1 and out == "" and err.count("\n") == 1 and expected in err, err


@pytest.mark.slow
def test_explain_llama_7b_on_meta_from_the_command_line():
    """``fxkit explain hf:LlamaForCausalLM --meta``: the 7B default config, no weights allocated.

    On CPU its weights are 27 GB, so a peak RSS far below that shows nothing was allocated.
    """
    pytest.importorskip("transformers")
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    done = _run_module("explain", "hf:LlamaForCausalLM", "--meta", env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.startswith("Capture of LlamaForCausalLM: ")
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    assert peak_mb < 2048
