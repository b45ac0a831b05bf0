/*
 * merge.h — one mixed stack from a thread's native frames and its Python frames.
 *
 * Each native frame of the interpreter's eval function (_PyEval_EvalFrameDefault, 2.7's
 * PyEval_EvalFrameEx) is replaced by the run of Python frames that C call is executing, so the
 * stack reads (outermost first) main → Python … → C extension → libc, as py-spy --native does.
 * A run is the Python frames from the innermost one down to the next frame marked `entry` (the
 * outermost frame of one C-level eval call: every frame up to 3.10, is_entry in 3.11, the frame
 * above a C-stack shim from 3.12).
 *
 * Pure logic, no I/O. When the two stacks disagree — more eval frames than Python runs (a frame
 * being set up or torn down), or fewer (a native unwind cut short) — the result is still a
 * complete stack, marked uncertain: eval frames without a run stay as native frames, runs
 * without an eval frame are appended outermost, in order.
 */
#ifndef PT_MERGE_H
#define PT_MERGE_H

#include <stdbool.h>
#include <stdint.h>

enum merge_kind {
    MERGE_PYTHON = 0,
    MERGE_NATIVE = 1,
};

/* One frame of the merged stack: index into the Python or the native input array. */
struct merge_item {
    uint8_t kind;      /* enum merge_kind */
    uint32_t index;
};

/*
 * native_is_eval[i]: native frame i (innermost first) is an eval-function frame.
 * py_entry[j]: Python frame j (innermost first) is the outermost frame of its eval call.
 * Writes at most cap items, innermost first, to out; returns how many (n_native + n_py minus one
 * per merged eval frame; cut at cap, which also sets *uncertain).
 */
uint32_t merge_stacks(const bool *native_is_eval, uint32_t n_native, const bool *py_entry,
                      uint32_t n_py, struct merge_item *out, uint32_t cap, bool *uncertain);

/* True for the names of the interpreter's eval-loop function across CPython versions (and its
 * compiler-split parts such as "_PyEval_EvalFrameDefault.cold"). */
bool merge_is_eval_symbol(const char *name);

#endif
