"""The documentation runs as written: every ```python block of README.md and
docs/*.md is executed, in order, by Sybil's Markdown parser.

Each document gets a fresh namespace (its blocks share it, top to bottom, as a
reader's session would), a temporary working directory (so `model.save("m.corenn")`
writes nothing into the checkout), `cn.seed(0)` and one thread (as the pages'
printouts were made; and on a busy machine all-core training runs many times
slower than one thread). A block that cannot run on
its own is preceded by `<!-- skip: next -->`; setup a reader does not need to
see goes in an `<!-- invisible-code-block: python ... -->` comment. A failing
block is reported with its file and line."""

import tomllib
from pathlib import Path

import pytest
from sybil import Sybil
from sybil.evaluators.python import PythonEvaluator
from sybil.parsers.markdown import PythonCodeBlockParser, SkipParser

import corenn as cn

ROOT = Path(__file__).resolve().parent.parent
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SYBIL = Sybil(parsers=[PythonCodeBlockParser(), SkipParser()])


@pytest.mark.parametrize("path", DOCUMENTS, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_python_blocks_run(path, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    threads = cn.get_num_threads()
    cn.set_num_threads(1)
    cn.seed(0)
    document = SYBIL.parse(path)
    document.namespace["__file__"] = str(path)   # a page's hidden checks may read the page itself
    try:
        for example in document:
            try:
                example.evaluate()
            except Exception as error:
                raise AssertionError(f"{path.relative_to(ROOT)}, block at line {example.line}: "
                                     f"{type(error).__name__}: {error}") from error
    finally:
        cn.set_num_threads(threads)


def test_every_python_block_is_collected():
    # The parser must see every block (a misspelt info string or an unclosed
    # fence would silently test nothing): find the fences by hand and compare.
    for path in DOCUMENTS:
        lines = path.read_text(encoding="utf-8").splitlines()
        fences = {i + 1 for i, line in enumerate(lines) if line.strip() == "```python"}
        collected = {e.line for e in SYBIL.parse(path) if isinstance(e.region.evaluator, PythonEvaluator)}
        assert fences <= collected, f"{path.name}: blocks at lines {sorted(fences - collected)} not collected"


def test_test_group_equals_test_extra():
    # README's second command installs the PEP 735 group; `pip install .[test]`
    # the extra. They are one list written twice: keep them equal.
    with open(ROOT / "pyproject.toml", "rb") as f:
        project = tomllib.load(f)
    assert project["dependency-groups"]["test"] == project["project"]["optional-dependencies"]["test"]
