"""The tracer under the module path torch.fx users import it from
(``torch.fx._symbolic_trace.Tracer``, ``...wrap``); the code lives in :mod:`fxkit.tracer`."""

# fmt: off
from .node import map_aggregate  # noqa: F401  (torch.fx has these names here too)
from .proxy import ParameterProxy, Proxy, Scope, ScopeContextManager, TracerBase  # noqa: F401
from .tracer import (  # noqa: F401
    PH,
    PHBase,
    PHWithMeta,
    ProxyableClassMeta,
    Tracer,
    _assert_is_none,
    _wrapped_methods_to_patch,
    is_fx_symbolic_tracing,
    is_fx_tracing,
    is_fx_tracing_warning,
    symbolic_trace,
    wrap,
)

__all__ = [
    "PH", "PHBase", "PHWithMeta", "ProxyableClassMeta", "Tracer", "is_fx_symbolic_tracing", "is_fx_tracing",
    "symbolic_trace", "wrap",
]
# fmt: on
