/*
 * export_common.c — the selection every exporter shares (see export.h): threads by name or tid,
 * a time window, excluded files/modules, idle and GIL filters, and stacks with excluded frames
 * taken out.
 */
#include "output/export.h"

#include <fnmatch.h>
#include <stdlib.h>
#include <string.h>

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

/* "/usr/lib/python3.11/asyncio/events.py" is module "asyncio.events" for a pattern "asyncio.*":
 * the pattern is tried on the path and on every dotted suffix of it ("pkg.*" also matching
 * "pkg" itself, so "threading.*" excludes threading.py). */
static bool file_matches(const char *file, const char *pattern)
{
    if (fnmatch(pattern, file, 0) == 0)
        return true;
    char dotted[4096];
    size_t n = strlen(file);
    if (n >= sizeof dotted)
        return false;
    memcpy(dotted, file, n + 1);
    if (n > 3 && !strcmp(dotted + n - 3, ".py"))
        dotted[n - 3] = '\0';
    for (char *p = dotted; *p; p++)
        if (*p == '/')
            *p = '.';
    /* "pkg.*" also names the package (or module) pkg itself. */
    size_t plen = strlen(pattern);
    bool star = plen > 2 && !strcmp(pattern + plen - 2, ".*");
    for (char *p = dotted; p; p = strchr(p + 1, '.')) {
        const char *suffix = *p == '.' ? p + 1 : p;
        if (!*suffix)
            continue;
        if (fnmatch(pattern, suffix, 0) == 0 ||
            (star && strlen(suffix) == plen - 2 && !strncmp(suffix, pattern, plen - 2)))
            return true;
    }
    return false;
}

enum pt_status export_view_init(struct export_view *v, const struct trace *t,
                                const struct export_opts *o, struct pt_err *err)
{
    memset(v, 0, sizeof *v);
    v->t = t;
    v->o = o;
    v->thread_ok = calloc(t->n_threads + 1, sizeof *v->thread_ok);
    v->function_excluded = calloc(t->n_functions + 1, sizeof *v->function_excluded);
    if (!v->thread_ok || !v->function_excluded) {
        export_view_free(v);
        return pt_fail(err, PT_EFAIL, "out of memory");
    }
    for (uint32_t i = 1; i < t->n_threads; i++)
        v->thread_ok[i] = thread_matches(t, i, o);
    for (uint32_t i = 1; i < t->n_functions; i++)
        for (size_t k = 0; k < o->n_exclude && !v->function_excluded[i]; k++)
            v->function_excluded[i] = file_matches(trace_str(t, t->functions[i].file), o->exclude[k]);
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
    v->thread_ok = NULL;
    v->function_excluded = NULL;
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
    size_t keep = n < cap ? n : cap;
    for (size_t i = 0; i < keep; i++)
        out[i] = rev[keep - 1 - i];
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
