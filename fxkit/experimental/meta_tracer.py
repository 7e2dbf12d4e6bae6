"""``MetaTracer``: symbolic tracing that also runs every recorded operation on meta tensors
(shapes, dtypes, no data), starting from example meta tensors for the inputs (``meta_args``).
Shape questions the traced code asks (``x.shape``, ``x.size(1)``, ``x.dim()``, ``x.dtype``) then
get concrete answers, so control flow on shapes traces, and tensor constructors called with
traced sizes (``torch.zeros(n, 4)``) are recorded.

When a meta value cannot be computed for a node, tracing goes on with a warning and questions
about that value are recorded as nodes (or fail, for control flow), as in plain tracing.
"""

from __future__ import annotations

import builtins
import contextlib
import functools
import warnings
from typing import Any, Callable, Dict, Iterator, Optional, Tuple, TypeVar, Union

import torch
import torch.nn as nn

from fxkit import _paths
from fxkit.graph import Graph
from fxkit.graph_module import GraphModule
from fxkit.node import Node, map_aggregate
from fxkit.proxy import Attribute, Proxy
from fxkit.tracer import _PATCHES, Tracer, untraced

__all__ = [
    "MetaProxy", "MetaAttribute", "MetaDeviceAttribute", "MetaTracer", "symbolic_trace", "proxys_to_metas",
    "gen_constructor_wrapper", "manual_meta_overrides",
]  # fmt: skip

_C = TypeVar("_C")


# Meta results of operations whose outputs are cheaper to state than to compute.
def embedding_override(self: nn.Embedding, input: torch.Tensor) -> torch.Tensor:  # noqa: A002
    return torch.empty(*input.shape, self.weight.shape[-1], device="meta")


def nn_layernorm_override(self: nn.LayerNorm, input: torch.Tensor) -> torch.Tensor:  # noqa: A002
    return input


def torch_relu_override(x: torch.Tensor) -> torch.Tensor:
    return x


def torch_nn_relu_override(self: nn.ReLU, x: torch.Tensor) -> torch.Tensor:
    return x


def functional_relu_override(x: torch.Tensor, inplace: bool = False) -> torch.Tensor:
    assert not inplace, "dont support inplace functional.relu for metatensor analysis"
    return x


def torch_where_override(condition: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    # The broadcast shape of the three operands, as a meta tensor.
    return condition.to(device="meta") + x.to(device="meta") + y.to(device="meta")


def torch_abs_override(input: torch.Tensor, *, out: Optional[torch.Tensor] = None) -> torch.Tensor:  # noqa: A002
    assert out is None, "Dont support in-place abs for MetaTensor analysis"
    return input


manual_meta_overrides: Dict[Any, Callable[..., Any]] = {
    nn.Embedding: embedding_override,
    nn.LayerNorm: nn_layernorm_override,
    torch.relu: torch_relu_override,
    nn.functional.relu: functional_relu_override,
    nn.ReLU: torch_nn_relu_override,
    torch.where: torch_where_override,
    torch.abs: torch_abs_override,
}


def gen_constructor_wrapper(target: _C) -> Tuple[Callable[..., Any], _C]:
    """A stand-in for tensor constructor ``target`` (``torch.zeros`` ...) that records a
    ``call_function`` node when any argument is traced and calls ``target`` otherwise. Returns
    (stand-in, target)."""

    @functools.wraps(target)  # type: ignore[arg-type]
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        traced = []
        map_aggregate(
            (args, kwargs), lambda value: traced.append(value) if isinstance(value, Proxy) else None
        )
        if traced:
            return traced[0].tracer.create_proxy("call_function", target, args, kwargs)
        return target(*args, **kwargs)  # type: ignore[operator]

    return wrapper, target


class MetaProxy(Proxy):
    """A Proxy that may carry the meta tensor of its value (``install_tensor_meta``); shape,
    size, dim and dtype are then answered from it instead of being recorded."""

    def install_tensor_meta(self, tensor_meta: Any) -> None:
        self._tensor_meta = tensor_meta

    def _meta(self) -> Any:
        return self.__dict__.get("_tensor_meta")

    def size(self, dim: Optional[int] = None) -> Any:
        meta = self._meta()
        if meta is not None:
            return meta.size() if dim is None else meta.size(dim)
        return self.tracer.create_proxy("call_method", "size", (self,) if dim is None else (self, dim), {})

    def dim(self) -> Any:
        meta = self._meta()
        if meta is not None:
            return meta.dim()
        return self.tracer.create_proxy("call_method", "dim", (self,), {})

    @property
    def shape(self) -> Any:
        meta = self._meta()
        if meta is not None:
            return meta.shape
        return self.tracer.create_proxy("call_function", builtins.getattr, (self, "shape"), {})

    @property
    def dtype(self) -> Any:
        meta = self._meta()
        if meta is not None:
            return meta.dtype
        return self.tracer.create_proxy("call_function", builtins.getattr, (self, "dtype"), {})

    @property
    def device(self) -> "MetaDeviceAttribute":
        # Meta values live on the meta device: the real device stays a traced value.
        return MetaDeviceAttribute(self, "device")

    def __getattr__(self, k: str) -> "MetaAttribute":
        if k == "_tensor_meta":
            raise AttributeError(k)
        return MetaAttribute(self, k)


class MetaAttribute(MetaProxy, Attribute):
    """``proxy.name`` of a MetaProxy: a ``getattr`` node when used as a value, a ``call_method``
    node when called (Attribute's behaviour, with MetaProxy's meta answers)."""

    def __init__(self, root: MetaProxy, attr: str) -> None:
        Attribute.__init__(self, root, attr)


class MetaDeviceAttribute(MetaAttribute):
    """``proxy.device``: traced as a value; the meta device when meta values are computed."""


def proxys_to_metas(v: Any) -> Any:
    """The meta value standing for ``v``: a proxy's meta tensor, ``"meta"`` for a traced device,
    ``v`` itself for plain values. Raises when a proxy has no meta value."""
    if isinstance(v, MetaDeviceAttribute):
        return "meta"
    if isinstance(v, Proxy):
        meta = v.__dict__.get("_tensor_meta")
        if meta is None:
            raise RuntimeError("MetaProxy does not have an associated meta")
        return meta
    return v


def _to_meta(v: Any) -> Any:
    """``proxys_to_metas``, and real tensors (buffers, constants) as meta tensors."""
    if isinstance(v, torch.Tensor) and not isinstance(v, Proxy) and v.device.type != "meta":
        return v.to("meta")
    return proxys_to_metas(v)


@contextlib.contextmanager
def _meta_state(module: nn.Module) -> Iterator[None]:
    """Temporarily give ``module`` (and its submodules) meta copies of its tensors."""
    saved = []
    for owner in module.modules():
        for table in (owner._parameters, owner._buffers):
            for name, tensor in table.items():
                if tensor is not None and tensor.device.type != "meta":
                    saved.append((table, name, tensor))
                    meta = tensor.to("meta")
                    table[name] = (
                        nn.Parameter(meta, tensor.requires_grad) if isinstance(tensor, nn.Parameter) else meta
                    )
    try:
        yield
    finally:
        for table, name, tensor in reversed(saved):
            table[name] = tensor


class MetaTracer(Tracer):
    """A Tracer computing meta values alongside the graph; see the module docstring.

    ``trace(root, meta_args)`` takes a dict from input name to meta tensor. Stateless modules
    called without being attributes of the root (``nn.ReLU()(x)`` in forward) are added to the
    root as ``<classname>_<n>`` when ``allow_insert_stateless_mods`` is set.
    """

    allow_insert_stateless_mods: bool = True
    _TORCH_METHODS_TO_PATCH = ["arange", "zeros", "ones", "full_like", "eye"]

    def proxy(self, node: Node) -> MetaProxy:
        return MetaProxy(node, self)

    def create_proxy(
        self, kind: str, target: Any, args: Tuple[Any, ...], kwargs: Dict[str, Any], name: Optional[str] = None,
        type_expr: Optional[Any] = None, proxy_factory_fn: Optional[Callable[[Node], Proxy]] = None,
    ) -> Any:  # fmt: skip
        proxy = super().create_proxy(kind, target, args, kwargs, name, type_expr, proxy_factory_fn)
        if kind == "placeholder":
            if target in self.meta_args:
                proxy.install_tensor_meta(self.meta_args[target])
            return proxy
        if kind not in ("call_function", "call_method", "call_module", "get_attr"):
            return proxy
        try:
            meta = self._meta_value(kind, target, args, kwargs)
            if not isinstance(proxy, MetaProxy):
                raise TypeError("Dont support composite output yet")
            proxy.install_tensor_meta(meta)
        except Exception as error:  # noqa: BLE001  (any failure only costs the meta value)
            warnings.warn(f"Could not compute metadata for {kind} target {target}: {error}", stacklevel=2)
        return proxy

    def _meta_value(self, kind: str, target: Any, args: Tuple[Any, ...], kwargs: Dict[str, Any]) -> Any:
        if kind == "get_attr":
            try:
                with untraced():  # the real attribute, not another get_attr proxy of it
                    value = _paths.resolve(self.root, target)
            except _paths.MissingAttribute as missing:
                raise missing.error from None
            if not isinstance(value, torch.Tensor):
                raise TypeError(f"attribute {target!r} is not a tensor")
            return value.to(device="meta")
        meta_args = map_aggregate(args, _to_meta)
        meta_kwargs = map_aggregate(kwargs, _to_meta)
        if kind == "call_function":
            if target in self._constructors:
                meta_kwargs = {**meta_kwargs, "device": "meta"}
            return manual_meta_overrides.get(target, target)(*meta_args, **meta_kwargs)
        if kind == "call_method":
            return getattr(meta_args[0], target)(*meta_args[1:], **meta_kwargs)
        module = self.root.get_submodule(target)
        override = manual_meta_overrides.get(type(module))
        with untraced():
            if override is not None:
                return override(module, *meta_args, **meta_kwargs)
            with _meta_state(module):
                return module(*meta_args, **meta_kwargs)

    def path_of_module(self, mod: nn.Module) -> str:
        try:
            return super().path_of_module(mod)
        except NameError:
            stateless = not any(True for _ in mod.parameters()) and not any(True for _ in mod.buffers())
            if self.allow_insert_stateless_mods and stateless:
                return self._insert_module_as_submodule(mod)
            raise

    def _insert_module_as_submodule(self, mod: nn.Module) -> str:
        """Add ``mod`` to the root under a free ``<classname>_<n>`` name and return the name."""
        base = type(mod).__name__.lower()
        index = 0
        while hasattr(self.root, f"{base}_{index}"):
            index += 1
        path = f"{base}_{index}"
        self.root.add_module(path, mod)
        return path

    def trace(  # type: ignore[override]
        self, root: Union[nn.Module, Callable[..., Any]], meta_args: Optional[Dict[str, torch.Tensor]] = None,
        concrete_args: Optional[Dict[str, Any]] = None,
    ) -> Graph:  # fmt: skip
        assert isinstance(meta_args, dict), f"Expected dict for meta_args, got {type(meta_args)}"
        self.meta_args = meta_args
        self._constructors = {getattr(torch, name) for name in self._TORCH_METHODS_TO_PATCH}
        keys = []
        try:
            for name in self._TORCH_METHODS_TO_PATCH:
                keys.append(
                    _PATCHES.acquire(torch, name, lambda original: gen_constructor_wrapper(original)[0])
                )
            return super().trace(root, concrete_args)
        finally:
            _PATCHES.release_all(keys)


def symbolic_trace(
    root: Union[nn.Module, Callable[..., Any]], meta_args: Optional[Dict[str, torch.Tensor]] = None,
    concrete_args: Optional[Dict[str, Any]] = None,
) -> GraphModule:  # fmt: skip
    """Trace ``root`` with a ``MetaTracer`` given meta tensors for its inputs; the GraphModule
    is named after the root's class (or function)."""
    tracer = MetaTracer()
    graph = tracer.trace(root, meta_args, concrete_args)
    name = type(root).__name__ if isinstance(root, nn.Module) else root.__name__
    return GraphModule(tracer.root, graph, name)
