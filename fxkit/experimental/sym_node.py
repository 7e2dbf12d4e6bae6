"""``fxkit.experimental.sym_node``: torch's ``SymNode`` (the node behind ``torch.SymInt``) and the
other names of ``torch.fx.experimental.sym_node``, read from torch through fxkit.interop when first
used, as ``fxkit.experimental.symbolic_shapes`` does for the shape environment.
"""

from __future__ import annotations

from ._torch_names import forwarders

__getattr__, __dir__ = forwarders("sym_node", lambda: list(globals()))
