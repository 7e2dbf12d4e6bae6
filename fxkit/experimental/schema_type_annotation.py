"""Type annotations for nodes, read from Python signatures: the return annotation of standard
``torch.nn`` modules' ``forward`` and of ``torch.nn.functional`` functions, and the inferred type
of attributes fetched by ``get_attr``."""

from __future__ import annotations

import inspect
from typing import Any, Callable, Dict, Optional, Tuple

import torch

from fxkit.interpreter import Transformer
from fxkit.node import Argument, Target
from fxkit.operator_schemas import _python_type

__all__ = ["AnnotateTypesWithSchema"]


class AnnotateTypesWithSchema(Transformer):
    """A Transformer that copies the graph and sets ``node.type`` where a signature says it:
    calls of ``torch.nn.functional`` functions (``annotate_functionals``), calls of modules
    defined in ``torch.nn`` (``annotate_modules``; subclasses defined elsewhere are skipped)
    and ``get_attr`` of values TorchScript can type (``annotate_get_attrs``).

    ``annotated = AnnotateTypesWithSchema(fxkit.symbolic_trace(model)).transform()``
    """

    def __init__(
        self, module: torch.nn.Module, annotate_functionals: bool = True, annotate_modules: bool = True,
        annotate_get_attrs: bool = True,
    ) -> None:  # fmt: skip
        super().__init__(module)
        self.annotate_functionals = annotate_functionals
        self.annotate_modules = annotate_modules
        self.annotate_get_attrs = annotate_get_attrs

    def call_function(self, target: Target, args: Tuple[Argument, ...], kwargs: Dict[str, Any]) -> Any:
        found = None
        if self.annotate_functionals and getattr(target, "__module__", None) == "torch.nn.functional":
            found = self._extract_python_return_type(target)  # type: ignore[arg-type]
        return _with_type(super().call_function(target, args, kwargs), found)

    def call_module(self, target: Target, args: Tuple[Argument, ...], kwargs: Dict[str, Any]) -> Any:
        found = None
        assert isinstance(target, str)
        submodule = self.fetch_attr(target)
        if self.annotate_modules and type(submodule).__module__.startswith("torch.nn."):
            found = self._extract_python_return_type(type(submodule).forward)
        return _with_type(super().call_module(target, args, kwargs), found)

    def get_attr(self, target: Target, args: Tuple[Argument, ...], kwargs: Dict[str, Any]) -> Any:
        proxy = super().get_attr(target, args, kwargs)
        if self.annotate_get_attrs:
            assert isinstance(target, str)
            inferred = torch._C._jit_try_infer_type(self.fetch_attr(target))
            if inferred.success():
                _with_type(proxy, _python_type(inferred.type()))
        return proxy

    def _extract_python_return_type(self, target: Callable[..., Any]) -> Optional[Any]:
        """The return annotation of ``target``'s signature, or None (none given, or no signature)."""
        try:
            annotation = inspect.signature(target).return_annotation
        except (TypeError, ValueError):
            return None
        return None if annotation is inspect.Signature.empty else annotation


def _with_type(proxy: Any, type_expr: Optional[Any]) -> Any:
    """Set the type of the node behind ``proxy`` unless it has one (or ``type_expr`` is None)."""
    if type_expr is not None and proxy.node.type is None:
        proxy.node.type = type_expr
    return proxy
