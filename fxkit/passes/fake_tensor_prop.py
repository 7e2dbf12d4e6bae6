"""Run a graph on fake tensors and record each node's value in ``node.meta['val']``
(torch.fx's ``passes.fake_tensor_prop``)."""

from __future__ import annotations

from typing import Any, Optional

import torch
from torch._subclasses.fake_tensor import FakeTensorMode

from fxkit import _foreign
from fxkit.graph_module import GraphModule
from fxkit.interpreter import Interpreter
from fxkit.node import Node

__all__ = ["FakeTensorProp"]


class FakeTensorProp(Interpreter):
    """Propagates fake tensors (shapes, dtypes, devices, no data) through ``module``; every
    node's result, output included, is stored in ``node.meta['val']``.

    ``mode`` is the ``FakeTensorMode`` to run under (a new one by default). Parameters of the
    module are real tensors, so a module with parameters needs a mode created with
    ``allow_non_fake_inputs=True``.
    """

    def __init__(self, module: GraphModule, mode: Optional[FakeTensorMode] = None) -> None:
        # It writes node.meta["val"]: a converted copy would keep the results.
        _foreign.reject(module, "FakeTensorProp")
        super().__init__(module)
        self._mode = mode if mode is not None else FakeTensorMode()

    def run_node(self, n: Node) -> Any:
        result = super().run_node(n)
        n.meta["val"] = result
        return result

    def propagate(self, *args: object) -> Any:
        """Convert tensor ``args`` to fake tensors of the mode, then run."""
        fake_args = [self._mode.from_tensor(a) if isinstance(a, torch.Tensor) else a for a in args]
        return self.propagate_dont_convert_inputs(*fake_args)

    def propagate_dont_convert_inputs(self, *args: object) -> Any:
        """Run on ``args`` as given (tensors must already be fake tensors of the mode)."""
        with self._mode:
            return super().run(*args)
