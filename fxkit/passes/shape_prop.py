"""Record the shape, dtype, strides ... of every value a graph computes (``node.meta['tensor_meta']``).

Runs the graph with the Interpreter. Inputs (and the model) may live on the ``meta`` device, or be
fake tensors when a ``FakeTensorMode`` is given, so no real compute or memory is needed.
"""

from __future__ import annotations

import contextlib
import copy
from typing import Any, Dict, NamedTuple, Optional, Tuple

import torch

from fxkit import _foreign
from fxkit.interpreter import Interpreter
from fxkit.node import Node, map_aggregate

__all__ = ["TensorMetadata", "ShapeProp", "_extract_tensor_metadata"]


class TensorMetadata(NamedTuple):
    """What ShapeProp records about one tensor."""

    shape: torch.Size
    dtype: torch.dtype
    requires_grad: bool
    stride: Tuple[int, ...]
    memory_format: Optional[torch.memory_format]
    is_quantized: bool
    qparams: Dict[str, Any]


# Checked in this order, the first layout the tensor is contiguous in wins. A tensor can be
# contiguous in several (e.g. one channel); a fixed order keeps the answer deterministic.
_MEMORY_FORMATS = (torch.contiguous_format, torch.channels_last, torch.channels_last_3d)

_SPARSE_LAYOUTS = (torch.sparse_coo, torch.sparse_csr, torch.sparse_csc, torch.sparse_bsr, torch.sparse_bsc)


def _extract_tensor_metadata(result: torch.Tensor, include_contiguity: bool = True) -> TensorMetadata:
    """The TensorMetadata of one tensor."""
    is_sparse = result.layout in _SPARSE_LAYOUTS
    stride: Tuple[int, ...] = () if is_sparse else tuple(result.stride())
    memory_format = None
    if include_contiguity and not is_sparse:
        for candidate in _MEMORY_FORMATS:
            if result.is_contiguous(memory_format=candidate):
                memory_format = candidate
                break
    qparams: Dict[str, Any] = {}
    if result.is_quantized:
        scheme = result.qscheme()
        qparams["qscheme"] = scheme
        if scheme in (torch.per_tensor_affine, torch.per_tensor_symmetric):
            qparams["scale"] = result.q_scale()
            qparams["zero_point"] = result.q_zero_point()
        elif scheme in (
            torch.per_channel_affine,
            torch.per_channel_affine_float_qparams,
            torch.per_channel_symmetric,
        ):
            qparams["scale"] = result.q_per_channel_scales().tolist()
            qparams["zero_point"] = result.q_per_channel_zero_points().tolist()
            qparams["axis"] = result.q_per_channel_axis()
    return TensorMetadata(
        result.shape, result.dtype, result.requires_grad, stride, memory_format, result.is_quantized, qparams
    )


def _fake_copy(module: torch.nn.Module, fake_mode: Any) -> torch.nn.Module:
    """A deep copy of ``module`` whose parameters and buffers are fake tensors of ``fake_mode``.

    The real tensors are never copied: the deepcopy memo maps each of them to its fake twin.
    """
    memo: Dict[int, Any] = {}
    for tensor_dict_owner in module.modules():
        for param in tensor_dict_owner._parameters.values():
            if param is not None and id(param) not in memo:
                fake = fake_mode.from_tensor(param)
                memo[id(param)] = torch.nn.Parameter(fake, requires_grad=param.requires_grad)
        for buffer in tensor_dict_owner._buffers.values():
            if buffer is not None and id(buffer) not in memo:
                memo[id(buffer)] = fake_mode.from_tensor(buffer)
    return copy.deepcopy(module, memo)


class ShapeProp(Interpreter):
    """Runs a GraphModule and stores on each node ``meta['tensor_meta']`` (a TensorMetadata, or a
    tuple/list/dict of them for containers of tensors) and ``meta['type']`` (the value's type).

    ``fake_mode``: a ``torch._subclasses.fake_tensor.FakeTensorMode``; inputs, parameters and
    buffers are then turned into its fake tensors and nothing is computed for real.

    A torch.fx GraphModule (from ``torch.export``, say) runs through its fxkit twin, and the
    metadata is then copied onto the torch.fx graph's own nodes.
    """

    def __init__(self, gm: torch.nn.Module, fake_mode: Any = None) -> None:
        self._torch_fx_module = gm if _foreign.torch_fx_kind(gm) == "GraphModule" else None
        super().__init__(gm)  # the Interpreter runs a torch.fx module's fxkit twin
        self.fake_mode = fake_mode
        self.real_module = self.module
        self.fake_module = _fake_copy(self.module, fake_mode) if fake_mode is not None else None

    def run(self, *args: Any, **kwargs: Any) -> Any:
        result = super().run(*args, **kwargs)
        if self._torch_fx_module is not None:
            written = {n.name: n.meta for n in self.graph.nodes}
            for node in self._torch_fx_module.graph.nodes:
                meta = written.get(node.name, {})
                node.meta.update({key: meta[key] for key in _WRITTEN_KEYS if key in meta})
        return result

    def run_node(self, n: Node) -> Any:
        mode = self.fake_mode if self.fake_mode is not None else contextlib.nullcontext()
        try:
            if self.fake_module is not None:
                self.module = self.fake_module
            try:
                with mode:
                    result = super().run_node(n)
            finally:
                self.module = self.real_module
        except Exception as error:
            raise RuntimeError(
                f"ShapeProp error for: node={n.format_node()} with meta={n.meta}\n"
                f"caused by {type(error).__name__}: {error}"
            ) from error

        found_tensor = False

        def describe(value: Any) -> Any:
            nonlocal found_tensor
            if isinstance(value, torch.Tensor):
                found_tensor = True
                return _extract_tensor_metadata(value)
            return value

        described = map_aggregate(result, describe)
        if found_tensor:
            n.meta["tensor_meta"] = described
        n.meta["type"] = type(result)
        if getattr(self.fake_mode, "shape_env", None) is not None:
            # Size symbols a data-dependent operator (nonzero ...) just made are bound to where its
            # result holds them, which also marks them as accounted for in the shape environment.
            from fxkit import interop

            bindings = interop.unbacked_bindings(self.fake_mode, result)
            if bindings:
                n.meta["unbacked_bindings"] = bindings
        return result

    def propagate(self, *args: Any) -> Any:
        """Run the module on ``args`` (real, meta or fake tensors), annotating every node.

        Fake tensor inputs without an explicit ``fake_mode`` bring their own mode along: the
        parameters and buffers are then faked in it too."""
        if self.fake_mode is None:
            found_mode = next((arg.fake_mode for arg in args if _is_fake(arg)), None)
            if found_mode is not None:
                self.fake_mode = found_mode
                self.fake_module = _fake_copy(self.real_module, found_mode)
        if self.fake_mode is not None:
            args = tuple(
                self.fake_mode.from_tensor(arg)
                if isinstance(arg, torch.Tensor) and not _is_fake(arg)
                else arg
                for arg in args
            )
        return self.run(*args)


# The metadata ShapeProp writes on each node.
_WRITTEN_KEYS = ("tensor_meta", "type", "unbacked_bindings")


def _is_fake(value: Any) -> bool:
    return isinstance(value, torch.Tensor) and type(value).__name__ == "FakeTensor"
