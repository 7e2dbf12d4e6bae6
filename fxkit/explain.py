"""``explain``: what a capture assumed, where in the user's code, and what to do about it.

:func:`explain` captures a model and reports every guard, every leaf and every specialization of
the result, each with the reason, the user's source line and a suggestion. ``fxkit explain MODEL``
(in :mod:`fxkit.cli`) prints the same report on the command line.

    report = fxkit.explain.explain(model, (x,))
    print(report)                       # the text report
    report.entries                      # the same, as records
"""

from __future__ import annotations

import dataclasses
from typing import Any, Dict, List, Optional, Tuple

import torch

from .capture_tracer import CaptureResult, capture
from .guards import Guard, GuardKind, Leaf, SourceLocation, Specialization

__all__ = ["Explanation", "ExplanationEntry", "explain", "explain_capture"]


@dataclasses.dataclass(frozen=True)
class ExplanationEntry:
    """One line of the report: a guard, a leaf or a specialization."""

    section: str  # "guard", "leaf" or "specialization"
    name: str
    summary: str
    reason: str
    location: Optional[SourceLocation]
    suggestion: str
    automatic: bool = False  # an automatic leaf


@dataclasses.dataclass
class Explanation:
    """The report of one capture; ``str()`` gives the text rendering."""

    model_name: str
    guards: List[ExplanationEntry]
    leaves: List[ExplanationEntry]
    specializations: List[ExplanationEntry]
    node_count: int
    leaf_parameter_share: float = 0.0  # of the parameters, the share inside leaves (0 to 1)
    automatic_leaf_parameter_share: float = 0.0  # ... inside automatic leaves

    @property
    def entries(self) -> List[ExplanationEntry]:
        return self.guards + self.leaves + self.specializations

    def __str__(self) -> str:
        return self.render()

    def render(self) -> str:
        """The report as plain text, one block per entry, grouped by section."""
        automatic = sum(entry.automatic for entry in self.leaves)
        lines = [
            f"Capture of {self.model_name}: {self.node_count} nodes, {len(self.guards)} guards,"
            f" {len(self.leaves)} leaves ({automatic} automatic), {len(self.specializations)} specializations",
            f"Parameters inside leaves: {self.leaf_parameter_share:.1%}"
            f" ({self.automatic_leaf_parameter_share:.1%} inside automatic leaves)",
        ]
        sections = (
            ("Guards (checked each time the graph runs)", self.guards),
            ("Leaves (kept as one call, not traced through)", self.leaves),
            ("Specializations (values fixed to the example's)", self.specializations),
        )
        for title, entries in sections:
            lines.append("")
            lines.append(f"{title}: {len(entries)}")
            if not entries:
                lines.append("  (none)")
            for entry in entries:
                lines.append(f"  {entry.name}: {entry.summary}")
                if entry.location is not None:
                    lines.append(f"      at {entry.location.describe()}")
                lines.append(f"      why: {entry.reason}")
                lines.append(f"      suggestion: {entry.suggestion}")
        return "\n".join(lines)


# --------------------------------------------------------------------------- suggestions


def _module_hint(module_path: str) -> str:
    if module_path:
        return f"leaf_modules=[{module_path!r}]"
    return "it is in the root's own forward, so rather capture once per path"


# kind -> (reason, suggestion); {module} is the hint naming the enclosing module, {argument} the input.
_GUARD_TEXT: Dict[GuardKind, Tuple[str, str]] = {
    GuardKind.BOOL: (
        "a condition on sizes, dtypes or other non-data values; it holds for inputs like the example",
        "nothing to do for inputs of the example's shapes and dtypes; capture again for inputs that take the"
        " other branch",
    ),
    GuardKind.INT: (
        "a size (or a value computed from sizes) was used as a Python number, so the graph uses the example's",
        "inputs of other sizes fail this guard: capture with the sizes you run, or keep the size symbolic"
        " (pass x.size(d) to torch functions instead of int()/range())",
    ),
    GuardKind.LEN: (
        "a length (often a tensor's rank or its first size) was needed to unpack, iterate or len()",
        "the graph only handles this many items; index the items explicitly, or make the enclosing module a"
        " leaf ({module}) if the count varies",
    ),
    GuardKind.ATTRIBUTE: (
        "tensor.{attribute} was used as a Python value",
        "inputs with another dtype or rank fail this guard: capture once per dtype/rank you use",
    ),
    GuardKind.ARGUMENT: (
        "the argument was {spec_reason}",
        "capture once per value of {argument} you use{or_tensor}",
    ),
    GuardKind.NOT_GIVEN: (
        "the example call did not pass {argument}, so the graph calls the model without it",
        "to run with {argument}, capture with an example that passes it",
    ),
    GuardKind.STRUCTURE: (
        "the input is a structure ({example}): its containers, keys, lengths and plain values are fixed, its"
        " tensors are inputs",
        "inputs of another structure fail this guard (the message names the first difference): capture once"
        " per structure you use",
    ),
    GuardKind.KEYWORDS: (
        "the graph was captured with only these keyword inputs through **{argument}",
        "to use another keyword input, capture with an example that passes it",
    ),
}
# Any kind decided by a tensor's data (not its sizes) has this text instead.
_DATA_DEPENDENT_TEXT = (
    "Python needed a {kind} of a tensor's data; the example had {example}",
    "the other path is not in the graph: make the enclosing module a leaf ({module}), or write the choice"
    " as tensor code (torch.where, masking) so that both paths are traced",
)
_GUARD_TEXT[GuardKind.INDEX] = _GUARD_TEXT[GuardKind.FLOAT] = _GUARD_TEXT[GuardKind.INT]
_GUARD_TEXT[GuardKind.ITER] = _GUARD_TEXT[GuardKind.LEN]
_GUARD_TEXT[GuardKind.METHOD] = (
    "tensor.{attribute}() was used as a Python value",
    _GUARD_TEXT[GuardKind.ATTRIBUTE][1],
)


def _takes_tensors(annotations: Dict[str, Any], argument: Optional[str]) -> bool:
    """Whether the parameter ``argument`` is annotated as taking tensors (a flag or a cache is not)."""
    annotation = annotations.get(argument or "")
    if annotation is None:
        return False
    text = annotation if isinstance(annotation, str) else repr(annotation)
    return "Tensor" in text


def _guard_entry(
    guard: Guard, specialized: Dict[str, Specialization], annotations: Dict[str, Any]
) -> ExplanationEntry:
    spec = specialized.get(guard.name)
    module = guard.module
    takes_tensors = _takes_tensors(annotations, guard.argument)
    if guard.data_dependent:
        text = _DATA_DEPENDENT_TEXT
    elif guard.kind is GuardKind.ARGUMENT and guard.example_value is None:
        text = (
            "the argument was {spec_reason}",
            "to trace {argument} as an input, pass a tensor for it in the example inputs"
            if takes_tensors
            else "to trace {argument} as an input, pass a value for it in the example inputs",
        )
    else:
        text = _GUARD_TEXT[guard.kind]
    fields = {
        "or_tensor": ", or pass it as a tensor so that it stays an input" if takes_tensors else "",
        "module": _module_hint(module),
        "argument": guard.argument,
        "attribute": guard.attribute,
        "kind": guard.kind.value,
        "example": guard.example_value,
        "spec_reason": spec.reason if spec else "fixed during capture",
    }
    reason, suggestion = (part.format(**fields) for part in text)
    where_module = f" in module {module!r}" if module else ""
    label = guard.attribute if guard.kind in (GuardKind.ATTRIBUTE, GuardKind.METHOD) else guard.kind.value
    summary = f"{guard.condition} [{label}{', data-dependent' if guard.data_dependent else ''}]{where_module}"
    return ExplanationEntry("guard", guard.name, summary, reason, guard.location, suggestion)


def _leaf_entry(leaf: Leaf, modules: Dict[str, torch.nn.Module]) -> ExplanationEntry:
    how = "automatic leaf" if leaf.automatic else "requested leaf"
    module = modules.get(leaf.name)
    count = sum(param.numel() for param in module.parameters()) if module is not None else 0
    summary = f"{leaf.type_name} ({how}, {count:,} parameters)"
    if leaf.automatic:
        suggestion = (
            f"the rest of the model was traced around it; name it in leaf_modules=[{leaf.name!r}] to make this"
            " explicit, or change the code at the line shown so that it can be traced (use leaf_functions for"
            " a helper function that cannot be traced)"
        )
        reason = f"tracing it failed with {leaf.reason}"
    else:
        suggestion = "none needed: its inside is not in the graph, so passes do not see it"
        reason = leaf.reason
    return ExplanationEntry("leaf", leaf.name, summary, reason, leaf.location, suggestion, leaf.automatic)


def _specialization_entry(spec: Specialization, annotations: Dict[str, Any]) -> ExplanationEntry:
    checked = f"checked by {spec.guard}" if spec.guard else "NOT checked at run time"
    summary = f"{spec.what} = {spec.value!r} ({checked})"
    if spec.argument is not None and spec.kind is not GuardKind.LEN:
        suggestion = "pass the value you will run with in the example inputs"
        if _takes_tensors(annotations, spec.argument):
            suggestion += "; a tensor input stays an input of the graph"
    elif spec.kind in (GuardKind.LEN, GuardKind.ITER):
        suggestion = "the number of items is part of the graph; capture again for another count"
    else:
        suggestion = "the graph is specialized to this value; capture again for other values"
    return ExplanationEntry("specialization", spec.what, summary, spec.reason, spec.location, suggestion)


def explain_capture(result: CaptureResult) -> Explanation:
    """The report of an existing :class:`~fxkit.capture.CaptureResult`."""
    by_guard = {spec.guard: spec for spec in result.specializations if spec.guard}
    modules = dict(result.graph_module.named_modules())
    # What each input is annotated to take, so that flags and caches are never told to be tensors.
    annotations = {node.target: node.type for node in result.graph.nodes if node.op == "placeholder"}
    return Explanation(
        model_name=result.model_name,
        guards=[_guard_entry(guard, by_guard, annotations) for guard in result.guards],
        leaves=[_leaf_entry(leaf, modules) for leaf in result.leaves],
        specializations=[_specialization_entry(spec, annotations) for spec in result.specializations],
        node_count=len(result.graph_module.graph.nodes),
        leaf_parameter_share=result.leaf_parameter_share(),
        automatic_leaf_parameter_share=result.leaf_parameter_share(automatic_only=True),
    )


def explain(
    model: Any, example_inputs: Any = (), example_kwargs: Optional[Dict[str, Any]] = None, **options: Any
) -> Explanation:
    """Capture ``model`` (same arguments as :func:`fxkit.capture`) and return the report."""
    return explain_capture(capture(model, example_inputs, example_kwargs, **options))
