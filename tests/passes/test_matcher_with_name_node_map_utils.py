"""passes.utils.matcher_with_name_node_map_utils against torch.fx's, on patterns exported with
torch.export (their output spec carries the name dict); fxkit gets the same modules through
fxkit.interop.from_torch_fx."""

from __future__ import annotations

from typing import Any, List

import torch
import torch.fx.passes.utils.matcher_with_name_node_map_utils as oracle
import torch.nn.functional as F

import fxkit.interop
import fxkit.passes.utils.matcher_with_name_node_map_utils as ours


class Pattern(torch.nn.Module):
    def forward(self, x: torch.Tensor, w: torch.Tensor) -> Any:
        conv = F.conv2d(x, w)
        relu = F.relu(conv)
        return relu, conv * 2, {"conv": conv, "relu": relu}


class Target(torch.nn.Module):
    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        conv = F.conv2d(x, w)
        y = F.relu(conv) + conv * 2
        c2 = F.conv2d(y, w)
        return F.relu(c2) * (c2 * 2)


EXAMPLE = (torch.randn(1, 1, 3, 3), torch.randn(1, 1, 1, 1))


def _matches(module: Any, convert: Any) -> List[Any]:
    pattern = convert(torch.export.export(Pattern(), EXAMPLE).module())
    matcher = module.SubgraphMatcherWithNameNodeMap(pattern)
    seen: List[Any] = [str(pattern._out_spec), sorted((k, v.name) for k, v in matcher.name_node_map.items())]
    seen.append([n.name for n in matcher.pattern_returning_nodes])
    target = convert(torch.export.export(Target(), EXAMPLE).module())
    for match in matcher.match(target.graph):
        seen.append(
            (
                sorted((k, v.name) for k, v in match.name_node_map.items()),
                [n.name for n in match.returning_nodes],
            )
        )
    return seen


def test_name_node_map_matches_torch_fx() -> None:
    assert _matches(ours, fxkit.interop.from_torch_fx) == _matches(oracle, lambda gm: gm)
