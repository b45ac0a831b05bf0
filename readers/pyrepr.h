/*
 * pyrepr.h — a bounded, Python-like rendering of one object of a target, for locals and arguments.
 *
 * Rendered: None, bool, int of any size (2.7 int and long too), float (shortest repr, as Python
 * prints it), str (quoted and escaped like repr(), non-ASCII kept), bytes (b'...' with \xNN
 * escapes; a 2.7 str is rendered so, without the b), and for list, tuple, dict, set and frozenset
 * their type, length and first items: `list(7) [1, 2, 3, 4, 5, ...]`. Anything else is
 * `<TYPE at 0xADDR>`. Bounds: containers are opened PYREPR_DEPTH levels deep with at most
 * PYREPR_ITEMS items each; strings and bytes show at most PYREPR_STR characters; ints of more than
 * PYREPR_INT_DIGITS internal digits are shown as an approximation. An object that cannot be read
 * (a wild pointer, a torn or implausible header) renders as `<unreadable>`: never a crash, a
 * huge read or an allocation per value.
 */
#ifndef PT_PYREPR_H
#define PT_PYREPR_H

#include <stddef.h>
#include <stdint.h>

#include "readers/runtime.h"

#define PYREPR_DEPTH 2          /* container levels opened; deeper ones show as [...] */
#define PYREPR_ITEMS 5          /* items shown per container */
#define PYREPR_STR 64           /* characters shown per string or bytes object */
#define PYREPR_INT_DIGITS 40    /* 30-bit digits converted exactly (about 360 decimal digits) */
#define PYREPR_MAX 1024         /* a rendering never exceeds this many bytes (with the NUL) */

/*
 * Renders the object at addr into out (cap bytes, at least 16; NUL-terminated valid UTF-8; cut
 * with "..." when full). Returns the length written, excluding the NUL.
 */
size_t pyrepr(struct py_proc *p, uint64_t addr, char *out, size_t cap);

/* Python's repr() of a double ("0.1", "1e+16", "inf", "-0.0"); out needs 32 bytes. */
void pyrepr_float(double v, char *out, size_t cap);

/* Decimal text of a magnitude held as n little-endian 30-bit digits (n <= PYREPR_INT_DIGITS),
 * with a leading '-' when negative; out needs 12 * n + 2 bytes. */
size_t pyrepr_digits(const uint32_t *digits, size_t n, int negative, char *out, size_t cap);

#endif
