"""``make_fx``: record the ATen operations a function runs into an fxkit graph.

Where ``symbolic_trace`` records the Python-level calls of a program, ``make_fx`` runs the program
on example inputs and records every ATen operator that reaches the dispatcher, below autograd, so
composite operations arrive already decomposed (``F.silu`` stays ``aten.silu``, ``torch.split``
becomes ``aten.split.Tensor`` and ``getitem`` nodes). The recording is a
:class:`~torch.utils._python_dispatch.TorchDispatchMode`: each operator runs on the real (or fake)
values, and a node is added for it whose arguments are the nodes that produced its tensor inputs.

Tensors the program did not receive as inputs (module parameters, buffers, constants built with
``torch.tensor``) become ``get_attr`` nodes named ``_param_constant<i>`` / ``_tensor_constant<i>``
on the returned module, as in torch.fx.

``tracing_mode="symbolic"`` gives the inputs symbolic sizes from torch's shape environment (reached
through :mod:`fxkit.interop`). A size used as an operator argument becomes a
``torch.ops.aten.sym_size.int(input, dim)`` node, and integer arithmetic on sizes in the program
(``x.shape[0] * 2``) becomes ``operator`` nodes; the graph then runs on inputs of other sizes.
"""

from __future__ import annotations

import contextlib
import inspect
import math
import operator
import threading
from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional, Tuple

import torch
import torch.utils._pytree as pytree
from torch.utils._python_dispatch import TorchDispatchMode

from ..codegen import _PyTreeCodeGen, _PyTreeInfo
from ..graph import Graph
from ..graph_module import GraphModule
from ..node import Node
from ..passes.shape_prop import _extract_tensor_metadata
from ..tracer import _PATCHES

__all__ = ["make_fx"]

_TRACING_MODES = ("real", "fake", "symbolic")

# Questions about a tensor's metadata that fake tensors answer through the dispatcher; they compute
# nothing and are never part of the program.
_METADATA_QUERIES = frozenset({torch.ops.prim.device.default})
_COMPOSITE = torch._C.DispatchKey.CompositeImplicitAutograd

# Arithmetic on symbolic sizes that a symbolic trace records, by the method of torch's symbolic
# node class that computes it -> the function the graph calls. Recording at the node class sees
# arithmetic done in C++ (e.g. ``chunk`` computing its split size) as well as in Python.
_SIZE_RECORDER = threading.local()  # .current: the symbolic trace running on this thread

_SYM_NODE_METHODS = {
    "add": operator.add, "sub": operator.sub, "mul": operator.mul, "mod": operator.mod,
    "floordiv": operator.floordiv, "int_floordiv": operator.floordiv,
    "truediv": operator.truediv, "int_truediv": operator.truediv, "float_truediv": operator.truediv,
    "pow": operator.pow, "pow_by_natural": operator.pow, "float_pow": operator.pow,
    "neg": operator.neg, "pos": operator.pos, "abs": operator.abs,
    "lshift": operator.lshift, "rshift": operator.rshift,
    "eq": operator.eq, "ne": operator.ne, "lt": operator.lt, "le": operator.le, "gt": operator.gt, "ge": operator.ge,
    "and_": operator.and_, "or_": operator.or_,
    "sym_float": torch.sym_float, "sym_max": torch.sym_max, "sym_min": torch.sym_min, "sym_not": torch.sym_not,
    "sym_ite": torch.sym_ite, "ceil": math.ceil, "floor": math.floor, "trunc": math.trunc, "round": round,
}  # fmt: skip


_SYMBOLIC = (torch.SymInt, torch.SymFloat, torch.SymBool)


def _constant_of(symbolic: Any) -> Any:
    """The plain number a symbolic node stands for, or None when it is a symbol."""
    if symbolic.is_int():
        return symbolic.maybe_as_int()
    if symbolic.is_float():
        return symbolic.maybe_as_float()
    return symbolic.maybe_as_bool()


def _as_value(symbolic: Any) -> Any:
    """The ``torch.SymInt``/``SymFloat``/``SymBool`` around one of torch's symbolic nodes."""
    if symbolic.is_int():
        return torch.SymInt(symbolic)
    if symbolic.is_float():
        return torch.SymFloat(symbolic)
    return torch.SymBool(symbolic)


def _size_recording(function: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """The registry's replacement maker for one method of torch's symbolic node class."""

    def make(method: Callable[..., Any]) -> Callable[..., Any]:
        def record(this: Any, *others: Any) -> Any:
            recorder = getattr(_SIZE_RECORDER, "current", None)
            if recorder is None or recorder.running_kernel:
                return method(this, *others)
            recorder.running_kernel += 1  # what the method computes inside is not the program
            try:
                result = method(this, *others)
            finally:
                recorder.running_kernel -= 1
            recorder._record_size_arithmetic(function, (this, *others), result)
            return result

        return record

    return make


# Sizes rebuilt from their symbolic expression: sympy class name -> operator.
_REBUILT_OPERATORS = {
    "Add": operator.add, "Mul": operator.mul, "FloorDiv": operator.floordiv, "PythonMod": operator.mod, "Mod": operator.mod,
}  # fmt: skip


# fmt: off
def make_fx(
    f: Callable[..., Any],
    decomposition_table: Optional[Mapping[torch._ops.OpOverload, Callable[..., Any]]] = None,
    tracing_mode: str = "real", _allow_non_fake_inputs: bool = False,
    *, pre_dispatch: bool = False, record_module_stack: bool = False, _allow_fake_constant: bool = False,
    _error_on_data_dependent_ops: bool = True, record_stack_traces: bool = False,
    proxy_module_inputs: bool = False, _disable_torch_fn_metadata_mode: bool = False,
) -> Callable[..., GraphModule]:
    # fmt: on
    """Return a function that runs ``f`` on its arguments and returns the ATen graph it ran.

    ``tracing_mode="real"`` runs the operators on the given tensors; ``"fake"`` runs them on fake
    tensors of the same shapes (no data is read or allocated); ``"symbolic"`` on fake tensors whose
    sizes are symbols, so the graph holds for other sizes too. ``decomposition_table`` maps
    operators to Python functions that are traced in their place.
    """
    if tracing_mode not in _TRACING_MODES:
        raise AssertionError(f"Unexpected tracing type: {tracing_mode}")
    if pre_dispatch:
        raise NotImplementedError(
            "make_fx(pre_dispatch=True) records above autograd, which fxkit's dispatch-mode recorder"
            " does not see; leave pre_dispatch=False"
        )
    table = dict(decomposition_table or {})

    def wrapped(*args: Any) -> GraphModule:
        recorder = _Recorder(f, table, tracing_mode, _allow_non_fake_inputs, _error_on_data_dependent_ops)
        return recorder.trace(args)

    return wrapped


def _argument_names(f: Callable[..., Any], count: int) -> List[str]:
    """The names of ``f``'s positional parameters, or ``arg<i>`` where they cannot be named."""
    if isinstance(f, torch.nn.Module):
        return [f"arg{i}" for i in range(count)]
    try:
        parameters = list(inspect.signature(f).parameters.values())
    except (TypeError, ValueError):
        return [f"arg{i}" for i in range(count)]
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    if any(p.kind is inspect.Parameter.VAR_POSITIONAL for p in parameters):
        return [f"arg{i}" for i in range(count)]
    names = [p.name for p in parameters if p.kind in positional]
    if len(names) != count:
        raise RuntimeError(f"Tracing expected {len(names)} arguments but got {count} concrete arguments")
    return names


class _Recorder(TorchDispatchMode):
    """Adds one node per ATen call to a graph while the traced function runs."""

    def __init__(
        self,
        f: Callable[..., Any],
        decompositions: Dict[Any, Callable[..., Any]],
        tracing_mode: str,
        allow_non_fake_inputs: bool,
        error_on_data_dependent_ops: bool = True,
    ) -> None:
        super().__init__()
        self.f = f
        self.decompositions = decompositions
        self.tracing_mode = tracing_mode
        self.allow_non_fake_inputs = allow_non_fake_inputs
        self.error_on_data_dependent_ops = error_on_data_dependent_ops
        self.graph = Graph()
        self.root = torch.nn.Module()
        # id(tensor) -> node; the tensors themselves are kept alive so that ids stay unique.
        self.nodes: Dict[int, Node] = {}
        self.alive: List[torch.Tensor] = []
        self.constants: Dict[int, Node] = {}
        self.counts = {"_param_constant": 0, "_tensor_constant": 0}
        self.fake_mode: Any = None
        self.fresh_factory_result: Optional[torch.Tensor] = None
        self.meta_mode: Any = None
        # Symbolic sizes: id(SymNode) -> node for sizes the graph computed, and for each size
        # symbol the (tensor node, dim) that can read it, the first tensor seen first.
        self.sym_nodes: Dict[int, Node] = {}
        self.sym_alive: List[Any] = []
        self.size_sources: Dict[Any, Tuple[Node, int]] = {}
        # id(SymNode) -> (reader operator, its arguments) for values a traced tensor holds.
        self.read_sources: Dict[int, Tuple[Any, Tuple[Any, ...]]] = {}
        self.aliases: Dict[int, Any] = {}  # id(SymNode) -> the SymNode it equals
        self.sym_created: List[Node] = []
        self.sym_by_expr: Dict[Any, Node] = {}
        self.running_kernel = 0
        self.inputs_seen = 0

    # ------------------------------------------------------------------ the trace

    def trace(self, args: Tuple[Any, ...]) -> GraphModule:
        from torch._subclasses.fake_tensor import FakeTensorMode

        # Node meta carries fake tensors in both modes, as torch.fx's does.
        self.meta_mode = FakeTensorMode(allow_non_fake_inputs=True)
        if self.tracing_mode == "fake":
            self.fake_mode = FakeTensorMode(allow_non_fake_inputs=self.allow_non_fake_inputs)
        elif self.tracing_mode == "symbolic":
            from .. import interop

            self.fake_mode = interop.symbolic_fake_mode(self.allow_non_fake_inputs)
        names = _argument_names(self.f, len(args))
        flat_args, in_spec = pytree.tree_flatten(args)
        structured = any(not isinstance(leaf_spec, pytree.LeafSpec) for leaf_spec in _child_specs(in_spec))
        call_args: List[Any] = []
        for name, arg in zip(names, args):
            leaves, spec = pytree.tree_flatten(arg)
            values = [self._placeholder(name, leaf) for leaf in leaves]
            call_args.append(pytree.tree_unflatten(values, spec))
        if self.fake_mode is not None:
            with self.fake_mode, self, self._recording_size_arithmetic():
                result = self.f(*call_args)
        elif self.sym_alive:  # symbolic numbers passed in: their arithmetic is part of the program
            with self, self._recording_size_arithmetic():
                result = self.f(*call_args)
        else:
            with self:
                result = self.f(*call_args)
        flat_result, out_spec = pytree.tree_flatten(result)
        outputs = [self._output_arg(value) for value in flat_result]
        if structured:
            self.graph._codegen = _PyTreeCodeGen(_PyTreeInfo(names, in_spec, out_spec))
            self.graph.output(tuple(outputs) if len(outputs) != 1 else outputs[0])
        else:
            self.graph.output(pytree.tree_unflatten(outputs, out_spec))
        self._drop_unused_sizes()
        del flat_args
        module = GraphModule(self.root, self.graph)
        if self.tracing_mode == "symbolic":
            module.shape_env = self.fake_mode.shape_env  # as torch.fx's symbolic traces carry it
        return module

    def _placeholder(self, name: str, value: Any) -> Any:
        node = self.graph.placeholder(f"{name}_1")
        node.target = node.name  # a repeated candidate was renamed; the target follows
        if isinstance(value, torch.Tensor):
            if self.tracing_mode == "symbolic":
                from .. import interop

                value = interop.symbolic_fake_tensor(self.fake_mode, value, self.inputs_seen)
            elif self.fake_mode is not None:
                value = self.fake_mode.from_tensor(value)
            self._bind(value, node)
        else:
            if self.tracing_mode == "symbolic" and type(value) is int:
                from .. import interop

                value = interop.symbolic_int(self.fake_mode, value, self.inputs_seen)
            if isinstance(value, _SYMBOLIC):  # made above, or passed in already symbolic
                node.meta["val"] = value
                self.sym_nodes[id(value.node)] = node
                self.sym_alive.append(value)
        self.inputs_seen += 1
        return value

    def _output_arg(self, value: Any) -> Any:
        if isinstance(value, torch.Tensor):
            return self._node_of(value)
        if isinstance(value, _SYMBOLIC):
            return self._sym_node_of(value)
        return value

    # ------------------------------------------------------------------ symbolic sizes

    def _sym_node_of(self, value: Any) -> Any:
        """The node computing a symbolic value (a ``torch.SymInt``/``SymFloat``/``SymBool`` or
        torch's node behind one): recorded arithmetic, a read of a traced tensor's size, or the
        plain number when the value is a constant."""
        symbolic = value.node if isinstance(value, _SYMBOLIC) else value
        node = self.sym_nodes.get(id(symbolic))
        if node is not None:
            return node
        constant = _constant_of(symbolic)
        if constant is not None:
            return constant
        alias = self.aliases.get(id(symbolic))
        if alias is not None:
            return self._sym_node_of(alias)
        source = self.read_sources.get(id(symbolic))
        if source is not None:
            node = self.graph.call_function(*source)
            self._remember_size(symbolic, node)
            return node
        node = self.sym_by_expr.get(symbolic.expr)
        if node is None:
            node = self._rebuild(symbolic.expr)[0]
        self.sym_nodes[id(symbolic)] = node
        self.sym_alive.append(symbolic)
        return node

    def _rebuild(self, expr: Any) -> Tuple[Any, Any]:
        """A node and value for a size computed out of sight (in C++ kernels), from its expression.

        A symbol is read from the first traced tensor that has it as a size; sums, products,
        floor divisions and remainders of those become ``operator`` nodes.
        """
        known = self.sym_by_expr.get(expr)
        if known is not None:
            return known, known.meta["val"]
        if expr.is_Integer:
            return int(expr), int(expr)
        source = self.size_sources.get(expr)
        if source is not None:
            tensor_node, dim = source
            value = tensor_node.meta["val"].shape[dim]
            node = self.graph.call_function(torch.ops.aten.sym_size.int, (tensor_node, dim))
        else:
            function = _REBUILT_OPERATORS.get(type(expr).__name__)
            if function is None:
                raise RuntimeError(
                    f"make_fx(tracing_mode='symbolic'): the size {expr} was computed where fxkit does not"
                    " record and cannot be rebuilt from the sizes of traced tensors; compute it from the"
                    " inputs' sizes in the program"
                )
            # Symbols before constants, as programs usually write them (``n * 2``, ``n + 1``).
            operands = sorted(expr.args, key=lambda arg: arg.is_Number) if expr.is_commutative else expr.args
            node, value = self._rebuild(operands[0])
            for operand in operands[1:]:
                other_node, other_value = self._rebuild(operand)
                self.running_kernel += 1  # computing the value is not part of the program
                try:
                    value = function(value, other_value)
                finally:
                    self.running_kernel -= 1
                node = self.graph.call_function(function, (node, other_node))
                self._remember_size(value, node)
            return node, value
        self._remember_size(value, node)
        return node, value

    def _remember_size(self, size: Any, node: Node) -> None:
        symbolic = size.node if isinstance(size, _SYMBOLIC) else size
        node.meta["val"] = size if isinstance(size, _SYMBOLIC) else _as_value(symbolic)
        self.sym_by_expr.setdefault(symbolic.expr, node)
        self.sym_nodes[id(symbolic)] = node
        self.sym_alive.append(symbolic)
        self.sym_created.append(node)

    def _record_size_arithmetic(self, function: Any, operands: Tuple[Any, ...], result: Any) -> None:
        if not hasattr(result, "expr") or _constant_of(result) is not None:
            return
        for operand in operands:
            same_kind = hasattr(operand, "expr") and operand.is_int() == result.is_int()
            if same_kind and _constant_of(operand) is None and operand.expr == result.expr:
                # ``n * 1``, ``n + 0``: still ``n``, read only if the program uses it
                self.aliases[id(result)] = operand
                self.sym_alive.append(result)
                return
        args = tuple(self._sym_node_of(a) if hasattr(a, "expr") else a for a in operands)
        self._remember_size(result, self.graph.call_function(function, args))

    @contextlib.contextmanager
    def _recording_size_arithmetic(self) -> Iterator[None]:
        """Record arithmetic on symbolic sizes while the program runs.

        Size arithmetic does not reach the dispatcher, so the methods of torch's symbolic node
        class are wrapped for the duration of the trace (through the patch registry: shared,
        counted, thread-safe) and restored afterwards. The wrappers record only for the trace
        running on their own thread.
        """
        if self.tracing_mode != "symbolic" and not self.sym_alive:
            yield
            return
        import contextlib

        from torch._dispatch.python import enable_python_dispatcher

        from .. import interop

        node_class = interop.sym_node_class()
        keys = []
        previous = getattr(_SIZE_RECORDER, "current", None)
        _SIZE_RECORDER.current = self
        try:
            for name, function in _SYM_NODE_METHODS.items():
                if name in node_class.__dict__:
                    keys.append(_PATCHES.acquire(node_class, name, _size_recording(function)))
            # Composite operators then decompose in Python (torch._decomp), where sizes stay
            # symbolic; real tensors (symbolic numbers passed in) keep their kernels.
            symbolic = self.tracing_mode == "symbolic"
            with enable_python_dispatcher() if symbolic else contextlib.nullcontext():
                yield
        finally:
            _PATCHES.release_all(keys)
            _SIZE_RECORDER.current = previous

    def _drop_unused_sizes(self) -> None:
        """Remove size nodes nothing uses (sizes the program computed but did not pass on)."""
        for node in reversed(self.sym_created):
            if not node.users:
                self.graph.erase_node(node)

    # ------------------------------------------------------------------ tensors and nodes

    def _bind(self, tensor: torch.Tensor, node: Node) -> None:
        self.nodes[id(tensor)] = node
        self.alive.append(tensor)
        self.running_kernel += 1  # describing the tensor computes sizes the program did not
        try:
            node.meta["val"] = self._fake_copy(tensor)
            if node.op != "get_attr":
                node.meta["tensor_meta"] = self._tensor_meta(tensor)
            if self.tracing_mode == "symbolic":
                self._remember_sources(tensor, node)
        finally:
            self.running_kernel -= 1

    def _remember_sources(self, tensor: torch.Tensor, node: Node) -> None:
        """Note where each symbolic size, stride, element count and storage offset of a traced
        tensor can be read, so the graph reads it there when the program uses it. The first
        tensor that holds a value answers for it."""
        for dim, size in enumerate(tensor.shape):
            if isinstance(size, torch.SymInt):
                self.size_sources.setdefault(size.node.expr, (node, dim))
                self.read_sources.setdefault(id(size.node), (torch.ops.aten.sym_size.int, (node, dim)))
        if tensor.layout is not torch.strided or tensor.is_nested:
            return
        for dim, stride in enumerate(tensor.stride()):
            if isinstance(stride, torch.SymInt):
                self.read_sources.setdefault(id(stride.node), (torch.ops.aten.sym_stride.int, (node, dim)))
        for value, reader in (
            (tensor.numel(), torch.ops.aten.sym_numel.default),
            (tensor.storage_offset(), torch.ops.aten.sym_storage_offset.default),
        ):
            if isinstance(value, torch.SymInt):
                self.read_sources.setdefault(id(value.node), (reader, (node,)))

    def _tensor_meta(self, tensor: torch.Tensor) -> Any:
        if self.tracing_mode != "symbolic":
            return _extract_tensor_metadata(tensor)
        # Asking for the layout must not narrow the sizes the graph is valid for.
        with self.fake_mode.shape_env.suppress_guards():
            return _extract_tensor_metadata(tensor)

    def _fake_copy(self, tensor: torch.Tensor) -> torch.Tensor:
        from torch._subclasses.fake_tensor import FakeTensor

        if isinstance(tensor, FakeTensor):
            return tensor
        with torch.utils._python_dispatch._disable_current_modes():
            return self.meta_mode.from_tensor(tensor)

    def _node_of(self, tensor: torch.Tensor) -> Node:
        node = self.nodes.get(id(tensor))
        if node is not None:
            return node
        return self._constant(tensor)

    def _constant(self, tensor: torch.Tensor) -> Node:
        """A ``get_attr`` node for a tensor the function did not receive as an input."""
        original = getattr(tensor, "constant", None) if self.fake_mode is not None else None
        stored = original if isinstance(original, torch.Tensor) else tensor
        prefix = "_param_constant" if isinstance(stored, torch.nn.Parameter) else "_tensor_constant"
        attr = f"{prefix}{self.counts[prefix]}"
        self.counts[prefix] += 1
        if isinstance(stored, torch.nn.Parameter):
            self.root.register_parameter(attr, stored)
        else:
            self.root.register_buffer(attr, stored)
        node = self.graph.get_attr(attr)
        self._bind(tensor, node)
        return node

    # ------------------------------------------------------------------ recording

    def __torch_dispatch__(
        self, func: Any, types: Any, args: Tuple[Any, ...] = (), kwargs: Any = None
    ) -> Any:
        kwargs = kwargs or {}
        decomposition = self.decompositions.get(func)
        if decomposition is not None:
            with self:
                return decomposition(*args, **kwargs)
        if func in _METADATA_QUERIES:
            return self._run(func, args, kwargs)
        pending, self.fresh_factory_result = self.fresh_factory_result, None
        if func is torch.ops.aten.detach.default and pending is not None and args and args[0] is pending:
            # The dispatcher detaches the tensor a factory function returned through a mode before
            # the program sees it: bookkeeping, not part of the program.
            detached = self._run(func, args, kwargs)
            self.nodes[id(detached)] = self.nodes[id(pending)]
            self.alive.append(detached)
            return detached
        if torch._C._dispatch_has_kernel_for_dispatch_key(func.name(), _COMPOSITE):
            # Composite operators called from inside a decomposition skipped autograd's own
            # decomposition; run theirs so that only the operators they are made of are recorded.
            with self:
                decomposed = func.decompose(*args, **kwargs)
            if decomposed is not NotImplemented:
                return decomposed
        if func is torch.ops.aten._local_scalar_dense.default and self.error_on_data_dependent_ops:
            # The graph would bake in this one input's value: a wrong answer for every other input.
            traced = [a for a in args if isinstance(a, torch.Tensor) and id(a) in self.nodes]
            if traced:
                raise RuntimeError(
                    "It appears that you're trying to get value out of a tracing tensor with"
                    f" {func} - erroring out! The value of {self.nodes[id(traced[0])].name} decides"
                    " what the program does (.item(), int(), bool() or data-dependent control flow),"
                    " so the graph would only be right for this example. Compute with tensors instead,"
                    " or pass _error_on_data_dependent_ops=False to bake in the example's value."
                )
        if func is torch.ops.aten.lift_fresh.default:
            # torch.tensor(...) lifts its constant; record an explicit copy so the graph owns it.
            func = torch.ops.aten.lift_fresh_copy.default
        node_args, node_kwargs = pytree.tree_map_only(torch.Tensor, self._node_of, (args, kwargs))
        node_args, node_kwargs = pytree.tree_map_only(_SYMBOLIC, self._sym_node_of, (node_args, node_kwargs))
        result = self._run(func, args, kwargs)
        node = self.graph.create_node(
            "call_function", func, tuple(node_args), dict(node_kwargs), name=func.overloadpacket.__name__
        )
        self._record_result(node, result)
        if self.tracing_mode == "symbolic":
            from .. import interop

            bindings = interop.unbacked_bindings(self.fake_mode, result)
            if bindings:
                node.meta["unbacked_bindings"] = bindings
        if isinstance(result, torch.Tensor) and _is_factory(func, args, kwargs):
            self.fresh_factory_result = result
        return result

    def _run(self, func: Any, args: Tuple[Any, ...], kwargs: Dict[str, Any]) -> Any:
        """Run an operator's kernel; size arithmetic inside it is not part of the program."""
        self.running_kernel += 1
        try:
            return func(*args, **kwargs)
        finally:
            self.running_kernel -= 1

    def _record_result(self, node: Node, result: Any) -> None:
        if isinstance(result, torch.Tensor):
            self._bind(result, node)
        elif isinstance(result, (tuple, list)):
            values = [self._fake_copy(r) if isinstance(r, torch.Tensor) else r for r in result]
            node.meta["val"] = tuple(values) if isinstance(result, tuple) else values
            for index, item in enumerate(result):
                if isinstance(item, torch.Tensor):
                    self._bind(item, self.graph.call_function(operator.getitem, (node, index)))
        else:
            node.meta["val"] = result


def _is_factory(func: Any, args: Tuple[Any, ...], kwargs: Dict[str, Any]) -> bool:
    """Whether ``func`` creates a new tensor the way factory functions do: no tensor inputs
    (``torch.zeros``), or a ``pin_memory`` option (``torch.ones_like``, which reads its input's
    shape only). The dispatcher detaches what these return."""
    if not any(isinstance(leaf, torch.Tensor) for leaf in pytree.tree_leaves((args, kwargs))):
        return True
    return any(argument.name == "pin_memory" for argument in func._schema.arguments)


def _child_specs(spec: pytree.TreeSpec) -> List[pytree.TreeSpec]:
    """The specs of the top-level arguments (the children of the args tuple's spec)."""
    return [spec.child(index) for index in range(spec.num_children)]
