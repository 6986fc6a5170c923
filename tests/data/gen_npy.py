#!/usr/bin/python3
"""tests/data/gen_npy.py — writes the .npy/.npz fixtures of tests/test_npy.c and tests/test_npz.c with NumPy itself.

Run with Debian's /usr/bin/python3 (NumPy 1.24) from anywhere; it rewrites tests/data/npy/ and tests/data/npz/ and
their manifest.txt. The fixtures cover every dtype the reader accepts, both byte orders, format versions 1.0, 2.0
and 3.0, C and Fortran order, 0-d/1-d/2-d and zero-size shapes, special floats, values that must be refused by
the int64 or float32 conversions, object arrays, and archives from np.savez, np.savez_compressed and zipfile with
force_zip64 (plus a member that is not a .npy, which the reader skips).

manifest.txt: one line per array, whitespace-separated:
    SRC DTYPE FORTRAN BIG VERSION NDIM DIMS... f32 EXPECT i64 EXPECT
SRC is npy/<file> or npz/<archive>:<member>; DTYPE is NumPy's name (float32, object, ...); EXPECT is
    fail          the conversion must be refused
    ok V...       it must give exactly these values (C order; float32 values as Python reprs, nan/inf included)
    mod M         it must give value k % M at flat index k (big members, to keep the manifest small)
"""
import io
import os
import sys
import zipfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
NPY_DIR = os.path.join(HERE, "npy")
NPZ_DIR = os.path.join(HERE, "npz")
FLT_MAX = float(np.finfo(np.float32).max)

lines = []


def expect_f32(a):
    if a.dtype == object:
        return "fail"
    flat = a.ravel(order="C")
    if a.dtype.kind == "f" and a.dtype.itemsize == 8:
        f = flat[np.isfinite(flat)]
        if f.size and np.abs(f).max() > FLT_MAX:
            return "fail"
    with np.errstate(all="ignore"):
        vals = flat.astype(np.float32)
    return "ok " + " ".join(repr(float(v)) for v in vals) if vals.size else "ok"


def expect_i64(a):
    if a.dtype == object:
        return "fail"
    flat = a.ravel(order="C")
    if a.dtype.kind == "u" and a.dtype.itemsize == 8 and flat.size and int(flat.max()) > 2**63 - 1:
        return "fail"
    if a.dtype.kind == "f":
        for v in flat.tolist():
            v = float(v)
            if not (v == v and -(2.0**63) <= v < 2.0**63 and v == int(v)):
                return "fail"
        vals = [int(float(v)) for v in flat.tolist()]
    else:
        vals = [int(v) for v in flat.tolist()]
    return "ok " + " ".join(str(v) for v in vals) if vals else "ok"


def record(src, a, version, fortran, expect=None):
    big = 1 if (a.dtype.byteorder == ">" and a.dtype.itemsize > 1) else 0
    dims = " ".join(str(d) for d in a.shape)
    name = "object" if a.dtype == object else a.dtype.name
    f32, i64 = expect if expect else (expect_f32(a), expect_i64(a))
    line = f"{src} {name} {int(fortran)} {big} {version} {a.ndim} {dims} f32 {f32} i64 {i64}"
    lines.append(" ".join(line.split()))


def save_npy(fname, a, version=(1, 0)):
    """write a with NumPy's own writer; fortran_order as NumPy decides (F-contiguous and not C-contiguous)"""
    path = os.path.join(NPY_DIR, fname)
    with open(path, "wb") as f:
        np.lib.format.write_array(f, a, version=version, allow_pickle=True)
    with open(path, "rb") as f:  # what the header really says
        v = np.lib.format.read_magic(f)
        _, fortran, _ = np.lib.format._read_array_header(f, v)
    record("npy/" + fname, a, v[0], fortran)


def base_values(dt, n):
    """deterministic values spanning the type: min, max, then a multiplicative hash over the range"""
    dt = np.dtype(dt)
    if dt.kind == "b":
        return np.array([k % 3 == 0 for k in range(n)], dtype=dt)
    if dt.kind in "iu":
        info = np.iinfo(dt)
        lo, hi = int(info.min), int(info.max)
        vals = [lo + (k * 0x9E3779B97F4A7C15) % (hi - lo + 1) for k in range(n)]
        if n > 2:
            vals[0], vals[1] = lo, hi
        return np.array(vals, dtype=dt.newbyteorder("="))
    return np.array([(k - 3) * 1.25 + k * 2.0**-10 for k in range(n)], dtype=dt.newbyteorder("="))


def as_order(a, byteorder):
    return a.astype(a.dtype.newbyteorder(byteorder))


def main():
    for d in (NPY_DIR, NPZ_DIR):
        os.makedirs(d, exist_ok=True)
        for f in os.listdir(d):
            os.remove(os.path.join(d, f))

    dtypes = ["b1", "i1", "i2", "i4", "i8", "u1", "u2", "u4", "u8", "f2", "f4", "f8"]
    for code in dtypes:
        dt = np.dtype(code)
        orders = ["<", ">"] if dt.itemsize > 1 else ["|"]
        tag = dt.name
        for bo in orders:
            e = {"<": "le", ">": "be", "|": "na"}[bo]
            save_npy(f"{tag}_{e}_0d.npy", as_order(base_values(dt, 1).reshape(()), bo))
            save_npy(f"{tag}_{e}_1d.npy", as_order(base_values(dt, 7), bo))
            m = as_order(base_values(dt, 12).reshape(3, 4), bo)
            save_npy(f"{tag}_{e}_2d_c.npy", np.ascontiguousarray(m))
            save_npy(f"{tag}_{e}_2d_f.npy", np.asfortranarray(m))
        # format versions 2.0 and 3.0 for every dtype (little-endian C order, big-endian Fortran order)
        m = base_values(dt, 15).reshape(3, 5)
        save_npy(f"{tag}_v2_c.npy", as_order(m, orders[0]), version=(2, 0))
        save_npy(f"{tag}_v3_f.npy", np.asfortranarray(as_order(m, orders[-1])), version=(3, 0))
    save_npy("f4_v2_f_be.npy", np.asfortranarray(as_order(base_values("f4", 6).reshape(2, 3), ">")), (2, 0))
    save_npy("i2_v3_1d.npy", base_values("i2", 5), (3, 0))

    # zero-size arrays
    save_npy("zero_1d_f4.npy", np.zeros((0,), np.float32))
    save_npy("zero_2d_rows_i8.npy", np.zeros((0, 3), np.int64))
    save_npy("zero_2d_cols_f8_be.npy", np.zeros((2, 0), ">f8"))
    # Fortran order with a dimension of 1: NumPy writes fortran_order False (the layouts agree)
    save_npy("f4_f_col.npy", np.asfortranarray(base_values("f4", 4).reshape(4, 1)))

    # special floats: subnormals, extremes, signed zero, inf, nan
    f16_special = [0.0, -0.0, 2.0**-24, 2.0**-20, -(2.0**-14), 65504.0, -65504.0, 1.0 / 3, float("inf"),
                   float("-inf"), float("nan"), 0.099975586]
    f32_special = [0.0, -0.0, 1e-45, 1.1754944e-38, FLT_MAX, -FLT_MAX, 16777217.0, 0.1, float("inf"),
                   float("-inf"), float("nan"), -2.5]
    f64_special = [0.0, -0.0, 5e-324, 1e-300, FLT_MAX, -FLT_MAX, 0.1, 1.0 / 3, float("inf"), float("-inf"),
                   float("nan"), 123456789.123456789]
    for code, vals in (("f2", f16_special), ("f4", f32_special), ("f8", f64_special)):
        for bo, e in (("<", "le"), (">", "be")):
            save_npy(f"special_{np.dtype(code).name}_{e}.npy", np.array(vals, dtype=bo + code).reshape(3, 4))
    # float64 -> float32 refusals and limits
    save_npy("f8_overflow_f32.npy", np.array([[1.0, 2.0], [1e300, 4.0]], dtype="<f8"))
    save_npy("f8_overflow_neg_be.npy", np.array([1.0, -3.5e38], dtype=">f8"))
    # int64 from floats: accepted when integral and in range, refused otherwise
    save_npy("f8_integral.npy", np.array([[0.0, -1.0, 3.0], [2.0**53, -(2.0**63), 17.0]], dtype="<f8"))
    save_npy("f4_integral_be.npy", np.array([1.0, 2.0, -7.0, 16777216.0], dtype=">f4"))
    save_npy("f2_integral.npy", np.array([1.0, -2048.0, 65504.0], dtype="<f2"))
    save_npy("f4_fraction.npy", np.array([1.0, 2.5], dtype="<f4"))
    save_npy("f8_2pow63.npy", np.array([2.0**63], dtype="<f8"))
    save_npy("f8_nan_i64.npy", np.array([1.0, float("nan")], dtype="<f8"))
    save_npy("f2_inf_i64.npy", np.array([float("inf")], dtype="<f2"))
    # uint64 beyond int64, and uint64 that fits
    save_npy("u8_max.npy", np.array([1, 2**64 - 1], dtype="<u8"))
    save_npy("u8_small_be.npy", np.array([[0, 1, 2**63 - 1], [5, 6, 7]], dtype=">u8"))
    save_npy("i8_extremes.npy", np.array([-(2**63), 2**63 - 1, -1, 0], dtype="<i8"))

    # object arrays (header only; the payload is a pickle)
    obj = np.empty((2, 3), dtype=object)
    for r in range(2):
        obj[r] = [r, r + 10, f"[{r}]"]
    save_npy("object_2d.npy", obj)
    obj1 = np.empty((3,), dtype=object)
    for r in range(3):
        obj1[r] = [r, 1.5 * r]
    save_npy("object_1d_v3.npy", obj1, version=(3, 0))

    # ---- npz ----
    def npz_records(archive, arrays):
        for key, a in arrays.items():
            fortran = a.ndim == 2 and a.flags.f_contiguous and not a.flags.c_contiguous
            record(f"npz/{archive}:{key}", a, 1, fortran)

    arrays = {
        "features": base_values("f4", 12).reshape(3, 4),
        "ids": base_values("i8", 5),
        "scalar": np.array(7, dtype="<u2"),
        "fortran_be": np.asfortranarray(as_order(base_values("f8", 6).reshape(2, 3), ">")),
        "half": np.array(f16_special, dtype="<f2"),
        "empty": np.zeros((0, 4), np.float32),
    }
    np.savez(os.path.join(NPZ_DIR, "savez.npz"), base_values("i4", 4), **arrays)
    npz_records("savez.npz", dict(arr_0=base_values("i4", 4), **arrays))

    big = (np.arange(40000) % 97).astype("<i2")  # 80 KB that deflates to almost nothing
    comp = dict(arrays, big=big, obj=obj)
    np.savez_compressed(os.path.join(NPZ_DIR, "savez_compressed.npz"), **comp)
    npz_records("savez_compressed.npz", {k: v for k, v in comp.items() if k not in ("big",)})
    lines.append("npz/savez_compressed.npz:big int16 0 0 1 1 40000 f32 mod 97 i64 mod 97")

    # zipfile with force_zip64 on both compression methods, plus a member that is not a .npy (skipped)
    zpath = os.path.join(NPZ_DIR, "zip64_forced.npz")
    with zipfile.ZipFile(zpath, "w", allowZip64=True) as zf:
        for key, a, method in (("stored", base_values("u4", 6).reshape(2, 3), zipfile.ZIP_STORED),
                               ("deflated", base_values("f8", 8), zipfile.ZIP_DEFLATED)):
            zi = zipfile.ZipInfo(key + ".npy", date_time=(2024, 1, 1, 0, 0, 0))
            zi.compress_type = method
            with zf.open(zi, "w", force_zip64=True) as fid:
                np.lib.format.write_array(fid, a)
            record(f"npz/zip64_forced.npz:{key}", a, 1, False)
        zf.writestr("readme.txt", "not an array\n")

    with open(os.path.join(HERE, "manifest.txt"), "w") as f:
        f.write("# written by tests/data/gen_npy.py (NumPy %s); see its docstring for the format\n" % np.__version__)
        f.write("\n".join(lines) + "\n")
    total = sum(os.path.getsize(os.path.join(d, x)) for d in (NPY_DIR, NPZ_DIR) for x in os.listdir(d))
    total += os.path.getsize(os.path.join(HERE, "manifest.txt"))
    print(f"{len(lines)} arrays, {total} bytes", file=sys.stderr)


if __name__ == "__main__":
    main()
