"""``PassBase``: a graph pass as an object with pre/post-condition hooks."""

from __future__ import annotations

import abc
from typing import NamedTuple, Optional

from ... import _foreign
from ...graph_module import GraphModule

__all__ = ["PassBase", "PassResult"]


class PassResult(NamedTuple):
    """What a pass returns: the (possibly new) module and whether anything changed."""

    graph_module: GraphModule
    modified: bool


class PassBase(abc.ABC):
    """Subclass and implement ``call``; calling the instance runs ``requires``, ``call``, ``ensures``.

    A torch.fx GraphModule is refused (a pass may edit it in place), unless the subclass sets
    ``_converts_torch_fx = True`` because its ``call`` only reads the module it is given.
    """

    _converts_torch_fx = False

    def __call__(self, graph_module: GraphModule) -> Optional[PassResult]:
        if self._converts_torch_fx:
            graph_module = _foreign.convert(graph_module)
        else:
            _foreign.reject(graph_module, type(self).__name__)
        self.requires(graph_module)
        result = self.call(graph_module)
        self.ensures(graph_module)
        return result

    @abc.abstractmethod
    def call(self, graph_module: GraphModule) -> Optional[PassResult]:
        """Transform ``graph_module`` and report the result."""

    def requires(self, graph_module: GraphModule) -> None:  # noqa: B027 - optional hook
        """Check preconditions before ``call``; raise to refuse."""

    def ensures(self, graph_module: GraphModule) -> None:  # noqa: B027 - optional hook
        """Check postconditions after ``call``; raise to flag a broken result."""
