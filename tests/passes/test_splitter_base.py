"""passes.splitter_base against torch.fx's: the acc nodes found, the subgraphs grown, the tags,
the split modules, the printed reports and the recorded submodule inputs."""

from __future__ import annotations

import contextlib
import io
from typing import Any, Dict, List, Tuple

import pytest
import torch
import torch.fx
import torch.fx.passes.operator_support as oracle_support
import torch.fx.passes.splitter_base as oracle

import fxkit
import fxkit.passes.operator_support as fx_support
import fxkit.passes.splitter_base as ours

BOTH = [(torch.fx, oracle, oracle_support), (fxkit, ours, fx_support)]
SUPPORTED = (
    "torch.sin",
    "torch.cos",
    "_operator.add",
    "torch.relu",
    "torch.sigmoid",
    "_operator.mul",
    "size",
)


class Mixed(torch.nn.Module):
    """Acc and CPU work interleaved, with a size() feeding an acc multiply (a fusion group)."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = torch.nn.Linear(4, 4)

    def forward(self, a: torch.Tensor) -> Any:
        d = torch.sin(a) + torch.cos(a)
        f = torch.relu(self.lin(d))
        h = torch.sigmoid(f.sum()) * f.size(0)
        return h, f


class NonTensor(torch.nn.Module):
    """Acc nodes making sizes that CPU nodes read, and a size leaving through the output."""

    def forward(self, a: torch.Tensor) -> Any:
        b = torch.relu(a)
        c = torch.sin(b)
        return torch.sin(b.view(-1, b.size(1))) + c, c.size(0)


def _quiet(fn: Any) -> Tuple[Any, str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        result = fn()
    return result, out.getvalue()


def _names(nodes: Any) -> List[str]:
    return sorted(node.name for node in nodes)


def _splitter(
    libs: Any, model: torch.nn.Module, supported: Tuple[str, ...] = SUPPORTED, **settings: Any
) -> Any:
    fx, splitter_base, support = libs
    gm = fx.symbolic_trace(model)
    table = support.OperatorSupport(dict.fromkeys(supported))
    return splitter_base._SplitterBase(
        gm, (torch.randn(2, 4),), table, splitter_base._SplitterSettingBase(**settings)
    )


def _split_view(libs: Any, model: torch.nn.Module, **settings: Any) -> Dict[str, Any]:
    splitter = _splitter(libs, model, **settings)
    found = {
        "acc": _names(splitter.acc_nodes),
        "fusions": sorted(_names(g) for g in splitter.fusions.values()),
    }
    found["deps"] = sorted((node.name, _names(deps)) for node, deps in splitter.deps.items())
    # Within a subgraph, torch.fx's order among equally ready nodes follows set iteration.
    found["subgraphs"] = [(s.is_acc, _names(s.nodes)) for s in splitter.put_nodes_into_subgraphs()]
    for node in splitter.module.graph.nodes:  # start again from untagged nodes
        node.__dict__.pop("tag", None)
    split, printed = _quiet(splitter)
    found["printed"] = printed
    found["tags"] = splitter.tags
    found["map"] = sorted(splitter.get_node_submodule_map().items())
    found["children"] = [
        (name, [n.name for n in child.graph.nodes]) for name, child in split.named_children()
    ]
    found["code"] = split.code
    x = torch.randn(2, 4)
    found["runs"] = all(
        torch.equal(a, b) if isinstance(a, torch.Tensor) else a == b for a, b in zip(split(x), model(x))
    )
    return found


SETTINGS = [{}, {"min_acc_module_size": 2}, {"min_acc_module_size": 4}, {"skip_fusion": True},
            {"allow_non_tensor": True}, {"max_acc_splits": 1}, {"move_non_tensor_nodes_on_boundary": True}]  # fmt: skip


@pytest.mark.parametrize(
    "settings", SETTINGS, ids=lambda s: "-".join(f"{k}={v}" for k, v in s.items()) or "default"
)
@pytest.mark.parametrize("model_cls", [Mixed, NonTensor])
def test_split_matches_torch_fx(model_cls: type, settings: Dict[str, Any]) -> None:
    model = model_cls()
    assert _split_view(BOTH[1], model, **settings) == _split_view(BOTH[0], model, **settings)


@pytest.mark.parametrize("allow_non_tensor", [False, True])
def test_acc_nodes_finder_matches_torch_fx(allow_non_tensor: bool) -> None:
    def found(libs: Any) -> List[str]:
        fx, splitter_base, support = libs
        gm = fx.symbolic_trace(NonTensor())
        __import__(fx.__name__ + ".passes.shape_prop", fromlist=["x"]).ShapeProp(gm).propagate(
            torch.randn(2, 4)
        )
        table = support.OperatorSupport(dict.fromkeys(SUPPORTED))
        return _names(splitter_base.FxNetAccNodesFinder(gm, table, allow_non_tensor)())

    assert found(BOTH[1]) == found(BOTH[0])


def test_reports_match_torch_fx() -> None:
    def reports(libs: Any) -> List[Any]:
        splitter = _splitter(libs, Mixed())
        support, support_printed = _quiet(splitter.node_support_preview)
        preview, preview_printed = _quiet(splitter.split_preview)
        return [sorted(support.splitlines()), support_printed, preview, preview_printed]

    assert reports(BOTH[1]) == reports(BOTH[0])


def test_generate_split_results_matches_torch_fx() -> None:
    def results(libs: Any) -> List[Any]:
        result, _ = _quiet(_splitter(libs, Mixed()).generate_split_results)
        inputs = {name: [tuple(v.shape) if isinstance(v, torch.Tensor) else v for v in args]
                  for name, args in result.submodule_inputs.items()}  # fmt: skip
        return [
            type(result).__name__,
            result.non_acc_submodule_prefix,
            sorted(inputs.items()),
            result.split_module.code,
        ]

    assert results(BOTH[1]) == results(BOTH[0])


def test_reverse_deps_and_extending_a_subgraph_match_torch_fx() -> None:
    def walk(libs: Any) -> List[Any]:
        splitter = _splitter(libs, Mixed(), skip_fusion=True)
        splitter.tag(splitter.put_nodes_into_subgraphs())
        seen: List[Any] = [splitter.tags]
        for tag_id in (None, 0, 1, 2, 4, 5):
            deps = splitter.find_reverse_deps(tag_id)
            seen.append(sorted((node.name, _names(users)) for node, users in deps.items()))
        seen.append(_names(splitter.find_parent_nodes_of_subgraph("_run_on_acc_4")))
        splitter.extend_acc_subgraph("_run_on_acc_4")
        seen.append([(node.name, getattr(node, "tag", None)) for node in splitter.module.graph.nodes])
        return seen

    assert walk(BOTH[1]) == walk(BOTH[0])


class _FailingBackend:
    """Mixed into either library's splitter: lowering fails and the culprit names the ops."""

    def _lower_model_to_backend(self, mod: Any, inputs: Any) -> Any:
        raise RuntimeError("backend refused")

    def _find_culprit(self, mod: Any, inputs: Any) -> str:
        return "culprit: " + ",".join(n.name for n in mod.graph.nodes if n.op == "call_function")


def test_lowering_failure_is_reported_like_torch_fx() -> None:
    def preview(libs: Any) -> Tuple[str, str]:
        fx, splitter_base, support = libs
        failing_cls = type("Failing", (_FailingBackend, splitter_base._SplitterBase), {})
        table = support.OperatorSupport(dict.fromkeys(("torch.sin", "torch.cos", "_operator.add")))
        settings = splitter_base._SplitterSettingBase()
        return _quiet(
            failing_cls(fx.symbolic_trace(Mixed()), (torch.randn(2, 4),), table, settings).split_preview
        )

    text, printed = preview(BOTH[1])
    assert "Run into an error during lowering!\nculprit: sin,cos,add" in text
    assert (text, printed) == preview(BOTH[0])


def test_small_types_match_torch_fx() -> None:
    for _lib, splitter_base, _ in BOTH:
        settings = splitter_base._SplitterSettingBase()
        assert vars(settings) == vars(oracle._SplitterSettingBase())
        assert splitter_base.SplitResult._fields == oracle.SplitResult._fields
        assert splitter_base.Subgraph(True, []) == splitter_base.Subgraph(
            is_acc=True, nodes=[], device_ordinal=None
        )
        assert issubclass(splitter_base.FxNetSplitterInternalError, Exception)


class SizeToCpu(torch.nn.Module):
    def forward(self, a: torch.Tensor) -> torch.Tensor:
        b = torch.relu(a)
        return torch.sigmoid(b.sum()) * b.size(0) * 2


@pytest.mark.parametrize("model_cls, supported", [
    (SizeToCpu, ("torch.relu", "_operator.mul", "torch.sigmoid")), (NonTensor, ("torch.sin", "size", "torch.relu")),
])  # fmt: skip
def test_node_event_tracker_matches_torch_fx(
    model_cls: type, supported: Tuple[str, ...], tmp_path: Any
) -> None:
    def log(libs: Any) -> List[Any]:
        fx, splitter_base, support = libs
        gm = fx.symbolic_trace(model_cls())
        __import__(fx.__name__ + ".passes.shape_prop", fromlist=["x"]).ShapeProp(gm).propagate(
            torch.randn(2, 4)
        )
        finder = splitter_base.FxNetAccNodesFinder(
            gm, support.OperatorSupport(dict.fromkeys(supported)), False
        )
        lines: List[str] = [*_names(finder())]
        finder.tracker.print_all(lines.append)
        for node in gm.graph.nodes:
            finder.tracker.print_node(node.name, recursive=True, writer=lines.append)
        for mode in (0, 1, 2):
            prefix = str(tmp_path / f"{fx.__name__}_{mode}")
            tracker = splitter_base.NodeEventTracker(mode, prefix)
            tracker.add(next(iter(gm.graph.nodes)), "seen")
            tracker.dump()
            for suffix in ("_all.txt", "_nodes.txt"):
                path = tmp_path / f"{fx.__name__}_{mode}{suffix}"
                lines.append(path.read_text() if path.exists() else None)
        tracker = finder.tracker  # node_events holds positions in events, as torch.fx's does
        by_index = {
            name: [tracker.events[i].to_str() for i in found] for name, found in tracker.node_events.items()
        }
        return [tracker.to_dict(), lines, by_index]

    assert log(BOTH[1]) == log(BOTH[0])
