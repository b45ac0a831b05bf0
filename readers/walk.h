/*
 * walk.h — one snapshot of every thread's Python stack.
 *
 * py_walk() reads, without stopping the target: all interpreters → their thread states → each
 * thread's frame chain (frame objects up to 3.10, interpreter frames from 3.11), decoding code
 * objects through the proc's cache. The target keeps running while we read, so any thread's
 * stack may be torn: such a thread is marked `bad` (and its frames kept up to the fault), never a
 * crash, a hang or a huge allocation. Snapshot buffers are owned by the caller and reused across
 * calls, so steady-state sampling allocates nothing.
 */
#ifndef PT_WALK_H
#define PT_WALK_H

#include <stdbool.h>
#include <stdint.h>

#include "readers/runtime.h"

#define PY_MAX_FRAMES 4096     /* deeper stacks are cut and marked truncated */
#define PY_MAX_THREADS 4096
#define PY_MAX_INTERPS 256

struct py_frame {
    uint64_t addr;               /* frame object / interpreter frame: the frame's identity */
    uint64_t code_addr;
    const struct py_code *code;  /* NULL when the code object could not be read */
    int32_t lasti;               /* byte offset of the instruction in progress, -1 unknown */
    int32_t line;
    uint64_t argsig;             /* hash of the first argument slots (new call hint), 0 unknown */
    bool entry;                  /* outermost frame of one C-level eval call (native merge) */
    uint32_t code_key;           /* code->id + 1 (0: not set), so that the recorder need not
                                  * touch the code entry for it */
};

struct py_thread {
    uint64_t tstate;
    uint64_t thread_id;          /* pthread_t */
    int64_t native_id;           /* kernel tid as the target's own pid namespace numbers it
                                  * (p->tids maps it to pytrace's), -1 unknown */
    uint64_t interp;
    int64_t interp_id;
    bool holds_gil;
    bool idle;                   /* not running on a CPU (OS state), see os_state */
    bool truncated;              /* deeper than PY_MAX_FRAMES */
    bool bad;                    /* torn or unreadable stack: frames are partial */
    char os_state;               /* /proc state letter, 0 when not read ('R' also when inferred) */
    bool cpu_valid;              /* cpu_*_ns were read this walk (snapshot's cpu_times) */
    uint64_t cpu_user_ns;        /* CPU time of the thread (with PY_WALK_OS_STATE) */
    uint64_t cpu_sys_ns;
    uint32_t first;              /* index of the innermost frame in snapshot->frames */
    uint32_t nframes;
    char name[64];               /* Python thread name when known (PY_WALK_NAMES) */
    bool name_os;                /* name is the OS thread name: threading has not (yet) named it */
};

struct py_snapshot {
    uint64_t t_ns;               /* CLOCK_MONOTONIC when the walk began */
    uint64_t gil_holder;         /* tstate holding the GIL, 0 none/unknown */
    struct py_thread *threads;
    uint32_t nthreads, cap_threads;
    struct py_frame *frames;
    uint32_t nframes, cap_frames;
    uint32_t bad_threads;
    bool complete;               /* every interpreter and thread list was read to its end */
    bool cpu_times;              /* every thread's CPU time was read (every PY_CPU_TIMES_NS) */
};

/* With a single interpreter, how often its fields (and from 3.12, the runtime's interpreter list)
 * are read again at the latest; in between, a new first thread state shows up in the old one's
 * prev link and makes the walk read them at once. */
#define PY_INTERP_LIST_NS 10000000ULL

/* With PY_WALK_OS_STATE, threads' CPU times (the trace's per-thread CPU counters) are read at
 * most this often: 20 points a second, in the kernel's 10 ms ticks. In between, a thread that
 * holds the GIL and whose stack moved since the last walk is running, and its /proc stat is not
 * read at all. (Every 10 ms made the daemon, at 100 Hz, read every thread's stat every round.) */
#define PY_CPU_TIMES_NS 50000000ull

enum py_walk_flags {
    PY_WALK_OS_STATE = 1 << 0,   /* thread state per thread (idle detection), CPU times */
    PY_WALK_NAMES = 1 << 1,      /* resolve Python thread names (threading module) */
    PY_WALK_NO_STACKS = 1 << 2,  /* the thread list only: each thread state, no frames */
};

void py_snapshot_init(struct py_snapshot *s);
void py_snapshot_free(struct py_snapshot *s);

/*
 * Fills s with every thread of every interpreter. Returns PT_OK (some threads may be bad),
 * PT_ENOPROC when the target has gone, PT_EFAIL when even the interpreter list is unreadable.
 */
enum pt_status py_walk(struct py_proc *p, struct py_snapshot *s, unsigned flags,
                       struct pt_err *err);

/* Makes one thread of the thread states that one OS thread has in several interpreters (it called
 * into a subinterpreter, or left an idle state there): the inner interpreter's frames on top of
 * the outer's, in the outer thread state's record (its identity and name stay the thread's).
 * py_walk() does this when it walked stacks of more than one interpreter (nested.c). */
void py_snapshot_merge_nested(struct py_snapshot *s);

/* Innermost-first frame i of thread t. */
static inline const struct py_frame *py_thread_frame(const struct py_snapshot *s,
                                                     const struct py_thread *t, uint32_t i)
{
    return &s->frames[t->first + i];
}

/* A thread's stack as the previous walk saw it (frame objects), with each frame's caller. */
struct py_prev_stack {
    uint64_t tstate;
    uint32_t n, cap;
    struct py_frame *frames;     /* innermost first */
    uint64_t *backs;             /* f_back of each frame */
    uint32_t *index;             /* frame objects: open-addressing table of 2 * cap slots, frame
                                  * address -> its position + 1 (0: empty) */
    int32_t surplus;             /* ≤3.10: the thread state's recursion_depth minus n at that walk
                                  * (INT32_MIN: unknown) */
    int32_t pending;             /* a different surplus seen once (INT32_MIN: none): the walk is
                                  * taken as torn unless a later sample's shows it again */
    uint32_t pending_gen;        /* the walk (p->memo_gen) that saw it */
    bool seen;                   /* walked this time (stacks of threads that are gone are freed) */
    /* 3.11+: where this thread's frames were last time, to read them with its state at once. */
    uint64_t chunk, cframe;
    uint64_t cframe_alt[PY_CFRAME_ALTS];   /* 3.11–3.12: other cframes seen lately, latest first
                                  * (0: none). A loop that resumes generators from C (join, list(),
                                  * any for loop over one in 3.11) switches between a few all the
                                  * time: the top frame is read through each. */
    uint32_t cframe_same;        /* walks since the cframe last changed (the others are forgotten
                                  * after CFRAME_ALT_KEEP: an iovec each, maybe a page) */
    uint32_t copylen;
    uint8_t heap_rounds;         /* > 0: a walk lately read frames outside the data stack (a
                                  * generator's or coroutine's, on the heap) */
    uint64_t copy_long_ns;       /* when the stack last needed the copy's length (or it changed) */
    uint32_t copy_long_rounds;   /* walks since then */
    uint64_t old_chunk;          /* the chunk below it when the stack spans two, and its used bytes */
    uint32_t old_len;
    /* Hash of every frame and offset at the last walk: a GIL holder whose stack moved is running. */
    uint64_t sig;
    uint64_t stat_ns;            /* when its /proc state was last read, and what it said */
    char stat_state;
    bool gil_since_stat;         /* held the GIL in a walk since that reading */
};

void py_prev_stacks_free(struct py_proc *p);

/* Sets f->code and f->line from f->addr, f->code_addr and f->lasti, for frames read by other
 * means (the eBPF records): a frame still where an earlier one was, at the same code and offset,
 * reuses its entry without a lookup (the code cache re-validates the others after each tick). */
void py_frame_resolve(struct py_proc *p, struct py_frame *f);

/* Fills t->name for every thread from the threading module (threadname.c). */
void py_thread_names(struct py_proc *p, struct py_snapshot *s);

/* Which threads s holds, as one number that changes when one comes, goes or takes its own ids:
 * up to 3.11 a thread state is in the list before its thread runs, with its creator's thread id
 * (and so its creator's name) until the thread sets its own. Callers read names again when it
 * changes, not only when the thread count does. */
uint64_t py_thread_set_sig(const struct py_snapshot *s);

#endif
