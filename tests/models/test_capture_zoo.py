"""The capture zoo: every model through torch.fx's symbolic_trace and through fxkit.capture.

For each model: torch.fx's result (ok or its error class), the capture, equality with eager on
the example input and on a second input of the same shapes, and the inputs that take another
path (each gives eager's result or makes a guard fire; at least one must fire a guard whose message
names it and the user's file:line). The coverage table is printed at the end (``-s`` to see it).

Marked ``models``: ``pytest -m 'not models'`` leaves it out; the default run includes it.
"""

from __future__ import annotations

from typing import Dict

import pytest

from tests.models import GUARD_MESSAGE, ZooResult, all_entries, coverage_table, run_entry

pytest.importorskip("transformers")

pytestmark = pytest.mark.models

ENTRIES = all_entries()
_results: Dict[str, ZooResult] = {}


def _result(name: str) -> ZooResult:
    if name not in _results:
        entry = next(entry for entry in ENTRIES if entry.name == name)
        _results[name] = run_entry(entry)
    return _results[name]


def test_the_zoo_covers_text_vision_and_audio():
    hf = [entry for entry in ENTRIES if entry.category != "control-flow"]
    assert len(hf) >= 20
    assert {"text-encoder", "decoder", "decoder+cache", "encoder-decoder", "vision", "audio"} <= {
        entry.category for entry in hf
    }


@pytest.mark.parametrize("name", [entry.name for entry in ENTRIES])
def test_capture_matches_eager_and_guards_fire(name):
    result = _result(name)
    assert result.capture_status == "ok", result.capture_error
    assert result.same_on_example, "captured graph differs from eager on the example input"
    assert result.same_on_second, "captured graph differs from eager on a second input of the same shapes"
    assert "MISMATCH" not in result.other_paths, f"a wrong result instead of a guard: {result.other_paths}"
    assert result.guard_fired, f"no guard fired on the inputs that take another path: {result.other_paths}"
    assert GUARD_MESSAGE.search(result.guard_message), result.guard_message


def test_coverage_table():
    results = [_result(entry.name) for entry in ENTRIES]
    table = coverage_table(results)
    print("\n" + table)
    captured = sum(result.captured for result in results)
    assert captured >= 0.95 * len(results), table
    # torch.fx's own count is in the table beside ours; it must have been measured for every model.
    assert all(result.fx_status != "-" for result in results)
