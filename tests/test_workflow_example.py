"""The worked example of docs/workflow.md (corenn.examples.workflow), in a
fast version: every step runs and reports, and the result is sane."""

import re
from pathlib import Path

import numpy as np
import pytest

import corenn as cn
from corenn.examples import workflow

PAGE = Path(__file__).resolve().parent.parent / "docs" / "workflow.md"


@pytest.fixture(scope="module")
def short_run():
    lines = []
    results = workflow.run(epochs=4, trials=2, seed=0, units=32, out=lines.append)
    return results, lines


def assert_search_claims(results):
    """What step 5 claims about its learning-rate search: each pass draws its
    trials from its own space and lists them best first; the fine space is the
    coarse one narrowed around the coarse pass's top trials (refine's top_k=3);
    the rate kept is the best trial of BOTH passes. A tuner that samples
    outside its range, sorts the wrong way, refines around other trials or
    keeps another trial fails here."""
    coarse, fine = results["coarse"], results["fine"]
    for search in (coarse, fine):
        space = search.space["learning_rate"]
        rates = [r["learning_rate"] for r in search]
        assert all(space.low <= rate <= space.high for rate in rates), (space, rates)
        assert len(set(rates)) == len(rates), rates  # independent draws, not one value
        accuracies = [r["dev_accuracy"] for r in search]
        assert accuracies == sorted(accuracies, reverse=True), accuracies
    wide, narrow = coarse.space["learning_rate"], fine.space["learning_rate"]
    assert wide.low <= narrow.low < narrow.high <= wide.high, (wide, narrow)
    top = [r["learning_rate"] for r in coarse.rows[:3]]
    assert narrow.low <= min(top) and max(top) <= narrow.high, (narrow, top)
    trials = [*coarse, *fine]
    kept = [r["dev_accuracy"] for r in trials if r["learning_rate"] == results["learning_rate"]]
    assert kept and kept[0] == max(r["dev_accuracy"] for r in trials)


def test_workflow_example_runs_end_to_end(short_run):
    results, lines = short_run
    text = "\n".join(lines)
    for step in ("1. split: 1078 train / 360 dev / 359 test", "2. standardise", "3. unregularised",
                 "largest:", "4. L2", "kept:", "5. learning rate", "6. final"):
        assert step in text
    train_error, dev_error = results["plain"]
    assert 0 <= train_error <= dev_error < 0.2
    assert_search_claims(results)
    assert results["epochs_run"] <= 4 and 0 <= results["best_epoch"] < results["epochs_run"]
    assert results["test_f1"] > 0.8 and results["test_accuracy"] > 0.8
    confusion = results["confusion"]
    assert confusion.shape == (10, 10) and confusion.sum() == 359
    assert len(results["misclassified"]) == 359 - np.trace(confusion)
    assert len(results["coarse"]) == 2 and len(results["fine"]) == 2


def _draw_below_the_range(self, u):
    return float(10.0 ** (u - self._hi + self._lo - 1))  # always < low


def _broken_tuners(monkeypatch, kind):
    random_search, refine, select = cn.tuning.random_search, cn.tuning.refine, cn.metrics.select
    if kind == "samples outside the space":
        monkeypatch.setattr(cn.tuning.LogUniform, "_value", _draw_below_the_range)
    elif kind == "sorts worst first":
        monkeypatch.setattr(cn.tuning, "random_search", lambda *a, **k: random_search(*a, **{**k, "mode": "min"}))
    elif kind == "refines around the worst trials":
        def worst_first(results, top_k=3, margin=0.1):
            results.rows.reverse()
            try:
                return refine(results, top_k=1, margin=0.01)
            finally:
                results.rows.reverse()
        monkeypatch.setattr(cn.tuning, "refine", worst_first)
    elif kind == "keeps the worst trial":
        monkeypatch.setattr(cn.metrics, "select", lambda c, o, s=None, mode="max":
                            select(c, o, s, mode="min" if mode == "max" else "max"))


@pytest.mark.parametrize("kind", ["samples outside the space", "sorts worst first",
                                  "refines around the worst trials", "keeps the worst trial"])
def test_search_claims_fail_when_the_tuner_is_broken(monkeypatch, kind):
    def small_run():
        return workflow.run(epochs=1, trials=4, seed=0, units=8, out=lambda line: None)

    assert_search_claims(small_run())  # the same small run passes with the real tuner
    _broken_tuners(monkeypatch, kind)
    with pytest.raises(AssertionError):
        assert_search_claims(small_run())


def test_workflow_command_line_writes_the_learning_curves(tmp_path, capsys):
    before = cn.get_num_threads()
    try:
        workflow.main(["--epochs", "2", "--trials", "1", "--units", "16", "--threads", "1",
                       "--plot", str(tmp_path / "c.png")])
    finally:
        cn.set_num_threads(before)
    assert "6. final" in capsys.readouterr().out
    with open(tmp_path / "c.png", "rb") as f:
        assert f.read(4) == b"\x89PNG"


def _blocks(page):
    return dict(re.findall(r"<!-- workflow output: (\d+) -->\n```text\n(.*?)\n```", page, flags=re.S))


def test_the_page_holds_the_programs_printout(short_run):
    # docs/workflow.md's printouts are written by `--doc` (fill_doc), one block
    # per step: filling the page with its own blocks changes nothing, and
    # filling it with another run replaces exactly those blocks.
    page = PAGE.read_text(encoding="utf-8")
    blocks = _blocks(page)
    assert sorted(blocks) == ["1", "2", "3", "4", "5", "6"]
    assert workflow.fill_doc(page, [blocks[k] for k in sorted(blocks)]) == page
    refilled = workflow.fill_doc(page, short_run[1])
    assert _blocks(refilled) != blocks
    assert re.sub(r"```text\n.*?\n```", "", refilled, flags=re.S) == re.sub(r"```text\n.*?\n```", "", page,
                                                                             flags=re.S)
    with pytest.raises(ValueError, match="the run printed steps"):
        workflow.fill_doc(page, short_run[1][:3])


def test_the_pages_numbers_agree_with_each_other():
    # What the page's printout says it kept is what its own tables show best.
    blocks = _blocks(PAGE.read_text(encoding="utf-8"))
    errors = [float(e) for e in re.findall(r"dev error (\d\.\d+)", blocks["3"] + blocks["4"])]
    kept_error = float(re.search(r"kept: .*\(dev error (\d\.\d+)\)", blocks["4"]).group(1))
    assert kept_error == min(errors[:-1])
    trials = re.findall(r"^ +\d+ +(\S+) +(\S+)$", blocks["5"], flags=re.M)
    best_rate, best_accuracy = max(trials, key=lambda t: float(t[1]))
    kept = re.search(r"kept: learning rate (\S+) \(dev accuracy (\S+),", blocks["5"])
    assert (kept.group(1), kept.group(2)) == (best_rate, best_accuracy)   # both printed with 4 digits
    assert re.search(r"learning rate (\S+),", blocks["6"]).group(1) == kept.group(1)
