"""One resolver for references written as text: ``package.module:attr`` or ``path/to/file.py:attr``.

The command line names models and example inputs this way, and capture names leaf functions this
way; all of them call :func:`resolve` so that the forms and the error messages are the same.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from typing import Any

from . import _paths

__all__ = ["ResolveError", "resolve"]


class ResolveError(ValueError):
    """A reference that names nothing: the message says which part is missing and why."""


def _load_python_file(path: str, spec: str) -> Any:
    if not os.path.isfile(path):
        raise ResolveError(f"{spec}: no such file {path!r}")
    module_name = "_fxkit_file_" + os.path.splitext(os.path.basename(path))[0]
    file_spec = importlib.util.spec_from_file_location(module_name, path)
    if file_spec is None or file_spec.loader is None:
        raise ResolveError(f"{spec}: {path!r} is not a Python file")
    module = importlib.util.module_from_spec(file_spec)
    sys.modules[module_name] = module  # dataclasses and pickling look the module up by name
    file_spec.loader.exec_module(module)
    return module


def _import(location: str, spec: str) -> Any:
    if location.endswith(".py") or os.sep in location or "/" in location:
        return _load_python_file(location, spec)
    try:
        return importlib.import_module(location)
    except ImportError as error:
        raise ResolveError(f"{spec}: cannot import {location!r} ({error})") from None


def _longest_importable_prefix(spec: str) -> tuple:
    """``a.b.c.f`` without a colon: the longest importable module prefix and the attribute path."""
    parts = spec.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        location = ".".join(parts[:cut])
        try:
            importlib.import_module(location)
        except ImportError:
            continue
        return location, ".".join(parts[cut:])
    raise ResolveError(f"{spec}: no importable module in {spec!r}; write package.module:attr")


def resolve(spec: str, *, dotted: bool = False) -> Any:
    """The object ``spec`` names: ``package.module:attr`` or ``path/to/file.py:attr``.

    ``attr`` may be dotted (``module:Class.method``). With ``dotted=True`` a plain
    ``package.module.attr`` (no colon) is accepted too. Raises :class:`ResolveError`.
    """
    if ":" in spec:
        location, _, attr_path = spec.rpartition(":")
    elif dotted and "." in spec:
        location, attr_path = _longest_importable_prefix(spec)
    else:
        location, attr_path = "", ""
    if not location or not attr_path:
        raise ResolveError(f"{spec!r}: expected package.module:attr or path/to/file.py:attr")
    try:
        return _paths.resolve(_import(location, spec), attr_path)
    except _paths.MissingAttribute:
        raise ResolveError(f"{spec}: {location!r} has no attribute {attr_path!r}") from None
