"""Dotted attribute paths (``layer1.0.conv1``): the one walker the package uses to follow them.

``resolve`` follows a path (raising ``MissingAttribute``, an AttributeError naming the absent
prefix), ``lookup`` follows it or gives a default, ``make_parents`` walks to the holder of the
last name creating holders on the way, ``walk_modules`` lists a module tree. Callers turn
``MissingAttribute`` into their own message where they owe torch.fx's wording.
"""

from __future__ import annotations

from operator import attrgetter
from typing import Any, Callable, List, Optional, Tuple


class MissingAttribute(AttributeError):
    """``qualified_name`` does not resolve on ``root``; ``missing`` is its shortest absent prefix and
    ``error`` the AttributeError that getattr raised there."""

    def __init__(self, root: Any, qualified_name: str, missing: str, error: AttributeError) -> None:
        super().__init__(
            f"{type(root).__name__} has no attribute {missing!r} (looking up {qualified_name!r})"
        )
        self.root = root
        self.qualified_name = qualified_name
        self.missing = missing
        self.error = error


def resolve(root: Any, qualified_name: str) -> Any:
    """The object at ``root.<qualified_name>``; raises ``MissingAttribute`` naming the absent prefix."""
    try:
        return attrgetter(qualified_name)(root)  # one C call on the common path
    except AttributeError:
        pass
    owner = root
    atoms = qualified_name.split(".")
    for depth, atom in enumerate(atoms):
        try:
            owner = getattr(owner, atom)
        except AttributeError as error:
            raise MissingAttribute(root, qualified_name, ".".join(atoms[: depth + 1]), error) from None
    return owner  # the first lookup failed inside a property that worked the second time


def lookup(root: Any, qualified_name: str, default: Any = None) -> Any:
    """The object at ``root.<qualified_name>``, or ``default`` when some name on the way is missing."""
    try:
        return resolve(root, qualified_name)
    except MissingAttribute:
        return default


#: What ``make_parents`` hands ``is_holder`` for a name that is not there at all.
MISSING: Any = object()


def _present(value: Any) -> bool:
    return value is not None and value is not MISSING


def make_parents(
    root: Any,
    qualified_name: str,
    new_holder: Callable[[], Any],
    is_holder: Callable[[Any], bool] = _present,
    attach: Callable[[Any, str, Any], None] = setattr,
) -> Tuple[Any, str]:
    """The object that holds the last name of ``qualified_name`` below ``root``, and that name.

    Walking down, a name whose value (``MISSING`` when absent) fails ``is_holder`` gets a fresh
    ``new_holder()``, installed with ``attach(owner, name, holder)``. ``is_holder`` may raise to
    stop the walk at a value that is in the way."""
    *parents, leaf = qualified_name.split(".")
    owner = root
    for atom in parents:
        child: Optional[Any] = getattr(owner, atom, MISSING)
        if not is_holder(child):
            child = new_holder()
            attach(owner, atom, child)
        owner = child
    return owner, leaf


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
