"""Every script in examples/ runs to completion (each one checks its own result with asserts).

Scripts run in this process with ``runpy`` (as ``__main__``): a fresh interpreter per script
would spend most of the time importing torch again.
"""

from __future__ import annotations

import runpy
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((ROOT / "examples").glob("*.py"))


def test_the_spec_examples_are_all_there() -> None:
    names = {path.stem for path in EXAMPLES}
    assert {
        "replace_one_op",
        "conv_bn_fusion",
        "quantization",
        "invert",
        "shape_propagation",
        "profiler",
    } <= names


@pytest.mark.parametrize("script", EXAMPLES, ids=[path.stem for path in EXAMPLES])
def test_example_runs(script: Path, capsys: pytest.CaptureFixture) -> None:
    runpy.run_path(str(script), run_name="__main__")
    assert capsys.readouterr().out.strip(), f"{script.name} printed nothing"
