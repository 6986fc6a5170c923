#!/usr/bin/python3
"""tests/pickle_numpy_check.py DIR — run by test_pickle_numpy: NumPy loads the .npy files that io/pickle_write.c
and npy_write_object wrote into DIR, and each must equal the same rows built in Python (writer_ref_values() of
tests/data/gen_pickle.py) in shape, values and element types. With NumPy 1.x the pickle payload must also be
byte-identical to pickle.dumps(rows, protocol=3) — what np.save itself writes after the header."""
import math
import os
import pickle
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "data"))
import gen_pickle  # noqa: E402

failures = 0


def fail(msg):
    global failures
    failures += 1
    print("FAIL:", msg)


def same(a, b, where):
    if type(a) is not type(b):
        fail("%s: element type %s, expected %s" % (where, type(a).__name__, type(b).__name__))
        return
    if isinstance(a, np.ndarray):
        if a.dtype != b.dtype or a.shape != b.shape or not np.array_equal(a, b):
            fail("%s: array %s %s differs from %s %s" % (where, a.dtype, a.shape, b.dtype, b.shape))
    elif isinstance(a, list):
        if len(a) != len(b):
            fail("%s: list of %d, expected %d" % (where, len(a), len(b)))
        for k, (x, y) in enumerate(zip(a, b)):
            same(x, y, "%s[%d]" % (where, k))
    elif isinstance(a, float):
        if not (a == b or (math.isnan(a) and math.isnan(b))) or math.copysign(1, a) != math.copysign(1, b):
            fail("%s: %r, expected %r" % (where, a, b))
    elif a != b:
        fail("%s: %r, expected %r" % (where, a, b))


def main():
    d = sys.argv[1]
    refs = gen_pickle.writer_ref_values()
    for name, ref in refs.items():
        path = os.path.join(d, name + ".npy")
        a = np.load(path, allow_pickle=True)
        if a.dtype != object or a.shape != ref.shape:
            fail("%s: %s %s, expected object %s" % (name, a.dtype, a.shape, ref.shape))
            continue
        for idx in np.ndindex(ref.shape):
            same(a[idx], ref[idx], "%s%s" % (name, list(idx)))
        with open(path, "rb") as f:
            raw = f.read()
        major = np.lib.format.read_magic(open(path, "rb"))
        hlen = int.from_bytes(raw[8:10], "little") + 10 if major[0] == 1 else int.from_bytes(raw[8:12], "little") + 12
        if int(np.__version__.split(".")[0]) < 2 and raw[hlen:] != pickle.dumps(ref, protocol=3):
            fail("%s: pickle payload differs from NumPy's" % name)
        print("%s: ok (%d elements)" % (name, ref.size))
    print("%d failures" % failures)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
