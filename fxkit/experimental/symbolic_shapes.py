"""torch's dynamic-shape module under torch.fx's path: ``fxkit.experimental.symbolic_shapes.X`` is torch's
``torch.fx.experimental.symbolic_shapes.X`` (``ShapeEnv``, ``guard_int``, ``statically_known_true``, ``free_symbols``, ...).

Symbolic sizes are torch's own machinery, shared by Dynamo, torch.export, fake tensors and
``make_fx(tracing_mode="symbolic")``; there is one of it, so this module forwards each name to it
through :func:`fxkit.interop.torch_shape_module`. torch.fx is imported when a name is first read,
not when this module is.
"""

from __future__ import annotations

from ._torch_names import forwarders

__getattr__, __dir__ = forwarders("symbolic_shapes", lambda: list(globals()))
