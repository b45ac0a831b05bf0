/*
 * pydict.h — reading dicts and instance attributes out of a target, for every dict layout
 * (2.7's open table, 3.6–3.10 compact dicts, 3.11+ keys kinds, split/shared-key instance dicts,
 * 3.11–3.12 managed dicts and 3.13+ inline values). Used for thread names (threading._active)
 * and for locals rendering. Bounded: at most PYDICT_MAX_ENTRIES entries are visited.
 */
#ifndef PT_PYDICT_H
#define PT_PYDICT_H

#include <stdint.h>

#include "readers/runtime.h"

#define PYDICT_MAX_ENTRIES 4096

/* Called for each live entry; return nonzero to stop the walk. */
typedef int (*pydict_fn)(uint64_t key, uint64_t value, void *ctx);

/* Visits the entries of the dict object at addr. Returns the number visited, or -1 when the dict
 * cannot be read. */
int pydict_each(struct py_proc *p, uint64_t dict, pydict_fn fn, void *ctx);

/* The value stored under the str key `name` in the dict at addr; 0 when absent or unreadable. */
uint64_t pydict_get_str(struct py_proc *p, uint64_t dict, const char *name);

/* The instance attribute `name` of obj (its __dict__, managed dict or inline values); 0 when
 * absent or unreadable. */
uint64_t pydict_get_attr(struct py_proc *p, uint64_t obj, const char *name);

#endif
