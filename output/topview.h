/*
 * topview.h — the numbers behind `pytrace top`: per-function own and total sample counts over a
 * sliding window of the last N seconds.
 *
 * Functions are keyed by code identity (name, file, first line) and copied in, so the target's
 * code cache may evict or reuse code objects freely. Each sample's stack is interned in a trie
 * (node = caller node + function); the window is a ring of per-second buckets, each a small table
 * of (leaf node, thread, GIL/idle flags) → count. Filters (one thread, GIL-only, idle) and the
 * sort are applied when the rows are asked for, so toggling them re-reads the whole window at
 * once. Aggregation walks each bucket entry's stack once and counts a function once per sample
 * however often it recurs. Pure: no /proc, no terminal; time comes in as arguments.
 *
 * Percentages are of sampling rounds (wall time): 100% is one thread spending the whole window in
 * the function, so with several threads a column can pass 100%, as in top(1). Times are samples
 * times the achieved period (window span / rounds).
 */
#ifndef PT_TOPVIEW_H
#define PT_TOPVIEW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "readers/walk.h"

#define TOP_MAX_WINDOW_S 600

enum top_sort { TOP_SORT_OWN_PCT, TOP_SORT_TOTAL_PCT, TOP_SORT_OWN_TIME, TOP_SORT_TOTAL_TIME,
                TOP_SORT_COUNT };

struct top_view;

/* What the rows count. thread: -1 all threads, else an index from top_view_thread(). */
struct top_query {
    int32_t thread;
    bool gil_only;            /* only samples whose thread held the GIL */
    bool idle;                /* include idle samples (excluded by default) */
    enum top_sort sort;
};

struct top_row {
    const char *name, *file;  /* owned by the view, valid until the next top_view_* call */
    int32_t line;             /* first line of the code object */
    uint64_t own, total;      /* samples */
    double own_pct, total_pct;
    double own_s, total_s;
};

/* Header facts over the same window (not narrowed by the query except where said). */
struct top_stats {
    uint64_t rounds;          /* sampling rounds in the window */
    uint64_t samples;         /* thread samples in the window (every thread, every flag) */
    uint64_t errors;          /* of which torn/unreadable */
    uint64_t gil_rounds;      /* rounds in which some thread held the GIL */
    double span_s;            /* time the window covers so far */
    double rate_hz;           /* achieved rounds per second */
    uint32_t threads, active, idle;   /* Python threads in the latest round */
};

struct top_thread_info {
    int64_t native_id;        /* kernel tid, or -1 */
    uint64_t thread_id;
    const char *name;
    bool selected;            /* passes the --thread filter */
};

/* A view of window_s seconds (1..TOP_MAX_WINDOW_S + 1); NULL when out of memory. */
struct top_view *top_view_new(uint32_t window_s);
void top_view_free(struct top_view *v);

/* Keeps only threads whose name matches one of the globs or whose tid is one of the specs. */
void top_view_set_thread_filter(struct top_view *v, const char *const *specs, size_t n);

/* One sampling round of one process at t_ns: every thread of snap is a sample. */
void top_view_feed(struct top_view *v, const struct py_snapshot *snap, uint64_t t_ns);

/* A round in which the process could not be read: counts a round and one error. */
void top_view_feed_failed(struct top_view *v, uint64_t t_ns);

/*
 * The rows for q over the window ending at now_ns, sorted, ties by name. *rows points into the
 * view (valid until the next call). Fills *st when st is not NULL. Returns the row count.
 */
size_t top_view_rows(struct top_view *v, const struct top_query *q, uint64_t now_ns,
                     const struct top_row **rows, struct top_stats *st);

/* Threads seen so far (for cycling the per-thread view): count, and info of index i. */
uint32_t top_view_threads(const struct top_view *v);
bool top_view_thread(const struct top_view *v, uint32_t i, struct top_thread_info *out);

/* Column names, for headers and status lines. */
const char *top_sort_name(enum top_sort s);

#endif
