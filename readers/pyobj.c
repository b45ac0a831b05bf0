/*
 * pyobj.c — str/bytes/tuple/int readers over a memory source. Strings are read with one bounded
 * read of header + payload where the payload is short (the common case for names), so decoding a
 * code object's name costs one syscall, not two.
 */
#include "readers/pyobj.h"

#include <string.h>

#include "readers/pystr.h"

/* Header plus this many payload bytes are fetched in the first read of a string. */
#define PYOBJ_FIRST_READ 256

static int64_t rd_i64(const uint8_t *p) { int64_t v; memcpy(&v, p, 8); return v; }
static uint64_t rd_u64(const uint8_t *p) { uint64_t v; memcpy(&v, p, 8); return v; }
static uint32_t rd_u32(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return v; }

int pyobj_type(struct mem_src *mem, const struct py_layout *L, uint64_t addr, uint64_t *type)
{
    if (!addr)
        return -1;
    return mem_read_ptr(mem, addr + (uint64_t)L->ob_type, type);
}

/* Reads the object at addr into buf: first up to want bytes; falls back to min bytes when the
 * longer read crosses into an unmapped page. Returns how many bytes are valid, or -1. */
static int read_head(struct mem_src *mem, uint64_t addr, uint8_t *buf, size_t want, size_t min)
{
    if (mem_read(mem, addr, buf, want) == 0)
        return (int)want;
    if (min < want && mem_read(mem, addr, buf, min) == 0)
        return (int)min;
    return -1;
}

static int read_payload(struct mem_src *mem, const uint8_t *head, int have, uint64_t addr,
                        size_t off, size_t nbytes, uint8_t *dst)
{
    if (off + nbytes <= (size_t)have) {
        memcpy(dst, head + off, nbytes);
        return 0;
    }
    return mem_read(mem, addr + off, dst, nbytes);
}

static int str27_bytes(struct mem_src *mem, const struct py_layout *L, uint64_t addr, char *out,
                       size_t cap)
{
    uint8_t head[PYOBJ_FIRST_READ], raw[PYOBJ_STR_MAX];
    size_t hdr = (size_t)L->bytes_sval;
    int have = read_head(mem, addr, head, sizeof head, hdr);
    if (have < 0)
        return -1;
    int64_t n = rd_i64(head + L->ob_size);
    if (n < 0 || n > 64 * 1024 * 1024)
        return -1;
    size_t take = (size_t)n < sizeof raw ? (size_t)n : sizeof raw;
    if (read_payload(mem, head, have, addr, hdr, take, raw) != 0)
        return -1;
    return (int)pystr_bytes_to_utf8(raw, take, out, cap);
}

static int str27_unicode(struct mem_src *mem, const struct py_layout *L, uint64_t addr, char *out,
                         size_t cap)
{
    uint8_t head[64], raw[PYOBJ_STR_MAX];
    if (mem_read(mem, addr, head, (size_t)L->uni_legacy_data + 8) != 0)
        return -1;
    int64_t n = rd_i64(head + L->uni_length);
    uint64_t data = rd_u64(head + L->uni_legacy_data);
    int width = L->uni27_wide ? 4 : 2;
    if (n < 0 || n > 64 * 1024 * 1024 || !data)
        return -1;
    size_t count = (size_t)n;
    if (count * (size_t)width > sizeof raw)
        count = sizeof raw / (size_t)width;
    if (mem_read(mem, data, raw, count * (size_t)width) != 0)
        return -1;
    return (int)pystr_to_utf8(raw, count, width, out, cap);
}

static int str3(struct mem_src *mem, const struct py_layout *L, uint64_t addr, char *out, size_t cap)
{
    uint8_t head[PYOBJ_FIRST_READ], raw[PYOBJ_STR_MAX];
    /* A compact ASCII string (most names) has only the short header before its data, and may
     * end right at the end of a mapping: fall back to that header, then widen if needed. */
    int have = read_head(mem, addr, head, sizeof head, (size_t)L->uni_ascii_size);
    if (have < 0)
        return -1;
    int64_t n = rd_i64(head + L->uni_length);
    struct pystr_state st = pystr_parse_state(rd_u32(head + L->uni_state), L->uni_state_interned_bits);
    size_t hdr = st.compact && st.ascii ? (size_t)L->uni_ascii_size : (size_t)L->uni_compact_size;
    if ((size_t)have < hdr) {
        if (mem_read(mem, addr, head, hdr) != 0)
            return -1;
        have = (int)hdr;
    }
    if (n < 0 || n > 256 * 1024 * 1024 || (st.kind != 1 && st.kind != 2 && st.kind != 4))
        return -1;
    size_t count = (size_t)n;
    if (count * (size_t)st.kind > sizeof raw)
        count = sizeof raw / (size_t)st.kind;
    size_t nbytes = count * (size_t)st.kind;
    if (st.compact) {
        size_t off = st.ascii ? (size_t)L->uni_ascii_size : (size_t)L->uni_compact_size;
        if (read_payload(mem, head, have, addr, off, nbytes, raw) != 0)
            return -1;
    } else {
        /* A legacy (non-compact) string keeps its payload behind a pointer. */
        if (L->uni_legacy_data < 0 || (size_t)L->uni_legacy_data + 8 > (size_t)have)
            return -1;
        uint64_t data = rd_u64(head + L->uni_legacy_data);
        if (!data || mem_read(mem, data, raw, nbytes) != 0)
            return -1;
    }
    return (int)pystr_to_utf8(raw, count, st.kind, out, cap);
}

int pyobj_read_str(struct mem_src *mem, const struct py_layout *L, const struct py_types *types,
                   uint64_t addr, char *out, size_t cap)
{
    if (cap == 0)
        return -1;
    out[0] = '\0';
    if (!addr)
        return -1;
    if (L->strings == PY_STR_BYTES27) {
        uint64_t type = 0;
        if (types && types->unicode && pyobj_type(mem, L, addr, &type) == 0 && type == types->unicode)
            return str27_unicode(mem, L, addr, out, cap);
        return str27_bytes(mem, L, addr, out, cap);
    }
    return str3(mem, L, addr, out, cap);
}

int pyobj_read_bytes(struct mem_src *mem, const struct py_layout *L, uint64_t addr, uint8_t *out,
                     size_t cap, size_t *len)
{
    uint8_t head[PYOBJ_FIRST_READ];
    size_t hdr = (size_t)L->bytes_sval;
    if (!addr)
        return -1;
    int have = read_head(mem, addr, head, sizeof head, hdr);
    if (have < 0)
        return -1;
    int64_t n = rd_i64(head + L->ob_size);
    if (n < 0 || (uint64_t)n > cap)
        return -1;
    *len = (size_t)n;
    return read_payload(mem, head, have, addr, hdr, (size_t)n, out);
}

int pyobj_read_tuple(struct mem_src *mem, const struct py_layout *L, uint64_t addr, uint64_t *items,
                     size_t cap)
{
    int64_t n;
    if (!addr || mem_read(mem, addr + (uint64_t)L->ob_size, &n, sizeof n) != 0)
        return -1;
    if (n < 0 || n > 1 << 20)
        return -1;
    size_t take = (size_t)n < cap ? (size_t)n : cap;
    if (take && mem_read(mem, addr + (uint64_t)L->tuple_item, items, take * 8) != 0)
        return -1;
    return (int)n;
}

int pyobj_type_name(struct mem_src *mem, const struct py_layout *L, uint64_t type, char *out,
                    size_t cap)
{
    uint64_t name;
    if (cap == 0 || !type || mem_read_ptr(mem, type + (uint64_t)L->tp_name, &name) != 0 || !name)
        return -1;
    char buf[128];
    if (mem_read(mem, name, buf, sizeof buf) != 0 && mem_read(mem, name, buf, 32) != 0)
        return -1;
    buf[sizeof buf - 1] = '\0';
    size_t n = strnlen(buf, sizeof buf);
    return (int)pystr_bytes_to_utf8((const uint8_t *)buf, n, out, cap);
}

int pyobj_read_long(struct mem_src *mem, const struct py_layout *L, uint64_t addr, int64_t *out)
{
    uint8_t head[64];
    size_t need = (size_t)L->long_digit + 12;
    if (!addr || need > sizeof head || mem_read(mem, addr, head, need) != 0)
        return -1;
    int64_t ndigits;
    int negative;
    if (L->long_tag >= 0) {
        /* 3.12+: lv_tag = ndigits << 3 | sign bits (0 positive, 1 zero, 2 negative). */
        uint64_t tag = rd_u64(head + L->long_tag);
        ndigits = (int64_t)(tag >> 3);
        negative = (tag & 3) == 2;
    } else {
        int64_t size = rd_i64(head + L->ob_size);
        negative = size < 0;
        ndigits = negative ? -size : size;
    }
    if (ndigits > 2)
        return -1;
    /* 30-bit digits in uint32 on every 64-bit build. */
    uint32_t d0 = ndigits > 0 ? rd_u32(head + L->long_digit) : 0;
    uint32_t d1 = ndigits > 1 ? rd_u32(head + L->long_digit + 4) : 0;
    uint64_t mag = (uint64_t)d0 | ((uint64_t)d1 << 30);
    *out = negative ? -(int64_t)mag : (int64_t)mag;
    return 0;
}
