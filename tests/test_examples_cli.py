"""The examples' shared command line (python/corenn/examples/_cli.py): every
example takes --fast and --threads, and none writes an image into the current
folder unless given a path."""

import pkgutil
import runpy
import sys

import pytest

import corenn.examples
from corenn.examples import date_translation, detection, style_transfer

EXAMPLES = sorted(m.name for m in pkgutil.iter_modules(corenn.examples.__path__) if not m.name.startswith("_"))


@pytest.mark.parametrize("name", EXAMPLES)
def test_every_example_takes_fast_and_threads(name, monkeypatch, capsys):
    # --help exits before the run: the parser is all that executes.
    monkeypatch.setattr(sys, "argv", [name, "--help"])
    monkeypatch.delitem(sys.modules, f"corenn.examples.{name}", raising=False)  # run as a script
    with pytest.raises(SystemExit) as stop:
        runpy.run_module(f"corenn.examples.{name}", run_name="__main__")
    assert stop.value.code == 0
    usage = capsys.readouterr().out
    assert "--fast" in usage and "--threads" in usage, usage


@pytest.mark.parametrize("module, image", [(date_translation, "plot"), (detection, "png"),
                                           (style_transfer, "out_prefix")])
def test_no_image_unless_asked(module, image, monkeypatch):
    calls = []
    monkeypatch.setattr(module, "run", lambda **kwargs: calls.append(kwargs))
    module.main(["--fast"])
    assert calls[0].get(image) is None


def test_threads_option_sets_the_threads(monkeypatch):
    import corenn as cn
    calls = []
    monkeypatch.setattr(detection, "run", lambda **kwargs: calls.append(cn.get_num_threads()))
    before = cn.get_num_threads()
    try:
        detection.main(["--fast", "--threads", "1"])
    finally:
        cn.set_num_threads(before)
    assert calls == [1]
