/*
 * runtime.h — one traced CPython process: how to find its interpreter state and which layout
 * describes it.
 *
 * py_proc_open() does the one-time work: maps, the binary that holds the interpreter (libpython
 * when the executable links it, else the executable), symbols, version, layout, and the address of
 * the runtime (or, for 2.7/3.6, of interp_head). All state about one target hangs off struct
 * py_proc — never globals — so one pytrace process can trace many targets of different versions.
 */
#ifndef PT_RUNTIME_H
#define PT_RUNTIME_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "attach/mem.h"
#include "attach/proc.h"
#include "attach/tidmap.h"
#include "readers/code.h"
#include "readers/layout.h"
#include "readers/pyobj.h"
#include "util/err.h"

/* 3.11–3.12: cframes besides the last one a thread's top frame is read through (readers/stack.h). */
#define PY_CFRAME_ALTS 3

struct py_version {
    int major, minor, micro;
    uint32_t hex;              /* PY_VERSION_HEX when known, else 0 */
};

/* How the runtime was found, for `info`/diagnostics. */
enum py_anchor {
    PY_ANCHOR_SYMBOL = 1,      /* _PyRuntime / interp_head from the symbol tables */
    PY_ANCHOR_SECTION = 2,     /* the .PyRuntime section (3.10+, survives strip) */
    PY_ANCHOR_SCAN = 3,        /* scan of writable memory for a structure that validates */
};

struct py_proc {
    pid_t pid;
    struct mem_src *mem;
    struct py_version version;
    struct py_layout layout;           /* a copy: from a table or from _Py_DebugOffsets */
    bool layout_from_debug_offsets;
    struct py_types types;
    enum py_anchor anchor;

    char binary[4096];                 /* path (as the target sees it) of the interpreter binary */
    uint64_t bias;                     /* load bias of that binary */

    uint64_t runtime;                  /* &_PyRuntime (3.7+), else 0 */
    uint64_t interp_head_addr;         /* &interp_head (2.7/3.6), else 0 */
    uint64_t tstate_current_addr;      /* &_PyThreadState_Current (2.7/3.6), else 0 */

    /* glibc/musl struct pthread: offset of the kernel tid, found on first need (<3.11 only). */
    int32_t pthread_tid_offset;        /* -1 unknown, -2 could not be found */

    struct code_cache *codes;
    uint8_t *stackbuf;                 /* copy of a thread's data stack (3.11+), reused */
    size_t stackbuf_cap;
    bool stackbuf_used;                /* written since the round began (stack.c) */

    /* 3.11+: the guarded read of the thread walked first last time, staged into the round's
     * prefetch syscall (stack_stage()); what it was staged with, to check before using it. */
    struct py_stage {
        uint64_t tstate, chunk, old_chunk, cf, guard;
        /* through the other cframes (0: not read) */
        uint64_t cframe_alt[PY_CFRAME_ALTS], cf_alt[PY_CFRAME_ALTS], guard_alt[PY_CFRAME_ALTS];
        uint64_t cf_planned;   /* 3.12: the frame pointer's address, when the prefetch's plan
                                * reads it (with the entry frame beside it), else 0 */
        uint32_t copylen, old_len;
        size_t need;
        int n;
        uint8_t ts[4096];
    } stage;
    uint64_t first_tstate;             /* the thread the last walk read first */
    /* Thread names (threadname.c): threading._active of the first interpreter, found through
     * sys.modules, which is searched again only when its entry count changes (a search reads
     * every key's string: one syscall a module, each time a thread is named). */
    struct py_names_cache {
        uint64_t interp, modules, used, active;
    } names;
    /* One interpreter (the usual case): its address, its fields the walk uses (next, first
     * thread state, id, GIL pointer) and when they were read. Kept for PY_INTERP_LIST_NS while
     * the first thread state still says it is first (walk.c). */
    struct py_interp_cache {
        uint64_t interp, ns;
        uint64_t v[4];
    } icache;
    uint64_t walk_ns;                  /* when the last walk began */

    /* The previous walk's stack of each thread, for frame objects (2.7, 3.6-3.10): the walk
     * stops reading at the first frame that is unchanged since then (walk.c). */
    struct py_prev_stack *prev;
    uint32_t n_prev, cap_prev;

    /* Thread ids: the target's own (native_id, what pytrace shows) to the ones /proc, ptrace
     * and libunwind take, when the target lives in a pid namespace of its own (tidmap.h). */
    struct tidmap tids;

    /* Open /proc/PID/task/TID/stat files, by the target's tid: one pread per thread and sample
     * instead of open+read+close. */
    struct py_tstat_fd { pid_t tid; int fd; } *tstat;
    size_t n_tstat, cap_tstat;
    uint64_t cpu_read_ns;              /* when threads' CPU times were last read (walk.c) */

    /* Frames seen lately, by (frame, code, offset): their code entry and line without a cache
     * lookup or a line-table search (stack.c). A frame still there still runs its code object,
     * so a hit needs no re-validation — if it is still there: the entry was used in this walk or
     * the one before (gen against memo_gen, which each py_walk() counts up). An older entry may
     * describe a frame and a code object both freed since, their addresses reused by others (up
     * to 3.10 a code object's frame is allocated with it, so both come back together). */
    uint32_t memo_gen;
    struct py_frame_memo {
        uint64_t frame, code_addr;
        int64_t lasti;
        uint32_t gen;
        int32_t line;
        const struct py_code *code;
        uint32_t code_key;
    } frame_memo[256];
};

/*
 * Opens pid for reading. Errors: PT_ENOPROC, PT_EPERM (with what to grant), PT_ENOTPY (no CPython
 * found: names the executable), PT_EVERSION (names the version found).
 */
enum pt_status py_proc_open(struct py_proc **out, pid_t pid, struct pt_err *err);
void py_proc_close(struct py_proc *p);

/*
 * A py_proc over an existing memory source, with no /proc and no ELF: for unit tests and fuzzing
 * on fake memory. Takes ownership of mem. runtime is &_PyRuntime (3.7+) or 0; interp_head_addr
 * is &interp_head (2.7/3.6) or 0. Returns NULL when out of memory.
 */
struct py_proc *py_proc_from_mem(struct mem_src *mem, const struct py_layout *L,
                                 const struct py_version *v, uint64_t runtime,
                                 uint64_t interp_head_addr);

/* "3.11.7" */
void py_version_str(const struct py_version *v, char *out, size_t cap);

/* First interpreter state of the target (0 when none yet, e.g. still starting). */
int py_proc_first_interp(struct py_proc *p, uint64_t *interp);

/* Scheduler state and CPU time of one of the target's threads, through a cached open file. */
int py_proc_thread_stat(struct py_proc *p, pid_t tid, struct proc_tstat *out);

/* Kernel tid of the thread whose pthread_t is thread_id, or -1 (for versions without
 * native_thread_id in the thread state). */
int64_t py_proc_tid_of(struct py_proc *p, uint64_t thread_id);

#endif
