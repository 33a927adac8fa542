"""Damaged, truncated and foreign model files: every seeded mutation of a valid
file either loads or raises OSError/ValueError; none may crash the process or
raise anything else. The one C++ reader is shared with corenn::load_model, whose
own fuzz test (cpp/tests/test_io.cpp) runs under the sanitizers in CI."""

import json
import struct

import numpy as np
import pytest

import corenn as cn

L = cn.layers


@pytest.fixture(scope="module")
def valid_file(tmp_path_factory):
    cn.seed(11)
    model = cn.Sequential([L.Input((2, 6, 6)), L.Conv2D(3, 3, padding="same", activation="relu"),
                           L.MaxPool2D(2), L.Dropout(0.2), L.Flatten(), L.Dense(4)])
    model.compile(optimizer=cn.optimizers.Adam(1e-3), loss="softmax_cross_entropy",
                  metrics=["accuracy"])
    rng = np.random.default_rng(0)
    model.fit(rng.standard_normal((8, 2, 6, 6)), rng.integers(0, 4, 8), epochs=1, verbose=0)
    path = tmp_path_factory.mktemp("fuzz") / "valid.corenn"
    model.save(path)
    return path.read_bytes()


def split(raw):
    n = struct.unpack("<Q", raw[:8])[0]
    return json.loads(raw[8:8 + n]), raw[8 + n:]


def pack(header, data=b"", text=None):
    text = json.dumps(header) if text is None else text
    body = text.encode() if isinstance(text, str) else text
    return struct.pack("<Q", len(body)) + body + data


def load_or_error(path, raw):
    """Loads `raw` as a model file; True when it loaded (and then predicted)."""
    path.write_bytes(raw)
    try:
        model = cn.load_model(path)
    except (OSError, ValueError):
        return False
    model.predict(np.zeros((2, *model.input_shape[1:]), np.float32))
    return True


def test_the_unmutated_file_loads(valid_file, tmp_path):
    assert load_or_error(tmp_path / "m", valid_file)


def test_truncations_at_every_structural_boundary(valid_file, tmp_path):
    header, data = split(valid_file)
    n = struct.unpack("<Q", valid_file[:8])[0]
    text = valid_file[8:8 + n]
    cuts = set(range(0, 9))                                         # inside the length
    cuts |= {8 + i for i, c in enumerate(text) if chr(c) in '{}[],:"'}  # every JSON token
    cuts |= {8 + i + 1 for i, c in enumerate(text) if chr(c) in '{}[],:"'}
    cuts |= {8 + n - 1, 8 + n, 8 + n + 1}                           # header / data seam
    for entry in header.values():                                   # every tensor's ends
        if "data_offsets" in entry:
            begin, end = entry["data_offsets"]
            cuts |= {8 + n + begin, 8 + n + end - 1}
    cuts = sorted(c for c in cuts if c < len(valid_file))
    assert len(cuts) > 100
    for cut in cuts:
        assert not load_or_error(tmp_path / "m", valid_file[:cut]), cut


def test_seeded_bit_and_byte_mutations(valid_file, tmp_path):
    rng = np.random.default_rng(12)
    n = struct.unpack("<Q", valid_file[:8])[0]
    loaded = 0
    for trial in range(800):
        raw = bytearray(valid_file)
        # Mostly in the header, where the structure is; some in the data.
        at = int(rng.integers(0, 8 + n if trial % 4 else len(raw)))
        if trial % 3 == 0:
            raw[at] = int(rng.integers(0, 256))
        else:
            raw[at] ^= 1 << int(rng.integers(0, 8))
        loaded += load_or_error(tmp_path / "m", bytes(raw))
    assert 0 < loaded < 800  # some flips are harmless (weights), most are not


def test_header_lengths_beyond_the_file(valid_file, tmp_path):
    n = struct.unpack("<Q", valid_file[:8])[0]
    for bogus in (0, 1, n - 1, n + 1, len(valid_file), 100 << 20, (100 << 20) + 1, 1 << 40,
                  2**63, 2**64 - 1):
        assert not load_or_error(tmp_path / "m", struct.pack("<Q", bogus) + valid_file[8:])


def edits(header, data):
    """(name, file bytes) for each hand-made corruption of the header."""
    meta = header["__metadata__"]
    name = next(k for k in header if k.endswith("/kernel"))

    def with_tensor(**changes):
        h = json.loads(json.dumps(header))
        h[name].update(changes)
        return pack(h, data)

    def with_meta(**changes):
        h = json.loads(json.dumps(header))
        h["__metadata__"].update(changes)
        return pack(h, data)

    arch = json.loads(meta["model"])

    def with_layer(**changes):
        a = json.loads(json.dumps(arch))
        a["layers"][0].update(changes)
        return with_meta(model=json.dumps(a))

    begin, end = header[name]["data_offsets"]
    yield "offsets past the end", with_tensor(data_offsets=[begin, len(data) + 4])
    yield "offsets reversed", with_tensor(data_offsets=[end, begin])
    yield "offsets negative", with_tensor(data_offsets=[-4, end])
    yield "offsets huge", with_tensor(data_offsets=[begin, 2**63 - 1])
    yield "offsets not ints", with_tensor(data_offsets=[float(begin), end])
    yield "offsets three", with_tensor(data_offsets=[begin, end, end])
    yield "overlap", with_tensor(data_offsets=[begin + 4, end + 4])
    for dtype in ("F16", "BF16", "U8", "f32", "", 3, None):
        yield f"dtype {dtype!r}", with_tensor(dtype=dtype)
    yield "dtype F64", with_tensor(dtype="F64")
    yield "dtype I64", with_tensor(dtype="I64")
    for shape in ([], [1], [-1, 2], [2**62, 4], [2**40] * 8, [1] * 9, "3", [1.5]):
        yield f"shape {shape!r}", with_tensor(shape=shape)
    yield "extra key", with_tensor(extra=1)
    yield "missing tensor", pack({k: v for k, v in header.items() if k != name}, data)
    h = json.loads(json.dumps(header))
    h["stray"] = {"dtype": "F32", "shape": [1], "data_offsets": [len(data), len(data) + 4]}
    yield "stray tensor", pack(h, data + b"\0" * 4)
    yield "trailing bytes", pack(header, data + b"\0" * 8)
    yield "no metadata (a foreign safetensors file)", pack(
        {k: v for k, v in header.items() if k != "__metadata__"}, data)
    yield "foreign format", with_meta(format="pt")
    yield "newer version", with_meta(format_version=str(cn._core.model_file_version + 1))
    yield "version not a number", with_meta(format_version="1.0")
    yield "metadata not strings", pack({**header, "__metadata__": {**meta, "format_version": 1}}, data)
    yield "architecture not JSON", with_meta(model="{dtype: float32")
    yield "architecture nested deep", with_meta(model="[" * 100_000 + "]" * 100_000)
    yield "architecture wrong dtype", with_meta(model=json.dumps({**arch, "dtype": "int8"}))
    yield "architecture unknown entry", with_meta(model=json.dumps({**arch, "extra": 1}))
    yield "architecture no layers", with_meta(model=json.dumps({k: v for k, v in arch.items()
                                                                if k != "layers"}))
    first = arch["inputs"][0]
    for what, shape in (("zero", [0, 6, 6]), ("huge", [2**31, 2**31, 2**31])):
        yield f"input shape {what}", with_meta(model=json.dumps(
            {**arch, "inputs": [{**first, "shape": shape}, *arch["inputs"][1:]]}))
    yield "call of an unknown layer", with_meta(model=json.dumps(
        {**arch, "calls": [{**arch["calls"][0], "layer": "ghost"}, *arch["calls"][1:]]}))
    yield "output of an unknown call", with_meta(model=json.dumps(
        {**arch, "outputs": [[arch["outputs"][0][0], 7, 0]]}))
    yield "unknown layer kind", with_layer(kind="lstm")
    yield "unknown layer setting", with_layer(recurrent=True)
    yield "layer setting of the wrong type", with_layer(filters="three")
    yield "filters huge", with_layer(filters=2**31 - 1)
    yield "filters beyond int64", with_layer(filters=2**70)
    yield "kernel huge", with_layer(kernel_size=[2**30, 2**30])
    yield "duplicate names", with_meta(model=json.dumps(
        {**arch, "layers": arch["layers"] + [arch["layers"][-1]]}))
    yield "training not JSON", with_meta(training="{")
    yield "training unknown loss", with_meta(training=json.dumps(
        {**json.loads(meta["training"]), "loss": "hinge"}))
    yield "training bad lr", with_meta(training=json.dumps(
        {**json.loads(meta["training"]), "optimizer": {"kind": "adam", "adam": {"lr": -1.0}}}))
    yield "training bad key", with_meta(training=json.dumps(
        {**json.loads(meta["training"]), "dropout_key": "-1"}))
    yield "python metadata not JSON", with_meta(python="{")
    yield "python metadata unknown optimizer", with_meta(python=json.dumps(
        {"optimizer": {"class_name": "Lion", "config": {}}}))
    yield "header not JSON", pack(None, data, text="not json at all")
    yield "header invalid UTF-8", pack(None, data, text=b'{"\xff": 1}')
    yield "header an array", pack(None, data, text="[]")
    yield "header nested deep", pack(None, data, text="[" * 100_000 + "]" * 100_000)
    yield "header duplicate keys", pack(None, data, text='{"a": 1, "a": 2}')
    yield "empty file", b""
    yield "short file", b"\x01\x00"


def test_hand_made_corruptions(valid_file, tmp_path):
    header, data = split(valid_file)
    names = []
    for name, raw in edits(header, data):
        names.append(name)
        assert not load_or_error(tmp_path / "m", raw), name
    assert len(names) >= 60


def test_directories_and_missing_files(tmp_path):
    with pytest.raises(OSError):
        cn.load_model(tmp_path)
    with pytest.raises(OSError):
        cn.load_model(tmp_path / "absent")
