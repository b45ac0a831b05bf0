/*
 * merge.c — splicing Python frames into a native stack in place of the eval-loop frames that run
 * them (see merge.h for the rules and what "uncertain" means).
 */
#include "symbols/merge.h"

#include <string.h>

/* name is base, or base followed by a compiler suffix: GCC moves the eval loop's unlikely paths
 * to "_PyEval_EvalFrameDefault.cold", which is still the same C frame. */
static bool is_or_part_of(const char *name, const char *base)
{
    size_t n = strlen(base);
    return strncmp(name, base, n) == 0 && (name[n] == '\0' || name[n] == '.');
}

bool merge_is_eval_symbol(const char *name)
{
    return name && (is_or_part_of(name, "_PyEval_EvalFrameDefault") ||
                    is_or_part_of(name, "PyEval_EvalFrameEx"));
}

static bool put(struct merge_item *out, uint32_t cap, uint32_t *n, uint8_t kind, uint32_t index)
{
    if (*n >= cap)
        return false;
    out[(*n)++] = (struct merge_item){kind, index};
    return true;
}

/* Appends Python frames from *j through the end of their run (the next entry frame). */
static bool put_run(const bool *py_entry, uint32_t n_py, uint32_t *j, struct merge_item *out,
                    uint32_t cap, uint32_t *n)
{
    while (*j < n_py) {
        uint32_t k = (*j)++;
        if (!put(out, cap, n, MERGE_PYTHON, k))
            return false;
        if (py_entry[k])
            break;
    }
    return true;
}

uint32_t merge_stacks(const bool *native_is_eval, uint32_t n_native, const bool *py_entry,
                      uint32_t n_py, struct merge_item *out, uint32_t cap, bool *uncertain)
{
    uint32_t n = 0, j = 0;
    bool ok = true;
    *uncertain = false;
    for (uint32_t i = 0; i < n_native && ok; i++) {
        if (native_is_eval[i] && j < n_py) {
            ok = put_run(py_entry, n_py, &j, out, cap, &n);
            continue;
        }
        if (native_is_eval[i])
            *uncertain = true;   /* an eval call with no Python run left */
        ok = put(out, cap, &n, MERGE_NATIVE, i);
    }
    if (ok && j < n_py) {
        /* Python runs no eval frame accounted for: keep them, outermost, in order. A thread
         * with no native frames at all (unwinding failed) is just its Python stack. */
        if (n_native > 0)
            *uncertain = true;
        while (ok && j < n_py)
            ok = put(out, cap, &n, MERGE_PYTHON, j++);
    }
    if (!ok)
        *uncertain = true;
    return n;
}
