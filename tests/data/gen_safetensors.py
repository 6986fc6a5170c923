#!/usr/bin/env python3
"""tests/data/gen_safetensors.py — the reference side of the safetensors tests (io/safetensors.c).

Without arguments it writes, with the reference library (huggingface `safetensors`, its Rust serializer), the
fixtures of tests/data/safetensors/ that tests/test_safetensors.c reads and rewrites byte for byte, and the seed
corpus of tests/fuzz/corpus/safetensors/. With `--check DIR` it is the other direction, run by the test
test_safetensors_python: the reference reads every file our writer wrote into DIR (deserialize, safe_open with
numpy, and safetensors.torch.load_file when torch is importable), checks every value against the formula both
sides share, and checks that the reference would have written the same bytes (the same header, tensor order and
data; only the order of several metadata keys may differ, the reference keeps them in a hash map).

The tensors are a shared specification (the C test has the same table): element i of a tensor with seed s is
k = (i + s) % 9 mapped to its dtype — BOOL k % 2, unsigned k, signed k - 4, F8_E8M0 2^(k-4), other floats
(k - 4) / 2 — exact in every dtype. Needs: safetensors, numpy; ml_dtypes to regenerate the fixtures (the
conversion references of ref_conv come from it, independently of our decoder).
  python3 -m venv /tmp/stv && /tmp/stv/bin/pip install safetensors numpy ml_dtypes
  /tmp/stv/bin/python tests/data/gen_safetensors.py            # regenerate fixtures and seeds
"""
import json
import os
import struct
import sys

import numpy as np
from safetensors import TensorSpec, deserialize, serialize

DTYPES = ["BOOL", "U8", "I8", "U16", "I16", "U32", "I32", "U64", "I64",
          "F8_E5M2", "F8_E4M3", "F8_E8M0", "F16", "BF16", "F32", "F64"]
SIZE = {"BOOL": 1, "U8": 1, "I8": 1, "U16": 2, "I16": 2, "U32": 4, "I32": 4, "U64": 8, "I64": 8,
        "F8_E5M2": 1, "F8_E4M3": 1, "F8_E8M0": 1, "F16": 2, "BF16": 2, "F32": 4, "F64": 8}
NUMPY = {"BOOL": np.bool_, "U8": np.uint8, "I8": np.int8, "U16": np.uint16, "I16": np.int16, "U32": np.uint32,
         "I32": np.int32, "U64": np.uint64, "I64": np.int64, "F16": np.float16, "F32": np.float32,
         "F64": np.float64}
# the names TensorSpec takes
SPEC_NAME = {"BOOL": "bool", "U8": "uint8", "I8": "int8", "U16": "uint16", "I16": "int16", "U32": "uint32",
             "I32": "int32", "U64": "uint64", "I64": "int64", "F8_E5M2": "float8_e5m2",
             "F8_E4M3": "float8_e4m3fn", "F8_E8M0": "float8_e8m0fnu", "F16": "float16", "BF16": "bfloat16",
             "F32": "float32", "F64": "float64"}
SHAPES = [[7], [2, 3], [3, 1, 4], [2] * 8]
I64_EXTREMES = [-(2 ** 63), -1, 0, 1, 2 ** 63 - 1]
U64_EXTREMES = [0, 1, 2 ** 63, 2 ** 64 - 1]
NOTE = "ünïcødé \"quoted\" back\\slash\nnewline\ttab\x01/"


def numel(shape):
    n = 1
    for d in shape:
        n *= d
    return n


def value(dtype, i, seed):
    k = (i + seed) % 9
    if dtype == "BOOL":
        return k % 2
    if dtype.startswith("U"):
        return k
    if dtype.startswith("I"):
        return k - 4
    if dtype == "F8_E8M0":
        return 2.0 ** (k - 4)
    return (k - 4) * 0.5


# float8 encodings of the (exact) formula values, by decoding all 256 bytes
def f8_decode(dtype, b):
    if dtype == "F8_E8M0":
        return float("nan") if b == 0xFF else 2.0 ** (b - 127)
    sign = -1.0 if b & 0x80 else 1.0
    if dtype == "F8_E4M3":
        e, m = (b >> 3) & 15, b & 7
        if e == 15 and m == 7:
            return float("nan")
        return sign * (m * 2.0 ** -9 if e == 0 else (8 + m) * 2.0 ** (e - 10))
    e, m = (b >> 2) & 31, b & 3  # E5M2
    if e == 31:
        return float("nan") if m else sign * float("inf")
    return sign * (m * 2.0 ** -16 if e == 0 else (4 + m) * 2.0 ** (e - 17))


def encode(dtype, values):
    """raw little-endian bytes of the values in dtype"""
    if dtype in NUMPY:
        return np.array(values, dtype=NUMPY[dtype]).tobytes()
    if dtype == "BF16":
        return (np.array(values, dtype=np.float32).view(np.uint32) >> 16).astype("<u2").tobytes()
    table = {}
    for b in range(256):
        v = f8_decode(dtype, b)
        if v == v and v not in table:  # first (positive zero before negative zero)
            table[v] = b
    return bytes(table[float(v)] for v in values)


def tensor_bytes(dtype, shape, seed, name=""):
    if name == "extremes.i64":
        return np.array(I64_EXTREMES, dtype="<i8").tobytes()
    if name == "extremes.u64":
        return np.array(U64_EXTREMES, dtype="<u8").tobytes()
    return encode(dtype, [value(dtype, i, seed) for i in range(numel(shape))])


# ---- the cases (tests/test_safetensors.c has the same table) --------------------------------------------------
def case_dtypes():
    t = []
    for j, d in enumerate(DTYPES):
        t.append((d.lower() + ".full", d, SHAPES[j % 4], j))
        t.append((d.lower() + ".scalar", d, [], j + 1))
        t.append((d.lower() + ".empty", d, [3, 0], 0))
    t.append(("extremes.i64", "I64", [5], 0))
    t.append(("extremes.u64", "U64", [4], 0))
    return t, {"format": "pt"}


def case_checkpoint():
    return [("v_encoder.fc_mu.weight", "F32", [16, 24], 1), ("v_encoder.fc_mu.bias", "F32", [16], 2),
            ("step", "I64", [], 5), ("rng", "U8", [32], 3)], {"model": "teacher"}


def case_many():
    return [("layer%03d.w" % i, "F32", [i % 5 + 1], i) for i in range(300)], {}


CASES = {
    "dtypes": case_dtypes,
    "checkpoint": case_checkpoint,
    "empty": lambda: ([], {}),
    "meta_only": lambda: ([], {"model": "student", "note": NOTE}),
    "many": case_many,
}


def reference_bytes(tensors, metadata):
    keep, specs = [], {}
    for name, dtype, shape, seed in tensors:
        raw = np.frombuffer(tensor_bytes(dtype, shape, seed, name) or b"\0", dtype=np.uint8).copy()
        keep.append(raw)
        specs[name] = TensorSpec(dtype=SPEC_NAME[dtype], shape=shape, data_ptr=raw.ctypes.data,
                                 data_len=numel(shape) * SIZE[dtype])
    return bytes(serialize(specs, metadata=metadata or None))


def split(b):
    n = struct.unpack("<Q", b[:8])[0]
    return n, json.loads(b[8:8 + n], object_pairs_hook=list), b[8 + n:]


# ---- --check: the reference reads our files ---------------------------------------------------------------------
def check(dirname):
    failures = 0

    def fail(msg):
        nonlocal failures
        failures += 1
        print("FAIL:", msg)

    try:
        import torch
        from safetensors.torch import load_file as torch_load
    except ImportError:
        torch = None
    from safetensors import safe_open
    for case, make in CASES.items():
        before = failures
        tensors, metadata = make()
        path = os.path.join(dirname, case + ".safetensors")
        ours = open(path, "rb").read()
        ref = reference_bytes(tensors, metadata)
        # the bytes: identical, except that the reference orders several metadata keys as its hash map does
        if len(metadata) <= 1:
            if ours != ref:
                fail("%s: differs from the reference's bytes" % case)
        else:
            (n1, h1, d1), (n2, h2, d2) = split(ours), split(ref)
            m1 = dict(dict(h1).pop("__metadata__"))
            m2 = dict(dict(h2).pop("__metadata__"))
            if n1 != n2 or d1 != d2 or m1 != m2 or [e for e in h1 if e[0] != "__metadata__"] != \
                    [e for e in h2 if e[0] != "__metadata__"]:
                fail("%s: header or data differ from the reference's" % case)
        # the reference's own reader: validation (offsets, coverage) and every tensor's raw bytes
        got = dict(deserialize(ours))
        if sorted(got) != sorted(t[0] for t in tensors):
            fail("%s: deserialize found tensors %s" % (case, sorted(got)))
        for name, dtype, shape, seed in tensors:
            g = got.get(name)
            if g is None:
                continue
            if g["dtype"] != dtype or list(g["shape"]) != shape or bytes(g["data"]) != \
                    tensor_bytes(dtype, shape, seed, name):
                fail("%s: tensor %s: dtype %s shape %s or data differ" % (case, name, g["dtype"], g["shape"]))
        with safe_open(path, framework="numpy") as f:
            if dict(f.metadata() or {}) != metadata:
                fail("%s: metadata %r, expected %r" % (case, f.metadata(), metadata))
            for name, dtype, shape, seed in tensors:
                if dtype not in NUMPY:
                    continue  # numpy has no bfloat16/float8: checked above through deserialize
                a = f.get_tensor(name)
                want = np.frombuffer(tensor_bytes(dtype, shape, seed, name), dtype=NUMPY[dtype]).reshape(shape)
                if a.dtype != want.dtype or a.shape != want.shape or not np.array_equal(a, want):
                    fail("%s: tensor %s: numpy read %s %s" % (case, name, a.dtype, a.shape))
        if torch is not None:
            loaded = torch_load(path)
            for name, dtype, shape, seed in tensors:
                t = loaded[name]
                raw = t.contiguous().view(torch.uint8).numpy().tobytes() if t.numel() else b""
                if list(t.shape) != shape or raw != tensor_bytes(dtype, shape, seed, name):
                    fail("%s: tensor %s: torch read %s %s" % (case, name, t.dtype, list(t.shape)))
        print("%s: %d tensors, %d metadata keys: %s%s" % (case, len(tensors), len(metadata),
                                                         "FAILED" if failures > before else "ok",
                                                         "" if torch is not None else " (no torch: numpy only)"))
    return 1 if failures else 0


# ---- fixtures and seeds -----------------------------------------------------------------------------------------
def raw_file(header, data=b""):
    h = header.encode() if isinstance(header, str) else header
    return struct.pack("<Q", len(h)) + h + data


def conv_fixture():
    """every float8 byte, samples of F16/BF16 patterns and F64 values, with float32 references from ml_dtypes and
    numpy (not from our decoder)"""
    import ml_dtypes
    parts, keep = {}, []

    def add(name, dtype, raw, ref):
        a = np.frombuffer(raw, dtype=np.uint8).copy()
        r = np.ascontiguousarray(ref, dtype=np.float32).view(np.uint8).copy()
        keep.extend([a, r])
        n = len(raw) // SIZE[dtype]
        parts[name + ".bits"] = TensorSpec(dtype=SPEC_NAME[dtype], shape=[n], data_ptr=a.ctypes.data,
                                           data_len=len(raw))
        parts[name + ".f32"] = TensorSpec(dtype="float32", shape=[n], data_ptr=r.ctypes.data, data_len=4 * n)

    allb = np.arange(256, dtype=np.uint8)
    for dtype, t in (("F8_E5M2", ml_dtypes.float8_e5m2), ("F8_E4M3", ml_dtypes.float8_e4m3fn),
                     ("F8_E8M0", ml_dtypes.float8_e8m0fnu)):
        add(dtype.lower(), dtype, allb.tobytes(), allb.view(t).astype(np.float32))
    pat = np.unique(np.concatenate([np.arange(0, 65536, 61), [0, 1, 0x3ff, 0x400, 0x3c00, 0x7bff, 0x7c00, 0x7c01,
                                                              0x7e00, 0x7fff, 0x8000, 0x8001, 0xfbff, 0xfc00,
                                                              0x7f7f, 0x7f80, 0x0080, 0xff80]])).astype("<u2")
    add("f16", "F16", pat.tobytes(), pat.view(np.float16).astype(np.float32))
    add("bf16", "BF16", pat.tobytes(), pat.view(ml_dtypes.bfloat16).astype(np.float32))
    f64 = np.array([0.0, -0.0, 1.0, -2.5, 1e-300, 1.4e-45, 7e-46, 1e-40, 3.4028234663852886e38,
                    1.0 + 2.0 ** -24, 1.0 + 3 * 2.0 ** -24, 1.0 + 2.0 ** -24 + 2.0 ** -40, 0.1, np.pi, -1e30,
                    np.inf, -np.inf, np.nan], dtype="<f8")
    add("f64", "F64", f64.tobytes(), f64.astype(np.float32))
    return bytes(serialize(parts, metadata={"about": "conversion references: ml_dtypes and numpy"}))


def generate(root):
    data_dir = os.path.join(root, "tests", "data", "safetensors")
    seed_dir = os.path.join(root, "tests", "fuzz", "corpus", "safetensors")
    os.makedirs(data_dir, exist_ok=True)
    os.makedirs(seed_dir, exist_ok=True)
    files = {}
    for case in ("dtypes", "checkpoint", "empty", "meta_only"):
        files["ref_" + case] = reference_bytes(*CASES[case]())
    files["ref_conv"] = conv_fixture()
    for name, b in files.items():
        with open(os.path.join(data_dir, name + ".safetensors"), "wb") as f:
            f.write(b)
    seeds = {name: files[name] for name in ("ref_checkpoint", "ref_empty", "ref_meta_only", "ref_dtypes")}
    e = '"dtype":"%s","shape":%s,"data_offsets":[%d,%d]'
    seeds.update({
        "tiny": raw_file('{"a":{%s},"b":{%s}}' % (e % ("F32", "[2]", 0, 8), e % ("U8", "[3]", 8, 11)),
                         struct.pack("<2f", 1.5, -2) + b"\x01\x02\x03"),
        "f8_bf16": raw_file('{"x":{%s},"y":{%s},"z":{%s}}' % (e % ("BF16", "[2]", 0, 4), e % ("F8_E4M3", "[2]", 4, 6),
                                                                 e % ("F8_E8M0", "[1]", 6, 7)),
                            b"\x80\x3f\x00\xc0\x38\xff\x7f"),
        "overlap": raw_file('{"a":{%s},"b":{%s}}' % (e % ("U8", "[4]", 0, 4), e % ("U8", "[2]", 2, 4)), b"abcd"),
        "hole": raw_file('{"a":{%s}}' % (e % ("U8", "[2]", 2, 4)), b"abcd"),
        "trailing": raw_file('{"a":{%s}}' % (e % ("U8", "[2]", 0, 2)), b"abcd"),
        "duplicate": raw_file('{"a":{%s},"a":{%s}}' % (e % ("U8", "[1]", 0, 1), e % ("U8", "[1]", 0, 1)), b"x"),
        "f4": raw_file('{"a":{%s}}' % (e % ("F4", "[2]", 0, 1)), b"x"),
        "bool_bad": raw_file('{"__metadata__":{"k":"v"},"a":{%s}}' % (e % ("BOOL", "[2]", 0, 2)), b"\x01\x07"),
        "unaligned_f32": raw_file('{"a":{%s},"b":{%s}}' % (e % ("U8", "[1]", 0, 1), e % ("F32", "[1]", 1, 5)),
                                  b"x\x00\x00\x80\x3f"),
        "big_shape": raw_file('{"a":{%s}}' % (e % ("F64", "[4611686018427387904,4,0]", 0, 0))),
    })
    for name, b in seeds.items():
        with open(os.path.join(seed_dir, name + ".safetensors"), "wb") as f:
            f.write(b)
    print("wrote %d fixtures to %s and %d seeds to %s" % (len(files), data_dir, len(seeds), seed_dir))


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--check":
        sys.exit(check(sys.argv[2]))
    if len(sys.argv) != 1:
        sys.exit("usage: gen_safetensors.py [--check DIR]")
    generate(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
