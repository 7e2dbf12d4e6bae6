"""Symbolic tracing: run a module or function on Proxies and record what it does.

``Tracer.trace`` calls the program with one Proxy per argument. Calls of submodules
go through ``Tracer.call_module`` (leaf modules stay one ``call_module`` node),
parameter reads through ``Tracer.getattr``, and functions registered with
:func:`wrap` (and those of ``autowrap_modules``) become single ``call_function``
nodes.

To see module calls and parameter reads, ``nn.Module.__call__`` and
``nn.Module.__getattr__`` are replaced while any trace runs. The replacements
look up the tracer of the *current thread*, so other threads keep the normal
behaviour, and every replaced global is counted per user and put back by the
last trace that needs it, also when the traced code raises.
"""

from __future__ import annotations

import builtins
import collections
import contextlib
import dataclasses
import functools
import inspect
import logging
import sys
import threading
import types
import warnings
from typing import Any, Callable, Collection, Dict, Iterator, List, Optional, Sequence, Tuple, Union

import torch
import torch.utils._pytree as pytree
from torch import nn

from . import _foreign, _paths, _tracing_probes
from ._fast_path import FastPathSwitch
from ._gc import collector_paused
from .graph import Graph, _PyTreeCodeGen, _PyTreeInfo
from .graph_module import GraphModule
from .node import Node
from .proxy import (
    _ATOMIC_ARG_TYPES,
    ParameterProxy,
    Proxy,
    Scope,
    TraceError,
    TracerBase,
    _deepcopy_or_share,
)

__all__ = ["PH", "PHBase", "PHWithMeta", "ProxyableClassMeta", "Tracer", "symbolic_trace", "wrap"]

_HAS_VARSTUFF = inspect.CO_VARARGS | inspect.CO_VARKEYWORDS


class PHBase:
    """Marks an input in ``concrete_args`` that stays a placeholder (a traced input)."""

    def __repr__(self) -> str:
        return "PH"


PH = PHBase()


class PHWithMeta(PHBase):
    """A ``PH`` that carries a key; like every attribute of a PH subclass instance, ``ph_key`` is
    copied onto the placeholder node it becomes."""

    def __init__(self, ph_key: Optional[str] = None) -> None:
        super().__init__()
        self.ph_key = ph_key


def is_fx_symbolic_tracing() -> bool:
    """True while this thread is inside ``Tracer.trace`` (symbolic_trace)."""
    return bool(getattr(_thread_state, "tracers", None))


@functools.lru_cache(None)
def is_fx_tracing_warning() -> None:
    """Log, once per process, that ``is_fx_tracing`` also answers True under torch.export."""
    logging.getLogger(__name__).warning(
        "is_fx_tracing will return true for both fx.symbolic_trace and torch.export. Please use "
        "is_fx_tracing_symbolic_tracing() for specifically fx.symbolic_trace or torch.compiler.is_compiling() "
        "for specifically torch.export/compile."
    )


def is_fx_tracing() -> bool:
    """True while symbolically tracing or while torch.export traces (use
    ``is_fx_symbolic_tracing`` to ask about symbolic tracing alone)."""
    is_fx_tracing_warning()
    if is_fx_symbolic_tracing():
        return True
    is_exporting = getattr(torch.compiler, "is_exporting", None)
    return bool(is_exporting is not None and is_exporting())


def _assert_is_none(value: Any, msg: str) -> None:
    """The runtime check of an argument specialised to ``None`` through ``concrete_args``."""
    assert value is None, msg


# The generated code names this function by its module; make that the public alias module.
_assert_is_none.__module__ = "fxkit._symbolic_trace"


# --------------------------------------------------------------------------- patching


class _Patch:
    __slots__ = ("container", "name", "original", "raw", "had_value", "users")

    def __init__(self, container: Any, name: str, original: Any, raw: Any, had_value: bool):
        self.container = container
        self.name = name
        self.original = original  # the function callers reached before patching
        self.raw = raw  # what to put back: the dict value or the class's own descriptor
        self.had_value = had_value
        self.users = 0


class _PatchRegistry:
    """Replaced globals and class attributes, shared by all traces of the process.

    A replacement is installed by the first trace that asks for it and removed by the
    last one that released it, so concurrent traces never undo each other's patches.
    Every read and write of the patch table happens under one lock, including the
    decision whether a global is (still) patched.

    Containers are dicts (module globals), classes or other objects with attributes. On a
    class, a ``staticmethod`` or ``classmethod`` is wrapped inside the same kind of descriptor
    and the class's own descriptor is put back on release.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._patches: Dict[Tuple[int, str], _Patch] = {}
        # id(container) -> the names patched in it, so a scan of a globals dict finds them quickly.
        self._patched_names: Dict[int, set] = collections.defaultdict(set)

    def acquire(self, container: Any, name: str, make_replacement: Callable[[Any], Any]) -> Tuple[int, str]:
        """Make sure ``container.name`` (or ``container[name]`` for a dict) is replaced by
        ``make_replacement(original)``; returns the key to ``release``."""
        with self._lock:
            return self._acquire_locked(container, name, make_replacement)

    def acquire_matching(
        self,
        globals_dict: Dict[str, Any],
        wanted_ids: Collection[int],
        make_replacement: Callable[[Any], Any],
    ) -> List[Tuple[int, str]]:
        """Replace every public callable of ``globals_dict`` whose original function's id is in
        ``wanted_ids``; the check and the patch happen under the lock, so a patch being removed
        by another thread is never mistaken for a foreign function."""
        keys: List[Tuple[int, str]] = []
        container_id = id(globals_dict)
        with self._lock:
            patches = self._patches
            patched = self._patched_names.get(container_id, ())
            # A comprehension first narrows the dict (tens of names, run once per module file a
            # trace enters) to the names bound to a wanted function or to one of our patches.
            candidates = [
                name for name, value in globals_dict.items() if id(value) in wanted_ids or name in patched
            ]
            patched_here = self._patched_names[container_id]
            for name in candidates:
                value = globals_dict[name]
                if name.startswith("_") or not callable(value):
                    continue
                key = (container_id, name)
                patch = patches.get(key)
                if patch is None:
                    if id(value) not in wanted_ids:
                        continue
                    # _acquire_locked and _install, inlined: math alone has ~60 names per trace.
                    globals_dict[name] = make_replacement(value)
                    patch = patches[key] = _Patch(globals_dict, name, value, value, True)
                    patched_here.add(name)
                elif id(patch.original) not in wanted_ids:
                    continue
                patch.users += 1
                keys.append(key)
            if not patched_here:
                del self._patched_names[container_id]
        return keys

    def unpatched_items(self, globals_dict: Dict[str, Any]) -> List[Tuple[str, Any]]:
        """The items of ``globals_dict`` as they are with no trace running (patched values replaced
        by their originals), read under the lock."""
        container_id = id(globals_dict)
        with self._lock:
            patches = self._patches
            items = list(globals_dict.items())
            if not patches:
                return items
            unpatched = []
            for name, value in items:
                patch = patches.get((container_id, name))
                unpatched.append((name, value if patch is None else patch.original))
            return unpatched

    def _acquire_locked(
        self, container: Any, name: str, make_replacement: Callable[[Any], Any]
    ) -> Tuple[int, str]:
        key = (id(container), name)
        patch = self._patches.get(key)
        if patch is None:
            patch = self._patches[key] = _install(container, name, make_replacement)
            self._patched_names[key[0]].add(name)
        patch.users += 1
        return key

    def original(self, key: Tuple[int, str]) -> Any:
        with self._lock:
            return self._patches[key].original

    def release(self, key: Tuple[int, str]) -> None:
        with self._lock:
            self._release_locked(key)

    def release_all(self, keys: List[Tuple[int, str]]) -> None:
        """``release`` each key, last first, emptying ``keys``; one lock round for all of them."""
        with self._lock:
            while keys:
                self._release_locked(keys.pop())

    def _release_locked(self, key: Tuple[int, str]) -> None:
        patch = self._patches[key]
        patch.users -= 1
        if patch.users:
            return
        del self._patches[key]
        container, name = patch.container, patch.name
        names = self._patched_names[key[0]]
        names.discard(name)
        if not names:
            del self._patched_names[key[0]]
        if isinstance(container, dict):
            if patch.had_value:
                container[name] = patch.raw
            else:
                container.pop(name, None)
        elif patch.had_value:
            setattr(container, name, patch.raw)
        else:
            delattr(container, name)


def _install(container: Any, name: str, make_replacement: Callable[[Any], Any]) -> _Patch:
    """Put the replacement in place and return the record that undoes it."""
    if isinstance(container, dict):
        had_value = name in container
        original = container[name] if had_value else getattr(builtins, name)
        container[name] = make_replacement(original)
        return _Patch(container, name, original, original, had_value)
    # An attribute kept by a descriptor of the object's type (a function's __code__) is set back too.
    had_value = name in vars(container) or (
        not isinstance(container, type)
        and hasattr(inspect.getattr_static(type(container), name, None), "__set__")
    )
    if isinstance(container, type):
        # The descriptor itself (maybe inherited), not what attribute access makes of it.
        raw = inspect.getattr_static(container, name)
        if isinstance(raw, (staticmethod, classmethod)):
            original = raw.__func__
            replacement: Any = type(raw)(make_replacement(original))
        else:
            original = raw
            replacement = make_replacement(raw)
    else:
        raw = original = getattr(container, name)
        replacement = make_replacement(original)
    setattr(container, name, replacement)
    return _Patch(container, name, original, raw, had_value)


_PATCHES = _PatchRegistry()
_thread_state = threading.local()


def _tracer_stack() -> List[Optional["Tracer"]]:
    """This thread's stack of running traces; ``None`` entries mark code that runs untraced."""
    stack = getattr(_thread_state, "tracers", None)
    if stack is None:
        stack = _thread_state.tracers = []
    return stack


def _active_tracer() -> Optional["Tracer"]:
    stack = getattr(_thread_state, "tracers", None)
    return stack[-1] if stack else None


@contextlib.contextmanager
def untraced() -> Iterator[None]:
    """A block in which modules and wrapped functions run as usual although a trace is running
    on this thread (capture computes its example values so)."""
    stack = _tracer_stack()
    stack.append(None)
    try:
        yield
    finally:
        stack.pop()


def _find_proxy(args: Tuple[Any, ...], kwargs: Dict[str, Any]) -> Optional[Proxy]:
    """The first Proxy found in ``args``/``kwargs`` (looking inside containers)."""
    pending: List[Any] = [args, kwargs]
    while pending:
        value = pending.pop(0)
        if isinstance(value, Proxy):
            return value
        if isinstance(value, (tuple, list)):
            pending[0:0] = value
        elif isinstance(value, dict):
            pending[0:0] = value.values()
        elif isinstance(value, slice):  # x[:, : n] indexes with a slice holding a traced n
            pending[0:0] = (value.start, value.stop, value.step)
    return None


class ProxyableClassMeta(type):
    """Metaclass for user classes whose construction should be recorded while tracing.

    Building an instance from traced values (``Pair(x, y)`` with ``x`` a Proxy) adds one
    ``call_function`` node whose target is the class, and returns a Proxy for the instance, so
    methods called on it become ``call_method`` nodes. With plain values it constructs normally.
    """

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        proxy = _find_proxy(args, kwargs) if _active_tracer() is not None else None
        if proxy is not None:
            return proxy.tracer.create_proxy("call_function", cls, args, kwargs)
        return super().__call__(*args, **kwargs)


def _recording_wrapper(original: Callable[..., Any]) -> Callable[..., Any]:
    """A stand-in for ``original`` that records a call_function node when given a Proxy.

    Made once per function and reused by later traces: every trace patches the ~60 functions of
    ``math``, and building their wrappers again each time was a third of tracing a small function.
    """
    wrapper = _RECORDING_WRAPPERS.get(id(original))
    if wrapper is None:
        wrapper = _RECORDING_WRAPPERS[id(original)] = _new_recording_wrapper(original)
    return wrapper


# id(function) (or (id, method name)) -> its recording wrapper; the wrapper keeps the function
# alive, so ids stay valid.
_RECORDING_WRAPPERS: Dict[Any, Callable[..., Any]] = {}


def _new_recording_wrapper(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        proxy = _find_proxy(args, kwargs)
        if proxy is None:
            return original(*args, **kwargs)
        result = proxy.tracer.create_proxy("call_function", original, args, kwargs)
        result.node.meta["is_wrapped"] = True
        return result

    wrapper.__fxkit_original__ = original  # type: ignore[attr-defined]
    return wrapper


def _method_recording_wrapper(name: str, original: Callable[..., Any]) -> Callable[..., Any]:
    """A stand-in for method ``name`` that records a ``call_method`` node when any argument (``self``
    included) is a Proxy; for the methods registered in torch.fx's ``_wrapped_methods_to_patch``."""
    key = (id(original), name)
    wrapper = _RECORDING_WRAPPERS.get(key)
    if wrapper is None:

        @functools.wraps(original)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            proxy = _find_proxy(args, kwargs)
            if proxy is None:
                return original(*args, **kwargs)
            return proxy.tracer.create_proxy("call_method", name, args, kwargs)

        wrapper.__fxkit_original__ = original  # type: ignore[attr-defined]
        _RECORDING_WRAPPERS[key] = wrapper
    return wrapper


def _traced_module_call(
    original_call: Callable[..., Any], patched_name: str = "__call__"
) -> Callable[..., Any]:
    """The stand-in for ``nn.Module.__call__`` (or, on the fast path, ``nn.Module._call_impl``).

    Frames per traced module level matter (deep models hit the recursion limit): this wrapper
    calls ``call_module`` directly and hands it a C-level partial as ``forward``, so a level costs
    this frame, ``call_module`` and torch's own two (torch.fx: 7 frames a level, eager: 4)."""

    def module_call(module: nn.Module, *args: Any, **kwargs: Any) -> Any:
        tracer = _active_tracer()
        # Each trace patches one of the two names; the other one's wrapper (another thread's
        # trace may have installed it) lets the call through unchanged.
        if tracer is None or tracer._module_call_patched != patched_name:
            return original_call(module, *args, **kwargs)
        forward_globals = getattr(getattr(module, "forward", None), "__globals__", None)
        if forward_globals is not None:
            tracer._autowrap_globals(forward_globals)
        return tracer.call_module(module, functools.partial(original_call, module), args, kwargs)

    return module_call


def _traced_module_getattr(
    original_getattr: Callable[..., Any], per_class: bool = False
) -> Callable[..., Any]:
    """The stand-in for ``__getattr__``: on ``nn.Module`` itself, or (``per_class``) on the classes of
    the traced hierarchy. The one on ``nn.Module`` acts for the traces that patch ``nn.Module`` and for
    a per-class trace that had to add it (``_getattr_on_module``); a class's own acts for every trace."""

    def module_getattr(module: nn.Module, name: str) -> Any:
        value = original_getattr(module, name)
        tracer = _active_tracer()
        if tracer is None or (not per_class and tracer._getattr_per_class and not tracer._getattr_on_module):
            return value
        # A class's own patch acts for every trace, those that patched nn.Module included: another
        # thread's trace may have installed it over nn.Module's patch, which the lookup then never
        # reaches. Acting twice is harmless: a value already made a node is not made one again.
        return tracer.getattr(name, value, tracer._parameter_proxy_cache)

    module_getattr._fxkit_getattr_patch = True  # type: ignore[attr-defined]
    return module_getattr


#: The fast path: patch ``_call_impl`` (called by ``nn.Module.__call__``) rather than ``__call__``,
#: and ``__getattr__`` on the classes of the traced modules rather than on ``nn.Module``. Setting a
#: dunder on ``nn.Module`` makes CPython update a slot in each of its hundreds of subclasses and drop
#: their method caches: ~50 us for ``__call__`` and ~150 us for ``__getattr__``, per trace. With
#: ``use_fast_patches(False)`` both are patched on ``nn.Module``, as torch.fx does. fxkit's time
#: over torch.fx's for the bench_trace workloads (fresh model, 5 traces a sample, medians of 3 runs):
#: zoo-resnet 0.31 with the fast patches, 0.39 with the plain ones; small-mlp-30 0.23 and 0.30.
#: Capture takes the per-class ``__getattr__`` patches too (it adds the classes of the modules it
#: installs mid-trace): capture of the zoo ResNet, 5 a fresh model alternating with torch.fx's trace,
#: medians of 15: 6.8-7.3 ms with nn.Module's patch, 5.9-6.3 ms per class; capture-mlp 1.08 -> 0.75 ms.
_FAST_PATCHES = FastPathSwitch("symbolic_trace patches")
use_fast_patches = _FAST_PATCHES.use


def _module_call_name(modules: Sequence[Tuple[str, nn.Module]]) -> str:
    """Which ``nn.Module`` method this trace replaces to see module calls.

    A module whose class (or instance) brings its own ``_call_impl``, or one compiled in place
    (``module.compile()``, which skips ``_call_impl``), is only seen through ``__call__``: such a
    hierarchy is traced with ``__call__`` patched, as torch.fx does."""
    if not _FAST_PATCHES.enabled():
        return "__call__"
    for cls in dict.fromkeys(type(module) for _path, module in modules):
        if _defining_class(cls, "_call_impl") is not nn.Module:
            return "__call__"
    for _path, module in modules:
        state = module.__dict__
        if "_call_impl" in state or state.get("_compiled_call_impl") is not None:
            return "__call__"
    return "_call_impl"


def _defining_class(cls: type, name: str) -> Optional[type]:
    """The class of ``cls.__mro__`` whose own ``name`` attribute is found, looking through the
    per-class patches of other traces (``nn.Module``'s own, patched or not, counts as nn.Module's)."""
    for klass in cls.__mro__:
        value = vars(klass).get(name)
        if value is not None and (klass is nn.Module or not getattr(value, "_fxkit_getattr_patch", False)):
            return klass
    return None


def _getattr_patch_classes(modules: Sequence[Tuple[str, nn.Module]]) -> Optional[List[type]]:
    """The classes to patch ``__getattr__`` on so that every parameter or buffer read from a module
    of the hierarchy is seen, or None when only patching ``nn.Module`` itself does what torch.fx does
    (a plain ``nn.Module`` holding some, or a class with its own ``__getattr__``).

    Only the classes of modules that hold parameters or buffers: through ``__getattr__`` the others
    give submodules, which ``Tracer.getattr`` returns as they are (each patched class costs ~7 us)."""
    if not _FAST_PATCHES.enabled():
        return None
    for cls in dict.fromkeys(type(module) for _path, module in modules):
        if _defining_class(cls, "__getattr__") is not nn.Module:
            return None
    classes = dict.fromkeys(
        type(module)
        for _path, module in modules
        if module.__dict__.get("_parameters") or module.__dict__.get("_buffers")
    )
    if nn.Module in classes:
        return None
    # A class inherits the patch of a patched base class.
    return [cls for cls in classes if not any(base in classes for base in cls.__mro__[1:])]


# Module-level functions registered with wrap(): (id(globals), name) -> globals dict.
_wrapped_functions: Dict[Tuple[int, str], Dict[str, Any]] = {}

# (class, method name) pairs recorded as one call_method node when an argument is a Proxy, e.g.
# (torch.Tensor, "__getitem__") to index a plain tensor with traced values. Under torch.fx's name
# (``_symbolic_trace._wrapped_methods_to_patch``); torch.fx's own list is honoured as well.
_wrapped_methods_to_patch: List[Tuple[type, str]] = []

# Codes of the frames that start a trace; stack traces stop there.
_ROOT_CALL_CODES: set = set()


def wrap(fn_or_name: Union[str, Callable[..., Any]]) -> Any:
    """Record calls of a module-level function as one ``call_function`` node.

    Call it at module scope, with the function's name or as a decorator::

        fxkit.wrap("len")

        @fxkit.wrap
        def clamp_rows(x, n):
            ...

    While a trace runs, the global of that name in the calling module is replaced by a
    recorder; calls with no Proxy argument still run the real function.
    """
    if isinstance(fn_or_name, str):
        name = fn_or_name
    elif callable(fn_or_name):
        name = getattr(fn_or_name, "__name__", None)
        if not name or name == "<lambda>":
            raise RuntimeError(
                f"wrap() needs a function with a name it is known by at module level, got {fn_or_name!r}"
            )
    else:
        raise RuntimeError("Unsupported type for global function! Must be either a callable or string name")
    caller = sys._getframe(1)
    if caller.f_code.co_name != "<module>":
        raise NotImplementedError("wrap must be called at the top level of a module")
    globals_dict = caller.f_globals
    _wrapped_functions[(id(globals_dict), name)] = globals_dict
    return fn_or_name


# --------------------------------------------------------------------------- the tracer


def _is_standard_module(module: nn.Module) -> bool:
    module_name = type(module).__module__
    return (module_name.startswith("torch.nn") or module_name.startswith("torch.ao.nn")) and not isinstance(
        module, nn.Sequential
    )


def _with_flat_signature(fn: Callable[..., Any], nargs: int) -> Callable[..., Any]:
    """A copy of ``fn`` whose keyword-only, ``*args`` and ``**kwargs`` parameters are plain
    positional ones, so that one Proxy can be passed for each."""
    code = fn.__code__
    flat_code = code.replace(co_flags=code.co_flags & ~_HAS_VARSTUFF, co_argcount=nargs, co_kwonlyargcount=0)
    flat_fn = types.FunctionType(flat_code, fn.__globals__, fn.__name__, None, fn.__closure__)
    flat_fn.__qualname__ = fn.__qualname__
    return flat_fn


class Tracer(TracerBase):
    """Turns an ``nn.Module`` or a function into a :class:`~fxkit.graph.Graph`.

    Subclass it to change what is traced: ``is_leaf_module`` decides which modules stay
    calls, ``create_proxy``/``create_node``/``create_arg`` see every recorded value,
    ``getattr`` every parameter read and ``to_bool``/``iter``/``keys`` answer control flow.
    """

    # Functions registered with torch.fx.wrap (when torch.fx was imported) are recorded as calls.
    _records_torch_fx_wraps = True

    def __init__(
        self,
        autowrap_modules: Tuple[types.ModuleType, ...] = (__import__("math"),),
        autowrap_functions: Tuple[Callable[..., Any], ...] = (),
        param_shapes_constant: bool = False,
    ) -> None:
        super().__init__()
        self._autowrap_function_ids = {
            id(value)
            for module in autowrap_modules
            for name, value in _PATCHES.unpatched_items(module.__dict__)
            if not name.startswith("_") and callable(value)
        }
        self._autowrap_function_ids.update(id(fn) for fn in autowrap_functions)
        self._autowrap_search: List[types.ModuleType] = list(autowrap_modules)
        self.param_shapes_constant = param_shapes_constant
        self.submodule_paths: Optional[Dict[nn.Module, str]] = None
        self.scope = Scope("", None)
        self.module_stack: "collections.OrderedDict[str, Tuple[str, Any]]" = collections.OrderedDict()
        self.node_name_to_scope: Dict[str, Tuple[str, type]] = {}
        self._qualname_counter: Dict[str, int] = collections.defaultdict(int)
        self._parameter_proxy_cache: Dict[str, Proxy] = {}
        self._parameter_paths: Optional[Dict[int, str]] = None
        self._buffer_paths: Optional[Dict[int, str]] = None
        self._patch_keys: List[Tuple[int, str]] = []
        self._checked_globals: set = set()
        self._module_call_patched = "__call__"
        self._getattr_classes: Optional[List[type]] = None
        self._getattr_per_class = False
        self._getattr_on_module = False

    def __deepcopy__(self, memo: Dict[int, Any]) -> "Tracer":
        # Python modules (autowrap_modules) cannot be deep-copied; the copy searches the same ones.
        clone = object.__new__(type(self))
        memo[id(self)] = clone
        for key, value in self.__dict__.items():
            if key == "_autowrap_search":
                clone.__dict__[key] = list(value)
            else:
                clone.__dict__[key] = _deepcopy_or_share(value, memo)
        return clone

    # ---------------------------------------------------------------- hooks for subclasses

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        """Whether ``m`` stays one ``call_module`` node. Default: the ``torch.nn`` modules
        (but not ``nn.Sequential``)."""
        return _is_standard_module(m)

    def path_of_module(self, mod: nn.Module) -> str:
        """The qualified name of ``mod`` in the traced root (``layer1.0.conv1``)."""
        if self.submodule_paths is not None:
            path = self.submodule_paths.get(mod)
            if path is not None:
                return path
        else:
            for name, candidate in self.root.named_modules():
                if candidate is mod:
                    return name
        raise NameError(
            f"module {type(mod).__name__} is not installed as a submodule of the traced root; "
            "assign it as an attribute of the root module (or of one of its submodules) before tracing"
        )

    def _module_path_or_none(self, mod: nn.Module) -> Optional[str]:
        if self.submodule_paths is not None:
            return self.submodule_paths.get(mod)
        return next((name for name, candidate in self.root.named_modules() if candidate is mod), None)

    def call_module(
        self, m: nn.Module, forward: Callable[..., Any], args: Tuple[Any, ...], kwargs: Dict[str, Any]
    ) -> Any:
        """Called for every module call: record a leaf as ``call_module``, else trace ``forward``."""
        qualified_name = self.path_of_module(m)
        # What ScopeContextManager does, inline: this runs for every module call of the trace.
        scope, module_type = self.scope, type(m)
        saved = scope.module_path, scope.module_type
        scope.module_path, scope.module_type = qualified_name, module_type
        module_stack = self.module_stack
        module_stack[qualified_name] = (qualified_name, module_type)
        try:
            if self.is_leaf_module(m, qualified_name):
                return self.create_proxy("call_module", qualified_name, args, kwargs)
            return forward(*args, **kwargs)
        finally:
            module_stack.popitem(last=True)
            scope.module_path, scope.module_type = saved

    def getattr(self, attr: str, attr_val: Any, parameter_proxy_cache: Dict[str, Proxy]) -> Any:
        """Called when a module attribute is read through ``nn.Module.__getattr__``:
        parameters (and buffers if ``proxy_buffer_attributes``) become ``get_attr`` proxies."""
        if not isinstance(attr_val, torch.Tensor):
            # Mostly submodules; nn.Parameter's isinstance check is Python code, this one is not.
            return attr_val
        if isinstance(attr_val, nn.Parameter):
            path = self._parameter_path_map().get(id(attr_val))
        elif self.proxy_buffer_attributes and isinstance(attr_val, torch.Tensor):
            path = self._buffer_path_map().get(id(attr_val))
        else:
            return attr_val
        if path is None:
            return attr_val
        proxy = parameter_proxy_cache.get(path)
        if proxy is None:
            factory = None
            if self.param_shapes_constant and isinstance(attr_val, nn.Parameter):
                factory = functools.partial(_make_parameter_proxy, self, path, attr_val)
            proxy = self.create_proxy("get_attr", path, (), {}, proxy_factory_fn=factory)
            parameter_proxy_cache[path] = proxy
        return proxy

    def create_arg(self, a: Any) -> Any:
        """Also turns parameters, buffers and other tensors into ``get_attr`` nodes."""
        cls = type(a)
        if cls in _ATOMIC_ARG_TYPES:
            return a
        # The args tuple and kwargs dict of every recorded call: a plain tuple or dict is neither a
        # NamedTuple, a dataclass nor has __fx_create_arg__, so skip those checks (TracerBase's
        # answer is the same).
        if cls is tuple:
            return tuple([self.create_arg(elem) for elem in a])
        if cls is dict and not a:
            return {}
        if isinstance(a, Proxy):
            return a.node
        if isinstance(a, torch.Tensor):
            if isinstance(a, nn.Parameter):
                path = self._parameter_path_map().get(id(a))
                if path is None:
                    raise NameError(
                        "a parameter used in the traced code is not a member of the traced root module;"
                        " register it on the root (or a submodule) before tracing"
                    )
                return self.create_node("get_attr", path, (), {})
            path = self._buffer_path_map().get(id(a)) or self._tensor_attr_path(a)
            if path is None:
                path = self.get_fresh_qualname("_tensor_constant")
                setattr(self.root, path, a)
                self.tensor_attrs[a] = path
            return self.create_node("get_attr", path, (), {})
        if isinstance(a, tuple) and hasattr(a, "_fields"):
            # A NamedTuple built in traced code is rebuilt by a call of its class.
            fields = tuple(self.create_arg(elem) for elem in a)
            return self.create_node("call_function", type(a), fields, {})
        if dataclasses.is_dataclass(a) and not isinstance(a, type):
            # A dataclass is rebuilt by a call of its class with every field by keyword (as torch.fx does).
            values = {field.name: self.create_arg(getattr(a, field.name)) for field in dataclasses.fields(a)}
            return self.create_node("call_function", type(a), (), values)
        if isinstance(a, nn.Module):
            # A submodule handed to a wrapped function is read with get_attr (one node per use).
            path = self._module_path_or_none(a)
            if path:
                return self.create_node("get_attr", path, (), {})
        if isinstance(a, torch.ScriptObject):
            path = self._tensor_attr_path(a)
            if path is None:
                path = self.get_fresh_qualname("_torchbind_obj")
                setattr(self.root, path, a)
                self.tensor_attrs[a] = path
            return self.create_node("get_attr", path, (), {})
        if isinstance(cls, ProxyableClassMeta):
            # An instance built from plain values in traced code is kept on the root as a
            # constant, a new attribute for each use (as torch.fx does).
            path = self.get_fresh_qualname(f"_{cls.__name__}_constant_")
            setattr(self.root, path, a)
            return self.create_node("get_attr", path, (), {})
        return super().create_arg(a)

    def get_fresh_qualname(self, prefix: str) -> str:
        """An attribute name ``prefix<N>`` that the root does not have yet."""
        index = self._qualname_counter[prefix]
        while hasattr(self.root, f"{prefix}{index}"):
            index += 1
        self._qualname_counter[prefix] = index + 1
        return f"{prefix}{index}"

    # ---------------------------------------------------------------- tracing

    def trace(
        self,
        root: Union[nn.Module, Callable[..., Any]],
        concrete_args: Optional[Union[Dict[str, Any], Tuple[Any, ...]]] = None,
    ) -> Graph:
        """Trace ``root`` (a module's ``forward`` or a function) and return its Graph.

        ``concrete_args`` fixes some inputs to values (checked at run time) or, with
        ``PH`` inside a dict/list/tuple, says which parts of an input are traced.
        """
        if isinstance(root, nn.Module):
            _foreign.materialize_forward(root)
            self.root = root
            # torch.fx's assertions, kept word for word (callers match on them).
            fn = getattr(type(root), self.traced_func_name, None)
            if fn is None:
                raise AssertionError(
                    f"traced_func_name={self.traced_func_name} doesn't exist in {root._get_name()}"
                )
            if not isinstance(fn, types.FunctionType):
                raise AssertionError(f"Expected FunctionType, got {type(fn)}")
            self.root_module_name = root._get_name()
            modules = _paths.walk_modules(root)
            self.submodule_paths = {module: name for name, module in modules}
        else:
            if not isinstance(root, types.FunctionType):
                # torch.fx's check, kept word for word: callers match on it (builtins of F.*).
                raise AssertionError(f"Expected FunctionType, got {type(root)}")
            self.root = nn.Module()
            fn = root
            self.submodule_paths = None
            modules = [("", self.root)]
        self.graph = Graph(tracer_cls=getattr(self, "__class__", None))
        code = getattr(inspect.unwrap(fn), "__code__", None)
        if code is not None:
            self.graph._co_fields = {
                "co_name": code.co_name,
                "co_filename": code.co_filename,
                "co_firstlineno": code.co_firstlineno,
            }
        self.tensor_attrs: Dict[Any, str] = {}
        self._collect_tensor_attrs(modules)
        self._module_call_patched = _module_call_name(modules)
        self._getattr_classes = self._getattr_patch_targets(modules, isinstance(root, nn.Module))
        self._getattr_per_class = self._getattr_classes is not None
        self._getattr_on_module = False
        self._parameter_proxy_cache = {}
        self._parameter_paths = None
        self._buffer_paths = None
        self._checked_globals = set()
        self._patch_keys = []

        stack = _tracer_stack()
        stack.append(self)
        try:
            with collector_paused():
                self._install_patches(fn)
                traced_fn, args = self.create_args_for_root(fn, isinstance(root, nn.Module), concrete_args)
                return_annotation = _return_annotation(fn)
                result = _call_traced_root(traced_fn, args)
                self.create_node(
                    "output", "output", (self.create_arg(result),), {}, type_expr=return_annotation
                )
        finally:
            self._finish_trace(stack)
        return self.graph

    def _finish_trace(self, stack: List["Tracer"]) -> None:
        stack.pop()
        self._release_patches()
        self.submodule_paths = None
        self._parameter_paths = self._buffer_paths = None

    def create_args_for_root(
        self,
        root_fn: Callable[..., Any],
        is_module: bool,
        concrete_args: Optional[Union[Dict[str, Any], Tuple[Any, ...]]] = None,
    ) -> Tuple[Callable[..., Any], List[Any]]:
        """Make the placeholders of ``root_fn`` and return the function to call with them."""
        inner_fn = inspect.unwrap(root_fn)
        is_decorated = inner_fn is not root_fn
        code = inner_fn.__code__
        positional_count = code.co_argcount + code.co_kwonlyargcount
        param_names = list(code.co_varnames[:positional_count])
        args: List[Any] = []
        if is_module:
            if positional_count == 0:
                raise RuntimeError("``self`` argument cannot be part of *args expansion!")
            param_names = param_names[1:]
            args.append(self.root)
        signature = inspect.signature(inner_fn)

        if isinstance(concrete_args, tuple) and _takes_tuple_as_varargs(
            code, len(param_names), concrete_args
        ):
            # torch.fx's reading of ``(PH, PH)`` for ``forward(self, *args)`` / ``f(x, *args)``: one
            # placeholder ``input_i`` per item (values included, unchecked), passed positionally.
            args.extend(
                self.create_proxy("placeholder", f"input_{index}", (), {})
                for index in range(len(concrete_args))
            )
            return root_fn, args

        if isinstance(concrete_args, tuple):
            if len(concrete_args) != len(param_names):
                raise RuntimeError(
                    f"Tracing expected {len(param_names)} arguments but got {len(concrete_args)} concrete arguments"
                )
            concrete_args = dict(zip(param_names, concrete_args))
        if concrete_args:
            unknown = [name for name in concrete_args if name not in signature.parameters]
            if unknown:
                raise TraceError(
                    f"concrete_args names {unknown} that are not parameters of {inner_fn.__qualname__}"
                    f"{signature}"
                )

        args.extend(self._proxy_placeholder(name, concrete_args, signature, inner_fn) for name in param_names)

        has_varstuff = bool(code.co_flags & _HAS_VARSTUFF)
        if is_decorated:
            # Decorators (HF transformers puts several on each forward) take *args/**kwargs and
            # edit kwargs: pass every parameter the user sees by name, and leave the inner
            # function's own * and ** parameters empty.
            leading = (1 if is_module else 0) + code.co_posonlyargcount
            keyword_names = list(code.co_varnames[leading:positional_count])

            def call_fn(*values: Any) -> Any:
                return root_fn(*values[:leading], **dict(zip(keyword_names, values[leading:])))

        elif code.co_kwonlyargcount or has_varstuff:
            extra_names = iter(code.co_varnames[positional_count:])
            if code.co_flags & inspect.CO_VARARGS:
                args.append(
                    self._proxy_placeholder("*" + next(extra_names), concrete_args, signature, inner_fn)
                )
            if code.co_flags & inspect.CO_VARKEYWORDS:
                args.append(
                    self._proxy_placeholder("**" + next(extra_names), concrete_args, signature, inner_fn)
                )
            call_fn = _with_flat_signature(root_fn, len(args))
        else:
            call_fn = root_fn

        if not any(isinstance(arg, tuple) or type(arg) in pytree.SUPPORTED_NODES for arg in args):
            return call_fn, args  # every argument is a pytree leaf (proxies, the module): nothing to flatten
        flat_args, in_spec = pytree.tree_flatten(tuple(args))
        if any(not child.is_leaf() for child in _spec_children(in_spec)):
            all_names = list(code.co_varnames[:positional_count])
            self.graph._codegen = _PyTreeCodeGen(_PyTreeInfo(all_names, in_spec, None))

            def flatten_fn(*flat: Any) -> List[Any]:
                tree_args = pytree.tree_unflatten(list(flat), in_spec)
                out_flat, out_spec = pytree.tree_flatten(call_fn(*tree_args))
                codegen = self.graph._codegen
                codegen.pytree_info = codegen.pytree_info._replace(out_spec=out_spec)
                return out_flat

            return flatten_fn, flat_args
        return call_fn, args

    def _proxy_placeholder(
        self,
        name: str,
        concrete_args: Optional[Dict[str, Any]],
        sig: inspect.Signature,
        fn_for_analysis: Callable[..., Any],
    ) -> Any:
        """The traced value of parameter ``name``: a placeholder Proxy, or the concrete value
        (with placeholders and runtime checks for each of its parts)."""
        if concrete_args is not None and name in concrete_args:
            parameter = sig.parameters[name]
            default = () if parameter.default is inspect.Parameter.empty else (parameter.default,)
            leaf_count = 0

            def placeholder_for(leaf: Any) -> Any:
                nonlocal leaf_count
                leaf_count += 1
                proxy = self.create_proxy("placeholder", f"{name}_{leaf_count}", default, {})
                if isinstance(leaf, PHBase):
                    if type(leaf) is not PHBase:
                        # A PH subclass instance carries attributes for the user's tracer: its
                        # data attributes (own and class-level) land on the placeholder node,
                        # unless the node already has one of that name (a tracer's create_node
                        # may have set it).
                        for attr in dir(leaf):
                            value = getattr(leaf, attr)
                            if (
                                not attr.startswith("__")
                                and not callable(value)
                                and not hasattr(proxy.node, attr)
                            ):
                                setattr(proxy.node, attr, value)
                    return proxy
                message = f"{name} has been specialized to have value {leaf} but got another value"
                if leaf is None:
                    self.create_proxy("call_function", _assert_is_none, (proxy, message), {})
                elif type(leaf) in (bool, int, float, complex, str) or isinstance(
                    leaf, (torch.dtype, torch.device)
                ):
                    torch._assert(proxy == leaf, message)
                else:
                    warnings.warn(
                        f"Was not able to add assertion to guarantee correct input {name} to specialized"
                        " function. It is up to the user to make sure that your inputs match the inputs you"
                        " specialized the function with.",
                        stacklevel=2,
                    )
                return leaf

            return pytree.tree_map(placeholder_for, concrete_args[name])
        if name.startswith("*"):
            default: Tuple[Any, ...] = ()
        else:
            parameter = sig.parameters[name]
            default = () if parameter.default is inspect.Parameter.empty else (parameter.default,)
        # torch.fx leaves the ``*args`` / ``**kwargs`` placeholders unannotated.
        annotation = (
            None if name.startswith("*") else getattr(fn_for_analysis, "__annotations__", {}).get(name)
        )
        return self.create_proxy("placeholder", name, default, {}, type_expr=annotation)

    # ---------------------------------------------------------------- internals

    def _collect_tensor_attrs(self, modules: List[Tuple[str, nn.Module]]) -> None:
        """Map the plain tensor attributes (not parameters or buffers) of every module to their path.

        ``modules`` is the ``(path, module)`` walk of the root, each module once: a module reached
        again by a second path holds the same tensors, already mapped to their first path."""
        tensor_types = (torch.Tensor, torch.ScriptObject)
        tensor_attrs = self.tensor_attrs
        for module_path, module in modules:
            prefix = module_path + "." if module_path else ""
            tensors = [
                item
                for item in module.__dict__.items()
                if type(item[1]) not in _NON_TENSOR_TYPES and isinstance(item[1], tensor_types)
            ]
            for attr_name, value in tensors:
                tensor_attrs.setdefault(value, prefix + attr_name)

    def _tensor_attr_path(self, value: Any) -> Optional[str]:
        try:
            return self.tensor_attrs.get(value)
        except TypeError:  # unhashable tensor subclass
            return None

    def _parameter_path_map(self) -> Dict[int, str]:
        if self._parameter_paths is None:
            paths: Dict[int, str] = {}
            for name, param in self.root.named_parameters():
                paths.setdefault(id(param), name)
            self._parameter_paths = paths
        return self._parameter_paths

    def _buffer_path_map(self) -> Dict[int, str]:
        if self._buffer_paths is None:
            paths: Dict[int, str] = {}
            for name, buffer in self.root.named_buffers():
                paths.setdefault(id(buffer), name)
            self._buffer_paths = paths
        return self._buffer_paths

    def _install_patches(self, fn: Callable[..., Any]) -> None:
        acquire = self._patch_keys.append
        call_name = self._module_call_patched
        acquire(
            _PATCHES.acquire(
                nn.Module, call_name, functools.partial(_traced_module_call, patched_name=call_name)
            )
        )
        if self._getattr_classes is None:
            acquire(_PATCHES.acquire(nn.Module, "__getattr__", _traced_module_getattr))
        else:
            per_class = functools.partial(_traced_module_getattr, per_class=True)
            for cls in self._getattr_classes:
                acquire(_PATCHES.acquire(cls, "__getattr__", per_class))
        for globals_dict, name in _foreign.wrapped_functions(
            _wrapped_functions, self._records_torch_fx_wraps
        ):
            acquire(_PATCHES.acquire(globals_dict, name, _recording_wrapper))
        for owner, name in dict.fromkeys([*_wrapped_methods_to_patch, *_foreign.wrapped_methods()]):
            acquire(_PATCHES.acquire(owner, name, functools.partial(_method_recording_wrapper, name)))
        for probe in _tracing_probes.probe_functions():
            acquire(
                _PATCHES.acquire(probe, "__code__", functools.partial(_tracing_probes.answering_body, probe))
            )
        fn_globals = getattr(inspect.unwrap(fn), "__globals__", None)
        if fn_globals is not None:
            self._autowrap_globals(fn_globals)
        for module in self._autowrap_search:
            self._autowrap_globals(module.__dict__)

    def _getattr_patch_targets(
        self, modules: List[Tuple[str, nn.Module]], is_module: bool
    ) -> Optional[List[type]]:
        """The classes whose ``__getattr__`` this trace patches, or None for ``nn.Module`` itself.

        Per class is enough when only the hierarchy's modules can hold what ``getattr`` turns into
        nodes: tracers that change ``getattr`` or ``path_of_module`` patch ``nn.Module``. A function
        has no parameters to find, so tracing one patches nothing."""
        cls = type(self)
        if cls.getattr is not Tracer.getattr or cls.path_of_module is not Tracer.path_of_module:
            return None
        if not is_module:
            return [] if _FAST_PATCHES.enabled() else None
        return _getattr_patch_classes(modules)

    def _autowrap_globals(self, globals_dict: Dict[str, Any]) -> None:
        """Patch the names in ``globals_dict`` bound to an autowrapped function (once per trace)."""
        if id(globals_dict) in self._checked_globals or not self._autowrap_function_ids:
            return
        self._checked_globals.add(id(globals_dict))
        self._patch_keys.extend(
            _PATCHES.acquire_matching(globals_dict, self._autowrap_function_ids, _recording_wrapper)
        )

    def _release_patches(self) -> None:
        _PATCHES.release_all(self._patch_keys)


# What an nn.Module's __dict__ mostly holds (flags, sizes, hook and child dicts): answered by one
# set lookup instead of an isinstance check against the tensor types.
_NON_TENSOR_TYPES = frozenset(
    {bool, int, float, str, type(None), dict, collections.OrderedDict, set, tuple, list}
)


def _takes_tuple_as_varargs(code: types.CodeType, named_count: int, concrete_args: Tuple[Any, ...]) -> bool:
    """Whether a tuple of concrete args that does not match the named parameters goes to ``*args``:
    torch.fx does so when the only named parameter is ``self`` (or ``x`` of ``f(x, *args)``)."""
    return (
        bool(code.co_flags & inspect.CO_VARARGS)
        and code.co_argcount == 1
        and not code.co_kwonlyargcount
        and len(concrete_args) != named_count
    )


def _return_annotation(fn: Callable[..., Any]) -> Any:
    """The return annotation the output node carries; as in torch.fx, none for a function with
    keyword-only, ``*args`` or ``**kwargs`` parameters (its signature is flattened to trace it)."""
    inner = inspect.unwrap(fn)
    code = getattr(inner, "__code__", None)
    if code is not None and (code.co_kwonlyargcount or code.co_flags & _HAS_VARSTUFF):
        return None
    return getattr(inner, "__annotations__", {}).get("return", None)


def _spec_children(spec: pytree.TreeSpec) -> List[pytree.TreeSpec]:
    children = getattr(spec, "children", None)
    return list(children()) if callable(children) else list(spec.children_specs)


def _make_parameter_proxy(tracer: Tracer, path: str, param: torch.Tensor, node: Node) -> Proxy:
    return ParameterProxy(tracer, node, path, param)


def _call_traced_root(fn: Callable[..., Any], args: Sequence[Any]) -> Any:
    """Calls the traced function; its frame marks where recorded stack traces start."""
    return fn(*args)


_ROOT_CALL_CODES.add(_call_traced_root.__code__)


def symbolic_trace(
    root: Union[nn.Module, Callable[..., Any]],
    concrete_args: Optional[Dict[str, Any]] = None,
) -> GraphModule:
    """Trace ``root`` (a module or a function) into a :class:`GraphModule`.

    >>> gm = symbolic_trace(lambda x: torch.relu(x) + 1)   # doctest: +SKIP
    """
    tracer = Tracer()
    # One pause for both steps: the collector then runs once afterwards, not once after each.
    with collector_paused():
        graph = tracer.trace(root, concrete_args)
        name = root.__class__.__name__ if isinstance(root, nn.Module) else root.__name__
        return GraphModule(tracer.root, graph, name)


# Generated code refers to `fxkit._symbolic_trace.wrap` and friends: make sure the alias is loaded.
from . import _symbolic_trace  # noqa: E402,F401
