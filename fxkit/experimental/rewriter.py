"""``RewritingTracer``: a Tracer that first rewrites the traced code's syntax tree so that
statements symbolic tracing cannot follow become calls it records. ``assert cond, msg`` becomes
``torch._assert(cond, msg)`` (a node, checked when the module runs) and an annotated assignment
``y: T = value`` becomes ``y: T = annotate(value, T)`` (the node gets type ``T``).

For a module only its own ``forward`` is rewritten (not submodules' or functions it calls); the
traced root is an instance of a ``RewrittenModule`` subclass sharing the module's state.
"""

from __future__ import annotations

import ast
import inspect
import types
from typing import Any, Callable, Dict, List, Optional, Tuple, Union, cast

import torch

from fxkit.annotate import annotate
from fxkit.graph import Graph
from fxkit.tracer import Tracer

__all__ = ["AST_Rewriter", "RewritingTracer"]

# Names the rewritten code calls; they reach it as closure variables, so the function keeps the
# original module globals (where wrapped functions are patched during tracing) untouched.
_ASSERT_NAME = "_fxkit_rewriter_assert"
_ANNOTATE_NAME = "_fxkit_rewriter_annotate"
_FACTORY_NAME = "_fxkit_rewriter_factory"


class AST_Rewriter(ast.NodeTransformer):  # noqa: N801  (torch.fx's name)
    """Rewrites a function's syntax tree (``assert`` and annotated assignments, see the module
    docstring) and compiles it into a new function with the same globals, closure values and
    defaults. Add ``visit_<Node>`` methods in a subclass to rewrite more statements."""

    def rewrite(self, fn: types.FunctionType) -> types.FunctionType:
        try:
            lines, first_line = inspect.getsourcelines(fn)
        except (OSError, TypeError) as error:
            raise OSError(
                f"RewritingTracer needs the source code of {fn.__qualname__!r} to rewrite it "
                f"({error}); define it in a file, or trace it with the plain Tracer"
            ) from error
        tree = ast.parse(_outdent(lines))
        definition = tree.body[0]
        if not isinstance(definition, (ast.FunctionDef, ast.AsyncFunctionDef)):
            raise TypeError(
                f"RewritingTracer can rewrite functions defined with def, not {fn.__qualname__!r}"
            )
        definition.decorator_list = []
        definition = self.visit(definition)
        # Wrap the definition in a factory whose parameters are the names the body needs from
        # outside: its closure variables and the two helpers.
        free_names = list(fn.__code__.co_freevars)
        arguments = ast.arguments(
            posonlyargs=[], args=[ast.arg(arg=name) for name in [_ASSERT_NAME, _ANNOTATE_NAME, *free_names]],
            kwonlyargs=[], kw_defaults=[], defaults=[],
        )  # fmt: skip
        body = [definition, ast.Return(value=ast.Name(id=definition.name, ctx=ast.Load()))]
        factory = ast.FunctionDef(
            name=_FACTORY_NAME, args=arguments, body=body, decorator_list=[], returns=None
        )
        if "type_params" in ast.FunctionDef._fields:  # Python >= 3.12
            factory.type_params = []
        module = ast.Module(body=[factory], type_ignores=[])
        ast.fix_missing_locations(module)
        ast.increment_lineno(module, first_line - 1)
        namespace: Dict[str, Any] = {}
        # dont_inherit: compiled without this file's (or the caller's) future imports, so
        # annotations are evaluated, as torch.fx's rewriter does.
        code = compile(module, fn.__code__.co_filename, "exec", dont_inherit=True)
        exec(code, fn.__globals__, namespace)  # noqa: S102
        cells = [cell.cell_contents for cell in (fn.__closure__ or ())]
        rewritten = namespace[_FACTORY_NAME](torch._assert, annotate, *cells)
        rewritten.__defaults__ = fn.__defaults__
        rewritten.__kwdefaults__ = fn.__kwdefaults__
        rewritten.__qualname__ = fn.__qualname__
        return rewritten

    def visit_Assert(self, node: ast.Assert) -> ast.stmt:  # noqa: N802
        message = node.msg if node.msg is not None else ast.Constant(value="")
        call = ast.Call(
            func=ast.Name(id=_ASSERT_NAME, ctx=ast.Load()), args=[node.test, message], keywords=[]
        )
        return ast.copy_location(ast.Expr(value=call), node)

    def visit_AnnAssign(self, node: ast.AnnAssign) -> ast.stmt:  # noqa: N802
        if node.value is None:
            return node
        node.value = ast.Call(
            func=ast.Name(id=_ANNOTATE_NAME, ctx=ast.Load()), args=[node.value, node.annotation], keywords=[]
        )
        return node


def _outdent(lines: List[str]) -> str:
    """The source with the ``def`` line's indentation taken off every line that starts with it.

    Unlike ``textwrap.dedent`` this copes with lines of a multi-line string that start further
    left; such strings lose that indentation from their other lines, as under torch.fx.
    """
    definition = next((line for line in lines if line.lstrip().startswith(("def ", "async def "))), "")
    indent = definition[: len(definition) - len(definition.lstrip())]
    return "".join(line[len(indent) :] if line.startswith(indent) else line for line in lines)


def _rewrite(fn: Union[torch.nn.Module, Callable[..., Any]]) -> Union[torch.nn.Module, Callable[..., Any]]:
    if not isinstance(fn, torch.nn.Module):
        return AST_Rewriter().rewrite(cast(types.FunctionType, fn))
    original_class = type(fn)
    forward = AST_Rewriter().rewrite(cast(types.FunctionType, original_class.forward))
    # A subclass, so the module's other methods stay reachable from the rewritten forward.
    rewritten_class = type("RewrittenModule", (original_class,), {"forward": forward})
    rewritten = object.__new__(rewritten_class)
    rewritten.__dict__ = fn.__dict__.copy()  # shares parameters, buffers and submodules
    return rewritten


class RewritingTracer(Tracer):
    """A Tracer that rewrites ``assert`` statements and annotated assignments of the traced
    function (or the module's ``forward``) into traceable calls first; see the module
    docstring. ``self.root`` is the rewritten module after ``trace``."""

    def trace(
        self, root: Union[torch.nn.Module, Callable[..., Any]],
        concrete_args: Optional[Union[Dict[str, Any], Tuple[Any, ...]]] = None,
    ) -> Graph:  # fmt: skip
        return super().trace(_rewrite(root), concrete_args)
