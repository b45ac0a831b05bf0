/*
 * trace_filter.c — span nesting and frame rules over a loaded trace (trace_filter.h). Both walk
 * ids in ascending order: a stack node's parent has a smaller id, so one pass decides each node
 * from its parent's decision; spans are sorted per thread by begin to find their callers.
 */
#include "output/trace_filter.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "util/rules.h"

static int span_order(const void *a, const void *b, void *ctx)
{
    const struct tl_span *sp = ctx, *x = &sp[*(const uint32_t *)a], *y = &sp[*(const uint32_t *)b];
    if (x->thread != y->thread)
        return x->thread < y->thread ? -1 : 1;
    if (x->begin != y->begin)
        return x->begin < y->begin ? -1 : 1;
    return x->depth < y->depth ? -1 : x->depth > y->depth;
}

/* Sweeping each thread's spans by begin, open[d] is the last span seen at depth d. */
enum pt_status trace_span_parents(const struct trace *t, uint32_t *parent, struct pt_err *err)
{
    size_t n = t->n_spans;
    uint32_t max_depth = 0;
    for (size_t i = 0; i < n; i++)
        max_depth = t->spans[i].depth > max_depth ? t->spans[i].depth : max_depth;
    if (max_depth > n)   /* a damaged file: no real nesting is deeper than the spans */
        max_depth = (uint32_t)n;
    uint32_t *order = malloc((n + 1) * sizeof *order);
    uint32_t *open = malloc(((size_t)max_depth + 1) * sizeof *open);
    if (!order || !open) {
        free(order);
        free(open);
        return pt_fail(err, PT_EFAIL, "out of memory");
    }
    for (size_t i = 0; i < n; i++)
        order[i] = (uint32_t)i;
    qsort_r(order, n, sizeof *order, span_order, t->spans);
    for (size_t k = 0; k < n; k++) {
        const struct tl_span *s = &t->spans[order[k]];
        if (k == 0 || s->thread != t->spans[order[k - 1]].thread)
            memset(open, 0xff, ((size_t)max_depth + 1) * sizeof *open);
        uint32_t p = TRACE_NO_PARENT;
        if (s->depth > 0 && s->depth - 1 <= max_depth && open[s->depth - 1] != TRACE_NO_PARENT) {
            const struct tl_span *ps = &t->spans[open[s->depth - 1]];
            if (ps->begin <= s->begin && ps->end >= s->end)
                p = open[s->depth - 1];
        }
        parent[order[k]] = p;
        if (s->depth <= max_depth)
            open[s->depth] = order[k];
    }
    free(order);
    free(open);
    return PT_OK;
}

static enum rule_action function_action(const struct trace *t, const struct rules *r, uint32_t fn)
{
    if (!fn || fn >= t->n_functions)
        return RULE_NONE;
    const struct trace_function *f = &t->functions[fn];
    const char *q = trace_str(t, f->qualname);
    return rules_frame(r, NULL, trace_str(t, f->file), *q ? q : trace_str(t, f->name));
}

/* A frame goes when excluded, or folded under a folded caller; in_fold passes through excluded
 * frames. Returns whether the frame is kept and sets *fold for its callees. */
static bool keep_frame(enum rule_action a, bool caller_fold, bool *fold)
{
    if (a == RULE_EXCLUDE) {
        *fold = caller_fold;
        return false;
    }
    *fold = a == RULE_FOLD;
    return !(a == RULE_FOLD && caller_fold);
}

/* Renumbers the trie in place: a kept node's new id is never above its old one. */
static void filter_stacks(struct trace *t, const uint8_t *act, uint32_t *map, bool *fold)
{
    uint32_t next = 1;
    size_t old = t->n_stacks;
    map[0] = 0;
    fold[0] = false;
    for (size_t k = 1; k < old; k++) {
        struct trace_stack_node sn = t->stacks[k];
        uint32_t p = sn.parent < k ? sn.parent : 0;
        enum rule_action a = sn.function < t->n_functions ? act[sn.function] : RULE_NONE;
        if (!keep_frame(a, fold[p], &fold[k])) {
            map[k] = map[p];
            continue;
        }
        t->stacks[next] = (struct trace_stack_node){map[p], sn.function, sn.line};
        map[k] = next++;
    }
    t->n_stacks = old ? next : 0;
    for (size_t i = 0; i < t->n_samples; i++)
        t->samples[i].stack = t->samples[i].stack < old ? map[t->samples[i].stack] : 0;
}

/* Drops the spans of removed frames; a kept span's depth counts its kept callers. */
static void filter_spans(struct trace *t, const uint8_t *act, const uint32_t *parent, bool *fold,
                         bool *kept, uint32_t *depth, bool *done, uint32_t *chain)
{
    /* Callers come before callees in begin order, not in index order: walk up to the first
     * decided ancestor, then decide down (a caller began no later and is one level up, so
     * parents form a forest and this ends). */
    memset(done, 0, t->n_spans * sizeof *done);
    for (size_t i = 0; i < t->n_spans; i++) {
        size_t n = 0;
        for (uint32_t s = (uint32_t)i; s != TRACE_NO_PARENT && !done[s]; s = parent[s])
            chain[n++] = s;
        while (n--) {
            uint32_t s = chain[n], p = parent[s];
            bool pf = p != TRACE_NO_PARENT && fold[p];
            uint32_t pd = p == TRACE_NO_PARENT ? 0 : depth[p] + kept[p];
            uint32_t fn = t->spans[s].function;
            kept[s] = keep_frame(fn < t->n_functions ? act[fn] : RULE_NONE, pf, &fold[s]);
            depth[s] = p == TRACE_NO_PARENT ? t->spans[s].depth : pd;
            done[s] = true;
        }
    }
    size_t w = 0;
    for (size_t i = 0; i < t->n_spans; i++)
        if (kept[i]) {
            t->spans[w] = t->spans[i];
            t->spans[w++].depth = depth[i];
        }
    t->n_spans = w;
}

enum pt_status trace_apply_rules(struct trace *t, const struct rules *r, struct pt_err *err)
{
    if (!rules_has_frame_rules(r))
        return PT_OK;
    size_t ns = t->n_stacks + 1, nsp = t->n_spans + 1;
    uint8_t *act = calloc(t->n_functions + 1, 1);
    uint32_t *map = malloc(ns * sizeof *map), *parent = malloc(nsp * sizeof *parent);
    uint32_t *depth = malloc(nsp * sizeof *depth);
    bool *fold = malloc((ns > nsp ? ns : nsp) * sizeof *fold), *kept = malloc(nsp * sizeof *kept);
    bool *done = malloc(nsp * sizeof *done);
    uint32_t *chain = malloc(nsp * sizeof *chain);
    enum pt_status rc = !act || !map || !parent || !depth || !fold || !kept || !done || !chain
                            ? pt_fail(err, PT_EFAIL, "out of memory")
                            : trace_span_parents(t, parent, err);
    if (rc == PT_OK) {
        for (uint32_t f = 1; f < t->n_functions; f++)
            act[f] = (uint8_t)function_action(t, r, f);
        filter_spans(t, act, parent, fold, kept, depth, done, chain);
        filter_stacks(t, act, map, fold);
    }
    free(act), free(map), free(parent), free(depth), free(fold), free(kept), free(done), free(chain);
    return rc;
}
