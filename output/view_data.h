/*
 * view_data.h — what `pytrace view` embeds in its HTML page: a loaded trace aggregated and
 * downsampled in C, so a million-sample recording becomes a few megabytes of JSON that the page
 * parses and draws in well under a second.
 *
 * The samples become a tree of functions (the stack trie with lines merged away) and one count per
 * (thread, tree node, flags) triple, so the page can re-aggregate for any thread, hide idle samples
 * or hide stdlib/site-packages frames without the raw samples. The spans keep the longest ones
 * within a budget (the dropped ones are all shorter than the kept ones, and the page says so). The
 * counters are cut to a few hundred points per series.
 *
 * The JSON document (all times are microseconds since "t0_ns", integers; ids index the arrays;
 * the big arrays are delta-encoded because small numbers make the page parse faster):
 *   version        1
 *   meta           {name, pid, python_version, python_binary, cmdline, host, pytrace_version,
 *                   start (ISO 8601 UTC), duration_s, rate_hz, achieved_hz, achieved_estimated,
 *                   blocking, native, samples, errors, missed, overruns (null without trailer),
 *                   truncated, valid_bytes, tags {k: v}, filters, period_us}
 *   t0_ns          CLOCK_MONOTONIC of time 0 (the start, or the first sample if earlier)
 *   duration_us    time of the last sample, span end or counter
 *   strings        the trace's string table (strings[0] = "")
 *   functions      [[name, qualname, file, first_line, kind], ...], index = function id;
 *                  kind: VIEW_KIND_*. When the tree was pruned, one more entry (id n_functions)
 *                  stands for the pruned frames.
 *   threads        [{id, name, tid, process, samples}] (ids of the trace; id 0 absent)
 *   processes      [{id, pid, cmdline, python_version}]
 *   tree           {parent_back: [...], function: [...]}: node 0 is the root (function 0); node
 *                  i > 0 has parent i - parent_back[i] (so parents have smaller ids). Sibling
 *                  nodes have distinct functions.
 *   tree_pruned    number of trie nodes folded into "pruned" nodes (0 when within budget)
 *   counts         [{thread, data: [node_delta, flags, n, ...]}]: n samples of thread whose
 *                  innermost frame is the node, with sample flags (TRACE_F_*); nodes ascend and
 *                  each is the previous one (0 at the start) plus node_delta. Sums to the samples
 *                  of known threads.
 *   spans          [{thread, max_depth, data: [begin_delta, duration, depth, function, idle_pct,
 *                  ...]}], per thread sorted by begin then depth; begin = previous begin (0 at the
 *                  start) + begin_delta, end = begin + duration, both by the midpoint estimator;
 *                  idle_pct = share of the thread's samples in the call's sightings that were idle.
 *   span_total     spans in the trace;  span_kept: spans in "spans"
 *   span_min_us    when spans were dropped: every dropped span is at most this long, every kept
 *                  one at least (0 when none were dropped)
 *   activity       {buckets, bucket_us, threads: [{thread, running: [...], idle: [...]}]}:
 *                  samples per time bucket (fewer buckets when there are many threads)
 *   counters       [{kind, owner, points: [t, value, ...]}], kind: TRACE_C_*, owner a thread id
 *                  (CPU) or a process id (RSS); at most counter_points points per series, fewer
 *                  when there are many series (the last value of each time bucket, the largest for
 *                  RSS)
 */
#ifndef PT_VIEW_DATA_H
#define PT_VIEW_DATA_H

#include <jansson.h>
#include <stddef.h>

#include "output/trace.h"
#include "util/err.h"

/* How a function's file classifies it (the viewer's hide toggles). */
enum view_kind {
    VIEW_KIND_USER = 0,
    VIEW_KIND_STDLIB = 1,        /* under lib/pythonX.Y (or <frozen ...>), not site-packages */
    VIEW_KIND_SITE = 2,          /* under site-packages/ or dist-packages/ */
};

struct view_opts {
    size_t span_budget;          /* most spans embedded; 0 = VIEW_SPAN_BUDGET */
    size_t node_budget;          /* most tree nodes embedded; 0 = VIEW_NODE_BUDGET */
    size_t counter_points;       /* most points per counter series; 0 = VIEW_COUNTER_POINTS */
    size_t activity_buckets;     /* time buckets per activity strip; 0 = VIEW_ACTIVITY_BUCKETS */
};

#define VIEW_SPAN_BUDGET 200000
#define VIEW_NODE_BUDGET 200000
#define VIEW_COUNTER_POINTS 500
#define VIEW_ACTIVITY_BUCKETS 1000
/* Totals over all series / threads: with many, each gets fewer points (at least 20). */
#define VIEW_COUNTER_TOTAL 200000
#define VIEW_ACTIVITY_CELLS 400000

/*
 * Builds the document above for t (o may be NULL for the defaults). On success *out is a new
 * reference the caller json_decref()s. PT_EFAIL on out of memory. A damaged trace (inconsistent
 * times, unknown ids) still gives a valid document: such records are left out.
 */
enum pt_status view_data_build(const struct trace *t, const struct view_opts *o, json_t **out,
                               struct pt_err *err);

/* The part of view_data_build() in output/view_tree.c: adds "tree", "tree_pruned" and "counts"
 * to doc, with at most node_budget (>= 3) tree nodes. Returns 0, -1 on out of memory. */
int view_tree_add(const struct trace *t, size_t node_budget, json_t *doc);

/* The kind of a function whose file is `file`. Any ".../lib/pythonX.Y/" (or lib64) directory
 * counts as an interpreter's standard library: a trace may hold subprocesses of other versions,
 * and a venv's interpreter runs the stdlib of its base installation, not of its own prefix. */
enum view_kind view_classify(const char *file);

#endif
