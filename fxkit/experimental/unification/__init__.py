"""Unification of terms containing logic variables (``unify``, ``reify``, ``Var``), with the
multiple dispatch it is built on, at torch.fx's module path."""

from . import core, dispatch, match, more, multipledispatch, unification_tools, utils, variable  # noqa: F401
from .core import reify, unify  # noqa: F401
from .more import unifiable  # noqa: F401
from .variable import Var, isvar, var, variables, vars  # noqa: F401
