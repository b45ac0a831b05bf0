/*
 * record_locals.c — --locals for the recorder: when the timeline sees a call for the first time,
 * its variables are read (py_locals_read, with the value rules' redaction) and interned into a
 * block that the span carries until it is written; written spans give their blocks back.
 */
#include "output/record_int.h"

#include <stddef.h>
#include <stdlib.h>
#include <time.h>

static struct rec_lblock *lblock_get(struct rec_sink *s)
{
    struct rec_lblock *b = s->lfree;
    if (b) {
        s->lfree = b->next_free;
        return b;
    }
    b = malloc(sizeof *b);
    if (b) {
        b->next_all = s->lall;
        s->lall = b;
    }
    return b;
}

/* A call seen for the first time: with --locals, keep its variables as they are now. */
static void begin_span(struct tl_span *span, size_t index, void *ctx)
{
    struct rec_sink *s = ctx;
    const struct py_thread *pt = s->cur_pt;
    if (!s->lbuf || !pt || index >= s->cur_n)
        return;
    const struct py_frame *f = s->cur_frames[index];
    struct pt_err err;
    if (!f || !f->code)
        return;
    struct timespec t0, t1;
    uint64_t reads = s->cur_p->mem->reads;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    enum pt_status rc = py_locals_read(s->cur_p, pt, f, s->locals_rules, s->lbuf, &err);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    s->lstats.captures++;
    s->lstats.ns += (uint64_t)((t1.tv_sec - t0.tv_sec) * 1000000000LL + (t1.tv_nsec - t0.tv_nsec));
    s->lstats.reads += s->cur_p->mem->reads - reads;
    if (rc != PT_OK) {
        s->lstats.failed++;
        span->locals_flags = TL_LOCALS_UNREADABLE;
        return;
    }
    s->redacted += s->lbuf->redacted;
    s->dropped += s->lbuf->dropped;
    span->locals_flags = s->lbuf->truncated ? TL_LOCALS_TRUNCATED : 0;
    struct rec_lblock *b = s->lbuf->n ? lblock_get(s) : NULL;
    if (!b)
        return;
    for (uint32_t i = 0; i < s->lbuf->n; i++) {
        const struct py_local *l = &s->lbuf->items[i];
        b->items[i] = (struct tl_local){
            trace_string(s->w, l->name), trace_string(s->w, l->value),
            (l->arg ? TL_LOCAL_ARG : 0u) | (l->redacted ? TL_LOCAL_REDACTED : 0u)};
    }
    span->locals = b->items;
    span->n_locals = s->lbuf->n;
}

void rec_locals_release(struct rec_sink *s, const struct tl_local *items)
{
    struct rec_lblock *b = (struct rec_lblock *)(void *)((char *)items -
                                                         offsetof(struct rec_lblock, items));
    b->next_free = s->lfree;
    s->lfree = b;
}

void rec_locals_free(struct rec_sink *s)
{
    while (s->lall) {
        struct rec_lblock *b = s->lall;
        s->lall = b->next_all;
        free(b);
    }
    free(s->lbuf);
    s->lbuf = NULL;
}

struct rec_locals_stats rec_sink_locals_stats(const struct rec_sink *s)
{
    return s->lstats;
}

enum pt_status rec_sink_capture_locals(struct rec_sink *s, const struct rules *rules,
                                       struct pt_err *err)
{
    if (!s->lbuf && !(s->lbuf = malloc(sizeof *s->lbuf)))
        return pt_fail(err, PT_EFAIL, "out of memory");
    s->locals_rules = rules;
    tl_set_begin_hook(s->tl, begin_span);
    return PT_OK;
}
