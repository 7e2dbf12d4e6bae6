"""The capture engine: trace a program with example inputs running beside the symbols.

``symbolic_trace`` stops at the first place where a program needs a concrete value (``if`` on a
tensor, ``len()`` of a proxy, a size used as a Python ``int``). :func:`capture` traces the same
program with every recorded operation also run on example values, so such a decision is taken
from the example, and recorded as a *guard*: a node of the graph that re-checks the condition at
run time and raises :class:`~fxkit.guards.GuardError` naming the guard and the user's ``file:line``
when an input takes another path. Submodules that still cannot be traced become ``call_module``
leaves. The records and the run-time checks live in :mod:`fxkit.guards`.

    result = fxkit.capture(model, (input_ids,))
    result.graph_module(input_ids)       # runs the captured graph, guards included
    print(result.explain())              # what was assumed, where, and what to do about it
"""

from __future__ import annotations

import builtins
import collections
import dataclasses
import enum
import functools
import importlib
import inspect
import linecache
import operator
import os
import re
import sys
import traceback
import types
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple, Union

import torch
from torch import nn

from . import _structure
from ._atoms import ATOMIC_ARG_TYPES
from .capture_proxy import _MISSING, CaptureAttribute, CaptureProxy, CaptureTensor, _can_wrap, _proxy_example
from .graph_module import GraphModule
from .guards import (
    NOT_GIVEN,
    CaptureError,
    Guard,
    GuardError,
    GuardKind,
    Leaf,
    LeafKind,
    SourceLocation,
    Specialization,
    assign,
    autograd_apply,
    build_object,
    guard_bool,
    guard_equal,
    guard_float,
    guard_int,
    guard_is_none,
    guard_len,
    guard_not_given,
    guard_structure,
    remove,
    replace_items,
    set_module_attribute,
)
from .node import Node
from .proxy import Proxy, TraceError
from .tracer import (
    _FAST_PATCHES,
    _PATCHES,
    Tracer,
    _defining_class,
    _getattr_patch_classes,
    _recording_wrapper,
    _traced_module_getattr,
    _tracer_stack,
    untraced,
)

__all__ = ["CaptureError", "CaptureResult", "CaptureTracer", "GuardError", "capture"]

_FXKIT_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep
_TORCH_DIR = os.path.dirname(os.path.abspath(torch.__file__)) + os.sep
_STDLIB_DIR = os.path.dirname(os.path.abspath(os.__file__)) + os.sep


# --------------------------------------------------------------------------- locations


def _is_library_frame(filename: str) -> bool:
    """Frames of fxkit, torch and the standard library: never where the user's decision is."""
    if filename.startswith((_FXKIT_DIR, _TORCH_DIR, "<frozen")):
        return True
    return filename.startswith(_STDLIB_DIR) and "site-packages" not in filename[len(_STDLIB_DIR) :]


def _location_of_frame(frame: Optional[types.FrameType]) -> Optional[SourceLocation]:
    while frame is not None and _is_library_frame(frame.f_code.co_filename):
        frame = frame.f_back
    if frame is None:
        return None
    filename, lineno = frame.f_code.co_filename, frame.f_lineno
    return SourceLocation(filename, lineno, frame.f_code.co_name, linecache.getline(filename, lineno).strip())


def _location_of_exception(error: BaseException) -> Optional[SourceLocation]:
    """The innermost user frame of ``error``'s traceback."""
    found: Optional[SourceLocation] = None
    for summary in traceback.extract_tb(error.__traceback__):
        if not _is_library_frame(summary.filename):
            found = SourceLocation(
                summary.filename, summary.lineno or 0, summary.name, (summary.line or "").strip()
            )
    return found


# --------------------------------------------------------------------------- example values

_PLAIN_TYPES = frozenset({int, float, bool, str, type(None), torch.dtype, torch.device, type(Ellipsis)})


def _example_of(value: Any) -> Any:
    """``value`` with every proxy replaced by its example value."""
    cls = type(value)
    if cls in _PLAIN_TYPES:
        return value
    if isinstance(value, Proxy):
        return _proxy_example(value)
    if (cls is dict or cls is tuple) and not value:
        return value  # the kwargs of most calls: nothing to replace, and nothing to copy
    if cls is tuple or cls is list:
        return cls(_example_of(item) for item in value)
    if cls is dict:
        return {key: _example_of(item) for key, item in value.items()}
    if cls is collections.OrderedDict:  # torchvision's feature maps
        return cls((key, _example_of(item)) for key, item in value.items())
    if cls is slice:
        return slice(_example_of(value.start), _example_of(value.stop), _example_of(value.step))
    if isinstance(value, tuple) and hasattr(value, "_fields"):
        return cls(*(_example_of(item) for item in value))
    if not isinstance(value, torch.Tensor) and _structure.children(value) and _holds_proxy(value):
        # A cache or other object holding traced values, given to a call that runs as one node:
        # what that call changes inside it could not be followed, so the capture does not guess.
        raise TraceError(
            f"a {cls.__name__} object holding traced tensors is passed to a call kept as one node (a leaf);"
            " capture cannot follow what the call does with it. Let the call be traced through (do not"
            " make it a leaf), or make its caller the leaf"
        )
    return value


def _may_change(value: Any) -> bool:
    """Whether ``value`` holds a mutable container or an object with parts (tensors do not count)."""
    cls = type(value)
    if cls in _PLAIN_TYPES or isinstance(value, torch.Tensor):
        return False
    if cls is tuple:
        return any(_may_change(item) for item in value)
    if cls is list or cls is dict:
        return True
    return _structure.children(value) is not None


def _state_of(value: Any) -> Any:
    """The structure of ``value`` and the version counter of every tensor held inside an object."""
    versions = tuple(
        (id(part), part._version)
        for path, part in _structure.walk(value)
        if isinstance(part, torch.Tensor) and any(how != "item" for how, _ in path)
    )
    return _structure.fingerprint(value), versions


def _describe_call(kind: str, target: Any) -> str:
    if kind == "call_module":
        return f"the module {target!r}"
    return f"the function {getattr(target, '__qualname__', target)!r}"


def _holds_proxy(value: Any) -> bool:
    return any(isinstance(part, Proxy) for _, part in _structure.walk(value))


def _describe_value(value: Any) -> str:
    if isinstance(value, torch.Tensor):
        if value.numel() == 1 and value.device.type != "meta":
            return f"tensor({value.item()!r})"
        return f"tensor(shape={tuple(value.shape)}, dtype={value.dtype})"
    return repr(value)


# How each kind of decision turns the example into a Python value, the run-time check that re-takes
# it, and how the condition and the specialization read.
_CONVERT: Dict[GuardKind, Callable[[Any], Any]] = {
    GuardKind.BOOL: bool,
    GuardKind.LEN: len,
    GuardKind.ITER: len,
    GuardKind.INT: int,
    GuardKind.INDEX: operator.index,
    GuardKind.FLOAT: float,
}
_GUARD_FUNCTION_OF: Dict[GuardKind, Callable[..., None]] = {
    GuardKind.BOOL: guard_bool,
    GuardKind.LEN: guard_len,
    GuardKind.ITER: guard_len,
    GuardKind.INT: guard_int,
    GuardKind.INDEX: guard_int,
    GuardKind.FLOAT: guard_float,
    GuardKind.ATTRIBUTE: guard_equal,
    GuardKind.METHOD: guard_equal,
    GuardKind.ARGUMENT: guard_equal,
    GuardKind.NOT_GIVEN: guard_not_given,
    GuardKind.KEYWORDS: guard_len,
}
_UNARY_GUARDS = (guard_is_none, guard_not_given)
_CONDITION = {
    GuardKind.LEN: "len({what}) == {value}",
    GuardKind.ITER: "len({what}) == {value}",
    GuardKind.INT: "int({what}) == {value}",
    GuardKind.INDEX: "int({what}) == {value}",
    GuardKind.FLOAT: "float({what}) == {value}",
    GuardKind.ATTRIBUTE: "{what} == {value!r}",
    GuardKind.METHOD: "{what} == {value!r}",
}
_SPECIALIZATION_REASON = {
    GuardKind.LEN: "len() needs a Python number",
    GuardKind.ITER: "iter() needs a Python number",
    GuardKind.INT: "used as a Python int (a size, an index or a range bound)",
    GuardKind.INDEX: "used as a Python int (a size, an index or a range bound)",
    GuardKind.FLOAT: "used as a Python float",
    GuardKind.ATTRIBUTE: "tensor.{name} is used as a Python value",
    GuardKind.METHOD: "tensor.{name}() is used as a Python value",
}


# --------------------------------------------------------------------------- the tracer

# Methods that turn a tensor's data (not its metadata) into Python values.
_DATA_READERS = frozenset({"item", "tolist", "numpy", "__bool__", "__int__", "__float__"})


def _reads_data(args: Any, kwargs: Dict[str, Any]) -> bool:
    """Whether a non-tensor Python value among the arguments came from tensor data."""
    pending: List[Any] = [args, kwargs]
    while pending:
        value = pending.pop()
        if isinstance(value, Proxy):
            if value.node.meta.get("data_dependent") and not isinstance(_proxy_example(value), torch.Tensor):
                return True
        elif isinstance(value, (tuple, list)):
            pending.extend(value)
        elif isinstance(value, dict):
            pending.extend(value.values())
    return False


def _is_data_dependent(proxy: Proxy, example: Any) -> bool:
    return isinstance(example, torch.Tensor) or bool(proxy.node.meta.get("data_dependent"))


def _matches_any(module: nn.Module, qualified_name: str, leaf_modules: Sequence[Any]) -> bool:
    for spec in leaf_modules:
        if isinstance(spec, str):
            if qualified_name == spec:
                return True
        elif isinstance(spec, type):
            if isinstance(module, spec):
                return True
        elif callable(spec) and spec(module, qualified_name):
            return True
    return False


def _fetch(root: Any, path: str) -> Any:
    value = root
    for atom in path.split("."):
        value = getattr(value, atom)
    return value


def _definition_location(fn: Any) -> Optional[SourceLocation]:
    """The ``def`` line of ``fn`` (past its decorators)."""
    code = getattr(inspect.unwrap(fn), "__code__", None) if fn is not None else None
    if code is None:
        return None
    lineno = code.co_firstlineno
    for offset in range(50):
        line = linecache.getline(code.co_filename, lineno + offset).strip()
        if line.startswith(("def ", "async def ")):
            return SourceLocation(code.co_filename, lineno + offset, code.co_name, line)
    return SourceLocation(
        code.co_filename, lineno, code.co_name, linecache.getline(code.co_filename, lineno).strip()
    )


def _leaf_location(module: nn.Module) -> Optional[SourceLocation]:
    return _definition_location(getattr(type(module), "forward", None))


def _name_for(module: nn.Module, frame: Optional[types.FrameType]) -> str:
    """A readable name for an unregistered module: how the user's calling code refers to it."""
    while frame is not None and _is_library_frame(frame.f_code.co_filename):
        frame = frame.f_back
    if frame is not None:
        owner = frame.f_locals.get("self")
        for attr, value in getattr(owner, "__dict__", {}).items():
            for key, item in _container_items(value):
                if item is module:
                    return f"{attr}_{key}" if str(key).isidentifier() or isinstance(key, int) else attr
        for name, value in frame.f_locals.items():
            if value is module and name.isidentifier() and name != "self":
                return name
        for name, value in frame.f_globals.items():
            if value is module and name.isidentifier():
                return name
    return re.sub(r"(?<!^)(?=[A-Z])", "_", type(module).__name__).lower()


def _container_items(value: Any) -> Iterable[Tuple[Any, Any]]:
    if isinstance(value, dict):
        return value.items()
    if isinstance(value, (list, tuple)):
        return enumerate(value)
    return ()


def _call_of(
    tracer: "CaptureTracer", kind: str, target: Any, args: Tuple[Any, ...], kwargs: Dict[str, Any]
) -> Any:
    """The eager call a node of ``kind`` stands for, on example values."""
    if kind == "call_function":
        return target(*args, **kwargs)
    if kind == "call_method":
        return getattr(args[0], target)(*args[1:], **kwargs)
    if kind == "call_module":
        calling = tracer._calling
        module = calling[1] if calling is not None and calling[0] == target else tracer.fetch(target)
        return module(*args, **kwargs)
    raise CaptureError(f"cannot compute an example value for a {kind!r} node")


class _RootWithInstalled(nn.Module):
    """The traced root seen together with attributes added under generated names (the modules and
    constants a capture installs; the classes ``interop.to_torch_fx`` passes as attributes)."""

    def __init__(self, root: nn.Module, installed: Dict[str, Any]) -> None:
        super().__init__()
        self.training = root.training
        self.meta = getattr(root, "meta", {})
        self.__dict__["_fxkit_root"] = root
        self.__dict__["_fxkit_installed"] = installed
        self.__dict__["_non_persistent_buffers_set"] = getattr(root, "_non_persistent_buffers_set", set())

    def __getattr__(self, name: str) -> Any:
        installed = self.__dict__["_fxkit_installed"]
        if name in installed:
            return installed[name]
        return getattr(self.__dict__["_fxkit_root"], name)


class _Checkpoint:
    __slots__ = tuple(
        "node_count guards specializations leaves decided parameter_cache copied storages".split()
    )

    def __init__(self, tracer: "CaptureTracer") -> None:
        self.node_count = len(tracer.graph.nodes)
        self.guards = len(tracer.guards)
        self.specializations = len(tracer.specializations)
        self.leaves = len(tracer.leaves)
        self.decided = len(tracer._decided)
        self.parameter_cache = len(tracer._parameter_proxy_cache)
        self.copied = len(tracer._copied_constants)
        self.storages = len(tracer._copied_storages)


def _storage_key(tensor: torch.Tensor) -> Any:
    try:
        return tensor.untyped_storage()._cdata
    except (RuntimeError, NotImplementedError):  # a tensor without storage
        return None


def _truncate(mapping: Dict[Any, Any], length: int) -> None:
    for key in list(mapping)[length:]:
        del mapping[key]


class _AutomaticLeafRefused(CaptureError):
    """``leaves="error"``: a submodule would have become an automatic leaf (enclosing modules pass it on)."""


#: What capture does with a submodule whose tracing fails: keep it as one call ("auto") or raise.
_LEAF_POLICIES = ("auto", "error")


class CaptureTracer(Tracer):
    """A :class:`~fxkit.tracer.Tracer` whose proxies carry example values.

    Decisions that need a concrete value are taken from the example and recorded as guards;
    submodules whose tracing fails are retried as ``call_module`` leaves when ``auto_leaves``.
    """

    proxy_buffer_attributes = True
    # Libraries register helpers with torch.fx.wrap because symbolic tracing cannot follow their
    # control flow (torchvision's Swin, Swin3D, MViT and poolers); capture can, with guards, and
    # such a helper kept as one call may change a list it was handed, which a leaf cannot repeat.
    # Calls to keep whole are named with ``leaf_functions``.
    _records_torch_fx_wraps = False

    def __init__(
        self,
        leaf_modules: Sequence[Any] = (),
        auto_leaves: bool = True,
        autowrap_functions: Tuple[Callable[..., Any], ...] = (),
        leaves: str = "auto",
    ) -> None:
        super().__init__(autowrap_functions=autowrap_functions)
        if leaves not in _LEAF_POLICIES:
            raise CaptureError(
                f"leaves must be one of {', '.join(map(repr, _LEAF_POLICIES))}; got {leaves!r}"
            )
        self.leaf_modules = list(leaf_modules)
        self.auto_leaves = auto_leaves
        self.leaf_policy = leaves
        self.guards: List[Guard] = []
        self.specializations: List[Specialization] = []
        self.leaves: List[Leaf] = []
        self._decided: Dict[Any, Any] = {}
        self._forced_leaves: Dict[int, str] = {}
        self._reported_leaves: Dict[str, None] = {}
        self._examples: Dict[str, Any] = {}
        self._input_copies: Dict[int, _InputCopy] = {}
        self._keep_alive: List[Any] = []
        self._argument_location: Optional[SourceLocation] = None
        # Modules called during forward but not registered under the root, by generated name.
        self.installed: Dict[str, nn.Module] = {}
        # Tensors made by the program from no input, by the generated name they are read by.
        self.constants: Dict[str, torch.Tensor] = {}
        self._installed_paths: Dict[int, str] = {}
        # The leaf module being recorded, with its path: its example call needs no lookup by path.
        self._calling: Optional[Tuple[str, nn.Module]] = None
        # Constants by id: (tensor, name of the kept copy, version counter then), and those the graph
        # copies on each call: (tensor, node of the copy, version counter after the last recorded call).
        self._kept_constants: Dict[int, Tuple[torch.Tensor, str, int]] = {}
        self._copied_constants: Dict[int, Tuple[torch.Tensor, Node, int]] = {}
        self._copied_storages: Dict[Any, None] = {}

    # ---------------------------------------------------------------- example values

    def proxy(self, node: Node) -> CaptureProxy:
        return CaptureProxy(node, self)

    def create_proxy(
        self,
        kind: str,
        target: Any,
        args: Tuple[Any, ...],
        kwargs: Dict[str, Any],
        name: Optional[str] = None,
        type_expr: Optional[Any] = None,
        proxy_factory_fn: Optional[Callable[[Node], Proxy]] = None,
    ) -> Proxy:
        if kind == "placeholder":
            example = self._examples[target]
        elif kind == "get_attr":
            with self.running_eagerly():
                example = self.fetch(target)
        else:
            constants = self._constants_among((args, kwargs))
            if self._copied_constants:
                self._check_copied_constants()
            example = self._run_example(kind, target, _example_of(args), _example_of(kwargs))
            if constants:
                self._after_constants_used(constants, example)
            for key, (tensor, node, _) in self._copied_constants.items():
                self._copied_constants[key] = (tensor, node, tensor._version)
        if proxy_factory_fn is None and _can_wrap(example):
            proxy_factory_fn = functools.partial(CaptureTensor, tracer=self, example=example)
        proxy = super().create_proxy(kind, target, args, kwargs, name, type_expr, proxy_factory_fn)
        proxy.__dict__["example"] = example
        if not isinstance(example, torch.Tensor) and (target in _DATA_READERS or _reads_data(args, kwargs)):
            proxy.node.meta["data_dependent"] = True
        return proxy

    def _run_example(self, kind: str, target: Any, args: Tuple[Any, ...], kwargs: Dict[str, Any]) -> Any:
        opaque_call = kind == "call_module" or (
            kind == "call_function" and isinstance(target, types.FunctionType)
        )
        if opaque_call and (_may_change(args) or any(_may_change(value) for value in kwargs.values())):
            # A leaf runs as one node: what it does to a list, dict or object it was handed (a cache
            # it updates) happens only here, once, and the graph could not repeat it.
            before = _state_of((args, kwargs))
            result = self._run_call(kind, target, args, kwargs)
            if _state_of((args, kwargs)) != before:
                raise TraceError(
                    f"{_describe_call(kind, target)} is kept as one call (a leaf) but changes a list, dict or"
                    " object passed to it (a cache it updates, say); capture cannot repeat that change, so the"
                    " captured graph would give another result. Let the call be traced through (do not make it"
                    " a leaf), or make its caller, which owns the object, the leaf"
                )
            return result
        return self._run_call(kind, target, args, kwargs)

    def _run_call(self, kind: str, target: Any, args: Tuple[Any, ...], kwargs: Dict[str, Any]) -> Any:
        if type(self).running_eagerly is not CaptureTracer.running_eagerly:
            with self.running_eagerly():
                return _call_of(self, kind, target, args, kwargs)
        # What untraced() does, without a generator-based context manager for each recorded node.
        stack = _tracer_stack()
        stack.append(None)
        try:
            return _call_of(self, kind, target, args, kwargs)
        finally:
            stack.pop()

    def running_eagerly(self) -> Any:
        """A ``with`` block in which modules and wrapped functions run normally, not traced."""
        return untraced()

    # ---------------------------------------------------------------- decisions

    def _record_guard(
        self,
        kind: GuardKind,
        subject: Proxy,
        expected: Any,
        condition: str,
        example_value: Any,
        data_dependent: bool,
        location: Optional[SourceLocation],
        argument: Optional[str] = None,
        attribute: Optional[str] = None,
    ) -> Guard:
        name = f"guard_{len(self.guards)}"
        where = f" at {location.describe()}" if location is not None else ""
        message = f"Guard {name} failed{where}: the graph was captured where {condition}"
        guard_fn = _GUARD_FUNCTION_OF[kind]
        if kind is GuardKind.ARGUMENT and expected is None:
            guard_fn = guard_is_none
        args = (subject, message) if guard_fn in _UNARY_GUARDS else (subject, expected, message)
        node = Tracer.create_proxy(self, "call_function", guard_fn, args, {}).node
        node.meta["guard"] = name
        guard = Guard(
            name,
            kind,
            condition,
            example_value,
            location,
            node.name,
            data_dependent,
            self.scope.module_path,
            argument,
            attribute,
        )
        self.guards.append(guard)
        return guard

    def decide(self, kind: GuardKind, proxy: Proxy, attribute: Optional[str] = None) -> Any:
        """The example's answer to what Python asked of ``proxy``, recorded as a guard (once per question).

        ``kind`` is BOOL, LEN, ITER, INT, INDEX, FLOAT or ATTRIBUTE (``attribute`` names the tensor
        attribute, such as ``dtype``); sizes and values fixed this way are also specializations.
        """
        key = (kind, attribute, proxy.node)
        cached = self._decided.get(key, _MISSING)
        if cached is not _MISSING:
            return cached
        location = _location_of_frame(sys._getframe(1))
        subject = proxy
        if kind is GuardKind.ATTRIBUTE:
            subject = self.create_proxy("call_function", getattr, (proxy, attribute), {})
            value = _proxy_example(subject)
            what = f"{proxy.node.name}.{attribute}"
        else:
            example = _proxy_example(proxy)
            value = self._concrete(_CONVERT[kind], example, proxy, kind, location)
            what = proxy.node.name
        self._decided[key] = value
        self._note_decision(kind, subject, value, what, location, attribute)
        return value

    def decide_method(self, proxy: Proxy, name: str, *args: Any, **kwargs: Any) -> Any:
        """``tensor.name(*args)`` (``dim()``, ``is_floating_point()``) as a Python value, guarded."""
        key = (GuardKind.METHOD, name, proxy.node, args, tuple(sorted(kwargs.items())))
        cached = self._decided.get(key, _MISSING)
        if cached is not _MISSING:
            return cached
        location = _location_of_frame(sys._getframe(1))
        result = self.create_proxy("call_method", name, (proxy,) + args, kwargs)
        value = _proxy_example(result)
        self._decided[key] = value
        self._note_decision(GuardKind.METHOD, result, value, f"{proxy.node.name}.{name}()", location, name)
        return value

    def _note_decision(
        self,
        kind: GuardKind,
        subject: Proxy,
        value: Any,
        what: str,
        location: Optional[SourceLocation],
        attribute: Optional[str],
    ) -> None:
        if kind is GuardKind.BOOL:
            example = _proxy_example(subject)
            condition = f"bool({what}) is {value}"
            data_dependent = _is_data_dependent(subject, example)
            self._record_guard(
                kind, subject, value, condition, _describe_value(example), data_dependent, location
            )
            return
        data_dependent = kind in (GuardKind.INT, GuardKind.INDEX, GuardKind.FLOAT) and _is_data_dependent(
            subject, _proxy_example(subject)
        )
        condition = _CONDITION[kind].format(what=what, value=value)
        guard = self._record_guard(
            kind, subject, value, condition, value, data_dependent, location, attribute=attribute
        )
        reason = _SPECIALIZATION_REASON[kind].format(name=attribute)
        spec_what = f"length of {what}" if kind in (GuardKind.LEN, GuardKind.ITER) else what
        self.specializations.append(Specialization(spec_what, value, reason, location, guard.name, kind))

    def _concrete(
        self,
        convert: Callable[[Any], Any],
        example: Any,
        proxy: Proxy,
        kind: GuardKind,
        location: Optional[SourceLocation],
    ) -> Any:
        try:
            return convert(example)
        except TypeError as error:
            if kind in (GuardKind.LEN, GuardKind.ITER):
                raise TraceError(f"{kind.value}() of {proxy.node.name}: {error}") from None
            raise
        except (RuntimeError, NotImplementedError) as error:
            where = f" at {location.describe()}" if location is not None else ""
            raise TraceError(
                f"{kind.value}() of {proxy.node.name} needs the data of the example value, which it cannot give"
                f" ({error}){where}. Capture with real (not meta) example inputs, or make the module a leaf."
            ) from None

    # ---------------------------------------------------------------- modules

    def path_of_module(self, mod: nn.Module) -> str:
        """The qualified name of ``mod``; a module not registered under the root gets a generated one.

        Modules built inside ``forward`` (``CrossEntropyLoss()``), held in plain lists or dicts, or
        living at module level (the function layers of kernel hubs) run like any other: they are
        traced through, and where one stays a call it is installed under its generated name in the
        captured module (the user's model is never changed).
        """
        path = self._installed_paths.get(id(mod))
        if path is not None:
            return path
        try:
            return super().path_of_module(mod)
        except NameError:
            return self._install(mod)

    def _install(self, module: nn.Module) -> str:
        base = f"_unregistered_{_name_for(module, sys._getframe(2))}"
        name, number = base, 0
        while name in self.installed or hasattr(self.root, name):
            number += 1
            name = f"{base}_{number}"
        self.installed[name] = module
        parameters, buffers = self._parameter_path_map(), self._buffer_path_map()
        for sub_path, sub in module.named_modules(remove_duplicate=False):
            prefix = f"{name}.{sub_path}" if sub_path else name
            self._installed_paths.setdefault(id(sub), prefix)
            for attr, value in sub.__dict__.items():
                if isinstance(value, torch.Tensor):
                    self.tensor_attrs.setdefault(value, f"{prefix}.{attr}")
        for param_path, param in module.named_parameters():
            parameters.setdefault(id(param), f"{name}.{param_path}")
        for buffer_path, buffer in module.named_buffers():
            buffers.setdefault(id(buffer), f"{name}.{buffer_path}")
        if self._getattr_per_class:
            self._patch_getattr_of(module)
        return name

    def _getattr_patch_targets(
        self, modules: List[Tuple[str, nn.Module]], is_module: bool
    ) -> Optional[List[type]]:
        """As for symbolic tracing (per class on the fast path), since :meth:`_install` patches the
        classes of the modules it installs; a subclass that changes how modules or attributes are
        found patches ``nn.Module``."""
        cls = type(self)
        if cls.getattr is not Tracer.getattr or cls.path_of_module is not CaptureTracer.path_of_module:
            return None
        if not is_module:
            return [] if _FAST_PATCHES.enabled() else None
        return _getattr_patch_classes(modules)

    def _patch_getattr_of(self, module: nn.Module) -> None:
        """Extend this trace's per-class ``__getattr__`` patches to a module installed mid-trace, so its
        parameters and buffers are read as nodes just as with ``nn.Module`` patched."""
        patched = self._getattr_classes
        assert patched is not None
        for sub in module.modules():
            state = sub.__dict__
            if not (state.get("_parameters") or state.get("_buffers")):
                continue
            cls = type(sub)
            if any(klass in patched for klass in cls.__mro__):
                continue
            if _defining_class(cls, "__getattr__") is not nn.Module:
                # Its own __getattr__ reaches nn.Module's through super(): patch that one, as the
                # plain version does (the wrapper there acts for this trace from now on).
                if not self._getattr_on_module:
                    self._patch_keys.append(
                        _PATCHES.acquire(nn.Module, "__getattr__", _traced_module_getattr)
                    )
                    self._getattr_on_module = True
                continue
            per_class = functools.partial(_traced_module_getattr, per_class=True)
            self._patch_keys.append(_PATCHES.acquire(cls, "__getattr__", per_class))
            patched.append(cls)

    def fetch(self, target: str) -> Any:
        """The object at qualified name ``target`` of the root, or of a module or constant capture added."""
        head, _, rest = target.partition(".")
        if head in self.constants:
            return self.constants[head]
        if head in self.installed:
            return _fetch(self.installed[head], rest) if rest else self.installed[head]
        return _fetch(self.root, target)

    def graph_module_root(self) -> Any:
        """What the captured GraphModule copies its attributes from: the root, the installed modules
        and the tensor constants."""
        if not self.installed and not self.constants:
            return self.root
        return _RootWithInstalled(self.root, {**self.installed, **self.constants})

    def _is_constant(self, value: Any) -> bool:
        """Whether ``value`` is a tensor the program made from no input (neither traced nor model state)."""
        return (
            isinstance(value, torch.Tensor)
            and not isinstance(value, (Proxy, nn.Parameter))
            and id(value) not in self._buffer_path_map()
            and self._tensor_attr_path(value) is None
        )

    def _constants_among(self, value: Any) -> List[Tuple[torch.Tensor, int]]:
        """The constant tensors among a call's arguments that the graph does not copy yet, each kept
        as it is now, with its version counter."""
        found: List[Tuple[torch.Tensor, int]] = []
        pending = [value]
        while pending:
            item = pending.pop()
            cls = type(item)
            if cls is CaptureTensor or cls in _PLAIN_TYPES:
                continue
            if cls is tuple or cls is list:
                pending.extend(item)
            elif cls is dict:
                pending.extend(item.values())
            elif isinstance(item, torch.Tensor) and self._is_constant(item):
                if isinstance(self._constant_read(item), str):
                    found.append((item, item._version))
        return found

    def _after_constants_used(self, used: List[Tuple[torch.Tensor, int]], result: Any) -> None:
        """A recorded call that changed a constant in place, or returned a view of it (which a later
        call may change), makes the constant a value of the graph: a copy made on each call."""
        results = result if isinstance(result, (tuple, list)) else (result,)
        storages = {_storage_key(item) for item in results if isinstance(item, torch.Tensor)}
        for tensor, version in used:
            if tensor._version != version or _storage_key(tensor) in storages:
                self._copy_per_call(tensor)

    def _check_copied_constants(self) -> None:
        for tensor, _, version in self._copied_constants.values():
            if tensor._version != version:
                raise TraceError(
                    f"a tensor made while the model runs (shape {tuple(tensor.shape)}) is changed in place both by"
                    " traced operations and by operations on constants only, which capture does not record;"
                    " the captured graph would give another result. Build it from the inputs (for example"
                    " torch.zeros_like(x)), or make the module that does this a leaf"
                )

    def _constant_read(self, tensor: torch.Tensor) -> Union[str, Node]:
        """What reads ``tensor`` as the program holds it now: the name of a kept copy, or a node.

        A constant is kept as a copy of its value when the program first hands it to a recorded
        call, and kept again when the program has changed it since (its version counter moved), so
        each use reads the value eager reads at that point. Once a recorded call changed it in
        place or made a view of it, the graph reads a copy made on each call instead, which the
        graph's own calls change just as eager changes the tensor.
        """
        copied = self._copied_constants.get(id(tensor))
        if copied is not None:
            return copied[1]
        if self._copied_storages and _storage_key(tensor) in self._copied_storages:
            raise TraceError(
                f"a tensor made while the model runs (shape {tuple(tensor.shape)}) shares memory with one that"
                " traced operations change in place or view; capture cannot follow changes through such"
                " views, so the captured graph would give another result. Clone it before changing it, or"
                " make the module that does this a leaf"
            )
        kept = self._kept_constants.get(id(tensor))
        if kept is None or kept[2] != tensor._version:
            copy = tensor.detach().clone()
            if tensor.requires_grad and tensor.is_leaf:
                copy.requires_grad_(True)
            kept = self._kept_constants[id(tensor)] = (tensor, self._constant(copy), tensor._version)
        return kept[1]

    def _copy_per_call(self, tensor: torch.Tensor) -> None:
        _, path, _ = self._kept_constants[id(tensor)]
        read = self.create_node("get_attr", path, (), {})
        node = self.create_node("call_method", "clone", (read,), {})
        self._copied_constants[id(tensor)] = (tensor, node, tensor._version)
        self._copied_storages[_storage_key(tensor)] = None

    def _constant(self, tensor: torch.Tensor) -> str:
        """A name for a tensor the program made from no input (``torch.arange(4)``), kept by the
        capture: torch.fx sets it on the traced root, but capture never changes the user's model."""
        number = len(self.constants)
        while f"_tensor_constant{number}" in self.installed or hasattr(
            self.root, f"_tensor_constant{number}"
        ):
            number += 1
        name = f"_tensor_constant{number}"
        self.constants[name] = tensor
        return name

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        if id(m) in self._forced_leaves:
            return True
        if self.leaf_modules and _matches_any(m, module_qualified_name, self.leaf_modules):
            if module_qualified_name not in self._reported_leaves:
                self._reported_leaves[module_qualified_name] = None
                self.leaves.append(
                    Leaf(
                        module_qualified_name,
                        LeafKind.MODULE,
                        type(m).__name__,
                        False,
                        "named in leaf_modules",
                        _leaf_location(m),
                    )
                )
            return True
        return super().is_leaf_module(m, module_qualified_name)

    def call_module(
        self, m: nn.Module, forward: Callable[..., Any], args: Tuple[Any, ...], kwargs: Dict[str, Any]
    ) -> Any:
        qualified_name = self.path_of_module(m)
        if self.is_leaf_module(m, qualified_name):
            self._calling = (qualified_name, m)
            try:
                return super().call_module(m, forward, args, kwargs)
            finally:
                self._calling = None
        if not self.auto_leaves:
            return super().call_module(m, forward, args, kwargs)
        checkpoint = _Checkpoint(self)
        try:
            return super().call_module(m, forward, args, kwargs)
        except _AutomaticLeafRefused:
            raise
        except Exception as error:
            self._rollback(checkpoint)
            self._forced_leaves[id(m)] = qualified_name
            try:
                result = super().call_module(m, forward, args, kwargs)
            except Exception:
                del self._forced_leaves[id(m)]
                raise error from None
            reason = f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}".rstrip(
                ": "
            )
            location = _location_of_exception(error)
            if self.leaf_policy == "error":
                where = f" at {location.describe()}" if location is not None else ""
                raise _AutomaticLeafRefused(
                    f"{qualified_name} ({type(m).__name__}) would become an automatic leaf: tracing it failed"
                    f" with {reason}{where}. Change the code there so that it traces, name the module in"
                    f" leaf_modules=[{qualified_name!r}] to keep it as one call, or capture with leaves='auto'"
                ) from error
            self.leaves.append(
                Leaf(qualified_name, LeafKind.MODULE, type(m).__name__, True, reason, location)
            )
            return result

    def _rollback(self, checkpoint: _Checkpoint) -> None:
        graph = self.graph
        for node in list(reversed(graph.nodes))[: len(graph.nodes) - checkpoint.node_count]:
            graph.erase_node(node)
        del self.guards[checkpoint.guards :]
        del self.specializations[checkpoint.specializations :]
        del self.leaves[checkpoint.leaves :]
        _truncate(self._decided, checkpoint.decided)
        _truncate(self._parameter_proxy_cache, checkpoint.parameter_cache)
        _truncate(self._copied_constants, checkpoint.copied)
        _truncate(self._copied_storages, checkpoint.storages)
        self._reported_leaves = {leaf.name: None for leaf in self.leaves if not leaf.automatic}

    # ---------------------------------------------------------------- inputs and outputs

    def bind_examples(
        self, fn: Callable[..., Any], is_module: bool, args: Tuple[Any, ...], kwargs: Dict[str, Any]
    ) -> None:
        """Remember the example inputs of the traced function, matched to its parameters."""
        signature = inspect.signature(inspect.unwrap(fn))
        parameters = list(signature.parameters.values())
        if is_module:
            parameters = parameters[1:]
        signature = signature.replace(parameters=parameters)
        try:
            bound = signature.bind(*args, **kwargs)
        except TypeError as error:
            raise CaptureError(
                f"the example inputs do not match the signature {signature}: {error}"
            ) from None
        self._signature = signature
        self._bound = bound.arguments
        self._argument_location = _definition_location(fn)

    def create_args_for_root(
        self, root_fn: Callable[..., Any], is_module: bool, concrete_args: Any = None
    ) -> Tuple[Callable[..., Any], List[Any]]:
        """One placeholder per parameter; the model is called with exactly the example's arguments."""
        positional: List[Any] = [self.root] if is_module else []
        keywords: Dict[str, Any] = {}
        needs_default = False
        for parameter in self._signature.parameters.values():
            name = parameter.name
            if parameter.kind is inspect.Parameter.VAR_POSITIONAL:
                given = tuple(self._bound.get(name, ()))
                if given:
                    # One ``*name`` input holding the tuple, structured and guarded like any tuple;
                    # the parameters before it are then passed by position, as the example passed them.
                    target = f"*{name}"
                    self._examples[target] = given
                    proxy = self.create_proxy("placeholder", target, (), {})
                    positional.extend(keywords.pop(key) for key in list(keywords))
                    positional.extend(self._structured_input(name, given, proxy))
                continue
            if parameter.kind is inspect.Parameter.VAR_KEYWORD:
                # Each keyword given through **kwargs becomes an input of its own name, so models
                # that take flags such as use_cache only through **kwargs can still be captured.
                given_keys = list(self._bound.get(name, {}))
                for key in given_keys:
                    keywords[key] = self._input(key, self._bound[name][key], (NOT_GIVEN,), None)
                self._guard_no_other_keywords(name, given_keys)
                continue
            if name not in self._bound:
                # Left out of the example call, so left out of the replayed call: passing the default
                # explicitly is not the same call for code that inspects what it was given.
                self._not_given_input(name)
                needs_default = True
                continue
            needs_default = needs_default or parameter.default is not inspect.Parameter.empty
            annotation = parameter.annotation
            type_expr = (
                None if annotation is inspect.Parameter.empty or isinstance(annotation, str) else annotation
            )
            value = self._input(name, self._bound[name], (NOT_GIVEN,) if needs_default else (), type_expr)
            if parameter.kind is inspect.Parameter.POSITIONAL_ONLY:
                positional.append(value)
            else:
                keywords[name] = value

        def call_root(*_: Any) -> Any:
            result = root_fn(*positional, **keywords)
            self._write_back_inputs()
            return result

        return call_root, []

    def _not_given_input(self, name: str) -> None:
        self._examples[name] = NOT_GIVEN
        proxy = self.create_proxy("placeholder", name, (NOT_GIVEN,), {})
        location = self._argument_location
        guard = self._record_guard(
            GuardKind.NOT_GIVEN, proxy, None, f"{name} is not given", None, False, location, argument=name
        )
        self.specializations.append(
            Specialization(
                f"argument {name}",
                NOT_GIVEN,
                "not given in the example call, so not passed",
                location,
                guard.name,
                GuardKind.NOT_GIVEN,
                name,
            )
        )

    def _guard_no_other_keywords(self, name: str, given_keys: List[str]) -> None:
        # The graph keeps **name so that a keyword the capture never saw (output_hidden_states=True)
        # fails a guard naming it rather than a bare TypeError or, worse, being ignored.
        target = f"**{name}"
        self._examples[target] = {}
        proxy = self.create_proxy("placeholder", target, (), {})
        seen = f" other than {', '.join(given_keys)}" if given_keys else ""
        condition = f"no keyword inputs{seen} are given through **{name}"
        guard = self._record_guard(
            GuardKind.KEYWORDS, proxy, 0, condition, 0, False, self._argument_location, argument=name
        )
        self.specializations.append(
            Specialization(
                f"argument **{name}",
                {},
                "no other keyword inputs",
                self._argument_location,
                guard.name,
                GuardKind.KEYWORDS,
                name,
            )
        )

    def _input(self, name: str, value: Any, default: Tuple[Any, ...], type_expr: Any) -> Any:
        """The value the model receives for input ``name``: a proxy, a guarded plain value, or a
        copy of a structured value whose tensors are proxies reading the input's parts."""
        self._examples[name] = value
        proxy = self.create_proxy("placeholder", name, default, {}, type_expr=type_expr)
        if isinstance(value, torch.Tensor):
            return proxy
        location = self._argument_location
        if _structure.is_plain(value):
            condition = f"{name} is None" if value is None else f"{name} == {value!r}"
            guard = self._record_guard(
                GuardKind.ARGUMENT, proxy, value, condition, value, False, location, argument=name
            )
            self.specializations.append(
                Specialization(
                    f"argument {name}",
                    value,
                    "given as a non-tensor example input",
                    location,
                    guard.name,
                    GuardKind.ARGUMENT,
                    name,
                )
            )
            return value
        return self._structured_input(name, value, proxy)

    def _structured_input(self, name: str, value: Any, proxy: Proxy) -> Any:
        opaque: List[Any] = []
        expected = _structure.fingerprint(value, opaque)
        what = _structure.describe_fingerprint(expected)
        condition = f"{name} has the example's structure ({what})"
        location = self._argument_location
        message = f"Guard guard_{len(self.guards)} failed at {location.describe() if location else name}:"
        message += f" the graph was captured where {condition}"
        node = self.create_node(
            "call_function", guard_structure, (proxy.node, expected, tuple(opaque), message), {}
        )
        guard_name = f"guard_{len(self.guards)}"
        node.meta["guard"] = guard_name
        self.guards.append(
            Guard(
                guard_name,
                GuardKind.STRUCTURE,
                condition,
                what,
                location,
                node.name,
                False,
                self.scope.module_path,
                name,
            )
        )
        self.specializations.append(
            Specialization(
                f"structure of argument {name}",
                what,
                "a structured input: its containers, keys and plain values are fixed, its tensors are inputs",
                location,
                guard_name,
                GuardKind.STRUCTURE,
                name,
            )
        )
        accessors: Dict[Tuple[Tuple[str, Any], ...], Proxy] = {(): proxy}

        def accessor(path: Tuple[Tuple[str, Any], ...]) -> Proxy:
            found = accessors.get(path)
            if found is None:
                parent = accessor(path[:-1])
                how, key = path[-1]
                if how == "item":
                    found = self.create_proxy("call_function", operator.getitem, (parent, key), {})
                elif how == "attr":
                    found = self.create_proxy("call_function", getattr, (parent, key), {})
                else:
                    found = self.create_proxy("call_function", _structure.part_of, (parent, how, key), {})
                accessors[path] = found
            return found

        paths: Dict[int, Tuple[Tuple[str, Any], ...]] = {}
        for path, part in _structure.walk(value):
            paths.setdefault(id(part), path)
        copies: Dict[int, Any] = {}

        def replace(leaf: Any) -> Any:
            return accessor(paths[id(leaf)]) if isinstance(leaf, torch.Tensor) else leaf

        traced = _structure.rebuild(value, replace, copies)
        originals = {id(part): part for _, part in _structure.walk(value)}
        for original_id, copy in copies.items():
            parts = _tracked_parts(copy)
            self._input_copies[id(copy)] = _InputCopy(
                copy, paths[original_id], accessor, [(step, part) for step, part in parts or []], name
            )
            self._keep_alive.append(originals[original_id])
        return traced

    def _write_back_inputs(self) -> None:
        """Replays on the caller's objects the changes the model made to structured inputs (a cache
        updated in place is updated in place by the captured module too)."""
        for entry in list(self._input_copies.values()):
            now = _tracked_parts(entry.copy) or []
            if [(s, id(p)) for s, p in now] == [(s, id(p)) for s, p in entry.parts]:
                continue
            target = entry.accessor(entry.path)
            if isinstance(entry.copy, tuple) or (
                not isinstance(entry.copy, (list, dict)) and not _structure.has_attributes(entry.copy)
            ):
                raise CaptureError(
                    f"the model changed the input {entry.input_name} in place at {_structure.path_text(entry.path)},"
                    f" a {type(entry.copy).__name__}, which capture cannot replay; pass a value the model does not"
                    " change, or one whose class keeps its state in attributes"
                )
            before = {step: part for step, part in entry.parts}
            after = {step: part for step, part in now}
            if isinstance(entry.copy, list):
                self.create_node(
                    "call_function", replace_items, (target.node, self.create_arg(list(entry.copy))), {}
                )
                continue
            for step, part in now:
                if step not in before or before[step] is not part:
                    args = (target.node, step[0], step[1], self.create_arg(part))
                    self.create_node("call_function", assign, args, {})
            for step in before:
                if step not in after:
                    self.create_node("call_function", remove, (target.node, step[0], step[1]), {})

    def create_arg(self, a: Any) -> Any:
        # Scalars and traced values, most arguments of a node, are what Tracer.create_arg makes of them.
        if type(a) in ATOMIC_ARG_TYPES:
            return a
        if isinstance(a, Proxy):
            return a.node
        if a is NOT_GIVEN or isinstance(a, (enum.Enum, type)):
            return a  # classes (a custom autograd Function, say) are globals of the generated code
        if isinstance(a, torch.Tensor) and not isinstance(a, (Proxy, nn.Parameter)):
            path = self._buffer_path_map().get(id(a)) or self._tensor_attr_path(a)
            if path is None:
                read = self._constant_read(a)
                if isinstance(read, Node):
                    return read
                path = read
            return self.create_node("get_attr", path, (), {})
        entry = self._input_copies.get(id(a)) if self._input_copies else None
        if entry is not None and entry.copy is a:
            # The model returned (part of) a structured input: the caller's own object.
            return entry.accessor(entry.path).node
        cls = type(a)
        if isinstance(a, dict) and cls is not dict and not isinstance(a, Proxy) and _rebuildable_mapping(a):
            # A dict subclass (a ModelOutput) returned by the program is rebuilt with its own class.
            items = {key: self.create_arg(value) for key, value in a.items()}
            return self.create_node("call_function", cls, (), items)
        if (
            not isinstance(a, (Proxy, torch.Tensor, tuple, list, dict))
            and _structure.has_attributes(a)
            and not _built_by_class_call(a)
        ):
            # An object built by the program (a cache, a dataclass): rebuilt with its class and state.
            state = {key: self.create_arg(value) for key, value in vars(a).items()}
            return self.create_node("call_function", build_object, (cls, state), {})
        return super().create_arg(a)


def _tracked_parts(value: Any) -> Optional[List[Tuple[Tuple[str, Any], Any]]]:
    """The parts of an input object whose changes are replayed: its attributes when it has them
    (even if it is a pytree node, whose flattening may not say where a part lives), else its items."""
    if not isinstance(value, (tuple, list, dict)) and _structure.has_attributes(value):
        return [(("attr", key), part) for key, part in vars(value).items()]
    return _structure.children(value)


def _built_by_class_call(value: Any) -> bool:
    """Dataclasses whose fields all go through ``__init__`` are rebuilt by calling their class."""
    return _structure.is_dataclass_instance(value) and all(field.init for field in dataclasses.fields(value))


class _InputCopy:
    """A container or object of a structured input as the model saw it, and its parts at the start."""

    __slots__ = ("copy", "path", "accessor", "parts", "input_name")

    def __init__(
        self,
        copy: Any,
        path: Tuple[Tuple[str, Any], ...],
        accessor: Callable[[Tuple[Tuple[str, Any], ...]], Proxy],
        parts: List[Tuple[Tuple[str, Any], Any]],
        input_name: str,
    ) -> None:
        self.copy = copy
        self.path = path
        self.accessor = accessor
        self.parts = parts
        self.input_name = input_name


def _rebuildable_mapping(value: Dict[Any, Any]) -> bool:
    if not all(isinstance(key, str) and key.isidentifier() for key in value):
        return False
    try:
        rebuilt = type(value)(**{key: None for key in value})
    except Exception:
        return False
    return isinstance(rebuilt, dict)


# --------------------------------------------------------------------------- leaf functions


def _owning_class(fn: Callable[..., Any]) -> Optional[type]:
    """The class ``fn`` is defined in (for a static method), or None for a plain function."""
    qualname = getattr(fn, "__qualname__", "") or ""
    parts = qualname.split(".")
    if len(parts) == 1:
        return None
    if "<locals>" in parts:
        raise CaptureError(
            f"leaf function {qualname} is defined inside a function; pass a function defined at module"
            " or class level"
        )
    owner: Any = getattr(fn, "__globals__", {}).get(parts[0])
    for part in parts[1:-1]:
        owner = getattr(owner, part, None)
    if not isinstance(owner, type):
        raise CaptureError(f"leaf function {qualname}: cannot find its class {'.'.join(parts[:-1])}")
    return owner


def _resolve_function(spec: Union[str, Callable[..., Any]]) -> Callable[..., Any]:
    if callable(spec):
        return spec
    module_name, _, attr_path = spec.partition(":") if ":" in spec else spec.rpartition(".")
    try:
        value: Any = importlib.import_module(module_name)
        for part in attr_path.split("."):
            value = getattr(value, part)
    except (ImportError, AttributeError, ValueError) as error:
        raise CaptureError(f"leaf function {spec!r} cannot be found: {error}") from None
    return value


def _places_holding(fn: Callable[..., Any], namespaces: Iterable[Dict[str, Any]]) -> List[Tuple[Any, str]]:
    """Every (class, name) or (globals, name) that refers to ``fn``: where its callers read it."""
    places: List[Tuple[Any, str]] = []
    owner = _owning_class(fn)
    if owner is not None:
        name = fn.__name__
        if not isinstance(owner.__dict__.get(name), staticmethod):
            raise CaptureError(
                f"leaf function {owner.__name__}.{name} is a method; methods of modules are made leaves by"
                " naming their module in leaf_modules"
            )
        places.append((owner, name))
    seen: Dict[int, None] = {}
    for namespace in [getattr(fn, "__globals__", {}), *namespaces]:
        if id(namespace) in seen:
            continue
        seen[id(namespace)] = None
        for attr, value in list(namespace.items()):
            if value is fn:
                places.append((namespace, attr))
    return places


class _LeafFunctionPatches:
    """Replaces leaf functions where their callers find them, and always puts them back."""

    def __init__(self, functions: Sequence[Callable[..., Any]], root: Any) -> None:
        self._functions = functions
        self._root = root
        self._keys: List[Tuple[int, str]] = []

    def __enter__(self) -> "_LeafFunctionPatches":
        if not self._functions:
            return self  # nothing to patch: skip the search through the modules' namespaces
        try:
            namespaces = [vars(module) for module in self._modules_to_search()]
            for fn in self._functions:
                for place, name in _places_holding(fn, namespaces):
                    # The shared registry keeps a static method a static method and restores the
                    # class's own descriptor when the last overlapping capture is done with it.
                    self._keys.append(_PATCHES.acquire(place, name, _recording_wrapper))
        except BaseException:
            self.__exit__()
            raise
        return self

    def _modules_to_search(self) -> List[types.ModuleType]:
        names: Dict[str, None] = {}
        for fn in self._functions:
            names[fn.__module__] = None
        if isinstance(self._root, nn.Module):
            for module in self._root.modules():
                names[type(module).__module__] = None
        else:
            names[getattr(self._root, "__module__", "") or ""] = None
        return [sys.modules[name] for name in names if name in sys.modules]

    def __exit__(self, *exc_info: Any) -> None:
        while self._keys:
            _PATCHES.release(self._keys.pop())


# --------------------------------------------------------------------------- factory functions

# torch functions whose argument parser rejects a Proxy among sizes or as ``device=`` instead of
# handing it to ``__torch_function__``; during a capture they record a node when given one.
_FACTORY_FUNCTIONS = (
    "ones",
    "zeros",
    "empty",
    "full",
    "rand",
    "randn",
    "randint",
    "arange",
    "eye",
    "linspace",
    "tensor",
    "as_tensor",
)


def _factory_recorder(original: Callable[..., Any]) -> Callable[..., Any]:
    from .tracer import _find_proxy

    @functools.wraps(original)
    def factory(*args: Any, **kwargs: Any) -> Any:
        proxy = _find_proxy(args, kwargs)
        if proxy is None or not isinstance(proxy.tracer, CaptureTracer):
            return original(*args, **kwargs)
        return proxy.tracer.create_proxy("call_function", original, args, kwargs)

    factory.__fxkit_original__ = original  # type: ignore[attr-defined]
    return factory


def _autograd_apply_recorder(original: Callable[..., Any]) -> Callable[..., Any]:
    from .tracer import _find_proxy

    @functools.wraps(original)
    def apply(function_class: Any, *args: Any, **kwargs: Any) -> Any:
        proxy = _find_proxy(args, kwargs)
        if proxy is None or not isinstance(proxy.tracer, CaptureTracer):
            return original(function_class, *args, **kwargs)
        # One node, not the Function's forward traced through: its custom backward must survive.
        return proxy.tracer.create_proxy("call_function", autograd_apply, (function_class, *args), kwargs)

    return apply


def _grad_mode_recorder(original: Callable[..., Any]) -> Callable[..., Any]:
    from .tracer import _active_tracer

    @functools.wraps(original)
    def is_grad_enabled() -> Any:
        tracer = _active_tracer()
        if not isinstance(tracer, CaptureTracer):
            return original()
        # A traced value, so that a branch on it is decided by the example and guarded.
        return tracer.create_proxy("call_function", original, (), {})

    return is_grad_enabled


def _grad_mode_setter_recorder(original: Callable[..., Any]) -> Callable[..., Any]:
    from .tracer import _active_tracer

    @functools.wraps(original)
    def set_grad_enabled(mode: Any) -> None:
        tracer = _active_tracer()
        if not isinstance(tracer, CaptureTracer):
            return original(mode)
        # `with torch.no_grad():` inside forward: recorded (a side effect DCE keeps), so the graph
        # switches gradients off and back where eager does. The example run switches them too.
        tracer.create_proxy("call_function", original, (mode,), {})
        return None

    return set_grad_enabled


def _check_recorder(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def check_with(error_type: Any, cond: Any, message: Any = None) -> Any:
        if isinstance(cond, (CaptureProxy, CaptureAttribute)) and not isinstance(cond, torch.Tensor):
            # torch._check(size == 1) with a traced condition: taken from the example as a bool
            # guard, so the graph checks it again on every call (a GuardError where eager raises).
            cond = bool(cond)
        return original(error_type, cond, message)

    return check_with


def _callable_recorder(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def callable_(value: Any) -> bool:
        # Every proxy class defines __call__, so the builtin says True for all of them; code that
        # asks first (`if callable(cond): cond = cond()`) must get the example's answer.
        if isinstance(value, (CaptureProxy, CaptureAttribute)):
            return original(_proxy_example(value))
        return original(value)

    return callable_


class _KeepModelState:
    """Puts the model back as it was before the example run: capturing a model is not a call of it.

    - Buffers changed in place (a BatchNorm's running statistics in training mode) get their values
      back.
    - Traced values stored on a module (``self.table = self.table.to(x.device)``, in its attributes,
      buffers or parameters) are taken back out; left there they would break every later eager
      call. Where the stored value is the same object as before (``.to`` that changed nothing), or
      the attribute was None (a cache built on first use), the graph computes the same thing
      without it. Otherwise (a layer keeping its recurrent state, ``self.state = new_state``) the
      graph ends by storing the value on the module, as eager leaves it; on the root itself, which
      the graph module stands in for, it cannot, and the capture is refused naming the attributes.
    - Any other attribute a ``forward`` set (a list of converted anchors, a call counter) gets its
      old value back.
    """

    def __init__(self, model: Any, tracer: "CaptureTracer") -> None:
        modules = list(model.named_modules(remove_duplicate=True)) if isinstance(model, nn.Module) else []
        self.tracer = tracer
        # Kernels such as batch_norm update running statistics without a version bump, so every
        # buffer with data is saved (buffers are small next to weights; meta ones hold nothing).
        self.saved_buffers = [
            (buffer, buffer.clone()) for _, module in modules for buffer in module._buffers.values()
            if buffer is not None and not buffer.is_meta
        ]  # fmt: skip
        # Hooks a forward registers on first use (transformers' output capturing does, and marks the
        # model with a flag attribute that is put back below) must go too, or the next call would
        # register them a second time; so must anything else added to a module's lists and dicts.
        containers = [
            value
            for _, module in modules
            for value in module.__dict__.values()
            if type(value) in _CONTAINER_TYPES
        ]
        self.empty_containers = [container for container in containers if not container]
        self.filled_containers = [(container, container.copy()) for container in containers if container]
        # The _buffers and _parameters of each module as they were: the copies just made.
        copies = {id(container): copy for container, copy in self.filled_containers}
        self.saved = [
            (name, module, dict(module.__dict__), _slots_before(module, copies)) for name, module in modules
        ]

    def __enter__(self) -> None:
        pass

    def __exit__(self, error_type: Any, *exc_info: Any) -> None:
        with torch.no_grad():
            for buffer, copy in self.saved_buffers:
                if not torch.equal(buffer, copy):
                    buffer.copy_(copy)
        changed: List[Tuple[str, str, Proxy]] = []
        for name, module, state, slots in self.saved:
            current = module.__dict__
            if (
                _same_items(current, state)
                and _same_items(current.get("_buffers") or {}, slots["_buffers"])
                and _same_items(current.get("_parameters") or {}, slots["_parameters"])
            ):
                continue  # most modules: nothing was stored on them
            for key, value in list(current.items()):
                if isinstance(value, Proxy) and state.get(key, _MISSING) is not value:
                    self._put_back(current, state, key, changed, name)
            for slot, before in slots.items():
                values = current.get(slot) or {}
                for key, value in list(values.items()):
                    if isinstance(value, Proxy):
                        self._put_back(values, before, key, changed, name)
            if not _same_items(current, state):
                for key in [key for key in current if key not in state]:
                    del current[key]
                current.update(state)
        # After the attributes: traced values a forward put in _buffers or _parameters were looked at.
        for container in self.empty_containers:
            if container:
                container.clear()
        for container, before in self.filled_containers:
            _put_back_container(container, before)
        if changed and error_type is None:
            self._replay(changed)

    def _replay(self, changed: List[Tuple[str, str, Proxy]]) -> None:
        graph = self.tracer.graph
        alive = set(graph.nodes)
        refused = [
            f"{name}.{key}".lstrip(".") for name, key, value in changed if not name or value.node not in alive
        ]
        if refused:
            raise CaptureError(
                f"the model assigns traced values to {', '.join(refused)} while it runs, which the captured"
                " graph cannot repeat on the module it stands in for. Compute the value where it is used"
                " instead of storing it on the module, or capture the submodule that does this"
            )
        [output] = [node for node in graph.nodes if node.op == "output"]
        with graph.inserting_before(output):
            for name, key, value in changed:
                graph.call_function(set_module_attribute, (graph.get_attr(name), key, value.node))

    @staticmethod
    def _put_back(
        now: Dict[str, Any],
        before: Dict[str, Any],
        key: str,
        changed: List[Tuple[str, str, Proxy]],
        name: str,
    ) -> None:
        value, original = now[key], before.get(key, _MISSING)
        if original is _MISSING:
            del now[key]
        else:
            now[key] = original
        if original is None:
            # A cache built on first use (``if self.scales is None: self.scales = ...``, as
            # torchvision's MultiScaleRoIAlign does): the graph builds it on every call instead.
            return
        if original is _MISSING or _proxy_example(value) is not original:
            changed.append((name, key, value))


def _same_items(now: Dict[str, Any], before: Dict[str, Any]) -> bool:
    """Whether ``now`` holds the very keys and values of ``before``, in the same order (reassigning a
    key keeps its place; anything else is reported as a change, which only costs the slow check)."""
    return (
        len(now) == len(before)
        and all(map(operator.is_, now.values(), before.values()))
        and all(map(operator.is_, now, before))
    )


_CONTAINER_TYPES = frozenset({dict, list, set, collections.OrderedDict})


def _slots_before(module: Any, copies: Dict[int, Any]) -> Dict[str, Dict[str, Any]]:
    state = module.__dict__
    return {slot: copies.get(id(state.get(slot)), {}) for slot in ("_buffers", "_parameters")}


def _put_back_container(container: Any, before: Any) -> None:
    """Give a module's list, set or dict the items it had (in place: others hold references to it)."""
    if isinstance(container, dict):
        if not _same_items(container, before):
            container.clear()
            container.update(before)
    elif isinstance(container, list):
        if len(container) != len(before) or not all(map(operator.is_, container, before)):
            container[:] = before
    elif container != before:
        container.clear()
        container.update(before)


class _KeepGradMode:
    """Puts the caller's grad mode back when a capture ends, also when the program raised inside a
    ``torch.no_grad()`` block that the example run entered."""

    def __enter__(self) -> None:
        self.mode = torch._C.is_grad_enabled()

    def __exit__(self, *exc_info: Any) -> None:
        torch._C._set_grad_enabled(self.mode)


# (recorder maker, id(original)) -> the recorder: made once, as the tracer's recording wrappers are
# (functools.wraps for ~15 functions was a tenth of a millisecond per capture). The recorder keeps
# the original alive, so its id stays valid.
_RECORDERS: Dict[Tuple[Any, int], Callable[..., Any]] = {}


def _cached(make: Callable[[Callable[..., Any]], Callable[..., Any]]) -> Callable[[Callable[..., Any]], Any]:
    def cached(original: Callable[..., Any]) -> Callable[..., Any]:
        recorder = _RECORDERS.get((make, id(original)))
        if recorder is None:
            recorder = _RECORDERS[(make, id(original))] = make(original)
        return recorder

    return cached


_FACTORY_RECORDER = _cached(_factory_recorder)
_AUTOGRAD_APPLY_RECORDER = _cached(_autograd_apply_recorder)
_GRAD_MODE_RECORDER = _cached(_grad_mode_recorder)
_GRAD_MODE_SETTER_RECORDER = _cached(_grad_mode_setter_recorder)
_CALLABLE_RECORDER = _cached(_callable_recorder)
_CHECK_RECORDER = _cached(_check_recorder)


class _FactoryPatches:
    """Installs the factory recorders on ``torch`` (and the recorder of custom autograd Functions) for
    the duration of a capture."""

    def __init__(self) -> None:
        self._keys: List[Tuple[int, str]] = []

    def __enter__(self) -> "_FactoryPatches":
        try:
            for name in _FACTORY_FUNCTIONS:
                self._keys.append(_PATCHES.acquire(torch, name, _FACTORY_RECORDER))
            self._keys.append(_PATCHES.acquire(torch.autograd.Function, "apply", _AUTOGRAD_APPLY_RECORDER))
            self._keys.append(_PATCHES.acquire(torch, "is_grad_enabled", _GRAD_MODE_RECORDER))
            self._keys.append(_PATCHES.acquire(torch._C, "_set_grad_enabled", _GRAD_MODE_SETTER_RECORDER))
            self._keys.append(_PATCHES.acquire(builtins, "callable", _CALLABLE_RECORDER))
            self._keys.append(_PATCHES.acquire(torch, "_check_with", _CHECK_RECORDER))
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc_info: Any) -> None:
        while self._keys:
            _PATCHES.release(self._keys.pop())


# --------------------------------------------------------------------------- entry point


@dataclasses.dataclass
class CaptureResult:
    """What :func:`capture` returns: the graph module and the assumptions it rests on."""

    graph_module: GraphModule
    guards: List[Guard]
    leaves: List[Leaf]
    specializations: List[Specialization]
    model_name: str = "model"

    @property
    def graph(self) -> Any:
        return self.graph_module.graph

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.graph_module(*args, **kwargs)

    def leaf_parameter_share(self, automatic_only: bool = False) -> float:
        """The share (0 to 1) of the captured module's parameter elements that sit inside module leaves.

        A leaf hides its inside from every pass, so this is how much of the model the graph does not
        show; with ``automatic_only`` only the leaves capture made on its own are counted.
        """
        total = sum(param.numel() for param in self.graph_module.parameters())
        if total == 0:
            return 0.0
        modules = dict(self.graph_module.named_modules())
        inside: Dict[int, int] = {}
        for leaf in self.leaves:
            module = modules.get(leaf.name) if leaf.kind is LeafKind.MODULE else None
            if module is not None and (leaf.automatic or not automatic_only):
                inside.update((id(param), param.numel()) for param in module.parameters())
        return sum(inside.values()) / total

    def explain(self) -> Any:
        """The report of every guard, leaf and specialization, with suggestions (see :mod:`fxkit.explain`)."""
        from .explain import explain_capture

        return explain_capture(self)


def capture(
    model: Union[nn.Module, Callable[..., Any]],
    example_inputs: Union[Tuple[Any, ...], List[Any], torch.Tensor, Dict[str, Any]] = (),
    example_kwargs: Optional[Dict[str, Any]] = None,
    *,
    leaf_modules: Sequence[Any] = (),
    leaf_functions: Sequence[Union[str, Callable[..., Any]]] = (),
    auto_leaves: bool = True,
    leaves: str = "auto",
) -> CaptureResult:
    """Trace ``model`` with ``example_inputs`` flowing beside the symbols.

    ``example_inputs`` is a tuple of positional inputs (a single tensor is accepted as well, and a
    dict is taken as keyword inputs); ``example_kwargs`` adds keyword inputs. Parameters not given
    keep their default and are checked at run time. Tensors may be on the ``meta`` device.

    ``leaf_modules`` lists modules kept as single ``call_module`` nodes: classes, qualified names
    (``"encoder.layer.0"``) or predicates ``(module, qualified_name) -> bool``. ``leaf_functions``
    lists functions (objects or ``"package.module.function"``) kept as single ``call_function``
    nodes wherever they are called from. With ``auto_leaves`` (the default) a submodule whose
    tracing fails becomes a leaf instead of failing the capture: the smallest such submodule, and
    ``leaves="error"`` makes that a :class:`CaptureError` naming it, its failure and the user's line
    (``auto_leaves=False`` raises the failure itself).

    Returns a :class:`CaptureResult` with the ``graph_module``, its ``guards``, ``leaves`` and
    ``specializations``, and ``explain()``.
    """
    example_args, keyword_inputs = _split_example_inputs(example_inputs, example_kwargs)
    functions = [_resolve_function(spec) for spec in leaf_functions]
    tracer = CaptureTracer(leaf_modules=leaf_modules, auto_leaves=auto_leaves, leaves=leaves)
    is_module = isinstance(model, nn.Module)
    forward = getattr(type(model), "forward") if is_module else model
    tracer.bind_examples(forward, is_module, example_args, keyword_inputs)
    # The example runs in the caller's grad mode: a program that asks for it (torch.is_grad_enabled())
    # gets the caller's answer, recorded with a guard.
    with _FactoryPatches(), _LeafFunctionPatches(functions, model), _KeepGradMode():
        with _KeepModelState(model, tracer):
            try:
                graph = tracer.trace(model)
            except TraceError as error:
                raise CaptureError(f"cannot capture {_model_name(model)}: {error}") from error
    for fn in functions:
        calls = [node for node in graph.nodes if node.op == "call_function" and node.target is fn]
        if calls:
            tracer.leaves.append(
                Leaf(
                    f"{fn.__module__}.{fn.__qualname__}",
                    LeafKind.FUNCTION,
                    "function",
                    False,
                    "named in leaf_functions",
                    None,
                )
            )
    name = _model_name(model)
    graph_module = GraphModule(tracer.graph_module_root(), graph, name)
    return CaptureResult(graph_module, tracer.guards, tracer.leaves, tracer.specializations, name)


def _model_name(model: Any) -> str:
    return type(model).__name__ if isinstance(model, nn.Module) else getattr(model, "__name__", "function")


def _split_example_inputs(example_inputs: Any, example_kwargs: Any) -> Tuple[Tuple[Any, ...], Dict[str, Any]]:
    """Positional and keyword example inputs, or a CaptureError saying what was expected."""
    if isinstance(example_inputs, dict):
        example_args: Tuple[Any, ...] = ()
        keyword_inputs = dict(example_inputs)
    elif isinstance(example_inputs, torch.Tensor):
        example_args, keyword_inputs = (example_inputs,), {}
    elif type(example_inputs) in (tuple, list):
        example_args, keyword_inputs = tuple(example_inputs), {}
    else:
        raise CaptureError(
            "example_inputs must be a tuple (or list) of positional inputs, a single tensor, or a dict of"
            f" keyword inputs; got {type(example_inputs).__name__}. For one non-tensor input write"
            " (value,); for a model without inputs write ()"
        )
    if example_kwargs is not None and not isinstance(example_kwargs, dict):
        raise CaptureError(
            f"example_kwargs must be a dict of keyword inputs; got {type(example_kwargs).__name__}"
        )
    if not all(isinstance(key, str) for key in keyword_inputs):
        raise CaptureError("keyword example inputs must have str keys (the names of the parameters)")
    keyword_inputs.update(example_kwargs or {})
    return example_args, keyword_inputs
