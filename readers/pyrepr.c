/*
 * pyrepr.c — bounded rendering of target objects (pyrepr.h). The kind of an object is decided by
 * its type's address when the symbol was found, else by the type's tp_name (only for kinds whose
 * type address is unknown, so a user class called "int" is not read as one). Every length read
 * from the target is clamped before it sizes a read; containers already being rendered print as
 * [...] so a cycle cannot recurse.
 */
#include "readers/pyrepr.h"

#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "readers/pydict.h"
#include "readers/pystr.h"

enum repr_kind {
    K_OTHER, K_NONE, K_BOOL, K_INT, K_INT27, K_FLOAT, K_STR, K_UNICODE27, K_BYTES, K_LIST,
    K_TUPLE, K_DICT, K_SET, K_FROZENSET,
};

/* Output with truncation at a whole character; `full` once something did not fit. */
struct out {
    char *buf;
    size_t cap, len;
    bool full;
};

struct repr {
    struct py_proc *p;
    struct out *o;
    uint64_t open[PYREPR_DEPTH + 1];   /* containers being rendered, outermost first */
    int depth;
};

/* The first bytes of the object being rendered, read once: most fields of small objects (sizes,
 * digits, a float, a tuple's first items) are served from it instead of a read each. */
#define HEAD_BYTES 64
struct head {
    uint64_t addr;
    size_t n;
    uint8_t b[HEAD_BYTES];
};

/* Reads [at, at + len) from the head when it holds all of it, else from the target. */
static int hread(struct repr *r, const struct head *h, uint64_t at, void *buf, size_t len)
{
    if (at >= h->addr && at - h->addr <= h->n && len <= h->n - (at - h->addr)) {
        memcpy(buf, h->b + (at - h->addr), len);
        return 0;
    }
    return mem_read(r->p->mem, at, buf, len);
}

static void put(struct out *o, const char *s, size_t n)
{
    if (o->full)
        return;
    if (o->len + n + 4 > o->cap) {   /* room for "..." and the NUL */
        size_t room = o->cap - 4 - o->len;
        while (room > 0 && ((unsigned char)s[room] & 0xC0) == 0x80)
            room--;   /* never cut inside a UTF-8 sequence */
        memcpy(o->buf + o->len, s, room);
        o->len += room;
        o->full = true;
        return;
    }
    memcpy(o->buf + o->len, s, n);
    o->len += n;
}

static void puts_(struct out *o, const char *s) { put(o, s, strlen(s)); }

static void putf(struct out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void putf(struct out *o, const char *fmt, ...)
{
    char tmp[128];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n > 0)
        put(o, tmp, (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1);
}

static uint64_t u64_of(const uint8_t *b, int32_t off) { uint64_t v; memcpy(&v, b + off, 8); return v; }
static int64_t i64_of(const uint8_t *b, int32_t off) { int64_t v; memcpy(&v, b + off, 8); return v; }

/* ---- kinds ---------------------------------------------------------------------------------- */

static const struct { const char *name; enum repr_kind kind; size_t at; } repr_names[] = {
    {"NoneType", K_NONE, offsetof(struct py_types, none)},
    {"bool", K_BOOL, offsetof(struct py_types, bool_)},
    {"float", K_FLOAT, offsetof(struct py_types, float_)},
    {"list", K_LIST, offsetof(struct py_types, list)},
    {"tuple", K_TUPLE, offsetof(struct py_types, tuple)},
    {"dict", K_DICT, offsetof(struct py_types, dict)},
    {"set", K_SET, offsetof(struct py_types, set_)},
    {"frozenset", K_FROZENSET, offsetof(struct py_types, frozenset)},
};

static uint64_t type_at(const struct py_types *t, size_t at)
{
    uint64_t v;
    memcpy(&v, (const char *)t + at, 8);
    return v;
}

/* The kind of type `type`; name gets its tp_name when it had to be read (else ""). */
static enum repr_kind kind_of(struct py_proc *p, uint64_t obj, uint64_t type, char *name,
                              size_t cap)
{
    const struct py_types *t = &p->types;
    bool py2 = p->layout.strings == PY_STR_BYTES27;
    name[0] = '\0';
    if (t->none && obj == t->none)
        return K_NONE;
    if (t->long_ && type == t->long_)
        return K_INT;
    if (t->int27 && type == t->int27)
        return K_INT27;
    if (py2 && t->unicode && type == t->unicode)
        return K_UNICODE27;
    if (t->str && type == t->str)
        return py2 ? K_BYTES : K_STR;
    if (t->bytes && type == t->bytes)
        return K_BYTES;
    for (size_t i = 0; i < sizeof repr_names / sizeof repr_names[0]; i++) {
        uint64_t a = type_at(t, repr_names[i].at);
        if (a && a == type && repr_names[i].kind != K_NONE)
            return repr_names[i].kind;
    }
    if (pyobj_type_name(p->mem, &p->layout, type, name, cap) < 0) {
        snprintf(name, cap, "?");
        return K_OTHER;
    }
    for (size_t i = 0; i < sizeof repr_names / sizeof repr_names[0]; i++)
        if (!type_at(t, repr_names[i].at) && strcmp(name, repr_names[i].name) == 0)
            return repr_names[i].kind;
    if (!t->long_ && strcmp(name, py2 ? "long" : "int") == 0)
        return K_INT;
    if (py2 && !t->int27 && strcmp(name, "int") == 0)
        return K_INT27;
    if (!py2 && !t->str && strcmp(name, "str") == 0)
        return K_STR;
    if (!t->bytes && strcmp(name, py2 ? "str" : "bytes") == 0)
        return K_BYTES;
    return K_OTHER;
}

/* ---- numbers -------------------------------------------------------------------------------- */

static void render_int(struct repr *r, const struct head *h)
{
    const struct py_layout *L = &r->p->layout;
    uint64_t addr = h->addr;
    uint8_t head[64];
    uint32_t digits[PYREPR_INT_DIGITS];
    if ((size_t)L->long_digit > sizeof head - 8 || hread(r, h, addr, head, (size_t)L->long_digit) != 0)
        goto bad;
    int64_t nd;
    int neg;
    if (L->long_tag >= 0) {
        uint64_t tag = u64_of(head, L->long_tag);
        nd = (int64_t)(tag >> 3);
        neg = (tag & 3) == 2;
        if ((tag & 3) == 1)
            nd = 0;   /* zero, whatever its digit count */
    } else {
        int64_t size = i64_of(head, L->ob_size);
        neg = size < 0;
        nd = neg ? -size : size;
    }
    if (nd < 0 || nd > (1 << 26))
        goto bad;
    if (nd > PYREPR_INT_DIGITS) {
        /* Approximate from the top two digits: value ~ top * 2^(30 * (nd - 2)). */
        uint32_t top[2];
        if (hread(r, h, addr + (uint64_t)L->long_digit + (uint64_t)(nd - 2) * 4, top, 8) != 0)
            goto bad;
        double m = (double)(top[1] & 0x3fffffffu) * 1073741824.0 + (double)(top[0] & 0x3fffffffu);
        double lg = log10(m) + (double)(nd - 2) * 30.0 * log10(2.0);
        double ex = floor(lg);
        putf(r->o, "%s~%.6fe+%.0f", neg ? "-" : "", pow(10.0, lg - ex), ex);
        return;
    }
    if (nd && hread(r, h, addr + (uint64_t)L->long_digit, digits, (size_t)nd * 4) != 0)
        goto bad;
    char text[12 * PYREPR_INT_DIGITS + 2];
    size_t n = pyrepr_digits(digits, (size_t)nd, neg, text, sizeof text);
    size_t ndig = n - (neg ? 1 : 0);
    if (ndig > 2 * PYREPR_STR) {
        put(r->o, text, (neg ? 1 : 0) + PYREPR_STR);
        putf(r->o, "...(%zu digits)", ndig);
        return;
    }
    put(r->o, text, n);
    return;
bad:
    puts_(r->o, "<unreadable>");
}

static void render_int27(struct repr *r, const struct head *h, bool as_bool)
{
    int64_t v;
    if (hread(r, h, h->addr + (uint64_t)r->p->layout.int27_ival, &v, 8) != 0) {
        puts_(r->o, "<unreadable>");
        return;
    }
    if (as_bool)
        puts_(r->o, v ? "True" : "False");
    else
        putf(r->o, "%lld", (long long)v);
}

static void render_bool(struct repr *r, const struct head *h)
{
    const struct py_layout *L = &r->p->layout;
    if (L->int27_ival >= 0) {
        render_int27(r, h, true);
        return;
    }
    /* False has no digits (or a zero one), True the digit 1. */
    int64_t size = 0;
    uint32_t digit = 0;
    int32_t size_at = L->long_tag >= 0 ? L->long_tag : L->ob_size;
    if (hread(r, h, h->addr + (uint64_t)size_at, &size, 8) != 0 ||
        hread(r, h, h->addr + (uint64_t)L->long_digit, &digit, 4) != 0) {
        puts_(r->o, "<unreadable>");
        return;
    }
    if (L->long_tag >= 0)
        size = (size & 3) == 1 ? 0 : size >> 3;
    puts_(r->o, size != 0 && digit != 0 ? "True" : "False");
}

static void render_float(struct repr *r, const struct head *h)
{
    double v;
    char buf[48];
    if (hread(r, h, h->addr + (uint64_t)r->p->layout.float_fval, &v, sizeof v) != 0) {
        puts_(r->o, "<unreadable>");
        return;
    }
    pyrepr_float(v, buf, sizeof buf);
    puts_(r->o, buf);
}

/* ---- text ----------------------------------------------------------------------------------- */

/* Appends UTF-8 text s (n bytes) as the body of a quoted literal, at most max characters. */
static size_t put_escaped_text(struct out *o, const char *s, size_t n, char quote, size_t max)
{
    size_t chars = 0;
    for (size_t i = 0; i < n && chars < max; chars++) {
        unsigned char c = (unsigned char)s[i];
        size_t len = c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
        if (i + len > n)
            break;
        if (c == '\\' || c == (unsigned char)quote) {
            char e[2] = {'\\', (char)c};
            put(o, e, 2);
        } else if (c == '\n') {
            put(o, "\\n", 2);
        } else if (c == '\r') {
            put(o, "\\r", 2);
        } else if (c == '\t') {
            put(o, "\\t", 2);
        } else if (c < 0x20 || c == 0x7f) {
            putf(o, "\\x%02x", c);
        } else {
            put(o, s + i, len);
        }
        i += len;
    }
    return chars;
}

/* Python's choice: single quotes unless the text holds ' and no ". */
static char quote_for(const char *s, size_t n)
{
    return memchr(s, '\'', n) && !memchr(s, '"', n) ? '"' : '\'';
}

static int64_t str_length(struct repr *r, const struct head *h, bool py2_bytes)
{
    const struct py_layout *L = &r->p->layout;
    int64_t n;
    int32_t off = py2_bytes ? L->ob_size : L->uni_length;
    if (hread(r, h, h->addr + (uint64_t)off, &n, 8) != 0 || n < 0 || n > ((int64_t)1 << 40))
        return -1;
    return n;
}

static void render_str(struct repr *r, const struct head *h, const char *prefix)
{
    char text[PYREPR_STR * 4 + 8];
    uint64_t addr = h->addr;
    int64_t total = str_length(r, h, false);
    int n = total < 0 ? -1 : pyobj_read_str(r->p->mem, &r->p->layout, &r->p->types, addr, text,
                                            sizeof text);
    if (n < 0) {
        puts_(r->o, "<unreadable>");
        return;
    }
    char q = quote_for(text, (size_t)n);
    puts_(r->o, prefix);
    put(r->o, &q, 1);
    size_t shown = put_escaped_text(r->o, text, (size_t)n, q, PYREPR_STR);
    put(r->o, &q, 1);
    if ((int64_t)shown < total)
        putf(r->o, "...(%lld chars)", (long long)total);
}

static void render_bytes(struct repr *r, const struct head *h, const char *prefix)
{
    const struct py_layout *L = &r->p->layout;
    uint8_t data[PYREPR_STR];
    int64_t total = str_length(r, h, true);
    size_t take = total < 0 ? 0 : (size_t)total < sizeof data ? (size_t)total : sizeof data;
    if (total < 0 || (take && hread(r, h, h->addr + (uint64_t)L->bytes_sval, data, take) != 0)) {
        puts_(r->o, "<unreadable>");
        return;
    }
    char q = quote_for((const char *)data, take);
    puts_(r->o, prefix);
    put(r->o, &q, 1);
    for (size_t i = 0; i < take; i++) {
        uint8_t c = data[i];
        if (c == '\\' || c == (uint8_t)q)
            putf(r->o, "\\%c", c);
        else if (c == '\n')
            puts_(r->o, "\\n");
        else if (c == '\r')
            puts_(r->o, "\\r");
        else if (c == '\t')
            puts_(r->o, "\\t");
        else if (c < 0x20 || c >= 0x7f)
            putf(r->o, "\\x%02x", c);
        else
            put(r->o, (const char *)&c, 1);
    }
    put(r->o, &q, 1);
    if ((int64_t)take < total)
        putf(r->o, "...(%lld bytes)", (long long)total);
}

/* ---- containers ----------------------------------------------------------------------------- */

static void render(struct repr *r, uint64_t addr);

/* Renders items[0..n) separated by ", ", then ", ..." when the container holds more. */
static void render_items(struct repr *r, const uint64_t *items, size_t n, int64_t total)
{
    for (size_t i = 0; i < n; i++) {
        if (i)
            puts_(r->o, ", ");
        render(r, items[i]);
    }
    if ((int64_t)n < total)
        puts_(r->o, n ? ", ..." : "...");
}

static int64_t read_len(struct repr *r, const struct head *h, int32_t off)
{
    int64_t n;
    if (off < 0 || hread(r, h, h->addr + (uint64_t)off, &n, 8) != 0 || n < 0 ||
        n > ((int64_t)1 << 40))
        return -1;
    return n;
}

static void render_seq(struct repr *r, const struct head *h, enum repr_kind k, bool open)
{
    const struct py_layout *L = &r->p->layout;
    uint64_t addr = h->addr;
    uint64_t items[PYREPR_ITEMS];
    const char *name = k == K_LIST ? "list" : "tuple";
    int64_t n = read_len(r, h, L->ob_size);
    if (n < 0) {
        puts_(r->o, "<unreadable>");
        return;
    }
    size_t take = n < PYREPR_ITEMS ? (size_t)n : PYREPR_ITEMS;
    putf(r->o, "%s(%lld) %s", name, (long long)n, k == K_LIST ? "[" : "(");
    if (open && take) {
        int rc;
        if (k == K_LIST) {
            uint64_t arr;
            rc = hread(r, h, addr + (uint64_t)L->list_item, &arr, 8);
            if (rc == 0)
                rc = mem_read(r->p->mem, arr, items, take * 8);
        } else {
            rc = hread(r, h, addr + (uint64_t)L->tuple_item, items, take * 8);
        }
        if (rc != 0)
            puts_(r->o, "<unreadable>");
        else
            render_items(r, items, take, n);
        if (k == K_TUPLE && n == 1 && rc == 0)
            puts_(r->o, ",");
    } else if (n) {
        puts_(r->o, "...");
    }
    puts_(r->o, k == K_LIST ? "]" : ")");
}

struct dict_pick {
    uint64_t keys[PYREPR_ITEMS], values[PYREPR_ITEMS];
    size_t n;
};

static int dict_pick_fn(uint64_t key, uint64_t value, void *ctx)
{
    struct dict_pick *d = ctx;
    d->keys[d->n] = key;
    d->values[d->n] = value;
    return ++d->n == PYREPR_ITEMS;
}

static void render_dict(struct repr *r, const struct head *h, bool open)
{
    uint64_t addr = h->addr;
    int64_t n = read_len(r, h, r->p->layout.dict_ma_used);
    if (n < 0) {
        puts_(r->o, "<unreadable>");
        return;
    }
    putf(r->o, "dict(%lld) {", (long long)n);
    if (open && n) {
        struct dict_pick d = {.n = 0};
        if (pydict_each(r->p, addr, dict_pick_fn, &d) < 0) {
            puts_(r->o, "<unreadable>");
        } else {
            for (size_t i = 0; i < d.n; i++) {
                if (i)
                    puts_(r->o, ", ");
                render(r, d.keys[i]);
                puts_(r->o, ": ");
                render(r, d.values[i]);
            }
            if ((int64_t)d.n < n)
                puts_(r->o, d.n ? ", ..." : "...");
        }
    } else if (n) {
        puts_(r->o, "...");
    }
    puts_(r->o, "}");
}

#define SET_SCAN_MAX 4096   /* table slots looked at per set, at most */

/* Up to PYREPR_ITEMS keys of the set at addr (table of mask + 1 entries); -1 when unreadable. */
static int set_pick(struct repr *r, const struct head *h, uint64_t *keys)
{
    uint64_t addr = h->addr;
    const struct py_layout *L = &r->p->layout;
    uint8_t head[64], ents[64 * 32];
    size_t esz = (size_t)L->set_entry_size;
    if (L->set_table < 0 || esz < 16 || esz > 32 || (size_t)L->set_table + 8 > sizeof head ||
        hread(r, h, addr, head, (size_t)L->set_table + 8) != 0)
        return -1;
    int64_t mask = i64_of(head, L->set_mask);
    uint64_t table = u64_of(head, L->set_table);
    if (mask < 0 || mask > (1 << 30) || !table)
        return -1;
    uint64_t slots = (uint64_t)mask + 1 < SET_SCAN_MAX ? (uint64_t)mask + 1 : SET_SCAN_MAX;
    int got = 0;
    for (uint64_t at = 0; at < slots && got < PYREPR_ITEMS;) {
        size_t batch = sizeof ents / esz;
        if (batch > slots - at)
            batch = (size_t)(slots - at);
        if (mem_read(r->p->mem, table + at * esz, ents, batch * esz) != 0)
            return -1;
        for (size_t i = 0; i < batch && got < PYREPR_ITEMS; i++) {
            uint64_t key = u64_of(ents + i * esz, L->set_entry_key);
            int64_t hash = i64_of(ents + i * esz, L->set_entry_hash);
            if (key && !(hash == -1 && L->strings != PY_STR_BYTES27))   /* -1: a deleted slot */
                keys[got++] = key;
        }
        at += batch;
    }
    return got;
}

static void render_set(struct repr *r, const struct head *h, enum repr_kind k, bool open)
{
    uint64_t keys[PYREPR_ITEMS];
    int64_t n = read_len(r, h, r->p->layout.set_used);
    if (n < 0) {
        puts_(r->o, "<unreadable>");
        return;
    }
    putf(r->o, "%s(%lld) {", k == K_SET ? "set" : "frozenset", (long long)n);
    if (open && n) {
        int got = set_pick(r, h, keys);
        if (got < 0)
            puts_(r->o, "<unreadable>");
        else
            render_items(r, keys, (size_t)got, n);
    } else if (n) {
        puts_(r->o, "...");
    }
    puts_(r->o, "}");
}

/* ---- dispatch ------------------------------------------------------------------------------- */

static void render_container(struct repr *r, const struct head *h, enum repr_kind k)
{
    uint64_t addr = h->addr;
    bool open = r->depth < PYREPR_DEPTH;
    for (int i = 0; i < r->depth; i++)
        if (r->open[i] == addr)
            open = false;   /* a cycle: it is being rendered further out */
    r->open[r->depth++] = addr;
    if (k == K_LIST || k == K_TUPLE)
        render_seq(r, h, k, open);
    else if (k == K_DICT)
        render_dict(r, h, open);
    else
        render_set(r, h, k, open);
    r->depth--;
}

static void render(struct repr *r, uint64_t addr)
{
    uint64_t type = 0;
    char name[96];
    struct head h = {.addr = addr, .n = HEAD_BYTES};
    if (r->o->full)
        return;
    /* An object near the end of a mapping: fall back to its PyObject header. */
    if (addr && !(addr & 7) && mem_read(r->p->mem, addr, h.b, HEAD_BYTES) != 0) {
        h.n = 16;
        if (mem_read(r->p->mem, addr, h.b, h.n) != 0)
            h.n = 0;
    }
    if (!addr || (addr & 7) || h.n == 0 || (size_t)r->p->layout.ob_type + 8 > h.n ||
        (memcpy(&type, h.b + r->p->layout.ob_type, 8), !type)) {
        puts_(r->o, "<unreadable>");
        return;
    }
    enum repr_kind k = kind_of(r->p, addr, type, name, sizeof name);
    switch (k) {
    case K_NONE: puts_(r->o, "None"); break;
    case K_BOOL: render_bool(r, &h); break;
    case K_INT: render_int(r, &h); break;
    case K_INT27: render_int27(r, &h, false); break;
    case K_FLOAT: render_float(r, &h); break;
    case K_STR: render_str(r, &h, ""); break;
    case K_UNICODE27: render_str(r, &h, "u"); break;
    case K_BYTES: render_bytes(r, &h, r->p->layout.strings == PY_STR_BYTES27 ? "" : "b"); break;
    case K_LIST: case K_TUPLE: case K_DICT: case K_SET: case K_FROZENSET:
        render_container(r, &h, k);
        break;
    case K_OTHER:
        if (!name[0] && pyobj_type_name(r->p->mem, &r->p->layout, type, name, sizeof name) < 0)
            snprintf(name, sizeof name, "?");
        /* A class (a classmethod's cls, a type passed around): its own name, as repr() has it. */
        char cls[96];
        if (!strcmp(name, "type") &&
            pyobj_type_name(r->p->mem, &r->p->layout, addr, cls, sizeof cls) >= 0 && cls[0])
            putf(r->o, "<class '%s'>", cls);
        else
            putf(r->o, "<%s at 0x%llx>", name, (unsigned long long)addr);
        break;
    }
}

size_t pyrepr(struct py_proc *p, uint64_t addr, char *out, size_t cap)
{
    if (cap < 16) {
        if (cap)
            out[0] = '\0';
        return 0;
    }
    struct out o = {out, cap, 0, false};
    struct repr r = {.p = p, .o = &o, .depth = 0};
    render(&r, addr);
    if (o.full) {
        memcpy(out + o.len, "...", 3);
        o.len += 3;
    }
    out[o.len] = '\0';
    return o.len;
}
