"""Find the nodes where two ways of running a GraphModule disagree, as torch.fx's
``passes.net_min_base`` does.

Subclass ``_MinimizerBase`` and define ``run_a`` (the reference, e.g. eager CPU) and ``run_b``
(the suspect, e.g. a lowered backend). ``minimize()`` cuts the module into a submodule holding a
candidate set of nodes, runs it both ways on the same inputs, and asks ``compare_fn(a, b, names)``
for ``(metric, ok)``; the traversal named by ``settings.traverse_method`` decides which sets to
try: ``sequential`` (one node at a time), ``accumulate`` (growing prefixes), ``binary`` (halves),
``block`` (the smallest failing contiguous block), ``defined`` (``start``..``end``) and ``skip``
(the stretches between ``skip_nodes``). Every step is recorded in ``self.reports`` and printed.
"""

from __future__ import annotations

import copy
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import torch

from fxkit import _foreign
from fxkit.graph_module import GraphModule
from fxkit.node import Node
from fxkit.passes.shape_prop import ShapeProp
from fxkit.passes.split_utils import split_by_tags
from fxkit.passes.tools_common import (
    CALLABLE_NODE_OPS,
    FxNetAccFusionsFinder,
    NodeList,
    NodeSet,
    TensorOrTensors,
)

__all__ = [
    "FxNetMinimizerBadModuleError", "FxNetMinimizerResultMismatchError", "FxNetMinimizerRunFuncError",
    "_MinimizerBase", "_MinimizerSettingBase",
]  # fmt: skip

Tensors = Sequence[torch.Tensor]
CompareFn = Callable[[TensorOrTensors, TensorOrTensors, List[str]], Tuple[float, bool]]

_SUBMODULE = "minimize"


class FxNetMinimizerBadModuleError(Exception):
    """The module cannot be minimized (for example, a candidate submodule cannot be built)."""


class FxNetMinimizerRunFuncError(Exception):
    """``run_a`` or ``run_b`` raised on a candidate submodule."""


class FxNetMinimizerResultMismatchError(Exception):
    """``compare_fn`` said the two results of a candidate submodule disagree."""


class _MinimizerSettingBase:
    """How to search: ``accumulate_error`` feeds run_b its own earlier outputs (errors add up),
    ``traverse_method`` picks the search, ``find_all`` keeps searching after the first culprit,
    ``return_intermediate`` is kept for subclasses, ``all_outputs`` compares every output of a
    candidate instead of the last node's."""

    def __init__(
        self, accumulate_error: bool = False, traverse_method: str = "sequential", find_all: bool = False,
        return_intermediate: bool = False, all_outputs: bool = False,
    ) -> None:  # fmt: skip
        # Assigned in this order: __str__ lists them so.
        self.accumulate_error, self.traverse_method, self.find_all = (
            accumulate_error,
            traverse_method,
            find_all,
        )
        self.return_intermediate, self.all_outputs = return_intermediate, all_outputs

    def __str__(self) -> str:
        lines = "".join(f"\t{name}: {value}\n" for name, value in vars(self).items())
        return "FX Minimizer Settings:\n" + lines


class _MinimizerBase:
    """The search machinery; subclasses supply ``run_a`` and ``run_b``."""

    def __init__(
        self, module: GraphModule, sample_input: Tensors, compare_fn: CompareFn, settings: _MinimizerSettingBase,
        module_exporter: Optional[Callable[[Tensors, GraphModule, str], None]] = None,
        exclusion_fn: Optional[Callable[[NodeList, int, int], None]] = None,
    ) -> None:  # fmt: skip
        _foreign.reject(module, "_MinimizerBase")  # it shape-propagates module in place
        assert isinstance(module, GraphModule), (
            f"_MinimizerBase needs a GraphModule, got {type(module).__name__}"
        )
        self.module, self.sample_input, self.settings = module, sample_input, settings
        self.compare_fn, self.module_exporter, self.exclusion_fn = compare_fn, module_exporter, exclusion_fn
        # Values seen so far, by node name (the inputs are known from the start); what was found.
        self.a_outputs: Dict[str, Any] = {}
        self.b_outputs: Dict[str, Any] = {}
        self.results: Dict[Any, Any] = {}
        self.reports: List[List[str]] = []
        self.iteration, self._last_checked = 0, ""
        callable_nodes = {node for node in self.module.graph.nodes if node.op in CALLABLE_NODE_OPS}
        self.run_shape_prop()
        self.fusions = FxNetAccFusionsFinder(self.module, callable_nodes)()
        placeholders = [node.name for node in self.module.graph.nodes if node.op == "placeholder"]
        for name, value in zip(placeholders, sample_input):
            self.a_outputs[name] = self.b_outputs[name] = value

    # ------------------------------------------------------------------------------ overridables

    def run_shape_prop(self) -> None:
        """Record shapes on the module's nodes (the fusion search needs them)."""
        ShapeProp(self.module).propagate(*self.sample_input)

    def run_a(self, mod: GraphModule, inputs: Tensors, report_idx: int = -1) -> TensorOrTensors:
        """Run ``mod`` the reference way; subclasses define it."""
        raise RuntimeError("run_a() is not implemented.")

    def run_b(self, mod: GraphModule, inputs: Tensors, report_idx: int = -1) -> TensorOrTensors:
        """Run ``mod`` the way under suspicion; subclasses define it."""
        raise RuntimeError("run_b() is not implemented.")

    # ------------------------------------------------------------------------------ running a candidate

    def _store_outputs(
        self, a_result: TensorOrTensors, b_result: TensorOrTensors, submodule: GraphModule
    ) -> None:
        """Remember both results under the names of the nodes ``submodule`` returns."""
        returned = submodule.graph.output_node().args[0]
        if isinstance(returned, Node):
            self.a_outputs[returned.name], self.b_outputs[returned.name] = a_result, b_result
            return
        for node, a_value, b_value in zip(returned, a_result, b_result):
            self.a_outputs[node.name], self.b_outputs[node.name] = a_value, b_value

    def _get_submod_inputs(self, main_module: GraphModule, submod_path: str) -> Tuple[Tensors, Tensors]:
        """The inputs submodule ``submod_path`` receives when ``main_module`` runs the sample input
        (for run_b with ``accumulate_error``: run_b's own earlier outputs where known)."""
        submodule = getattr(main_module, submod_path)
        captured: List[Any] = []
        handle = submodule.register_forward_pre_hook(lambda _module, args: captured.append(args))
        try:
            with torch.no_grad():
                main_module(*self.sample_input)
        finally:
            handle.remove()
        a_input = tuple(captured[0])
        if not self.settings.accumulate_error:
            return a_input, a_input
        names = [node.name for node in submodule.graph.nodes if node.op == "placeholder"]
        b_input = tuple(self.b_outputs.get(name, value) for name, value in zip(names, a_input))
        return a_input, b_input

    def _tag_nodes(self, selected_nodes: NodeSet) -> None:
        """Tag the selected nodes ``minimize`` and the others ``main_0`` (before) / ``main_1``."""
        seen_selected = False
        for node in self.module.graph.nodes:
            if node.op not in CALLABLE_NODE_OPS:
                continue
            if node in selected_nodes:
                node.tag, seen_selected = _SUBMODULE, True  # type: ignore[attr-defined]
            elif seen_selected:
                node.tag = "main_1"  # type: ignore[attr-defined]
            else:
                node.tag = "main_0"  # type: ignore[attr-defined]

    def _build_submodule(self, nodes: NodeSet) -> Tuple[GraphModule, str]:
        """Split the module so that ``nodes`` form the submodule ``minimize``."""
        if not nodes:
            raise FxNetMinimizerBadModuleError("Cannot build a submodule from an empty set of nodes")
        self._tag_nodes(nodes)
        tags = [
            tag
            for tag in ("main_0", _SUBMODULE, "main_1")
            if any(getattr(n, "tag", None) == tag for n in self.module.graph.nodes)
        ]
        try:
            split_module = split_by_tags(self.module, tags)
        except Exception as error:
            raise FxNetMinimizerBadModuleError(
                f"Cannot split the module around {sorted(n.name for n in nodes)}: {error}"
            ) from error
        finally:
            for node in self.module.graph.nodes:
                node.__dict__.pop("tag", None)
        return split_module, _SUBMODULE  # type: ignore[return-value]

    def _run_and_compare(
        self, split_module: GraphModule, submod_name: str, output_names: List[str], report_idx: int = -1
    ) -> None:
        """Run the submodule both ways and compare; raises on a mismatch or a failed run."""
        report = self.reports[report_idx] if self.reports else []
        submodule = getattr(split_module, submod_name)
        a_input, b_input = self._get_submod_inputs(split_module, submod_name)
        candidate, key = self._trimmed(submodule, output_names)
        report.append("Run and compare ...")
        try:
            a_result = self.run_a(candidate, a_input, report_idx)
            b_result = self.run_b(candidate, b_input, report_idx)
        except Exception as error:
            report.append(f"Exception raised when running {submod_name}: {error}")
            raise FxNetMinimizerRunFuncError(
                f"Exception raised when running {submod_name}: {error}"
            ) from error
        self._store_outputs(a_result, b_result, candidate)
        metric, ok = self.compare_fn(a_result, b_result, output_names)
        self.results[key] = metric
        report.append(f"Numerical accuracy = {metric}")
        if not ok:
            report.append(f"Result mismatch for {key}")
            if self.module_exporter is not None:
                exported_name = output_names[0] if output_names else self._last_checked
                self.module_exporter(a_input, candidate, exported_name + "_cpu")
                self.module_exporter(b_input, candidate, exported_name + "_acc")
            raise FxNetMinimizerResultMismatchError(f"Result mismatch for {key}")

    def _trimmed(
        self, submodule: GraphModule, output_names: List[str]
    ) -> Tuple[GraphModule, Tuple[Any, ...]]:
        """The submodule returning what is compared: all its outputs with ``all_outputs`` or no
        ``output_names``, else the value of the node named first in ``output_names``; and the key
        of its result."""
        returned = submodule.graph.output_node().args[0]
        outputs = [returned] if isinstance(returned, Node) else list(returned)
        if self.settings.all_outputs or not output_names:
            names = tuple(node.name for node in outputs)
            return submodule, ((names,) if len(names) > 1 else names)
        wanted = next((node for node in outputs if node.name == output_names[0]), outputs[-1])
        if len(outputs) == 1:
            return submodule, (wanted.name,)
        trimmed = copy.deepcopy(submodule)
        output_node = trimmed.graph.output_node()
        kept = next(node for node in trimmed.graph.nodes if node.name == wanted.name)
        output_node.args = (kept,)
        trimmed.graph.eliminate_dead_code()
        trimmed.recompile()
        return trimmed, (wanted.name,)

    def _check(self, nodes: NodeList, report: List[str], output_names: Optional[List[str]] = None) -> None:
        """Build the submodule of ``nodes`` and run/compare it (the common step of every search)."""
        selected: NodeSet = set()
        for node in nodes:
            selected.update(self.fusions.get(node, {node}))
        split_module, name = self._build_submodule(selected)
        self._last_checked = nodes[-1].name  # names exported modules when no output is named
        self._run_and_compare(split_module, name, [nodes[-1].name] if output_names is None else output_names)

    def _new_report(self, first_line: str) -> List[str]:
        report = [first_line]
        self.reports.append(report)
        return report

    # ------------------------------------------------------------------------------ searches

    def _sequential_traverse(self, nodes: NodeList) -> NodeSet:
        culprits: NodeSet = set()
        for node in nodes:
            self.iteration += 1
            report = self._new_report(f"Sequential traverse iteration {self.iteration}.")
            report.append(f"Visit node: {node.name}")
            current = [node]
            if self._all_excluded(current, -1, -1, report, f"Excluded node: {node.name}"):
                continue
            try:
                self._check(current, report, [node.name])
            except (FxNetMinimizerResultMismatchError, FxNetMinimizerRunFuncError) as failure:
                # A wrong number blames the node; a failed run blames the fusion group it is in.
                numeric = isinstance(failure, FxNetMinimizerResultMismatchError)
                culprits.update({node} if numeric else self.fusions.get(node, {node}))
                report.append(f"Found culprit from {'numeric' if numeric else 'run'} error: {node}")
                self.print_report(report)
                if not self.settings.find_all:
                    return culprits
            else:
                self.print_report(report)
        return culprits

    def _accumulate_traverse(self, nodes: NodeList) -> NodeSet:
        culprits: NodeSet = set()
        for index, node in enumerate(nodes):
            self.iteration += 1
            report = self._new_report(f"Accumulate traverse iteration {self.iteration}.")
            report.append(f"Add node: {node.name}")
            try:
                self._check(nodes[: index + 1], report, [node.name])
                self.print_report(report)
            except (FxNetMinimizerResultMismatchError, FxNetMinimizerRunFuncError) as error:
                culprits.add(node)
                kind = "" if isinstance(error, FxNetMinimizerResultMismatchError) else "from run error "
                report.append(f"Found culprit {kind}{node}")
                self.print_report(report)
                return culprits
        return culprits

    def _all_excluded(
        self, nodes: NodeList, start_idx: int, end_idx: int, report: List[str],
        note: str = "All nodes are excluded by user",
    ) -> bool:  # fmt: skip
        """Let ``exclusion_fn`` drop nodes from ``nodes`` (in place); True, reported, if none is left."""
        if self.exclusion_fn is None:
            return False
        self.exclusion_fn(nodes, start_idx, end_idx)
        if nodes:
            return False
        report.append(note)
        self.print_report(report)
        return True

    def _binary_search_impl(self, all_nodes: NodeList, start_idx: int, end_idx: int) -> NodeSet:
        nodes = all_nodes[start_idx:end_idx]
        self.iteration += 1
        report = self._new_report(f"Binary search iteration {self.iteration}")
        report.append(
            f"From node index {start_idx}:{nodes[0].name} to {end_idx - 1}:{nodes[-1].name}. "
            f"Size of the interested node list is {len(nodes)}"
        )
        current = list(nodes)
        if self._all_excluded(current, start_idx, end_idx, report):
            return set()
        try:
            self._check(current, report)
        except (FxNetMinimizerResultMismatchError, FxNetMinimizerRunFuncError):
            if len(nodes) == 1:
                report.append(
                    "This is the last node in the sub-module. Search in the current branch is successful "
                    f"with culprit = {set(nodes)}."
                )
                self.print_report(report)
                return set(nodes)
            report.append("Proceed to split and lower the halves of the current sub-module individually.")
            self.print_report(report)
            middle = start_idx + len(nodes) // 2
            culprits = self._binary_search_impl(all_nodes, start_idx, middle)
            if culprits and not self.settings.find_all:
                return culprits
            culprits = culprits | self._binary_search_impl(all_nodes, middle, end_idx)
            if not culprits:
                report.append(
                    "Further split and lowering found no errors. Unable to minimize the submodule with list "
                    f"of nodes: {nodes}"
                )
                self.print_report(report)
            return culprits
        report.append("No discrepancy found.")
        self.print_report(report)
        return set()

    def _binary_traverse(self, nodes: NodeList) -> NodeSet:
        return self._binary_search_impl(nodes, 0, len(nodes))

    def _block_traverse_impl(
        self, nodes: NodeList, start_idx: int, end_idx: int, find_last_node: bool
    ) -> Optional[int]:
        """Binary search between ``start_idx`` and ``end_idx`` for the last culprit node (over
        prefixes of ``nodes``) or the first (over suffixes)."""
        middle = (start_idx + end_idx) // 2
        block = nodes[: middle + 1] if find_last_node else nodes[middle:]
        if self.exclusion_fn is not None:
            self.exclusion_fn(block, -1, -1)
        first, last = block[0].name, block[-1].name
        self.iteration += 1
        report = self._new_report("=" * 30)
        report += [
            f"Block search iteration {self.iteration}",
            f"Search for {'last' if find_last_node else 'first'} node in culprits",
            f"From node index {start_idx}:{nodes[start_idx].name} to {end_idx}:{nodes[end_idx].name}. ",
            f"Subgraph constructed by {first} to {last}",
            f"Targeting node: {last if find_last_node else first}",
            f"Size of the interested node list is {end_idx - start_idx + 1}",
        ]
        try:
            self._check(block, report, [last])
        except (FxNetMinimizerResultMismatchError, FxNetMinimizerRunFuncError):
            report.append(f"Culprits found from node {first} to {last}.")
            if start_idx == end_idx:
                report += [
                    "This is the last node in the sub-module. ",
                    "Search in the current branch is successful with node :",
                    f"{start_idx}, node name: {nodes[start_idx].name}.",
                ]
                self.print_report(report)
                return start_idx
            report.append("Proceed to split and lower the halves of the current sub-module individually.")
            self.print_report(report)
            if find_last_node:
                return self._block_traverse_impl(nodes, start_idx, middle, find_last_node)
            return self._block_traverse_impl(nodes, middle + 1, end_idx, find_last_node)
        if find_last_node:
            report.append(f"Culprits not found from node start to {middle}:{nodes[middle].name}.")
        else:
            report.append(f"Culprits not found from node {middle}:{nodes[middle].name} to end.")
        if start_idx == end_idx:
            if find_last_node and start_idx == len(nodes) - 1:
                report.append("At last node, no culprits found.")
                self.print_report(report)
                return None
            found = start_idx + 1 if find_last_node else start_idx - 1
            report += [
                "This is the last node in the sub-module. ",
                "Search in the current branch is successful with node :",
                f"{found}, node name: {nodes[found].name if 0 <= found < len(nodes) else None}.",
            ]
            self.print_report(report)
            return found
        report.append("Proceed to split and lower the halves of the current sub-module individually.")
        self.print_report(report)
        if find_last_node:
            return self._block_traverse_impl(nodes, middle + 1, end_idx, find_last_node)
        return self._block_traverse_impl(nodes, start_idx, middle, find_last_node)

    def _block_traverse(self, nodes: NodeList, find_last_node: Optional[bool]) -> NodeSet:
        """The smallest contiguous block of nodes whose submodule fails: a binary search for its
        last node over prefixes, then (unless ``find_last_node``) for its first over suffixes."""
        report = self._new_report(f"Block search from {nodes[0].name} to {nodes[-1].name}")
        report += ["*" * 50, "Start searching for last node in culprit"]
        self.print_report(report)
        end_idx = self._block_traverse_impl(nodes, 0, len(nodes) - 1, True)
        if end_idx is None or end_idx >= len(nodes):
            report.append("No culprits found")
            self.print_report(report)
            return set()
        report += ["Finish Pass 1", f"Find end_idx = {end_idx}:{nodes[end_idx].name}"]
        self.print_report(report)
        start_idx = 0
        if not find_last_node:  # with ``find_last_node`` the block starts at the first node
            report = ["Start searching for first node in culprit"]
            self.print_report(report)
            found = self._block_traverse_impl(nodes, 0, end_idx, False)
            self.reports.append(report)  # recorded after the second pass's own reports, as torch.fx does
            start_idx = end_idx if found is None or found < 0 else found
            report += ["*" * 50, "Finish Pass 2", f"Find start_idx = {start_idx}:{nodes[start_idx].name}"]
            self.print_report(report)
        self.print_report(
            self._new_report(f"Finish searching, found minimum block ({nodes[start_idx]},{nodes[end_idx]})")
        )
        return set(nodes[start_idx : end_idx + 1])

    def _defined_traverse(self, nodes: NodeList) -> NodeSet:
        """Check the given stretch of nodes as one submodule."""
        report = self._new_report(f"Defined graph from {nodes[0].name} to {nodes[-1].name}")
        try:
            self._check(nodes, report)
            report.append("No discrepancy found.")
        except (FxNetMinimizerResultMismatchError, FxNetMinimizerRunFuncError):
            report.append(f"Found culprit {set(nodes)}")
            self.print_report(report)
            return set(nodes)
        self.print_report(report)
        return set()

    def _skip_traverse_impl(self, all_nodes: NodeList, start_idx: int, end_idx: int) -> NodeSet:
        nodes = all_nodes[start_idx:end_idx]
        self.iteration += 1
        report = self._new_report(f" Nodes block {self.iteration}.")
        report.append(
            f"From node index {start_idx} to {end_idx - 1}. Size of the interested node list is {len(nodes)}"
        )
        if self._all_excluded(nodes, start_idx, end_idx, report):
            return set()
        try:
            self._check(nodes, report, [])  # every output of the stretch is compared
        except FxNetMinimizerResultMismatchError:
            report.append(f"Found culprit from numeric error: {set(nodes)}")
            self.print_report(report)
            return set(nodes)
        except FxNetMinimizerRunFuncError:
            report.append(f"Found culprit from run error: {set(nodes)}")
            self.print_report(report)
            return set(nodes)
        report.append("No discrepancy found.")
        self.print_report(report)
        return set()

    def _skip_traverse(self, all_nodes: NodeList, skip_nodes: List[str]) -> NodeSet:
        """Check each stretch of nodes between the nodes named in ``skip_nodes`` (all of them, as
        torch.fx does; the culprits of every failing stretch are returned)."""
        culprits: NodeSet = set()
        start = 0
        for index, node in enumerate(all_nodes + [None]):  # type: ignore[operator]
            if node is None or node.name in skip_nodes:
                if index > start:
                    culprits |= self._skip_traverse_impl(all_nodes, start, index)
                start = index + 1
        return culprits

    # ------------------------------------------------------------------------------ entry points

    def _collect_nodes(self, start: Optional[str], end: Optional[str]) -> NodeList:
        """The callable nodes from the one named ``start`` to the one named ``end`` (inclusive;
        None means the first / the last)."""
        callable_nodes = [node for node in self.module.graph.nodes if node.op in CALLABLE_NODE_OPS]
        names = [node.name for node in callable_nodes]
        if start is not None and start not in names:
            return []
        first = 0 if start is None else names.index(start)
        if end in names and names.index(end) < first:
            return []  # the stretch ends before it starts
        last = names.index(end) if end in names else len(names) - 1
        return callable_nodes[first : last + 1]

    def run_nodes(self, start: Optional[str] = None, end: Optional[str] = None) -> None:
        """Run and compare the stretch ``start``..``end`` as one submodule and print the report."""
        nodes = self._collect_nodes(start, end)
        report = self._new_report(f"Run nodes from {nodes[0].name} to {nodes[-1].name}")
        try:
            self._check(nodes, report)
        except (FxNetMinimizerResultMismatchError, FxNetMinimizerRunFuncError) as error:
            report.append(str(error))
        self.print_report(report)

    def print_report(self, report: List[str]) -> None:
        """Print one report: its title, then each step after ``' . '``."""
        for index, line in enumerate(report):
            print((" . " if index else "") + line)

    def print_reports(self) -> None:
        """Print every report so far."""
        for report in self.reports:
            self.print_report(report)

    def minimize(
        self, start: Optional[str] = None, end: Optional[str] = None, skip_nodes: Optional[List[str]] = None,
        find_last_node: Optional[bool] = None,
    ) -> NodeSet:  # fmt: skip
        """Search the nodes ``start``..``end`` with ``settings.traverse_method`` and return the
        culprit nodes (empty when both runs agree everywhere)."""
        print(self.settings)
        print(self.module.graph)
        nodes = self._collect_nodes(start, end)
        method = self.settings.traverse_method
        if method == "sequential":
            return self._sequential_traverse(nodes)
        if method == "binary":
            return self._binary_traverse(nodes)
        if method == "accumulate":
            return self._accumulate_traverse(nodes)
        if method == "skip":
            if skip_nodes is None:
                raise RuntimeError("'skip_nodes' can't be None when 'traverse_method' is 'skip'.")
            return self._skip_traverse(nodes, skip_nodes)
        if method == "defined":
            return self._defined_traverse(nodes)
        if method == "block":
            return self._block_traverse(nodes, find_last_node)
        raise RuntimeError(f"Unknown traverse method {method}!")
