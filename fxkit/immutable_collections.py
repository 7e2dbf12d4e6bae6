"""Read-only list and dict types used for ``Node.args`` and ``Node.kwargs``.

A node's arguments are shared with its users' bookkeeping, so editing them in place would silently
desynchronise ``users``. These containers refuse in-place edits and tell the caller what to do instead.
"""

from __future__ import annotations

from typing import Any, NoReturn

import torch.utils._pytree as pytree

__all__ = ["immutable_list", "immutable_dict"]

_HOW_TO_EDIT = (
    "Node arguments are read-only so that `users` stays exact. Build a new container and assign it "
    "instead, e.g. `new_args = (*node.args[:1], new_value)` then `node.args = new_args`, or use "
    "node.update_arg / update_kwarg."
)


def _refuse(self: Any, *args: Any, **kwargs: Any) -> NoReturn:
    raise TypeError(f"'{type(self).__name__}' object does not support mutation. {_HOW_TO_EDIT}")


class immutable_list(list):  # noqa: N801 - the lower-case name is the public torch.fx spelling
    """A ``list`` whose contents cannot change after construction."""

    __setitem__ = __delitem__ = __iadd__ = __imul__ = _refuse
    append = extend = insert = pop = remove = clear = sort = reverse = _refuse

    def __hash__(self) -> int:  # type: ignore[override]
        return hash(tuple(self))

    def __reduce__(self) -> tuple:
        return (immutable_list, (list(self),))


class immutable_dict(dict):  # noqa: N801
    """A ``dict`` whose contents cannot change after construction."""

    __setitem__ = __delitem__ = __ior__ = _refuse
    clear = pop = popitem = setdefault = update = _refuse

    def __hash__(self) -> int:  # type: ignore[override]
        return hash(tuple(self.items()))

    def __reduce__(self) -> tuple:
        return (immutable_dict, (dict(self),))


def _register_with_pytree() -> None:
    """Let torch's pytree flatten our containers like the builtin ones they mimic."""
    pytree.register_pytree_node(
        immutable_list,
        lambda seq: (list(seq), None),
        lambda values, _context: immutable_list(values),
        serialized_type_name="fxkit.immutable_collections.immutable_list",
    )
    pytree.register_pytree_node(
        immutable_dict,
        lambda mapping: (list(mapping.values()), list(mapping.keys())),
        lambda values, keys: immutable_dict(zip(keys, values)),
        serialized_type_name="fxkit.immutable_collections.immutable_dict",
    )


_register_with_pytree()
