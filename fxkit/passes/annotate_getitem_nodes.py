"""Give ``getitem`` nodes the element type of the typed container they index (torch.fx's
``passes.annotate_getitem_nodes``)."""

from __future__ import annotations

import operator
import typing
from typing import Any, Optional

from fxkit import _foreign
from fxkit.graph import Graph
from fxkit.node import Node

__all__ = ["annotate_getitem_nodes"]


def annotate_getitem_nodes(graph: Graph) -> None:
    """Set ``node.type`` of each ``operator.getitem`` node whose container has a ``List[T]``,
    ``Tuple[...]`` or NamedTuple type; others are left alone. In graph order, so items of items
    are typed too. A slice of a typed container keeps the container's type."""
    _foreign.reject(graph, "annotate_getitem_nodes")  # sets node.type in place
    for node in graph.nodes:
        if node.op != "call_function" or node.target is not operator.getitem:
            continue
        container, index = node.args[0], node.args[1]
        if not isinstance(container, Node) or container.type is None:
            continue
        found = _item_type(container.type, index)
        if found is not None:
            node.type = found


def _item_type(container_type: Any, index: Any) -> Optional[Any]:
    origin = typing.get_origin(container_type)
    parameters = typing.get_args(container_type)
    if isinstance(index, slice):
        return container_type if origin in (list, tuple) else None
    if origin is list and parameters:
        return parameters[0]
    if origin is tuple and parameters:
        if parameters[-1] is Ellipsis:
            return parameters[0]
        if not isinstance(index, int):
            return None
        if not -len(parameters) <= index < len(parameters):
            raise AssertionError(
                f"Index {index} out of range for parameterized_types (len={len(parameters)}): "
                f"the container is typed {container_type}"
            )
        return parameters[index]
    if (
        isinstance(container_type, type)
        and issubclass(container_type, tuple)
        and hasattr(container_type, "_fields")
    ):
        annotations = list(typing.get_type_hints(container_type).values())
        if isinstance(index, int) and -len(annotations) <= index < len(annotations):
            return annotations[index]
    return None
