"""Bind call arguments against operator signatures and rewrite them into a canonical (args, kwargs) form.

Torch builtins (``torch.sum``), ``torch.ops`` overloads and plain Python callables are supported. For
builtins the signatures come from the TorchScript schemas registered for the aten operator, so one
Python callable can have several overloads; a call is normalized only when exactly one overload
accepts it (or argument types pick one).
"""

from __future__ import annotations

import enum
import inspect
import keyword
import numbers
import types
import typing
import warnings
from typing import Any, Callable, Dict, List, NamedTuple, Optional, Tuple

import torch
from torch._jit_internal import boolean_dispatched
from torch._ops import OpOverload, OpOverloadPacket

from fxkit import _paths

__all__ = [
    "ArgsKwargsPair",
    "check_for_mutable_operation",
    "create_type_hint",
    "get_signature_for_torch_op",
    "normalize_function",
    "normalize_module",
    "type_matches",
]


class ArgsKwargsPair(NamedTuple):
    """Positional and keyword arguments of a call after normalization."""

    args: Tuple[Any, ...]
    kwargs: Dict[str, Any]


_POSITIONAL_ONLY = inspect.Parameter.POSITIONAL_ONLY
_POSITIONAL = inspect.Parameter.POSITIONAL_OR_KEYWORD
_KEYWORD = inspect.Parameter.KEYWORD_ONLY
_BY_POSITION = (_POSITIONAL_ONLY, _POSITIONAL)

# The random/uniform family names a parameter ``from``; as a Python keyword it can only be
# positional-only, yet these calls are still worth normalizing.
_RANDOM_RANGE_PARAMETERS = ["input", "from", "to", "generator"]

# TorchScript type variables (``t``, ``tVal`` ...) become one shared TypeVar per name.
_TYPE_VARIABLES: Dict[str, Any] = {}


def _type_variable(name: str) -> Any:
    found = _TYPE_VARIABLES.get(name)
    if found is None:
        found = _TYPE_VARIABLES[name] = typing.TypeVar(name)  # type: ignore[misc]
    return found


_LEAF_TYPES: Dict[str, Any] = {
    "TensorType": torch.Tensor,
    "IntType": int,
    "SymIntType": int,
    "BoolType": bool,
    "SymBoolType": bool,
    "FloatType": float,
    "ComplexType": complex,
    "StringType": str,
    "NumberType": numbers.Number,
    "DeviceObjType": torch.device,
    "LayoutType": torch.layout,
    "QSchemeType": torch.qscheme,
    "StorageType": torch.UntypedStorage,
    "NoneType": type(None),
    "AnyType": Any,
    "AnyEnumType": enum.Enum,
    "GeneratorType": typing.Generator,
}


def _python_type(jit_type: Any) -> Any:
    """The Python annotation that corresponds to a TorchScript schema type."""
    kind = jit_type.kind()
    leaf = _LEAF_TYPES.get(kind)
    if leaf is not None:
        return leaf
    inner = [_python_type(contained) for contained in jit_type.containedTypes()]
    if kind == "ListType":
        return List[inner[0]]  # type: ignore[valid-type]
    if kind == "OptionalType":
        return Optional[inner[0]]  # type: ignore[valid-type]
    if kind == "TupleType":
        return Tuple[tuple(inner)] if inner else Tuple[()]  # type: ignore[valid-type]
    if kind == "DictType":
        return Dict[inner[0], inner[1]]  # type: ignore[valid-type]
    if kind == "FutureType":
        return torch.jit.Future[inner[0]]  # type: ignore[index]
    if kind == "VarType":
        return _type_variable(jit_type.annotation_str)
    if kind == "ClassType":
        return _script_class(jit_type.annotation_str)
    # Scalar types, memory formats and similar enums travel as ints in Python.
    if jit_type.annotation_str == "int":
        return int
    return Any


# torch.fx's private name for the same conversion; code written for torch.fx imports it.
_torchscript_type_to_python_type = _python_type


def _script_class(qualified_name: str) -> Any:
    """Resolve ``__torch__.torch.classes.ns.Name`` to the registered TorchScript class object."""
    prefix = "__torch__."
    if not qualified_name.startswith(prefix):
        return Any
    path = qualified_name[len(prefix) :].partition(".")[2]  # after the leading "torch"
    try:
        return _paths.resolve(torch, path) if path else torch
    except (AttributeError, RuntimeError):  # torch.classes raises RuntimeError for unknown names
        return Any


def _parameter_name(schema_name: str) -> str:
    # The Python bindings call the first operand ``input``.
    return "input" if schema_name == "self" else schema_name


_SIGNATURE_CACHE: Dict[Tuple[str, str], inspect.Signature] = {}


def _schema_to_signature(schema: torch.FunctionSchema) -> inspect.Signature:
    """An ``inspect.Signature`` equivalent to one TorchScript operator schema (cached)."""
    cache_key = (schema.name, schema.overload_name)
    cached = _SIGNATURE_CACHE.get(cache_key)
    if cached is not None:
        return cached
    arguments = list(schema.arguments)
    # A Python keyword (``from``) is only a legal name for a positional-only parameter, and
    # positional-only parameters must come first, so everything up to it becomes positional-only.
    keyword_positions = [
        index for index, argument in enumerate(arguments) if keyword.iskeyword(argument.name)
    ]
    positional_only_until = keyword_positions[-1] if keyword_positions else -1
    parameters = []
    for index, argument in enumerate(arguments):
        if argument.kwarg_only:
            kind = _KEYWORD
        elif index <= positional_only_until:
            kind = _POSITIONAL_ONLY
        else:
            kind = _POSITIONAL
        default = argument.default_value if argument.has_default_value() else inspect.Parameter.empty
        parameters.append(
            inspect.Parameter(
                _parameter_name(argument.name), kind, default=default, annotation=_python_type(argument.type)
            )
        )
    result_types = [_python_type(returned.type) for returned in schema.returns]
    if not result_types:
        return_annotation: Any = None
    elif len(result_types) == 1:
        return_annotation = result_types[0]
    else:
        return_annotation = tuple(result_types)
    signature = inspect.Signature(parameters, return_annotation=return_annotation)
    _SIGNATURE_CACHE[cache_key] = signature
    return signature


def _nonzero_signatures() -> List[inspect.Signature]:
    # torch.nonzero takes a Python-only ``as_tuple`` flag that none of its aten schemas describe.
    operand = inspect.Parameter("self", _POSITIONAL, annotation=torch.Tensor)
    as_tuple = inspect.Parameter("as_tuple", _KEYWORD, annotation=bool)
    return [
        inspect.Signature([operand], return_annotation=None),
        inspect.Signature([operand, as_tuple], return_annotation=None),
    ]


_HAND_WRITTEN_SIGNATURES: Dict[Callable[..., Any], List[inspect.Signature]] = {
    torch.nonzero: _nonzero_signatures(),
}


def _schemas_for(op: Callable[..., Any]) -> Optional[List[torch.FunctionSchema]]:
    if isinstance(op, OpOverload):
        return [op._schema]
    if isinstance(op, OpOverloadPacket):
        return list(torch._C._jit_get_schemas_for_operator(op._qualified_op_name))
    aten_name = torch.jit._builtins._find_builtin(op)
    if aten_name is None:
        return None
    return list(torch._C._jit_get_schemas_for_operator(aten_name))


@typing.overload
def get_signature_for_torch_op(
    op: Callable[..., Any], return_schemas: typing.Literal[False] = False
) -> Optional[List[inspect.Signature]]: ...


@typing.overload
def get_signature_for_torch_op(
    op: Callable[..., Any], return_schemas: typing.Literal[True]
) -> Tuple[Optional[List[inspect.Signature]], Optional[List[torch.FunctionSchema]]]: ...


def get_signature_for_torch_op(op: Callable[..., Any], return_schemas: bool = False) -> Any:
    """Signatures of every overload of a torch builtin or ``torch.ops`` operator.

    Returns None when ``op`` has no aten schema. With ``return_schemas=True`` the result is a pair
    (signatures, schemas); both are None when nothing was found.
    """
    hand_written = _HAND_WRITTEN_SIGNATURES.get(op) if _hashable(op) else None
    if hand_written is not None:
        return (hand_written, None) if return_schemas else None
    schemas = _schemas_for(op)
    if schemas is None:
        return (None, None) if return_schemas else None
    signatures = [_schema_to_signature(schema) for schema in schemas]
    return (signatures, schemas) if return_schemas else signatures


def _hashable(value: Any) -> bool:
    try:
        hash(value)
    except TypeError:
        return False
    return True


def _bind(signature: inspect.Signature, args: Tuple[Any, ...], kwargs: Dict[str, Any]) -> Dict[str, Any]:
    """Map every parameter to its value (defaults filled in), like ``Signature.bind`` + ``apply_defaults``.

    ``*args``/``**kwargs`` parameters are not supported; raises TypeError when the call does not fit.
    """
    parameters = signature.parameters
    positional_count = sum(1 for param in parameters.values() if param.kind in _BY_POSITION)
    if len(args) > positional_count:
        raise TypeError(f"Too many positional arguments: expected max {positional_count}, got {len(args)}")
    bound: Dict[str, Any] = {}
    for index, (name, param) in enumerate(parameters.items()):
        if index < len(args):
            if name in kwargs and param.kind is not _POSITIONAL_ONLY:
                raise TypeError(f"Multiple values for argument '{name}'")
            bound[name] = args[index]
        elif name in kwargs:
            if param.kind is _POSITIONAL_ONLY:
                raise TypeError(f"Got some positional-only arguments passed as keyword arguments: '{name}'")
            bound[name] = kwargs[name]
        elif param.default is not inspect.Parameter.empty:
            bound[name] = param.default
        else:
            raise TypeError(f"Missing required argument '{name}'")
    for name in kwargs:
        if name not in parameters:
            raise TypeError(f"Got an unexpected keyword argument '{name}'")
    return bound


def _binds(signature: inspect.Signature, args: Tuple[Any, ...], kwargs: Dict[str, Any]) -> bool:
    try:
        _bind(signature, args, kwargs)
    except TypeError:
        return False
    return True


def _normalize_with(
    signature: inspect.Signature,
    args: Tuple[Any, ...],
    kwargs: Dict[str, Any],
    normalize_to_only_use_kwargs: bool,
) -> Optional[ArgsKwargsPair]:
    """Rebuild a call against ``signature``: the first ``len(args)`` parameters stay positional.

    Returns None for signatures with positional-only, ``*args`` or ``**kwargs`` parameters, which
    have no unambiguous keyword form (the aten random/uniform range signature excepted).
    """
    plain = all(param.kind in (_POSITIONAL, _KEYWORD) for param in signature.parameters.values())
    if not plain and list(signature.parameters) != _RANDOM_RANGE_PARAMETERS:
        return None
    bound = _bind(signature, args, kwargs)
    positional_limit = 0 if normalize_to_only_use_kwargs else len(args)
    new_args: List[Any] = []
    new_kwargs: Dict[str, Any] = {}
    for index, name in enumerate(signature.parameters):
        if index < positional_limit:
            new_args.append(bound[name])
        else:
            new_kwargs[name] = bound[name]
    return ArgsKwargsPair(tuple(new_args), new_kwargs)


def _all_types_match(
    signature: inspect.Signature, arg_types: Tuple[Any, ...], kwarg_types: Dict[str, Any]
) -> bool:
    """Whether ``signature`` accepts arguments of the given types (unpassed parameters are not checked)."""
    try:
        _bind(signature, arg_types, kwarg_types)
    except TypeError:
        return False
    given = dict(zip(signature.parameters, arg_types))
    given.update(kwarg_types)
    return all(
        type_matches(signature.parameters[name].annotation, arg_type) for name, arg_type in given.items()
    )


def _normalize_torch_op(
    target: Callable[..., Any],
    args: Tuple[Any, ...],
    kwargs: Dict[str, Any],
    arg_types: Optional[Tuple[Any, ...]],
    kwarg_types: Optional[Dict[str, Any]],
    normalize_to_only_use_kwargs: bool,
) -> Optional[ArgsKwargsPair]:
    signatures = get_signature_for_torch_op(target)
    if not signatures:
        return None
    accepting = [signature for signature in signatures if _binds(signature, args, kwargs)]
    if len(accepting) == 1:
        return _normalize_with(accepting[0], args, kwargs, normalize_to_only_use_kwargs)
    if not accepting:
        return None
    if arg_types is None and kwarg_types is None:
        listed = "\n".join(str(signature) for signature in accepting)
        raise RuntimeError(
            f"Tried to normalize arguments to {torch.typename(target)} but the schema match was ambiguous! "
            f"Please provide argument types to the normalize_arguments() call. Available schemas:\n{listed}"
        )
    # Types decide between overloads; the first overload (in schema order) whose types fit wins.
    for signature in signatures:
        if _all_types_match(signature, tuple(arg_types or ()), dict(kwarg_types or {})):
            return _normalize_with(signature, args, kwargs, normalize_to_only_use_kwargs)
    return None


def _python_signature(target: Callable[..., Any]) -> Optional[inspect.Signature]:
    try:
        dispatch = boolean_dispatched.get(target)
    except TypeError:  # the registry holds weak references, which not every callable supports
        dispatch = None
    if dispatch is None:
        return inspect.signature(inspect.unwrap(target))
    # A boolean-dispatched functional picks one of two implementations from a flag; both take the
    # same parameters, so either describes the call (they differ only in what they return).
    when_true = inspect.signature(dispatch["if_true"])
    when_false = inspect.signature(dispatch["if_false"])
    if list(when_true.parameters.values()) != list(when_false.parameters.values()):
        return None
    return when_true


def normalize_function(
    target: Callable[..., Any],
    args: Tuple[Any, ...],
    kwargs: Optional[Dict[str, Any]] = None,
    arg_types: Optional[Tuple[Any, ...]] = None,
    kwarg_types: Optional[Dict[str, Any]] = None,
    normalize_to_only_use_kwargs: bool = False,
) -> Optional[ArgsKwargsPair]:
    """Rewrite a call of ``target`` so that defaults are explicit and arguments sit where the signature puts them.

    Positional arguments stay positional (unless ``normalize_to_only_use_kwargs``); everything else
    becomes a keyword argument. Returns None when ``target`` cannot be normalized (``operator``
    functions, methods, callables taking ``*args``/``**kwargs``, or no overload accepts the call).
    Raises RuntimeError when several torch overloads accept the call and no types were given.
    """
    kwargs = kwargs if kwargs is not None else {}
    if isinstance(target, (types.BuiltinFunctionType, OpOverload, OpOverloadPacket)):
        return _normalize_torch_op(target, args, kwargs, arg_types, kwarg_types, normalize_to_only_use_kwargs)
    signature = _python_signature(target)
    if signature is None:
        return None
    return _normalize_with(signature, args, kwargs, normalize_to_only_use_kwargs)


def normalize_module(
    root: torch.nn.Module,
    target: str,
    args: Tuple[Any, ...],
    kwargs: Optional[Dict[str, Any]] = None,
    normalize_to_only_use_kwargs: bool = False,
) -> Optional[ArgsKwargsPair]:
    """Normalize a call of the submodule ``root.<target>`` against its ``forward`` signature.

    Only modules whose class is a ``torch.nn`` module are normalized; others give None.
    """
    try:
        module = root.get_submodule(target)
    except AttributeError as error:
        raise RuntimeError(
            f"Tried to normalize node with target {target} but root did not have that target!"
        ) from error
    module_class = type(module)
    if getattr(torch.nn, module_class.__name__, None) is not module_class:
        return None
    signature = inspect.signature(inspect.unwrap(module.forward))
    return _normalize_with(
        signature, args, kwargs if kwargs is not None else {}, normalize_to_only_use_kwargs
    )


def check_for_mutable_operation(
    target: Callable[..., Any], args: Tuple[Any, ...], kwargs: Dict[str, Any]
) -> None:
    """Raise RuntimeError when the call resolves to exactly one aten overload and that overload mutates its inputs."""
    if not isinstance(target, (types.BuiltinFunctionType, OpOverload, OpOverloadPacket)):
        return
    signatures, schemas = get_signature_for_torch_op(target, return_schemas=True)
    if not signatures or not schemas:
        return
    accepting = [schema for signature, schema in zip(signatures, schemas) if _binds(signature, args, kwargs)]
    if len(accepting) == 1 and accepting[0].is_mutable:
        raise RuntimeError(
            f"Tried to trace mutable operation {accepting[0]}. FX only supports functional code, so operations "
            "that mutate operands in-place (e.g. via `out` arguments) are not supported"
        )


def _is_class(value: Any) -> bool:
    return isinstance(value, type)


def create_type_hint(x: object) -> object:
    """A type hint for a list or tuple of types: ``list[T]`` / ``tuple[T, ...]`` with ``T`` the
    most general of them when they form one inheritance chain, else ``Any``. Anything else comes
    back unchanged (with a warning when the items are not plain classes)."""
    if not isinstance(x, (list, tuple)):
        return x
    try:
        common: Any = x[0] if x else Any
        for item in x:
            if issubclass(item, common):
                continue
            if issubclass(common, item):
                common = item
            else:
                common = Any
                break
    except TypeError:
        warnings.warn(f"We were not able to successfully create type hint from the type {x}", stacklevel=2)
        return x
    return list[common] if isinstance(x, list) else tuple[common, ...]


def type_matches(signature_type: Any, argument_type: Any) -> bool:
    """Whether a value of ``argument_type`` may be passed where ``signature_type`` is expected."""
    if signature_type is argument_type:
        return True
    signature_origin = typing.get_origin(signature_type)
    if signature_origin is typing.Union and argument_type is not signature_type:
        return any(type_matches(member, argument_type) for member in typing.get_args(signature_type))
    if argument_type is int and signature_origin is list and typing.get_args(signature_type) == (int,):
        return True  # int[N] schema arguments also take a single int (List[int] or list[int])
    if signature_type is int and argument_type is torch.dtype:
        return True  # a dtype travels as its ScalarType number
    if signature_origin is list:
        element_type = typing.get_args(signature_type)[0]
        if not _is_class(element_type):
            warnings.warn(
                f"Does not support nested parametric types, got {signature_type}. Please file a bug.",
                stacklevel=2,
            )
            return False
        argument_origin = typing.get_origin(argument_type)
        argument_parts = typing.get_args(argument_type)
        if argument_origin is list:
            return issubclass(argument_parts[0], element_type)
        if argument_origin is tuple:
            return all(part is Ellipsis or issubclass(part, element_type) for part in argument_parts)
        return False
    if _is_class(signature_type) and _is_class(argument_type):
        return issubclass(argument_type, signature_type)
    return False
