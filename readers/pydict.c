/*
 * pydict.c — dict iteration over target memory. One function per dict generation; which one
 * applies, and every offset, comes from struct py_layout. Split (shared-key) dicts take keys from
 * one table and values from another: both are read whole, once, in bounded buffers.
 */
#include "readers/pydict.h"

#include <stdlib.h>
#include <string.h>

#define TPFLAGS_INLINE_VALUES (1UL << 2)   /* 3.13+ */
#define TPFLAGS_MANAGED_DICT (1UL << 4)    /* 3.11+ */

static uint64_t u64_at(const uint8_t *b, size_t off)
{
    uint64_t v;
    memcpy(&v, b + off, 8);
    return v;
}

/* Width in bytes of one slot of a compact dict's index table of `size` slots. */
static size_t index_width(uint64_t size)
{
    return size <= 0xff ? 1 : size <= 0xffff ? 2 : size <= 0xffffffffULL ? 4 : 8;
}

/* Visits the entries of a keys table; `values` (nonzero) is the split dict's values array. */
static int each_keys(struct py_proc *p, uint64_t keys, uint64_t values, pydict_fn fn, void *ctx)
{
    const struct py_layout *L = &p->layout;
    uint8_t head[64];
    if (!keys || L->dk_indices < 0 || (size_t)L->dk_indices > sizeof head ||
        mem_read(p->mem, keys, head, (size_t)L->dk_indices) != 0)
        return -1;
    uint64_t size, nentries = u64_at(head, (size_t)L->dk_nentries);
    size_t esize = (size_t)L->dk_entry_size;
    int has_hash = 1;
    if (L->dk_kind >= 0) {
        uint8_t log2 = head[L->dk_size];
        if (log2 > 30)
            return -1;
        size = 1ULL << log2;
        if (head[L->dk_kind] != 0) {   /* DICT_KEYS_UNICODE / SPLIT: (key, value) entries */
            esize = (size_t)L->dk_unicode_entry_size;
            has_hash = 0;
        }
    } else {
        size = u64_at(head, (size_t)L->dk_size);
    }
    if (size == 0 || size > (1u << 30) || nentries > size)
        return -1;
    if (nentries > PYDICT_MAX_ENTRIES)
        nentries = PYDICT_MAX_ENTRIES;
    uint64_t entries = keys + (uint64_t)L->dk_indices + size * index_width(size);
    size_t nbytes = (size_t)nentries * esize;
    uint8_t *buf = malloc(nbytes ? nbytes : 1);
    uint64_t *vals = values ? malloc((size_t)nentries * 8 + 8) : NULL;
    int visited = -1;
    if (!buf || (values && !vals))
        goto out;
    if (nbytes && mem_read(p->mem, entries, buf, nbytes) != 0)
        goto out;
    if (values && nentries &&
        mem_read(p->mem, values + (uint64_t)L->dict_values_items, vals, (size_t)nentries * 8) != 0)
        goto out;
    visited = 0;
    for (uint64_t i = 0; i < nentries; i++) {
        const uint8_t *e = buf + i * esize;
        uint64_t key = u64_at(e, has_hash ? 8 : 0);
        uint64_t value = values ? vals[i] : u64_at(e, has_hash ? 16 : 8);
        if (!key || !value)
            continue;   /* deleted entry, or a split slot this instance has not set */
        visited++;
        if (fn(key, value, ctx))
            break;
    }
out:
    free(buf);
    free(vals);
    return visited;
}

/* 2.7: an open-addressed table of (hash, key, value), mask + 1 slots. */
static int each_dict27(struct py_proc *p, uint64_t dict, pydict_fn fn, void *ctx)
{
    const struct py_layout *L = &p->layout;
    int64_t mask;
    uint64_t table;
    if (mem_read(p->mem, dict + (uint64_t)L->dict27_mask, &mask, 8) != 0 ||
        mem_read_ptr(p->mem, dict + (uint64_t)L->dict27_table, &table) != 0)
        return -1;
    if (mask < 0 || mask >= PYDICT_MAX_ENTRIES * 4 || !table)
        return -1;
    size_t esize = (size_t)L->dk_entry_size, nbytes = (size_t)(mask + 1) * esize;
    uint8_t *buf = malloc(nbytes);
    int visited = -1;
    if (buf && mem_read(p->mem, table, buf, nbytes) == 0) {
        visited = 0;
        for (int64_t i = 0; i <= mask; i++) {
            uint64_t key = u64_at(buf, (size_t)i * esize + 8);
            uint64_t value = u64_at(buf, (size_t)i * esize + 16);
            if (!key || !value)
                continue;
            visited++;
            if (fn(key, value, ctx))
                break;
        }
    }
    free(buf);
    return visited;
}

int pydict_each(struct py_proc *p, uint64_t dict, pydict_fn fn, void *ctx)
{
    const struct py_layout *L = &p->layout;
    if (!dict)
        return -1;
    if (L->dict27_table >= 0)
        return each_dict27(p, dict, fn, ctx);
    uint64_t keys = 0, values = 0;
    if (mem_read_ptr(p->mem, dict + (uint64_t)L->dict_ma_keys, &keys) != 0 ||
        mem_read_ptr(p->mem, dict + (uint64_t)L->dict_ma_values, &values) != 0)
        return -1;
    return each_keys(p, keys, values, fn, ctx);
}

struct find_str {
    struct py_proc *p;
    const char *name;
    uint64_t found;
};

static int match_key(uint64_t key, uint64_t value, void *ctx)
{
    struct find_str *f = ctx;
    char buf[256];
    if (pyobj_read_str(f->p->mem, &f->p->layout, &f->p->types, key, buf, sizeof buf) < 0)
        return 0;
    if (strcmp(buf, f->name) != 0)
        return 0;
    f->found = value;
    return 1;
}

uint64_t pydict_get_str(struct py_proc *p, uint64_t dict, const char *name)
{
    struct find_str f = {p, name, 0};
    pydict_each(p, dict, match_key, &f);
    return f.found;
}

/* Attribute lookup in the type's shared keys with a values array (managed / inline dicts). */
static uint64_t get_from_values(struct py_proc *p, uint64_t type, uint64_t values, const char *name)
{
    uint64_t keys = 0;
    struct find_str f = {p, name, 0};
    if (p->layout.ht_cached_keys < 0 ||
        mem_read_ptr(p->mem, type + (uint64_t)p->layout.ht_cached_keys, &keys) != 0 || !keys)
        return 0;
    each_keys(p, keys, values, match_key, &f);
    return f.found;
}

uint64_t pydict_get_attr(struct py_proc *p, uint64_t obj, const char *name)
{
    const struct py_layout *L = &p->layout;
    uint64_t type = 0, flags = 0, word = 0;
    if (pyobj_type(p->mem, L, obj, &type) != 0 || !type ||
        mem_read(p->mem, type + (uint64_t)L->tp_flags, &flags, 8) != 0)
        return 0;
    if (L->idict_model == PY_IDICT_OFFSET || !(flags & TPFLAGS_MANAGED_DICT)) {
        int64_t off = 0;
        if (mem_read(p->mem, type + (uint64_t)L->tp_dictoffset, &off, 8) != 0 || off <= 0 ||
            off > 1 << 20 || mem_read_ptr(p->mem, obj + (uint64_t)off, &word) != 0)
            return 0;
        return pydict_get_str(p, word, name);
    }
    if (mem_read_ptr(p->mem, obj + (uint64_t)(int64_t)L->managed_dict, &word) != 0)
        return 0;
    switch (L->idict_model) {
    case PY_IDICT_MANAGED311: {
        if (word)
            return pydict_get_str(p, word, name);
        uint64_t values = 0;   /* the values pointer sits one word below the dict pointer */
        if (mem_read_ptr(p->mem, obj + (uint64_t)(int64_t)(L->managed_dict - 8), &values) != 0)
            return 0;
        return values ? get_from_values(p, type, values, name) : 0;
    }
    case PY_IDICT_MANAGED312:
        /* One word: a dict pointer, or a values pointer stored minus one (so it is odd). */
        if (word & 1)
            return get_from_values(p, type, word + 1, name);
        return pydict_get_str(p, word, name);
    case PY_IDICT_INLINE313: {
        if (word)
            return pydict_get_str(p, word, name);
        int64_t basic = 0;
        uint8_t valid = 0;
        if (!(flags & TPFLAGS_INLINE_VALUES) ||
            mem_read(p->mem, type + (uint64_t)L->tp_basicsize, &basic, 8) != 0 || basic <= 0 ||
            basic > 1 << 20)
            return 0;
        /* PyDictValues starts with capacity, size, embedded, valid bytes. */
        if (mem_read(p->mem, obj + (uint64_t)basic + 3, &valid, 1) != 0 || !valid)
            return 0;
        return get_from_values(p, type, obj + (uint64_t)basic, name);
    }
    default:
        return 0;
    }
}
