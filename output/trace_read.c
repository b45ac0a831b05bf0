/*
 * trace_read.c — loading a .pytrace file into a struct trace. Frame by frame: the length must fit
 * the file, the CRC-32 must match, the payload must unpack, and the Chunk must be consistent (each
 * id it defines is the next one, each id it uses exists) before any of it is applied. The first
 * chunk that fails ends the load: what came before is kept and the trace is marked truncated.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "pytrace.pb-c.h"   /* generated from output/pytrace.proto into the build dir */
#include "output/trace.h"
#include "readers/pystr.h"

/* Table capacities while loading (struct trace only carries counts). */
struct loader {
    struct trace *t;
    size_t cap_strings, cap_functions, cap_stacks, cap_processes, cap_threads, cap_fn_native;
    size_t cap_samples, cap_spans, cap_counters, cap_events, cap_locals;
    uint32_t *span_locals;    /* per span: index of its first local in t->locals (fixed up at the
                                 end, since t->locals moves while it grows) */
    size_t cap_span_locals;
};

static int grow(void **p, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return 0;
    size_t ncap = *cap ? *cap : 16;
    while (ncap < need) {
        if (ncap > SIZE_MAX / 2 / elem)
            return -1;
        ncap *= 2;
    }
    void *np = realloc(*p, ncap * elem);
    if (!np)
        return -1;
    *p = np;
    *cap = ncap;
    return 0;
}

#define GROW(L, field, need) grow((void **)&(L)->t->field, &(L)->cap_##field, (need), \
                                  sizeof *(L)->t->field)

/* A heap copy of s as valid UTF-8: the writer guarantees it, but a file comes from anywhere and
 * the CLI hands these strings to JSON encoders that refuse anything else. */
static char *valid_dup(const char *s)
{
    size_t n = strlen(s);
    char *out = malloc(3 * n + 1);
    if (out)
        pystr_bytes_to_utf8((const uint8_t *)s, n, out, 3 * n + 1);
    return out;
}

/* ---- checking a chunk before applying it --------------------------------------------------- */

static bool counter_owner_ok(uint32_t kind, uint32_t owner, size_t nt, size_t np)
{
    if (kind == TRACE_C_CPU_USER_NS || kind == TRACE_C_CPU_SYS_NS)
        return owner != 0 && owner < nt;
    if (kind == TRACE_C_RSS_BYTES)
        return owner < np;
    return true;               /* a kind this reader does not know: kept, not interpreted */
}

static const char *check_blocks(const Pytrace__Chunk *c, size_t nt, size_t nk)
{
    for (size_t i = 0; i < c->n_samples; i++) {
        const Pytrace__SampleBlock *b = c->samples[i];
        if (b->thread == 0 || b->thread >= nt)
            return "a sample block names an unknown thread";
        size_t changed = 0;
        for (size_t k = 0; k < b->n_tick; k++)
            changed += b->tick[k] & 1;
        if (changed != b->n_ref)
            return "a sample block's changed samples and stack references disagree";
        if (b->n_tick > 0 && !(b->tick[0] & 1))
            return "a sample block starts with a repeat of an earlier sample";
        for (size_t k = 0; k < b->n_ref; k++)
            if ((b->ref[k] >> 3) >= nk)
                return "a sample refers to an unknown stack";
    }
    return NULL;
}

/* Why c cannot be applied to t, or NULL when it can. n* are the table sizes after c. */
static const char *check_chunk(const struct trace *t, const Pytrace__Chunk *c, bool first)
{
    if (first != (c->header != NULL))
        return first ? "the first chunk has no header" : "a header outside the first chunk";
    size_t ns = t->n_strings + c->n_strings, nf = t->n_functions + c->n_functions;
    size_t nk = t->n_stacks + c->n_stacks, np = t->n_processes + c->n_processes;
    size_t nt = t->n_threads + c->n_threads;
    if (ns > UINT32_MAX || nf > UINT32_MAX || nk > UINT32_MAX || np > UINT32_MAX ||
        nt > UINT32_MAX)
        return "too many entries";
    for (size_t i = 0; i < c->n_strings; i++)
        if (c->strings[i]->id != t->n_strings + i)
            return "string ids out of sequence";
    for (size_t i = 0; i < c->n_functions; i++) {
        const Pytrace__Function *f = c->functions[i];
        if (f->id != t->n_functions + i)
            return "function ids out of sequence";
        if (f->name >= ns || f->qualname >= ns || f->file >= ns || f->module >= ns)
            return "a function refers to an unknown string";
        if (f->kind > TRACE_FN_NATIVE)
            return "a function of an unknown kind";
    }
    for (size_t i = 0; i < c->n_stacks; i++) {
        const Pytrace__StackNode *k = c->stacks[i];
        if (k->id != t->n_stacks + i)
            return "stack ids out of sequence";
        if (k->parent >= k->id || k->function >= nf)
            return "a stack node refers to an unknown parent or function";
    }
    for (size_t i = 0; i < c->n_processes; i++) {
        const Pytrace__Process *p = c->processes[i];
        if (p->id != t->n_processes + i)
            return "process ids out of sequence";
        if (p->cmdline >= ns || p->python_version >= ns || p->parent_process >= p->id)
            return "a process refers to an unknown string or parent";
    }
    for (size_t i = 0; i < c->n_threads; i++) {
        const Pytrace__Thread *th = c->threads[i];
        if (th->id != t->n_threads + i)
            return "thread ids out of sequence";
        if (th->process >= np || th->name >= ns)
            return "a thread refers to an unknown process or string";
    }
    for (size_t i = 0; i < c->n_thread_names; i++)
        if (c->thread_names[i]->thread == 0 || c->thread_names[i]->thread >= nt ||
            c->thread_names[i]->name >= ns)
            return "a rename refers to an unknown thread or string";
    const char *why = check_blocks(c, nt, nk);
    if (why)
        return why;
    for (size_t i = 0; i < c->n_spans; i++) {
        if (c->spans[i]->thread == 0 || c->spans[i]->thread >= nt || c->spans[i]->function >= nf)
            return "a span refers to an unknown thread or function";
        for (size_t k = 0; k < c->spans[i]->n_locals; k++)
            if (c->spans[i]->locals[k]->name >= ns || c->spans[i]->locals[k]->value >= ns)
                return "a span's local variable refers to an unknown string";
    }
    const Pytrace__SpanBlock *b = c->span_block;
    if (b) {
        size_t n = b->n_thread;
        if (b->n_function != n || b->n_depth != n || b->n_call_line != n || b->n_first_line != n ||
            b->n_begin != n || b->n_begin_lo != n || b->n_end != n || b->n_end_hi != n ||
            b->n_samples != n || b->n_flags != n)
            return "a span block's columns differ in length";
        for (size_t i = 0; i < n; i++)
            if (b->thread[i] == 0 || b->thread[i] >= nt || b->function[i] >= nf)
                return "a span refers to an unknown thread or function";
    }
    for (size_t i = 0; i < c->n_counters; i++) {
        const Pytrace__CounterSeries *s = c->counters[i];
        if (s->n_dt_ns != s->n_dvalue)
            return "a counter series has unequal time and value counts";
        if (!counter_owner_ok(s->kind, s->owner, nt, np))
            return "a counter refers to an unknown owner";
    }
    for (size_t i = 0; i < c->n_events; i++) {
        const Pytrace__Event *e = c->events[i];
        if (e->process >= np || e->thread >= nt || e->text >= ns)
            return "an event refers to an unknown process, thread or string";
    }
    return NULL;
}

/* ---- applying a checked chunk -------------------------------------------------------------- */

static int apply_header(struct trace *t, const Pytrace__Header *h)
{
    t->pid = h->pid;
    t->start_wall_ns = h->start_wall_ns;
    t->start_mono_ns = h->start_mono_ns;
    t->rate_hz = h->rate_hz;
    t->blocking = h->blocking;
    t->native = h->native;
    t->has_locals = h->locals;
    if (h->n_nspid) {
        if (!(t->nspid = malloc(h->n_nspid * sizeof *t->nspid)))
            return -1;
        memcpy(t->nspid, h->nspid, h->n_nspid * sizeof *t->nspid);
        t->n_nspid = h->n_nspid;
    }
    if (!(t->name = valid_dup(h->name)) || !(t->python_version = valid_dup(h->python_version)) ||
        !(t->python_binary = valid_dup(h->python_binary)) || !(t->cmdline = valid_dup(h->cmdline)) ||
        !(t->host = valid_dup(h->host)) || !(t->pytrace_version = valid_dup(h->pytrace_version)) ||
        !(t->filters = valid_dup(h->filters)) || !(t->recording_id = valid_dup(h->recording_id)) ||
        !(t->backend = valid_dup(h->backend)))
        return -1;
    t->rotation_seq = h->rotation_seq;
    if (h->n_tags) {
        t->tag_keys = calloc(h->n_tags, sizeof *t->tag_keys);
        t->tag_values = calloc(h->n_tags, sizeof *t->tag_values);
        if (!t->tag_keys || !t->tag_values)
            return -1;
        t->n_tags = h->n_tags;
        for (size_t i = 0; i < h->n_tags; i++)
            if (!(t->tag_keys[i] = valid_dup(h->tags[i]->key)) ||
                !(t->tag_values[i] = valid_dup(h->tags[i]->value)))
                return -1;
    }
    return 0;
}

static int apply_tables(struct loader *L, const Pytrace__Chunk *c)
{
    struct trace *t = L->t;
    if (GROW(L, strings, t->n_strings + c->n_strings) || GROW(L, functions, t->n_functions +
        c->n_functions) || GROW(L, stacks, t->n_stacks + c->n_stacks) ||
        GROW(L, fn_native, t->n_functions + c->n_functions) ||
        GROW(L, processes, t->n_processes + c->n_processes) ||
        GROW(L, threads, t->n_threads + c->n_threads))
        return -1;
    for (size_t i = 0; i < c->n_strings; i++) {
        if (!(t->strings[t->n_strings] = valid_dup(c->strings[i]->value)))
            return -1;
        t->n_strings++;
    }
    for (size_t i = 0; i < c->n_functions; i++) {
        const Pytrace__Function *f = c->functions[i];
        t->fn_native[t->n_functions] = (struct trace_fn_native){f->kind, f->approximate, f->module};
        t->functions[t->n_functions++] = (struct trace_function){
            .name = f->name, .qualname = f->qualname, .file = f->file,
            .first_line = f->first_line };
    }
    for (size_t i = 0; i < c->n_stacks; i++) {
        const Pytrace__StackNode *k = c->stacks[i];
        t->stacks[t->n_stacks++] = (struct trace_stack_node){
            .parent = k->parent, .function = k->function, .line = k->line };
    }
    for (size_t i = 0; i < c->n_processes; i++) {
        const Pytrace__Process *p = c->processes[i];
        t->processes[t->n_processes++] = (struct trace_process){
            .pid = p->pid, .nspid = p->nspid, .cmdline = p->cmdline,
            .python_version = p->python_version, .parent = p->parent_process };
    }
    for (size_t i = 0; i < c->n_threads; i++) {
        const Pytrace__Thread *th = c->threads[i];
        t->threads[t->n_threads++] = (struct trace_thread){
            .process = th->process, .tid = th->tid, .thread_id = th->thread_id,
            .name = th->name };
    }
    for (size_t i = 0; i < c->n_thread_names; i++)
        t->threads[c->thread_names[i]->thread].name = c->thread_names[i]->name;
    return 0;
}

/* Rebuilds absolute times exactly as trace_sample() encoded them (unsigned, so wrap-around in a
 * hostile file is arithmetic, not undefined behaviour). */
static int apply_samples(struct loader *L, const Pytrace__Chunk *c)
{
    struct trace *t = L->t;
    size_t need = t->n_samples;
    for (size_t i = 0; i < c->n_samples; i++)
        need += c->samples[i]->n_tick;
    if (GROW(L, samples, need))
        return -1;
    for (size_t i = 0; i < c->n_samples; i++) {
        const Pytrace__SampleBlock *b = c->samples[i];
        uint64_t now = b->t0_ns;
        uint32_t ref = 0;
        size_t r = 0;
        for (size_t k = 0; k < b->n_tick; k++) {
            uint64_t zz = b->tick[k] >> 1;
            int64_t dt = (int64_t)(zz >> 1) ^ -(int64_t)(zz & 1);
            now += ((uint64_t)dt + b->period_us) * 1000;
            if ((b->tick[k] & 1) && r < b->n_ref)
                ref = b->ref[r++];
            t->samples[t->n_samples++] = (struct trace_sample){
                .thread = b->thread, .stack = ref >> 3, .t_ns = now, .flags = (uint8_t)(ref & 7) };
        }
    }
    return 0;
}

static int apply_records(struct loader *L, const Pytrace__Chunk *c)
{
    struct trace *t = L->t;
    size_t ncounters = t->n_counters;
    for (size_t i = 0; i < c->n_counters; i++)
        ncounters += c->counters[i]->n_dt_ns;
    size_t nlocals = t->n_locals;
    for (size_t i = 0; i < c->n_spans; i++)
        nlocals += c->spans[i]->n_locals;
    const Pytrace__SpanBlock *b = c->span_block;
    size_t nspans = t->n_spans + c->n_spans + (b ? b->n_thread : 0);
    if (grow((void **)&L->span_locals, &L->cap_span_locals, nspans, sizeof *L->span_locals) ||
        GROW(L, locals, nlocals))
        return -1;
    if (apply_samples(L, c) || GROW(L, spans, nspans) ||
        GROW(L, counters, ncounters) || GROW(L, events, t->n_events + c->n_events))
        return -1;
    for (size_t i = 0; i < c->n_spans; i++) {
        const Pytrace__Span *s = c->spans[i];
        L->span_locals[t->n_spans] = (uint32_t)t->n_locals;
        for (size_t k = 0; k < s->n_locals; k++)
            t->locals[t->n_locals++] = (struct tl_local){
                .name = s->locals[k]->name, .value = s->locals[k]->value,
                .flags = s->locals[k]->flags };
        t->spans[t->n_spans++] = (struct tl_span){
            .n_locals = (uint32_t)s->n_locals, .locals_flags = s->locals_flags,
            .thread = s->thread, .function = s->function, .depth = s->depth,
            .call_line = s->call_line, .first_line = s->first_line,
            .begin_lo = s->begin - (uint64_t)s->begin_lo, .begin = s->begin,
            .end = s->begin + (uint64_t)s->end, .end_hi = s->begin + (uint64_t)s->end_hi,
            .samples = s->samples, .open_begin = s->open & 1, .open_end = (s->open >> 1) & 1,
            .off_cpu = s->off_cpu };
    }
    uint64_t begin = 0;
    for (size_t i = 0; b && i < b->n_thread; i++) {
        begin += (uint64_t)b->begin[i];
        L->span_locals[t->n_spans] = (uint32_t)t->n_locals;
        t->spans[t->n_spans++] = (struct tl_span){
            .thread = b->thread[i], .function = b->function[i], .depth = b->depth[i],
            .call_line = b->call_line[i], .first_line = b->first_line[i],
            .begin_lo = begin - (uint64_t)b->begin_lo[i], .begin = begin,
            .end = begin + (uint64_t)b->end[i], .end_hi = begin + (uint64_t)b->end_hi[i],
            .samples = b->samples[i], .open_begin = b->flags[i] & 1,
            .open_end = (b->flags[i] >> 1) & 1, .off_cpu = (b->flags[i] >> 2) & 1 };
    }
    for (size_t i = 0; i < c->n_counters; i++) {
        const Pytrace__CounterSeries *s = c->counters[i];
        uint64_t now = 0, value = 0;
        for (size_t k = 0; k < s->n_dt_ns; k++) {
            now += (uint64_t)s->dt_ns[k];
            value += (uint64_t)s->dvalue[k];
            t->counters[t->n_counters++] = (struct trace_counter){
                .kind = s->kind, .owner = s->owner, .t_ns = now, .value = (int64_t)value };
        }
    }
    for (size_t i = 0; i < c->n_events; i++) {
        const Pytrace__Event *e = c->events[i];
        t->events[t->n_events++] = (struct trace_event){
            .kind = e->kind, .process = e->process, .thread = e->thread, .t_ns = e->t_ns,
            .value = e->value, .text = e->text };
    }
    if (c->trailer) {
        const Pytrace__Trailer *r = c->trailer;
        t->has_trailer = true;
        t->summary = (struct trace_summary){
            .end_mono_ns = r->end_mono_ns, .samples = r->samples, .walks = r->walks,
            .errors = r->errors, .missed = r->missed, .overruns = r->overruns,
            .achieved_hz = r->achieved_hz, .exit_status = r->exit_status,
            .busy_ns = r->busy_ns,
            .redacted = r->redacted, .dropped = r->dropped, .excluded = r->excluded };
    }
    return 0;
}

/* ---- the file ------------------------------------------------------------------------------ */

/* Reads a stream (a pipe, "-" for standard input) to its end. */
static enum pt_status read_stream(int fd, const char *path, uint8_t **buf, size_t *size,
                                  struct pt_err *err)
{
    size_t cap = 0;
    for (;;) {
        if (*size == cap) {
            size_t ncap = cap ? cap * 2 : 1 << 16;
            uint8_t *nb = realloc(*buf, ncap);
            if (!nb)
                return pt_fail(err, PT_EFAIL, "out of memory reading %s", path);
            *buf = nb;
            cap = ncap;
        }
        ssize_t k = read(fd, *buf + *size, cap - *size);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0)
            return pt_fail(err, PT_EFAIL, "cannot read %s: %s", path, strerror(errno));
        if (k == 0)
            return PT_OK;
        *size += (size_t)k;
    }
}

static enum pt_status read_file(const char *path, uint8_t **buf, size_t *size, struct pt_err *err)
{
    *buf = NULL;
    *size = 0;
    bool std_in = strcmp(path, "-") == 0;
    const char *name = std_in ? "standard input" : path;
    int fd = std_in ? STDIN_FILENO : open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return pt_fail(err, PT_EFAIL, "cannot open %s: %s", path, strerror(errno));
    struct stat st;
    enum pt_status rc = PT_OK;
    if (fstat(fd, &st) != 0)
        rc = pt_fail(err, PT_EFAIL, "cannot stat %s: %s", name, strerror(errno));
    else if (S_ISDIR(st.st_mode))
        rc = pt_fail(err, PT_EFAIL, "cannot read %s: it is a directory", name);
    else if (!S_ISREG(st.st_mode))
        rc = read_stream(fd, name, buf, size, err);   /* a pipe: its size is not known */
    else if (st.st_size > 0 && !(*buf = malloc((size_t)st.st_size)))
        rc = pt_fail(err, PT_EFAIL, "out of memory reading %s", name);
    /* Read what fstat promised and no more: a trace still being recorded keeps growing. */
    while (rc == PT_OK && S_ISREG(st.st_mode) && *size < (size_t)st.st_size) {
        ssize_t k = read(fd, *buf + *size, (size_t)st.st_size - *size);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0)
            rc = pt_fail(err, PT_EFAIL, "cannot read %s: %s", name, strerror(errno));
        if (k <= 0)
            break;
        *size += (size_t)k;
    }
    if (!std_in)
        close(fd);
    if (rc != PT_OK) {
        free(*buf);
        *buf = NULL;
    }
    return rc;
}

static uint32_t get_u32le(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* Checks and applies the frame at off. Returns NULL and sets *len, or why the frame is unusable
 * (*oom set when the reason is memory, not the file). */
static const char *load_frame(struct loader *L, const uint8_t *buf, size_t size, size_t off,
                              bool first, size_t *len, bool *oom)
{
    if (size - off < 8)
        return "the file ends inside a frame header";
    *len = get_u32le(buf + off);
    if (*len > size - off - 8)
        return "the file ends inside a chunk";
    if ((uint32_t)crc32(0L, buf + off + 8, (uInt)*len) != get_u32le(buf + off + 4))
        return "checksum mismatch";
    Pytrace__Chunk *c = pytrace__chunk__unpack(NULL, *len, buf + off + 8);
    if (!c)
        return "the chunk does not decode";
    const char *why = check_chunk(L->t, c, first);
    if (!why && ((c->header && apply_header(L->t, c->header) != 0) ||
                 apply_tables(L, c) != 0 || apply_records(L, c) != 0)) {
        *oom = true;
        why = "out of memory";
    }
    pytrace__chunk__free_unpacked(c, NULL);
    return why;
}

static struct trace *trace_new(struct loader *L)
{
    struct trace *t = calloc(1, sizeof *t);
    L->t = t;
    if (!t || GROW(L, strings, 1) || GROW(L, functions, 1) || GROW(L, fn_native, 1) || GROW(L, stacks, 1) ||
        GROW(L, processes, 1) || GROW(L, threads, 1) || !(t->strings[0] = strdup(""))) {
        trace_free(t);
        return NULL;
    }
    /* Index 0 of every id table is the "none" placeholder. */
    t->n_strings = t->n_functions = t->n_stacks = t->n_processes = t->n_threads = 1;
    t->functions[0] = (struct trace_function){ 0 };
    t->fn_native[0] = (struct trace_fn_native){ 0 };
    t->stacks[0] = (struct trace_stack_node){ 0 };
    t->processes[0] = (struct trace_process){ 0 };
    t->threads[0] = (struct trace_thread){ 0 };
    t->summary.exit_status = INT64_MIN;
    return t;
}

enum pt_status trace_load(const char *path, struct trace **out, struct pt_err *err)
{
    *out = NULL;
    uint8_t *buf;
    size_t size;
    enum pt_status rc = read_file(path, &buf, &size, err);
    if (rc != PT_OK)
        return rc;
    if (size < 8 || memcmp(buf, TRACE_MAGIC, 8) != 0) {
        free(buf);
        return pt_fail(err, PT_ECORRUPT, "not a pytrace file: %s%s", path,
                       size == 0 ? " (it is empty)" : "");
    }
    struct loader L = { 0 };
    struct trace *t = trace_new(&L);
    if (!t) {
        free(buf);
        return pt_fail(err, PT_EFAIL, "out of memory loading %s", path);
    }
    size_t off = 8;
    t->valid_bytes = 8;
    while (off < size && !t->has_trailer) {
        size_t len = 0;
        bool oom = false;
        const char *why = load_frame(&L, buf, size, off, off == 8, &len, &oom);
        if (oom)
            rc = pt_fail(err, PT_EFAIL, "out of memory loading %s", path);
        else if (why && off == 8)
            rc = pt_fail(err, PT_ECORRUPT, "%s: corrupt first chunk at byte 8: %s", path, why);
        if (why) {
            t->truncated = true;
            break;
        }
        off += 8 + len;
        t->valid_bytes = off;
    }
    for (size_t i = 0; i < t->n_spans; i++)
        t->spans[i].locals = t->spans[i].n_locals ? t->locals + L.span_locals[i] : NULL;
    free(L.span_locals);
    if (rc == PT_OK && off == 8 && !t->truncated)
        rc = pt_fail(err, PT_ECORRUPT, "%s: truncated after the magic, before any chunk", path);
    free(buf);
    if (rc != PT_OK) {
        trace_free(t);
        return rc;
    }
    if (!t->has_trailer)
        t->truncated = true;
    *out = t;
    return PT_OK;
}

void trace_free(struct trace *t)
{
    if (!t)
        return;
    free(t->nspid);
    free(t->name);
    free(t->python_version);
    free(t->python_binary);
    free(t->cmdline);
    free(t->host);
    free(t->pytrace_version);
    free(t->filters);
    free(t->recording_id);
    free(t->backend);
    for (size_t i = 0; i < t->n_tags; i++) {
        free(t->tag_keys[i]);
        free(t->tag_values[i]);
    }
    free(t->tag_keys);
    free(t->tag_values);
    for (size_t i = 0; i < t->n_strings; i++)
        free(t->strings[i]);
    free(t->strings);
    free(t->functions);
    free(t->fn_native);
    free(t->stacks);
    free(t->processes);
    free(t->threads);
    free(t->samples);
    free(t->spans);
    free(t->locals);
    free(t->counters);
    free(t->events);
    free(t);
}
