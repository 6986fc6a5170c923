/* io/pickle.c — the restricted unpickler behind io/pickle.h: a pickle virtual machine for the object arrays of
 * the DebCM layout (train.npy and 100neg/{val,test}.npy; SPEC §1). It sits between io/npy.c, which finds the
 * pickle stream after a '|O' header, and io/dataset.c, which reads the rows out of the value tree built here.
 * It runs the opcodes of protocols 2–5 that NumPy's pickles use, one at a time, without recursion; the only
 * callables it knows are the handful NumPy needs to rebuild arrays, dtypes and scalars, and it evaluates them
 * itself — no name from the stream is ever looked up, imported or executed. Every length is checked against
 * the bytes left before anything is allocated, and every resource has a bound: the stack (PICKLE_MAX_STACK),
 * open MARKs and the nesting of the finished tree (PICKLE_MAX_DEPTH), values (PICKLE_MAX_VALUES, counting
 * sub-objects shared through the memo as often as they occur, so a small stream cannot expand into a huge
 * tree), memo indices (at most the number of opcodes read so far). Memory is linear in the input (at most
 * ~100 bytes of tree per input byte) and lives in one arena, freed at once. Refused on purpose: the text-mode
 * opcodes of protocols 0/1 (INT, STRING, FLOAT, ...: np.save always writes protocol 3, and the binary forms are
 * all NumPy needs), dicts, sets, INST/OBJ/NEWOBJ, the extension registry, persistent ids, out-of-band buffers,
 * bytes after STOP (np.save writes none) and recursive structures (a list that contains itself). */
#include "io/pickle.h"

#include <math.h>
#include <stdalign.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/error.h"

#define PICKLE_MAX_STACK (1u << 24) /* values on the VM stack at once (NumPy's pickles need a few thousand) */
#define PICKLE_MAX_NAME 256         /* bytes in a GLOBAL module or attribute name */
#define ARENA_FIRST_CHUNK ((size_t)64 << 10)
#define ARENA_MAX_CHUNK ((size_t)16 << 20)

/* ---- arena: every node, string, payload and item array of one document; freed at once ------------------- */

typedef struct arena_chunk {
    struct arena_chunk *next;
    size_t used, cap;
    max_align_t mem[];
} arena_chunk;

typedef struct {
    arena_chunk *head;
    size_t next_cap;
} arena;

static void *arena_alloc(arena *a, size_t n)
{
    const size_t align = alignof(max_align_t);
    if (n > SIZE_MAX / 2)
        return NULL;
    n = n ? (n + align - 1) & ~(align - 1) : align;
    arena_chunk *h = a->head;
    if (h && h->cap - h->used >= n) {
        void *p = (unsigned char *)h->mem + h->used;
        h->used += n;
        return p;
    }
    if (!a->next_cap)
        a->next_cap = ARENA_FIRST_CHUNK;
    int dedicated = n >= a->next_cap / 4; /* a large block gets a chunk of its own, behind the current one */
    size_t cap = dedicated ? n : a->next_cap;
    arena_chunk *c = malloc(sizeof *c + cap);
    if (!c)
        return NULL;
    c->cap = cap;
    c->used = n;
    if (dedicated && h) {
        c->next = h->next;
        h->next = c;
    } else {
        c->next = h;
        a->head = c;
        if (!dedicated && a->next_cap < ARENA_MAX_CHUNK)
            a->next_cap *= 2;
    }
    return c->mem;
}

static void arena_destroy(arena *a)
{
    if (!a)
        return;
    arena_chunk *c = a->head;
    while (c) {
        arena_chunk *next = c->next;
        free(c);
        c = next;
    }
    free(a);
}

/* ---- nodes: a pv plus what the VM needs to know about objects that are not plain values ------------------- */

typedef enum {
    IK_VALUE = 0, /* a pv of the tree */
    IK_GLOBAL,    /* one of the allowed callables/classes (only as a REDUCE target or argument) */
    IK_DTYPE,     /* a numpy.dtype object (only as an argument or state item) */
} node_kind;

typedef enum { G_RECONSTRUCT, G_SCALAR, G_FROMBUFFER, G_NDARRAY, G_DTYPE, G_ENCODE, G_BYTES } global_fn;

typedef struct {
    const char *module, *name;
    global_fn fn;
} allowed_global;

/* The whole list of names this reader resolves; anything else in a GLOBAL/STACK_GLOBAL is refused. */
static const allowed_global allowed_globals[] = {
    {"numpy.core.multiarray", "_reconstruct", G_RECONSTRUCT}, /* NumPy 1.x */
    {"numpy._core.multiarray", "_reconstruct", G_RECONSTRUCT}, /* NumPy 2.x */
    {"numpy.core.multiarray", "scalar", G_SCALAR},
    {"numpy._core.multiarray", "scalar", G_SCALAR},
    {"numpy.core.numeric", "_frombuffer", G_FROMBUFFER}, /* protocol 5, numeric arrays */
    {"numpy._core.numeric", "_frombuffer", G_FROMBUFFER},
    {"numpy", "ndarray", G_NDARRAY},
    {"numpy", "dtype", G_DTYPE},
    {"_codecs", "encode", G_ENCODE},    /* protocol 2: bytes as encode(str, 'latin1') */
    {"__builtin__", "bytes", G_BYTES}, /* protocol 2: empty bytes as bytes() */
    {"builtins", "bytes", G_BYTES},
};

static const char *const global_desc[] = {
    [G_RECONSTRUCT] = "global multiarray._reconstruct", [G_SCALAR] = "global multiarray.scalar",
    [G_FROMBUFFER] = "global numeric._frombuffer",      [G_NDARRAY] = "global numpy.ndarray",
    [G_DTYPE] = "global numpy.dtype",                   [G_ENCODE] = "global _codecs.encode",
    [G_BYTES] = "global builtins.bytes",
};

typedef struct node {
    pv v;            /* first member: the tree's pv pointers point here */
    uint8_t ik;      /* node_kind */
    uint8_t gfn;     /* IK_GLOBAL: global_fn */
    uint8_t built;   /* PV_NDARRAY / IK_DTYPE: its state is set (by BUILD, or made whole by _frombuffer) */
    uint8_t color;   /* tree check: 0 unseen, 1 on the current path, 2 done */
    int8_t dt_type;  /* IK_DTYPE: npy_type */
    uint8_t dt_big;  /* IK_DTYPE: big-endian payload */
    uint8_t dt_size; /* IK_DTYPE: bytes per element */
    uint32_t height; /* tree check: longest chain of containers below and including this node */
    size_t cap;      /* PV_LIST: capacity of v.u.seq.items; after the check: values in the expanded subtree */
} node;

/* dtype strings as NumPy puts them in a pickle ('i8', then the byte order in the state) */
static const struct {
    const char *str;
    npy_type type;
    int size;
} dtype_table[] = {
    {"b1", NPY_BOOL, 1},    {"i1", NPY_INT8, 1},     {"i2", NPY_INT16, 2},    {"i4", NPY_INT32, 4},
    {"i8", NPY_INT64, 8},   {"u1", NPY_UINT8, 1},    {"u2", NPY_UINT16, 2},   {"u4", NPY_UINT32, 4},
    {"u8", NPY_UINT64, 8},  {"f2", NPY_FLOAT16, 2},  {"f4", NPY_FLOAT32, 4},  {"f8", NPY_FLOAT64, 8},
    {"O8", NPY_OBJECT, 8},  {"O4", NPY_OBJECT, 4}, /* O4: written on 32-bit machines */
};

static const char *dtype_str(npy_type t)
{
    for (size_t i = 0; i < sizeof dtype_table / sizeof dtype_table[0]; i++)
        if (dtype_table[i].type == t)
            return dtype_table[i].str;
    return "?";
}

/* ---- the VM ---------------------------------------------------------------------------------------------- */

typedef struct {
    const uint8_t *buf;
    size_t len, pos;
    size_t op_pos; /* offset of the opcode being run: what error messages point at */
    const char *name;
    arena *a;
    node **stack;
    size_t sp, stack_cap;
    size_t marks[PICKLE_MAX_DEPTH]; /* stack heights at each open MARK */
    int nmarks;
    node **memo;
    size_t memo_len, memo_cap;
    uint64_t nvalues, nops;
    node *none, *yes, *no; /* None, True, False: shared */
} vm;

static int vm_fail(const vm *m, const char *fmt, ...) DEBCM_PRINTF(2, 3);
static int vm_fail(const vm *m, const char *fmt, ...)
{
    char msg[DEBCM_ERROR_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return debcm_fail("%s: pickle offset %zu: %s", m->name, m->op_pos, msg);
}

static const char *op_name(uint8_t op)
{
    switch (op) {
    case '(': return "MARK";
    case '.': return "STOP";
    case '0': return "POP";
    case '1': return "POP_MARK";
    case '2': return "DUP";
    case 'F': return "FLOAT";
    case 'I': return "INT";
    case 'J': return "BININT";
    case 'K': return "BININT1";
    case 'L': return "LONG";
    case 'M': return "BININT2";
    case 'N': return "NONE";
    case 'P': return "PERSID";
    case 'Q': return "BINPERSID";
    case 'R': return "REDUCE";
    case 'S': return "STRING";
    case 'T': return "BINSTRING";
    case 'U': return "SHORT_BINSTRING";
    case 'V': return "UNICODE";
    case 'X': return "BINUNICODE";
    case 'a': return "APPEND";
    case 'b': return "BUILD";
    case 'c': return "GLOBAL";
    case 'd': return "DICT";
    case '}': return "EMPTY_DICT";
    case 'e': return "APPENDS";
    case 'g': return "GET";
    case 'h': return "BINGET";
    case 'i': return "INST";
    case 'j': return "LONG_BINGET";
    case 'l': return "LIST";
    case ']': return "EMPTY_LIST";
    case 'o': return "OBJ";
    case 'p': return "PUT";
    case 'q': return "BINPUT";
    case 'r': return "LONG_BINPUT";
    case 's': return "SETITEM";
    case 't': return "TUPLE";
    case ')': return "EMPTY_TUPLE";
    case 'u': return "SETITEMS";
    case 'G': return "BINFLOAT";
    case 'B': return "BINBYTES";
    case 'C': return "SHORT_BINBYTES";
    case 0x80: return "PROTO";
    case 0x81: return "NEWOBJ";
    case 0x82: return "EXT1";
    case 0x83: return "EXT2";
    case 0x84: return "EXT4";
    case 0x85: return "TUPLE1";
    case 0x86: return "TUPLE2";
    case 0x87: return "TUPLE3";
    case 0x88: return "NEWTRUE";
    case 0x89: return "NEWFALSE";
    case 0x8a: return "LONG1";
    case 0x8b: return "LONG4";
    case 0x8c: return "SHORT_BINUNICODE";
    case 0x8d: return "BINUNICODE8";
    case 0x8e: return "BINBYTES8";
    case 0x8f: return "EMPTY_SET";
    case 0x90: return "ADDITEMS";
    case 0x91: return "FROZENSET";
    case 0x92: return "NEWOBJ_EX";
    case 0x93: return "STACK_GLOBAL";
    case 0x94: return "MEMOIZE";
    case 0x95: return "FRAME";
    case 0x96: return "BYTEARRAY8";
    case 0x97: return "NEXT_BUFFER";
    case 0x98: return "READONLY_BUFFER";
    default: return NULL;
    }
}

static const char *describe(const node *n)
{
    if (n->ik == IK_GLOBAL)
        return global_desc[n->gfn];
    if (n->ik == IK_DTYPE)
        return "numpy.dtype object";
    return pv_kind_name(n->v.kind);
}

/* A name from the stream, made safe for a one-line message: printable ASCII only, at most 80 bytes. */
static void safe_text(char *out, size_t out_size, const uint8_t *s, size_t n)
{
    size_t k = 0;
    for (size_t i = 0; i < n && k + 4 < out_size; i++) {
        if (k >= 80) {
            memcpy(out + k, "...", 3);
            k += 3;
            break;
        }
        uint8_t c = s[i];
        out[k++] = (c >= 0x20 && c < 0x7f && c != '\'') ? (char)c : '?';
    }
    out[k] = '\0';
}

static node *new_node(vm *m, pv_kind kind)
{
    if (m->nvalues >= PICKLE_MAX_VALUES) {
        vm_fail(m, "more than %u values in one pickle", (unsigned)PICKLE_MAX_VALUES);
        return NULL;
    }
    node *n = arena_alloc(m->a, sizeof *n);
    if (!n) {
        vm_fail(m, "out of memory");
        return NULL;
    }
    memset(n, 0, sizeof *n);
    n->v.kind = kind;
    m->nvalues++;
    return n;
}

/* A str or bytes node holding a copy of src[0..n), followed by a NUL (not counted in n). */
static node *new_blob(vm *m, pv_kind kind, const uint8_t *src, size_t n)
{
    node *b = new_node(m, kind);
    if (!b)
        return NULL;
    char *s = arena_alloc(m->a, n + 1);
    if (!s) {
        vm_fail(m, "out of memory (%zu bytes)", n);
        return NULL;
    }
    if (n)
        memcpy(s, src, n);
    s[n] = '\0';
    b->v.u.str.s = s;
    b->v.u.str.n = n;
    return b;
}

static size_t seg_base(const vm *m) { return m->nmarks ? m->marks[m->nmarks - 1] : 0; }

static int need_stack(vm *m, size_t k, const char *op)
{
    size_t have = m->sp - seg_base(m);
    if (have < k)
        return vm_fail(m, "stack underflow: %s needs %zu value%s, found %zu%s", op, k, k == 1 ? "" : "s", have,
                       m->nmarks ? " above the last MARK" : "");
    return 0;
}

static int push(vm *m, node *n)
{
    if (!n)
        return -1;
    if (m->sp == m->stack_cap) {
        if (m->stack_cap >= PICKLE_MAX_STACK)
            return vm_fail(m, "more than %u values on the stack", (unsigned)PICKLE_MAX_STACK);
        size_t cap = m->stack_cap ? m->stack_cap * 2 : 256;
        node **s = realloc(m->stack, cap * sizeof *s);
        if (!s)
            return vm_fail(m, "out of memory (stack of %zu)", cap);
        m->stack = s;
        m->stack_cap = cap;
    }
    m->stack[m->sp++] = n;
    return 0;
}

static node *pop(vm *m) { return m->stack[--m->sp]; }
static node *top(const vm *m) { return m->stack[m->sp - 1]; }

/* Read a fixed-size argument of the current opcode. */
static int take(vm *m, size_t n, const uint8_t **p)
{
    if (m->len - m->pos < n)
        return vm_fail(m, "%s needs %zu argument byte%s, only %zu left (truncated data)", op_name(m->buf[m->op_pos]),
                       n, n == 1 ? "" : "s", m->len - m->pos);
    *p = m->buf + m->pos;
    m->pos += n;
    return 0;
}

static uint64_t le_u(const uint8_t *p, int n)
{
    uint64_t u = 0;
    for (int i = n - 1; i >= 0; i--)
        u = u << 8 | p[i];
    return u;
}

static uint64_t be_u(const uint8_t *p, int n)
{
    uint64_t u = 0;
    for (int i = 0; i < n; i++)
        u = u << 8 | p[i];
    return u;
}

static int64_t u2i(uint64_t u)
{
    int64_t i;
    memcpy(&i, &u, sizeof i);
    return i;
}

/* the low `bytes` bytes of u as a two's complement integer */
static int64_t sext(uint64_t u, int bytes)
{
    if (bytes < 8 && (u >> (8 * bytes - 1) & 1))
        u |= ~(uint64_t)0 << (8 * bytes);
    return u2i(u);
}

static int host_big_endian(void)
{
    const uint16_t one = 1;
    return *(const uint8_t *)&one == 0;
}

/* Read a length-prefixed payload: a lenbytes little-endian length, then that many bytes (checked first). */
static int take_sized(vm *m, int lenbytes, const uint8_t **p, size_t *n)
{
    const uint8_t *q = NULL;
    if (take(m, (size_t)lenbytes, &q))
        return -1;
    uint64_t len = le_u(q, lenbytes);
    size_t left = m->len - m->pos;
    if (len > left)
        return vm_fail(m, "%s length %llu runs past the end of the data (%zu bytes left)", op_name(m->buf[m->op_pos]),
                       (unsigned long long)len, left);
    *p = m->buf + m->pos;
    *n = (size_t)len;
    m->pos += (size_t)len;
    return 0;
}

/* UTF-8 as Python's pickle writes it ('surrogatepass': lone surrogates allowed). Returns the offset of the
 * first bad byte, or n when the text is valid. */
static size_t utf8_check(const uint8_t *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        uint8_t c = s[i];
        size_t k;
        uint8_t lo = 0x80, hi = 0xBF;
        if (c < 0x80) {
            i++;
            continue;
        } else if (c >= 0xC2 && c <= 0xDF) {
            k = 1;
        } else if (c >= 0xE0 && c <= 0xEF) {
            k = 2;
            if (c == 0xE0)
                lo = 0xA0;
        } else if (c >= 0xF0 && c <= 0xF4) {
            k = 3;
            if (c == 0xF0)
                lo = 0x90;
            if (c == 0xF4)
                hi = 0x8F;
        } else {
            return i;
        }
        if (n - i <= k)
            return i;
        if (s[i + 1] < lo || s[i + 1] > hi)
            return i;
        for (size_t j = 2; j <= k; j++)
            if ((s[i + j] & 0xC0) != 0x80)
                return i;
        i += k + 1;
    }
    return n;
}

static node *new_str(vm *m, const uint8_t *s, size_t n)
{
    size_t bad = utf8_check(s, n);
    if (bad != n) {
        vm_fail(m, "str is not valid UTF-8 (byte 0x%02x at offset %zu of the string)", s[bad], bad);
        return NULL;
    }
    return new_blob(m, PV_STR, s, n);
}

static node *new_int(vm *m, int64_t i)
{
    node *n = new_node(m, PV_INT);
    if (n)
        n->v.u.i = i;
    return n;
}

static node *new_float(vm *m, double f)
{
    node *n = new_node(m, PV_FLOAT);
    if (n)
        n->v.u.f = f;
    return n;
}

static node *new_seq(vm *m, pv_kind kind, node *const *items, size_t n)
{
    node *t = new_node(m, kind);
    if (!t)
        return NULL;
    if (n) {
        pv **it = arena_alloc(m->a, n * sizeof *it);
        if (!it) {
            vm_fail(m, "out of memory (%s of %zu)", pv_kind_name(kind), n);
            return NULL;
        }
        for (size_t i = 0; i < n; i++)
            it[i] = &items[i]->v;
        t->v.u.seq.items = it;
    }
    t->v.u.seq.n = n;
    if (kind == PV_LIST)
        t->cap = n;
    return t;
}

static node *as_node(pv *p) { return (node *)p; } /* every pv of a document is the first member of a node */

static int list_extend(vm *m, node *list, node *const *items, size_t k)
{
    size_t n = list->v.u.seq.n;
    for (size_t i = 0; i < k; i++)
        if (items[i]->ik != IK_VALUE)
            return vm_fail(m, "a %s cannot be a list item (only plain values can)", describe(items[i]));
    if (k > PICKLE_MAX_VALUES - n)
        return vm_fail(m, "list longer than %u items", (unsigned)PICKLE_MAX_VALUES);
    if (n + k > list->cap) {
        size_t cap = list->cap ? list->cap : 8;
        while (cap < n + k)
            cap *= 2;
        pv **it = arena_alloc(m->a, cap * sizeof *it);
        if (!it)
            return vm_fail(m, "out of memory (list of %zu)", cap);
        if (n)
            memcpy(it, list->v.u.seq.items, n * sizeof *it);
        /* the old array stays as it was: an ndarray built from this list keeps pointing at its first n items */
        list->v.u.seq.items = it;
        list->cap = cap;
    }
    for (size_t i = 0; i < k; i++)
        list->v.u.seq.items[n + i] = &items[i]->v;
    list->v.u.seq.n = n + k;
    return 0;
}

static int memo_put(vm *m, uint64_t idx)
{
    if (need_stack(m, 1, op_name(m->buf[m->op_pos])))
        return -1;
    if (idx >= PICKLE_MAX_VALUES || idx > m->nops)
        return vm_fail(m, "memo index %llu is too large (a pickler numbers its memo from 0, one entry per object)",
                       (unsigned long long)idx);
    if (idx >= m->memo_len) {
        if (idx >= m->memo_cap) {
            size_t cap = m->memo_cap ? m->memo_cap : 256;
            while (cap <= idx)
                cap *= 2;
            node **mm = realloc(m->memo, cap * sizeof *mm);
            if (!mm)
                return vm_fail(m, "out of memory (memo of %zu)", cap);
            m->memo = mm;
            m->memo_cap = cap;
        }
        for (size_t i = m->memo_len; i <= idx; i++)
            m->memo[i] = NULL;
        m->memo_len = (size_t)idx + 1;
    }
    m->memo[idx] = top(m);
    return 0;
}

static int memo_get(vm *m, uint64_t idx)
{
    if (idx >= m->memo_len || !m->memo[idx])
        return vm_fail(m, "memo entry %llu was never set", (unsigned long long)idx);
    return push(m, m->memo[idx]);
}

static int resolve_global(vm *m, const uint8_t *mod, size_t mod_n, const uint8_t *name, size_t name_n)
{
    for (size_t i = 0; i < sizeof allowed_globals / sizeof allowed_globals[0]; i++) {
        const allowed_global *g = &allowed_globals[i];
        if (strlen(g->module) == mod_n && !memcmp(g->module, mod, mod_n) && strlen(g->name) == name_n &&
            !memcmp(g->name, name, name_n)) {
            node *n = new_node(m, PV_NONE);
            if (!n)
                return -1;
            n->ik = IK_GLOBAL;
            n->gfn = (uint8_t)g->fn;
            return push(m, n);
        }
    }
    char a[96], b[96];
    safe_text(a, sizeof a, mod, mod_n);
    safe_text(b, sizeof b, name, name_n);
    return vm_fail(m, "global '%s.%s' is not allowed (only numpy array reconstruction is)", a, b);
}

/* GLOBAL: "module\nname\n" */
static int take_line(vm *m, const uint8_t **p, size_t *n, const char *what)
{
    size_t left = m->len - m->pos;
    size_t scan = left < PICKLE_MAX_NAME + 1 ? left : PICKLE_MAX_NAME + 1;
    const uint8_t *nl = memchr(m->buf + m->pos, '\n', scan);
    if (!nl) {
        if (scan == left)
            return vm_fail(m, "GLOBAL %s name has no end of line before the end of the data (truncated data)", what);
        return vm_fail(m, "GLOBAL %s name longer than %d bytes", what, PICKLE_MAX_NAME);
    }
    *p = m->buf + m->pos;
    *n = (size_t)(nl - *p);
    m->pos += *n + 1;
    return 0;
}

/* ---- the callables ------------------------------------------------------------------------------------- */

static int is_int(const node *n) { return n->ik == IK_VALUE && n->v.kind == PV_INT; }
static int is_flag(const node *n) /* bool, or an int used as one */
{
    return n->ik == IK_VALUE && (n->v.kind == PV_BOOL || n->v.kind == PV_INT);
}
static int is_kind(const node *n, pv_kind k) { return n->ik == IK_VALUE && n->v.kind == k; }
static int is_global(const node *n, global_fn g) { return n->ik == IK_GLOBAL && n->gfn == g; }
static int str_is(const node *n, const char *s)
{
    return (n->v.kind == PV_STR || n->v.kind == PV_BYTES) && n->ik == IK_VALUE && n->v.u.str.n == strlen(s) &&
           !memcmp(n->v.u.str.s, s, n->v.u.str.n);
}

/* "(global numpy.ndarray, tuple, bytes)": what a REDUCE or BUILD found, for messages */
static const char *tuple_kinds(char *out, size_t size, const node *t)
{
    size_t k = 0;
    size_t n = t->v.u.seq.n;
    k += (size_t)snprintf(out + k, size - k, "(");
    for (size_t i = 0; i < n && i < 6 && k < size; i++)
        k += (size_t)snprintf(out + k, size - k, "%s%s", i ? ", " : "", describe(as_node(t->v.u.seq.items[i])));
    if (k < size)
        snprintf(out + k, size - k, "%s)", n > 6 ? ", ..." : "");
    return out;
}

static int parse_shape(vm *m, const node *t, const char *ctx, int *ndim, int64_t *shape, int64_t *count)
{
    if (!is_kind(t, PV_TUPLE))
        return vm_fail(m, "%s: shape is a %s, expected a tuple of ints", ctx, describe(t));
    size_t n = t->v.u.seq.n;
    if (n > NPY_MAX_NDIM)
        return vm_fail(m, "%s: array of %zu dimensions is not supported (at most %d)", ctx, n, NPY_MAX_NDIM);
    int64_t c = 1;
    for (size_t i = 0; i < n; i++) {
        const node *d = as_node(t->v.u.seq.items[i]);
        if (!is_int(d))
            return vm_fail(m, "%s: shape item %zu is a %s, expected an int", ctx, i, describe(d));
        if (d->v.u.i < 0)
            return vm_fail(m, "%s: negative dimension %lld in the shape", ctx, (long long)d->v.u.i);
        shape[i] = d->v.u.i;
    }
    for (size_t i = 0; i < n; i++) /* zero anywhere: count 0, whatever the other dimensions are */
        if (shape[i] == 0)
            c = 0;
    for (size_t i = 0; i < n && c; i++) {
        if (shape[i] > INT64_MAX / c)
            return vm_fail(m, "%s: shape (%lld%s%lld) overflows int64", ctx, (long long)shape[0], n > 1 ? ", " : "",
                           n > 1 ? (long long)shape[1] : 0LL);
        c *= shape[i];
    }
    *ndim = (int)n;
    *count = c;
    return 0;
}

static double half_to_double(uint16_t h)
{
    int e = (h >> 10) & 31, f = h & 1023;
    double v;
    if (e == 0)
        v = ldexp((double)f, -24);
    else if (e == 31)
        v = f ? NAN : INFINITY;
    else
        v = ldexp((double)(f + 1024), e - 25);
    return (h & 0x8000) ? -v : v;
}

/* One element of a numeric dtype as a plain value (what a NumPy scalar becomes). */
static node *decode_scalar(vm *m, const node *dt, const uint8_t *p)
{
    int size = dt->dt_size;
    uint64_t u = dt->dt_big ? be_u(p, size) : le_u(p, size);
    switch ((npy_type)dt->dt_type) {
    case NPY_BOOL: {
        node *b = u ? m->yes : m->no;
        return b;
    }
    case NPY_INT8:
    case NPY_INT16:
    case NPY_INT32:
    case NPY_INT64: return new_int(m, sext(u, size));
    case NPY_UINT8:
    case NPY_UINT16:
    case NPY_UINT32: return new_int(m, (int64_t)u);
    case NPY_UINT64:
        if (u > (uint64_t)INT64_MAX) {
            vm_fail(m, "numpy.uint64 scalar %llu does not fit in int64", (unsigned long long)u);
            return NULL;
        }
        return new_int(m, (int64_t)u);
    case NPY_FLOAT16: return new_float(m, half_to_double((uint16_t)u));
    case NPY_FLOAT32: {
        uint32_t b32 = (uint32_t)u;
        float f;
        memcpy(&f, &b32, sizeof f);
        return new_float(m, (double)f);
    }
    case NPY_FLOAT64: {
        double d;
        memcpy(&d, &u, sizeof d);
        return new_float(m, d);
    }
    default:
        vm_fail(m, "numpy scalar of dtype '%s' is not supported", dtype_str((npy_type)dt->dt_type));
        return NULL;
    }
}

static node *call_reconstruct(vm *m, const node *args)
{
    char buf[256];
    pv **it = args->v.u.seq.items;
    if (args->v.u.seq.n != 3 || !is_global(as_node(it[0]), G_NDARRAY) || !is_kind(as_node(it[1]), PV_TUPLE) ||
        as_node(it[1])->v.u.seq.n != 1 || !is_int(as_node(it[1]->u.seq.items[0])) ||
        it[1]->u.seq.items[0]->u.i != 0 || !str_is(as_node(it[2]), "b") || it[2]->kind != PV_BYTES) {
        vm_fail(m, "_reconstruct expects (numpy.ndarray, (0,), b'b'), found %s", tuple_kinds(buf, sizeof buf, args));
        return NULL;
    }
    node *a = new_node(m, PV_NDARRAY); /* what _reconstruct returns: an empty int8 array, until BUILD */
    if (!a)
        return NULL;
    a->v.u.arr.type = NPY_INT8;
    a->v.u.arr.ndim = 1;
    a->v.u.arr.data = (const uint8_t *)"";
    return a;
}

static node *call_scalar(vm *m, const node *args)
{
    char buf[256];
    pv **it = args->v.u.seq.items;
    if (args->v.u.seq.n != 2 || as_node(it[0])->ik != IK_DTYPE || !is_kind(as_node(it[1]), PV_BYTES)) {
        vm_fail(m, "scalar expects (numpy.dtype, bytes), found %s", tuple_kinds(buf, sizeof buf, args));
        return NULL;
    }
    const node *dt = as_node(it[0]);
    if (dt->dt_type == NPY_OBJECT) {
        vm_fail(m, "numpy object scalars are not supported");
        return NULL;
    }
    if (it[1]->u.str.n != dt->dt_size) {
        vm_fail(m, "scalar of dtype '%s' needs %d bytes, found %zu", dtype_str((npy_type)dt->dt_type), dt->dt_size,
                it[1]->u.str.n);
        return NULL;
    }
    return decode_scalar(m, dt, (const uint8_t *)it[1]->u.str.s);
}

/* Fill an ndarray's fields from a dtype, shape and numeric payload; checks the payload size. */
static int set_numeric(vm *m, node *a, const char *ctx, const node *dt, int ndim, const int64_t *shape, int64_t count,
                       int fortran, const node *data)
{
    if (!is_kind(data, PV_BYTES))
        return vm_fail(m, "%s: payload of a '%s' array is a %s, expected bytes", ctx,
                       dtype_str((npy_type)dt->dt_type), describe(data));
    int64_t size = dt->dt_size;
    if (count > INT64_MAX / size)
        return vm_fail(m, "%s: %lld elements of %lld bytes overflow", ctx, (long long)count, (long long)size);
    if ((uint64_t)(count * size) != (uint64_t)data->v.u.str.n)
        return vm_fail(m, "%s: payload of %zu bytes, expected %lld (%lld elements of '%s')", ctx, data->v.u.str.n,
                       (long long)(count * size), (long long)count, dtype_str((npy_type)dt->dt_type));
    a->v.u.arr.type = (npy_type)dt->dt_type;
    a->v.u.arr.big_endian = dt->dt_size > 1 && dt->dt_big;
    a->v.u.arr.fortran_order = ndim == 2 && fortran;
    a->v.u.arr.ndim = ndim;
    memset(a->v.u.arr.shape, 0, sizeof a->v.u.arr.shape);
    for (int i = 0; i < ndim; i++)
        a->v.u.arr.shape[i] = shape[i];
    a->v.u.arr.count = count;
    a->v.u.arr.data = (const uint8_t *)data->v.u.str.s;
    a->v.u.arr.items = NULL;
    a->built = 1;
    return 0;
}

static node *call_frombuffer(vm *m, const node *args)
{
    char buf[256];
    pv **it = args->v.u.seq.items;
    if (args->v.u.seq.n != 4 || !is_kind(as_node(it[0]), PV_BYTES) || as_node(it[1])->ik != IK_DTYPE ||
        !is_kind(as_node(it[2]), PV_TUPLE) || !is_kind(as_node(it[3]), PV_STR)) {
        vm_fail(m, "_frombuffer expects (bytes, numpy.dtype, shape, order), found %s",
                tuple_kinds(buf, sizeof buf, args));
        return NULL;
    }
    const node *dt = as_node(it[1]);
    if (dt->dt_type == NPY_OBJECT) {
        vm_fail(m, "_frombuffer with dtype object is not valid");
        return NULL;
    }
    int fortran;
    if (str_is(as_node(it[3]), "C"))
        fortran = 0;
    else if (str_is(as_node(it[3]), "F"))
        fortran = 1;
    else {
        vm_fail(m, "_frombuffer order must be 'C' or 'F'");
        return NULL;
    }
    int ndim;
    int64_t shape[NPY_MAX_NDIM], count;
    if (parse_shape(m, as_node(it[2]), "_frombuffer", &ndim, shape, &count))
        return NULL;
    node *a = new_node(m, PV_NDARRAY);
    if (!a || set_numeric(m, a, "_frombuffer", dt, ndim, shape, count, fortran, as_node(it[0])))
        return NULL;
    return a;
}

static node *call_dtype(vm *m, const node *args)
{
    char buf[256];
    pv **it = args->v.u.seq.items;
    if (args->v.u.seq.n != 3 || !is_kind(as_node(it[0]), PV_STR) || !is_flag(as_node(it[1])) ||
        !is_flag(as_node(it[2]))) {
        vm_fail(m, "numpy.dtype expects (str, bool, bool), found %s", tuple_kinds(buf, sizeof buf, args));
        return NULL;
    }
    for (size_t i = 0; i < sizeof dtype_table / sizeof dtype_table[0]; i++) {
        if (str_is(as_node(it[0]), dtype_table[i].str)) {
            node *d = new_node(m, PV_NONE);
            if (!d)
                return NULL;
            d->ik = IK_DTYPE;
            d->dt_type = (int8_t)dtype_table[i].type;
            d->dt_size = (uint8_t)dtype_table[i].size;
            d->dt_big = (uint8_t)host_big_endian(); /* until its state says otherwise */
            return d;
        }
    }
    safe_text(buf, sizeof buf, (const uint8_t *)it[0]->u.str.s, it[0]->u.str.n);
    vm_fail(m, "dtype '%s' is not supported (only bool, int8-64, uint8-64, float16/32/64 and object)", buf);
    return NULL;
}

static node *call_encode(vm *m, const node *args)
{
    char buf[256];
    pv **it = args->v.u.seq.items;
    if (args->v.u.seq.n != 2 || !is_kind(as_node(it[0]), PV_STR) || !is_kind(as_node(it[1]), PV_STR)) {
        vm_fail(m, "_codecs.encode expects (str, 'latin1'), found %s", tuple_kinds(buf, sizeof buf, args));
        return NULL;
    }
    if (!str_is(as_node(it[1]), "latin1")) {
        safe_text(buf, sizeof buf, (const uint8_t *)it[1]->u.str.s, it[1]->u.str.n);
        vm_fail(m, "_codecs.encode with encoding '%s' is not allowed (only 'latin1', as pickle writes bytes)", buf);
        return NULL;
    }
    /* the str holds one code point per byte (U+0000..U+00FF), UTF-8 encoded */
    const uint8_t *s = (const uint8_t *)it[0]->u.str.s;
    size_t n = it[0]->u.str.n, k = 0;
    node *b = new_blob(m, PV_BYTES, s, n); /* decoded in place: never longer than the UTF-8 */
    if (!b)
        return NULL;
    uint8_t *out = (uint8_t *)b->v.u.str.s;
    for (size_t i = 0; i < n;) {
        if (s[i] < 0x80) {
            out[k++] = s[i++];
        } else if ((s[i] == 0xC2 || s[i] == 0xC3) && i + 1 < n) {
            out[k++] = (uint8_t)(((s[i] & 0x1F) << 6) | (s[i + 1] & 0x3F));
            i += 2;
        } else {
            vm_fail(m, "_codecs.encode: character at offset %zu of the string is not latin-1", i);
            return NULL;
        }
    }
    out[k] = 0;
    b->v.u.str.n = k;
    return b;
}

static int op_reduce(vm *m)
{
    if (need_stack(m, 2, "REDUCE"))
        return -1;
    node *args = pop(m);
    node *fn = pop(m);
    if (fn->ik != IK_GLOBAL)
        return vm_fail(m, "REDUCE on a %s (only the allowed numpy callables can be called)", describe(fn));
    if (!is_kind(args, PV_TUPLE))
        return vm_fail(m, "REDUCE arguments are a %s, expected a tuple", describe(args));
    node *r = NULL;
    switch ((global_fn)fn->gfn) {
    case G_RECONSTRUCT: r = call_reconstruct(m, args); break;
    case G_SCALAR: r = call_scalar(m, args); break;
    case G_FROMBUFFER: r = call_frombuffer(m, args); break;
    case G_DTYPE: r = call_dtype(m, args); break;
    case G_ENCODE: r = call_encode(m, args); break;
    case G_BYTES:
        if (args->v.u.seq.n != 0)
            return vm_fail(m, "builtins.bytes with arguments is not allowed (pickle writes only bytes() this way)");
        r = new_blob(m, PV_BYTES, (const uint8_t *)"", 0);
        break;
    case G_NDARRAY: return vm_fail(m, "REDUCE on global numpy.ndarray (it is only an argument of _reconstruct)");
    }
    return push(m, r);
}

/* ndarray.__setstate__((version, shape, dtype, is_fortran, data)) — version may be absent (4 items). */
static int build_ndarray(vm *m, node *a, const node *state)
{
    static const char ctx[] = "ndarray state";
    if (!is_kind(state, PV_TUPLE) || (state->v.u.seq.n != 5 && state->v.u.seq.n != 4))
        return vm_fail(m, "ndarray state is a %s of %zu, expected (version, shape, dtype, is_fortran, data)",
                       describe(state), is_kind(state, PV_TUPLE) ? state->v.u.seq.n : (size_t)1);
    pv **it = state->v.u.seq.items;
    size_t off = 0;
    if (state->v.u.seq.n == 5) {
        if (!is_int(as_node(it[0])) || (it[0]->u.i != 0 && it[0]->u.i != 1))
            return vm_fail(m, "ndarray state version is not 0 or 1");
        off = 1;
    }
    const node *dt = as_node(it[off + 1]), *fo = as_node(it[off + 2]), *data = as_node(it[off + 3]);
    int ndim;
    int64_t shape[NPY_MAX_NDIM], count;
    if (parse_shape(m, as_node(it[off]), ctx, &ndim, shape, &count))
        return -1;
    if (dt->ik != IK_DTYPE)
        return vm_fail(m, "ndarray state: dtype is a %s, expected a numpy.dtype", describe(dt));
    if (!is_flag(fo))
        return vm_fail(m, "ndarray state: is_fortran is a %s, expected a bool", describe(fo));
    if (dt->dt_type != NPY_OBJECT)
        return set_numeric(m, a, ctx, dt, ndim, shape, count, fo->v.u.i != 0, data);
    /* object array: a list of count values, always in C (row-major) order, whatever is_fortran says — that is
     * what NumPy's pickling does (it walks the array with a C-order iterator; checked for 1.24 and 2.x) */
    if (!is_kind(data, PV_LIST))
        return vm_fail(m, "ndarray state: payload of an object array is a %s, expected a list", describe(data));
    if ((uint64_t)count != (uint64_t)data->v.u.seq.n)
        return vm_fail(m, "ndarray state: object array of shape %lld x %lld needs %lld items, the list has %zu",
                       ndim > 0 ? (long long)shape[0] : 1LL, ndim > 1 ? (long long)shape[1] : 1LL, (long long)count,
                       data->v.u.seq.n);
    a->v.u.arr.type = NPY_OBJECT;
    a->v.u.arr.big_endian = 0;
    a->v.u.arr.fortran_order = ndim == 2 && fo->v.u.i != 0;
    a->v.u.arr.ndim = ndim;
    memset(a->v.u.arr.shape, 0, sizeof a->v.u.arr.shape);
    for (int i = 0; i < ndim; i++)
        a->v.u.arr.shape[i] = shape[i];
    a->v.u.arr.count = count;
    a->v.u.arr.data = NULL;
    a->v.u.arr.items = data->v.u.seq.items; /* items [0, count) of a list never change: see list_extend */
    a->built = 1;
    return 0;
}

/* dtype.__setstate__((3, byteorder, subarray, names, fields, elsize, alignment, flags)) */
static int build_dtype(vm *m, node *d, const node *state)
{
    if (!is_kind(state, PV_TUPLE) || state->v.u.seq.n != 8)
        return vm_fail(m, "dtype state is a %s of %zu items, expected (3, byteorder, None, None, None, -1, -1, flags)",
                       describe(state), is_kind(state, PV_TUPLE) ? state->v.u.seq.n : (size_t)1);
    pv **it = state->v.u.seq.items;
    if (!is_int(as_node(it[0])) || it[0]->u.i != 3)
        return vm_fail(m, "dtype state version is not 3");
    const node *bo = as_node(it[1]);
    if (!is_kind(bo, PV_STR) || bo->v.u.str.n != 1 || !strchr("<>|=", bo->v.u.str.s[0]))
        return vm_fail(m, "dtype state: byte order is not one of '<', '>', '|', '='");
    for (int i = 2; i <= 4; i++)
        if (!is_kind(as_node(it[i]), PV_NONE))
            return vm_fail(m, "structured or subarray dtypes are not supported (dtype state item %d is a %s)", i,
                           describe(as_node(it[i])));
    for (int i = 5; i <= 7; i++)
        if (!is_int(as_node(it[i])))
            return vm_fail(m, "dtype state item %d is a %s, expected an int", i, describe(as_node(it[i])));
    char c = bo->v.u.str.s[0];
    if (c == '|' && d->dt_size > 1 && d->dt_type != NPY_OBJECT)
        return vm_fail(m, "dtype state: byte order '|' for the %d-byte dtype '%s'", d->dt_size,
                       dtype_str((npy_type)d->dt_type));
    d->dt_big = c == '>' ? 1 : c == '<' ? 0 : (uint8_t)host_big_endian();
    d->built = 1;
    return 0;
}

static int op_build(vm *m)
{
    if (need_stack(m, 2, "BUILD"))
        return -1;
    node *state = pop(m);
    node *obj = top(m);
    if (obj->ik == IK_DTYPE) {
        if (obj->built)
            return vm_fail(m, "BUILD on a numpy.dtype that already has its state");
        return build_dtype(m, obj, state);
    }
    if (is_kind(obj, PV_NDARRAY)) {
        if (obj->built)
            return vm_fail(m, "BUILD on an ndarray that already has its state");
        return build_ndarray(m, obj, state);
    }
    return vm_fail(m, "BUILD on a %s (only an ndarray from _reconstruct or a numpy.dtype take a state)",
                   describe(obj));
}

/* ---- the check of the finished tree ---------------------------------------------------------------------- */

static size_t child_count(const node *n)
{
    if (n->v.kind == PV_LIST || n->v.kind == PV_TUPLE)
        return n->v.u.seq.n;
    if (n->v.kind == PV_NDARRAY && n->v.u.arr.type == NPY_OBJECT)
        return (size_t)n->v.u.arr.count;
    return 0;
}

static node *child_at(const node *n, size_t i)
{
    return as_node(n->v.kind == PV_NDARRAY ? n->v.u.arr.items[i] : n->v.u.seq.items[i]);
}

/* Depth-first, iterative, over the graph from the root: refuses non-values, cycles, nesting deeper than
 * PICKLE_MAX_DEPTH and trees that expand (sub-objects shared through the memo counted at every occurrence) to
 * more than PICKLE_MAX_VALUES values. Linear in nodes + edges: a finished node is never entered again. */
static int check_tree(vm *m, node *root)
{
    struct {
        node *n;
        size_t next;
    } path[PICKLE_MAX_DEPTH];
    int depth = 0;
    if (root->ik != IK_VALUE)
        return vm_fail(m, "the pickle's value is a %s, not a plain value", describe(root));
    root->color = 1;
    root->cap = 1;
    root->height = 1;
    path[depth].n = root;
    path[depth].next = 0;
    depth++;
    while (depth > 0) {
        node *n = path[depth - 1].n;
        node *c = NULL;
        if (path[depth - 1].next < child_count(n)) {
            c = child_at(n, path[depth - 1].next++);
            if (c->ik != IK_VALUE)
                return vm_fail(m, "a %s inside a %s (only plain values can be in the result)", describe(c),
                               pv_kind_name(n->v.kind));
            if (c->color == 1)
                return vm_fail(m, "recursive structure: a %s contains itself", pv_kind_name(c->v.kind));
            if (c->color == 0) {
                if (depth >= PICKLE_MAX_DEPTH)
                    return vm_fail(m, "values nested deeper than %d levels", PICKLE_MAX_DEPTH);
                c->color = 1;
                c->cap = 1; /* a list's capacity is not needed any more: from here on, the expanded size */
                c->height = 1;
                path[depth].n = c;
                path[depth].next = 0;
                depth++;
                continue;
            }
            /* a finished (shared) child: fold it in below */
        } else {
            n->color = 2;
            depth--;
            if (depth == 0)
                break;
            c = n;
            n = path[depth - 1].n;
        }
        if (c->height + 1 > n->height)
            n->height = c->height + 1;
        if (n->height > PICKLE_MAX_DEPTH)
            return vm_fail(m, "values nested deeper than %d levels", PICKLE_MAX_DEPTH);
        if (c->cap > PICKLE_MAX_VALUES - n->cap)
            return vm_fail(m, "the value tree expands to more than %u values (shared sub-objects count each time)",
                           (unsigned)PICKLE_MAX_VALUES);
        n->cap += c->cap;
    }
    return 0;
}

/* ---- the run loop ------------------------------------------------------------------------------------------ */

static int run(vm *m, node **result)
{
    const uint8_t *p;
    size_t n;
    for (;;) {
        if (m->pos >= m->len) {
            m->op_pos = m->pos;
            return vm_fail(m, "missing STOP: the data ends after %zu bytes", m->len);
        }
        m->op_pos = m->pos;
        uint8_t op = m->buf[m->pos++];
        m->nops++;
        switch (op) {
        case 0x80: /* PROTO */
            if (take(m, 1, &p))
                return -1;
            if (p[0] < 2 || p[0] > 5)
                return vm_fail(m, "protocol %u is not supported (2 to 5)", p[0]);
            break;
        case 0x95: /* FRAME: framing only; the length must fit */
            if (take(m, 8, &p))
                return -1;
            if (le_u(p, 8) > m->len - m->pos)
                return vm_fail(m, "FRAME of %llu bytes runs past the end of the data (%zu bytes left)",
                               (unsigned long long)le_u(p, 8), m->len - m->pos);
            break;
        case '.': /* STOP */
            if (m->nmarks)
                return vm_fail(m, "STOP with %d MARK%s still open", m->nmarks, m->nmarks == 1 ? "" : "s");
            if (m->sp != 1)
                return vm_fail(m, "STOP with %zu values on the stack, expected exactly 1", m->sp);
            if (m->pos != m->len)
                return vm_fail(m, "%zu bytes after STOP (np.save writes nothing after the pickle)", m->len - m->pos);
            *result = m->stack[0];
            return check_tree(m, *result);
        case '(': /* MARK */
            if (m->nmarks >= PICKLE_MAX_DEPTH)
                return vm_fail(m, "more than %d nested MARKs", PICKLE_MAX_DEPTH);
            m->marks[m->nmarks++] = m->sp;
            break;
        case '0': /* POP: as in CPython, POP with nothing above the last MARK drops the MARK */
            if (m->sp > seg_base(m))
                m->sp--;
            else if (m->nmarks)
                m->nmarks--;
            else
                return vm_fail(m, "stack underflow: POP on an empty stack");
            break;
        case '1': /* POP_MARK */
            if (!m->nmarks)
                return vm_fail(m, "POP_MARK without a MARK");
            m->sp = m->marks[--m->nmarks];
            break;
        case '2': /* DUP */
            if (need_stack(m, 1, "DUP") || push(m, top(m)))
                return -1;
            break;
        case 'N':
            if (push(m, m->none))
                return -1;
            break;
        case 0x88:
            if (push(m, m->yes))
                return -1;
            break;
        case 0x89:
            if (push(m, m->no))
                return -1;
            break;
        case 'J':
            if (take(m, 4, &p) || push(m, new_int(m, sext(le_u(p, 4), 4))))
                return -1;
            break;
        case 'K':
            if (take(m, 1, &p) || push(m, new_int(m, p[0])))
                return -1;
            break;
        case 'M':
            if (take(m, 2, &p) || push(m, new_int(m, (int64_t)le_u(p, 2))))
                return -1;
            break;
        case 0x8a: /* LONG1 */
        case 0x8b: /* LONG4 */ {
            int lb = op == 0x8a ? 1 : 4;
            if (take(m, (size_t)lb, &p))
                return -1;
            uint64_t nb = le_u(p, lb);
            if (op == 0x8b && (nb >> 31))
                return vm_fail(m, "LONG4 with a negative length");
            if (nb > 8)
                return vm_fail(m, "%s integer of %llu bytes does not fit in int64", op_name(op),
                               (unsigned long long)nb);
            if (take(m, (size_t)nb, &p))
                return -1;
            int64_t v = nb ? sext(le_u(p, (int)nb), (int)nb) : 0; /* little-endian two's complement */
            if (push(m, new_int(m, v)))
                return -1;
            break;
        }
        case 'G': /* BINFLOAT: big-endian double */ {
            if (take(m, 8, &p))
                return -1;
            uint64_t u = be_u(p, 8);
            double d;
            memcpy(&d, &u, sizeof d);
            if (push(m, new_float(m, d)))
                return -1;
            break;
        }
        case 0x8c: /* SHORT_BINUNICODE */
        case 'X':  /* BINUNICODE */
        case 0x8d: /* BINUNICODE8 */
            if (take_sized(m, op == 0x8c ? 1 : op == 'X' ? 4 : 8, &p, &n) || push(m, new_str(m, p, n)))
                return -1;
            break;
        case 'C':  /* SHORT_BINBYTES */
        case 'B':  /* BINBYTES */
        case 0x8e: /* BINBYTES8 */
        case 0x96: /* BYTEARRAY8: a bytearray is bytes here */
            if (take_sized(m, op == 'C' ? 1 : op == 'B' ? 4 : 8, &p, &n) || push(m, new_blob(m, PV_BYTES, p, n)))
                return -1;
            break;
        case ']':
            if (push(m, new_seq(m, PV_LIST, NULL, 0)))
                return -1;
            break;
        case ')':
            if (push(m, new_seq(m, PV_TUPLE, NULL, 0)))
                return -1;
            break;
        case 0x85:
        case 0x86:
        case 0x87: {
            size_t k = (size_t)(op - 0x84);
            if (need_stack(m, k, op_name(op)))
                return -1;
            node *t = new_seq(m, PV_TUPLE, m->stack + m->sp - k, k);
            m->sp -= k;
            if (push(m, t))
                return -1;
            break;
        }
        case 't': /* TUPLE */ {
            if (!m->nmarks)
                return vm_fail(m, "TUPLE without a MARK");
            size_t base = m->marks[--m->nmarks];
            /* "(t" before anything was pushed: the stack is not even allocated yet */
            node *t = new_seq(m, PV_TUPLE, m->sp > base ? m->stack + base : NULL, m->sp - base);
            m->sp = base;
            if (push(m, t))
                return -1;
            break;
        }
        case 'a': /* APPEND */ {
            if (need_stack(m, 2, "APPEND"))
                return -1;
            node *item = pop(m);
            node *list = top(m);
            if (!is_kind(list, PV_LIST))
                return vm_fail(m, "APPEND to a %s, expected a list", describe(list));
            if (list_extend(m, list, &item, 1))
                return -1;
            break;
        }
        case 'e': /* APPENDS */ {
            if (!m->nmarks)
                return vm_fail(m, "APPENDS without a MARK");
            size_t base = m->marks[m->nmarks - 1];
            size_t below = m->nmarks > 1 ? m->marks[m->nmarks - 2] : 0;
            if (base <= below)
                return vm_fail(m, "stack underflow: APPENDS finds no list below its MARK");
            node *list = m->stack[base - 1];
            if (!is_kind(list, PV_LIST))
                return vm_fail(m, "APPENDS to a %s, expected a list", describe(list));
            if (list_extend(m, list, m->stack + base, m->sp - base))
                return -1;
            m->sp = base;
            m->nmarks--;
            break;
        }
        case 'c': /* GLOBAL */ {
            const uint8_t *mod = NULL, *name = NULL;
            size_t mod_n = 0, name_n = 0;
            if (take_line(m, &mod, &mod_n, "module") || take_line(m, &name, &name_n, "attribute") ||
                resolve_global(m, mod, mod_n, name, name_n))
                return -1;
            break;
        }
        case 0x93: /* STACK_GLOBAL */ {
            if (need_stack(m, 2, "STACK_GLOBAL"))
                return -1;
            node *name = pop(m), *mod = pop(m);
            if (!is_kind(mod, PV_STR) || !is_kind(name, PV_STR))
                return vm_fail(m, "STACK_GLOBAL on a %s and a %s, expected two str", describe(mod), describe(name));
            if (resolve_global(m, (const uint8_t *)mod->v.u.str.s, mod->v.u.str.n, (const uint8_t *)name->v.u.str.s,
                               name->v.u.str.n))
                return -1;
            break;
        }
        case 'R':
            if (op_reduce(m))
                return -1;
            break;
        case 'b':
            if (op_build(m))
                return -1;
            break;
        case 'q': /* BINPUT */
            if (take(m, 1, &p) || memo_put(m, p[0]))
                return -1;
            break;
        case 'r': /* LONG_BINPUT */
            if (take(m, 4, &p) || memo_put(m, le_u(p, 4)))
                return -1;
            break;
        case 0x94: /* MEMOIZE */
            if (memo_put(m, m->memo_len))
                return -1;
            break;
        case 'h': /* BINGET */
            if (take(m, 1, &p) || memo_get(m, p[0]))
                return -1;
            break;
        case 'j': /* LONG_BINGET */
            if (take(m, 4, &p) || memo_get(m, le_u(p, 4)))
                return -1;
            break;
        case 0x97:
        case 0x98:
            return vm_fail(m, "%s: out-of-band buffers are not available (the data must be inside the pickle)",
                           op_name(op));
        default: {
            const char *nm = op_name(op);
            if (nm)
                return vm_fail(m, "opcode %s (0x%02x) is not supported (only what NumPy writes for arrays is)", nm,
                               op);
            return vm_fail(m, "unknown opcode 0x%02x", op);
        }
        }
    }
}

int pickle_load(pickle_doc *doc, const uint8_t *buf, size_t len, const char *name)
{
    doc->root = NULL;
    doc->arena = NULL;
    vm m;
    memset(&m, 0, sizeof m);
    m.buf = buf;
    m.len = buf ? len : 0;
    m.name = name ? name : "pickle";
    m.a = calloc(1, sizeof *m.a);
    if (!m.a)
        return debcm_fail("%s: out of memory", m.name);
    int rc = -1;
    m.none = new_node(&m, PV_NONE);
    m.yes = new_node(&m, PV_BOOL);
    m.no = new_node(&m, PV_BOOL);
    if (m.none && m.yes && m.no) {
        m.yes->v.u.i = 1;
        node *root = NULL;
        rc = run(&m, &root);
        if (rc == 0)
            doc->root = &root->v;
    }
    free(m.stack);
    free(m.memo);
    if (rc) {
        arena_destroy(m.a);
        return -1;
    }
    doc->arena = m.a;
    return 0;
}

void pickle_free(pickle_doc *doc)
{
    if (!doc)
        return;
    arena_destroy(doc->arena);
    doc->arena = NULL;
    doc->root = NULL;
}

const char *pv_kind_name(pv_kind k)
{
    static const char *const names[PV_KIND_COUNT] = {
        [PV_NONE] = "None", [PV_BOOL] = "bool",   [PV_INT] = "int",     [PV_FLOAT] = "float",     [PV_STR] = "str",
        [PV_BYTES] = "bytes", [PV_LIST] = "list", [PV_TUPLE] = "tuple", [PV_NDARRAY] = "ndarray",
    };
    return (unsigned)k < PV_KIND_COUNT ? names[k] : "?";
}
