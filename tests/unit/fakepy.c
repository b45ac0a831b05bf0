/*
 * fakepy.c — the fake-CPython builder (see fakepy.h). Objects are written the way the interpreter
 * of each version writes them (field offsets from the layout table, real line tables, PEP 393 state
 * words), so a reader that passes here has read the same bytes it will meet in a live target.
 * Test code: included by the unit tests that use it, not part of the library.
 */
#include "fakepy.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#define FAKEPY_ALIGN 16

/* ---- heap ---------------------------------------------------------------------------------- */

uint64_t fakepy_alloc(struct fakepy *fp, size_t len)
{
    uint64_t at = (fp->top + FAKEPY_ALIGN - 1) & ~(uint64_t)(FAKEPY_ALIGN - 1);
    assert(at + len <= fp->cap && "fake heap exhausted: pass a larger heap_size");
    fp->top = at + len;
    return fp->base + at;
}

static uint8_t *fakepy_at(const struct fakepy *fp, uint64_t addr, size_t len)
{
    assert(addr >= fp->base && addr - fp->base + len <= fp->cap);
    return fp->heap + (addr - fp->base);
}

void fakepy_put64(struct fakepy *fp, uint64_t addr, uint64_t v)
{
    memcpy(fakepy_at(fp, addr, 8), &v, 8);
}

void fakepy_put32(struct fakepy *fp, uint64_t addr, uint32_t v)
{
    memcpy(fakepy_at(fp, addr, 4), &v, 4);
}

void fakepy_put8(struct fakepy *fp, uint64_t addr, uint8_t v)
{
    *fakepy_at(fp, addr, 1) = v;
}

uint64_t fakepy_get64(const struct fakepy *fp, uint64_t addr)
{
    uint64_t v;
    memcpy(&v, fakepy_at(fp, addr, 8), 8);
    return v;
}

static uint32_t fakepy_get32(const struct fakepy *fp, uint64_t addr)
{
    uint32_t v;
    memcpy(&v, fakepy_at(fp, addr, 4), 4);
    return v;
}

/* Bytes needed to hold a struct of which we only write fields at these offsets (-1: absent). */
static size_t fakepy_span(const int32_t *offs, size_t n)
{
    size_t end = 16;    /* ob_refcnt + ob_type at least */
    for (size_t i = 0; i < n; i++)
        if (offs[i] >= 0 && (size_t)offs[i] + 8 > end)
            end = (size_t)offs[i] + 8;
    return end;
}

static uint64_t fakepy_cstr(struct fakepy *fp, const char *s)
{
    size_t n = strlen(s) + 1;
    uint64_t at = fakepy_alloc(fp, n);
    memcpy(fakepy_at(fp, at, n), s, n);
    return at;
}

/* A type object: enough of PyTypeObject for tp_name. */
static uint64_t fakepy_type(struct fakepy *fp, const char *name)
{
    const struct py_layout *L = fp->L;
    int32_t offs[] = { L->tp_name, L->tp_flags };
    uint64_t t = fakepy_alloc(fp, fakepy_span(offs, 2));
    fakepy_put64(fp, t, 1);
    fakepy_put64(fp, t + (uint64_t)L->tp_name, fakepy_cstr(fp, name));
    return t;
}

void fakepy_init(struct fakepy *fp, const struct py_layout *L, size_t heap_size)
{
    memset(fp, 0, sizeof *fp);
    fp->L = L;
    fp->mem = mem_fake_new();
    assert(fp->mem);
    void *zero = calloc(1, heap_size);
    assert(zero);
    int rc = mem_fake_add(fp->mem, FAKEPY_HEAP_BASE, zero, heap_size);
    assert(rc == 0);
    (void)rc;
    free(zero);
    fp->heap = mem_fake_region(fp->mem, FAKEPY_HEAP_BASE);
    fp->base = FAKEPY_HEAP_BASE;
    fp->cap = heap_size;
    fp->top = 64;     /* nothing lives at the very start, as in a real arena header */

    fp->code_type = fakepy_type(fp, "code");
    fp->str_type = fakepy_type(fp, "str");
    fp->unicode_type = fakepy_type(fp, "unicode");
    fp->bytes_type = fakepy_type(fp, "bytes");
    fp->frame_type = fakepy_type(fp, "frame");

    if (L->rt_interpreters_head >= 0) {
        int32_t offs[] = { L->rt_interpreters_head, L->rt_gilstate_current,
                           L->rt_gil >= 0 ? L->rt_gil + L->gil_locked : -1,
                           L->rt_gil >= 0 ? L->rt_gil + L->gil_last_holder : -1 };
        fp->runtime = fakepy_alloc(fp, fakepy_span(offs, 4));
    } else {
        /* 2.7 / 3.6: globals in the interpreter's .data, found by symbol. */
        fp->interp_head_addr = fakepy_alloc(fp, 8);
        fp->tstate_current_addr = fakepy_alloc(fp, 8);
    }
}

void fakepy_fini(struct fakepy *fp)
{
    if (fp->mem)
        mem_close(fp->mem);
    fp->mem = NULL;
}

struct py_proc *fakepy_proc(struct fakepy *fp)
{
    const struct py_layout *L = fp->L;
    struct py_version v = { L->major, L->minor, (int)(L->hexversion >> 8 & 0xff), L->hexversion };
    struct py_proc *p = py_proc_from_mem(fp->mem, L, &v, fp->runtime, fp->interp_head_addr);
    assert(p);
    fp->mem = NULL;   /* the proc owns it now; fp->heap stays valid while p lives */
    p->types.code = fp->code_type;
    p->types.str = fp->str_type;
    p->types.bytes = fp->bytes_type;
    if (L->strings == PY_STR_BYTES27)
        p->types.unicode = fp->unicode_type;
    p->tstate_current_addr = fp->tstate_current_addr;
    return p;
}

/* ---- strings and bytes --------------------------------------------------------------------- */

/* Decodes well-formed UTF-8 (test literals) to code points; returns the count. */
static size_t fakepy_utf8_decode(const char *s, uint32_t *cps, size_t cap)
{
    const uint8_t *p = (const uint8_t *)s;
    size_t n = 0;
    while (*p) {
        uint32_t cp;
        int more;
        if (*p < 0x80) { cp = *p; more = 0; }
        else if (*p < 0xE0) { cp = *p & 0x1F; more = 1; }
        else if (*p < 0xF0) { cp = *p & 0x0F; more = 2; }
        else { cp = *p & 0x07; more = 3; }
        p++;
        while (more-- > 0)
            cp = cp << 6 | (*p++ & 0x3F);
        assert(n < cap);
        cps[n++] = cp;
    }
    return n;
}

static void fakepy_put_cp(struct fakepy *fp, uint64_t at, int width, uint32_t cp)
{
    if (width == 1)
        fakepy_put8(fp, at, (uint8_t)cp);
    else if (width == 2) {
        uint16_t v = (uint16_t)cp;
        memcpy(fakepy_at(fp, at, 2), &v, 2);
    } else
        fakepy_put32(fp, at, cp);
}

uint64_t fakepy_bytes(struct fakepy *fp, const void *data, size_t len)
{
    const struct py_layout *L = fp->L;
    uint64_t b = fakepy_alloc(fp, (size_t)L->bytes_sval + len + 1);
    fakepy_put64(fp, b, 1);
    fakepy_put64(fp, b + (uint64_t)L->ob_type, fp->L->strings == PY_STR_BYTES27 ? fp->str_type
                                                                                 : fp->bytes_type);
    fakepy_put64(fp, b + (uint64_t)L->ob_size, len);
    fakepy_put64(fp, b + (uint64_t)L->ob_size + 8, UINT64_MAX);   /* ob_shash = -1 */
    if (len)
        memcpy(fakepy_at(fp, b + (uint64_t)L->bytes_sval, len), data, len);
    return b;
}

/* PEP 393 compact string, the narrowest kind that holds every code point (CPython's choice). */
static uint64_t fakepy_str393(struct fakepy *fp, const char *utf8)
{
    const struct py_layout *L = fp->L;
    uint32_t cps[512];
    size_t n = fakepy_utf8_decode(utf8, cps, 512);
    uint32_t max = 0;
    for (size_t i = 0; i < n; i++)
        max = cps[i] > max ? cps[i] : max;
    int ascii = max < 0x80;
    int kind = max < 0x100 ? 1 : max < 0x10000 ? 2 : 4;
    size_t hdr = (size_t)(ascii ? L->uni_ascii_size : L->uni_compact_size);
    uint64_t s = fakepy_alloc(fp, hdr + (n + 1) * (size_t)kind);
    fakepy_put64(fp, s, 1);
    fakepy_put64(fp, s + (uint64_t)L->ob_type, fp->str_type);
    fakepy_put64(fp, s + (uint64_t)L->uni_length, n);
    fakepy_put64(fp, s + (uint64_t)L->uni_length + 8, UINT64_MAX);  /* hash = -1 */
    /* state: interned (2 bits), kind (3), compact (1), ascii (1), then ready (3.3–3.11) or
     * statically_allocated (3.12+). */
    int ib = L->uni_state_interned_bits;
    uint32_t state = (uint32_t)kind << ib | 1u << (ib + 3) | (uint32_t)ascii << (ib + 4);
    if (L->major == 3 && L->minor <= 11)
        state |= 1u << (ib + 5);
    fakepy_put32(fp, s + (uint64_t)L->uni_state, state);
    for (size_t i = 0; i < n; i++)
        fakepy_put_cp(fp, s + hdr + i * (size_t)kind, kind, cps[i]);
    return s;
}

uint64_t fakepy_str(struct fakepy *fp, const char *utf8)
{
    if (fp->L->strings == PY_STR_BYTES27)
        return fakepy_bytes(fp, utf8, strlen(utf8));
    return fakepy_str393(fp, utf8);
}

uint64_t fakepy_unicode27(struct fakepy *fp, const char *utf8)
{
    const struct py_layout *L = fp->L;
    uint32_t cps[512];
    size_t n = fakepy_utf8_decode(utf8, cps, 512);
    int width = L->uni27_wide ? 4 : 2;
    uint64_t data = fakepy_alloc(fp, (n + 1) * (size_t)width);
    for (size_t i = 0; i < n; i++)
        fakepy_put_cp(fp, data + i * (size_t)width, width, cps[i]);
    /* PyUnicodeObject: head, length, str, hash, defenc. */
    uint64_t u = fakepy_alloc(fp, (size_t)L->uni_legacy_data + 24);
    fakepy_put64(fp, u, 1);
    fakepy_put64(fp, u + (uint64_t)L->ob_type, fp->unicode_type);
    fakepy_put64(fp, u + (uint64_t)L->uni_length, n);
    fakepy_put64(fp, u + (uint64_t)L->uni_legacy_data, data);
    fakepy_put64(fp, u + (uint64_t)L->uni_legacy_data + 8, UINT64_MAX);
    return u;
}

/* ---- line tables --------------------------------------------------------------------------- */

int fakepy_line(int firstlineno, int off)
{
    if (off < 2)
        return firstlineno;
    if (off < 10)
        return firstlineno + 1;
    if (off < 20)
        return firstlineno + 2;
    return firstlineno + 4;
}

size_t fakepy_linetable(const struct py_layout *L, uint8_t out[64])
{
    /* co_lnotab (2.7, 3.6–3.9): (bytes advanced, line delta taking effect there). */
    static const uint8_t lnotab[] = { 2, 1, 8, 1, 10, 2 };
    /* 3.10 co_linetable: (bytes in this range, line delta applied to this range). */
    static const uint8_t lt310[] = { 2, 0, 8, 1, 10, 1, 20, 2 };
    /* 3.11+ locations, lengths in code units: short form (1 unit, same line); one-line form
     * code 11 (+1) for 4 and 5 units; long form (8 units, +2, end line +0, columns 4..69 — the
     * end column needs a 2-chunk varint); no-column form (2 units, +0). */
    static const uint8_t loc[] = {
        0x80 | 0 << 3 | 0, 0x00,
        0x80 | 11 << 3 | 3, 4, 10,
        0x80 | 11 << 3 | 4, 8, 20,
        0x80 | 14 << 3 | 7, 0x04, 0x00, 0x05, 0x40 | 6, 0x01,
        0x80 | 13 << 3 | 1, 0x00,
    };
    const uint8_t *t = lnotab;
    size_t n = sizeof lnotab;
    if (L->linetable == PY_LT_LINETABLE310) {
        t = lt310;
        n = sizeof lt310;
    } else if (L->linetable == PY_LT_LOCATIONS) {
        t = loc;
        n = sizeof loc;
    }
    memcpy(out, t, n);
    return n;
}

/* ---- code objects -------------------------------------------------------------------------- */

uint64_t fakepy_code_objs(struct fakepy *fp, uint64_t name, uint64_t qualname, uint64_t filename,
                          int firstlineno)
{
    const struct py_layout *L = fp->L;
    uint8_t tab[64], bytecode[FAKEPY_CODE_LEN];
    size_t tablen = fakepy_linetable(L, tab);
    for (int i = 0; i < FAKEPY_CODE_LEN; i += 2) {
        bytecode[i] = 0x64;          /* LOAD_CONST-ish; the readers never look at opcodes */
        bytecode[i + 1] = (uint8_t)(i / 2);
    }
    uint64_t linetable = fakepy_bytes(fp, tab, tablen);
    size_t size = (size_t)L->co_size;
    if (L->co_code_adaptive >= 0 && (size_t)L->co_code_adaptive + FAKEPY_CODE_LEN > size)
        size = (size_t)L->co_code_adaptive + FAKEPY_CODE_LEN;
    uint64_t c = fakepy_alloc(fp, size);
    fakepy_put64(fp, c, 1);
    fakepy_put64(fp, c + (uint64_t)L->ob_type, fp->code_type);
    fakepy_put32(fp, c + (uint64_t)L->co_argcount, 1);
    if (L->co_nlocals >= 0)
        fakepy_put32(fp, c + (uint64_t)L->co_nlocals, 2);
    if (L->co_flags >= 0)
        fakepy_put32(fp, c + (uint64_t)L->co_flags, FAKEPY_CO_FUNCTION);
    fakepy_put32(fp, c + (uint64_t)L->co_firstlineno, (uint32_t)firstlineno);
    fakepy_put64(fp, c + (uint64_t)L->co_name, name);
    fakepy_put64(fp, c + (uint64_t)L->co_filename, filename);
    if (L->co_qualname >= 0)
        fakepy_put64(fp, c + (uint64_t)L->co_qualname, qualname);
    fakepy_put64(fp, c + (uint64_t)L->co_linetable, linetable);
    if (L->co_code >= 0)
        fakepy_put64(fp, c + (uint64_t)L->co_code, fakepy_bytes(fp, bytecode, sizeof bytecode));
    if (L->co_code_adaptive >= 0)
        memcpy(fakepy_at(fp, c + (uint64_t)L->co_code_adaptive, sizeof bytecode), bytecode,
               sizeof bytecode);
    return c;
}

uint64_t fakepy_code(struct fakepy *fp, const char *name, const char *qualname,
                     const char *filename, int firstlineno)
{
    uint64_t n = fakepy_str(fp, name);
    uint64_t q = fp->L->co_qualname >= 0 ? fakepy_str(fp, qualname) : 0;
    return fakepy_code_objs(fp, n, q, fakepy_str(fp, filename), firstlineno);
}

/* ---- frames, threads, interpreters --------------------------------------------------------- */

uint64_t fakepy_frame(struct fakepy *fp, uint64_t code, uint64_t back, int lasti)
{
    const struct py_layout *L = fp->L;
    if (L->frame_model == PY_FRAMES_INTERP && !back && L->if_owner_cstack >= 0) {
        /* From 3.12 every chain ends in the C-stack entry frame that _PyEval_EvalFrameDefault
         * pushes; the walker treats a chain without it as torn. */
        uint64_t shim = fakepy_alloc(fp, (size_t)L->if_size);
        fakepy_put64(fp, shim + (uint64_t)L->if_code, code);
        fakepy_put8(fp, shim + (uint64_t)L->if_owner, (uint8_t)L->if_owner_cstack);
        back = shim;
    }
    if (L->frame_model == PY_FRAMES_INTERP) {
        size_t size = (size_t)L->if_localsplus + 8 * FAKEPY_FRAME_SLOTS;
        uint64_t f = fakepy_alloc(fp, size > (size_t)L->if_size ? size : (size_t)L->if_size);
        fakepy_put64(fp, f + (uint64_t)L->if_localsplus, code);   /* argument 0: some object */
        fakepy_put64(fp, f + (uint64_t)L->if_code, code);
        fakepy_put64(fp, f + (uint64_t)L->if_previous, back);
        fakepy_put64(fp, f + (uint64_t)L->if_instr,
                     code + (uint64_t)L->co_code_adaptive + (uint64_t)lasti);
        fakepy_put8(fp, f + (uint64_t)L->if_owner, 0);    /* FRAME_OWNED_BY_THREAD */
        return f;
    }
    uint64_t f = fakepy_alloc(fp, (size_t)L->fo_localsplus + 8 * FAKEPY_FRAME_SLOTS);
    fakepy_put64(fp, f, 1);
    fakepy_put64(fp, f + (uint64_t)L->ob_type, fp->frame_type);
    fakepy_put64(fp, f + (uint64_t)L->ob_size, FAKEPY_FRAME_SLOTS);
    fakepy_put64(fp, f + (uint64_t)L->fo_localsplus, code);      /* argument 0: some object */
    fakepy_put64(fp, f + (uint64_t)L->fo_back, back);
    fakepy_put64(fp, f + (uint64_t)L->fo_code, code);
    /* 3.10 counts f_lasti in code units (2-byte instructions); earlier versions in bytes. */
    int stored = L->major == 3 && L->minor == 10 ? lasti / 2 : lasti;
    fakepy_put32(fp, f + (uint64_t)L->fo_lasti, (uint32_t)stored);
    /* f_lineno is only kept current while tracing; at creation it is co_firstlineno. */
    if (code >= fp->base && code - fp->base < fp->cap)
        fakepy_put32(fp, f + (uint64_t)L->fo_lineno,
                     fakepy_get32(fp, code + (uint64_t)L->co_firstlineno));
    return f;
}

void fakepy_frame_owner(struct fakepy *fp, uint64_t frame, int owner)
{
    assert(fp->L->if_owner >= 0);
    fakepy_put8(fp, frame + (uint64_t)fp->L->if_owner, (uint8_t)owner);
}

uint64_t fakepy_frame_back_addr(const struct fakepy *fp, uint64_t frame)
{
    const struct py_layout *L = fp->L;
    return frame + (uint64_t)(L->frame_model == PY_FRAMES_INTERP ? L->if_previous : L->fo_back);
}

uint64_t fakepy_interp(struct fakepy *fp, int64_t id)
{
    const struct py_layout *L = fp->L;
    int32_t offs[] = { L->is_next, L->is_tstate_head, L->is_id, L->is_modules, L->is_ceval_gil };
    uint64_t is = fakepy_alloc(fp, fakepy_span(offs, 5));
    if (L->is_id >= 0)
        fakepy_put64(fp, is + (uint64_t)L->is_id, (uint64_t)id);
    uint64_t link = fp->runtime ? fp->runtime + (uint64_t)L->rt_interpreters_head
                                : fp->interp_head_addr;
    while (fakepy_get64(fp, link))
        link = fakepy_get64(fp, link) + (uint64_t)L->is_next;
    fakepy_put64(fp, link, is);
    return is;
}

void fakepy_set_top(struct fakepy *fp, uint64_t ts, uint64_t top)
{
    const struct py_layout *L = fp->L;
    uint64_t at = L->ts_current_frame >= 0 ? ts + (uint64_t)L->ts_current_frame
                  : L->ts_cframe >= 0 ? fakepy_get64(fp, ts + (uint64_t)L->ts_cframe) +
                                            (uint64_t)L->cf_current_frame
                                      : ts + (uint64_t)L->ts_frame;
    fakepy_put64(fp, at, top);
}

uint64_t fakepy_thread(struct fakepy *fp, uint64_t interp, uint64_t top, uint64_t thread_id,
                       int64_t native_id)
{
    const struct py_layout *L = fp->L;
    uint64_t ts = fakepy_alloc(fp, (size_t)L->ts_size);
    fakepy_put64(fp, ts + (uint64_t)L->ts_interp, interp);
    fakepy_put64(fp, ts + (uint64_t)L->ts_thread_id, thread_id);
    if (L->ts_native_thread_id >= 0)
        fakepy_put64(fp, ts + (uint64_t)L->ts_native_thread_id, (uint64_t)native_id);
    if (L->ts_cframe >= 0 && L->ts_current_frame < 0) {
        /* 3.11–3.12: the top frame hangs off a _PyCFrame that lives on the C stack. */
        uint64_t cf = fakepy_alloc(fp, (size_t)L->cf_current_frame + 16);
        fakepy_put64(fp, ts + (uint64_t)L->ts_cframe, cf);
    }
    fakepy_set_top(fp, ts, top);
    /* Appended, so that tests list threads in the order they made them; prev links as CPython
     * keeps them (NULL on the head). */
    uint64_t link = interp + (uint64_t)L->is_tstate_head, last = 0;
    while (fakepy_get64(fp, link)) {
        last = fakepy_get64(fp, link);
        link = last + (uint64_t)L->ts_next;
    }
    fakepy_put64(fp, link, ts);
    if (L->ts_prev >= 0)
        fakepy_put64(fp, ts + (uint64_t)L->ts_prev, last);
    return ts;
}

uint64_t fakepy_thread_first(struct fakepy *fp, uint64_t interp, uint64_t top, uint64_t thread_id,
                             int64_t native_id)
{
    const struct py_layout *L = fp->L;
    uint64_t head = fakepy_get64(fp, interp + (uint64_t)L->is_tstate_head);
    fakepy_put64(fp, interp + (uint64_t)L->is_tstate_head, 0);
    uint64_t ts = fakepy_thread(fp, interp, top, thread_id, native_id);
    fakepy_put64(fp, ts + (uint64_t)L->ts_next, head);
    if (head && L->ts_prev >= 0)
        fakepy_put64(fp, head + (uint64_t)L->ts_prev, ts);
    return ts;
}

void fakepy_set_gil(struct fakepy *fp, uint64_t interp, uint64_t tstate, int locked)
{
    const struct py_layout *L = fp->L;
    if (L->is_ceval_gil >= 0) {
        /* 3.12+: interp->ceval.gil points at the GIL this interpreter uses. */
        int32_t offs[] = { L->gil_locked, L->gil_last_holder };
        uint64_t gil = fakepy_alloc(fp, fakepy_span(offs, 2));
        fakepy_put32(fp, gil + (uint64_t)L->gil_locked, (uint32_t)locked);
        fakepy_put64(fp, gil + (uint64_t)L->gil_last_holder, tstate);
        fakepy_put64(fp, interp + (uint64_t)L->is_ceval_gil, gil);
    } else if (fp->runtime && L->rt_gilstate_current >= 0) {
        /* 3.7–3.11: gilstate.tstate_current is cleared whenever the GIL is dropped. */
        fakepy_put64(fp, fp->runtime + (uint64_t)L->rt_gilstate_current, locked ? tstate : 0);
        if (L->rt_gil >= 0) {
            fakepy_put32(fp, fp->runtime + (uint64_t)(L->rt_gil + L->gil_locked), (uint32_t)locked);
            fakepy_put64(fp, fp->runtime + (uint64_t)(L->rt_gil + L->gil_last_holder), tstate);
        }
    } else {
        fakepy_put64(fp, fp->tstate_current_addr, locked ? tstate : 0);
    }
}
