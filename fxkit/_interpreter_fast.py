"""The Interpreter's fast path: the same results as ``Interpreter.run`` with less work per node.

``Interpreter.run`` (the definition) calls ``run_node`` per node, which maps the arguments with
``map_arg`` and dispatches on the op name through a method call. The Interpreter comes here only
when ``run_node``, ``fetch_args_kwargs_from_env`` and ``map_nodes_to_values`` are its own; per-op
methods a subclass overrides are still called for their nodes, with the arguments ``run_node``
would pass.

- An interpreter's first run (``_run_direct``) inlines ``run_node`` into the loop; in the usual
  case (nothing overridden, no module hooks, an empty environment) ``_run_common`` does it with
  fewer tests per node.
- Later runs (``_run_plan``) give every node a tiny generated function (code shared by all nodes
  with the same argument layout, the node's own values bound as defaults) that reads its inputs
  straight out of the environment and calls the target.

Measured on the 1000-node chain of ``benchmarks/bench_graph.py`` (CPU time per run, min of 30,
2-core machine under load): generated code of the GraphModule 2.9 ms, the compiled plan 3.8 ms,
the direct loop 5.8 ms, the plain loop 10.2 ms. A fresh ``Interpreter(gm).run(x)`` on the 54-node
ResNet / 102-node MLP of oneshot-small-resnet / -mlp costs fxkit itself (every submodule swapped
for an ``nn.Identity``) 58 / 125 us, down from 88 / 180 us before ``_run_common``, the cached
attrgetters and the class-level override checks.
With the real submodules (one torch thread, fresh trace and 10 runs per sample as the harness
does, best samples of each side) the speed-up over torch.fx went from 2.06x to 2.2x / 2.5x to 2.65x.
"""

from __future__ import annotations

import keyword
import types
import weakref
from operator import attrgetter
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import torch

from fxkit._atoms import SCALAR_TYPES
from fxkit._gc import collector_paused
from fxkit.node import Node, map_aggregate, map_arg

__all__ = ["run", "is_own"]

_OPCODES = ("placeholder", "get_attr", "call_function", "call_method", "call_module", "output")

# Per-node runner: takes the environment, returns the node's value.
_Runner = Callable[[Dict[Node, Any]], Any]
_Step = Tuple[Node, _Runner, Tuple[Node, ...]]


#: Runs an interpreter makes through the direct loop before its per-node runners are compiled.
#: Compiling costs about two direct runs, so a one-shot ``Interpreter(gm).run(x)`` must not pay
#: for it; from the second run on, the plan's overhead per node is about a third of the loop's.
COMPILE_AFTER_RUNS = 1


class _Plan:
    """The runners of one interpreter's nodes, valid while ``key`` (its handlers, its graph and the
    graph's edit count) is unchanged."""

    __slots__ = ("key", "steps", "output")

    def __init__(self, key: Tuple[Any, ...], steps: List[_Step], output: Optional[Node]) -> None:
        self.key = key
        self.steps = steps
        self.output = output


class _State:
    """What the fast path keeps on an interpreter between runs."""

    __slots__ = ("runs", "plan")

    def __init__(self) -> None:
        self.runs = 0
        self.plan: Optional[_Plan] = None


def run(interp: Any, env: Dict[Node, Any], own: Dict[str, Any]) -> Any:
    """Run ``interp``'s graph into ``env`` as ``Interpreter.run`` defines it; return the output value.

    ``own`` maps method names to Interpreter's own functions: methods of ``interp`` that are not
    these are overrides, called for their nodes.
    """
    state = interp._fast_state
    if state is None:
        state = interp._fast_state = _State()
    state.runs += 1
    if state.runs <= COMPILE_AFTER_RUNS:
        return _run_direct(interp, env, own)
    return _run_plan(interp, env, _current_plan(interp, own, state))


def is_own(interp: Any, name: str, own: Dict[str, Any]) -> bool:
    """Whether ``interp.<name>`` is Interpreter's own method (looked up on the class, not bound:
    the checks of a one-shot run went from 4.5 to 1.5 us)."""
    return name not in interp.__dict__ and getattr(type(interp), name, None) is own[name]


def _overrides(interp: Any, own: Dict[str, Any]) -> Dict[str, Any]:
    """The per-op methods ``interp`` overrides, bound."""
    return {op: getattr(interp, op) for op in _OPCODES if not is_own(interp, op, own)}


# Argument types passed through as they are (everything else but Nodes goes through map_arg).
_LEAVES = SCALAR_TYPES


def _load(args: Tuple[Any, ...], env: Dict[Node, Any]) -> Sequence[Any]:
    """``args`` with Nodes replaced by their values, as ``Interpreter.map_nodes_to_values`` does."""
    values = []
    for arg in args:
        kind = arg.__class__
        if kind is Node:
            values.append(env[arg])
        elif kind in _LEAVES:
            values.append(arg)
        else:
            return map_arg(args, env.__getitem__)  # type: ignore[return-value]
    return values


def _load_kwargs(kwargs: Dict[str, Any], env: Dict[Node, Any]) -> Dict[str, Any]:
    for arg in kwargs.values():
        kind = arg.__class__
        if kind is not Node and kind not in _LEAVES:
            return map_arg(kwargs, env.__getitem__)  # type: ignore[return-value]
    return {key: env[arg] if arg.__class__ is Node else arg for key, arg in kwargs.items()}


def _run_direct(interp: Any, env: Dict[Node, Any], own: Dict[str, Any]) -> Any:
    """``Interpreter.run_node``'s work inlined in the loop: no method call per node unless the
    subclass overrides that node's per-op method."""
    handlers = _overrides(interp, own)
    fetch_attr = interp.fetch_attr
    own_fetch = is_own(interp, "fetch_attr", own)
    plain_calls = _no_global_module_hooks()
    if not handlers and own_fetch and plain_calls and not env and interp.garbage_collect_values:
        return _run_common(interp, env)
    if own_fetch:
        fetch_attr = _attribute_fetcher(interp)
    collect = interp.garbage_collect_values
    frees = interp.user_to_last_uses if collect else {}
    direct = _forward_of if plain_calls else _itself
    skip = bool(env)
    get = env.__getitem__
    output_value = None
    node = None
    try:
        for node in interp.graph.nodes:
            if skip and node in env:
                continue
            op = node._op
            if op in handlers or op == "placeholder":
                # Exactly what Interpreter.run_node passes: map_arg's containers.
                method = handlers.get(op) or interp.placeholder
                value = method(node._target, map_arg(node._args, get), map_arg(node._kwargs, get))
            else:
                args = node._args
                # Node._inputs is the args tuple itself when the arguments are exactly the inputs.
                args = tuple(map(get, args)) if node._inputs is args else _load(args, env)
                kwargs = node._kwargs
                if kwargs:
                    kwargs = _load_kwargs(kwargs, env)
                if op == "call_function":
                    value = node._target(*args, **kwargs)
                elif op == "call_module":
                    value = direct(fetch_attr(node._target))(*args, **kwargs)
                elif op == "call_method":
                    value = getattr(args[0], node._target)(*args[1:], **kwargs)
                elif op == "get_attr":
                    value = fetch_attr(node._target)
                elif op == "output":
                    value = args[0]
                else:
                    value = getattr(interp, op)(node._target, tuple(args), kwargs)
            env[node] = value
            if op == "output":
                output_value = value
            elif collect and not node.users:
                del env[node]  # nothing reads it
            if collect:
                dead = frees.get(node)
                if dead:
                    for done in dead:
                        del env[done]
    except Exception as error:
        if node is not None:
            interp._explain_failure(error, node)
        raise
    return output_value


def _run_common(interp: Any, env: Dict[Node, Any]) -> Any:
    """``_run_direct`` for the usual case, with its per-node tests dropped: no per-op method or
    ``fetch_attr`` overridden, nothing in ``env`` yet, values freed, no module hooks anywhere.

    Submodules come from a cached attrgetter and their ``forward`` is called directly (the checks
    of ``_forward_of`` inlined). One-shot runs of the small zoo ResNet / MLP with every submodule
    an ``nn.Identity`` (fxkit's own cost alone): 69 -> 62 us / 148 -> 139 us, and 62 -> 57 us /
    136 -> 121 us with one-input nodes' arguments built without ``tuple(map(...))``.
    """
    root = interp.module
    getters = _GETTERS
    frees = interp.user_to_last_uses
    get = env.__getitem__
    output_value = None
    node = None
    try:
        for node in interp.graph.nodes:
            op = node._op
            if op == "placeholder":
                value = interp.placeholder(node._target, map_arg(node._args, get), map_arg(node._kwargs, get))
            else:
                args = node._args
                if node._inputs is not args:
                    args = _load(args, env)
                elif len(args) == 1:  # most nodes: (env[x],) costs a third of tuple(map(...))
                    args = (env[args[0]],)
                else:
                    args = tuple(map(get, args))
                kwargs = node._kwargs
                if kwargs:
                    kwargs = _load_kwargs(kwargs, env)
                if op == "call_module":
                    target = node._target
                    try:
                        module = (getters.get(target) or _getter(target))(root)
                    except AttributeError:
                        module = interp.fetch_attr(target)  # raises, naming the missing part
                    try:
                        hooks = module.__dict__
                        plain = not (
                            hooks["_forward_hooks"]
                            or hooks["_forward_pre_hooks"]
                            or hooks["_backward_hooks"]
                            or hooks["_backward_pre_hooks"]
                            or hooks.get("_compiled_call_impl") is not None
                        )
                    except (AttributeError, KeyError):  # no hook tables: called as it is
                        plain = False
                    if plain:
                        cls = type(module)
                        if cls.__call__ is _CALL and cls._call_impl is _CALL_IMPL:
                            module = module.forward
                    value = module(*args, **kwargs) if kwargs else module(*args)
                elif op == "call_function":
                    value = node._target(*args, **kwargs) if kwargs else node._target(*args)
                elif op == "call_method":
                    value = getattr(args[0], node._target)(*args[1:], **kwargs)
                elif op == "get_attr":
                    value = interp.fetch_attr(node._target)
                elif op == "output":
                    output_value = env[node] = value = args[0]
                else:
                    value = getattr(interp, op)(node._target, tuple(args), kwargs)
            if op != "output" and node.users:  # a value nothing reads is dropped at once
                env[node] = value
            dead = frees.get(node)
            if dead:
                for done in dead:
                    del env[done]
    except Exception as error:
        if node is not None:
            interp._explain_failure(error, node)
        raise
    return output_value


# Calling a submodule's forward instead of the module skips nn.Module.__call__'s two frames (about
# 1.6 us a call, ~7% of a one-shot run of the small zoo ResNet, oneshot-small-resnet). Only when the
# call would do nothing else: no hooks, no compiled call, no trace or JIT trace running.
def _no_global_module_hooks() -> bool:
    return not (
        _torch_module._global_forward_hooks
        or _torch_module._global_forward_pre_hooks
        or _torch_module._global_backward_hooks
        or _torch_module._global_backward_pre_hooks
        or torch._C._get_tracing_state()
        or _tracer_running()
    )


def _tracer_running() -> bool:
    # Imported on first use so that importing the interpreter does not import the tracer; the
    # import statement itself was a third of this check's 2.3 us per run.
    global _tracer_running
    from fxkit.tracer import _active_tracer

    def running() -> bool:
        return _active_tracer() is not None

    _tracer_running = running
    return running()


_torch_module = torch.nn.modules.module
_CALL, _CALL_IMPL = torch.nn.Module.__call__, torch.nn.Module._call_impl


def _forward_of(module: Any) -> Any:
    # The instance dict read directly (no attribute lookups through the class): 0.64 -> 0.2 us a
    # submodule, 45 per run of oneshot-small-resnet. A module whose dict lacks a hook table (built
    # without Module.__init__, or no nn.Module at all) is called as it is.
    try:
        hooks = module.__dict__
        if (
            hooks["_forward_hooks"]
            or hooks["_forward_pre_hooks"]
            or hooks["_backward_hooks"]
            or hooks["_backward_pre_hooks"]
            or hooks.get("_compiled_call_impl") is not None
        ):
            return module
    except (AttributeError, KeyError):
        return module
    cls = type(module)
    if cls.__call__ is not _CALL or cls._call_impl is not _CALL_IMPL:
        return module
    return module.forward


def _itself(module: Any) -> Any:
    return module


# One attrgetter per distinct dotted target, kept across interpreters: it depends on the string
# alone (the objects are looked up afresh on every call, so swapped submodules are seen).
# Building the getter was half of each fetch (0.54 -> 0.27 us for ``layer1.0.conv1``).
_GETTERS: Dict[str, Callable[[Any], Any]] = {}
_GETTER_LIMIT = 4096


def _getter(target: str) -> Callable[[Any], Any]:
    getter = _GETTERS.get(target)
    if getter is None:
        getter = attrgetter(target)
        if len(_GETTERS) >= _GETTER_LIMIT:
            _GETTERS.clear()
        _GETTERS[target] = getter
    return getter


def _attribute_fetcher(interp: Any) -> Callable[[str], Any]:
    """``Interpreter.fetch_attr`` without its method call (one frame less per call_module)."""
    module = interp.module
    slow = interp.fetch_attr
    getters = _GETTERS

    def fetch(target: str) -> Any:
        try:
            getter = getters.get(target) or _getter(target)
            return getter(module)
        except AttributeError:
            return slow(target)  # raises, naming the missing part

    return fetch


def _run_plan(interp: Any, env: Dict[Node, Any], plan: _Plan) -> Any:
    node: Optional[Node] = None
    output_value = None
    try:
        if env:
            output = plan.output
            for node, runner, dead in plan.steps:
                if node not in env:
                    env[node] = runner(env)
                    if node is output:
                        output_value = env[node]
                for done in dead:
                    env.pop(done, None)
        else:
            for node, runner, dead in plan.steps:
                env[node] = runner(env)
                for done in dead:
                    del env[done]
            if plan.output is not None:
                output_value = env[plan.output]
    except Exception as error:
        if node is not None:
            interp._explain_failure(error, node)
        raise
    return output_value


def _handler_key(interp: Any) -> Tuple[Any, ...]:
    key: List[Any] = []
    for op in _OPCODES + ("fetch_attr",):
        bound = getattr(interp, op)
        key.append(getattr(bound, "__func__", bound))
    key.append(interp.graph)
    key.append(getattr(interp.graph, "_edits", None))  # an edited graph gets a new plan
    key.append(interp.garbage_collect_values)
    key.append(id(interp.user_to_last_uses))
    return tuple(key)


def _current_plan(interp: Any, own: Dict[str, Any], state: _State) -> _Plan:
    key = _handler_key(interp)
    plan = state.plan
    if plan is not None and plan.key == key:
        return plan
    overridden = _overridden_handlers(interp, own)
    collect = interp.garbage_collect_values
    frees = interp.user_to_last_uses
    no_frees: Tuple[Node, ...] = ()
    steps: List[_Step] = []
    output: Optional[Node] = None
    # Building allocates many small objects and no cycles; a full collection triggered
    # half-way through a big graph would cost more than the build itself.
    with collector_paused():
        for node in interp.graph.nodes:
            dead = no_frees
            if node._op == "output":
                output = node
            if collect:
                # Inputs this node reads last, and its own value when nothing reads it.
                used_last = frees.get(node)
                dead = tuple(used_last) if used_last else no_frees
                if not node.users and node._op != "output":
                    dead = (node,) + dead
            steps.append((node, _build_runner(node, overridden), dead))
    plan = _Plan(key, steps, output)
    state.plan = plan
    return plan


def _weak_method(interp: Any, name: str) -> Callable[..., Any]:
    """``interp.<name>`` looked up at call time through a weak reference: the plan cached on the
    interpreter must not keep the interpreter alive (no reference cycle, freed promptly)."""
    owner = weakref.ref(interp)

    def call(*args: Any) -> Any:
        return getattr(owner(), name)(*args)

    call.__name__ = name
    return call


def _overridden_handlers(interp: Any, own: Dict[str, Any]) -> Dict[str, Any]:
    """Per-op methods that must be called (placeholder always is: it reads args_iter)."""
    handlers = {}
    for op in _OPCODES:
        if not is_own(interp, op, own):
            handlers[op] = _weak_method(interp, op)
    handlers.setdefault("placeholder", _weak_method(interp, "placeholder"))
    handlers["fetch_attr"] = _weak_method(interp, "fetch_attr")
    return handlers


class _Renderer:
    """Turns a node's arguments into a Python expression over numbered slots.

    Every Node becomes ``env[sK]`` and every other leaf a plain slot ``sK``, so two nodes with the
    same argument structure produce the same source text and share one compiled template.
    """

    def __init__(self) -> None:
        self.slots: List[Any] = []

    def slot(self, value: Any) -> str:
        self.slots.append(value)
        return f"s{len(self.slots) - 1}"

    def value(self, arg: Any) -> str:
        kind = arg.__class__
        if kind is Node or isinstance(arg, Node):
            self.slots.append(arg)
            return f"env[s{len(self.slots) - 1}]"
        if kind in _FROZEN_LEAVES or _is_frozen(arg):
            self.slots.append(arg)
            return f"s{len(self.slots) - 1}"
        if isinstance(arg, tuple) and not hasattr(arg, "_fields"):
            return "(" + "".join(self.value(item) + ", " for item in arg) + ")"
        if isinstance(arg, list):
            return "[" + ", ".join(self.value(item) for item in arg) + "]"
        if _is_plain_dict(arg) and all(type(key) is str for key in arg):
            return "{" + ", ".join(f"{key!r}: {self.value(item)}" for key, item in arg.items()) + "}"
        if type(arg) is slice:
            return f"slice({self.value(arg.start)}, {self.value(arg.stop)}, {self.value(arg.step)})"
        if _contains_node(arg):
            # Containers we do not spell out (named tuples, odd dicts): map them at run time.
            return f"{self.slot(_mapper(arg))}(env)"
        return self.slot(arg)

    def call_args(self, args: Sequence[Any], kwargs: Dict[str, Any]) -> str:
        """Arguments spelled as in a call: ``a, b, key=c``."""
        parts = [self.value(arg) for arg in args]
        odd_keys: Dict[str, Any] = {}
        for key, arg in kwargs.items():
            if key.isidentifier() and not keyword.iskeyword(key):
                parts.append(f"{key}={self.value(arg)}")
            else:
                odd_keys[key] = arg
        if odd_keys:
            parts.append("**" + self.value(odd_keys))
        return ", ".join(parts)

    def packed(self, args: Sequence[Any], kwargs: Dict[str, Any]) -> str:
        """Arguments as the ``(args_tuple, kwargs_dict)`` pair the per-op methods take."""
        return f"{self.value(tuple(args))}, {self.value(dict(kwargs))}"


def _is_plain_dict(arg: Any) -> bool:
    # Node.kwargs may be an immutable dict type; it is rebuilt as a plain dict like map_arg does.
    return type(arg) is dict or (isinstance(arg, dict) and type(arg).__name__ == "immutable_dict")


_FROZEN_LEAVES = tuple(SCALAR_TYPES)


def _is_frozen(arg: Any) -> bool:
    """Immutable and free of Nodes: safe to pass the very same object on every run."""
    if type(arg) is tuple:
        return all(_is_frozen(item) for item in arg)
    return isinstance(arg, _FROZEN_LEAVES) and not isinstance(arg, Node)


def _contains_node(arg: Any) -> bool:
    found = []
    map_aggregate(arg, lambda leaf: found.append(leaf) if isinstance(leaf, Node) else None)
    return bool(found)


def _mapper(arg: Any) -> Callable[[Dict[Node, Any]], Any]:
    def load(env: Dict[Node, Any]) -> Any:
        return map_arg(arg, env.__getitem__)

    return load


# Compiled templates ``def run(env, s0=..., s1=...): return <expression>``, one per distinct
# expression. A node's runner is a new function object sharing the template's code, with the
# node's slot values as its defaults: one function and one tuple per node, read by LOAD_FAST.
_TEMPLATES: Dict[Any, types.CodeType] = {}
_TEMPLATE_LIMIT = 4096


def _template(key: Any, expression: str, slot_count: int) -> types.CodeType:
    code = _TEMPLATES.get(key)
    if code is None:
        parameters = "".join(f", s{i}=None" for i in range(slot_count))
        source = f"def run(env{parameters}):\n    return {expression}\n"
        namespace: Dict[str, Any] = {}
        exec(compile(source, f"<fxkit interpreter step: {expression[:60]}>", "exec"), namespace)
        code = namespace["run"].__code__
        if len(_TEMPLATES) < _TEMPLATE_LIMIT:
            _TEMPLATES[key] = code
    return code


def _compile_runner(expression: str, slots: List[Any]) -> _Runner:
    """``lambda env: <expression>`` with ``s0..sN`` bound to ``slots``."""
    return types.FunctionType(
        _template(expression, expression, len(slots)), _RUNNER_GLOBALS, "run", tuple(slots)
    )


_RUNNER_GLOBALS: Dict[str, Any] = {"__builtins__": __builtins__, "slice": slice, "getattr": getattr}


_LEAF_CLASSES = frozenset(_FROZEN_LEAVES)


def _simple_runner(op: str, target: Any, args: Tuple[Any, ...], kwargs: Dict[str, Any]) -> Optional[_Runner]:
    """The runner for the common case (args and kwargs are Nodes or plain constants), built
    from a template keyed by the argument layout alone, without rendering any source.

    Returns None for anything else; the general renderer handles it.
    """
    values: List[Any] = [target]
    layout: List[Any] = [op]
    if op == "call_method":
        if not args or not isinstance(target, str) or not target.isidentifier() or keyword.iskeyword(target):
            return None
        layout.append(target)
    for arg in args:
        kind = arg.__class__
        if kind is Node:
            layout.append(True)
        elif kind in _LEAF_CLASSES:
            layout.append(False)
        else:
            return None
        values.append(arg)
    for key, arg in kwargs.items():
        kind = arg.__class__
        if kind is Node:
            layout.append((key, True))
        elif kind in _LEAF_CLASSES:
            layout.append((key, False))
        else:
            return None
        values.append(arg)
    signature = tuple(layout)
    code = _TEMPLATES.get(signature)
    if code is None:
        expression = _simple_expression(signature)
        if expression is None:
            return None
        code = _template(signature, expression, len(values))
    return types.FunctionType(code, _RUNNER_GLOBALS, "run", tuple(values))


def _simple_expression(signature: Tuple[Any, ...]) -> Optional[str]:
    op = signature[0]
    layout = signature[2:] if op == "call_method" else signature[1:]
    parts = []
    for index, entry in enumerate(layout, start=1):
        name = f"s{index}"
        if isinstance(entry, tuple):
            key, is_node = entry
            if not key.isidentifier() or keyword.iskeyword(key):
                return None
            parts.append(f"{key}=env[{name}]" if is_node else f"{key}={name}")
        else:
            parts.append(f"env[{name}]" if entry else name)
    if op == "call_method":
        return f"{parts[0]}.{signature[1]}({', '.join(parts[1:])})"
    return f"s0({', '.join(parts)})"


def _build_runner(node: Node, overridden: Dict[str, Any]) -> _Runner:
    """The function computing ``node``'s value from the environment."""
    op = node._op
    target = node._target
    handler = overridden.get(op)
    if handler is None and (op == "call_function" or op == "call_method"):
        runner = _simple_runner(op, target, node._args, node._kwargs)
        if runner is not None:
            return runner
    if op not in _OPCODES:
        raise RuntimeError(f"Node {node.name} has unknown op {op!r}; expected one of {_OPCODES}")
    render = _Renderer()
    if handler is not None:
        expression = f"{render.slot(handler)}({render.slot(target)}, {render.packed(node.args, node.kwargs)})"
    elif op == "call_function":
        expression = f"{render.slot(target)}({render.call_args(node.args, node.kwargs)})"
    elif op == "call_method":
        if not node.args:
            raise RuntimeError(f"call_method node {node.name} has no self argument in args")
        receiver = render.value(node.args[0])
        rest = render.call_args(node.args[1:], node.kwargs)
        if isinstance(target, str) and target.isidentifier() and not keyword.iskeyword(target):
            expression = f"{receiver}.{target}({rest})"
        else:
            expression = f"getattr({receiver}, {render.slot(target)})({rest})"
    elif op == "call_module":
        fetch = render.slot(overridden["fetch_attr"])
        expression = f"{fetch}({render.slot(target)})({render.call_args(node.args, node.kwargs)})"
    elif op == "get_attr":
        expression = f"{render.slot(overridden['fetch_attr'])}({render.slot(target)})"
    else:  # output
        expression = render.value(node.args[0]) if node.args else "None"
    return _compile_runner(expression, render.slots)
