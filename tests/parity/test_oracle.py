"""The parity oracle itself: the registry refuses duplicate names and run_snippet enforces declared errors."""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any

import pytest
import torch.fx

from . import oracle
from .oracle import run_snippet, snippet, sweep


def section_modules() -> list[Any]:
    package = importlib.import_module(__package__)
    names = [info.name for info in pkgutil.iter_modules(package.__path__) if info.name.startswith("test_")]
    return [importlib.import_module(f"{__package__}.{name}") for name in names if name != "test_oracle"]


def test_every_section_sweeps_its_own_uniquely_named_snippets() -> None:
    modules = section_modules()
    total = 0
    for module in modules:
        snippets = sweep(module.__name__)
        names = [function.__name__ for function in snippets]
        assert names and len(names) == len(set(names)), module.__name__
        assert all(function.__module__ == module.__name__ for function in snippets)
        assert callable(module.test_fxkit_matches_torch_fx)
        total += len(names)
    assert len(modules) >= 20 and total >= 120


def test_a_name_registered_twice_in_one_sweep_is_refused() -> None:
    def twin(fx: Any) -> Any:
        return 1

    twin.__module__ = "parity_oracle_probe"
    try:
        snippet(twin)
        with pytest.raises(ValueError, match="registered twice"):
            snippet(raises=(TypeError, "x"))(twin)
        assert [function.__name__ for function in sweep("parity_oracle_probe")] == ["twin"]
    finally:
        oracle.SNIPPETS.pop("parity_oracle_probe", None)


def test_undeclared_errors_fail_and_declared_ones_must_happen() -> None:
    def broken(fx: Any) -> Any:
        raise ValueError("boom")

    def quiet(fx: Any) -> Any:
        return 1

    broken.expected_error = None  # type: ignore[attr-defined]
    quiet.expected_error = (TypeError, "never raised")  # type: ignore[attr-defined]
    with pytest.raises(ValueError, match="boom"):
        run_snippet(broken, torch.fx)
    with pytest.raises(pytest.fail.Exception):
        run_snippet(quiet, torch.fx)
