"""fxkit.pipeline on real processes: torchrun launches 2 and 4 CPU ranks (gloo) that train one step
with torch's schedules and compare outputs, losses and every gradient with a single-process run
(see tests/_pipeline_worker.py for the checks each rank makes)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

WORKER = Path(__file__).with_name("_pipeline_worker.py")
ROOT = Path(__file__).resolve().parents[1]


def _launch(processes: int, cases: list[str], results: Path) -> None:
    environment = dict(
        os.environ,
        PIPELINE_RESULTS=str(results),
        OMP_NUM_THREADS="1",
        PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    )
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc-per-node={processes}",
        str(WORKER),
        *cases,
    ]
    result = subprocess.run(command, capture_output=True, text=True, env=environment, timeout=600)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-8000:]


# Between them the two launches cover every model with GPipe and 1F1B, an interleaved schedule, and a
# keyword input (an attention mask) given to schedule.step.
CASES_2 = ["tiny:gpipe:1", "tiny:interleaved:2", "llama:1f1b:1", "gpt2:gpipe:1", "llama+mask:gpipe:1"]
CASES_4 = ["tiny:1f1b:1", "llama:gpipe:1", "gpt2:1f1b:1"]


@pytest.mark.parametrize(("processes", "cases"), [(2, CASES_2), (4, CASES_4)], ids=["2-ranks", "4-ranks"])
def test_stages_on_processes_match_single_process_outputs_and_gradients(
    processes: int, cases: list[str], tmp_path: Path
) -> None:
    pytest.importorskip("transformers")
    _launch(processes, cases, tmp_path)
    for rank in range(processes):
        passed = [line.split() for line in (tmp_path / f"rank{rank}.txt").read_text().splitlines()]
        assert [case for case, _ in passed] == cases
        assert all(int(count) > 0 for _, count in passed)
