"""torch.fx's lazy-recompilation switches, under the module path code written for torch.fx imports.

An fxkit GraphModule already generates its code lazily: ``recompile()`` only marks the code stale,
and the source is built on the first call or the first read of ``code``. So the switches below
change nothing; they exist so that such code runs unchanged.
"""

from __future__ import annotations

import contextlib
from typing import Any, Iterator, Optional, Type

from .graph_module import GraphModule

__all__ = [
    "_LazyGraphModule",
    "_force_skip_lazy_graph_module",
    "_make_graph_module",
    "_use_lazy_graph_module",
]

# Every fxkit GraphModule defers its code generation, so the lazy class is GraphModule itself.
_LazyGraphModule = GraphModule


@contextlib.contextmanager
def _use_lazy_graph_module(should_use: bool) -> Iterator[None]:
    """Accepted for torch.fx compatibility; fxkit GraphModules are always lazy."""
    yield


@contextlib.contextmanager
def _force_skip_lazy_graph_module() -> Iterator[None]:
    """Accepted for torch.fx compatibility; see the module docstring."""
    yield


def _make_graph_module(
    *args: Any, graph_module_cls: Optional[Type[GraphModule]] = None, **kwargs: Any
) -> GraphModule:
    """Build a GraphModule (or ``graph_module_cls``) from ``(root, graph, class_name)``."""
    return (graph_module_cls or GraphModule)(*args, **kwargs)
