/*
 * trace_write.c — recording a .pytrace file: the magic and header chunk at open, records gathered
 * into a pending chunk, that chunk framed ([u32 len][u32 crc32], little-endian) and written with
 * write(2) at least every second so a SIGKILL loses at most a second, the trailer at close.
 * Interning lives in trace_intern.c; the format in docs/file-format.md and output/pytrace.proto.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "output/trace_writer.h"

/* ---- the file ------------------------------------------------------------------------------ */

static enum pt_status write_all(struct trace_writer *w, const void *buf, size_t len,
                                struct pt_err *err)
{
    const uint8_t *p = buf;
    while (len > 0) {
        ssize_t k = write(w->fd, p, len);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0) {
            w->broken = true;   /* a partial frame is on disk: later chunks would be unreachable */
            return pt_fail(err, PT_EFAIL, "cannot write %s: %s", w->path,
                           k < 0 ? strerror(errno) : "no progress");
        }
        p += k;
        len -= (size_t)k;
        w->bytes += (uint64_t)k;
    }
    return PT_OK;
}

static void put_u32le(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

/* Packs c behind its 8-byte frame into the reused output buffer and writes both at once. */
static enum pt_status write_chunk(struct trace_writer *w, const Pytrace__Chunk *c,
                                  struct pt_err *err)
{
    size_t len = pytrace__chunk__get_packed_size(c);
    if (len > UINT32_MAX - 8)
        return pt_fail(err, PT_EFAIL, "%s: a chunk of %zu bytes does not fit a frame", w->path, len);
    if (trace_grow((void **)&w->out, &w->out_cap, len + 8, 1) != 0)
        return pt_fail(err, PT_EFAIL, "%s: out of memory for a %zu-byte chunk", w->path, len);
    pytrace__chunk__pack(c, w->out + 8);
    put_u32le(w->out, (uint32_t)len);
    put_u32le(w->out + 4, (uint32_t)crc32(0L, w->out + 8, (uInt)len));
    return write_all(w, w->out, len + 8, err);
}

/* ---- building the pending chunk ------------------------------------------------------------ */

/* Carves the flush's message structs out of one reused buffer (all are 8-byte multiples). */
static void *carve(char **mp, size_t size)
{
    void *m = *mp;
    *mp += size;
    return m;
}

/* Fills the SpanBlock's columns from the pending rows. Returns 0, or -1 when out of memory (the
 * calls are then lost, and flush reports it). */
static int build_span_block(struct trace_writer *w)
{
    struct trace_span_cols *k = &w->cols;
    size_t n = w->rows.n;
    if (n > k->cap) {
        /* One buffer for all eleven columns: one allocation per growth, not eleven. */
        size_t cap = k->cap ? k->cap : 256;
        while (cap < n)
            cap *= 2;
        const size_t row = 6 * sizeof(uint32_t) + 5 * sizeof(uint64_t);
        uint8_t *b = realloc(k->block, cap * row);
        if (!b) {
            w->oom = true;
            return -1;
        }
        k->block = b;
        k->cap = cap;
        /* The 8-byte columns first, so that each column stays aligned. */
        k->begin = (int64_t *)b;
        k->begin_lo = k->begin + cap;
        k->end = k->begin_lo + cap;
        k->end_hi = k->end + cap;
        k->samples = (uint64_t *)(k->end_hi + cap);
        k->thread = (uint32_t *)(k->samples + cap);
        k->function = k->thread + cap;
        k->depth = k->function + cap;
        k->flags = k->depth + cap;
        k->call_line = (int32_t *)(k->flags + cap);
        k->first_line = k->call_line + cap;
    }
    const struct trace_span_row *r = w->rows.p;
    uint64_t prev = 0;
    for (size_t i = 0; i < n; i++) {
        k->thread[i] = r[i].thread;
        k->function[i] = r[i].function;
        k->depth[i] = r[i].depth;
        k->flags[i] = r[i].flags;
        k->call_line[i] = r[i].call_line;
        k->first_line[i] = r[i].first_line;
        k->begin[i] = (int64_t)(r[i].begin - prev);
        prev = r[i].begin;
        k->begin_lo[i] = r[i].begin_lo;
        k->end[i] = r[i].end;
        k->end_hi[i] = r[i].end_hi;
        k->samples[i] = r[i].samples;
    }
    Pytrace__SpanBlock *m = &k->msg;
    pytrace__span_block__init(m);
    m->n_thread = m->n_function = m->n_depth = m->n_flags = m->n_call_line = n;
    m->n_first_line = m->n_begin = m->n_begin_lo = m->n_end = m->n_end_hi = m->n_samples = n;
    m->thread = k->thread;
    m->function = k->function;
    m->depth = k->depth;
    m->flags = k->flags;
    m->call_line = k->call_line;
    m->first_line = k->first_line;
    m->begin = k->begin;
    m->begin_lo = k->begin_lo;
    m->end = k->end;
    m->end_hi = k->end_hi;
    m->samples = k->samples;
    return 0;
}

/* Points c at everything pending: entries with ids past *_flushed and the record buffers. */
static int build_chunk(struct trace_writer *w, Pytrace__Chunk *c)
{
    size_t ns = w->n_strs - w->strs_flushed, nf = w->n_fns - w->fns_flushed;
    size_t nk = w->n_stacks - w->stacks_flushed, np = w->n_procs - w->procs_flushed;
    size_t nt = w->n_threads - w->threads_flushed;
    size_t bytes = ns * sizeof(Pytrace__StringEntry) + nf * sizeof(Pytrace__Function) +
                   nk * sizeof(Pytrace__StackNode) + np * sizeof(Pytrace__Process) +
                   nt * sizeof(Pytrace__Thread);
    size_t nptr = ns + nf + nk + np + nt + w->renames.n + w->active_threads.n + w->spans.n +
                  w->locals.n +
                  w->active_series.n + w->events.n;
    if (trace_grow(&w->msgs.p, &w->msgs.cap, bytes, 1) != 0 ||
        trace_grow(&w->ptrs.p, &w->ptrs.cap, nptr, sizeof(void *)) != 0)
        return -1;
    char *mp = w->msgs.p;
    void **pp = w->ptrs.p;

    c->n_strings = ns;
    c->strings = (Pytrace__StringEntry **)pp;
    for (uint32_t id = w->strs_flushed; id < w->n_strs; id++) {
        Pytrace__StringEntry *e = carve(&mp, sizeof *e);
        pytrace__string_entry__init(e);
        e->id = id;
        e->value = w->strs[id];
        *pp++ = e;
    }
    c->n_functions = nf;
    c->functions = (Pytrace__Function **)pp;
    for (uint32_t id = w->fns_flushed; id < w->n_fns; id++) {
        Pytrace__Function *e = carve(&mp, sizeof *e);
        pytrace__function__init(e);
        e->id = id;
        e->name = w->fns[id].name;
        e->qualname = w->fns[id].qualname;
        e->file = w->fns[id].file;
        e->first_line = w->fns[id].first_line;
        if (w->fnx && w->fnx[id].kind == TRACE_FN_NATIVE) {
            e->kind = TRACE_FN_NATIVE;
            e->approximate = w->fnx[id].approximate;
            e->module = w->fnx[id].module;
        }
        *pp++ = e;
    }
    c->n_stacks = nk;
    c->stacks = (Pytrace__StackNode **)pp;
    for (uint32_t id = w->stacks_flushed; id < w->n_stacks; id++) {
        Pytrace__StackNode *e = carve(&mp, sizeof *e);
        pytrace__stack_node__init(e);
        e->id = id;
        e->parent = w->stacks[id].parent;
        e->function = w->stacks[id].function;
        e->line = w->stacks[id].line;
        *pp++ = e;
    }
    c->n_processes = np;
    c->processes = (Pytrace__Process **)pp;
    for (uint32_t id = w->procs_flushed; id < w->n_procs; id++) {
        const struct trace_process *p = &w->procs[id];
        Pytrace__Process *e = carve(&mp, sizeof *e);
        pytrace__process__init(e);
        e->id = id;
        e->pid = p->pid;
        e->nspid = p->nspid;
        e->cmdline = p->cmdline;
        e->python_version = p->python_version;
        e->parent_process = p->parent;
        *pp++ = e;
    }
    c->n_threads = nt;
    c->threads = (Pytrace__Thread **)pp;
    for (uint32_t id = w->threads_flushed; id < w->n_threads; id++) {
        const struct trace_thread *t = &w->threads[id];
        Pytrace__Thread *e = carve(&mp, sizeof *e);
        pytrace__thread__init(e);
        e->id = id;
        e->process = t->process;
        e->tid = t->tid;
        e->thread_id = t->thread_id;
        e->name = t->name;
        *pp++ = e;
    }
    c->n_thread_names = w->renames.n;
    c->thread_names = (Pytrace__ThreadName **)pp;
    for (size_t i = 0; i < w->renames.n; i++)
        *pp++ = (Pytrace__ThreadName *)w->renames.p + i;

    c->n_samples = w->active_threads.n;
    c->samples = (Pytrace__SampleBlock **)pp;
    for (size_t i = 0; i < w->active_threads.n; i++) {
        struct trace_tstate *ts = &w->ts[((uint32_t *)w->active_threads.p)[i]];
        ts->blk.n_tick = ts->n;
        ts->blk.tick = ts->tick;
        ts->blk.n_ref = ts->n_ref;
        ts->blk.ref = ts->ref;
        *pp++ = &ts->blk;
    }
    c->n_spans = w->spans.n;
    c->spans = (Pytrace__Span **)pp;
    for (size_t i = 0; i < w->spans.n; i++)
        *pp++ = (Pytrace__Span *)w->spans.p + i;
    for (size_t i = 0; i < w->spans.n && w->span_locals.n == w->spans.n; i++) {
        Pytrace__Span *sp = (Pytrace__Span *)w->spans.p + i;
        const struct trace_lrange *r = (const struct trace_lrange *)w->span_locals.p + i;
        sp->n_locals = r->n;
        sp->locals = (Pytrace__Local **)pp;
        for (uint32_t k = 0; k < r->n; k++)
            *pp++ = (Pytrace__Local *)w->locals.p + r->first + k;
    }
    if (w->rows.n && build_span_block(w) == 0)
        c->span_block = &w->cols.msg;
    c->n_counters = w->active_series.n;
    c->counters = (Pytrace__CounterSeries **)pp;
    for (size_t i = 0; i < w->active_series.n; i++) {
        struct trace_series *s = &w->series[((uint32_t *)w->active_series.p)[i] - 1];
        s->msg.n_dt_ns = s->msg.n_dvalue = s->n;
        s->msg.dt_ns = s->dt;
        s->msg.dvalue = s->dv;
        *pp++ = &s->msg;
    }
    c->n_events = w->events.n;
    c->events = (Pytrace__Event **)pp;
    for (size_t i = 0; i < w->events.n; i++)
        *pp++ = (Pytrace__Event *)w->events.p + i;
    return 0;
}

/* Everything pending was written (or lost with a broken file): start the next chunk, keeping
 * every buffer's capacity. */
static void reset_pending(struct trace_writer *w)
{
    w->strs_flushed = w->n_strs;
    w->fns_flushed = w->n_fns;
    w->stacks_flushed = w->n_stacks;
    w->procs_flushed = w->n_procs;
    w->threads_flushed = w->n_threads;
    for (size_t i = 0; i < w->active_threads.n; i++) {
        struct trace_tstate *ts = &w->ts[((uint32_t *)w->active_threads.p)[i]];
        ts->active = false;
        ts->n = ts->n_ref = 0;
    }
    for (size_t i = 0; i < w->active_series.n; i++) {
        struct trace_series *s = &w->series[((uint32_t *)w->active_series.p)[i] - 1];
        s->active = false;
        s->n = 0;
    }
    w->renames.n = w->spans.n = w->rows.n = w->events.n = 0;
    w->locals.n = w->span_locals.n = 0;
    w->active_threads.n = w->active_series.n = 0;
    w->pending_bytes = 0;
}

static bool nothing_pending(const struct trace_writer *w)
{
    return w->strs_flushed == w->n_strs && w->fns_flushed == w->n_fns &&
           w->stacks_flushed == w->n_stacks && w->procs_flushed == w->n_procs &&
           w->threads_flushed == w->n_threads && !w->renames.n && !w->active_threads.n &&
           !w->spans.n && !w->rows.n && !w->active_series.n && !w->events.n;
}

/* Writes the pending chunk, with the trailer when tr is non-NULL. */
static enum pt_status flush_chunk(struct trace_writer *w, Pytrace__Trailer *tr, struct pt_err *err)
{
    if (w->broken)
        return pt_fail(err, PT_EFAIL, "%s: an earlier write failed; the trace ends there", w->path);
    enum pt_status rc = PT_OK;
    if (!tr && nothing_pending(w)) {
        /* nothing to say */
    } else {
        Pytrace__Chunk c = PYTRACE__CHUNK__INIT;
        c.trailer = tr;
        if (build_chunk(w, &c) != 0)
            rc = pt_fail(err, PT_EFAIL, "%s: out of memory while writing a chunk", w->path);
        else
            rc = write_chunk(w, &c, err);
        reset_pending(w);
    }
    if (rc == PT_OK && w->oom) {
        w->oom = false;     /* reported once: recording goes on with what could be kept */
        rc = pt_fail(err, PT_EFAIL, "%s: out of memory: some trace data was dropped", w->path);
    }
    return rc;
}

enum pt_status trace_flush(struct trace_writer *w, struct pt_err *err)
{
    return flush_chunk(w, NULL, err);
}

enum pt_status trace_maybe_flush(struct trace_writer *w, uint64_t now_ns, struct pt_err *err)
{
    if (now_ns < w->last_flush_ns)
        w->last_flush_ns = now_ns;      /* a caller's clock that went back must not stall us */
    if (now_ns - w->last_flush_ns < TRACE_FLUSH_NS && w->pending_bytes < TRACE_FLUSH_BYTES)
        return PT_OK;
    w->last_flush_ns = now_ns;
    return trace_flush(w, err);
}

uint64_t trace_bytes(const struct trace_writer *w)
{
    return w->bytes;
}

/* ---- records ------------------------------------------------------------------------------- */

static size_t varint_len(uint64_t v)
{
    size_t n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

/* Grows two parallel arrays to the same capacity. */
static int grow2(void **a, size_t ea, void **b, size_t eb, size_t *cap, size_t need)
{
    size_t ca = *cap, cb = *cap;
    if (trace_grow(a, &ca, need, ea) != 0 || trace_grow(b, &cb, need, eb) != 0)
        return -1;
    *cap = ca;
    return 0;
}

void trace_sample(struct trace_writer *w, uint32_t thread, uint64_t t_ns, uint32_t stack,
                  uint8_t flags)
{
    if (!trace_thread_ok(w, thread) || stack >= w->n_stacks)
        return;                         /* a caller's bug; the file must stay loadable */
    struct trace_tstate *ts = &w->ts[thread];
    if (grow2((void **)&ts->tick, sizeof *ts->tick, (void **)&ts->ref, sizeof *ts->ref, &ts->cap,
              ts->n + 1) != 0) {
        w->oom = true;
        return;
    }
    if (!ts->active) {
        if (trace_vec_push(&w->active_threads, &thread, sizeof thread) != 0) {
            w->oom = true;
            return;
        }
        ts->active = true;
        ts->blk.t0_ns = ts->prev_t = t_ns;
        w->pending_bytes += 24;
    }
    /* Whole microseconds from the previous time as the reader will rebuild it, rounded to
     * nearest: the error stays under 0.5 us per sample and never accumulates. */
    uint64_t ahead = t_ns - ts->prev_t;
    bool back = (int64_t)ahead < 0;     /* times went back: the caller broke its promise */
    int64_t mag_us = (int64_t)(((back ? 0 - ahead : ahead) + 500) / 1000);
    int64_t d_us = back ? -mag_us : mag_us;
    ts->prev_t += (uint64_t)d_us * 1000;
    int64_t dt = d_us - (int64_t)w->period_us;
    uint64_t zz = ((uint64_t)dt << 1) ^ (uint64_t)(dt >> 63);
    uint32_t ref = (stack << 3) | (flags & 7u);
    bool changed = ts->n == 0 || ref != ts->prev_ref;
    ts->prev_ref = ref;
    ts->tick[ts->n++] = (zz << 1) | changed;
    w->pending_bytes += varint_len((zz << 1) | changed);
    if (changed) {
        ts->ref[ts->n_ref++] = ref;
        w->pending_bytes += varint_len(ref);
    }
}

void trace_span(struct trace_writer *w, const struct tl_span *span)
{
    if (!trace_thread_ok(w, span->thread))
        return;
    uint32_t open = (span->open_begin ? 1u : 0u) | (span->open_end ? 2u : 0u);
    if (!w->span_msgs && !span->n_locals && !span->locals_flags) {
        /* Deltas wrap modulo 2^64, so any four values (even an unknown begin_lo of 0)
         * round-trip. */
        struct trace_span_row r = {
            span->thread, span->function < w->n_fns ? span->function : 0, span->depth,
            open | (span->off_cpu ? 4u : 0u), span->call_line, span->first_line, span->begin,
            span->samples, (int64_t)(span->begin - span->begin_lo),
            (int64_t)(span->end - span->begin), (int64_t)(span->end_hi - span->begin)};
        if (trace_vec_push(&w->rows, &r, sizeof r) != 0)
            w->oom = true;
        w->pending_bytes += 14;
        return;
    }
    Pytrace__Span s = PYTRACE__SPAN__INIT;
    s.thread = span->thread;
    s.function = span->function < w->n_fns ? span->function : 0;
    s.depth = span->depth;
    s.call_line = span->call_line;
    s.first_line = span->first_line;
    s.begin = span->begin;
    /* Deltas wrap modulo 2^64, so any four values (even an unknown begin_lo of 0) round-trip. */
    s.begin_lo = (int64_t)(span->begin - span->begin_lo);
    s.end = (int64_t)(span->end - span->begin);
    s.end_hi = (int64_t)(span->end_hi - span->begin);
    s.samples = span->samples;
    s.open = open;
    s.off_cpu = span->off_cpu;
    s.locals_flags = span->locals_flags;
    struct trace_lrange r = {(uint32_t)w->locals.n, 0};
    for (uint32_t k = 0; k < span->n_locals && span->locals; k++) {
        const struct tl_local *l = &span->locals[k];
        Pytrace__Local m = PYTRACE__LOCAL__INIT;
        m.name = l->name < w->n_strs ? l->name : 0;
        m.value = l->value < w->n_strs ? l->value : 0;
        m.flags = l->flags;
        if (trace_vec_push(&w->locals, &m, sizeof m) != 0) {
            w->oom = true;
            break;
        }
        r.n++;
        w->pending_bytes += 10;
    }
    if (trace_vec_push(&w->spans, &s, sizeof s) != 0 ||
        trace_vec_push(&w->span_locals, &r, sizeof r) != 0)
        w->oom = true;
    w->pending_bytes += 40;
}

void trace_counter(struct trace_writer *w, enum trace_counter_kind kind, uint32_t owner,
                   uint64_t t_ns, int64_t value)
{
    bool per_thread = kind == TRACE_C_CPU_USER_NS || kind == TRACE_C_CPU_SYS_NS;
    if (per_thread ? !trace_thread_ok(w, owner)
                   : kind == TRACE_C_RSS_BYTES && !trace_process_ok(w, owner))
        return;
    uint32_t sid = trace_series_id(w, (uint32_t)kind, owner);
    if (!sid)
        return;
    struct trace_series *s = &w->series[sid - 1];
    if (grow2((void **)&s->dt, sizeof *s->dt, (void **)&s->dv, sizeof *s->dv, &s->cap,
              s->n + 1) != 0 ||
        (!s->active && trace_vec_push(&w->active_series, &sid, sizeof sid) != 0)) {
        w->oom = true;
        return;
    }
    if (!s->active) {
        s->active = true;
        s->prev_t = 0;
        s->prev_v = 0;
        w->pending_bytes += 24;
    }
    s->dt[s->n] = (int64_t)(t_ns - s->prev_t);
    s->dv[s->n] = (int64_t)((uint64_t)value - (uint64_t)s->prev_v);
    s->n++;
    s->prev_t = t_ns;
    s->prev_v = value;
    w->pending_bytes += 8;
}

void trace_event(struct trace_writer *w, enum trace_event_kind kind, uint32_t process,
                 uint32_t thread, uint64_t t_ns, int64_t value, const char *text)
{
    if (!trace_process_ok(w, process) || (thread && !trace_thread_ok(w, thread)))
        return;
    Pytrace__Event e = PYTRACE__EVENT__INIT;
    e.kind = (uint32_t)kind;
    e.process = process;
    e.thread = thread;
    e.t_ns = t_ns;
    e.value = value;
    e.text = trace_string(w, text);
    if (trace_vec_push(&w->events, &e, sizeof e) != 0)
        w->oom = true;
    w->pending_bytes += 24;
}

/* ---- open and close ------------------------------------------------------------------------ */

/* A heap copy of s made valid UTF-8 (NULL when out of memory; NULL s gives ""). */
static char *header_text(struct trace_writer *w, const char *s)
{
    const char *v = trace_valid_text(w, s ? s : "");
    return v ? strdup(v) : NULL;
}

static enum pt_status write_header(struct trace_writer *w, const struct trace_meta *m,
                                   struct pt_err *err)
{
    enum { NTEXT = 8 };
    size_t ntext = NTEXT + 2 * m->n_tags;
    char **text = calloc(ntext, sizeof *text);
    Pytrace__Tag *tags = calloc(m->n_tags ? m->n_tags : 1, sizeof *tags);
    Pytrace__Tag **tagp = calloc(m->n_tags ? m->n_tags : 1, sizeof *tagp);
    enum pt_status rc = PT_OK;
    if (!text || !tags || !tagp) {
        rc = pt_fail(err, PT_EFAIL, "%s: out of memory writing the header", w->path);
        goto out;
    }
    const char *src[NTEXT] = { m->name, m->python_version, m->python_binary, m->cmdline,
                               m->host, m->pytrace_version, m->filters,
                               m->recording_id };
    for (size_t i = 0; i < ntext; i++) {
        const struct trace_tag *tg = i >= NTEXT ? &m->tags[(i - NTEXT) / 2] : NULL;
        text[i] = header_text(w, tg ? ((i - NTEXT) % 2 ? tg->value : tg->key) : src[i]);
        if (!text[i]) {
            rc = pt_fail(err, PT_EFAIL, "%s: out of memory writing the header", w->path);
            goto out;
        }
    }
    Pytrace__Header h = PYTRACE__HEADER__INIT;
    h.pid = m->pid;
    h.n_nspid = m->nspid ? m->n_nspid : 0;
    h.nspid = (int64_t *)m->nspid;
    h.name = text[0];
    h.python_version = text[1];
    h.python_binary = text[2];
    h.cmdline = text[3];
    h.host = text[4];
    h.pytrace_version = text[5];
    h.filters = text[6];
    h.recording_id = text[7];
    h.rotation_seq = m->rotation_seq;
    h.backend = (char *)(m->backend ? m->backend : "");
    h.start_wall_ns = m->start_wall_ns;
    h.start_mono_ns = m->start_mono_ns;
    h.rate_hz = m->rate_hz;
    h.blocking = m->blocking;
    h.native = m->native;
    h.locals = m->locals;
    h.n_tags = m->n_tags;
    h.tags = tagp;
    for (size_t i = 0; i < m->n_tags; i++) {
        pytrace__tag__init(&tags[i]);
        tags[i].key = text[NTEXT + 2 * i];
        tags[i].value = text[NTEXT + 2 * i + 1];
        tagp[i] = &tags[i];
    }
    Pytrace__Chunk c = PYTRACE__CHUNK__INIT;
    c.header = &h;
    rc = write_all(w, TRACE_MAGIC, 8, err);
    if (rc == PT_OK)
        rc = write_chunk(w, &c, err);
out:
    for (size_t i = 0; text && i < ntext; i++)
        free(text[i]);
    free(text);
    free(tags);
    free(tagp);
    return rc;
}

static void writer_free(struct trace_writer *w)
{
    trace_intern_free(w);
    free(w->renames.p);
    free(w->spans.p);
    free(w->rows.p);
    free(w->cols.block);
    free(w->locals.p);
    free(w->span_locals.p);
    free(w->events.p);
    free(w->active_threads.p);
    free(w->active_series.p);
    free(w->msgs.p);
    free(w->ptrs.p);
    free(w->out);
    free(w->path);
    free(w);
}

enum pt_status trace_writer_open(struct trace_writer **out, const char *path, bool overwrite,
                                 const struct trace_meta *meta, struct pt_err *err)
{
    static const struct trace_meta empty = { .rate_hz = 0 };
    *out = NULL;
    if (!meta)
        meta = &empty;
    struct trace_writer *w = calloc(1, sizeof *w);
    if (!w || !(w->path = strdup(path))) {
        free(w);
        return pt_fail(err, PT_EFAIL, "out of memory opening %s", path);
    }
    /* Ids start at 1: index 0 of every table is a placeholder that is never written. */
    w->n_strs = w->n_fns = w->n_stacks = w->n_procs = w->n_threads = 1;
    w->strs_flushed = w->fns_flushed = w->stacks_flushed = w->procs_flushed = 1;
    w->threads_flushed = 1;
    double period = meta->rate_hz > 0 ? 1e6 / meta->rate_hz : 0;
    w->period_us = period >= UINT32_MAX ? UINT32_MAX : (uint32_t)(period + 0.5);
    w->last_flush_ns = meta->start_mono_ns;

    /* "-": standard output, for a pipe (the writer never seeks), never a terminal. */
    bool to_stdout = strcmp(path, "-") == 0;
    if (to_stdout && isatty(STDOUT_FILENO)) {
        writer_free(w);
        return pt_fail(err, PT_EUSAGE, "-o -: standard output is a terminal; redirect it to a "
                       "file or pipe, or name a file");
    }
    int flags = O_WRONLY | O_CREAT | O_CLOEXEC | (overwrite ? O_TRUNC : O_EXCL);
    w->fd = to_stdout ? fcntl(STDOUT_FILENO, F_DUPFD_CLOEXEC, 0) : open(path, flags, 0600);
    if (w->fd < 0) {
        int e = errno;
        writer_free(w);
        if (e == EEXIST)
            return pt_fail(err, PT_EFAIL, "%s already exists; not overwriting it", path);
        return pt_fail(err, PT_EFAIL, "cannot create %s: %s", path, strerror(e));
    }
    /* The trace holds the target's command line and code paths: keep it private even when we
     * reuse an existing file or the umask is lax. Only a regular file: -o naming a device or a
     * FIFO (/dev/null, a pipe to another program) writes into it as it is, and it is never
     * removed, whatever happens. */
    struct stat st;
    bool regular = !to_stdout && fstat(w->fd, &st) == 0 && S_ISREG(st.st_mode);
    enum pt_status rc = PT_OK;
    if (regular && fchmod(w->fd, 0600) != 0)
        rc = pt_fail(err, PT_EFAIL, "cannot chmod %s: %s", path, strerror(errno));
    if (rc == PT_OK)
        rc = write_header(w, meta, err);
    w->span_msgs = meta->locals;   /* --locals: every call a Span message, in order */
    if (rc != PT_OK) {
        close(w->fd);
        if (regular)
            unlink(path);
        writer_free(w);
        return rc;
    }
    *out = w;
    return PT_OK;
}

enum pt_status trace_writer_close(struct trace_writer *w, const struct trace_summary *sum,
                                  struct pt_err *err)
{
    if (!w)
        return PT_OK;
    Pytrace__Trailer tr = PYTRACE__TRAILER__INIT;
    tr.exit_status = INT64_MIN;
    if (sum) {
        tr.end_mono_ns = sum->end_mono_ns;
        tr.samples = sum->samples;
        tr.walks = sum->walks;
        tr.errors = sum->errors;
        tr.missed = sum->missed;
        tr.overruns = sum->overruns;
        tr.achieved_hz = sum->achieved_hz;
        tr.busy_ns = sum->busy_ns;
        tr.exit_status = sum->exit_status;
        tr.redacted = sum->redacted;
        tr.dropped = sum->dropped;
        tr.excluded = sum->excluded;
    }
    enum pt_status rc = flush_chunk(w, &tr, err);
    /* EINVAL: the file lives where fsync means nothing (a pipe-like target); not a failure. */
    if (fsync(w->fd) != 0 && errno != EINVAL && rc == PT_OK)
        rc = pt_fail(err, PT_EFAIL, "cannot sync %s: %s", w->path, strerror(errno));
    if (close(w->fd) != 0 && rc == PT_OK)
        rc = pt_fail(err, PT_EFAIL, "cannot close %s: %s", w->path, strerror(errno));
    writer_free(w);
    return rc;
}
