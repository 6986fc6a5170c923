#!/usr/bin/python3
"""tests/data/gen_pickle.py — writes the pickle fixtures of tests/test_pickle.c with NumPy and CPython themselves.

Run it twice, from anywhere, to rewrite tests/data/pickle/:
    /usr/bin/python3 tests/data/gen_pickle.py          # Debian's NumPy 1.24: numpy.core names, tag np1,
                                                        # plus the hostile streams and the writer references
    /tmp/np2/bin/python tests/data/gen_pickle.py       # a throwaway venv with NumPy 2.x: numpy._core names, tag np2
(python3 -m venv /tmp/np2 && /tmp/np2/bin/pip install numpy; the venv is not part of the tree.)

Files, all raw pickle streams (what follows the '|O' header of an .npy):
    <case>.<tag>.p<N>.pkl   pickle.dumps(value, protocol=N) for N = 2..5: object arrays in C and Fortran order with
                            every kind of element the reader supports (ints, floats, str, bytes, lists, tuples, None,
                            bools, NumPy scalars of every supported dtype, nested int64/float32/float16/big-endian
                            ndarrays), numeric arrays pickled directly (protocol 5 uses numeric._frombuffer with an
                            in-band bytearray), rows shaped like DebCM's train.npy and 100neg/*.npy, 0-d and empty
                            arrays, batches past 1000 items and memo indices past 255, shared sub-objects.
    manifest.<tag>.txt      FILE<TAB>EXPECTED: EXPECTED is the value rendered canonically (render() below; the C
                            test renders the loaded tree the same way and compares the strings).
    bad_<name>.pkl          hostile or malformed streams, built by hand or by NumPy (unsupported dtypes).
    manifest.bad.txt        FILE<TAB>PHRASE: the load must fail with a one-line message containing PHRASE.
    writer_<name>.np1.pkl   what NumPy 1.24 writes for rows that tests/test_pickle.c also writes with
                            io/pickle_write.c from the same formulas: the two must be byte-identical.
"""
import os
import pickle
import struct
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "pickle")
NP2 = int(np.__version__.split(".")[0]) >= 2
TAG = "np2" if NP2 else "np1"


def render(x):
    """Canonical text of a value, as the C test renders a pv tree (NumPy scalars become int/float/bool)."""
    if x is None:
        return "N"
    if isinstance(x, (bool, np.bool_)):
        return "T" if x else "F"
    if isinstance(x, (int, np.integer)):
        return "i%d" % int(x)
    if isinstance(x, (float, np.floating)):
        f = float(x)
        return "fnan" if f != f else "f" + struct.pack(">d", f).hex()
    if isinstance(x, str):
        return "s" + x.encode("utf-8", "surrogatepass").hex()
    if isinstance(x, (bytes, bytearray)):
        return "b" + bytes(x).hex()
    if isinstance(x, list):
        return "[" + ",".join(render(e) for e in x) + "]"
    if isinstance(x, tuple):
        return "(" + ",".join(render(e) for e in x) + ")"
    if isinstance(x, np.ndarray):
        shape = "x".join(str(d) for d in x.shape)
        if x.dtype == object:
            return "O(" + shape + ")[" + ",".join(render(e) for e in x.flat) + "]"
        fortran = x.ndim == 2 and x.flags.f_contiguous and not x.flags.c_contiguous
        data = x.tobytes(order="F" if fortran else "C")
        return "A" + x.dtype.str + ("F" if fortran else "C") + "(" + shape + ")" + data.hex()
    raise TypeError(type(x))


def objarr(items, shape=None):
    a = np.empty(len(items), dtype=object)
    for i, v in enumerate(items):
        a[i] = v
    return a.reshape(shape) if shape is not None else a


def cases():
    c = {}
    mixed = [
        1, -7, 2**40, -2**63, 2**63 - 1, 1.5, -0.0, float("inf"), "héllo €", "", "x", b"\x00\xffab",
        b"", None, True, False, [1, [2.5, "x"], ()], (1, "a", None, (2,)), (), [],
        np.arange(5, dtype=np.int64), np.array([1.5, -2], dtype=np.float32),
        np.array([1, 0.5, 65504], dtype=np.float16),
        np.arange(3, dtype=">i4"), np.arange(6, dtype=np.int64).reshape(2, 3),
        np.asfortranarray(np.arange(6, dtype=np.float64).reshape(2, 3)),
        np.arange(12, dtype=np.int8).reshape(3, 4)[:, ::2],
        np.float64(0.1), np.int64(-3), np.True_,
    ]
    c["mixed_C"] = objarr(mixed, (5, 6))
    c["mixed_F"] = np.asfortranarray(objarr(mixed, (5, 6)))
    c["mixed_1d"] = objarr(mixed)
    c["scalars"] = objarr([
        np.bool_(True), np.bool_(False), np.int8(-5), np.int16(-300), np.int32(-70000), np.int64(-2**62),
        np.uint8(200), np.uint16(60000), np.uint32(4000000000), np.uint64(2**63 - 1), np.float16(1.5),
        np.float16(-65504), np.float16(6e-8), np.float16("inf"), np.float16("nan"), np.float32(0.1),
        np.float32("-inf"), np.float64(0.1), np.float64(1e308),
    ])
    c["num_i8_2d_C"] = np.arange(6, dtype=np.int64).reshape(2, 3)
    c["num_i8_2d_F"] = np.asfortranarray(np.arange(6, dtype=np.int64).reshape(2, 3))
    c["num_f4_be"] = np.array([[1.5, -2], [3.25, 1e-3]], dtype=">f4")
    c["num_f2"] = np.array([0, 1, -2.5, 65504], dtype=np.float16)
    c["num_b1"] = np.array([True, False, True])
    c["num_u8"] = np.array([0, 2**64 - 1], dtype=np.uint64)  # raw payload: fine as an array, refused as a scalar
    c["num_u2_be"] = np.array([1, 65535], dtype=">u2")
    c["num_empty"] = np.zeros((0, 3), dtype=np.float64)
    c["num_0d"] = np.array(3.25)
    c["num_noncontig"] = np.arange(12, dtype=np.int32).reshape(3, 4)[:, ::2]
    train = []
    for i in range(4):
        train += [i * 7 + 3, (i * 13) % 300, "[%d]" % (i % 6), [(i * 6 + g + 1) / 1000.0 for g in range(6)],
                  1.0 / (i + 2)]
    c["train"] = objarr(train, (4, 5))
    train64 = []
    for i in range(3):
        train64 += [np.int64(i * 7 + 3), np.int64(i), "[%d]" % i, [0.5] * 6, 0.25]
    c["train_np64"] = objarr(train64, (3, 5))
    rng = np.random.default_rng(1)
    neg = []
    for i in range(3):
        neg += [1000 + i, 5 * i, rng.integers(0, 300, size=100).astype(np.int64)]
    c["neg"] = objarr(neg, (3, 3))
    c["zero_d"] = objarr([[1, "a"]], ())
    c["empty"] = np.empty((0,), dtype=object)
    c["empty_2d"] = np.empty((2, 0), dtype=object)
    c["big"] = objarr([i if i % 2 else "s%d" % i for i in range(2001)])  # APPENDS batches + APPEND, LONG_BINPUT
    shared_list = [1.0, 2.0]
    shared_str = "shared-string"
    c["shared"] = objarr([shared_list, shared_list, shared_str, shared_str, (shared_list,)])
    nested = 7
    for _ in range(20):
        nested = [nested]
    c["nested20"] = objarr([nested])
    return c


def w(name, data):
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(data)


def gen_valid():
    lines = []
    for name, value in cases().items():
        for proto in (2, 3, 4, 5):
            fn = "%s.%s.p%d.pkl" % (name, TAG, proto)
            w(fn, pickle.dumps(value, protocol=proto))
            lines.append(fn + "\t" + render(value))
    with open(os.path.join(OUT, "manifest.%s.txt" % TAG), "w") as f:
        f.write("\n".join(lines) + "\n")


# ---- hostile streams (NumPy 1.24 run only) --------------------------------------------------------------------

def u32(n):
    return struct.pack("<I", n)


def u64(n):
    return struct.pack("<Q", n)


def sbu(s):  # SHORT_BINUNICODE
    b = s.encode()
    return b"\x8c" + bytes([len(b)]) + b


def bu(s):  # BINUNICODE
    b = s.encode()
    return b"X" + u32(len(b)) + b


def sbb(b):  # SHORT_BINBYTES
    return b"C" + bytes([len(b)]) + b


def glob(mod, name):
    return b"c" + mod.encode() + b"\n" + name.encode() + b"\n"


P3 = b"\x80\x03"
RECON = glob("numpy.core.multiarray", "_reconstruct")
NDARRAY = glob("numpy", "ndarray")
DTYPE = glob("numpy", "dtype")


def dtype(descr, order="<", flags=0):
    return (DTYPE + bu(descr) + b"\x89\x88\x87R" + b"(K\x03" + bu(order) + b"NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xff"
            + b"K" + bytes([flags]) + b"tb")


def head():
    return RECON + NDARRAY + b"K\x00\x85" + sbb(b"b") + b"\x87R"


def array(shape_ops, dt, fortran, data):
    return head() + b"(K\x01" + shape_ops + dt + (b"\x88" if fortran else b"\x89") + data + b"tb"


def longint(v):  # LONG1
    n = (v.bit_length() + 8) // 8
    return b"\x8a" + bytes([n]) + v.to_bytes(n, "little", signed=True)


def gen_bad():
    bad = {}

    def add(name, data, phrase):
        bad[name] = (data, phrase)

    add("os_system", b"cos\nsystem\n" + bu("echo hi") + b"\x85R.", "global 'os.system' is not allowed")
    add("posix_system", P3 + glob("posix", "system") + bu("echo hi") + b"\x85R.",
        "global 'posix.system' is not allowed")
    add("builtins_eval", b"\x80\x04" + sbu("builtins") + sbu("eval") + b"\x93" + sbu("1+1") + b"\x85R.",
        "global 'builtins.eval' is not allowed")
    add("subprocess_popen", P3 + glob("subprocess", "Popen") + b"(" + bu("ls") + b"lR.",
        "global 'subprocess.Popen' is not allowed")
    add("builtins_getattr", P3 + glob("builtins", "getattr") + NDARRAY + bu("__init__") + b"\x86R.",
        "global 'builtins.getattr' is not allowed")
    add("numpy_load", P3 + glob("numpy", "load") + bu("/etc/passwd") + b"\x85R.", "global 'numpy.load' is not allowed")
    add("reconstruct_wrong_class", P3 + RECON + DTYPE + b"K\x00\x85" + sbb(b"b") + b"\x87R.",
        "_reconstruct expects (numpy.ndarray, (0,), b'b')")
    add("reconstruct_wrong_count", P3 + RECON + NDARRAY + b"\x85R.", "_reconstruct expects")
    add("reconstruct_wrong_typecode", P3 + RECON + NDARRAY + b"K\x00\x85" + sbb(b"O") + b"\x87R.",
        "_reconstruct expects")
    add("reduce_on_dtype", P3 + dtype("i8") + b")R.", "REDUCE on a numpy.dtype object")
    add("reduce_on_str", P3 + bu("os") + b")R.", "REDUCE on a str")
    add("reduce_on_ndarray_class", P3 + NDARRAY + b")R.", "REDUCE on global numpy.ndarray")
    add("reduce_args_not_tuple", P3 + DTYPE + b"]R.", "REDUCE arguments are a list")
    add("huge_unicode8", b"\x80\x04\x8d" + u64(2**62) + b"abc.", "length 4611686018427387904 runs past the end")
    add("huge_binbytes8", b"\x80\x04\x8e" + u64(2**64 - 1) + b".", "runs past the end")
    add("huge_bytearray8", b"\x80\x05\x96" + u64(2**63) + b".", "runs past the end")
    add("huge_binunicode", P3 + b"X\xff\xff\xff\xff.", "runs past the end")
    add("huge_memo", P3 + b"]r\xf0\xff\xff\xff.", "memo index 4294967280 is too large")
    add("memo_ahead", P3 + b"]q\x20.", "memo index 32 is too large")
    add("binget_unset", P3 + b"Nq\x00h\x05.", "memo entry 5 was never set")
    add("long_binget_unset", P3 + b"j\x00\x00\x01\x00.", "memo entry 65536 was never set")
    add("put_empty_stack", P3 + b"q\x00N.", "stack underflow")
    add("underflow_append", P3 + b"a.", "stack underflow")
    add("underflow_reduce", P3 + b"N(R.", "stack underflow")
    add("underflow_tuple2", P3 + b"N\x86.", "stack underflow")
    add("underflow_pop", P3 + b"0.", "stack underflow")
    add("appends_no_list", P3 + b"(Ne.", "APPENDS finds no list")
    add("appends_tuple", P3 + b")(Ne.", "APPENDS to a tuple")
    add("append_str", P3 + bu("s") + b"Na.", "APPEND to a str")
    add("tuple_no_mark", P3 + b"Nt.", "TUPLE without a MARK")
    add("appends_no_mark", P3 + b"]Ne.", "APPENDS without a MARK")
    add("pop_mark_no_mark", P3 + b"N1.", "POP_MARK without a MARK")
    add("stop_open_mark", P3 + b"(N.", "MARK still open")
    add("stop_two_values", P3 + b"NN.", "expected exactly 1")
    add("stop_empty", P3 + b".", "STOP with 0 values")
    add("missing_stop", P3 + b"N", "missing STOP")
    add("empty_input", b"", "missing STOP")
    add("trailing_bytes", P3 + b"N.xyz", "3 bytes after STOP")
    add("proto6", b"\x80\x06N.", "protocol 6 is not supported")
    add("proto1_text_int", b"I1\n.", "opcode INT (0x49) is not supported")
    add("text_string", b"S'x'\n.", "opcode STRING")
    add("inst", P3 + b"(ios\nsystem\n.", "opcode INST")
    add("obj", P3 + b"(" + NDARRAY + b"o.", "opcode OBJ")
    add("newobj", P3 + NDARRAY + b")\x81.", "opcode NEWOBJ")
    add("ext1", P3 + b"\x82\x01.", "opcode EXT1")
    add("persid", P3 + b"Pfoo\n.", "opcode PERSID")
    add("binpersid", P3 + b"NQ.", "opcode BINPERSID")
    add("empty_dict", P3 + b"}.", "opcode EMPTY_DICT")
    add("empty_set", b"\x80\x04\x8f.", "opcode EMPTY_SET")
    add("unknown_opcode", P3 + b"\xff.", "unknown opcode 0xff")
    add("next_buffer", b"\x80\x05\x97.", "out-of-band buffers are not available")
    add("readonly_buffer", b"\x80\x05N\x98.", "out-of-band buffers")
    add("long1_9bytes", P3 + b"\x8a\x09" + b"\x00" * 8 + b"\x01.", "LONG1 integer of 9 bytes does not fit in int64")
    add("long4_huge", P3 + b"\x8b\xff\xff\xff\x7f.", "LONG4 integer of 2147483647 bytes does not fit in int64")
    add("long4_negative", P3 + b"\x8b\xff\xff\xff\xff.", "LONG4 with a negative length")
    add("bytes_mismatch", P3 + array(b"K\x03\x85", dtype("i8"), False, sbb(b"\x00" * 16)),
        "payload of 16 bytes, expected 24")
    add("shape_overflow", P3 + array(longint(2**62) + b"K\x08\x86", dtype("i8"), False, sbb(b"")),
        "overflows int64")
    add("shape_bytes_overflow", P3 + array(longint(2**61) + b"K\x02\x86", dtype("i8"), False, sbb(b"")),
        "overflow")
    add("shape_negative", P3 + array(b"J\xff\xff\xff\xff\x85", dtype("i8"), False, sbb(b"")), "negative dimension")
    add("shape_not_int", P3 + array(b"G" + struct.pack(">d", 2.0) + b"\x85", dtype("i8"), False, sbb(b"")),
        "shape item 0 is a float")
    add("object_list_short", P3 + array(b"K\x03\x85", dtype("O8", "|", 63), False, b"](NNe"),
        "needs 3 items, the list has 2")
    add("object_payload_bytes", P3 + array(b"K\x01\x85", dtype("O8", "|", 63), False, sbb(b"x" * 8)),
        "expected a list")
    add("numeric_payload_list", P3 + array(b"K\x01\x85", dtype("i8"), False, b"]"), "expected bytes")
    add("ndarray_state_short", P3 + head() + b"K\x01\x85b.", "ndarray state is a tuple of 1")
    add("build_twice", P3 + array(b"K\x00\x85", dtype("i8"), False, sbb(b"")) + b"(K\x01K\x00\x85" + dtype("i8")
        + b"\x89" + sbb(b"") + b"tb.", "BUILD on an ndarray that already has its state")
    add("dtype_build_twice", P3 + dtype("i8") + b"(K\x03" + bu("<") + b"NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb.",
        "BUILD on a numpy.dtype that already has its state")
    add("build_on_str", P3 + bu("x") + b")b.", "BUILD on a str")
    add("build_on_list", P3 + b"])b.", "BUILD on a list")
    add("dtype_bad_order", P3 + dtype("i8", "|") + b".", "byte order '|' for the 8-byte dtype 'i8'")
    add("dtype_bad_state", P3 + DTYPE + bu("i8") + b"\x89\x88\x87R" + b"(K\x03" + bu("<") + b"tb.",
        "dtype state is a tuple of 2 items")
    add("dtype_structured", P3 + DTYPE + bu("i8") + b"\x89\x88\x87R" + b"(K\x03" + bu("<") + b"N(" + bu("a")
        + b"tNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb.", "structured or subarray dtypes are not supported")
    add("dtype_args", P3 + DTYPE + b"K\x01\x85R.", "numpy.dtype expects (str, bool, bool)")
    add("dtype_unknown", P3 + DTYPE + bu("i16") + b"\x89\x88\x87R.", "dtype 'i16' is not supported")
    add("dtype_as_value", P3 + dtype("i8") + b".", "the pickle's value is a numpy.dtype object")
    add("dtype_in_list", P3 + b"]" + dtype("i8") + b"a.", "a numpy.dtype object cannot be a list item")
    add("dtype_in_tuple", P3 + dtype("i8") + b"\x85.", "a numpy.dtype object inside a tuple")
    add("global_as_value", P3 + NDARRAY + b".", "global numpy.ndarray")
    add("scalar_len", P3 + glob("numpy.core.multiarray", "scalar") + dtype("i8") + sbb(b"\x01\x02\x03\x04")
        + b"\x86R.", "scalar of dtype 'i8' needs 8 bytes, found 4")
    add("scalar_object", P3 + glob("numpy.core.multiarray", "scalar") + dtype("O8", "|", 63) + b"N\x86R.",
        "scalar expects (numpy.dtype, bytes)")
    add("scalar_object_bytes", P3 + glob("numpy.core.multiarray", "scalar") + dtype("O8", "|", 63)
        + sbb(b"\x00" * 8) + b"\x86R.", "numpy object scalars are not supported")
    add("codecs_utf8", b"\x80\x02" + glob("_codecs", "encode") + bu("x") + bu("utf8") + b"\x86R.",
        "encoding 'utf8' is not allowed")
    add("codecs_not_latin1", b"\x80\x02" + glob("_codecs", "encode") + bu("€") + bu("latin1") + b"\x86R.",
        "is not latin-1")
    add("bytes_with_args", b"\x80\x02" + glob("__builtin__", "bytes") + b"K\x05\x85R.", "builtins.bytes with arguments")
    add("frombuffer_object", b"\x80\x05" + glob("numpy.core.numeric", "_frombuffer") + b"(" + sbb(b"")
        + dtype("O8", "|", 63) + b"K\x00\x85" + sbu("C") + b"tR.", "_frombuffer with dtype object is not valid")
    add("frombuffer_order", b"\x80\x05" + glob("numpy.core.numeric", "_frombuffer") + b"(" + sbb(b"\x00" * 8)
        + dtype("i8") + b"K\x01\x85" + sbu("K") + b"tR.", "_frombuffer order must be 'C' or 'F'")
    add("frombuffer_len", b"\x80\x05" + glob("numpy._core.numeric", "_frombuffer") + b"(" + sbb(b"\x00" * 7)
        + dtype("i8") + b"K\x01\x85" + sbu("C") + b"tR.", "payload of 7 bytes, expected 8")
    add("stack_global_not_str", b"\x80\x04K\x01K\x02\x93.", "STACK_GLOBAL on a int and a int")
    add("bad_utf8", P3 + b"X\x02\x00\x00\x00\xc3\x28.", "not valid UTF-8")
    add("overlong_utf8", P3 + b"X\x02\x00\x00\x00\xc0\xaf.", "not valid UTF-8")
    add("global_no_eol", P3 + b"cnumpy", "no end of line")
    add("global_long", P3 + b"c" + b"a" * 300 + b"\nb\n.", "longer than 256 bytes")
    add("frame_past_end", b"\x80\x04\x95" + u64(1000) + b"N.", "FRAME of 1000 bytes runs past the end")
    add("truncated_binint", P3 + b"J\x01\x02", "BININT needs 4 argument bytes, only 2 left")
    add("recursive_list", P3 + b"]q\x00h\x00a.", "recursive structure: a list contains itself")
    add("recursive_list_via_tuple", P3 + b"]q\x00h\x00\x85a.", "recursive structure")
    add("recursive_array", P3 + head() + b"q\x00(K\x01K\x01\x85" + dtype("O8", "|", 63) + b"\x89]h\x00atb.",
        "recursive structure: a ndarray contains itself")
    # a list of two copies of a list of two copies of ...: 2^40 values once expanded, 40 levels deep
    laughs = P3 + b"]Na" + b"q\x00" + b"0"
    for k in range(1, 41):
        laughs += b"](" + b"h" + bytes([k - 1]) + b"h" + bytes([k - 1]) + b"eq" + bytes([k]) + b"0"
    add("billion_laughs", laughs + b"h\x28.", "expands to more than")
    add("deep_marks", P3 + b"(" * 100 + b".", "more than 64 nested MARKs")
    add("deep_tuples", P3 + b"N" + b"\x85" * 100 + b".", "nested deeper than 64 levels")
    # a 60-deep chain reached first at depth 2, then again under 10 more lists: too deep only the second time
    add("deep_via_shared", P3 + b"]" * 60 + b"a" * 59 + b"q\x00" + b"]" * 10 + b"h\x00" + b"a" * 10 + b"\x86.",
        "nested deeper than 64 levels")
    # NumPy's own pickles of what the reader does not take
    add("uint64_scalar", pickle.dumps(objarr([np.uint64(2**64 - 1)]), protocol=3),
        "numpy.uint64 scalar 18446744073709551615 does not fit in int64")
    add("ndim3", pickle.dumps(np.zeros((2, 2, 2)), protocol=3), "array of 3 dimensions is not supported")
    add("dtype_U", pickle.dumps(np.array(["ab"]), protocol=3), "dtype 'U2' is not supported")
    add("dtype_complex", pickle.dumps(np.array([1j]), protocol=3), "dtype 'c16' is not supported")
    add("dtype_structured_numpy", pickle.dumps(np.zeros(2, dtype=[("a", "i4")]), protocol=3),
        "dtype 'V4' is not supported")
    add("dict_element", pickle.dumps(objarr([{"a": 1}]), protocol=3), "opcode EMPTY_DICT")
    add("oob_buffer", pickle.dumps(np.arange(3), protocol=5, buffer_callback=lambda b: False),
        "NEXT_BUFFER: out-of-band buffers are not available")
    lines = []
    for name, (data, phrase) in bad.items():
        fn = "bad_%s.pkl" % name
        w(fn, data)
        lines.append(fn + "\t" + phrase)
    with open(os.path.join(OUT, "manifest.bad.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")


# ---- writer references (NumPy 1.24): tests/test_pickle.c writes the same rows with io/pickle_write.c ----------

def writer_ref_values():
    """The rows of tests/pickle_refs.h, as Python objects (also used by tests/pickle_numpy_check.py)."""
    refs = {}
    rows = []
    for i in range(201):  # 1005 elements: a full APPENDS batch and a short one; memo past 255 (LONG_BINPUT)
        rows += [(i * 70001) % 100003, (i * 13) % 300, "[%d]" % (i % 6),
                 [(i * 6 + g + 1) / 1000.0 for g in range(6)], 1.0 / (i + 2)]
    refs["train"] = objarr(rows, (201, 5))
    rows = []
    for i in range(20):
        rows += [np.int64(i * 7 + 3), np.int64((i * 13) % 300), "[%d]" % (i % 6), [0.125 * g for g in range(6)], 0.5]
    refs["train_np64"] = objarr(rows, (20, 5))
    rows = []
    for i in range(40):
        rows += [i * 11, (i * 17) % 300, np.array([(i * 31 + k * 7) % 300 for k in range(100)], dtype=np.int64)]
    refs["neg"] = objarr(rows, (40, 3))
    misc = [0, 255, 256, 65535, 65536, -1, -2**31, 2**31 - 1, 2**31, -2**31 - 1, 2**40, -2**63, 2**63 - 1, 128,
            -129, 2**55, float("inf"), float("-inf"), float("nan"), -0.0, 1e-310,
            "", chr(97), chr(0xE9), "€", chr(97), chr(0xE9), "", "ab", "[2]",
            [], [1.5], [1.0, 2.0], [float(k) for k in range(1001)],
            np.zeros(0, dtype=np.int64), np.array([7], dtype=np.int64), np.arange(31, dtype=np.int64),
            np.arange(32, dtype=np.int64) - 5, np.int64(-1), np.int64(2**62), np.int64(0)]
    misc += list(range(1001 - len(misc)))  # 1001 elements: the last batch is a single APPEND
    refs["misc"] = objarr(misc)
    refs["zero_d"] = objarr([1.25], ())
    refs["empty"] = np.empty((0, 5), dtype=object)
    refs["one"] = objarr(["only"])
    # the int64 dtype first memoized past index 255: later uses are LONG_BINGET
    refs["late_dtype"] = objarr(["s%d" % k for k in range(300)]
                                + [np.int64(5), np.int64(6), np.arange(3, dtype=np.int64)])
    return refs


def writer_refs():
    for name, value in writer_ref_values().items():
        w("writer_%s.np1.pkl" % name, pickle.dumps(value, protocol=3))


def main():
    os.makedirs(OUT, exist_ok=True)
    gen_valid()
    if not NP2:
        gen_bad()
        writer_refs()
    print("%s (NumPy %s): fixtures written to %s" % (TAG, np.__version__, OUT), file=sys.stderr)


if __name__ == "__main__":
    main()
