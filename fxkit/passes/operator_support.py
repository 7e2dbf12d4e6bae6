"""Which nodes a backend supports (torch.fx's ``passes.operator_support``): a base class, a
table-driven implementation keyed by target name and input dtypes, and combinators."""

from __future__ import annotations

import abc
from typing import Any, Callable, Dict, Mapping, Optional, Sequence, Set, Tuple

import torch

from fxkit import _foreign
from fxkit.node import Node
from fxkit.passes.shape_prop import TensorMetadata
from fxkit.passes.tools_common import CALLABLE_NODE_OPS, get_node_target

__all__ = ["OperatorSupportBase", "OperatorSupport", "create_op_support", "chain", "OpSupports", "any_chain"]

TargetTypeName = str
# ``(dtypes allowed for each positional argument, {keyword: dtypes allowed})``
SupportedArgumentDTypes = Optional[Tuple[Sequence[Sequence[torch.dtype]], Dict[str, Sequence[torch.dtype]]]]
SupportDict = Mapping[TargetTypeName, SupportedArgumentDTypes]
IsNodeSupported = Callable[[Mapping[str, torch.nn.Module], Node], bool]


class OperatorSupportBase(abc.ABC):
    """Decides whether a backend can run a node."""

    @abc.abstractmethod
    def is_node_supported(self, submodules: Mapping[str, torch.nn.Module], node: Node) -> bool:
        raise NotImplementedError


def _get_arg_dtype(arg: Node) -> Any:
    """The dtype recorded by ShapeProp for ``arg``, or its ``meta['type']`` for non-tensors."""
    tensor_meta = arg.meta.get("tensor_meta")
    if isinstance(tensor_meta, TensorMetadata):
        return tensor_meta.dtype
    return arg.meta["type"]


class OperatorSupport(OperatorSupportBase):
    """Support from a table ``{target name: None | (arg dtypes, kwarg dtypes)}``.

    A call node is supported when its target name (``get_node_target``) is in the table and, if
    the entry is not None, every positional/keyword argument listed there that is a node has one
    of the allowed dtypes (read from ShapeProp metadata). Non-call nodes are always supported.
    """

    _support_dict: SupportDict

    def __init__(self, support_dict: Optional[SupportDict] = None) -> None:
        self._support_dict = support_dict or {}

    def is_node_supported(self, submodules: Mapping[str, torch.nn.Module], node: Node) -> bool:
        _foreign.reject(node, "OperatorSupport.is_node_supported")
        if node.op not in CALLABLE_NODE_OPS:
            return True
        target = get_node_target(submodules, node)
        if target not in self._support_dict:
            return False
        allowed = self._support_dict[target]
        if allowed is None:
            return True
        arg_dtypes, kwarg_dtypes = allowed
        for index, dtypes in enumerate(arg_dtypes):
            if index >= len(node.args):
                break
            arg = node.args[index]
            if isinstance(arg, Node) and _get_arg_dtype(arg) not in dtypes:
                return False
        for key, dtypes in kwarg_dtypes.items():
            arg = node.kwargs.get(key)
            if isinstance(arg, Node) and _get_arg_dtype(arg) not in dtypes:
                return False
        return True


def create_op_support(is_node_supported: IsNodeSupported) -> OperatorSupportBase:
    """Wrap a plain ``(submodules, node) -> bool`` function as an OperatorSupportBase."""

    class FunctionalOperatorSupport(OperatorSupportBase):
        def is_node_supported(self, submodules: Mapping[str, torch.nn.Module], node: Node) -> bool:
            return is_node_supported(submodules, node)

    return FunctionalOperatorSupport()


def chain(*op_support: OperatorSupportBase) -> OperatorSupportBase:
    """Supported when every one of ``op_support`` supports the node (True for none)."""

    def every(submodules: Mapping[str, torch.nn.Module], node: Node) -> bool:
        return all(support.is_node_supported(submodules, node) for support in op_support)

    return create_op_support(every)


def any_chain(*op_support: OperatorSupportBase) -> OperatorSupportBase:
    """Supported when at least one of ``op_support`` supports the node (False for none)."""

    def some(submodules: Mapping[str, torch.nn.Module], node: Node) -> bool:
        return any(support.is_node_supported(submodules, node) for support in op_support)

    return create_op_support(some)


class OpSupports:
    """Ready-made OperatorSupportBase factories."""

    @classmethod
    def decline_if_input_dtype(cls, dtype: torch.dtype) -> OperatorSupportBase:
        """Decline a node when any node it reads has dtype ``dtype``."""

        def check(submodules: Mapping[str, torch.nn.Module], node: Node) -> bool:
            return all(_get_arg_dtype(used) != dtype for used in node.all_input_nodes)

        return create_op_support(check)

    @classmethod
    def decline_if_node_in_names(cls, disallow_set: Set[str]) -> OperatorSupportBase:
        """Decline a node whose name is in ``disallow_set``."""

        def check(submodules: Mapping[str, torch.nn.Module], node: Node) -> bool:
            return node.name not in disallow_set

        return create_op_support(check)
