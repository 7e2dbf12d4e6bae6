"""Bridges to the torch.fx ecosystem: conversions, a ``torch.compile`` backend, torch.export.

This is the only fxkit module that uses ``torch.fx``, ``torch.export`` or ``torch._dynamo``, and it
imports them inside functions only, so ``import fxkit`` never loads them.

- :func:`from_torch_fx` / :func:`to_torch_fx` convert a Graph or GraphModule either way, keeping
  node names, order, targets, arguments, ``meta``, type annotations, the calling convention
  (pytree specs), the class name, and sharing (not copying) submodules, parameters and buffers.
- :func:`backend` builds a ``torch.compile`` backend that hands Dynamo's graphs to fxkit passes.
- :func:`use_fast_path` turns the fast paths of both off, for a ``with`` block.
- :func:`export` runs ``torch.export.export`` on an fxkit GraphModule or capture result.
- :func:`torch_fx_wrapped_functions` reads the functions registered with ``torch.fx.wrap``.
- :func:`symbolic_fake_mode`, :func:`symbolic_fake_tensor`, :func:`symbolic_int`, :func:`unbacked_bindings` reach torch's shape environment for
  ``make_fx(tracing_mode="symbolic")``; :func:`torch_shape_module` hands out torch's
  ``symbolic_shapes`` and ``sym_node`` modules to ``fxkit.experimental``'s modules of those names.
"""

from __future__ import annotations

import copy
import functools
import importlib
import sys
from types import ModuleType
from typing import Any, Callable, Collection, Dict, List, Optional, Tuple, Union

import torch
import torch.utils._pytree as pytree

from . import _foreign, _structure
from ._fast_path import FastPathSwitch
from .capture_tracer import _RootWithInstalled
from .codegen import CodeGen, _PyTreeCodeGen, _PyTreeInfo
from .graph import Graph
from .graph_module import GraphModule
from .guards import NOT_GIVEN
from .node import Node, map_aggregate

__all__ = ["backend", "export", "from_torch_fx", "to_torch_fx"]
__all__ += ["symbolic_fake_mode", "symbolic_fake_tensor", "symbolic_int", "unbacked_bindings"]
__all__ += ["torch_fx_side_effectful_functions", "torch_fx_wrapped_functions", "torch_fx_wrapped_methods"]
__all__ += ["torch_shape_module", "use_fast_path"]

_FAST_PATH = FastPathSwitch("interop")
#: ``with use_fast_path(False): ...`` converts and compiles through the plain definitions in this
#: thread. The fast paths, each beside its plain version: ``_torch_graph_module_class`` and
#: ``_untouched``.
use_fast_path = _FAST_PATH.use


def _torch_fx() -> Any:
    import torch.fx

    return torch.fx


# --------------------------------------------------------------------------- arguments


def _mapper(
    node_type: type, env: Dict[Any, Any], classes: Optional[List[type]] = None
) -> Callable[[Any], Any]:
    """A function rebuilding an argument structure with every ``node_type`` node replaced via ``env``.

    Containers come back as plain tuples/lists/dicts (named tuples keep their type); each side's
    Node constructor freezes them into its own immutable containers.
    """

    def convert(arg: Any) -> Any:
        kind = type(arg)
        if kind is node_type:
            return env[arg]
        if kind is tuple:
            return tuple([convert(item) for item in arg])
        if isinstance(arg, list):
            return [convert(item) for item in arg]
        if isinstance(arg, dict):
            return {key: convert(value) for key, value in arg.items()}
        if kind is slice:
            return slice(convert(arg.start), convert(arg.stop), convert(arg.step))
        if isinstance(arg, tuple):
            items = [convert(item) for item in arg]
            return kind(*items) if hasattr(arg, "_fields") else tuple(items)
        if isinstance(arg, node_type):
            return env[arg]
        if classes is not None and isinstance(arg, type):
            classes.append(arg)
        return arg

    return convert


# --------------------------------------------------------------------------- codegen


_KNOWS_FXKIT: Dict[type, type] = {}


def _knowing_fxkit(base: type) -> type:
    """A subclass of torch.fx's code generator ``base`` whose generated code also has the name
    ``fxkit``: torch.fx writes placeholder defaults by their repr, and a capture's defaults are
    ``fxkit.guards.NOT_GIVEN``. (Made once, lazily: this module never imports torch.fx at load.)"""
    made = _KNOWS_FXKIT.get(base)
    if made is None:

        def additional_globals(self: Any) -> List[Tuple[str, Any]]:
            import fxkit

            return [*base.additional_globals(self), ("fxkit", fxkit)]

        made = type(f"{base.__name__}WithFxkit", (base,), {"additional_globals": additional_globals})
        _KNOWS_FXKIT[base] = made
    return made


def _codegen_from_torch(codegen: Any) -> CodeGen:
    fx = _torch_fx()
    kind = type(codegen)
    kind = next((base for base, made in _KNOWS_FXKIT.items() if made is kind), kind)
    if kind is fx.graph.CodeGen:
        return CodeGen()
    if kind is fx.graph._PyTreeCodeGen:
        info = codegen.pytree_info
        return _PyTreeCodeGen(_PyTreeInfo(list(info.orig_args), info.in_spec, info.out_spec))
    raise TypeError(
        f"cannot convert a graph whose code generator is {kind.__module__}.{kind.__qualname__}: "
        "fxkit knows torch.fx's CodeGen and _PyTreeCodeGen only. Set a plain CodeGen on the graph "
        "(graph.set_codegen(torch.fx.graph.CodeGen())) before converting, or write the fxkit "
        "CodeGen subclass that generates the same code."
    )


def _codegen_to_torch(codegen: CodeGen) -> Any:
    fx = _torch_fx()
    kind = type(codegen)
    if kind is CodeGen:
        return fx.graph.CodeGen()
    if kind is _PyTreeCodeGen:
        info = codegen.pytree_info
        return fx.graph._PyTreeCodeGen(
            fx.graph._PyTreeInfo(list(info.orig_args), info.in_spec, info.out_spec)
        )
    raise TypeError(
        f"cannot convert a graph whose code generator is {kind.__module__}.{kind.__qualname__}: "
        "torch.fx has equivalents of fxkit's CodeGen and _PyTreeCodeGen only. Set one of those "
        "with graph.set_codegen(...) before converting."
    )


# --------------------------------------------------------------------------- graphs


def _copy_nodes(
    source: Any, target: Any, source_node_type: type, classes: Optional[List[type]] = None
) -> None:
    """Append a copy of every node of ``source`` to the empty graph ``target``, names kept; the
    classes met among the arguments are added to ``classes``."""
    env: Dict[Any, Any] = {}
    convert = _mapper(source_node_type, env, classes)
    create = target.create_node
    for node in source.nodes:
        args = convert(node.args)
        kwargs = convert(node.kwargs)
        copied = create(node.op, node.target, args, kwargs, node.name, node.type)
        if copied.name != node.name:
            raise ValueError(
                f"node {node.name!r} could not keep its name in the converted graph (it became "
                f"{copied.name!r}); rename it to a plain Python identifier before converting"
            )
        copied.meta.update(node.meta)  # the new node's own (empty) dict: no attribute write
        env[node] = copied


def _graph_from_torch(graph: Any) -> Graph:
    converted = Graph(
        tracer_cls=getattr(graph, "_tracer_cls", None), tracer_extras=getattr(graph, "_tracer_extras", None)
    )
    codegen = _codegen_from_torch(graph._codegen)
    _copy_nodes(graph, converted, _torch_fx().Node)
    converted.set_codegen(codegen)
    converted._co_fields = dict(getattr(graph, "_co_fields", None) or {})
    meta = getattr(graph, "meta", None)
    if meta:
        converted.meta = dict(meta)
    return converted


def _graph_to_torch(graph: Graph, classes: Optional[List[type]] = None) -> Any:
    fx = _torch_fx()
    converted = fx.Graph(tracer_cls=graph._tracer_cls, tracer_extras=graph._tracer_extras)
    codegen = _codegen_to_torch(graph._codegen)
    for node in graph.nodes:  # placeholders come first
        if node.op != "placeholder":
            break
        if node.args and node.args[0] is NOT_GIVEN:
            codegen.__class__ = _knowing_fxkit(type(codegen))
            break
    _copy_nodes(graph, converted, Node, classes)
    converted.set_codegen(codegen)
    if graph._co_fields:
        converted._co_fields = dict(graph._co_fields)
    if graph.meta:
        converted.meta = dict(graph.meta)
    return converted


# --------------------------------------------------------------------------- modules

# Per-instance state of a GraphModule that the conversion rebuilds itself.
_REBUILT_ATTRIBUTES = frozenset({"training", "meta"})


def _share_state(source: torch.nn.Module, destination: torch.nn.Module) -> None:
    """Make ``destination`` hold the very submodules, parameters, buffers and public attributes of ``source``.

    The GraphModule constructors copy only what the graph refers to, into empty holder modules on
    the way; this puts the original objects (and whatever the graph does not use) in their place.
    """
    for name, module in source._modules.items():
        destination._modules[name] = module
    for name, parameter in source._parameters.items():
        destination._parameters[name] = parameter
    non_persistent = source._non_persistent_buffers_set
    for name, buffer in source._buffers.items():
        destination._buffers[name] = buffer
        if name in non_persistent:
            destination._non_persistent_buffers_set.add(name)
        else:
            destination._non_persistent_buffers_set.discard(name)
    for name, value in vars(source).items():
        if name.startswith("_") or name in _REBUILT_ATTRIBUTES:
            continue
        destination.__dict__[name] = value
    destination.meta = dict(getattr(source, "meta", None) or {})
    destination.training = source.training


# torch.fx writes a class given as an argument (a captured module's build_object(DynamicCache, ...))
# with its repr, which is not code; such classes travel as attributes read by get_attr nodes.
_CLASS_ATTRIBUTE = "_fxkit_class_"


def _module_from_torch(module: Any) -> GraphModule:
    graph = _graph_from_torch(module.graph)
    _inline_class_attributes(graph, module)
    converted = GraphModule(module, graph, type(module).__name__)
    _share_state(module, converted)
    for name in [name for name in vars(converted) if name.startswith(_CLASS_ATTRIBUTE)]:
        delattr(converted, name)
    return converted


def _module_to_torch(module: GraphModule) -> Any:
    fx = _torch_fx()
    met: List[type] = []
    graph = _graph_to_torch(module.graph, met)
    classes = _classes_as_attributes(graph) if met else {}
    # capture's view of a root plus extra attributes, read the same way by torch.fx's copying
    root = _RootWithInstalled(module, classes) if classes else module
    converted = _torch_graph_module_class(fx)(root, graph, type(module).__name__)
    _share_state(module, converted)
    return converted


def _torch_graph_module_class(fx: Any) -> type:
    """The torch.fx GraphModule class a conversion builds.

    Fast path: torch's lazily compiled GraphModule, the kind Dynamo hands its backends, which
    generates and compiles ``forward`` when it is first called or its ``code`` is read. A converted
    module is often only read or edited by torch.fx tools (a compiler, a partitioner) whose own
    recompile would throw that work away. Bench to-torch-fx-chain-10k: the plain GraphModule is
    1.0x torch.fx's deepcopy (codegen and ``compile`` are 70% of it), the lazy one 3.2-3.6x.
    """
    if _FAST_PATH.enabled():
        try:
            from torch.fx._lazy_graph_module import _LazyGraphModule
        except ImportError:  # a torch without it: the plain class
            return fx.GraphModule
        return _LazyGraphModule
    return fx.GraphModule


def _classes_as_attributes(graph: Any) -> Dict[str, type]:
    """Replace class-valued arguments of the torch.fx ``graph`` by get_attr nodes; their attributes."""
    fx = _torch_fx()
    names: Dict[type, str] = {}
    for node in list(graph.nodes):
        # Only run when the conversion met a class; they are given at the top level
        # (build_object(cls, ...), autograd_apply(cls, ...)).
        found = [arg for arg in (*node.args, *node.kwargs.values()) if isinstance(arg, type)]
        if not found:
            continue
        readers: Dict[type, Any] = {}
        with graph.inserting_before(node):
            for cls in dict.fromkeys(found):
                name = names.setdefault(cls, f"{_CLASS_ATTRIBUTE}{len(names)}")
                readers[cls] = graph.create_node("get_attr", name, (), {}, name=name.lstrip("_"))
        swap = lambda arg, use=readers: use[arg] if isinstance(arg, type) else arg  # noqa: E731
        node.args = fx.node.map_aggregate(node.args, swap)
        node.kwargs = fx.node.map_aggregate(node.kwargs, swap)
    return {name: cls for cls, name in names.items()}


def _inline_class_attributes(graph: Graph, module: Any) -> None:
    """Undo ``_classes_as_attributes`` on a graph coming back: the classes are arguments again."""
    for node in list(graph.nodes):
        if node.op != "get_attr" or not str(node.target).startswith(_CLASS_ATTRIBUTE):
            continue
        cls = getattr(module, node.target, None)
        if not isinstance(cls, type):
            continue
        for user in list(node.users):
            swap = lambda arg, old=node, new=cls: new if arg is old else arg  # noqa: E731
            user.args = map_aggregate(user.args, swap)
            user.kwargs = map_aggregate(user.kwargs, swap)
        graph.erase_node(node)


def from_torch_fx(obj: Any) -> Union[GraphModule, Graph]:
    """The fxkit twin of a torch.fx ``GraphModule`` or ``Graph`` (e.g. from Dynamo or torch.export).

    Nodes keep their names, order, targets, arguments, ``meta`` (a new dict per node sharing the
    values) and type annotations; the graph keeps its calling convention; a module keeps its class
    name and shares its submodules, parameters and buffers with the original.
    """
    kind = _foreign.torch_fx_kind(obj)
    if kind == "GraphModule":
        return _module_from_torch(obj)
    if kind == "Graph":
        return _graph_from_torch(obj)
    if isinstance(obj, (GraphModule, Graph)):
        raise TypeError(f"from_torch_fx: {type(obj).__name__} is already an fxkit object")
    raise TypeError(
        f"from_torch_fx takes a torch.fx GraphModule or Graph, got {type(obj).__name__}"
        + (" (convert the whole graph, not single nodes)" if kind == "Node" else "")
    )


def to_torch_fx(obj: Union[GraphModule, Graph, Any]) -> Any:
    """The torch.fx twin of an fxkit ``GraphModule`` or ``Graph`` (or of a capture result's module).

    The result has the same generated code, node names and ``meta``, and shares the submodules,
    parameters and buffers of ``obj``; it goes wherever torch.fx objects are expected. Like the
    modules Dynamo makes, it generates and compiles its code when first called or when ``code`` is
    read (``use_fast_path(False)``: at once, as a plain torch.fx GraphModule).
    """
    module = getattr(obj, "graph_module", None)
    if isinstance(module, GraphModule) and not isinstance(obj, torch.nn.Module):
        obj = module
    if isinstance(obj, GraphModule):
        return _module_to_torch(obj)
    if isinstance(obj, Graph):
        return _graph_to_torch(obj)
    kind = _foreign.torch_fx_kind(obj)
    if kind is not None:
        raise TypeError(f"to_torch_fx: this {kind} is already a torch.fx object")
    raise TypeError(
        f"to_torch_fx takes an fxkit GraphModule, Graph or capture result, got {type(obj).__name__}"
    )


# --------------------------------------------------------------------------- torch.compile


def _run_pass(one_pass: Any, module: GraphModule) -> GraphModule:
    result = one_pass(module)
    if result is None:
        return module
    if isinstance(result, GraphModule):
        return result
    returned = getattr(result, "graph_module", None)
    if isinstance(returned, GraphModule):
        return returned
    name = getattr(one_pass, "__name__", type(one_pass).__name__)
    raise TypeError(
        f"pass {name} returned {type(result).__name__}; a pass returns an fxkit GraphModule, a "
        "PassResult, or None after editing the module in place"
    )


def _add_items(parts: List[Any], mapping: Dict[Any, Any]) -> None:
    for key, value in mapping.items():
        parts += (key, value)


def _add_attributes(parts: List[Any], obj: Any, skip: Collection[str]) -> None:
    """Add the attributes of ``obj`` (but ``skip``) and the items of its dict and set attributes."""
    for name, value in vars(obj).items():
        if name in skip:
            continue
        parts += (name, value)
        if isinstance(value, dict):
            _add_items(parts, value)
        elif isinstance(value, (set, frozenset)):
            parts += value


# Caches of a module's generated code: reading the code or running the module fills them.
_CODE_CACHES = ("_generated", "_forward_fn")


def _pass_visible_state(module: GraphModule) -> List[Any]:
    """What a pass may change in ``module``, as a list to compare by identity: the module's and
    the graph's attributes (submodules, parameters, buffers, ``meta``, the code generator, the
    count of node edits, ...) and each node's name, type and ``meta``. The count
    (``Graph._edits``) covers node insertions, erasures, moves and new ops, targets or arguments."""
    graph = module.graph
    state: List[Any] = []
    _add_attributes(state, module, _CODE_CACHES)
    _add_attributes(state, graph, ())
    for node in graph.nodes:
        state += (node, node.name, node.type)
        _add_items(state, node.meta)
    return state


def _untouched(module: GraphModule, converted: GraphModule, before: List[Any]) -> bool:
    """Whether the passes left ``converted`` (Dynamo's graph as fxkit saw it) exactly as it was.

    Fast path of the backend: then Dynamo's own GraphModule goes to the compiler, and the
    conversion back is skipped; any difference found by identity, even a renamed node or a new
    ``meta`` entry, takes the conversion. Bench compile-transformer: 0.96x Inductor alone with the
    conversion back, 1.0x without it (the backend's own time drops from 4 ms to 1.3 ms of 200 ms).
    """
    if module is not converted:
        return False
    after = _pass_visible_state(module)
    return len(after) == len(before) and all(new is old for new, old in zip(after, before))


def _resolve_compiler(compiler: Union[str, Callable[..., Any]]) -> Callable[..., Any]:
    if callable(compiler):
        return compiler
    if compiler == "eager":
        return lambda module, example_inputs: module.forward
    from torch._dynamo import lookup_backend

    return lookup_backend(compiler)


def backend(*passes: Any, compiler: Union[str, Callable[..., Any]] = "inductor") -> Callable[..., Any]:
    """A ``torch.compile`` backend running fxkit passes on each graph Dynamo captures.

    Each graph arrives as an fxkit GraphModule; ``passes`` (functions ``gm -> gm | None``, fxkit
    ``PassBase`` objects or a ``PassManager``) run in order, then the result is converted back and
    handed to ``compiler``: ``"inductor"``, ``"eager"``, another registered backend name, or any
    backend callable ``(gm, example_inputs) -> callable``. When the passes changed nothing, the
    compiler gets Dynamo's own GraphModule (the conversion back would be an exact copy).
    """
    for one_pass in passes:
        if not callable(one_pass):
            raise TypeError(f"backend() passes must be callable, got {type(one_pass).__name__}")
    resolved = _resolve_compiler(compiler) if callable(compiler) or compiler == "eager" else None

    def fxkit_backend(gm: torch.nn.Module, example_inputs: List[Any]) -> Callable[..., Any]:
        module = converted = from_torch_fx(gm)
        before = _pass_visible_state(converted) if _FAST_PATH.enabled() else None
        for one_pass in passes:
            module = _run_pass(one_pass, module)
        module.graph.lint()
        if before is not None and _untouched(module, converted, before):
            back = gm
        else:
            back = to_torch_fx(module)
        return (resolved or _resolve_compiler(compiler))(back, example_inputs)

    fxkit_backend.__name__ = "fxkit_backend"
    return fxkit_backend


# --------------------------------------------------------------------------- torch.export


def export(
    captured: Any,
    args: Tuple[Any, ...] = (),
    kwargs: Optional[Dict[str, Any]] = None,
    **export_options: Any,
) -> Any:
    """``torch.export.export`` of an fxkit GraphModule or capture result (its torch.fx twin).

    For models torch.export cannot take directly but fxkit can capture. A capture's guards on
    tensor values (a branch taken on ``x.sum() > 0``, an ``int(t)``) would stop torch.export at
    the data-dependent ``bool()``; they are exported as ``torch._assert_async`` checks instead, so
    the deployed program still refuses inputs that take another path. ``export_options``
    (``dynamic_shapes``, ``strict``, ...) go to ``torch.export.export`` unchanged.
    """
    import torch.export

    module = _exportable(captured)
    registered = _register_object_types(module.graph, (args, kwargs or {}))
    try:
        return torch.export.export(module, tuple(args), kwargs, **export_options)
    except BaseException:
        for cls in registered:
            pytree._deregister_pytree_node(cls)
        raise


def _object_types(graph: Graph, inputs: Any) -> List[type]:
    """Classes of the objects a captured module takes or returns that torch's pytree does not know."""
    from .guards import build_object

    found: Dict[type, None] = {}
    for node in graph.nodes:
        if node.op == "call_function" and node.target is build_object:
            found[node.args[0]] = None
    for _, part in _structure.walk(inputs):
        if not isinstance(part, (torch.Tensor, tuple, list, dict)) and _structure.has_attributes(part):
            found[type(part)] = None
    return [cls for cls in found if cls not in pytree.SUPPORTED_NODES]


def _register_object_types(graph: Graph, inputs: Any) -> List[type]:
    """Make the objects of a capture's boundary (a ``DynamicCache`` and its layers) pytree nodes.

    torch.export only passes pytrees in and out. These classes are flattened by their attributes,
    as capture flattens them: attributes holding tensors are children, the rest is kept in the
    spec. The registration stays after a successful export, because the exported program rebuilds
    its outputs through it; transformers' own exporters register caches the same way.
    """
    registered = _object_types(graph, inputs)
    for cls in registered:
        pytree.register_pytree_node(
            cls,
            _flatten_object,
            functools.partial(_unflatten_object, cls),
            serialized_type_name=f"{cls.__module__}.{cls.__qualname__}",
            flatten_with_keys_fn=_flatten_object_with_keys,
        )
    return registered


def _holds_tensor(value: Any) -> bool:
    return any(isinstance(part, torch.Tensor) for _, part in _structure.walk(value))


def _flatten_object(obj: Any) -> Tuple[List[Any], Any]:
    state = vars(obj)
    children = [key for key, value in state.items() if _holds_tensor(value)]
    fixed = tuple((key, value) for key, value in state.items() if key not in children)
    return [state[key] for key in children], (tuple(children), fixed)


def _flatten_object_with_keys(obj: Any) -> Tuple[List[Tuple[Any, Any]], Any]:
    values, context = _flatten_object(obj)
    return [(pytree.GetAttrKey(key), value) for key, value in zip(context[0], values)], context


def _unflatten_object(cls: type, values: Any, context: Any) -> Any:
    from .guards import build_object

    children, fixed = context
    return build_object(cls, {**dict(fixed), **dict(zip(children, values))})


def _exportable(captured: Any) -> GraphModule:
    """A copy of the module to export, sharing its state, with tensor guards made export-safe.

    It stays an fxkit GraphModule on purpose: torch.export calls a torch.fx GraphModule with its
    inputs already flattened into the placeholders, which breaks keyword inputs and defaults; a
    plain module is traced through its ``forward`` like the original model.
    """
    module = getattr(captured, "graph_module", captured)
    module = _foreign.convert(module)
    if not isinstance(module, GraphModule):
        raise TypeError(
            f"export takes an fxkit GraphModule, capture result or torch.fx GraphModule, got {type(captured).__name__}"
        )
    graph = copy.deepcopy(module.graph)
    _lower_tensor_guards(graph)
    exportable = GraphModule(module, graph, type(module).__name__)
    _share_state(module, exportable)
    return exportable


def _lower_tensor_guards(graph: Graph) -> None:
    """Point the capture guards of ``graph`` (edited in place) at export-safe checks."""
    from .guards import guard_bool, guard_float, guard_int

    exportable = {
        guard_bool: _exportable_guard(guard_bool, lambda value: value.bool()),
        guard_int: _exportable_guard(guard_int, lambda value: value.trunc()),
        guard_float: _exportable_guard(guard_float, lambda value: value),
    }
    for node in graph.nodes:
        if node.op == "call_function" and node.target in exportable:
            node.target = exportable[node.target]


def _exportable_guard(
    guard: Callable[..., None], convert: Callable[[torch.Tensor], torch.Tensor]
) -> Callable[..., None]:
    """``guard`` for Python values; for a one-element tensor an asynchronous check of the same condition."""

    def check(value: Any, expected: Any, message: str) -> None:
        if isinstance(value, torch.Tensor) and value.numel() == 1:
            torch._assert_async(torch.eq(convert(value).reshape(()), expected), message)
        else:
            guard(value, expected, message)

    check.__name__ = check.__qualname__ = guard.__name__ + "_for_export"
    check.__module__ = __name__
    return check


# --------------------------------------------------------------------------- torch.fx.wrap


def torch_fx_wrapped_functions() -> List[Tuple[Dict[str, Any], str]]:
    """The ``(module globals, name)`` pairs registered with ``torch.fx.wrap``, without importing torch.fx.

    torch.fx keeps them keyed by ``(id(globals), name)`` in ``torch.fx._symbolic_trace``; when
    nobody has imported torch.fx there are none.
    """
    registry_module = sys.modules.get("torch.fx._symbolic_trace")
    registry = getattr(registry_module, "_wrapped_fns_to_patch", None)
    if not isinstance(registry, dict):
        return []
    return [(globals_dict, name) for (_, name), globals_dict in list(registry.items())]


def torch_fx_wrapped_methods() -> List[Tuple[type, str]]:
    """The ``(class, method name)`` pairs in torch.fx's registry of methods to record as
    ``call_method`` nodes while tracing, without importing torch.fx (none if nobody imported it)."""
    registry_module = sys.modules.get("torch.fx._symbolic_trace")
    registry = getattr(registry_module, "_wrapped_methods_to_patch", None)
    if not isinstance(registry, list):
        return []
    return [
        (owner, name) for owner, name in list(registry) if isinstance(owner, type) and isinstance(name, str)
    ]


def torch_fx_side_effectful_functions() -> Optional[Collection[Any]]:
    """torch.fx's registry of callables whose calls dead code elimination keeps (``has_side_effect``
    adds to it; torch's own modules register theirs), or None when torch.fx was not imported."""
    registry = getattr(sys.modules.get("torch.fx.node"), "_side_effectful_functions", None)
    return registry if isinstance(registry, (set, frozenset, dict)) else None


# --------------------------------------------------------------------------- symbolic shapes


def symbolic_fake_mode(allow_non_fake_inputs: bool = False) -> Any:
    """A ``FakeTensorMode`` over a fresh ``ShapeEnv``: tensors it fakes get symbolic sizes.

    The shape environment lives under ``torch.fx``, which is why this helper is here.
    """
    from torch._subclasses.fake_tensor import FakeTensorMode
    from torch.fx.experimental.symbolic_shapes import ShapeEnv

    return FakeTensorMode(
        allow_non_fake_inputs=allow_non_fake_inputs, shape_env=ShapeEnv(), static_shapes=False
    )


def torch_shape_module(name: str) -> ModuleType:
    """torch's dynamic-shape module ``torch.fx.experimental.<name>`` (``symbolic_shapes`` or
    ``sym_node``), imported on first use.

    Symbolic sizes (``ShapeEnv``, ``SymNode``) are torch's own machinery, shared by Dynamo, export
    and fake tensors, and it lives under ``torch.fx``; ``fxkit.experimental.symbolic_shapes`` and
    ``fxkit.experimental.sym_node`` hand out its names through here rather than keep a second copy.
    """
    if name not in _SHAPE_MODULES:
        raise ValueError(f"no torch shape module {name!r}; there are {', '.join(sorted(_SHAPE_MODULES))}")
    return importlib.import_module(f"torch.fx.experimental.{name}")


_SHAPE_MODULES = frozenset({"symbolic_shapes", "sym_node"})


def sym_node_class() -> type:
    """torch's class of the nodes behind ``torch.SymInt``/``SymFloat``/``SymBool`` (it lives
    under ``torch.fx``); make_fx's symbolic mode records arithmetic on sizes through it."""
    from torch.fx.experimental.sym_node import SymNode

    return SymNode


def symbolic_fake_tensor(mode: Any, tensor: torch.Tensor, index: int) -> torch.Tensor:
    """``tensor`` as a fake tensor of ``mode`` whose sizes are symbols of the ``index``-th input.

    The symbols' source is ``input<index>``, so equal inputs get equally named symbols on every
    trace (sizes that are equal in the example share one symbol: the environment's duck shaping).
    """
    from torch._dynamo.source import ConstantSource

    return mode.from_tensor(tensor, source=ConstantSource(f"input{index}"))


def symbolic_int(mode: Any, value: int, index: int) -> Any:
    """``value`` as a symbol of ``mode``'s shape environment (0 and 1 stay plain ints)."""
    from torch._dynamo.source import ConstantSource

    env = mode.shape_env
    source = ConstantSource(f"input{index}")
    symbol = env.create_symbol(value, source, positive=True if value > 0 else None)
    return env.create_symintnode(symbol, hint=value, source=source)


def unbacked_bindings(mode: Any, result: Any) -> Any:
    """Where in ``result`` the data-dependent size symbols an operator just made can be read.

    ``{symbol: key path}`` for the symbols ``mode``'s shape environment created since the last call,
    or None when there are none.
    """
    from torch.fx.experimental.symbolic_shapes import compute_unbacked_bindings

    return compute_unbacked_bindings(mode.shape_env, result)
