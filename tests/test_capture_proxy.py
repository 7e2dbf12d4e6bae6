"""Captured values behave as what they stand for: a captured tensor is a torch.Tensor."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

import fxkit
from fxkit.capture_proxy import CaptureProxy, CaptureTensor
from fxkit.guards import CaptureError

# Every capture test runs with the per-class patches (the fast path) and with nn.Module's.
pytestmark = pytest.mark.usefixtures("both_patch_kinds")


def decode_boxes(rel_codes: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
    """A box decoder written the way detection libraries write them: checking its inputs."""
    assert isinstance(rel_codes, torch.Tensor)
    assert isinstance(boxes, (list, tuple)) or torch.is_tensor(boxes)
    widths = boxes[:, 2] - boxes[:, 0]
    heights = boxes[:, 3] - boxes[:, 1]
    centre_x = boxes[:, 0] + 0.5 * widths
    centre_y = boxes[:, 1] + 0.5 * heights
    dx, dy, dw, dh = rel_codes.unbind(-1)
    x = dx * widths + centre_x
    y = dy * heights + centre_y
    w = torch.exp(dw.clamp(max=4.0)) * widths
    h = torch.exp(dh.clamp(max=4.0)) * heights
    return torch.stack([x - w / 2, y - h / 2, x + w / 2, y + h / 2], dim=-1)


class Detector(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.head = nn.Linear(8, 4)

    def forward(self, features: torch.Tensor, anchors: torch.Tensor) -> torch.Tensor:
        return decode_boxes(self.head(features), anchors)


class ChecksTypes(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(4, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        seen = []
        for value in (x, self.linear.weight, x.T, x.mT, x.data, self.linear(x)):
            seen.append(isinstance(value, torch.Tensor) and torch.is_tensor(value))
        seen.append(isinstance(self.linear.weight, nn.Parameter))
        seen.append(not isinstance(x, nn.Parameter))
        seen.append(not isinstance(x.shape, torch.Tensor))
        return x * sum(seen)


class ViewsWithTracedSizes(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, width = x.shape
        y = x.view(batch, width // 2, 2).permute(0, 2, 1).reshape(batch, -1)
        return y.new_zeros(batch, 1).expand(batch, width) + y


def anchors_for(count: int) -> torch.Tensor:
    corner = torch.rand(count, 2) * 10
    return torch.cat([corner, corner + 1 + torch.rand(count, 2) * 5], dim=1)


def test_library_code_that_asserts_tensor_inputs_is_captured_whole():
    model = Detector()
    features, anchors = torch.randn(5, 8), anchors_for(5)
    result = fxkit.capture(model, (features, anchors), leaves="error")
    assert result.leaves == []
    for count in (5, 7):
        features, anchors = torch.randn(count, 8), anchors_for(count)
        torch.testing.assert_close(result.graph_module(features, anchors), model(features, anchors))


def test_captured_values_are_tensors_parameters_stay_parameters():
    model, x = ChecksTypes(), torch.randn(4, 4)
    result = fxkit.capture(model, (x,))
    torch.testing.assert_close(result.graph_module(x), model(x))
    torch.testing.assert_close(result.graph_module(x), x * 9)


def test_tensor_methods_keep_traced_sizes_symbolic():
    model = ViewsWithTracedSizes()
    result = fxkit.capture(model, (torch.randn(2, 6),))
    assert result.specializations == []
    for shape in ((2, 6), (3, 8)):
        x = torch.randn(*shape)
        torch.testing.assert_close(result.graph_module(x), model(x))


def test_values_handed_to_the_program_are_tensors_or_proxies():
    kinds = {}

    class Records(nn.Module):
        def forward(self, x):
            kinds["x"] = type(x)
            kinds["size"] = type(x.size(0))
            kinds["sum"] = type(x.sum())
            return x + 1

    fxkit.capture(Records(), (torch.randn(2, 3),))
    assert kinds == {"x": CaptureTensor, "size": CaptureProxy, "sum": CaptureTensor}


def test_meta_examples_allocate_nothing_and_stay_tensors():
    class Big(nn.Module):
        def forward(self, x):
            assert isinstance(x, torch.Tensor) and x.device.type == "meta"
            return (x @ x.mT).softmax(-1)

    x = torch.empty(4096, 4096, device="meta")
    result = fxkit.capture(Big(), (x,))
    assert result.graph_module(x).shape == (4096, 4096)


def test_copies_of_a_captured_tensor_stand_for_the_same_value():
    class Copies(nn.Module):
        def forward(self, x):
            return copy.copy(x) + copy.deepcopy(x)

    x = torch.randn(3)
    torch.testing.assert_close(fxkit.capture(Copies(), (x,)).graph_module(x), x * 2)


def test_setting_a_tensor_property_is_refused_with_the_reason():
    class SetsGrad(nn.Module):
        def forward(self, x):
            y = x * 2
            y.requires_grad = True
            return y

    with pytest.raises(CaptureError, match="setting requires_grad of a captured tensor"):
        fxkit.capture(SetsGrad(), (torch.randn(3),))


def test_operations_with_torch_function_switched_off_are_refused():
    class Hides(nn.Module):
        def forward(self, x):
            with torch._C.DisableTorchFunctionSubclass():
                return torch.relu(x)

    with pytest.raises(CaptureError, match="__torch_function__ disabled"):
        fxkit.capture(Hides(), (torch.randn(3),))


def test_in_place_operators_are_recorded_in_place():
    class AddsInPlace(nn.Module):
        def forward(self, x, cache):
            cache += x
            return cache * 1

    x, cache = torch.randn(3), torch.zeros(3)
    result = fxkit.capture(AddsInPlace(), (x, cache.clone()))
    mine = torch.zeros(3)
    torch.testing.assert_close(result.graph_module(x, mine), x)
    torch.testing.assert_close(mine, x)
