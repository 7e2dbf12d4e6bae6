"""The tracer under the module path torch.fx users import it from
(``torch.fx._symbolic_trace.Tracer``, ``...wrap``); the code lives in :mod:`fxkit.tracer`."""

# fmt: off
from .tracer import (  # noqa: F401
    PH,
    PHBase,
    PHWithMeta,
    ProxyableClassMeta,
    Tracer,
    _assert_is_none,
    is_fx_symbolic_tracing,
    is_fx_tracing,
    symbolic_trace,
    wrap,
)

__all__ = [
    "PH", "PHBase", "PHWithMeta", "ProxyableClassMeta", "Tracer", "is_fx_symbolic_tracing", "is_fx_tracing",
    "symbolic_trace", "wrap",
]
# fmt: on
