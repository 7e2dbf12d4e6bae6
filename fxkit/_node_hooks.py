"""Callbacks a GraphModule runs when nodes of its graph are created, erased or rewired.

torch.fx keeps these on the GraphModule (``_register_create_node_hook`` and friends); passes
such as ``GraphTransformObserver`` use them to see what a transformation did. Graph building is a
hot path, so the graph asks one module-level counter first: while no hook is registered anywhere,
creating, erasing or rewiring a node costs one attribute read more than it did without hooks.

The counter counts registrations, not live modules: a module dropped with hooks still registered
keeps the check on (correct, only a little slower) until the process ends.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any, Callable, Dict, Iterator, List

if TYPE_CHECKING:
    from .graph_module import GraphModule
    from .node import Node

# Hook registrations alive anywhere; graph code runs hooks only while this is non-zero.
registered = 0

# The GraphModule attribute holding each kind of hook (torch.fx's names), and the kind's name.
HOOK_LISTS: Dict[str, str] = {
    "create": "_create_node_hooks",
    "erase": "_erase_node_hooks",
    "replace": "_replace_hooks",
    "deepcopy": "_deepcopy_hooks",
}


class HookNotCallableError(AssertionError, TypeError):
    """A hook that cannot be called (torch.fx raises AssertionError; TypeError is the honest kind)."""


def install_empty(module: "GraphModule") -> None:
    """Give ``module`` its own empty hook lists."""
    for attribute in HOOK_LISTS.values():
        module.__dict__[attribute] = []


def adopt_copies(module: "GraphModule", source: Dict[str, Any]) -> None:
    """Give ``module`` copies of the hook lists in ``source`` (a module ``__dict__``), as a deep
    copy of a GraphModule keeps the hooks of the original."""
    global registered
    for attribute in HOOK_LISTS.values():
        hooks = list(source.get(attribute, ()))
        module.__dict__[attribute] = hooks
        registered += len(hooks)


def register(module: "GraphModule", kind: str, hook: Callable[..., Any]) -> None:
    global registered
    if not callable(hook):
        label = "deepcopy" if kind == "deepcopy" else f"{kind}_node"
        raise HookNotCallableError(f"{label} hook must be a callable, got {type(hook).__name__}")
    _hooks_of(module, kind).append(hook)
    registered += 1


def unregister(module: "GraphModule", kind: str, hook: Callable[..., Any]) -> None:
    global registered
    hooks = _hooks_of(module, kind)
    if hook not in hooks:
        raise ValueError(f"cannot unregister {hook!r}: it is not a registered {kind} hook of this module")
    hooks.remove(hook)
    registered -= 1


@contextlib.contextmanager
def replace_hook_set(module: "GraphModule", hook: Callable[..., Any]) -> Iterator[None]:
    """``hook`` is a replace hook of ``module`` inside the ``with`` block only."""
    register(module, "replace", hook)
    try:
        yield
    finally:
        unregister(module, "replace", hook)


def _hooks_of(module: Any, kind: str) -> List[Callable[..., Any]]:
    attribute = HOOK_LISTS[kind]
    hooks = module.__dict__.get(attribute)
    if hooks is None:  # a module made without __init__ (a subclass that skipped it)
        hooks = module.__dict__[attribute] = []
    return hooks


def run(owner: Any, kind: str, *args: Any, **kwargs: Any) -> None:
    """Call ``owner``'s hooks of ``kind`` in registration order (nothing when ``owner`` is None)."""
    if owner is None:
        return
    hooks = owner.__dict__.get(HOOK_LISTS[kind])
    if hooks:
        for hook in list(hooks):
            hook(*args, **kwargs)


def run_replace(owner: Any, old: "Node", new_name: str, users: List["Node"]) -> None:
    """Tell ``owner``'s replace hooks that each of ``users`` now reads ``new_name`` for ``old``."""
    if owner is None:
        return
    for user in users:
        run(owner, "replace", old=old, new=new_name, user=user)
