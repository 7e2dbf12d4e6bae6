"""The capture zoo: every model called as users call it, through torch.fx and through fxkit.capture.

For each model: torch.fx's result (ok or its error class), the capture, a differential check of
eager against the captured graph on the example and on two more inputs of the same structure
(every tensor of the output, every type, every plain value, and the inputs the model updates in
place such as a cache), and the inputs that take another path (each gives eager's result or makes
a guard fire whose message names the user's file:line). The coverage table is printed at the end
(``-s`` to see it).

Marked ``models``: ``pytest -m 'not models'`` leaves it out; the default run includes it.
"""

from __future__ import annotations

from collections import Counter
from typing import Dict

import pytest

from tests.models import GUARD_MESSAGE, ZooResult, all_entries, coverage_table, run_entry

pytest.importorskip("transformers")

from tests.models.hf_zoo import defined_hf_entries  # noqa: E402

pytestmark = pytest.mark.models

ENTRIES = all_entries()
_results: Dict[str, ZooResult] = {}


def _result(name: str) -> ZooResult:
    if name not in _results:
        entry = next(entry for entry in ENTRIES if entry.name == name)
        _results[name] = run_entry(entry)
    return _results[name]


def test_the_zoo_calls_models_as_users_do():
    defined = defined_hf_entries()
    by_category = Counter(entry.category for entry in defined)
    decoders = {entry.name for entry in defined if entry.category == "decoder" and "+" not in entry.name}
    for name in decoders:
        names = {entry.name for entry in defined}
        assert {f"{name}+labels", f"{name}+past_key_values", f"{name}+cache"} <= names, name
    assert len(decoders) >= 10
    assert (
        sum(entry.name.endswith("+labels") for entry in defined if entry.category == "encoder-decoder") >= 3
    )
    assert by_category["text-encoder"] >= 5 and "bert-classifier+labels" in {entry.name for entry in defined}
    assert by_category["vision"] >= 5 and by_category["audio"] >= 2 and by_category["multimodal"] >= 1


@pytest.mark.parametrize("name", [entry.name for entry in ENTRIES])
def test_capture_matches_eager_and_other_paths_guard(name):
    result = _result(name)
    assert result.capture_status == "ok", result.capture_error
    assert result.differences[0] == "", (
        f"the captured graph differs from eager on the example: {result.differences[0]}"
    )
    assert result.same_as_eager, (
        f"the captured graph differs from eager on inputs of the same structure: {result.differences}"
    )
    wrong = [outcome for outcome in result.other_paths if outcome.startswith("MISMATCH")]
    assert not wrong, f"a wrong result instead of a guard: {wrong}"
    if result.guard_fired:
        assert GUARD_MESSAGE.search(result.guard_message), result.guard_message


def test_coverage_table():
    results = [_result(entry.name) for entry in ENTRIES]
    table = coverage_table(results)
    print("\n" + table)
    captured = sum(result.captured for result in results)
    assert captured >= 0.95 * len(results), table
    # torch.fx's own count is in the table beside ours; it must have been measured for every model.
    assert all(result.fx_status != "-" for result in results)
