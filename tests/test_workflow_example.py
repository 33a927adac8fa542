"""The worked example of docs/workflow.md (corenn.examples.workflow), in a
fast version: every step runs and reports, and the result is sane."""

import numpy as np

import corenn as cn
from corenn.examples import workflow


def test_workflow_example_runs_end_to_end(tmp_path, capsys):
    lines = []
    results = workflow.run(epochs=4, trials=2, seed=0, units=32, out=lines.append)
    text = "\n".join(lines)
    for step in ("1. split: 1078 train / 360 dev / 359 test", "2. standardise", "3. unregularised",
                 "largest:", "4. L2", "kept:", "5. learning rate", "6. final"):
        assert step in text
    train_error, dev_error = results["plain"]
    assert 0 <= train_error <= dev_error < 0.2
    assert 1e-5 <= results["learning_rate"] <= 1.0
    assert results["epochs_run"] <= 4 and 0 <= results["best_epoch"] < results["epochs_run"]
    assert results["test_f1"] > 0.8 and results["test_accuracy"] > 0.8
    confusion = results["confusion"]
    assert confusion.shape == (10, 10) and confusion.sum() == 359
    assert len(results["misclassified"]) == 359 - np.trace(confusion)
    assert len(results["coarse"]) == 2 and len(results["fine"]) == 2


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
