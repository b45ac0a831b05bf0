/*
 * pystr.c — CPython string payloads to valid UTF-8 (see pystr.h).
 *
 * Runs once per new code object and thread name in the sampling path, so it allocates nothing and
 * writes straight into the caller's buffer. Whatever the input, the output is valid UTF-8: names end
 * up in JSON and pprof, where one bad byte makes the whole file unreadable.
 */
#include "readers/pystr.h"

#include <string.h>

#define PYSTR_REPLACEMENT 0xFFFDu

struct pystr_state pystr_parse_state(uint32_t state, int interned_bits)
{
    struct pystr_state s = { 0 };

    /* The bitfield lives in the low bits of a 32-bit word whose upper bits are padding that CPython
     * never initialises (real objects carry garbage there), so nothing above ascii is looked at. A
     * kind outside 1/2/4 is passed through for the caller to reject; pystr_to_utf8 refuses it. */
    if (interned_bits < 0 || interned_bits > 24)
        return s;
    uint32_t w = state >> interned_bits;
    s.kind = (int)(w & 0x7);
    s.compact = (w >> 3) & 1;
    s.ascii = (w >> 4) & 1;
    return s;
}

/* Encodes cp at dst if its encoding fits in room; returns its length, or 0 when it does not fit. */
static size_t pystr_put(uint32_t cp, char *dst, size_t room)
{
    if (cp >= 0xD800 && (cp <= 0xDFFF || cp > 0x10FFFF))
        cp = PYSTR_REPLACEMENT;
    uint8_t *d = (uint8_t *)dst;
    if (cp < 0x80) {
        if (room < 1)
            return 0;
        d[0] = (uint8_t)cp;
        return 1;
    }
    if (cp < 0x800) {
        if (room < 2)
            return 0;
        d[0] = (uint8_t)(0xC0 | cp >> 6);
        d[1] = (uint8_t)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        if (room < 3)
            return 0;
        d[0] = (uint8_t)(0xE0 | cp >> 12);
        d[1] = (uint8_t)(0x80 | (cp >> 6 & 0x3F));
        d[2] = (uint8_t)(0x80 | (cp & 0x3F));
        return 3;
    }
    if (room < 4)
        return 0;
    d[0] = (uint8_t)(0xF0 | cp >> 18);
    d[1] = (uint8_t)(0x80 | (cp >> 12 & 0x3F));
    d[2] = (uint8_t)(0x80 | (cp >> 6 & 0x3F));
    d[3] = (uint8_t)(0x80 | (cp & 0x3F));
    return 4;
}

/* Code point i of a kind-2/4 array. memcpy because the caller's copy of target memory need not be
 * aligned; the target is the same (little-endian) architecture as us. */
static uint32_t pystr_load(const uint8_t *p, size_t i, int kind)
{
    if (kind == 2) {
        uint16_t v;
        memcpy(&v, p + 2 * i, sizeof v);
        return v;
    }
    uint32_t v;
    memcpy(&v, p + 4 * i, sizeof v);
    return v;
}

size_t pystr_to_utf8(const void *data, size_t n, int kind, char *out, size_t cap)
{
    if (cap == 0)
        return 0;
    const uint8_t *p = data;
    size_t w = 0, room = cap - 1, i = 0;
    if ((kind != 1 && kind != 2 && kind != 4) || (!p && n))
        n = 0;

    if (kind == 1) {
        /* Latin-1: identifiers are nearly always ASCII, copied byte for byte. */
        for (; i < n && w < room && p[i] < 0x80; i++)
            out[w++] = (char)p[i];
    }
    for (; i < n; i++) {
        uint32_t cp = kind == 1 ? p[i] : pystr_load(p, i, kind);
        size_t len = pystr_put(cp, out + w, room - w);
        if (len == 0)
            break;
        w += len;
    }
    out[w] = '\0';
    return w;
}

/*
 * Length of the well-formed UTF-8 sequence at p (Unicode table 3-7: no overlongs, no surrogates,
 * nothing past U+10FFFF), or 0 with *bad set to the length of its maximal ill-formed subpart: the
 * bytes one U+FFFD stands for, as Python's own errors="replace" decoder counts them.
 */
static size_t pystr_utf8_seq(const uint8_t *p, size_t avail, size_t *bad)
{
    uint8_t b0 = p[0], lo = 0x80, hi = 0xBF;
    size_t len;

    if (b0 < 0x80)
        return 1;
    if (b0 >= 0xC2 && b0 <= 0xDF) {
        len = 2;
    } else if (b0 >= 0xE0 && b0 <= 0xEF) {
        len = 3;
        if (b0 == 0xE0)
            lo = 0xA0;          /* below is an overlong 2-byte character */
        else if (b0 == 0xED)
            hi = 0x9F;          /* above are the surrogates */
    } else if (b0 >= 0xF0 && b0 <= 0xF4) {
        len = 4;
        if (b0 == 0xF0)
            lo = 0x90;          /* overlong 3-byte character */
        else if (b0 == 0xF4)
            hi = 0x8F;          /* beyond U+10FFFF */
    } else {
        *bad = 1;               /* continuation byte, C0/C1 (always overlong), F5–FF */
        return 0;
    }
    for (size_t i = 1; i < len; i++) {
        if (i >= avail || p[i] < lo || p[i] > hi) {
            *bad = i;
            return 0;
        }
        lo = 0x80;
        hi = 0xBF;
    }
    return len;
}

size_t pystr_bytes_to_utf8(const uint8_t *data, size_t n, char *out, size_t cap)
{
    if (cap == 0)
        return 0;
    size_t w = 0, room = cap - 1, i = 0;
    if (!data)
        n = 0;

    while (i < n) {
        size_t bad = 0, len = pystr_utf8_seq(data + i, n - i, &bad);
        if (len == 0) {
            size_t put = pystr_put(PYSTR_REPLACEMENT, out + w, room - w);
            if (put == 0)
                break;
            w += put;
            i += bad;
            continue;
        }
        if (len > room - w)
            break;
        memcpy(out + w, data + i, len);
        w += len;
        i += len;
    }
    out[w] = '\0';
    return w;
}
