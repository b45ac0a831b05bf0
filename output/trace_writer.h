/*
 * trace_writer.h — the .pytrace writer's private state, shared by trace_write.c (records, chunks,
 * the file) and trace_intern.c (interned tables). Not for other modules: they use output/trace.h.
 *
 * Interned tables are dense arrays indexed by id (index 0 unused), so "the entries this chunk must
 * carry" is simply the id range [*_flushed, n_*). Per-chunk record buffers keep their capacity
 * across flushes: once they have grown to a chunk's worth, recording allocates nothing.
 */
#ifndef PT_TRACE_WRITER_H
#define PT_TRACE_WRITER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pytrace.pb-c.h"   /* generated from output/pytrace.proto into the build dir */
#include "output/trace.h"

/* Stack ids must leave room for ((stack << 3) | flags) + 1 in a uint32 sample reference. */
#define TRACE_MAX_STACK_ID ((UINT32_MAX >> 3) - 1)

/* Open-addressing hash table of ids; the entry itself lives in the id-indexed array. */
struct trace_slot {
    uint32_t id;              /* 0 = empty */
    uint32_t hash;
};
struct trace_htab {
    struct trace_slot *slots;
    uint32_t mask;            /* capacity - 1 (capacity is a power of two), 0 before first use */
    uint32_t used;
};

/* One thread's samples in the pending chunk. */
struct trace_tstate {
    Pytrace__SampleBlock blk; /* thread, t0_ns, period_us; arrays attached at flush */
    uint64_t *tick;           /* (zigzag(jitter us) << 1) | changed, one per sample */
    uint32_t *ref;            /* (stack << 3) | flags, one per changed sample */
    size_t n, n_ref, cap;
    uint64_t prev_t;          /* reconstructed time of the previous sample, as a reader sees it */
    uint32_t prev_ref;        /* encoded (stack, flags) of the previous sample in this block */
    bool active;              /* has samples in the pending chunk */
};

/* One counter's values in the pending chunk. */
struct trace_series {
    Pytrace__CounterSeries msg;
    int64_t *dt, *dv;
    size_t n, cap;
    uint64_t prev_t;
    int64_t prev_v;
    bool active;
};

/* Where a pending span's locals are in trace_writer.locals. */
struct trace_lrange {
    uint32_t first, n;
};

/* A pending call for the chunk's SpanBlock (a call without locals), as the columns store it. */
struct trace_span_row {
    uint32_t thread, function, depth, flags;
    int32_t call_line, first_line;
    uint64_t begin, samples;
    int64_t begin_lo, end, end_hi;
};

/* The SpanBlock's columns, rebuilt from the rows at each flush (capacity kept): pointers into
 * one buffer. */
struct trace_span_cols {
    Pytrace__SpanBlock msg;
    uint8_t *block;
    uint32_t *thread, *function, *depth, *flags;
    int32_t *call_line, *first_line;
    int64_t *begin, *begin_lo, *end, *end_hi;
    uint64_t *samples;
    size_t cap;
};

/* A growable buffer of fixed-size elements. */
struct trace_vec {
    void *p;
    size_t n, cap;
};

struct trace_writer {
    int fd;
    char *path;
    uint64_t bytes;           /* written to the file so far */
    uint64_t last_flush_ns;
    uint32_t period_us;
    size_t pending_bytes;     /* rough encoded size of the pending chunk */
    bool oom;                 /* an allocation failed: data was lost; flush reports it */
    bool broken;              /* a write failed: the file ends in a partial chunk */

    /* Interned tables, indexed by id; n_* counts index 0. *_flushed: first id not yet written. */
    char **strs;                     uint32_t n_strs, strs_flushed;     size_t cap_strs;
    struct trace_function *fns;      uint32_t n_fns, fns_flushed;       size_t cap_fns;
    struct trace_fn_native *fnx;     size_t cap_fnx;   /* parallel to fns */
    struct trace_stack_node *stacks; uint32_t n_stacks, stacks_flushed; size_t cap_stacks;
    struct trace_process *procs;     uint32_t n_procs, procs_flushed;   size_t cap_procs;
    struct trace_thread *threads;    uint32_t n_threads, threads_flushed; size_t cap_threads;
    struct trace_tstate *ts;         size_t cap_ts;   /* parallel to threads */
    struct trace_htab str_tab, fn_tab, stack_tab, proc_tab, thread_tab, series_tab;
    char *text;                size_t text_cap;   /* scratch for making text valid UTF-8 */

    /* Records of the pending chunk. */
    struct trace_vec renames;  /* Pytrace__ThreadName */
    struct trace_vec spans;    /* Pytrace__Span: calls with locals (all calls with span_msgs) */
    struct trace_vec rows;     /* struct trace_span_row: the other calls, for the SpanBlock */
    struct trace_span_cols cols;
    bool span_msgs;            /* --locals: every call a Span message (they stay in order) */
    struct trace_vec locals;   /* Pytrace__Local of the pending spans (--locals) */
    struct trace_vec span_locals;  /* struct trace_lrange per pending span: its locals */
    struct trace_vec events;   /* Pytrace__Event */
    struct trace_vec active_threads;  /* uint32_t thread ids with samples, in first-sample order */
    struct trace_series *series;      uint32_t n_series; size_t cap_series;  /* id = index + 1 */
    struct trace_vec active_series;   /* uint32_t series ids with values */

    /* Reused at every flush: message structs, pointer arrays, the packed frame. */
    struct trace_vec msgs, ptrs;
    uint8_t *out;              size_t out_cap;
};

/* Ensures room for `need` elements of `elem` bytes in *p (capacity *cap), growing geometrically.
 * Returns 0, or -1 when out of memory (the buffer is unchanged). */
int trace_grow(void **p, size_t *cap, size_t need, size_t elem);
int trace_vec_push(struct trace_vec *v, const void *elem, size_t size);

/* Copies s as valid UTF-8 into w->text; returns it, or NULL when out of memory. */
const char *trace_valid_text(struct trace_writer *w, const char *s);

/* Id of the counter series (kind, owner), created on first use; 0 when out of memory. */
uint32_t trace_series_id(struct trace_writer *w, uint32_t kind, uint32_t owner);

/* Frees the interned tables, the series and the hash tables (trace_intern.c). */
void trace_intern_free(struct trace_writer *w);

/* Validity of ids a record refers to (an invalid record is dropped: the file must stay loadable). */
static inline bool trace_thread_ok(const struct trace_writer *w, uint32_t id)
{
    return id != 0 && id < w->n_threads;
}
static inline bool trace_process_ok(const struct trace_writer *w, uint32_t id)
{
    return id < w->n_procs;   /* 0 = none */
}

#endif
