"""The tracer under the module path torch.fx users import it from
(``torch.fx._symbolic_trace.Tracer``, ``...wrap``); the code lives in :mod:`fxkit.tracer`."""

from .tracer import PH, PHBase, ProxyableClassMeta, Tracer, _assert_is_none, symbolic_trace, wrap  # noqa: F401

__all__ = ["PH", "PHBase", "ProxyableClassMeta", "Tracer", "symbolic_trace", "wrap"]
