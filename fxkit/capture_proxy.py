"""The values a capture hands to the program: proxies that also carry the example value.

A traced value whose example is a tensor is a :class:`CaptureTensor`: a real ``torch.Tensor``
subclass (a storage-less wrapper with the example's shape, dtype and device), so library code that
checks ``isinstance(x, torch.Tensor)`` or ``torch.is_tensor(x)`` takes the path it takes eagerly.
Every torch function, tensor method and tensor property reaches it through ``__torch_function__``
and is recorded as a node, exactly as for a plain :class:`~fxkit.proxy.Proxy`; nothing reaches
the dispatcher. Other traced values (sizes, tuples, caches read from the example) are
:class:`CaptureProxy` objects.

Why a wrapper subclass and not ``__class__`` tricks: torch's argument parser reads the C-level
tensor of anything that claims to be a tensor, so the object must really be one. A wrapper
subclass has a tensor header but no data, costs a few microseconds to build and allocates nothing,
so capturing a model on the ``meta`` device stays free.
"""

from __future__ import annotations

import functools
import inspect
import operator
import sys
import types
from typing import TYPE_CHECKING, Any, Callable, Dict, Iterator, Optional, Tuple

import torch
from torch import nn

from .guards import CaptureError, GuardKind
from .proxy import Attribute, Proxy, TraceError, _unpack_count

if TYPE_CHECKING:
    from .capture_tracer import CaptureTracer

__all__ = ["CaptureAttribute", "CaptureProxy", "CaptureTensor"]

_MISSING = object()


def _proxy_example(proxy: Proxy) -> Any:
    example = proxy.__dict__.get("example", _MISSING)
    if example is not _MISSING:
        return example
    if isinstance(proxy, Attribute):
        example = getattr(_proxy_example(proxy.root), proxy.attr)
        proxy.__dict__["example"] = example
        return example
    raise CaptureError(
        f"the value {proxy!r} has no example value: it was made by another tracer than the capture"
    )


# Tensor attributes that code uses as Python values: they are fixed to the example's value.
_FIXED_ATTRIBUTES = frozenset({"dtype", "ndim", "layout", "is_sparse", "is_quantized", "is_complex_dtype"})
_FIXED_METHODS = frozenset(
    {"dim", "ndimension", "is_floating_point", "is_complex", "element_size", "is_contiguous"}
)
# Tensor properties whose value is itself a tensor: recorded at once, so the result is a tensor too.
_TENSOR_VALUED_ATTRIBUTES = frozenset({"T", "mT", "H", "mH", "real", "imag", "data"})


class _ExampleOps:
    """What a capture proxy does where Python needs a concrete value: ask the example."""

    tracer: "CaptureTracer"

    @property
    def example(self) -> Any:
        return _proxy_example(self)  # type: ignore[arg-type]

    def __bool__(self) -> bool:
        return self.tracer.decide(GuardKind.BOOL, self)  # type: ignore[arg-type]

    def __len__(self) -> int:
        return self.tracer.decide(GuardKind.LEN, self)  # type: ignore[arg-type]

    def __index__(self) -> int:
        return self.tracer.decide(GuardKind.INDEX, self)  # type: ignore[arg-type]

    def __int__(self) -> int:
        return self.tracer.decide(GuardKind.INT, self)  # type: ignore[arg-type]

    def __float__(self) -> float:
        return self.tracer.decide(GuardKind.FLOAT, self)  # type: ignore[arg-type]

    def __iter__(self) -> Iterator[Any]:
        count = _unpack_count(sys._getframe(1))
        if count is None:
            count = self.tracer.decide(GuardKind.ITER, self)  # type: ignore[arg-type]
        else:
            example = self.example
            actual = len(example) if not isinstance(example, torch.Tensor) or example.dim() else None
            if actual is not None and actual != count:
                # The same error that running the program on the example raises.
                raise ValueError(f"cannot unpack {actual} values into {count} names")
        return iter([self[index] for index in range(count)])  # type: ignore[index]

    def __setitem__(self, key: Any, value: Any) -> None:
        # Eager code fills tensors in place (``bias[:, 0] = ...``); the example is filled the same
        # way when the node is recorded, and dead code elimination keeps operator.setitem.
        self.tracer.create_proxy("call_function", operator.setitem, (self, key, value), {})

    def __contains__(self, item: Any) -> bool:
        if isinstance(self.example, torch.Tensor):
            # A tensor answers `item in tensor` with "any element equals item", not by iterating
            # rows; the recorded test is the same, so one bool guard covers it.
            return self.tracer.decide(GuardKind.BOOL, (self == item).any())  # type: ignore[arg-type, operator]
        return any(element is item or bool(element == item) for element in self)  # type: ignore[attr-defined]

    def keys(self) -> Any:
        return self.example.keys()

    def __getattr__(self, name: str) -> Any:
        if not hasattr(self.example, name):
            # Probes such as hasattr(x, "__array__") get the answer eager execution gives.
            raise AttributeError(f"{type(self.example).__name__!r} object has no attribute {name!r}")
        return self._attribute(name)

    def _attribute(self, name: str) -> Any:
        """``self.name``: a guarded Python value, a recorded tensor, or a lazy attribute proxy."""
        if isinstance(self.example, torch.Tensor):
            if name in _FIXED_ATTRIBUTES:
                return self.tracer.decide(GuardKind.ATTRIBUTE, self, name)  # type: ignore[arg-type]
            if name in _FIXED_METHODS:
                return functools.partial(self.tracer.decide_method, self, name)  # type: ignore[arg-type]
            if name in _TENSOR_VALUED_ATTRIBUTES:
                return self.tracer.create_proxy("call_function", getattr, (self, name), {})
        elif isinstance(self.example, torch.device) and name in ("type", "index"):
            # A device kind is a string that library code hands to functions that take only a string
            # (torch.is_autocast_enabled(x.device.type)): the example's value, with a guard.
            return self.tracer.decide(GuardKind.ATTRIBUTE, self, name)  # type: ignore[arg-type]
        return CaptureAttribute(self, name)  # type: ignore[arg-type]


class CaptureProxy(_ExampleOps, Proxy):
    """A Proxy that carries the example value of the node it stands for (``.example``)."""

    def __repr__(self) -> str:
        return f"CaptureProxy({self.node.name})"


class CaptureAttribute(_ExampleOps, Attribute):
    """``proxy.name`` during a capture; its example is the attribute of the root's example."""


def _tensor_descriptors() -> Tuple[Dict[Any, str], Dict[Any, str]]:
    """The ``__get__`` and ``__set__`` of every tensor property, to the property's name.

    A property read on a tensor subclass reaches ``__torch_function__`` as that ``__get__``.
    """
    getters: Dict[Any, str] = {}
    setters: Dict[Any, str] = {}
    kinds = (types.GetSetDescriptorType, types.MemberDescriptorType, property)
    for klass in reversed(torch.Tensor.__mro__):
        for name, descriptor in vars(klass).items():
            if isinstance(descriptor, kinds) and not name.startswith("__"):
                getters[descriptor.__get__] = name
                setters[descriptor.__set__] = name
    return getters, setters


_PROPERTY_GETTERS, _PROPERTY_SETTERS = _tensor_descriptors()
_FIXED_METHOD_OF = {getattr(torch.Tensor, name): name for name in _FIXED_METHODS}


def _can_wrap(example: Any) -> bool:
    """Whether ``example`` can stand behind a :class:`CaptureTensor` (dense tensors of any device)."""
    return (
        isinstance(example, torch.Tensor)
        and example.layout is torch.strided
        and not example.is_quantized
        and not example.is_nested
    )


class CaptureTensor(CaptureProxy, torch.Tensor):  # type: ignore[misc]
    """A traced value whose example is a tensor, and which is itself a ``torch.Tensor``.

    It holds no data: its shape, strides, dtype and device are the example's, and every
    operation on it is recorded through ``__torch_function__`` and run on the example.
    ``isinstance(x, torch.Tensor)`` is True; for a parameter ``isinstance(x, nn.Parameter)`` too.
    """

    @staticmethod
    def __new__(cls, node: Any, tracer: Any, example: torch.Tensor) -> "CaptureTensor":
        return torch.Tensor._make_wrapper_subclass(  # type: ignore[attr-defined]
            cls, example.shape, strides=example.stride(), dtype=example.dtype, device=example.device
        )

    def __init__(self, node: Any, tracer: Any, example: torch.Tensor) -> None:
        Proxy.__init__(self, node, tracer)
        self.__dict__["example"] = example
        if isinstance(example, nn.Parameter):
            # nn.Parameter's isinstance check accepts tensors that carry this flag.
            self._is_param = True

    def __repr__(self) -> str:
        return f"CaptureTensor({self.node.name})"

    def __format__(self, spec: str) -> str:
        return format(repr(self), spec)

    def __copy__(self) -> "CaptureTensor":
        # A copy stands for the same traced value (as for Proxy); eager code that copies a tensor
        # and then changes the copy in place needs .clone(), which is recorded.
        return self

    def __deepcopy__(self, memo: Dict[int, Any]) -> "CaptureTensor":
        return self

    def __reduce_ex__(self, protocol: Any) -> Any:
        raise TraceError(
            f"{self!r} is a value being captured and cannot be pickled; pickle the captured module instead"
        )

    @classmethod
    def __torch_function__(
        cls,
        func: Callable[..., Any],
        types: Tuple[type, ...],
        args: Tuple[Any, ...] = (),
        kwargs: Optional[Dict[str, Any]] = None,
    ) -> Any:
        try:
            name = _PROPERTY_GETTERS.get(func)
            method = _FIXED_METHOD_OF.get(func)
            setting = _PROPERTY_SETTERS.get(func)
        except TypeError:  # an unhashable callable
            name = method = setting = None
        if name is not None:
            subject = args[0]
            if name.startswith("_") or not isinstance(subject, CaptureTensor):
                # Internal fields (_version, _cdata ...) are the wrapper's own, read by torch itself.
                with torch._C.DisableTorchFunctionSubclass():
                    return func(*args)
            return subject._attribute(name)
        if setting is not None:
            raise TraceError(
                f"setting {setting} of a captured tensor ({args[0]!r}) cannot be recorded;"
                " build a new tensor instead (for example with .requires_grad_() or .detach())"
            )
        if method is not None and isinstance(args[0], CaptureTensor):
            return args[0].tracer.decide_method(args[0], method, *args[1:], **(kwargs or {}))
        return Proxy.__torch_function__.__func__(cls, func, types, args, kwargs)  # type: ignore[attr-defined]

    @classmethod
    def __torch_dispatch__(
        cls,
        func: Any,
        types: Tuple[type, ...],
        args: Tuple[Any, ...] = (),
        kwargs: Optional[Dict[str, Any]] = None,
    ) -> Any:
        # Only code that switches __torch_function__ off gets here; its operation cannot be recorded.
        raise TraceError(
            f"{func} was called on a captured tensor with __torch_function__ disabled, so capture cannot"
            " record it. Make the module that does this a leaf (leaf_modules=[...]), or call the"
            " operation through torch.* outside such a block"
        )


def _recorded_method(name: str) -> Callable[..., Any]:
    if name in _FIXED_METHODS:

        def method(self: CaptureTensor, *args: Any, **kwargs: Any) -> Any:
            return self.tracer.decide_method(self, name, *args, **kwargs)
    else:

        def method(self: CaptureTensor, *args: Any, **kwargs: Any) -> Any:
            return self.tracer.create_proxy("call_method", name, (self, *args), kwargs)

    method.__name__, method.__qualname__ = name, f"CaptureTensor.{name}"
    return method


def _install_methods() -> None:
    # Tensor methods are recorded before torch's argument parser sees them: the parser probes
    # size arguments with __index__, which would fix traced sizes (x.view(batch, -1)) to the example.
    for name in dir(torch.Tensor):
        if name.startswith("_") or name in vars(CaptureTensor):
            continue
        if isinstance(
            inspect.getattr_static(torch.Tensor, name), (types.MethodDescriptorType, types.FunctionType)
        ):
            setattr(CaptureTensor, name, _recorded_method(name))


_install_methods()
