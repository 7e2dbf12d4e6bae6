"""Run a Graph node by node (Interpreter) or re-trace it into a new Graph (Transformer).

The definition is the plain loop of ``Interpreter.run``: one environment dict from Node to value,
each node's value computed by ``run_node`` (which reads its inputs from the environment and calls
the per-op method), and each value dropped right after its last use. Subclasses change what a node
does by overriding ``run_node`` or a per-op method, as with torch.fx.

``fxkit._interpreter_fast`` gives the same results faster when a subclass overrides nothing it
would bypass; ``use_fast_path(False)`` turns it off for the calling thread.
"""

from __future__ import annotations

import inspect
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

import torch

from fxkit import _foreign, _interpreter_fast, _paths
from fxkit import traceback as _node_meta
from fxkit._fast_path import FastPathSwitch
from fxkit.codegen import last_uses
from fxkit.node import Argument, Node, Target, map_aggregate, map_arg

__all__ = ["Interpreter", "Transformer"]

_FAST_PATH = FastPathSwitch("Interpreter")

#: ``with use_fast_path(False): ...`` runs Interpreters in this thread through the plain loop only.
use_fast_path = _FAST_PATH.use

_OPCODES = ("placeholder", "get_attr", "call_function", "call_method", "call_module", "output")

# Methods the fast path does not call: a subclass overriding any of them gets the plain loop.
_BYPASSED_BY_FAST_PATH = ("run_node", "fetch_args_kwargs_from_env", "map_nodes_to_values")


def _default_method(interp: "Interpreter", name: str) -> bool:
    """True when ``interp.<name>`` is Interpreter's own implementation: not overridden by a
    subclass or on the instance, and not replaced on Interpreter itself since its definition."""
    return _interpreter_fast.is_own(interp, name, _OWN_METHODS)


class Interpreter:
    """Executes a GraphModule one node at a time.

    Subclass it and override ``run_node`` or one of the per-op methods (``placeholder``,
    ``get_attr``, ``call_function``, ``call_method``, ``call_module``, ``output``) to observe or
    change what each node does. ``run(*args)`` returns what the module would return.

    With ``garbage_collect_values=True`` every value leaves ``self.env`` right after the last node
    that reads it (a value nothing reads right after it is computed), so memory peaks no higher
    than when calling the module itself.
    """

    def __init__(
        self,
        module: torch.nn.Module,
        garbage_collect_values: bool = True,
        graph: Optional[Any] = None,
    ) -> None:
        # A torch.fx module or graph runs on its fxkit twin (read only: the original is not edited).
        module = _foreign.convert(module)
        if graph is not None:
            graph = _foreign.convert(graph)
        self.module = module
        self._submodules: Optional[Dict[str, torch.nn.Module]] = None
        self.graph = graph if graph is not None else module.graph
        self.env: Dict[Node, Any] = {}
        self.name = "Interpreter"
        self.garbage_collect_values = garbage_collect_values
        self.extra_traceback = True
        self.args_iter: Iterator[Any] = iter(())
        self.user_to_last_uses: Dict[Node, List[Node]] = {}
        if garbage_collect_values:
            self.user_to_last_uses = last_uses(self.graph.nodes)
        # Whatever the fast path keeps between runs (its per-node plan), owned by that module.
        self._fast_state: Any = None

    @property
    def submodules(self) -> Dict[str, torch.nn.Module]:
        """``dict(self.module.named_modules())``, taken on first use.

        Running does not need it (``fetch_attr`` follows the live module), and building it is
        about a quarter of a one-shot ``Interpreter(gm).run(x)`` on a small ResNet."""
        if self._submodules is None:
            self._submodules = dict(self.module.named_modules())
        return self._submodules

    @submodules.setter
    def submodules(self, value: Dict[str, torch.nn.Module]) -> None:
        self._submodules = value

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
        if _FAST_PATH.enabled() and self._fast_path_applies():
            output_value = _interpreter_fast.run(self, env, _OWN_METHODS)
        else:
            output_value = self._run_nodes(env)
        if enable_io_processing:
            return self.graph.process_outputs(output_value)
        return output_value

    def _run_nodes(self, env: Dict[Node, Any]) -> Any:
        """The definition: run every node not already in ``env`` in order, freeing as we go."""
        collect = self.garbage_collect_values
        frees = self.user_to_last_uses
        output_value = None
        for node in self.graph.nodes:
            if node in env:
                continue
            try:
                env[node] = self.run_node(node)
            except Exception as error:
                self._explain_failure(error, node)
                raise
            if node.op == "output":
                output_value = env[node]
            elif collect and not node.users:
                del env[node]  # nothing reads it
            if collect:
                for done in frees.get(node, ()):
                    del env[done]
        return output_value

    def _fast_path_applies(self) -> bool:
        if _node_meta.should_preserve_node_meta:  # the plain loop sets the current meta per node
            return False
        return all(_default_method(self, name) for name in _BYPASSED_BY_FAST_PATH)

    def _explain_failure(self, error: Exception, node: Node) -> None:
        """Name ``node`` (and its line of generated code) on ``error``, which the caller re-raises;
        an input missing from the environment becomes torch.fx's RuntimeError instead."""
        if not self.extra_traceback:
            return
        if isinstance(error, KeyError):
            missing = next((used for used in node.all_input_nodes if used not in self.env), None)
            if missing is not None:
                raise RuntimeError(
                    f"Node {node} referenced nonexistent value {missing}! "
                    "Run Graph.lint() to diagnose such issues"
                ) from error
        _add_node_note(error, node, self)

    def _check_arg_count(self, args: Sequence[Any], initial_env: Optional[Dict[Node, Any]]) -> None:
        if initial_env or not _default_method(self, "placeholder"):
            return
        placeholders = self.graph.find_nodes(op="placeholder", sort=False)
        if len(args) <= len(placeholders) or any(str(p.target).startswith("*") for p in placeholders):
            return
        names = ", ".join(str(p.target) for p in self.graph.find_nodes(op="placeholder"))
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
        """Run one node and return its value (its inputs must already be in ``self.env``).

        While ``fxkit.traceback.preserve_node_meta()`` is on, ``n.meta`` is the current meta
        during the call, so nodes traced from it inherit its provenance."""
        if _node_meta.should_preserve_node_meta and n.meta:
            with _node_meta.set_current_meta(n, f"Interpreter_{type(self).__name__}"):
                return self._run_node_in_meta(n)
        return self._run_node_in_meta(n)

    def _run_node_in_meta(self, n: Node) -> Any:
        args, kwargs = self.fetch_args_kwargs_from_env(n)
        assert isinstance(args, tuple)
        assert isinstance(kwargs, dict)
        return getattr(self, n.op)(n.target, args, kwargs)

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
        try:
            return _paths.resolve(self.module, target)
        except _paths.MissingAttribute as missing:
            raise RuntimeError(f"Node referenced nonexistent target {missing.missing}") from None

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


# Interpreter's methods as defined here: a method that is not one of these (subclass, instance
# attribute, or a later patch of Interpreter itself) is an override the fast path must call.
_OWN_METHODS: Dict[str, Any] = {
    name: Interpreter.__dict__[name] for name in _OPCODES + _BYPASSED_BY_FAST_PATH + ("fetch_attr",)
}


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


class Transformer(Interpreter):
    """Builds a new GraphModule by running the graph on Proxies.

    Each node's method receives Proxies instead of values, so whatever an override computes is
    recorded into the new graph; methods that are not overridden copy the node across.
    """

    def __init__(self, module: Any) -> None:
        super().__init__(module)
        from fxkit.graph import Graph

        self.new_graph = Graph()
        self.new_graph.set_codegen(self.module.graph._codegen)
        self.tracer = _transformer_tracer_class()(self.new_graph)
        self.tracer.root = self.module

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

    def transform(self) -> Any:
        """Run the transformation and return the new GraphModule."""
        from fxkit.graph_module import GraphModule
        from fxkit.proxy import Proxy

        with _node_meta.preserve_node_meta():
            result = super().run(enable_io_processing=False)
        if result is not None:

            def strip_proxy(value: Any) -> Any:
                return value.node if isinstance(value, Proxy) else value

            new_output = self.new_graph.output(map_aggregate(result, strip_proxy))
            old_outputs = [node for node in reversed(self.graph.nodes) if node.op == "output"]
            if old_outputs:  # the output node keeps all of its meta, as in torch.fx
                new_output.meta.update(old_outputs[0].meta)
        return GraphModule(self.module, self.new_graph)


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
