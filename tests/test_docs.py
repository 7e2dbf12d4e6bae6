"""Runs every ```python block of README.md and docs/*.md.

Blocks of one file run in order in one shared namespace and one temporary working directory, so a
later block may use what an earlier one defined. A block whose preceding non-blank line is
``<!-- skip-test -->`` is not run. Tracebacks point at the Markdown file's own line numbers.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
SKIP_MARKER = "<!-- skip-test -->"
_FENCE = re.compile(r"^(\s*)(`{3,}|~{3,})\s*(\S*)")


@dataclass(frozen=True)
class CodeBlock:
    path: Path
    index: int  # position among the file's python blocks
    first_line: int  # 1-based line of the first code line in the file
    source: str
    skipped: bool

    @property
    def test_id(self) -> str:
        return f"{self.path.relative_to(REPO_ROOT)}:{self.first_line}"


def python_blocks(path: Path) -> list[CodeBlock]:
    """The fenced ```python blocks of a Markdown file, in order."""
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks: list[CodeBlock] = []
    line_no = 0
    while line_no < len(lines):
        opening = _FENCE.match(lines[line_no])
        if not opening:
            line_no += 1
            continue
        indent, fence, language = opening.groups()
        end = line_no + 1
        while end < len(lines) and not lines[end].strip().startswith(fence):
            end += 1
        if language.lower() in ("python", "py", "python3"):
            body = [
                line[len(indent) :] if line.startswith(indent) else line for line in lines[line_no + 1 : end]
            ]
            previous = next((lines[i].strip() for i in range(line_no - 1, -1, -1) if lines[i].strip()), "")
            blocks.append(
                CodeBlock(path, len(blocks), line_no + 2, "\n".join(body) + "\n", previous == SKIP_MARKER)
            )
        line_no = end + 1
    return blocks


def documented_files() -> list[Path]:
    return [REPO_ROOT / "README.md", *sorted((REPO_ROOT / "docs").glob("*.md"))]


ALL_BLOCKS = [block for path in documented_files() if path.exists() for block in python_blocks(path)]


@dataclass
class _FileRun:
    """What the blocks of one file have done so far."""

    workdir: Path
    namespace: dict[str, Any] = field(default_factory=lambda: {"__name__": "__doc_example__"})
    next_index: int = 0
    failed_at: CodeBlock | None = None


_runs: dict[Path, _FileRun] = {}


def _execute(block: CodeBlock, namespace: dict[str, Any]) -> None:
    # Leading newlines make the compiled line numbers those of the Markdown file.
    code = compile("\n" * (block.first_line - 1) + block.source, str(block.path), "exec")
    exec(code, namespace)


def _run_through(block: CodeBlock, tmp_path_factory: pytest.TempPathFactory) -> None:
    """Run the file's blocks up to and including ``block`` (earlier ones only once)."""
    run = _runs.get(block.path)
    if run is None or run.next_index > block.index:
        run = _FileRun(tmp_path_factory.mktemp(block.path.stem))
        _runs[block.path] = run
    siblings = [b for b in ALL_BLOCKS if b.path == block.path]
    previous_cwd = os.getcwd()
    os.chdir(run.workdir)
    try:
        while run.next_index <= block.index:
            current = siblings[run.next_index]
            if run.failed_at is not None:
                pytest.fail(f"not run: the earlier block at {run.failed_at.test_id} failed")
            run.next_index += 1
            if current.skipped:
                continue
            try:
                _execute(current, run.namespace)
            except BaseException:
                run.failed_at = current
                raise
    finally:
        os.chdir(previous_cwd)


@pytest.mark.parametrize("block", ALL_BLOCKS, ids=[block.test_id for block in ALL_BLOCKS])
def test_doc_example_runs(block: CodeBlock, tmp_path_factory: pytest.TempPathFactory) -> None:
    if block.skipped:
        pytest.skip(f"marked {SKIP_MARKER}")
    _run_through(block, tmp_path_factory)


def test_block_extraction(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "# Title\n"
        "```python\n"
        "a = 1\n"
        "```\n"
        "text\n"
        "```bash\n"
        "echo no\n"
        "```\n"
        "<!-- skip-test -->\n"
        "\n"
        "```python\n"
        "raise SystemExit\n"
        "```\n"
        "- item\n"
        "  ```python\n"
        "  b = a + 1\n"
        "  ```\n",
        encoding="utf-8",
    )
    blocks = python_blocks(page)
    assert [b.source for b in blocks] == ["a = 1\n", "raise SystemExit\n", "b = a + 1\n"]
    assert [b.skipped for b in blocks] == [False, True, False]
    assert [b.first_line for b in blocks] == [3, 12, 16]


def test_tracebacks_point_at_markdown_lines(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text("intro\n\n```python\nx = 1\ny = 1 / 0\n```\n", encoding="utf-8")
    (block,) = python_blocks(page)
    with pytest.raises(ZeroDivisionError) as excinfo:
        _execute(block, {})
    assert excinfo.traceback[-1].lineno + 1 == 5
    assert Path(str(excinfo.traceback[-1].path)) == page


def test_readme_has_a_runnable_example() -> None:
    readme_blocks = [b for b in ALL_BLOCKS if b.path.name == "README.md"]
    assert any(not b.skipped for b in readme_blocks)
