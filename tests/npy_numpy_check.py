#!/usr/bin/python3
"""tests/npy_numpy_check.py — NumPy's verdict on io/npy.c's writer.

Runs tests/npy_write_sample (argv[1]) into a fresh directory (argv[2]) and loads every file with NumPy: dtype, byte
order, shape, memory order, format version and every element's bits must be what the C side meant, and the file
must be byte for byte what NumPy's own writer produces for that array and version. Exit 0 pass, 1 fail, 77 skipped
(no NumPy)."""
import io
import os
import shutil
import subprocess
import sys

try:
    import numpy as np
except ImportError:
    print("no NumPy: skipped")
    sys.exit(77)

TYPES = {"bool": "b1", "int8": "i1", "int16": "i2", "int32": "i4", "int64": "i8", "uint8": "u1", "uint16": "u2",
         "uint32": "u4", "uint64": "u8", "float16": "f2", "float32": "f4", "float64": "f8"}
SHAPES = {"0d": (), "1d": (5,), "2d": (3, 4), "2d_empty": (0, 3), "2d_row": (1, 5), "2d_tall": (70, 3)}


def sample_bits(name, k):
    x = ((k + 1) * 0x9E3779B97F4A7C15) % 2**64
    size = np.dtype(TYPES[name]).itemsize
    if name == "bool":
        return int(k % 3 == 0)
    x >>= 64 - 8 * size
    if name == "float16" and x & 0x7C00 == 0x7C00:
        x &= ~0x0400
    if name == "float32" and x & 0x7F800000 == 0x7F800000:
        x &= ~0x00800000
    if name == "float64" and x & 0x7FF0000000000000 == 0x7FF0000000000000:
        x &= ~0x0010000000000000
    return x


def main():
    exe, out = sys.argv[1], sys.argv[2]
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(out)
    subprocess.run([exe, out], check=True)
    failures, checked = [], 0
    for fname in sorted(os.listdir(out)):
        path = os.path.join(out, fname)
        if ".tmp." in fname:
            failures.append(f"{fname}: temporary file left behind")
            continue
        with open(path, "rb") as f:
            raw = f.read()
            f.seek(0)
            version = np.lib.format.read_magic(f)
        want_version = int(fname.split("_v")[1][0]) if "_v" in fname else 1
        if version != (want_version or 1, 0):
            failures.append(f"{fname}: version {version}")
        if fname.startswith("object_"):
            value = np.load(path, allow_pickle=True)
            if value != [1, 2]:
                failures.append(f"{fname}: object payload {value!r}")
            buf = io.BytesIO()
            np.lib.format._write_array_header(buf, {"descr": "|O", "fortran_order": False, "shape": (2,)},
                                              version if want_version else None)
            if not raw.startswith(buf.getvalue()):
                failures.append(f"{fname}: header differs from NumPy's")
            checked += 1
            continue
        name, bo, order, _, tag = fname[:-4].split("_", 4)
        a = np.load(path)
        code = TYPES[name]
        size = np.dtype(code).itemsize
        want_dtype = np.dtype((">" if bo == "be" else "<") + code) if size > 1 else np.dtype(code)
        shape = SHAPES[tag]
        if a.dtype != want_dtype or a.shape != shape:
            failures.append(f"{fname}: {a.dtype} {a.shape}, expected {want_dtype} {shape}")
            continue
        n = int(np.prod(shape)) if shape else 1
        expect = np.array([sample_bits(name, k) for k in range(n)], dtype=np.uint64)
        native = a.astype(a.dtype.newbyteorder("=")).reshape(-1)  # C order
        bits = native.view(np.uint8 if size == 1 else np.dtype(f"u{size}")).astype(np.uint64)
        if not np.array_equal(bits, expect):
            failures.append(f"{fname}: values differ at {np.flatnonzero(bits != expect)[:5]}")
        fortran = order == "f" and len(shape) == 2 and shape[0] > 1 and shape[1] > 1
        if fortran != (a.flags.f_contiguous and not a.flags.c_contiguous):
            failures.append(f"{fname}: memory order")
        buf = io.BytesIO()
        np.lib.format.write_array(buf, a, version=(want_version, 0) if want_version else None)
        if buf.getvalue() != raw:
            failures.append(f"{fname}: bytes differ from what NumPy writes for the same array")
        checked += 1
    for f in failures[:20]:
        print("FAIL", f)
    print(f"{checked} files checked with NumPy {np.__version__}, {len(failures)} failures")
    shutil.rmtree(out, ignore_errors=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
