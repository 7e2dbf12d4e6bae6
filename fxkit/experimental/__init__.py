"""Experimental passes with torch.fx's module paths (``fxkit.experimental.optimization``,
``fxkit.experimental.const_fold``)."""

from . import const_fold, optimization, proxy_tensor

__all__ = ["const_fold", "optimization", "proxy_tensor"]
