"""Experimental passes and tools with torch.fx's module paths (``fxkit.experimental.optimization``,
``fxkit.experimental.const_fold`` ...). As in torch.fx, ``const_fold``, ``proxy_tensor`` and
``unification`` are attributes of the package after ``import fxkit``; the others (``normalize``,
``merge_matmul``, ``rewriter``, ``partitioner_utils``, ``schema_type_annotation``) are imported
by name. ``symbolic_shapes`` and ``sym_node`` hand out torch's own shape environment (through
:mod:`fxkit.interop`)."""

from . import _config, const_fold, optimization, proxy_tensor, unification  # noqa: F401

__all__ = ["const_fold", "optimization", "proxy_tensor", "unification"]
