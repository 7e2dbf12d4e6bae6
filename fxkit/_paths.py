"""Dotted attribute paths (``layer1.0.conv1``): the one walker the package uses to follow them."""

from __future__ import annotations

from typing import Any, List, Tuple


class MissingAttribute(AttributeError):
    """``qualified_name`` does not resolve on ``root``; ``missing`` is its shortest absent prefix."""

    def __init__(self, root: Any, qualified_name: str, missing: str) -> None:
        super().__init__(
            f"{type(root).__name__} has no attribute {missing!r} (looking up {qualified_name!r})"
        )
        self.root = root
        self.qualified_name = qualified_name
        self.missing = missing


def resolve(root: Any, qualified_name: str) -> Any:
    """The object at ``root.<qualified_name>``; raises ``MissingAttribute`` naming the absent prefix."""
    owner = root
    atoms = qualified_name.split(".")
    for depth, atom in enumerate(atoms):
        try:
            owner = getattr(owner, atom)
        except AttributeError:
            raise MissingAttribute(root, qualified_name, ".".join(atoms[: depth + 1])) from None
    return owner


def split_parent(qualified_name: str) -> Tuple[str, str]:
    """``("a.b", "c")`` for ``"a.b.c"``; the parent is ``""`` for a single atom."""
    parent, _, leaf = qualified_name.rpartition(".")
    return parent, leaf


def walk_modules(root: Any) -> List[Tuple[str, Any]]:
    """``(path, module)`` for ``root`` and each submodule below it, each module once at its first path.

    The same pairs in the same order as ``root.named_modules()``, without its recursive generators
    (one frame per level) that made this walk a visible part of tracing a small model.
    """
    found: List[Tuple[str, Any]] = []
    seen = set()
    pending: List[Tuple[str, Any]] = [("", root)]
    while pending:
        path, module = pending.pop()
        if id(module) in seen:
            continue
        seen.add(id(module))
        found.append((path, module))
        prefix = path + "." if path else ""
        children = [(prefix + name, child) for name, child in module._modules.items() if child is not None]
        children.reverse()
        pending.extend(children)
    return found
