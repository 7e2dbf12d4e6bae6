"""``GraphModule``: an ``nn.Module`` whose ``forward`` is generated from a ``Graph``."""

from __future__ import annotations

import copy
import itertools
import keyword
import linecache
import os
import sys
import threading
import weakref
from collections import OrderedDict
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple, Type, Union

import torch

from . import _foreign, _node_hooks, _paths
from ._gc import collector_paused as _collector_paused
from .codegen import (
    BASE_GLOBALS,
    STANDALONE_IMPORTS,
    STANDALONE_PRELUDE,
    PythonCode,
    _PyTreeCodeGen,
    check_annotation,
    check_program_order,
)
from .graph import Graph
from .node import Node

__all__ = ["GraphModule"]


class _CompiledSources:
    """Compiled ``forward`` code objects, keyed by their source text, and their linecache entries.

    Compiling is most of what a first call after ``recompile()`` costs (about 14 us per generated
    line). The same source comes back often: deepcopies and unpickled copies of a module, passes
    that recompile an unchanged graph, tracing a model again. A code object is immutable and is
    executed with each module's own globals, so reusing it is safe. Each source keeps one
    linecache entry (for tracebacks, ``inspect`` and pdb) while any function or cache slot uses it.
    """

    def __init__(self, max_entries: int = 32) -> None:
        self._lock = threading.Lock()
        self._by_source: "OrderedDict[str, Tuple[Any, str]]" = OrderedDict()
        self._live_functions: Dict[str, int] = {}
        self._counter = itertools.count()
        self._max_entries = max_entries

    def function_for(self, python_code: PythonCode, origin: str = "") -> Callable[..., Any]:
        """``origin`` (`` from file:line in name``) ends the code's filename, naming the user's code."""
        source = python_code.src
        cache_key = source + "\0" + origin if origin else source
        with self._lock:
            cached = self._by_source.get(cache_key)
            if cached is not None:
                self._by_source.move_to_end(cache_key)
                code_object, key = cached
            else:
                # Distinct from torch.fx's "<eval_with_key>.N": both libraries may share a process.
                key = f"<fxkit-generated>.{next(self._counter)}{origin}"
                code_object = None
            linecache.cache[key] = (len(source), None, source.splitlines(True), key)
            self._live_functions[key] = self._live_functions.get(key, 0) + 1
        if code_object is None:
            # linecache shows ``source``; what runs may be its line-for-line twin (PythonCode._exec_src).
            compiled_text = getattr(python_code, "_exec_src", None) or source
            with _collector_paused():
                code_object = compile(compiled_text, key, "exec")
            with self._lock:
                self._by_source[cache_key] = (code_object, key)
                self._evict()
        namespace = dict(python_code.globals)
        exec(code_object, namespace)
        function = namespace["forward"]
        weakref.finalize(function, self._release, key)
        return function

    def _evict(self) -> None:
        while len(self._by_source) > self._max_entries:
            _, (_, key) = self._by_source.popitem(last=False)
            if not self._live_functions.get(key):
                linecache.cache.pop(key, None)

    def _release(self, key: str) -> None:
        with self._lock:
            remaining = self._live_functions.get(key, 1) - 1
            if remaining > 0:
                self._live_functions[key] = remaining
                return
            self._live_functions.pop(key, None)
            if not any(cached_key == key for _, cached_key in self._by_source.values()):
                linecache.cache.pop(key, None)


_COMPILED = _CompiledSources()


def _compile_forward(
    python_code: PythonCode, co_fields: Optional[Dict[str, Any]] = None
) -> Callable[..., Any]:
    origin = ""
    if co_fields:
        origin = f" from {co_fields['co_filename']}:{co_fields['co_firstlineno']} in {co_fields['co_name']}"
    return _COMPILED.function_for(python_code, origin)


_HERE_CONTEXT = 2  # generated lines shown before and after the failing one


def _report_failing_line(module: "GraphModule", error: BaseException) -> None:
    """Print where in the generated forward ``error`` was raised, when it was raised there (not in a
    submodule or function it called); torch.fx prints the same note, and people look for its words."""
    function = module.__dict__.get("_forward_fn")
    tb = error.__traceback__
    if function is None or tb is None:
        return
    while tb.tb_next is not None:
        tb = tb.tb_next
    if tb.tb_frame.f_code is not function.__code__:
        return
    lineno = tb.tb_lineno
    lines = module.code.split("\n")
    node_index = (module._lineno_map or {}).get(lineno - module._python_code()._prologue_start)
    nodes = list(module.graph.nodes)
    node_note = (
        f" (node {nodes[node_index].name!r})" if node_index is not None and node_index < len(nodes) else ""
    )
    shown = []
    for number in range(max(1, lineno - _HERE_CONTEXT), min(len(lines), lineno + _HERE_CONTEXT) + 1):
        marker = f"    <--- HERE{node_note}" if number == lineno else ""
        shown.append(f"{lines[number - 1]}{marker}")
    print(
        f"Call using an FX-traced Module, line {lineno} of the traced Module's generated forward function:\n"
        + "\n".join(shown),
        file=sys.stderr,
    )


class _MirroredChildren(dict):
    """``_modules`` dict that also keeps each child in the owner's ``__dict__``.

    ``nn.Module`` finds children through ``__getattr__``, a Python-level fallback that costs about a
    microsecond per ``self.sub`` in generated code. Mirroring children into the instance dictionary
    makes those lookups plain attribute hits; every write path to ``_modules`` updates the mirror.
    """

    def __init__(self, owner_dict: Dict[str, Any], children: Dict[str, Any]) -> None:
        super().__init__(children)
        self._owner_dict = owner_dict
        owner_dict.update(children)

    def __setitem__(self, name: str, module: Any) -> None:
        super().__setitem__(name, module)
        self._owner_dict[name] = module

    def __delitem__(self, name: str) -> None:
        super().__delitem__(name)
        self._owner_dict.pop(name, None)

    def pop(self, name: str, *default: Any) -> Any:
        self._owner_dict.pop(name, None)
        return super().pop(name, *default)

    def popitem(self) -> Any:
        name, module = super().popitem()
        self._owner_dict.pop(name, None)
        return name, module

    def clear(self) -> None:
        for name in self:
            self._owner_dict.pop(name, None)
        super().clear()

    def update(self, *args: Any, **kwargs: Any) -> None:
        for name, module in dict(*args, **kwargs).items():
            self[name] = module

    def setdefault(self, name: str, default: Any = None) -> Any:
        if name not in self:
            self[name] = default
        return self[name]

    def __reduce__(self) -> Any:
        # Plain dict on the wire; the owning module re-installs the mirror when it is restored.
        return (dict, (dict(self),))


def _install_mirror(module: torch.nn.Module) -> None:
    children = module.__dict__.get("_modules")
    if isinstance(children, _MirroredChildren) and children._owner_dict is module.__dict__:
        return
    module.__dict__["_modules"] = _MirroredChildren(module.__dict__, dict(children or {}))


class _Container(torch.nn.Module):
    """An empty module holding children at a qualified path (``layer1`` in ``layer1.0.conv1``)."""

    def __init__(self) -> None:
        super().__init__()
        _install_mirror(self)

    def __setstate__(self, state: Dict[str, Any]) -> None:
        super().__setstate__(state)
        _install_mirror(self)

    def _get_name(self) -> str:
        return "Module"


def _parent_of(destination: torch.nn.Module, qualified_name: str) -> Tuple[torch.nn.Module, str]:
    """The module that should hold the last atom of ``qualified_name``, creating empty holders on the way."""
    return _paths.make_parents(destination, qualified_name, _Container)


def _install_attr(
    destination: torch.nn.Module, qualified_name: str, value: Any, as_buffer: bool, persistent: bool = True
) -> None:
    holder, leaf = _parent_of(destination, qualified_name)
    _set_attr(holder, leaf, value, as_buffer, persistent)


def _set_attr(holder: torch.nn.Module, leaf: str, value: Any, as_buffer: bool, persistent: bool) -> None:
    if as_buffer:
        holder.register_buffer(leaf, value, persistent=persistent)
    else:
        setattr(holder, leaf, value)


class _InTheWay(Exception):
    """A name on a submodule path holds something other than a module."""


def _module_or_missing(value: Any) -> bool:
    """``is_holder`` of add/delete_submodule: walk through modules, create where nothing is, stop
    (``_InTheWay``) at anything else."""
    if value is None or value is _paths.MISSING:
        return False
    if not isinstance(value, torch.nn.Module):
        raise _InTheWay
    return True


def _no_holder() -> Any:
    raise _InTheWay  # delete_submodule creates nothing: a missing parent means no module to delete


def _add_module(owner: Any, name: str, module: torch.nn.Module) -> None:
    owner.add_module(name, module)


class _AttrCopier:
    """Copies the attributes nodes refer to from a source module to the same paths on a new one.

    Nodes of one model share path prefixes (``layer1.0.conv1``, ``layer1.0.bn1``): each prefix is
    looked up once, on both sides (about a third of building a GraphModule for a small ResNet)."""

    def __init__(self, source: torch.nn.Module, destination: torch.nn.Module) -> None:
        self.source = source
        self.destination = destination
        self._owners: Dict[str, Any] = {"": source}
        self._holders: Dict[str, torch.nn.Module] = {"": destination}
        self._holder_prefixes: set = set()  # every prefix of a cached holder path

    def copy(self, node: Any) -> None:
        """Copy ``source.<node.target>`` to the same path on ``destination``; buffers stay buffers.

        A missing target raises AttributeError (as in torch.fx, so callers catching it keep working)."""
        source = self.source
        qualified_name = node.target
        owner_path, leaf = _paths.split_parent(qualified_name)
        try:
            owner = self._owners.get(owner_path)
            if owner is None:
                owner = self._owners[owner_path] = _paths.resolve(source, owner_path)
            value = _paths.resolve(owner, leaf)
        except _paths.MissingAttribute as error:
            missing = error.missing if owner_path == "" or error.root is source else f"{owner_path}.{leaf}"
            raise AttributeError(
                f"Node {node.name!r} ({node.op}) refers to {qualified_name!r}, but {missing!r} does not exist on "
                f"the root module {type(source).__name__}. Add it to the root or fix the node's target."
            ) from None
        # A plain tensor attribute becomes a buffer too (as in torch.fx), so .to() and state_dict() see it.
        is_buffer = isinstance(value, torch.Tensor) and not isinstance(value, torch.nn.Parameter)
        persistent = leaf not in getattr(owner, "_non_persistent_buffers_set", ())
        holder = self._holders.get(owner_path)
        if holder is None:
            holder = _parent_of(self.destination, qualified_name)[0]
            self._holders[owner_path] = holder
            atoms = owner_path.split(".")
            self._holder_prefixes.update(".".join(atoms[: count + 1]) for count in range(len(atoms)))
        if qualified_name in self._holder_prefixes:
            # Something is installed where a cached holder (or one on its path) was found: forget them.
            self._holders = {"": self.destination}
            self._holder_prefixes = set()
        _set_attr(holder, leaf, value, is_buffer and value is not None, persistent)


class _LazyForward:
    """Class attribute standing in for ``forward`` until the generated code is first needed.

    Generating and compiling 10k-line functions is the dominant cost of ``recompile``; deferring it
    means several edits + recompiles in a row pay once, at the first call (or ``inspect``/jit access).
    """

    def __init__(self, owner: "GraphModule") -> None:
        self._owner = weakref.ref(owner)

    def __get__(self, instance: Any, owner_type: Optional[type] = None) -> Any:
        module = self._owner()
        if module is None:
            raise RuntimeError("the GraphModule owning this forward no longer exists")
        function = module._materialize_forward()
        return function if instance is None else function.__get__(instance, owner_type)


class _LazyPythonCode(PythonCode):
    """What ``recompile()`` returns: the PythonCode, produced only if someone looks at it.

    A PythonCode subclass so ``isinstance`` checks written for torch.fx hold; it keeps no fields of
    its own, every read is forwarded to the module's generated code."""

    def __init__(self, module: "GraphModule") -> None:
        self._module = module

    def __getattr__(self, name: str) -> Any:
        return getattr(self._module._python_code(), name)


def _check_names(graph: Graph) -> None:
    """Node names become variables of the generated code: each must be a distinct identifier."""
    seen: Dict[str, None] = {}
    for node in graph.nodes:
        name = node.name
        if name in seen or not name.isidentifier():
            problem = "is used by two nodes" if name in seen else "is not a Python identifier"
            raise ValueError(f"node name {name!r} {problem}; give each node its own identifier name")
        seen[name] = None
        if node.op == "placeholder" and node.type is not None:
            # Codegen is deferred; an annotation it cannot write fails here, as torch.fx fails.
            check_annotation(node.type)


class GraphModule(torch.nn.Module):
    """An ``nn.Module`` built from a ``Graph``: its ``forward`` is Python generated from the graph.

    ``root`` supplies the submodules, parameters and buffers the graph refers to: either a module
    (only the referenced attributes are copied, at the same qualified paths) or a dict from qualified
    name to object. Each instance gets its own class, so two GraphModules never share a ``forward``.
    """

    __jit_unused_properties__ = ["graph", "code", "_code", "_lineno_map", "_prologue_start"]
    __jit_ignored_attributes__ = [
        "_generated",
        "_forward_fn",
        "_graph",
        "meta",
        "_tracer_cls",
        "_tracer_extras",
    ]

    def __new__(cls: Type["GraphModule"], *args: Any, **kwargs: Any) -> "GraphModule":
        user_class = _user_class(cls)
        impl = type(
            user_class.__name__,
            (user_class,),
            {"_fxkit_impl_class": True, "__module__": user_class.__module__},
        )
        return super().__new__(impl)

    def __init__(
        self,
        root: Union[torch.nn.Module, Dict[str, Any]],
        graph: Graph,
        class_name: str = "GraphModule",
    ) -> None:
        _foreign.reject(graph, "GraphModule()")
        super().__init__()
        _install_mirror(self)
        _node_hooks.install_empty(self)
        type(self).__name__ = class_name
        type(self).__qualname__ = class_name
        if isinstance(root, torch.nn.Module):
            if hasattr(root, "training"):
                self.training = root.training
            copier = _AttrCopier(root, self)
            for node in graph.nodes:
                if node.op in ("get_attr", "call_module"):
                    copier.copy(node)
        elif isinstance(root, dict):
            wanted: List[str] = []
            for node in graph.nodes:
                if node.op in ("get_attr", "call_module"):
                    if node.target not in root:
                        raise RuntimeError(
                            f"Node {node.name!r} ({node.op}) refers to {node.target!r}, but that target is not "
                            f"a key of the root dict. Add root[{node.target!r}] = <module or tensor>."
                        )
                    wanted.append(node.target)
            for target in sorted(dict.fromkeys(wanted), key=lambda t: t.count(".")):
                value = root[target]
                plain_tensor = isinstance(value, torch.Tensor) and not isinstance(value, torch.nn.Parameter)
                _install_attr(self, target, value, as_buffer=plain_tensor)
        else:
            raise RuntimeError(
                f"GraphModule root must be an nn.Module or a dict of qualified name to object, got {type(root)!r}"
            )
        self.meta: Dict[str, Any] = (
            dict(getattr(root, "meta", {}) or {}) if isinstance(root, torch.nn.Module) else {}
        )
        self._tracer_cls = graph._tracer_cls
        self._tracer_extras = graph._tracer_extras
        self.graph = graph

    # -- the graph and its code ------------------------------------------------------------------
    @property
    def graph(self) -> Graph:
        """The graph this module runs. Assigning a new graph recompiles."""
        return self._graph

    @graph.setter
    def graph(self, new_graph: Graph) -> None:
        if not isinstance(new_graph, Graph):
            _foreign.reject(new_graph, "GraphModule.graph =")
            raise TypeError(f"GraphModule.graph must be an fxkit Graph, got {type(new_graph).__name__}")
        check_program_order(new_graph.nodes)
        _check_names(new_graph)
        self._graph = new_graph
        new_graph.owning_module = self
        self._invalidate_code()

    def recompile(self) -> PythonCode:
        """Bring ``forward`` and ``code`` in sync with ``graph`` (generation is deferred until needed).

        The graph's order is checked now, so a malformed graph fails here, naming the node."""
        check_program_order(self._graph.nodes)
        return self._invalidate_code()

    def _invalidate_code(self) -> PythonCode:
        codegen = self._graph._codegen
        if isinstance(codegen, _PyTreeCodeGen) and codegen.pytree_info is not None:
            self._in_spec = codegen.pytree_info.in_spec
            self._out_spec = codegen.pytree_info.out_spec
        self.__dict__["_generated"] = None
        self.__dict__["_forward_fn"] = None
        type(self).forward = _LazyForward(self)
        return _LazyPythonCode(self)

    def _needs_recompile(self) -> bool:
        """Whether the code is not generated yet for the current graph (torch.fx's lazy
        GraphModule answers the same question); the next call or read of ``code`` generates it."""
        return self.__dict__.get("_generated") is None

    def _python_code(self) -> PythonCode:
        generated = self.__dict__.get("_generated")
        if generated is None:
            generated = self._graph.python_code(root_module="self")
            self.__dict__["_generated"] = generated
        return generated

    def _materialize_forward(self) -> Callable[..., Any]:
        function = self.__dict__.get("_forward_fn")
        if function is None:
            function = _compile_forward(self._python_code(), getattr(self._graph, "_co_fields", None))
            self.__dict__["_forward_fn"] = function
            type(self).forward = function
        return function

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        try:
            # Looked up on each call: tracers patch nn.Module.__call__ and must see this call.
            return torch.nn.Module.__call__(self, *args, **kwargs)
        except Exception as error:
            _report_failing_line(self, error)
            raise

    @property
    def code(self) -> str:
        """The Python source of ``forward``."""
        return self._python_code().src

    @property
    def _code(self) -> str:
        return self.code

    @property
    def _lineno_map(self) -> Optional[Dict[int, Optional[int]]]:
        return self._python_code()._lineno_map

    @property
    def _prologue_start(self) -> int:
        """How many lines of the generated source come before the first line ``_lineno_map`` counts."""
        return self._python_code()._prologue_start

    # fmt: off
    def print_readable(
        self, print_output: bool = True, include_stride: bool = False, include_device: bool = False,
        colored: bool = False, *, fast_sympy_print: bool = False, expanded_def: bool = False,
        additional_meta: Optional[List[str]] = None,
    ) -> str:
        # fmt: on
        """The module as a class definition with its generated ``forward``, stack comments and shape
        annotations (from ``node.meta``) included; the options are those of ``Graph.python_code``
        (``fast_sympy_print`` is accepted and has no effect here)."""
        options = dict(
            include_stride=include_stride, include_device=include_device, colored=colored,
            expanded_def=expanded_def, additional_meta=additional_meta,
        )  # fmt: skip
        text = self._readable(self._get_name(), options)
        if print_output:
            print(text)
        return text

    def _readable(self, class_name: str, options: Dict[str, Any]) -> str:
        source = self._graph._codegen._gen_python_code(self._graph.nodes, "self", verbose=True, **options).src
        lines = [f"class {class_name}(torch.nn.Module):"]
        lines.extend(_indented(source))
        for child_name, child in self.named_children():
            if isinstance(child, GraphModule):
                lines.append("")
                lines.extend(_indented(child._readable(child_name, options)))
        return "\n".join(lines) + "\n"

    def __str__(self) -> str:
        return (
            f"{super().__str__()}\n{self.code}\n"
            "# To see more debug info, please use `graph_module.print_readable()`"
        )

    # -- submodules ------------------------------------------------------------------------------
    def add_submodule(self, target: str, m: torch.nn.Module) -> bool:
        """Install ``m`` at dotted path ``target``, creating empty parent modules; False if blocked."""
        try:
            owner, leaf = _paths.make_parents(self, target, _Container, _module_or_missing, _add_module)
        except _InTheWay:
            return False
        owner.add_module(leaf, m)
        return True

    def delete_submodule(self, target: str) -> bool:
        """Remove the submodule at ``target``; False when there is no module there."""
        parent, leaf = _paths.split_parent(target)
        try:
            owner = _paths.make_parents(self, target, _no_holder, _module_or_missing)[0] if parent else self
        except _InTheWay:
            return False
        if not isinstance(getattr(owner, leaf, None), torch.nn.Module):
            return False
        delattr(owner, leaf)
        return True

    def delete_all_unused_submodules(self) -> None:
        """Delete every submodule that no ``call_module`` or ``get_attr`` node reaches."""
        used: Dict[str, None] = {}
        for node in self._graph.nodes:
            if node.op not in ("call_module", "get_attr"):
                continue
            atoms = node.target.split(".")
            for depth in range(1, len(atoms) + 1):
                used[".".join(atoms[:depth])] = None
            if node.op == "call_module":
                called = self.get_submodule(node.target)
                for inner_name, _ in called.named_modules():
                    if inner_name:
                        used[f"{node.target}.{inner_name}"] = None
        for name, _ in list(self.named_modules()):
            if name and name not in used:
                self.delete_submodule(name)

    # -- node hooks (torch.fx's private API, used by GraphTransformObserver) ---------------------
    def _register_create_node_hook(self, f: Callable[[Node], object]) -> None:
        """Call ``f(node)`` for each node created in this module's graph, before it is inserted."""
        _node_hooks.register(self, "create", f)

    def _unregister_create_node_hook(self, f: Callable[[Node], object]) -> None:
        _node_hooks.unregister(self, "create", f)

    def _register_erase_node_hook(self, f: Callable[[Node], object]) -> None:
        """Call ``f(node)`` for each node erased from this module's graph, before it goes."""
        _node_hooks.register(self, "erase", f)

    def _unregister_erase_node_hook(self, f: Callable[[Node], object]) -> None:
        _node_hooks.unregister(self, "erase", f)

    def _register_replace_node_hook(self, f: Callable[[Node, str, Node], object]) -> None:
        """Call ``f(old=node, new=name, user=node)`` before ``user`` reads the node named ``new``
        where it read ``old`` (replace_all_uses_with, replace_input_with, and renaming ``old``)."""
        _node_hooks.register(self, "replace", f)

    def _unregister_replace_node_hook(self, f: Callable[[Node, str, Node], object]) -> None:
        _node_hooks.unregister(self, "replace", f)

    def _set_replace_hook(self, f: Callable[[Node, str, Node], object]) -> Iterator[None]:
        """A context manager: ``f`` is a replace hook inside the ``with`` block only."""
        return _node_hooks.replace_hook_set(self, f)

    def _register_deepcopy_hook(self, f: Callable[["GraphModule"], object]) -> None:
        """Call ``f(copy)`` after ``copy.deepcopy`` of this module (the copy keeps the hooks)."""
        _node_hooks.register(self, "deepcopy", f)

    def _unregister_deepcopy_hook(self, f: Callable[["GraphModule"], object]) -> None:
        _node_hooks.unregister(self, "deepcopy", f)

    # -- copying and pickling --------------------------------------------------------------------
    def __deepcopy__(self, memo: Dict[int, Any]) -> "GraphModule":
        copied = GraphModule.__new__(_user_class(type(self)))
        memo[id(self)] = copied
        for module in _submodules_deepest_first(self):
            copy.deepcopy(module, memo)  # each finds its children in the memo: no recursion per level
        state = {k: v for k, v in self.__dict__.items() if k not in _NOT_COPIED_FIELDS}
        copied.__dict__.update(copy.deepcopy(state, memo))
        _node_hooks.adopt_copies(copied, self.__dict__)  # the same hooks, not copies of them
        copied._restore_after_copy(type(self).__name__)
        if _node_hooks.registered:
            _node_hooks.run(copied, "deepcopy", copied)
        return copied

    def __copy__(self) -> "GraphModule":
        copied = GraphModule.__new__(_user_class(type(self)))
        copied.__dict__.update({k: v for k, v in self.__dict__.items() if k not in _NOT_COPIED_FIELDS})
        _node_hooks.adopt_copies(copied, self.__dict__)
        copied._restore_after_copy(type(self).__name__)
        return copied

    def _replicate_for_data_parallel(self) -> "GraphModule":
        """The shallow replica DataParallel makes per device: it shares the graph and gets its own
        per-instance class (``__new__`` makes one), which needs this module's name and forward."""
        replica = super()._replicate_for_data_parallel()
        _install_mirror(replica)  # the copied ``_modules`` is a plain dict: mirror it again
        type(replica).__name__ = type(replica).__qualname__ = type(self).__name__
        type(replica).forward = _LazyForward(replica)
        return replica

    def __reduce__(self) -> Any:
        state = {k: v for k, v in self.__dict__.items() if k not in _NOT_COPIED_FIELDS}  # hooks stay behind
        # The submodules go first, deepest first: pickle then meets each module's children already
        # written (a memo reference), so a deep hierarchy costs no stack depth per level.
        arguments = (_submodules_deepest_first(self), _user_class(type(self)), state, type(self).__name__)
        return (_rebuild_graph_module_after, arguments)

    def _restore_after_copy(self, class_name: str) -> None:
        _install_mirror(self)
        type(self).__name__ = class_name
        type(self).__qualname__ = class_name
        self._graph.owning_module = self
        self.recompile()

    # -- exporting -------------------------------------------------------------------------------
    def to_folder(self, folder: Union[str, os.PathLike], module_name: str = "FxModule") -> None:
        """Write an importable package: ``module.py`` with the class and its code, weights beside it.

        ``from <folder> import <module_name>`` then gives a class whose instances run like this module.
        """
        target = Path(folder)
        target.mkdir(parents=True, exist_ok=True)
        torch.save(self.state_dict(), target / "state_dict.pt")
        python_code = self._python_code()
        imports = _import_lines(python_code.globals)
        init_lines = []
        for child_name, child in self.named_children():
            # The pickled module is its structure; its weights come from state_dict.pt below.
            torch.save(child, target / f"{child_name}.pt")
            init_lines.append(
                _assign_attribute(child_name, f"torch.load(_HERE / {child_name + '.pt'!r}, weights_only=False)")
            )
        for param_name, param in self._parameters.items():
            if param is not None:
                init_lines.append(
                    _assign_attribute(
                        param_name,
                        f"torch.nn.Parameter(torch.empty({list(param.shape)}, dtype={param.dtype}), "
                        f"requires_grad={param.requires_grad})",
                    )
                )
        for buffer_name, buffer in self._buffers.items():
            if buffer is not None:
                persistent = buffer_name not in self._non_persistent_buffers_set
                init_lines.append(
                    f"        self.register_buffer({buffer_name!r}, torch.empty({list(buffer.shape)}, "
                    f"dtype={buffer.dtype}), persistent={persistent})"
                )
        init_lines.append(
            "        self.load_state_dict(torch.load(_HERE / 'state_dict.pt', weights_only=True), strict=False)"
        )
        forward_source = "\n".join("    " + line for line in python_code.src.strip("\n").split("\n"))
        module_source = "\n".join(
            [
                "from pathlib import Path",
                *imports,
                "",
                "_HERE = Path(__file__).resolve().parent",
                "",
                "",
                f"class {module_name}(torch.nn.Module):",
                "    def __init__(self):",
                "        super().__init__()",
                *init_lines,
                "",
                forward_source,
                "",
            ]
        )
        (target / "module.py").write_text(module_source)
        (target / "__init__.py").write_text(f"from .module import {module_name}\n")


def _assign_attribute(name: str, value_source: str) -> str:
    """An ``__init__`` line setting attribute ``name``; ``setattr`` for names such as nn.Sequential's
    ``0`` that are not identifiers (as torch.fx writes them)."""
    if name.isidentifier() and not keyword.iskeyword(name):
        return f"        self.{name} = {value_source}"
    return f"        setattr(self, {name!r}, {value_source})"


_GENERATED_FIELDS = frozenset({"_generated", "_forward_fn"})
_NOT_COPIED_FIELDS = _GENERATED_FIELDS | frozenset(_node_hooks.HOOK_LISTS.values())


def _indented(text: str) -> List[str]:
    """The lines of ``text`` indented one level, blank lines left empty and blank ends dropped."""
    lines = [line if line.strip() else "" for line in text.split("\n")]
    while lines and not lines[0]:
        lines.pop(0)
    while lines and not lines[-1]:
        lines.pop()
    return ["    " + line if line else "" for line in lines]


def _user_class(cls: type) -> type:
    """The class the user asked for, skipping the per-instance classes GraphModule makes."""
    while cls.__dict__.get("_fxkit_impl_class", False):
        cls = cls.__bases__[0]
    return cls


def _rebuild_graph_module(user_class: type, state: Dict[str, Any], class_name: str) -> GraphModule:
    module = GraphModule.__new__(user_class)
    module.__dict__.update(state)
    _node_hooks.install_empty(module)
    module._restore_after_copy(class_name)
    return module


def _rebuild_graph_module_after(
    submodules: List[torch.nn.Module], user_class: type, state: Dict[str, Any], class_name: str
) -> GraphModule:
    """Unpickling: ``submodules`` were only there to be rebuilt first (see ``GraphModule.__reduce__``)."""
    return _rebuild_graph_module(user_class, state, class_name)


def _submodules_deepest_first(root: torch.nn.Module) -> List[torch.nn.Module]:
    """Every module below ``root``, each once, every one after all of its descendants.

    Pickling or deep-copying a module recurses into its children, a few interpreter frames per
    level: a 500-deep traced hierarchy overflowed the default recursion limit (as with torch.fx).
    Handled in this order, each module's children are done already and the depth stays constant."""
    modules = [module for _path, module in _paths.walk_modules(root)[1:]]
    modules.reverse()
    return modules


def _import_lines(globals_: Dict[str, Any]) -> List[str]:
    """Import statements that recreate the generated code's globals in a standalone file."""
    lines = list(STANDALONE_PRELUDE)
    for name, value in globals_.items():
        if name in BASE_GLOBALS:
            if name in STANDALONE_IMPORTS:
                lines.append(STANDALONE_IMPORTS[name])
            continue
        module = getattr(value, "__module__", None)
        qualname = getattr(value, "__qualname__", getattr(value, "__name__", None))
        if hasattr(value, "__path__") or type(value).__name__ == "module":
            lines.append(f"import {value.__name__} as {name}")
        elif module == "builtins" and qualname == name:
            continue
        elif module and qualname and "<" not in qualname and "." not in qualname:
            lines.append(f"from {module} import {qualname} as {name}")
        else:
            raise RuntimeError(
                f"to_folder: the generated code uses {value!r} (bound as {name!r}), which cannot be written as "
                "an import. Make it an importable module-level object."
            )
    return lines
