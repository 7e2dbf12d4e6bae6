"""Every torchvision model, built and called as its users do, through fxkit.capture.

For each model of ``torchvision.models.list_models()`` (the quantized ones aside): the builder
with its defaults and no weights, eval mode, called positionally (``model(images)`` with a list of
images for detection, ``model(image1, image2)`` for optical flow). Eager and the captured module
must agree on the example (every tensor, every type) and no automatic leaf may hold more than 10%
of the parameters. A second input of the same structure and an input of another structure must
each give eager's result or make a guard fire: the detection models loop over the classes found
in their boxes (``for class_id in torch.unique(idxs)`` in torchvision's batched NMS on the CPU), a
length no graph can know, so other images may take another path.

torchvision cannot be imported beside the CPU build of torch that CI uses, so this file skips
there. Run it in a venv that has both (see docs/capture.md, "The torchvision zoo"):
``python -m pytest -q tests/models/test_torchvision_zoo.py``.
"""

from __future__ import annotations

import inspect
from typing import Any, List, Optional, Tuple

import pytest
import torch

import fxkit
from fxkit.guards import GuardError
from tests.models import GUARD_MESSAGE, difference

models = pytest.importorskip("torchvision.models")

pytestmark = pytest.mark.models

_DETECTION = ("fasterrcnn", "maskrcnn", "keypointrcnn", "retinanet", "fcos", "ssd")
_VIDEO = ("r3d_18", "mc3_18", "r2plus1d_18", "swin3d")

Inputs = Tuple[Any, ...]


def _names() -> List[str]:
    return [name for name in models.list_models() if not name.startswith("quantized")]


def _build(name: str) -> torch.nn.Module:
    builder = models.get_model_builder(name)
    options = {"weights": None}
    if "weights_backbone" in inspect.signature(builder).parameters:
        options["weights_backbone"] = None  # the default would download ImageNet weights
    return builder(**options).eval()


def _inputs(name: str, seed: int) -> Tuple[Inputs, Optional[Inputs]]:
    """An input as users pass it, and one of another structure (None where there is none)."""
    generator = torch.Generator().manual_seed(seed)

    def image(*shape: int) -> torch.Tensor:
        return torch.rand(*shape, generator=generator)

    if name.startswith(_DETECTION):
        return ([image(3, 200, 240), image(3, 180, 220)],), ([image(3, 210, 230)],)
    if name.startswith("raft"):
        return (image(1, 3, 128, 128), image(1, 3, 128, 128)), None
    if name in ("mvit_v1_b", "mvit_v2_s", "s3d"):
        return (image(1, 3, 16, 224, 224),), None
    if name.startswith(_VIDEO):
        return (image(1, 3, 8, 112, 112),), None
    if name.startswith(("deeplab", "fcn", "lraspp")):
        return (image(1, 3, 128, 128),), (image(2, 3, 96, 96),)
    size = 299 if name == "inception_v3" else 224
    return (image(1, 3, size, size),), None


@pytest.mark.parametrize("name", _names())
def test_torchvision_model_is_captured_whole_with_eager_outputs(name: str) -> None:
    torch.manual_seed(0)
    model = _build(name)
    example, other_structure = _inputs(name, seed=0)
    more, _ = _inputs(name, seed=1)
    with torch.no_grad():
        result = fxkit.capture(model, example)
        assert result.leaf_parameter_share(automatic_only=True) <= 0.10, result.leaves
        assert difference(model(*example), result(*example)) is None
        for inputs in (more, other_structure):
            if inputs is None:
                continue
            try:
                captured = result(*inputs)
            except GuardError as error:
                assert GUARD_MESSAGE.search(str(error)), error  # names the user's file:line
                continue
            assert difference(model(*inputs), captured) is None
