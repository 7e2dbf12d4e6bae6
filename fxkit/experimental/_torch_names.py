"""Module-level ``__getattr__`` and ``__dir__`` that hand out the names of one of torch's shape
modules (see :func:`fxkit.interop.torch_shape_module`); the module is imported on the first read."""

from __future__ import annotations

from typing import Any, Callable, List, Tuple


def forwarders(
    shape_module: str, own: Callable[[], List[str]]
) -> Tuple[Callable[[str], Any], Callable[[], List[str]]]:
    """``(__getattr__, __dir__)`` for a module standing for ``torch.fx.experimental.<shape_module>``;
    ``own`` lists the standing module's own names."""

    def read(name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        from fxkit.interop import torch_shape_module

        return getattr(torch_shape_module(shape_module), name)

    def names() -> List[str]:
        from fxkit.interop import torch_shape_module

        return sorted(set(own()) | set(dir(torch_shape_module(shape_module))))

    return read, names
