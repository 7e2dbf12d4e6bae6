"""Experimental passes with torch.fx's module paths (``fxkit.experimental.optimization``,
``fxkit.experimental.const_fold``)."""
