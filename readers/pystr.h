/*
 * pystr.h — CPython string payloads to UTF-8, as pure functions over bytes already read.
 *
 * PEP 393 strings (3.3+) store code points as 1 (latin-1/ASCII), 2 (UCS-2) or 4 (UCS-4) bytes each,
 * described by a state bitfield; 2.7 has byte strings (already UTF-8 or ASCII in practice) and
 * Py_UNICODE arrays (UCS-2 or UCS-4 by build). Reading the object from target memory is pyobj.c's
 * job; this file only interprets the bytes, so it can be unit-tested and fuzzed on its own.
 */
#ifndef PT_PYSTR_H
#define PT_PYSTR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The PEP 393 state word, decoded. interned_bits is the width of the leading interned field. */
struct pystr_state {
    int kind;        /* 1, 2 or 4 bytes per code point; 0 for a not-ready legacy string */
    bool compact;
    bool ascii;
};

struct pystr_state pystr_parse_state(uint32_t state, int interned_bits);

/*
 * Converts n code points of width `kind` (1, 2, 4) at data to NUL-terminated UTF-8 in out
 * (cap >= 1 bytes). Truncates at a whole character when out is full. Surrogates and code points
 * above U+10FFFF become U+FFFD. Returns the number of bytes written, excluding the NUL.
 */
size_t pystr_to_utf8(const void *data, size_t n, int kind, char *out, size_t cap);

/*
 * Copies a 2.7 byte string (or any byte payload) to out as valid UTF-8: valid UTF-8 sequences are
 * kept, other bytes become U+FFFD. NUL-terminated, truncated at a whole character. Returns bytes
 * written excluding the NUL.
 */
size_t pystr_bytes_to_utf8(const uint8_t *data, size_t n, char *out, size_t cap);

#endif
