"""The HTML view, loaded in a real browser (headless Chromium): what the page shows after its
script ran (the DOM), and a screenshot that shows the graph."""

from __future__ import annotations

import re
import struct
import subprocess
import time
import zlib

import pytest
import torch

import fxkit
from fxkit import view, zoo
from fxkit.cli import main


def browser(chromium, tmp_path, url, *extra):
    command = [
        chromium,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}",
        *extra,
        url,
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=180)


def dom(chromium, tmp_path, page, fragment=""):
    path = tmp_path / "page.html"
    path.write_text(page, encoding="utf-8")
    done = browser(chromium, tmp_path, f"file://{path}{fragment}", "--dump-dom")
    assert done.returncode == 0, done.stderr[-2000:]
    assert 'data-ready="yes"' in done.stdout, "the page's script did not finish"
    return done.stdout


def test_page_groups_by_module_shows_shapes_and_node_details(chromium, tmp_path):
    model = zoo.get_model("resnet")
    traced = fxkit.symbolic_trace(model)
    page = view.to_html(traced, zoo.example_inputs("resnet"))
    assert "http://" not in page and "https://" not in page  # self-contained: nothing to fetch
    shown = dom(chromium, tmp_path, page, "#node=layer1_0_conv1&q=bn")
    for child, _ in model.named_children():
        assert f'data-group="{child}"' in shown
    # Selecting a node opened its groups and filled the side panel from the graph itself.
    node = next(n for n in traced.graph.nodes if n.name == "layer1_0_conv1")
    assert '<div id="side"><h3>layer1_0_conv1</h3>' in shown
    assert "<pre>layer1 &gt; layer1.0 &gt; layer1.0.conv1</pre>" in shown
    assert f"<pre>{node.target}</pre>" in shown
    assert 'layer1_0_conv1 = getattr(self.layer1, "0").conv1(relu)' in shown
    shape = node.meta["tensor_meta"].shape
    assert f'<span class="shape">float32[{", ".join(map(str, shape))}]</span>' in shown
    matches = sum("bn" in f"{n.name} {n.op} {n.target}".lower() for n in traced.graph.nodes)
    assert f"{matches} matches" in shown


def test_captured_guards_are_highlighted(chromium, tmp_path):
    class Branchy(torch.nn.Module):
        def forward(self, x):
            if x.shape[0] == 2:
                return x.relu()
            return x

    result = fxkit.capture(Branchy(), (torch.randn(2, 3),))
    guards = [n.name for n in result.graph_module.graph.nodes if "guard" in n.meta]
    assert guards
    shown = dom(chromium, tmp_path, view.to_html(result.graph_module), f"#node={guards[0]}")
    assert f'class="node guard sel" data-name="{guards[0]}"' in shown
    assert "capture guard: checked each time the graph runs" in shown


def test_diff_shows_both_sides_and_what_changed(chromium, tmp_path):
    before = fxkit.symbolic_trace(zoo.get_model("mlp"))
    after = fxkit.symbolic_trace(zoo.get_model("mlp"))
    for node in after.graph.find_nodes(op="call_function", target=torch.relu):
        node.target = torch.sigmoid
    after.recompile()
    shown = dom(chromium, tmp_path, view.diff_html(before, after))
    assert shown.count('class="pane"') == 2
    changed = len(list(after.graph.find_nodes(op="call_function", target=torch.sigmoid)))
    assert len(re.findall(r'class="node[^"]* only"', shown)) == 2 * changed  # outlined on both sides


def _big_graph(nodes):
    graph = fxkit.Graph()
    value = graph.placeholder("x")
    for index in range(nodes):
        value = graph.call_function(torch.relu, (value,))
        block, layer = divmod(index, 100)
        value.meta["nn_module_stack"] = {
            f"block{block}": (f"block{block}", torch.nn.Module),
            f"block{block}.layer{layer // 10}": (f"block{block}.layer{layer // 10}", torch.nn.Module),
        }
    graph.output(value)
    return fxkit.GraphModule(torch.nn.Module(), graph)


@pytest.mark.slow
def test_a_10k_node_graph_opens_quickly_and_draws_only_what_is_open(chromium, tmp_path):
    big = _big_graph(10_000)
    started = time.perf_counter()
    page = view.to_html(big)
    shown = dom(chromium, tmp_path, page, "#node=relu_5555")
    seconds = time.perf_counter() - started
    assert seconds < 60, seconds
    assert shown.count('class="group"') < 200  # 100 top-level blocks + the opened block's layers
    assert shown.count('class="node') < 500  # only the opened group's nodes are in the DOM
    assert '<div id="side"><h3>relu_5555</h3>' in shown


def _png_pixels(data):
    """(width, height, rows of RGB(A) bytes) of an 8-bit PNG, decoded with zlib alone."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    position, chunks, header = 8, [], None
    while position < len(data):
        (length,) = struct.unpack(">I", data[position : position + 4])
        kind = data[position + 4 : position + 8]
        body = data[position + 8 : position + 8 + length]
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            chunks.append(body)
        position += 12 + length
    width, height, depth, color = header[:4]
    assert depth == 8 and color in (2, 6)
    channels = 3 if color == 2 else 4
    raw = zlib.decompress(b"".join(chunks))
    stride = width * channels
    rows, previous = [], bytearray(stride)
    for y in range(height):
        kind = raw[y * (stride + 1)]
        row = bytearray(raw[y * (stride + 1) + 1 : (y + 1) * (stride + 1)])
        for i in range(stride):
            left = row[i - channels] if i >= channels else 0
            up = previous[i]
            corner = previous[i - channels] if i >= channels else 0
            if kind == 1:
                row[i] = (row[i] + left) & 255
            elif kind == 2:
                row[i] = (row[i] + up) & 255
            elif kind == 3:
                row[i] = (row[i] + (left + up) // 2) & 255
            elif kind == 4:
                p = left + up - corner
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - corner)
                row[i] = (row[i] + (left if pa <= pb and pa <= pc else up if pb <= pc else corner)) & 255
        rows.append(bytes(row))
        previous = row
    return width, height, channels, rows


def test_screenshot_shows_the_graph(chromium, tmp_path):
    page = view.to_html(fxkit.symbolic_trace(zoo.get_model("resnet")))
    path = tmp_path / "page.html"
    path.write_text(page, encoding="utf-8")
    shot = tmp_path / "shot.png"
    done = browser(chromium, tmp_path, f"file://{path}", f"--screenshot={shot}", "--window-size=900,600")
    assert done.returncode == 0 and shot.exists(), done.stderr[-2000:]
    width, height, channels, rows = _png_pixels(shot.read_bytes())
    # The group headers are drawn in their own colour (#eef3fb): the tree is on screen, not a blank page.
    header = bytes((0xEE, 0xF3, 0xFB))
    header_pixels = sum(
        rows[y][x * channels : x * channels + 3] == header for y in range(height) for x in range(0, width, 3)
    )
    assert header_pixels > 200
    dark = sum(
        max(rows[y][x * channels : x * channels + 3]) < 100 for y in range(height) for x in range(0, width, 3)
    )
    assert dark > 100  # text


def test_cli_save_view_and_diff(chromium, tmp_path, capsys):
    saved = tmp_path / "mlp.fxkit"
    assert main(["save", "mlp", "-o", str(saved)]) == 0
    assert fxkit.load(saved).code == fxkit.symbolic_trace(zoo.get_model("mlp")).code
    page = tmp_path / "mlp.html"
    assert main(["view", str(saved), "-o", str(page)]) == 0
    shown = dom(chromium, tmp_path, page.read_text(encoding="utf-8"))
    assert "MLP (7 nodes)" in shown
    assert '<span class="shape">float32[' in shown  # `save` propagated shapes; the file carries them
    assert main(["view", "mlp", "-o", str(page)]) == 0
    assert "float32[" in page.read_text(encoding="utf-8")  # a zoo model has example inputs: shapes
    assert main(["diff", "mlp", str(saved), "-o", str(page)]) == 0
    assert dom(chromium, tmp_path, page.read_text(encoding="utf-8")).count('class="pane"') == 2
    capsys.readouterr()
    assert main(["view", str(tmp_path / "page.html"), "-o", str(page)]) == 1
    assert "not an fxkit file" in capsys.readouterr().err


def test_notebook_display():
    shown = view.View(fxkit.symbolic_trace(zoo.get_model("mlp")))._repr_html_()
    assert shown.startswith("<iframe srcdoc=") and "&lt;script" in shown
