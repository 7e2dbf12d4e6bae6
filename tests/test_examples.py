"""Every script in examples/ runs to completion (each one checks its own result with asserts)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((ROOT / "examples").glob("*.py"))


def test_the_spec_examples_are_all_there() -> None:
    names = {path.stem for path in EXAMPLES}
    assert {"replace_one_op", "conv_bn_fusion", "quantization", "invert", "shape_propagation", "profiler"} <= names


@pytest.mark.slow
@pytest.mark.parametrize("script", EXAMPLES, ids=[path.stem for path in EXAMPLES])
def test_example_runs(script: Path) -> None:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    completed = subprocess.run(
        [sys.executable, str(script)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert completed.returncode == 0, f"{script.name} failed:\n{completed.stdout}\n{completed.stderr}"
    assert completed.stdout.strip(), f"{script.name} printed nothing"
