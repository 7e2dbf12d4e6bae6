"""Collect the attributes a lowering backend needs from common modules (torch.fx's
``passes.param_fetch``)."""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Tuple, Type

import torch
import torch.nn as nn

from fxkit import _foreign
from fxkit.graph_module import GraphModule

__all__ = ["default_matching", "extract_attrs_for_lowering", "lift_lowering_attrs_to_nodes"]


def default_matching(name: str, target_version: int) -> str:
    """The attribute's name in the module: unchanged for every version."""
    return name


# module class -> (the module _version these names are for, attribute names, name matcher)
module_fetch_book: Dict[Type[nn.Module], Tuple[int, List[str], Callable[[str, int], str]]] = {
    nn.Linear: (1, ["weight", "bias"], default_matching),
    nn.Conv2d: (
        1,
        ["weight", "bias", "kernel_size", "stride", "padding", "dilation", "groups", "padding_mode"],
        default_matching,
    ),
    nn.BatchNorm2d: (2, ["weight", "bias", "running_mean", "running_var", "eps"], default_matching),
    nn.AdaptiveAvgPool2d: (1, [], default_matching),
    nn.MaxPool2d: (
        1,
        ["kernel_size", "stride", "padding", "dilation", "return_indices", "ceil_mode"],
        default_matching,
    ),
    nn.ReLU: (1, ["inplace"], default_matching),
}


def extract_attrs_for_lowering(mod: nn.Module) -> Dict[str, Any]:
    """``{"name": <module class path>, <attribute>: value ...}`` for a module listed in
    ``module_fetch_book`` (exact class and ``_version``); raises RuntimeError otherwise."""
    name = torch.typename(mod)
    if type(mod) not in module_fetch_book:
        raise RuntimeError(
            f"{name} is not in the module_fetch_book yet, please add it to the module_fetch_book "
            "(fxkit.passes.param_fetch.module_fetch_book[<class>] = (version, [attribute names], default_matching))"
        )
    version, attributes, matching = module_fetch_book[type(mod)]
    if version < mod._version:
        raise RuntimeError(
            f"Fetcher version {version} try to fetch {name} version {mod._version}, please upgrade the "
            "module_fetch_book entry for this class"
        )
    found: Dict[str, Any] = {"name": name}
    for attribute in attributes:
        found[attribute] = getattr(mod, matching(attribute, mod._version))
    return found


def lift_lowering_attrs_to_nodes(fx_module: GraphModule) -> None:
    """Set ``node.attrs_for_lowering`` on every call_module node (recursing into called
    GraphModules instead of describing them)."""
    _foreign.reject(fx_module, "lift_lowering_attrs_to_nodes")  # sets node.attrs_for_lowering
    submodules = dict(fx_module.named_modules())
    for node in fx_module.graph.nodes:
        if node.op != "call_module":
            continue
        submodule = submodules[node.target]
        if isinstance(submodule, GraphModule):
            lift_lowering_attrs_to_nodes(submodule)
        else:
            node.attrs_for_lowering = extract_attrs_for_lowering(submodule)  # type: ignore[attr-defined]
