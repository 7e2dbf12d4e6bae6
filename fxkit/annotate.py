"""``annotate(value, type)``: give a traced value a type, shown in the generated code."""

from typing import Any

from .proxy import Proxy

__all__ = ["annotate"]


def annotate(val: Any, type: Any) -> Any:  # noqa: A002  (torch.fx's parameter name)
    """While tracing, record ``type`` as the type of the node behind ``val``; outside tracing,
    return ``val`` unchanged. A node can be typed once (a parameter's annotation counts)."""
    if not isinstance(val, Proxy):
        return val
    existing = val.node.type
    if existing is not None:
        raise RuntimeError(
            f"Tried to annotate a value that already had a type on it! Existing type is {existing} and "
            f"new type is {type}. This could happen if you tried to annotate a function parameter value "
            "(in which case you should use the type slot on the function signature) or you called "
            "annotate on the same value twice"
        )
    val.node.type = type
    return val
