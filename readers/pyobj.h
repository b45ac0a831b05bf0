/*
 * pyobj.h — reading a few kinds of CPython objects out of target memory: str, bytes, tuple,
 * int, and an object's type name. Every function bounds what it reads (cap) and fails with -1 on
 * a failed or implausible read; nothing here trusts a length read from the target.
 */
#ifndef PT_PYOBJ_H
#define PT_PYOBJ_H

#include <stddef.h>
#include <stdint.h>

#include "attach/mem.h"
#include "readers/layout.h"

/* Longest string pytrace decodes from a target (names, file paths); longer ones are cut. */
#define PYOBJ_STR_MAX 4096

/* Addresses of a few type objects in the target (0 when unknown), to tell objects apart. */
struct py_types {
    uint64_t code, str, unicode, bytes, tuple, dict, list, long_, int27, float_, bool_, none;
    uint64_t set_, frozenset, cell;   /* for locals (readers/pyrepr.c) */
};

/*
 * Reads the str object at addr as UTF-8 into out (cap bytes, NUL-terminated). On 2.7 both
 * PyStringObject and PyUnicodeObject are accepted (types tells them apart; when types->unicode is
 * 0 a 2.7 object is taken to be a byte string). Returns the length in bytes, or -1.
 */
int pyobj_read_str(struct mem_src *mem, const struct py_layout *L, const struct py_types *types,
                   uint64_t addr, char *out, size_t cap);

/* Reads a bytes object's payload (at most cap bytes) into out; *len is its full length.
 * Returns 0, or -1 when unreadable or longer than max_len. */
int pyobj_read_bytes(struct mem_src *mem, const struct py_layout *L, uint64_t addr, uint8_t *out,
                     size_t cap, size_t *len);

/* Reads up to cap item pointers of the tuple at addr; returns the tuple's length (which may exceed
 * cap; items beyond cap are not read) or -1. */
int pyobj_read_tuple(struct mem_src *mem, const struct py_layout *L, uint64_t addr, uint64_t *items,
                     size_t cap);

/* Reads ob_type of the object at addr; 0 or -1. */
int pyobj_type(struct mem_src *mem, const struct py_layout *L, uint64_t addr, uint64_t *type);

/* Reads the tp_name of a type object into out; returns length or -1. */
int pyobj_type_name(struct mem_src *mem, const struct py_layout *L, uint64_t type, char *out,
                    size_t cap);

/* Reads a small int object (fits in int64) at addr; 0 or -1 (too big, or not readable). */
int pyobj_read_long(struct mem_src *mem, const struct py_layout *L, uint64_t addr, int64_t *out);

#endif
