/*
 * export_common.c — the selection every exporter shares (see export.h): threads by name or tid,
 * a time window, excluded files/modules, idle and GIL filters, and stacks with excluded frames
 * taken out.
 */
#include "output/export.h"

#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "output/trace_filter.h"
#include "util/rules.h"

static bool thread_matches(const struct trace *t, uint32_t id, const struct export_opts *o)
{
    if (!o->n_threads)
        return true;
    const struct trace_thread *th = &t->threads[id];
    for (size_t i = 0; i < o->n_threads; i++) {
        const char *spec = o->threads[i];
        char *end;
        long tid = strtol(spec, &end, 10);
        if (*spec && !*end ? tid == th->tid : fnmatch(spec, trace_str(t, th->name), 0) == 0)
            return true;
    }
    return false;
}

/* --exclude PATTERN as rules: the pattern names a file path (a base name when it has no '/') or a
 * dotted module ("asyncio.*", also asyncio itself), as util/rules.h matches them. */
static enum pt_status exclude_rules(const struct export_opts *o, struct rules **out,
                                    struct pt_err *err)
{
    *out = NULL;
    if (!o->n_exclude)
        return PT_OK;
    enum pt_status rc = rules_new(out, false, err);
    for (size_t i = 0; rc == PT_OK && i < o->n_exclude; i++) {
        char line[4200];
        snprintf(line, sizeof line, "exclude file:%s", o->exclude[i]);
        rc = rules_add_line(*out, line, "--exclude", err);
        snprintf(line, sizeof line, "exclude module:%s", o->exclude[i]);
        if (rc == PT_OK)
            rc = rules_add_line(*out, line, "--exclude", err);
    }
    return rc;
}

/* Spans of folded frames under a folded caller, as export_stack() drops them from stacks.
 * in_fold[i]: the nearest kept frame at or above span i is folded. */
static enum pt_status export_hide_folded_spans(struct export_view *v, struct pt_err *err)
{
    const struct trace *t = v->t;
    size_t n = t->n_spans;
    uint32_t *parent = malloc((n + 1) * sizeof *parent), *chain = malloc((n + 1) * sizeof *chain);
    uint8_t *state = calloc(n + 1, 1);   /* 0 undecided, else 1 + in_fold */
    v->span_hidden = calloc(n + 1, sizeof *v->span_hidden);
    enum pt_status rc = !parent || !chain || !state || !v->span_hidden
                            ? pt_fail(err, PT_EFAIL, "out of memory")
                            : trace_span_parents(t, parent, err);
    for (size_t i = 0; rc == PT_OK && i < n; i++) {
        size_t depth = 0;
        for (uint32_t s = (uint32_t)i; s != TRACE_NO_PARENT && !state[s]; s = parent[s])
            chain[depth++] = s;
        while (depth--) {   /* callers first */
            uint32_t s = chain[depth], p = parent[s], fn = t->spans[s].function;
            bool caller_fold = p != TRACE_NO_PARENT && state[p] == 2;
            bool excluded = fn < t->n_functions && v->function_excluded[fn];
            bool folded = fn < t->n_functions && v->function_folded[fn];
            state[s] = 1 + (excluded ? caller_fold : folded);
            v->span_hidden[s] = !excluded && folded && caller_fold;
        }
    }
    free(parent), free(chain), free(state);
    return rc;
}

/* Frame decisions by function id: the rule chain first, then --exclude (the command line wins). */
static enum pt_status decide_functions(struct export_view *v, struct pt_err *err)
{
    const struct trace *t = v->t;
    struct rules *ex;
    enum pt_status rc = exclude_rules(v->o, &ex, err);
    if (rc != PT_OK) {
        rules_free(ex);
        return rc;
    }
    bool any_fold = false;
    for (uint32_t i = 1; i < t->n_functions; i++) {
        const struct trace_function *fn = &t->functions[i];
        const char *file = trace_str(t, fn->file), *func = trace_str(t, fn->qualname);
        enum rule_action a = rules_frame(v->o->rules, NULL, file, *func ? func : trace_str(t, fn->name));
        if (rules_frame(ex, NULL, file, func) == RULE_EXCLUDE)
            a = RULE_EXCLUDE;
        v->function_excluded[i] = a == RULE_EXCLUDE;
        v->function_folded[i] = a == RULE_FOLD;
        any_fold |= a == RULE_FOLD;
    }
    rules_free(ex);
    return any_fold ? export_hide_folded_spans(v, err) : PT_OK;
}

enum pt_status export_view_init(struct export_view *v, const struct trace *t,
                                const struct export_opts *o, struct pt_err *err)
{
    memset(v, 0, sizeof *v);
    v->t = t;
    v->o = o;
    v->thread_ok = calloc(t->n_threads + 1, sizeof *v->thread_ok);
    v->function_excluded = calloc(t->n_functions + 1, sizeof *v->function_excluded);
    v->function_folded = calloc(t->n_functions + 1, sizeof *v->function_folded);
    if (!v->thread_ok || !v->function_excluded || !v->function_folded) {
        export_view_free(v);
        return pt_fail(err, PT_EFAIL, "out of memory");
    }
    for (uint32_t i = 1; i < t->n_threads; i++)
        v->thread_ok[i] = thread_matches(t, i, o);
    enum pt_status rc = decide_functions(v, err);
    if (rc != PT_OK) {
        export_view_free(v);
        return rc;
    }
    uint64_t start = t->start_mono_ns;
    if (t->n_samples && t->samples[0].t_ns < start)
        start = t->samples[0].t_ns;
    v->t0 = start + (uint64_t)(o->from_s > 0 ? o->from_s * 1e9 : 0);
    v->t1 = o->to_s >= 0 ? start + (uint64_t)(o->to_s * 1e9) : UINT64_MAX;
    /* What one sample stands for: the interval actually achieved (a loaded machine samples
     * below the asked rate, and weighting by the nominal period would understate wall time). */
    double hz = t->has_trailer && t->summary.achieved_hz > 0 ? t->summary.achieved_hz : t->rate_hz;
    v->period_ns = hz > 0 ? 1e9 / hz : 1e6;
    for (size_t i = 0; i < t->n_samples; i++)
        v->samples_kept += export_sample_ok(v, &t->samples[i]);
    return PT_OK;
}

void export_view_free(struct export_view *v)
{
    free(v->thread_ok);
    free(v->function_excluded);
    free(v->function_folded);
    free(v->span_hidden);
    v->thread_ok = NULL;
    v->function_excluded = NULL;
    v->function_folded = NULL;
    v->span_hidden = NULL;
}

bool export_sample_ok(const struct export_view *v, const struct trace_sample *s)
{
    if (s->thread >= v->t->n_threads || !v->thread_ok[s->thread])
        return false;
    if (s->t_ns < v->t0 || s->t_ns > v->t1)
        return false;
    if (v->o->no_idle && (s->flags & TRACE_F_IDLE))
        return false;
    if (v->o->gil_only && !(s->flags & TRACE_F_GIL))
        return false;
    return true;
}

bool export_span_ok(const struct export_view *v, const struct tl_span *s)
{
    if (s->thread >= v->t->n_threads || !v->thread_ok[s->thread])
        return false;
    if (s->function < v->t->n_functions && v->function_excluded[s->function])
        return false;
    if (v->span_hidden && s >= v->t->spans && s < v->t->spans + v->t->n_spans &&
        v->span_hidden[s - v->t->spans])
        return false;
    return s->end >= v->t0 && s->begin <= v->t1;
}

size_t export_stack(const struct export_view *v, uint32_t leaf, struct export_frame *out,
                    size_t cap)
{
    const struct trace *t = v->t;
    struct export_frame rev[EXPORT_MAX_DEPTH];
    size_t n = 0;
    /* The trie is walked leaf to root; ids only point backwards, so this ends. */
    for (uint32_t node = leaf; node && node < t->n_stacks && n < EXPORT_MAX_DEPTH;
         node = t->stacks[node].parent) {
        const struct trace_stack_node *sn = &t->stacks[node];
        if (sn->function < t->n_functions && v->function_excluded[sn->function])
            continue;
        rev[n++] = (struct export_frame){sn->function, sn->line};
    }
    /* Root first, a folded frame whose nearest kept caller is folded goes; the kept frames move
     * to rev[w..n), still innermost first. */
    size_t w = n;
    bool in_fold = false;
    for (size_t i = n; i-- > 0;) {
        uint32_t fn = rev[i].function;
        bool folded = fn < t->n_functions && v->function_folded[fn];
        if (folded && in_fold)
            continue;
        in_fold = folded;
        rev[--w] = rev[i];
    }
    n -= w;
    size_t keep = n < cap ? n : cap;
    for (size_t i = 0; i < keep; i++)
        out[i] = rev[w + keep - 1 - i];
    return keep;
}

int export_frame_label(const struct export_view *v, const struct export_frame *f, char *out,
                       size_t cap)
{
    const struct trace *t = v->t;
    if (f->function >= t->n_functions)
        return snprintf(out, cap, "<unknown>");
    const struct trace_function *fn = &t->functions[f->function];
    const struct trace_fn_native *nat = trace_fn_native(t, f->function);
    if (nat) {   /* a C function (--native): "symbol (libfoo.so)", no line */
        const char *mod = trace_str(t, nat->module), *slash = strrchr(mod, '/');
        return snprintf(out, cap, "%s (%s)%s", trace_str(t, fn->name), slash ? slash + 1 : mod,
                        nat->approximate ? " [approximate]" : "");
    }
    return snprintf(out, cap, "%s (%s:%d)", trace_str(t, fn->name), trace_str(t, fn->file),
                    (int)f->line);
}

uint64_t export_span_begin(const struct tl_span *s)
{
    return s->open_begin ? s->begin : s->begin_lo + (s->begin - s->begin_lo) / 2;
}

uint64_t export_span_end(const struct tl_span *s)
{
    return s->open_end ? s->end : s->end + (s->end_hi - s->end) / 2;
}
