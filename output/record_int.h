/*
 * record_int.h — the recorder's own state, shared by record.c (snapshots to trace records) and
 * record_locals.c (--locals: a call's variables captured when the call is first seen). Not an
 * interface: the rest of pytrace uses record.h.
 */
#ifndef PYTRACE_OUTPUT_RECORD_INT_H
#define PYTRACE_OUTPUT_RECORD_INT_H

#include "output/record.h"
#include "readers/locals.h"

struct rec_thread {
    uint64_t thread_id;
    int64_t native_id;
    uint32_t trace_thread;
    bool seen;              /* in the current snapshot */
    bool gone;
    char name[64];
    /* The previous sample's stack, root first, to reuse trie nodes for the unchanged prefix. */
    uint32_t depth, cap;
    uint32_t depth_kept;    /* frames of the last stack the rules kept (t->tlf's length) */
    uint32_t *nodes, *funcs;
    uint32_t *keys;         /* each kept frame's py_frame.code_key (0: native or unknown) */
    int32_t *lines;
    struct tl_frame *tlf;
    uint32_t same;          /* root-side frames of the last stack equal to the one before */
    bool tl_fed;            /* the timeline holds t->tlf[0, depth_kept) as this thread's stack */
    uint64_t last_cpu_user, last_cpu_sys;
};

struct rec_proc {
    int64_t pid;
    uint32_t trace_process;
    struct rec_thread *threads;
    uint32_t n, cap;
    uint32_t *fid_by_code;  /* function id by py_code id */
    uint32_t n_fid;
    uint64_t last_counters_ns;  /* sample time of the last RSS reading */
    uint64_t last_statm_ns;     /* ... and the clock's time when it was read */
    int statm_fd;               /* /proc/PID/statm, opened at the first RSS reading (-1: not) */
    bool exited;
    bool entry_offset_unique;   /* no jump targets offset 0 (3.11+) */
};

/* The interned variables of one open span (--locals); blocks are reused once the span is written,
 * so recording allocates only while more spans with locals are open than ever before. */
struct rec_lblock {
    struct rec_lblock *next_free, *next_all;
    struct tl_local items[PY_LOCALS_MAX];
};

struct rec_sink {
    struct trace_writer *w;
    struct timeline *tl;
    struct rec_proc *procs;
    uint32_t n_procs, cap_procs;
    struct rec_thread_filter filter;
    uint64_t counter_interval_ns;
    uint64_t samples, errors;
    uint32_t unknown_function;
    const struct rules *value_rules;  /* the whole chain, for locals capture (rec_sink_rules) */
    const struct rules *rules;  /* frame rules (rec_sink_set_rules), NULL = keep every frame */
    uint8_t *action_by_fid;     /* rules_frame() + 1 by function id, 0 = not decided yet */
    uint32_t n_action;
    uint64_t excluded;          /* frames removed by exclude/fold, summed over samples */
    /* --locals: the rule chain, a reused read buffer, span blocks, counts */
    const struct rules *locals_rules;
    struct py_locals *lbuf;
    uint64_t frames_unchanged;   /* see rec_sink_frames_unchanged() */
    struct rec_lblock *lfree, *lall;
    uint64_t redacted, dropped;
    struct rec_locals_stats lstats;
    /* The sample tl_feed() is looking at, for the begin hook: its kept frames by timeline depth
     * (root first; NULL for a native frame), as intern_stack() laid them out. */
    struct py_proc *cur_p;
    const struct py_thread *cur_pt;
    const struct py_frame **cur_frames;
    uint32_t cur_n, cap_cur_frames;
    uint32_t off_cpu_function;  /* "<off-CPU>", interned on first use */
};

/* record_locals.c: gives back the block of a written span's variables; frees every block. */
void rec_locals_release(struct rec_sink *s, const struct tl_local *items);
void rec_locals_free(struct rec_sink *s);

#endif
