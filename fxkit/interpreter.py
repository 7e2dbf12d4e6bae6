"""Run a Graph node by node (Interpreter) or re-trace it into a new Graph (Transformer).

The loop follows JAX's ``eval_jaxpr``: one environment dict from Node to value, one short loop, and
each value dropped right after its last use. What makes it fast is that the work done per node on
every run is decided once per Interpreter: each node gets a tiny generated Python function (code
shared by all nodes with the same argument layout, the node's own values bound as defaults) that
reads its inputs straight out of the environment and calls the target. The per-op methods
(``call_function`` and friends) keep their torch.fx meaning: a subclass that overrides one of
them gets its override called for every node of that op.
"""

from __future__ import annotations

import inspect
import keyword
import types
import weakref
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import torch

from fxkit._gc import collector_paused
from fxkit.codegen import last_uses
from fxkit.node import Argument, Node, Target, map_aggregate, map_arg

__all__ = ["Interpreter", "Transformer"]

_OPCODES = ("placeholder", "get_attr", "call_function", "call_method", "call_module", "output")

# Per-node runner: takes the environment, returns the node's value.
_Runner = Callable[[Dict[Node, Any]], Any]


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


_FROZEN_LEAVES = (
    int,
    float,
    bool,
    str,
    complex,
    type(None),
    torch.dtype,
    torch.device,
    torch.memory_format,
    torch.layout,
)


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


def _weak_method(interp: "Interpreter", name: str) -> Callable[..., Any]:
    """``interp.<name>`` looked up at call time through a weak reference: the plan cached on the
    interpreter must not keep the interpreter alive (no reference cycle, freed promptly)."""
    owner = weakref.ref(interp)

    def call(*args: Any) -> Any:
        return getattr(owner(), name)(*args)

    call.__name__ = name
    return call


def _default_method(interp: "Interpreter", name: str) -> bool:
    """True when ``interp.<name>`` is Interpreter's own implementation (not overridden)."""
    bound = getattr(interp, name)
    return getattr(bound, "__func__", None) is getattr(Interpreter, name)


class Interpreter:
    """Executes a GraphModule one node at a time.

    Subclass it and override ``run_node`` or one of the per-op methods (``placeholder``,
    ``get_attr``, ``call_function``, ``call_method``, ``call_module``, ``output``) to observe or
    change what each node does. ``run(*args)`` returns what the module would return.

    With ``garbage_collect_values=True`` every value leaves ``self.env`` right after the last node
    that reads it, so memory peaks no higher than when calling the module itself.
    """

    def __init__(
        self,
        module: torch.nn.Module,
        garbage_collect_values: bool = True,
        graph: Optional[Any] = None,
    ) -> None:
        self.module = module
        self.submodules = dict(module.named_modules())
        self.graph = graph if graph is not None else module.graph
        self.env: Dict[Node, Any] = {}
        self.name = "Interpreter"
        self.garbage_collect_values = garbage_collect_values
        self.extra_traceback = True
        self.args_iter: Iterator[Any] = iter(())
        self.user_to_last_uses: Dict[Node, List[Node]] = {}
        if garbage_collect_values:
            self.user_to_last_uses = last_uses(list(self.graph.nodes))
        self._plan_key: Optional[Tuple[Any, ...]] = None
        self._plan: List[Tuple[Node, _Runner, Tuple[Node, ...]]] = []
        self._runners: Dict[Node, _Runner] = {}
        self._current_node: Optional[Node] = None

    # ----------------------------------------------------------------------------------------
    # Running

    def run(
        self,
        *args: Any,
        initial_env: Optional[Dict[Node, Any]] = None,
        enable_io_processing: bool = True,
    ) -> Any:
        """Run the graph on ``args`` and return its output.

        ``initial_env`` maps nodes to values already known; those nodes are not run again.
        With ``enable_io_processing`` the graph's codegen flattens inputs and rebuilds outputs
        (pytree calling conventions), as calling the GraphModule does.
        """
        self.env = env = initial_env if initial_env is not None else {}
        if enable_io_processing:
            args = self.graph.process_inputs(*args)
        self._check_arg_count(args, initial_env)
        self.args_iter = iter(args)

        custom_loop = not (
            _default_method(self, "run_node")
            and _default_method(self, "fetch_args_kwargs_from_env")
            and _default_method(self, "map_nodes_to_values")
        )
        node: Optional[Node] = None
        try:
            if custom_loop:
                output_value = self._run_with_run_node(env)
            else:
                plan = self._current_plan()
                if env:
                    for node, runner, dead in plan:
                        if node not in env:
                            env[node] = runner(env)
                        for done in dead:
                            env.pop(done, None)
                else:
                    for node, runner, dead in plan:
                        env[node] = runner(env)
                        for done in dead:
                            del env[done]
                output_value = env[node] if node is not None and node.op == "output" else None
        except Exception as error:
            failed = self._failed_node(node, custom_loop)
            if failed is None or not self.extra_traceback:
                raise
            missing = self._missing_input(failed)
            if missing is not None and isinstance(error, KeyError):
                raise RuntimeError(
                    f"Node {failed} referenced nonexistent value {missing}! "
                    "Run Graph.lint() to diagnose such issues"
                ) from error
            _add_node_note(error, failed, self)
            raise
        if enable_io_processing:
            return self.graph.process_outputs(output_value)
        return output_value

    def _run_with_run_node(self, env: Dict[Node, Any]) -> Any:
        """The plain loop, used when a subclass overrides run_node or argument fetching."""
        last_uses = self.user_to_last_uses if self.garbage_collect_values else {}
        output_value = None
        for node in self.graph.nodes:
            self._current_node = node
            if node in env:
                continue
            env[node] = self.run_node(node)
            for done in last_uses.get(node, ()):
                del env[done]
            if node.op == "output":
                output_value = env[node]
        self._current_node = None
        return output_value

    def _failed_node(self, loop_node: Optional[Node], custom_loop: bool) -> Optional[Node]:
        if custom_loop:
            return getattr(self, "_current_node", None)
        return loop_node

    def _missing_input(self, node: Node) -> Optional[Node]:
        for used in node.all_input_nodes:
            if used not in self.env:
                return used
        return None

    def _check_arg_count(self, args: Sequence[Any], initial_env: Optional[Dict[Node, Any]]) -> None:
        if initial_env or not _default_method(self, "placeholder"):
            return
        placeholders = list(self.graph.find_nodes(op="placeholder"))
        if any(str(p.target).startswith("*") for p in placeholders):
            return
        if len(args) > len(placeholders):
            names = ", ".join(str(p.target) for p in placeholders)
            raise TypeError(
                f"{self.name}.run expected at most {len(placeholders)} positional arguments "
                f"for the placeholders ({names}) but received {len(args)}"
            )

    def boxed_run(self, args_list: List[Any]) -> Any:
        """Run with the arguments in a list that is emptied first, so the caller holds no
        references and inputs can be freed as soon as the graph no longer needs them."""
        args_iter = iter(args_list)
        env: Dict[Node, Any] = {}
        for node in self.graph.nodes:
            if node.op != "placeholder":
                continue
            if str(node.target).startswith("*"):
                env[node] = list(args_iter)
                continue
            try:
                env[node] = next(args_iter)
            except StopIteration:
                expected = sum(1 for p in self.graph.nodes if p.op == "placeholder")
                raise RuntimeError(
                    f"{self.name}.boxed_run expected {expected} arguments for placeholders but "
                    f"received {len(args_list)} (missing arguments)"
                ) from None
        extra = sum(1 for _ in args_iter)
        if extra:
            expected = len(env)
            raise RuntimeError(
                f"{self.name}.boxed_run expected {expected} arguments for placeholders but "
                f"received {expected + extra} (extra arguments)"
            )
        args_list.clear()
        return self.run(initial_env=env)

    def run_node(self, n: Node) -> Any:
        """Run one node and return its value (its inputs must already be in ``self.env``)."""
        runner = self._runners.get(n)
        if runner is None or self._plan_key != self._handler_key():
            self._current_plan()
            runner = self._runners.get(n)
            if runner is None:
                runner = self._build_runner(n)
                self._runners[n] = runner
        return runner(self.env)

    # ----------------------------------------------------------------------------------------
    # The per-op methods: what each kind of node does.

    def placeholder(self, target: Target, args: Tuple[Argument, ...], kwargs: Dict[str, Any]) -> Any:
        """The next positional argument (``*args`` placeholders take all that are left)."""
        assert isinstance(target, str)
        if target.startswith("*"):
            return list(self.args_iter)
        try:
            return next(self.args_iter)
        except StopIteration:
            if args:
                return args[0]
            raise RuntimeError(
                f"Expected positional argument for parameter {target}, but one was not passed in!"
            ) from None

    def get_attr(self, target: Target, args: Tuple[Argument, ...], kwargs: Dict[str, Any]) -> Any:
        """The module attribute named by the dotted path ``target``."""
        assert isinstance(target, str)
        return self.fetch_attr(target)

    def call_function(self, target: Target, args: Tuple[Argument, ...], kwargs: Dict[str, Any]) -> Any:
        """``target(*args, **kwargs)``."""
        assert not isinstance(target, str)
        return target(*args, **kwargs)

    def call_method(self, target: Target, args: Tuple[Argument, ...], kwargs: Dict[str, Any]) -> Any:
        """``args[0].<target>(*args[1:], **kwargs)``."""
        self_obj, *rest = args
        assert isinstance(target, str)
        return getattr(self_obj, target)(*rest, **kwargs)

    def call_module(self, target: Target, args: Tuple[Argument, ...], kwargs: Dict[str, Any]) -> Any:
        """Call the submodule at the dotted path ``target``."""
        assert isinstance(target, str)
        submodule = self.fetch_attr(target)
        return submodule(*args, **kwargs)

    def output(self, target: Target, args: Tuple[Argument, ...], kwargs: Dict[str, Any]) -> Any:
        """The value the graph returns."""
        return args[0]

    # ----------------------------------------------------------------------------------------
    # Helpers

    def fetch_attr(self, target: str) -> Any:
        """Follow the dotted path ``target`` from ``self.module``."""
        owner: Any = self.module
        atoms = target.split(".")
        for index, atom in enumerate(atoms):
            try:
                owner = getattr(owner, atom)
            except AttributeError:
                raise RuntimeError(
                    f"Node referenced nonexistent target {'.'.join(atoms[: index + 1])}"
                ) from None
        return owner

    def fetch_args_kwargs_from_env(self, n: Node) -> Tuple[Tuple[Any, ...], Dict[str, Any]]:
        """``n.args`` and ``n.kwargs`` with every Node replaced by its value in ``self.env``."""
        args = self.map_nodes_to_values(n.args, n)
        assert isinstance(args, tuple)
        kwargs = self.map_nodes_to_values(n.kwargs, n)
        assert isinstance(kwargs, dict)
        return args, kwargs

    def map_nodes_to_values(self, args: Argument, n: Node) -> Argument:
        """``args`` with every Node replaced by its value in ``self.env``."""
        env = self.env

        def load(used: Node) -> Any:
            try:
                return env[used]
            except KeyError:
                raise RuntimeError(
                    f"Node {n} referenced nonexistent value {used}! Run Graph.lint() to diagnose such issues"
                ) from None

        return map_arg(args, load)

    # ----------------------------------------------------------------------------------------
    # The per-node plan

    def _handler_key(self) -> Tuple[Any, ...]:
        key = []
        for op in _OPCODES + ("fetch_attr",):
            bound = getattr(self, op)
            key.append(getattr(bound, "__func__", bound))
        key.append(self.graph)
        return tuple(key)

    def _current_plan(self) -> List[Tuple[Node, _Runner, Tuple[Node, ...]]]:
        key = self._handler_key()
        if key == self._plan_key:
            return self._plan
        overridden = self._overridden_handlers()
        collect = self.garbage_collect_values
        last_uses = self.user_to_last_uses
        no_frees: Tuple[Node, ...] = ()
        plan = []
        runners: Dict[Node, _Runner] = {}
        # Building allocates many small objects and no cycles; a full collection triggered
        # half-way through a big graph would cost more than the build itself.
        with collector_paused():
            for node in self.graph.nodes:
                runner = self._build_runner(node, overridden)
                runners[node] = runner
                dead = no_frees
                if collect:
                    # Inputs this node reads last, and its own value when nothing reads it.
                    used_last = last_uses.get(node)
                    dead = tuple(used_last) if used_last else no_frees
                    if not node.users and node._op != "output":
                        dead += (node,)
                plan.append((node, runner, dead))
        self._runners = runners
        self._plan = plan
        self._plan_key = key
        return plan

    def _overridden_handlers(self) -> Dict[str, Any]:
        """Bound per-op methods that must be called (placeholder always is: it reads args_iter)."""
        overridden = {op: _weak_method(self, op) for op in _OPCODES if not _default_method(self, op)}
        overridden.setdefault("placeholder", _weak_method(self, "placeholder"))
        overridden["fetch_attr"] = _weak_method(self, "fetch_attr")
        return overridden

    def _build_runner(self, node: Node, overridden: Optional[Dict[str, Any]] = None) -> _Runner:
        if overridden is None:
            overridden = self._overridden_handlers()
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
            expression = (
                f"{render.slot(handler)}({render.slot(target)}, {render.packed(node.args, node.kwargs)})"
            )
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


def _generated_line(interp: Interpreter, node: Node) -> Optional[Tuple[int, str]]:
    """Line number and text of ``node``'s statement in the code generated for its graph."""
    module = interp.module
    code = getattr(module, "code", None) if getattr(module, "graph", None) is interp.graph else None
    if code is None:
        try:
            code = interp.graph.python_code(root_module="self").src
        except Exception:
            return None
    lines = code.splitlines()
    if node.op == "output":
        wanted = ("return",)
    elif node.op == "placeholder":
        wanted = ("def ",)
    else:
        wanted = (f"{node.name} = ",)
    for number, text in enumerate(lines, start=1):
        if text.strip().startswith(wanted):
            return number, text.strip()
    return None


def _add_node_note(error: BaseException, node: Node, interp: Interpreter) -> None:
    note = f"While executing {node.format_node()}"
    located = _generated_line(interp, node)
    if located is not None:
        number, text = located
        note += f"\nGenerated code line {number}: {text}"
    if node.stack_trace:
        note += f"\nOriginal traceback:\n{node.stack_trace}"
    error.add_note(note)


# ---------------------------------------------------------------------------------------------
# Transformer

# Meta entries that describe where a node came from; new nodes created while running an old
# node inherit them so provenance survives the transformation.
_PROVENANCE_META = ("stack_trace", "nn_module_stack", "source_fn_stack", "torch_fn", "custom")


class Transformer(Interpreter):
    """Builds a new GraphModule by running the graph on Proxies.

    Each node's method receives Proxies instead of values, so whatever an override computes is
    recorded into the new graph; methods that are not overridden copy the node across.
    """

    def __init__(self, module: Any) -> None:
        super().__init__(module)
        from fxkit.graph import Graph

        self.new_graph = Graph()
        self.new_graph.set_codegen(module.graph._codegen)
        self.tracer = _transformer_tracer_class()(self.new_graph)
        self.tracer.root = module

    def placeholder(self, target: Target, args: Tuple[Argument, ...], kwargs: Dict[str, Any]) -> Any:
        """A placeholder in the new graph (keeping its default value), as a Proxy."""
        from fxkit.proxy import Proxy

        assert isinstance(target, str)
        default_value = next(iter(args)) if args else inspect.Signature.empty
        return Proxy(self.new_graph.placeholder(target, default_value=default_value), self.tracer)

    def get_attr(self, target: Target, args: Tuple[Argument, ...], kwargs: Dict[str, Any]) -> Any:
        """A get_attr node in the new graph, as a Proxy."""
        assert isinstance(target, str)
        return self.tracer.create_proxy("get_attr", target, args, kwargs)

    def call_module(self, target: Target, args: Tuple[Argument, ...], kwargs: Dict[str, Any]) -> Any:
        """A call_module node in the new graph, as a Proxy."""
        assert isinstance(target, str)
        submodule = self.fetch_attr(target)
        return self.tracer.call_module(submodule, submodule.forward, args, kwargs)

    def call_function(self, target: Target, args: Tuple[Argument, ...], kwargs: Dict[str, Any]) -> Any:
        """A call_function node in the new graph, as a Proxy."""
        return self.tracer.create_proxy("call_function", target, args, kwargs)

    def run_node(self, n: Node) -> Any:
        graph_nodes = self.new_graph.nodes
        count_before = len(graph_nodes)
        result = super().run_node(n)
        created = len(graph_nodes) - count_before
        if created > 0:
            provenance = {key: n.meta[key] for key in _PROVENANCE_META if key in n.meta}
            if provenance:
                for new_node in _last_nodes(self.new_graph, created):
                    if (
                        new_node.op == "placeholder"
                    ):  # inputs of the new graph carry no provenance, as in torch.fx
                        continue
                    for key, value in provenance.items():
                        new_node.meta.setdefault(key, value)
        return result

    def transform(self) -> Any:
        """Run the transformation and return the new GraphModule."""
        from fxkit.graph_module import GraphModule
        from fxkit.proxy import Proxy

        result = super().run(enable_io_processing=False)
        if result is not None:

            def strip_proxy(value: Any) -> Any:
                return value.node if isinstance(value, Proxy) else value

            new_output = self.new_graph.output(map_aggregate(result, strip_proxy))
            old_outputs = [node for node in reversed(self.graph.nodes) if node.op == "output"]
            if old_outputs:  # the output node keeps all of its meta, as in torch.fx
                new_output.meta.update(old_outputs[0].meta)
        return GraphModule(self.module, self.new_graph)


def _last_nodes(graph: Any, count: int) -> List[Node]:
    found: List[Node] = []
    for node in reversed(graph.nodes):
        if len(found) == count:
            break
        found.append(node)
    return found


_TRACER_CLASS: List[type] = []


def _transformer_tracer_class() -> type:
    """A Tracer that appends to a given graph and treats every module as a leaf (built lazily so
    importing the interpreter does not import the tracer)."""
    if not _TRACER_CLASS:
        from fxkit.tracer import Tracer

        class TransformerTracer(Tracer):
            def __init__(self, graph: Any) -> None:
                super().__init__()
                self.graph = graph
                self.tensor_attrs: Dict[Any, str] = {}

            def is_leaf_module(self, _module: torch.nn.Module, _qualified_name: str) -> bool:
                return True

        _TRACER_CLASS.append(TransformerTracer)
    return _TRACER_CLASS[0]
