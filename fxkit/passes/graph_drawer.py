"""Draw a GraphModule as Graphviz DOT text, with no dependency on pydot.

``FxGraphDrawer(gm, "name").get_dot_graph()`` returns a :class:`DotGraph`: a ``str`` holding the
DOT source, with pydot-style helpers (``to_string()``, ``write_raw(path)``, and
``create_svg()``/``write_svg(path)`` etc. that run Graphviz's ``dot`` program if it is installed).
Paste the text into any Graphviz viewer, or render it with ``dot -Tsvg``.
"""

from __future__ import annotations

import shutil
import subprocess
from typing import Any, Dict, List, Optional

import torch

from fxkit import _foreign
from fxkit.graph_module import GraphModule
from fxkit.node import Node, _format_arg

__all__ = ["DotGraph", "FxGraphDrawer"]

# Fill colour per op, so the kinds of node stand apart at a glance.
_OP_COLORS = {
    "placeholder": "AliceBlue",
    "get_attr": "LemonChiffon1",
    "call_function": "LightGoldenrod1",
    "call_method": "LightSkyBlue1",
    "call_module": "PaleGreen1",
    "output": "Thistle1",
}
_PARAMETER_COLOR = "Gray90"
_MAX_FIELD_CHARS = 80


class DotGraph(str):
    """DOT source text, with the few pydot ``Dot`` methods that make sense without pydot."""

    def to_string(self) -> str:
        return str(self)

    def get_name(self) -> str:
        return self.split('"', 2)[1] if '"' in self.split("\n", 1)[0] else ""

    def write_raw(self, path: str) -> None:
        """Write the DOT text to ``path``."""
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(str(self))

    def create(self, format: str = "svg") -> bytes:
        """Render with Graphviz's ``dot`` program (must be on PATH)."""
        dot = shutil.which("dot")
        if dot is None:
            raise RuntimeError(
                "Rendering needs Graphviz's 'dot' program, which is not on PATH. Install Graphviz "
                "(e.g. apt-get install graphviz), or use write_raw(path) / str(graph) for the DOT text."
            )
        return subprocess.run(
            [dot, f"-T{format}"], input=str(self).encode(), capture_output=True, check=True
        ).stdout

    def create_svg(self) -> bytes:
        return self.create("svg")

    def create_png(self) -> bytes:
        return self.create("png")

    def write(self, path: str, format: str = "raw") -> None:
        """Write DOT text (``format='raw'``) or a rendering in any Graphviz format."""
        if format == "raw":
            self.write_raw(path)
            return
        with open(path, "wb") as handle:
            handle.write(self.create(format))

    def write_svg(self, path: str) -> None:
        self.write(path, "svg")

    def write_png(self, path: str) -> None:
        self.write(path, "png")


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _record_escape(text: str) -> str:
    """Escape the characters that structure a Graphviz record label."""
    for char in '\\{}|<>"':
        text = text.replace(char, "\\" + char)
    return text.replace("\n", "\\n")


def _shorten(text: str) -> str:
    return text if len(text) <= _MAX_FIELD_CHARS else text[: _MAX_FIELD_CHARS - 3] + "..."


def _describe_tensor_meta(meta: Any) -> List[str]:
    if hasattr(meta, "shape") and hasattr(meta, "dtype"):
        parts = [f"shape={tuple(meta.shape)}", f"dtype={meta.dtype}"]
        if getattr(meta, "stride", None) is not None:
            parts.append(f"stride={tuple(meta.stride)}")
        return [" ".join(parts)]
    if isinstance(meta, (list, tuple)):
        lines: List[str] = []
        for index, item in enumerate(meta):
            lines.extend(f"[{index}] {line}" for line in _describe_tensor_meta(item))
        return lines
    if isinstance(meta, dict):
        lines = []
        for key, item in meta.items():
            lines.extend(f"[{key!r}] {line}" for line in _describe_tensor_meta(item))
        return lines
    return []


class FxGraphDrawer:
    """Turns a GraphModule (and its GraphModule children) into DOT graphs.

    ``ignore_getattr`` hides get_attr nodes; ``ignore_parameters_and_buffers`` hides the boxes
    listing each call_module's parameters and buffers; ``skip_node_names_in_args`` prints the
    args/kwargs fields without the ``%`` node names; ``parse_stack_trace`` adds the user's
    file:line to each node; ``dot_graph_shape`` sets the node shape (default ``record``).
    """

    def __init__(
        self,
        graph_module: GraphModule,
        name: str,
        ignore_getattr: bool = False,
        ignore_parameters_and_buffers: bool = False,
        skip_node_names_in_args: bool = True,
        parse_stack_trace: bool = False,
        dot_graph_shape: Optional[str] = None,
        normalize_args: bool = False,
    ) -> None:
        graph_module = _foreign.convert(graph_module)  # only read: a torch.fx module is drawn from its twin
        self._name = name
        self._options = dict(
            ignore_getattr=ignore_getattr,
            ignore_parameters_and_buffers=ignore_parameters_and_buffers,
            skip_node_names_in_args=skip_node_names_in_args,
            parse_stack_trace=parse_stack_trace,
            shape=dot_graph_shape or "record",
        )
        self._dot_graphs: Dict[str, DotGraph] = {name: self._to_dot(graph_module, name)}
        for child_name, child in graph_module.named_children():
            child = _foreign.convert(child)
            if isinstance(child, GraphModule):
                self._dot_graphs[f"{name}_{child_name}"] = self._to_dot(child, f"{name}_{child_name}")

    def get_dot_graph(self, submod_name: Optional[str] = None) -> DotGraph:
        """The main graph, or the graph of child GraphModule ``submod_name``."""
        if submod_name is None:
            return self.get_main_dot_graph()
        return self.get_submod_dot_graph(submod_name)

    def get_main_dot_graph(self) -> DotGraph:
        return self._dot_graphs[self._name]

    def get_submod_dot_graph(self, submod_name: str) -> DotGraph:
        key = f"{self._name}_{submod_name}"
        if key not in self._dot_graphs:
            raise KeyError(
                f"No GraphModule child named {submod_name!r}; drawn children: "
                f"{[k[len(self._name) + 1 :] for k in self._dot_graphs if k != self._name]}"
            )
        return self._dot_graphs[key]

    def get_all_dot_graphs(self) -> Dict[str, DotGraph]:
        """Every drawn graph: the main one under ``name``, children under ``name_<child>``."""
        return dict(self._dot_graphs)

    # ------------------------------------------------------------------------------------------

    def _label(self, module: torch.nn.Module, node: Node) -> str:
        skip_names = self._options["skip_node_names_in_args"]

        def show(value: Any) -> str:
            text = _format_arg(value)
            return text.replace("%", "") if skip_names else text

        fields = [f"name=%{node.name}", f"op_code={node.op}"]
        if node.op == "call_module":
            try:
                submodule = module.get_submodule(node.target)
                fields.append(f"{type(submodule).__name__}")
            except AttributeError:
                pass
        target = (
            node.target
            if isinstance(node.target, str)
            else getattr(node.target, "__name__", str(node.target))
        )
        fields.append(f"target={target}")
        if node.args:
            fields.append(f"args={show(node.args)}")
        if node.kwargs:
            fields.append(f"kwargs={show(node.kwargs)}")
        if node.type is not None:
            fields.append(f"type={getattr(node.type, '__name__', str(node.type))}")
        fields.extend(_describe_tensor_meta(node.meta.get("tensor_meta")))
        if self._options["parse_stack_trace"] and node.stack_trace:
            last_frame = [
                line for line in node.stack_trace.strip().splitlines() if line.strip().startswith("File")
            ]
            if last_frame:
                fields.append(last_frame[-1].strip())
        body = "|".join(_record_escape(_shorten(field)) for field in fields)
        return "{" + body + "}" if self._options["shape"] == "record" else body.replace("|", "\\n")

    def _to_dot(self, module: GraphModule, name: str) -> DotGraph:
        lines = [
            f"digraph {_quote(name)} {{",
            "  rankdir=TB;",
            f"  node [shape={self._options['shape']}, style=filled];",
        ]
        drawn: Dict[Node, None] = {}
        for node in module.graph.nodes:
            if self._options["ignore_getattr"] and node.op == "get_attr":
                continue
            drawn[node] = None
            color = _OP_COLORS.get(node.op, "White")
            lines.append(
                f"  {_quote(node.name)} [label={_quote(self._label(module, node))}, fillcolor={color}];"
            )
            if node.op == "call_module" and not self._options["ignore_parameters_and_buffers"]:
                lines.extend(self._tensor_boxes(module, node))
        for node in drawn:
            for user in node.users:
                if user in drawn:
                    lines.append(f"  {_quote(node.name)} -> {_quote(user.name)};")
        lines.append("}")
        return DotGraph("\n".join(lines) + "\n")

    def _tensor_boxes(self, module: GraphModule, node: Node) -> List[str]:
        try:
            submodule = module.get_submodule(node.target)
        except AttributeError:
            return []
        lines = []
        tensors = list(submodule.named_parameters(recurse=False)) + list(
            submodule.named_buffers(recurse=False)
        )
        for tensor_name, tensor in tensors:
            box = f"{node.name}.{tensor_name}"  # '.' never appears in node names: no clashes
            kind = "parameter" if isinstance(tensor, torch.nn.Parameter) else "buffer"
            label = (
                _record_escape(f"{node.target}.{tensor_name}")
                + "|"
                + _record_escape(f"{kind} {tuple(tensor.shape)} {tensor.dtype}")
            )
            if self._options["shape"] == "record":
                label = "{" + label + "}"
            lines.append(f"  {_quote(box)} [label={_quote(label)}, fillcolor={_PARAMETER_COLOR}];")
            lines.append(f"  {_quote(box)} -> {_quote(node.name)};")
        return lines
