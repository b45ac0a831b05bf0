/*
 * export_ndjson.c — one JSON object per line: a "trace" header, then every "thread", "span"
 * and "sample" (and "event"), for jq, pandas or a quick script. Written with jansson.
 */
#include "output/export.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

/* Serialised stacks by leaf id, direct-mapped: a recording repeats a few thousand stacks, and
 * building each sample's stack as JSON objects was nearly all of the export's time. */
#define STACK_CACHE 4096

struct stack_cache {
    uint32_t leaf[STACK_CACHE];
    char *json[STACK_CACHE];
};

static int emit(FILE *out, json_t *obj)
{
    int rc = json_dumpf(obj, out, JSON_COMPACT | JSON_ENSURE_ASCII);
    json_decref(obj);
    fputc('\n', out);
    return rc;
}

static const char *thread_name(const struct trace *t, uint32_t id)
{
    return id < t->n_threads ? trace_str(t, t->threads[id].name) : "";
}

static json_int_t thread_tid(const struct trace *t, uint32_t id)
{
    return id < t->n_threads ? (json_int_t)t->threads[id].tid : -1;
}

static json_int_t thread_pid(const struct trace *t, uint32_t id)
{
    if (id >= t->n_threads || t->threads[id].process >= t->n_processes)
        return -1;
    return (json_int_t)t->processes[t->threads[id].process].pid;
}

static json_t *stack_json(const struct export_view *v, uint32_t leaf, struct export_frame *frames)
{
    const struct trace *t = v->t;
    json_t *arr = json_array();
    size_t depth = export_stack(v, leaf, frames, EXPORT_MAX_DEPTH);
    for (size_t d = 0; d < depth; d++) {
        const struct trace_function *fn = &t->functions[frames[d].function];
        json_array_append_new(arr, json_pack("{s:s, s:s, s:i}", "function", trace_str(t, fn->name),
                                             "file", trace_str(t, fn->file), "line",
                                             (int)frames[d].line));
    }
    return arr;
}

/* The stack of leaf as compact JSON text, from the cache or serialised now (NULL: no memory). */
static const char *stack_text(const struct export_view *v, struct stack_cache *c, uint32_t leaf,
                              struct export_frame *frames)
{
    uint32_t slot = leaf % STACK_CACHE;
    if (c->json[slot] && c->leaf[slot] == leaf)
        return c->json[slot];
    json_t *arr = stack_json(v, leaf, frames);
    char *text = json_dumps(arr, JSON_COMPACT | JSON_ENSURE_ASCII);
    json_decref(arr);
    if (!text)
        return NULL;
    free(c->json[slot]);
    c->json[slot] = text;
    c->leaf[slot] = leaf;
    return text;
}

static void stack_cache_free(struct stack_cache *c)
{
    for (size_t i = 0; i < STACK_CACHE; i++)
        free(c->json[i]);
    free(c);
}

/* A span's variables (--locals): [{name, value, arg, redacted}], in slot order. */
static json_t *locals_json(const struct trace *t, const struct tl_span *s)
{
    json_t *arr = json_array();
    for (uint32_t k = 0; k < s->n_locals && s->locals; k++) {
        const struct tl_local *l = &s->locals[k];
        json_array_append_new(arr, json_pack("{s:s, s:s, s:b, s:b}", "name",
                                             trace_str(t, l->name), "value",
                                             trace_str(t, l->value), "arg",
                                             (l->flags & TL_LOCAL_ARG) != 0, "redacted",
                                             (l->flags & TL_LOCAL_REDACTED) != 0));
    }
    return arr;
}

enum pt_status export_ndjson(const struct export_view *v, FILE *out, struct pt_err *err)
{
    const struct trace *t = v->t;
    static struct export_frame frames[EXPORT_MAX_DEPTH];
    int bad = 0;
    bad |= emit(out, json_pack("{s:s, s:I, s:s, s:s, s:I, s:I, s:f, s:b}", "type", "trace", "pid",
                               (json_int_t)t->pid, "python_version", t->python_version ? t->python_version : "",
                               "cmdline", t->cmdline ? t->cmdline : "", "start_wall_ns",
                               (json_int_t)t->start_wall_ns, "start_mono_ns",
                               (json_int_t)t->start_mono_ns, "rate_hz", t->rate_hz, "truncated",
                               t->truncated));
    for (uint32_t i = 1; i < t->n_threads; i++) {
        if (!v->thread_ok[i])
            continue;
        bad |= emit(out, json_pack("{s:s, s:i, s:I, s:I, s:s}", "type", "thread", "thread", (int)i,
                                   "tid", thread_tid(t, i), "pid", thread_pid(t, i), "name",
                                   thread_name(t, i)));
    }
    for (size_t i = 0; i < t->n_spans; i++) {
        const struct tl_span *s = &t->spans[i];
        if (!export_span_ok(v, s) || s->function >= t->n_functions)
            continue;
        const struct trace_function *fn = &t->functions[s->function];
        json_t *o = json_pack("{s:s, s:i, s:I, s:I, s:s, s:s, s:s, s:s, s:i, s:i, s:i}",
                              "type", "span", "thread", (int)s->thread, "tid",
                              thread_tid(t, s->thread), "pid", thread_pid(t, s->thread),
                              "thread_name", thread_name(t, s->thread), "function",
                              trace_str(t, fn->name), "qualname", trace_str(t, fn->qualname),
                              "file", trace_str(t, fn->file), "first_line", (int)fn->first_line,
                              "call_line", (int)s->call_line, "depth", (int)s->depth);
        json_object_set_new(o, "begin_lo_ns", json_integer((json_int_t)s->begin_lo));
        json_object_set_new(o, "begin_ns", json_integer((json_int_t)s->begin));
        json_object_set_new(o, "end_ns", json_integer((json_int_t)s->end));
        json_object_set_new(o, "end_hi_ns", json_integer((json_int_t)s->end_hi));
        json_object_set_new(o, "start_ns", json_integer((json_int_t)export_span_begin(s)));
        json_object_set_new(o, "stop_ns", json_integer((json_int_t)export_span_end(s)));
        json_object_set_new(o, "samples", json_integer((json_int_t)s->samples));
        json_object_set_new(o, "open_begin", json_boolean(s->open_begin));
        json_object_set_new(o, "open_end", json_boolean(s->open_end));
        if (s->n_locals || s->locals_flags)
            json_object_set_new(o, "locals", locals_json(t, s));
        if (s->off_cpu)
            json_object_set_new(o, "off_cpu", json_true());
        bad |= emit(out, o);
    }
    struct stack_cache *cache = calloc(1, sizeof *cache);
    if (!cache)
        return pt_fail(err, PT_EFAIL, "out of memory");
    /* Sample lines are the bulk: printed directly (same keys and order as the objects above). */
    for (size_t i = 0; i < t->n_samples; i++) {
        const struct trace_sample *s = &t->samples[i];
        if (!export_sample_ok(v, s))
            continue;
        const char *stack = stack_text(v, cache, s->stack, frames);
        if (!stack) {
            bad = 1;
            break;
        }
        fprintf(out,
                "{\"type\":\"sample\",\"thread\":%u,\"tid\":%" PRId64 ",\"t_ns\":%" PRIu64
                ",\"gil\":%s,\"idle\":%s,\"bad\":%s,\"stack\":%s}\n",
                (unsigned)s->thread, (int64_t)thread_tid(t, s->thread), (uint64_t)s->t_ns,
                (s->flags & TRACE_F_GIL) ? "true" : "false",
                (s->flags & TRACE_F_IDLE) ? "true" : "false",
                (s->flags & TRACE_F_BAD) ? "true" : "false", stack);
    }
    stack_cache_free(cache);
    for (size_t i = 0; i < t->n_events; i++) {
        const struct trace_event *e = &t->events[i];
        bad |= emit(out, json_pack("{s:s, s:i, s:i, s:i, s:I, s:I, s:s}", "type", "event", "kind",
                                   (int)e->kind, "process", (int)e->process, "thread",
                                   (int)e->thread, "t_ns", (json_int_t)e->t_ns, "value",
                                   (json_int_t)e->value, "text", trace_str(t, e->text)));
    }
    if (bad || ferror(out))
        return pt_fail(err, PT_EFAIL, "write error while exporting NDJSON");
    return PT_OK;
}
