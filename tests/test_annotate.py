"""fxkit.annotate.annotate against torch.fx.annotate.annotate."""

from __future__ import annotations

from typing import Any

import pytest
import torch
import torch.fx
import torch.fx.annotate

import fxkit
import fxkit.annotate


def _annotated_code(fx: Any, annotate: Any) -> str:
    def f(x):  # type: ignore[no-untyped-def]  (an annotation would type the placeholder already)
        x = annotate(x, torch.Tensor)
        return x + 1

    return fx.symbolic_trace(f).code


def test_annotate_types_the_traced_value_like_torch_fx() -> None:
    ours = _annotated_code(fxkit, fxkit.annotate.annotate)
    assert ours == _annotated_code(torch.fx, torch.fx.annotate.annotate)
    assert fxkit.annotate.annotate(3, int) == 3


def test_annotating_a_typed_value_raises_like_torch_fx() -> None:
    def message(fx: Any, annotate: Any) -> str:
        def f(x: int) -> Any:
            return annotate(x, torch.Tensor)

        with pytest.raises(RuntimeError) as caught:
            fx.symbolic_trace(f)
        return str(caught.value)

    assert message(fxkit, fxkit.annotate.annotate) == message(torch.fx, torch.fx.annotate.annotate)
