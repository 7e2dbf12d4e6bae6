"""Inference-time module rewrites: Conv/Linear + BatchNorm fusion and dropout removal."""

from __future__ import annotations

import copy
from typing import Any, Dict, Iterable, Tuple, Type

import torch.nn as nn
from torch.nn.utils.fusion import fuse_conv_bn_eval, fuse_linear_bn_eval

from fxkit.graph_module import GraphModule
from fxkit.node import Node
from fxkit.tracer import symbolic_trace

__all__ = ["fuse", "matches_module_pattern", "replace_node_module", "fuse_conv_bn_eval", "remove_dropout"]

# (producer, batch norm) pairs fuse() folds together, and how.
_FUSIBLE_PAIRS: Tuple[Tuple[Type[nn.Module], Type[nn.Module]], ...] = (
    (nn.Conv1d, nn.BatchNorm1d),
    (nn.Conv2d, nn.BatchNorm2d),
    (nn.Conv3d, nn.BatchNorm3d),
    (nn.Linear, nn.BatchNorm1d),
)


def _parent_name(target: str) -> Tuple[str, str]:
    """``'a.b.c'`` -> ``('a.b', 'c')``."""
    parent, _, name = target.rpartition(".")
    return parent, name


def matches_module_pattern(pattern: Iterable[Type], node: Node, modules: Dict[str, Any]) -> bool:
    """True when ``node`` and its first argument are call_module nodes whose modules have exactly
    the types in ``pattern`` (first argument first)."""
    if len(node.args) == 0:
        return False
    for expected_type, current in zip(pattern, (node.args[0], node)):
        if not isinstance(current, Node) or current.op != "call_module":
            return False
        if not isinstance(current.target, str) or current.target not in modules:
            return False
        if type(modules[current.target]) is not expected_type:
            return False
    return True


def replace_node_module(node: Node, modules: Dict[str, Any], new_module: nn.Module) -> None:
    """Install ``new_module`` at ``node.target`` in the module tree (and in ``modules``)."""
    assert isinstance(node.target, str)
    parent_name, name = _parent_name(node.target)
    modules[node.target] = new_module
    setattr(modules[parent_name], name, new_module)


def _check_eval(producer_name: str, producer: nn.Module, norm_name: str, norm: nn.Module) -> None:
    for name, module in ((producer_name, producer), (norm_name, norm)):
        if module.training:
            raise ValueError(
                f"fuse: cannot fold BatchNorm '{norm_name}' into '{producer_name}' because "
                f"'{name}' is in training mode. Fusion bakes the BatchNorm running statistics into "
                "the weights, which only matches the unfused model in eval mode: call model.eval() "
                "before fuse()."
            )


def fuse(model: nn.Module, inplace: bool = False, no_trace: bool = False) -> GraphModule:
    """Fold every BatchNorm that directly follows a Conv1d/2d/3d or Linear (and is its only
    user) into that layer's weights. For inference: the model must be in eval mode.

    ``inplace=False`` works on a deep copy; ``no_trace=True`` uses ``model`` as is when it is
    already a GraphModule.
    """
    if not inplace:
        model = copy.deepcopy(model)
    traced = model if (no_trace and isinstance(model, GraphModule)) else symbolic_trace(model)
    modules = dict(traced.named_modules())
    new_graph = copy.deepcopy(traced.graph)
    pairs = []
    for pattern in _FUSIBLE_PAIRS:
        for node in new_graph.nodes:
            if not matches_module_pattern(pattern, node, modules):
                continue
            producer_node = node.args[0]
            if len(producer_node.users) > 1:
                continue  # the un-normalized output is read elsewhere too
            if not modules[node.target].track_running_stats:
                continue  # no running statistics to fold
            pairs.append((producer_node, node))
    # Check every pair before changing anything, so a refusal leaves the model untouched.
    for producer_node, node in pairs:
        _check_eval(producer_node.target, modules[producer_node.target], node.target, modules[node.target])
    for producer_node, node in pairs:
        producer, norm = modules[producer_node.target], modules[node.target]
        if isinstance(producer, nn.Linear):
            fused = fuse_linear_bn_eval(producer, norm)
        else:
            fused = fuse_conv_bn_eval(producer, norm)
        replace_node_module(producer_node, modules, fused)
        node.replace_all_uses_with(producer_node)
        new_graph.erase_node(node)
    return GraphModule(traced, new_graph)


def remove_dropout(model: nn.Module) -> GraphModule:
    """A traced copy of ``model`` in which every ``nn.Dropout`` call is removed."""
    traced = symbolic_trace(copy.deepcopy(model))
    modules = dict(traced.named_modules())
    for node in list(traced.graph.nodes):
        if node.op == "call_module" and isinstance(modules.get(node.target), nn.Dropout):
            if len(node.args) != 1:
                raise ValueError(
                    f"remove_dropout: dropout node {node.name} has {len(node.args)} args, expected 1"
                )
            node.replace_all_uses_with(node.args[0])
            traced.graph.erase_node(node)
    traced.graph.eliminate_dead_code()
    traced.delete_all_unused_submodules()
    traced.recompile()
    return traced
