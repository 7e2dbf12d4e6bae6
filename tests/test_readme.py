"""README.md's set-up commands and .ci/run stay in step."""

from __future__ import annotations

import os
import re
import shlex
import stat
from pathlib import Path

import pytest
import torch.fx

from fxkit import cli, zoo

REPO_ROOT = Path(__file__).resolve().parent.parent
README = REPO_ROOT / "README.md"
CI_SCRIPT = REPO_ROOT / ".ci" / "run"


def readme_shell_commands() -> list[str]:
    """The one-line commands of README.md's ```bash blocks, in order."""
    text = README.read_text(encoding="utf-8")
    blocks = re.findall(r"^```(?:bash|sh|console)\n(.*?)^```", text, flags=re.MULTILINE | re.DOTALL)
    return [line.strip() for block in blocks for line in block.splitlines() if line.strip()]


def ci_commands() -> list[str]:
    """The lines of .ci/run that do work: not the shebang, comments, shell options or the cd to the root."""
    lines = [line.strip() for line in CI_SCRIPT.read_text(encoding="utf-8").splitlines()]
    return [
        line
        for line in lines
        if line and not line.startswith("#") and not line.startswith("set ") and not line.startswith("cd ")
    ]


def readme_test_command() -> str:
    candidates = [command for command in readme_shell_commands() if "pytest" in command]
    assert len(candidates) == 1, f"README.md should give exactly one test command, found {candidates}"
    return candidates[0]


def test_ci_runs_exactly_the_readme_test_command() -> None:
    assert ci_commands() == [readme_test_command()]


def test_ci_script_is_strict_and_executable() -> None:
    lines = CI_SCRIPT.read_text(encoding="utf-8").splitlines()
    assert lines[0] == "#!/usr/bin/env bash"
    assert "set -euo pipefail" in lines
    assert CI_SCRIPT.stat().st_mode & stat.S_IXUSR
    assert os.access(CI_SCRIPT, os.X_OK)


def test_torch_is_always_pinned_to_the_wheel_on_disk() -> None:
    # A bare `pip install torch` could pull a CUDA build from the registry.
    for command in readme_shell_commands() + ci_commands():
        for step in command.split("&&"):
            words = shlex.split(step)
            if "install" in words:
                assert "torch" not in words, f"unpinned torch in: {step.strip()}"


def test_first_command_installs_and_traces_a_bundled_model() -> None:
    first = readme_shell_commands()[0]
    steps = [shlex.split(step) for step in first.split("&&")]
    assert steps[0] == ["python3", "-m", "pip", "install", "torch==2.13.0"]
    assert steps[1] == ["python3", "-m", "pip", "install", "-e", "."]
    assert steps[2][:2] == ["fxkit", "trace"]
    assert steps[2][2] in zoo.list_models()


def test_test_command_installs_the_dev_extra() -> None:
    steps = [shlex.split(step) for step in readme_test_command().split("&&")]
    assert ["python3", "-m", "pip", "install", "-e", ".[dev]", "-c", "constraints.txt"] in steps
    assert ["python3", "-m", "ruff", "check", "."] in steps
    assert ["python3", "-m", "ruff", "format", "--check", "."] in steps
    assert steps[-1][:3] == ["python3", "-m", "pytest"]


def test_every_dev_dependency_is_pinned_exactly() -> None:
    pins = {}
    for line in (REPO_ROOT / "constraints.txt").read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            assert version, f"constraints.txt: {line!r} is not an exact pin"
            pins[re.sub(r"[-_.]+", "-", name).lower()] = version
    assert pins["torch"] == "2.13.0"
    pyproject = (REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8")
    dev_block = re.search(r"^dev = \[(.*?)\]", pyproject, flags=re.MULTILINE | re.DOTALL)
    assert dev_block is not None
    for requirement in re.findall(r'"([^"]+)"', dev_block.group(1)):
        name = re.split(r"[<>=!~\[ ;]", requirement, maxsplit=1)[0]
        assert re.sub(r"[-_.]+", "-", name).lower() in pins, f"{name} is not pinned in constraints.txt"


def test_first_command_prints_the_code_torch_fx_generates(capsys: pytest.CaptureFixture[str]) -> None:
    # The main job, run in-process: what the README promises a fresh machine prints.
    trace_step = shlex.split(readme_shell_commands()[0].split("&&")[-1])
    assert cli.main(trace_step[1:]) == 0
    model = zoo.get_model(trace_step[2])
    assert capsys.readouterr().out.strip() == torch.fx.symbolic_trace(model).code.strip()
