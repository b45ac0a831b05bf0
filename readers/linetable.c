/*
 * linetable.c — decoding CPython line-number tables into byte-offset ranges (see linetable.h).
 *
 * Every format is walked by one small cursor that yields one range at a time, so lt_decode() (which
 * stores and merges them) and lt_addr2line() (which stops at the first range covering an offset)
 * share the decoders and neither needs memory beyond the caller's. All arithmetic is done wide and
 * checked, because the bytes come from another process and may be torn or garbage.
 */
#include "readers/linetable.h"

#include <assert.h>

/* The last range of a co_lnotab table has no recorded end: CPython keeps its line for every later
 * offset, so it extends to the end of the offset space. */
#define LT_OPEN_END UINT32_MAX

struct lt_cursor {
    enum py_linetable_kind kind;
    const uint8_t *p;
    const uint8_t *end;
    uint64_t addr;      /* byte offset where the next range starts */
    int64_t line;       /* running line; kept wide so that overflow is caught, not wrapped */
    bool finished;      /* lnotab: the open-ended final range has been produced */
};

enum { LT_DONE = 0, LT_RANGE = 1, LT_BAD = -1 };

static bool lt_line_ok(int64_t line)
{
    return line >= INT32_MIN && line <= INT32_MAX;
}

/* Emits [c->addr, c->addr + width) with `line` and advances; LT_BAD if offsets leave 32 bits. */
static int lt_emit(struct lt_cursor *c, uint64_t width, int64_t line, struct lt_range *r)
{
    if (c->addr + width > UINT32_MAX || !lt_line_ok(line))
        return LT_BAD;
    r->start = (uint32_t)c->addr;
    r->end = (uint32_t)(c->addr + width);
    r->line = (int32_t)line;
    c->addr += width;
    return LT_RANGE;
}

/*
 * co_lnotab (2.7, 3.6–3.9): a pair's line delta takes effect at the address the pair reaches, so
 * the bytes the pair skips over still belong to the line before it. Pairs with a zero address
 * delta only move the line (that is how deltas beyond one byte are spelled); pairs with a zero line
 * delta only move the address (how more than 255 bytes on one line are spelled).
 */
static int lt_next_lnotab(struct lt_cursor *c, struct lt_range *r)
{
    while (c->end - c->p >= 2) {
        uint8_t addr_incr = c->p[0];
        int line_incr = c->kind == PY_LT_LNOTAB27 ? c->p[1] : (int8_t)c->p[1];
        c->p += 2;
        int64_t line = c->line;
        c->line += line_incr;
        if (addr_incr > 0)
            return lt_emit(c, addr_incr, line, r);
        if (!lt_line_ok(c->line))
            return LT_BAD;
    }
    if (c->p != c->end)
        return LT_BAD;          /* an odd byte: the table was cut mid-pair */
    if (c->finished || c->addr >= LT_OPEN_END)
        return LT_DONE;
    c->finished = true;
    return lt_emit(c, LT_OPEN_END - c->addr, c->line, r);
}

/*
 * co_linetable (3.10): unlike lnotab, a pair's line delta applies to the pair's own range. -128
 * marks a range with no line (artificial instructions) and leaves the running line alone.
 */
static int lt_next_310(struct lt_cursor *c, struct lt_range *r)
{
    while (c->end - c->p >= 2) {
        uint8_t width = c->p[0];
        int8_t delta = (int8_t)c->p[1];
        c->p += 2;
        int64_t line = -1;
        if (delta != -128) {
            c->line += delta;
            line = c->line;
        }
        if (width > 0)
            return lt_emit(c, width, line, r);
        if (!lt_line_ok(c->line))
            return LT_BAD;
    }
    return c->p == c->end ? LT_DONE : LT_BAD;
}

/*
 * Only the first byte of a 3.11+ entry has bit 7 set; every varint chunk and column byte after it
 * is below 0x80 (CPython picks the one-line and short forms only when the columns fit). Insisting
 * on that lets a truncated entry be told apart from the start of the next one.
 */
static bool lt_payload_byte(struct lt_cursor *c, uint8_t *b)
{
    if (c->p >= c->end || (*c->p & 0x80))
        return false;
    *b = *c->p++;
    return true;
}

/* Unsigned varint: 6-bit chunks, least significant first, 0x40 = more follow. */
static bool lt_varint(struct lt_cursor *c, uint32_t *v)
{
    uint64_t val = 0;
    for (unsigned shift = 0; shift < 36; shift += 6) {
        uint8_t b;
        if (!lt_payload_byte(c, &b))
            return false;
        val |= (uint64_t)(b & 0x3f) << shift;
        if (!(b & 0x40)) {
            if (val > UINT32_MAX)
                return false;
            *v = (uint32_t)val;
            return true;
        }
    }
    return false;               /* more chunks than any 32-bit value needs */
}

/* Signed varint: the sign lives in bit 0 of the unsigned value. */
static bool lt_svarint(struct lt_cursor *c, int64_t *v)
{
    uint32_t u;
    if (!lt_varint(c, &u))
        return false;
    *v = (u & 1) ? -(int64_t)(u >> 1) : (int64_t)(u >> 1);
    return true;
}

static bool lt_skip_payload(struct lt_cursor *c, int nbytes)
{
    uint8_t b;
    while (nbytes-- > 0)
        if (!lt_payload_byte(c, &b))
            return false;
    return true;
}

/* 3.11+ location table: one entry per range of 1–8 code units (2 bytes each). */
static int lt_next_locations(struct lt_cursor *c, struct lt_range *r)
{
    if (c->p >= c->end)
        return LT_DONE;
    uint8_t head = *c->p++;
    if (!(head & 0x80))
        return LT_BAD;
    int code = (head >> 3) & 0x0f;
    uint64_t width = ((uint64_t)(head & 0x07) + 1) * 2;
    int64_t delta = 0;
    uint32_t ignored;
    bool ok = true;

    switch (code) {
    case 15:                    /* no location: the running line is kept for later entries */
        return lt_emit(c, width, -1, r);
    case 14:                    /* long form: line delta, end line, column, end column */
        ok = lt_svarint(c, &delta) && lt_varint(c, &ignored) && lt_varint(c, &ignored) &&
             lt_varint(c, &ignored);
        break;
    case 13:                    /* no column information */
        ok = lt_svarint(c, &delta);
        break;
    case 12: case 11: case 10:  /* one-line form: small forward delta, column, end column */
        delta = code - 10;
        ok = lt_skip_payload(c, 2);
        break;
    default:                    /* short form 0–9: same line, one packed column byte */
        ok = lt_skip_payload(c, 1);
        break;
    }
    if (!ok)
        return LT_BAD;
    c->line += delta;
    return lt_emit(c, width, c->line, r);
}

static int lt_next(struct lt_cursor *c, struct lt_range *r)
{
    switch (c->kind) {
    case PY_LT_LNOTAB27:
    case PY_LT_LNOTAB:
        return lt_next_lnotab(c, r);
    case PY_LT_LINETABLE310:
        return lt_next_310(c, r);
    case PY_LT_LOCATIONS:
        return lt_next_locations(c, r);
    }
    return LT_BAD;
}

static bool lt_cursor_init(struct lt_cursor *c, enum py_linetable_kind kind, const uint8_t *tab,
                           size_t len, int firstlineno)
{
    if (!tab && len)
        return false;
    *c = (struct lt_cursor){ .kind = kind, .p = tab, .end = tab ? tab + len : tab,
                             .line = firstlineno };
    return true;
}

int lt_decode(enum py_linetable_kind kind, const uint8_t *tab, size_t len, int firstlineno,
              struct lt_range *out, size_t cap, size_t *n)
{
    struct lt_cursor c;
    struct lt_range r;
    int rc;

    *n = 0;
    if (!lt_cursor_init(&c, kind, tab, len, firstlineno))
        return -1;
    while ((rc = lt_next(&c, &r)) == LT_RANGE) {
        /* Ranges come out contiguous; neighbours on the same line (runs of one long line, the
         * pieces of a split delta) are one range as far as a lookup is concerned. */
        if (*n > 0 && out[*n - 1].end == r.start && out[*n - 1].line == r.line) {
            out[*n - 1].end = r.end;
            continue;
        }
        if (*n == cap)
            return -1;
        out[(*n)++] = r;
    }
    return rc == LT_DONE ? 0 : -1;
}

int32_t lt_line_at(const struct lt_range *r, size_t n, uint32_t off)
{
    /* Find the last range starting at or before off; it covers off unless off falls past its end
     * (a gap, or beyond the last range). */
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (r[mid].start <= off)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == 0 || off >= r[lo - 1].end)
        return -1;
    return r[lo - 1].line;
}

int32_t lt_addr2line(enum py_linetable_kind kind, const uint8_t *tab, size_t len, int firstlineno,
                     uint32_t off)
{
    struct lt_cursor c;
    struct lt_range r;

    /* A covering range with no line (3.10's -128, 3.11's code 15) answers -1, as CPython's own
     * PyCode_Addr2Line does; only an offset no range reaches (or one past a fault) falls back. */
    if (!lt_cursor_init(&c, kind, tab, len, firstlineno))
        return firstlineno;
    while (lt_next(&c, &r) == LT_RANGE) {
        assert(r.start < r.end);
        if (off < r.end)
            return off >= r.start ? r.line : firstlineno;
    }
    return firstlineno;
}
