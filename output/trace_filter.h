/*
 * trace_filter.h — frame rules (util/rules.h) applied to a loaded trace, for the readers that work
 * on the trace itself rather than through export_view (`pytrace view --filter`), and the span
 * nesting that both need.
 */
#ifndef PT_TRACE_FILTER_H
#define PT_TRACE_FILTER_H

#include <stdint.h>

#include "output/trace.h"
#include "util/err.h"

struct rules;

#define TRACE_NO_PARENT UINT32_MAX

/*
 * parent[i] = index of span i's caller: the span one level up on its thread that was open when it
 * began and contains it (callers first at equal begins), TRACE_NO_PARENT for none. parent has
 * t->n_spans entries. PT_EFAIL only when out of memory.
 */
enum pt_status trace_span_parents(const struct trace *t, uint32_t *parent, struct pt_err *err);

/*
 * Rewrites t in place as if the frame rules had applied while recording: stack nodes of excluded
 * functions, and of folded functions under a folded caller, are merged into their caller (the
 * trie is renumbered, samples follow), and their spans go, the others' depths closing up. A
 * damaged file's out-of-order parents count as roots. PT_EFAIL only when out of memory (t is then
 * unchanged).
 */
enum pt_status trace_apply_rules(struct trace *t, const struct rules *r, struct pt_err *err);

#endif
