/*
 * native.h — native (C) call stacks of every thread of a target, symbolized, and merged with
 * the Python stacks the readers walk.
 *
 * A native_proc holds what is worth keeping between samples of one process: the libunwind
 * address space (symbols/unwind.h) and the symbol cache (symbols/symcache.h). native_sample()
 * unwinds every thread of a ptrace group the caller has stopped (ptg_stop_all) and
 * native_symbolize() names the frames once they run again; native_dump() does the whole one-shot
 * cycle — seize, stop, walk the Python stacks, unwind, resume and detach, name — and always
 * resumes and detaches, on every error path too.
 */
#ifndef PT_NATIVE_H
#define PT_NATIVE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "attach/ptrace.h"
#include "attach/tidmap.h"
#include "readers/walk.h"
#include "symbols/merge.h"
#include "symbols/symcache.h"
#include "util/err.h"

struct native_frame {
    uint64_t ip;                 /* pc (innermost) or return address */
    struct native_sym sym;       /* strings owned by the native_proc's symbol cache */
    bool eval;                   /* an eval-loop frame (replaced by Python frames when merged) */
};

struct native_stack {
    pid_t tid;                   /* as the target numbers it (its pid namespace), like the
                                  * Python threads' native_id; -1 when it could not be mapped */
    uint32_t first, n;           /* frames[first .. first + n), innermost first */
};

/* Every stopped thread's native stack; buffers owned by the caller, reused across samples. */
struct native_snap {
    struct native_stack *stacks;
    uint32_t nstacks, cap_stacks;
    struct native_frame *frames;
    uint32_t nframes, cap_frames;
    uint64_t unwind_ns;          /* time spent unwinding (for the performance note) */
    uint64_t symbol_ns;          /* time spent naming frames */
};

struct native_proc;

enum pt_status native_open(struct native_proc **out, pid_t pid, struct pt_err *err);
void native_close(struct native_proc *np);

void native_snap_free(struct native_snap *ns);

/* Unwinds every thread of g into ns (addresses only); they must all be stopped (ptg_stop_all).
 * g holds pytrace's thread ids; tids (the target's py_proc's) turns them into the target's. */
enum pt_status native_sample(struct native_proc *np, const struct ptrace_group *g,
                             struct tidmap *tids, struct native_snap *ns, struct pt_err *err);

/* Names every frame of ns (and sets its eval flag); needs no stopped thread, so call it after
 * resuming them: a module's first lookup indexes its symbol tables (milliseconds). */
void native_symbolize(struct native_proc *np, struct native_snap *ns);

/* The native stack of thread tid (the target's id: a py_thread's native_id) in ns, or NULL. */
const struct native_stack *native_find(const struct native_snap *ns, int64_t tid);

/*
 * One-shot: seizes and stops every thread of p's process, walks the Python stacks into s
 * (walk_flags as py_walk; OS states are read before the threads are stopped), unwinds them into
 * ns, then resumes and detaches. PT_EPERM when the process cannot be ptraced.
 */
enum pt_status native_dump(struct native_proc *np, struct py_proc *p, struct py_snapshot *s,
                           unsigned walk_flags, struct native_snap *ns, struct pt_err *err);

/*
 * Merges thread t's Python frames (may be NULL: a thread with no Python state) with its native
 * stack nst (may be NULL: unwinding failed) — see merge.h. Returns the item count.
 */
uint32_t native_merge(const struct native_snap *ns, const struct native_stack *nst,
                      const struct py_snapshot *s, const struct py_thread *t,
                      struct merge_item *out, uint32_t cap, bool *uncertain);

#endif
