/*
 * record.h — turning snapshots into a .pytrace file: the recorder's output half.
 *
 * A rec_sink owns one trace writer and one timeline. Each sampling round hands it the snapshot of
 * each traced process; it interns functions and stacks (reusing the previous sample's stack-trie
 * nodes for the unchanged prefix, so an unchanged stack costs no hashing), writes one sample per
 * thread with its GIL/idle/bad flags, feeds the timeline (whose finished spans go to the file),
 * and every counter_interval writes CPU time per thread and RSS per process. Threads and processes
 * that disappear get their spans closed and an exit event.
 */
#ifndef PT_RECORD_H
#define PT_RECORD_H

#include <stdbool.h>
#include <stdint.h>

#include "attach/session.h"
#include "output/trace.h"
#include "readers/walk.h"
#include "symbols/native.h"

struct rec_sink;

struct rec_thread_filter {
    const char *const *specs;   /* thread names (glob) or tids; NULL/0 = all threads */
    size_t n;
};

enum pt_status rec_sink_open(struct rec_sink **out, const char *path, bool overwrite,
                             const struct trace_meta *meta, const struct rec_thread_filter *filter,
                             uint64_t counter_interval_ns, struct pt_err *err);

struct rules;

/* The filter/redaction chain (util/rules.h), kept by reference (it must outlive s); call before
 * the first feed. Its frame rules apply while interning stacks: an excluded frame is left out (its
 * callees attach to its caller), a folded frame called by a folded frame too; the decision is made
 * once per function. The trailer's `excluded` counts the frames so removed, summed over samples;
 * `redacted` and `dropped` are the chain's rules_get_counts() at close. */
void rec_sink_set_rules(struct rec_sink *s, const struct rules *r);
/* The chain given to rec_sink_set_rules (NULL when none): locals capture asks it rules_value(). */
const struct rules *rec_sink_rules(const struct rec_sink *s);
/*
 * --locals: from now on every call's arguments and locals are read at its first sighting (the
 * timeline's begin hook, right after the walk that saw it) and written with its span; names are
 * checked against rules (not copied: it must outlive s; NULL redacts nothing). Values redacted and
 * dropped are counted into the trailer. PT_EFAIL when out of memory.
 */
enum pt_status rec_sink_capture_locals(struct rec_sink *s, const struct rules *rules,
                                       struct pt_err *err);

/* What --locals cost so far: calls whose variables were read, reads that failed (frame gone or
 * changing), time spent and memory reads made. */
struct rec_locals_stats {
    uint64_t captures, failed, ns, reads;
};
/* Frames fed so far that were the previous sample's, root side, field for field: the recorder
 * skipped its per-frame work for them. */
uint64_t rec_sink_frames_unchanged(const struct rec_sink *s);

struct rec_locals_stats rec_sink_locals_stats(const struct rec_sink *s);

/* Registers a traced process (parent = 0 for the root); returns its process index. */
uint32_t rec_sink_process(struct rec_sink *s, struct py_proc *p, uint32_t parent);

/* Records one snapshot of process `proc` taken at t_ns. */
void rec_sink_feed(struct rec_sink *s, uint32_t proc, struct py_proc *p,
                   const struct py_snapshot *snap, uint64_t t_ns);

/* The same with --native: each thread's stack merged with its native stack in ns (symbolized). */
void rec_sink_feed_native(struct rec_sink *s, uint32_t proc, struct py_proc *p,
                          const struct py_snapshot *snap, const struct native_snap *ns,
                          uint64_t t_ns);
/* --ebpf: thread snap->threads[0] of `proc` was blocked from t_begin to t_end with that stack:
 * writes an off-CPU span ("<off-CPU>", one deeper than its innermost frame). */
void rec_sink_off_cpu(struct rec_sink *s, uint32_t proc, const struct py_snapshot *snap,
                      uint64_t t_begin, uint64_t t_end);

/* Records that a round could not read process `proc` at all (every thread gets a bad sample). */
void rec_sink_feed_failed(struct rec_sink *s, uint32_t proc, uint64_t t_ns);

/* The process exited (status: exit code, -signal, or INT64_MIN unknown): its threads' spans end. */
void rec_sink_process_exit(struct rec_sink *s, uint32_t proc, uint64_t t_ns, int64_t status);

/* Flushes a chunk if one is due (call once per round). */
enum pt_status rec_sink_tick(struct rec_sink *s, uint64_t now_ns, struct pt_err *err);

uint64_t rec_sink_bytes(const struct rec_sink *s);
uint64_t rec_sink_samples(const struct rec_sink *s);
uint64_t rec_sink_errors(const struct rec_sink *s);

/* s as the session's sink (ctx = s): the session feeds it through these functions unchanged. */
struct session_sink rec_sink_as_session_sink(struct rec_sink *s);

/* Ends all spans at t_ns, writes the trailer, closes the file and frees s. */
enum pt_status rec_sink_close(struct rec_sink *s, uint64_t t_ns, struct trace_summary *sum,
                              struct pt_err *err);

#endif
