/*
 * topview.c — sliding-window function counts for `pytrace top` (see topview.h). Three hash tables
 * do the work: functions by (name, file, first line), trie nodes by (parent, function), and per
 * bucket the counts by (leaf node, thread, flags). Steady state allocates nothing: tables only
 * grow when a new function, stack or thread appears.
 */
#include "output/topview.h"

#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TOP_EMPTY UINT64_MAX
#define F_GIL 1u
#define F_IDLE 2u
#define NS 1000000000ULL

/* u64 → u32 open-addressing map; keys never equal TOP_EMPTY. */
struct top_map {
    uint64_t *keys;
    uint32_t *vals;
    uint32_t cap, used;
};

struct top_func {
    char *name, *file;
    int32_t line;
    uint64_t hash;
};

struct top_node {
    uint32_t parent;          /* 0: root (no caller) */
    uint32_t func;
};

struct top_thr {
    uint64_t thread_id;
    int64_t native_id;
    char name[64];
    bool selected;
};

struct top_entry {
    uint32_t node, thread, count;
    uint8_t flags;
};

struct top_bucket {
    int64_t sec;              /* seconds since the origin, -1 unused */
    uint64_t rounds, samples, errors, gil_rounds;
    struct top_entry *e;
    uint32_t n, cap;
    struct top_map idx;
};

struct top_view {
    uint32_t window_s;
    bool have_origin;
    uint64_t origin_ns;
    struct top_bucket *buckets;

    struct top_func *funcs;
    uint32_t nfuncs, cap_funcs;
    uint32_t *fidx, fidx_cap;     /* func index + 1, 0 empty */

    struct top_node *nodes;       /* nodes[0] is the root sentinel */
    uint32_t nnodes, cap_nodes;
    struct top_map nidx;

    struct top_thr *threads;
    uint32_t nthreads, cap_threads;
    const char *const *specs;
    size_t nspecs;

    uint32_t last_threads, last_active, last_idle;

    /* query scratch, reused */
    uint64_t *own, *total;
    uint32_t *stamp, cap_scratch, stamp_now;
    struct top_row *rows;
    uint32_t *frames;             /* function ids of one sample, outermost first */
    uint32_t cap_frames;
};

static bool grow(void **p, uint32_t *cap, uint32_t need, size_t elem)
{
    if (need <= *cap)
        return true;
    uint32_t c = *cap ? *cap : 16;
    while (c < need)
        c *= 2;
    void *n = realloc(*p, (size_t)c * elem);
    if (!n)
        return false;
    *p = n;
    *cap = c;
    return true;
}

static uint64_t mix(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    return x;
}

static bool map_init(struct top_map *m, uint32_t cap)
{
    m->keys = malloc(cap * sizeof *m->keys);
    m->vals = malloc(cap * sizeof *m->vals);
    if (!m->keys || !m->vals)
        return false;
    memset(m->keys, 0xff, cap * sizeof *m->keys);
    m->cap = cap;
    m->used = 0;
    return true;
}

static void map_clear(struct top_map *m)
{
    memset(m->keys, 0xff, m->cap * sizeof *m->keys);
    m->used = 0;
}

static uint32_t *map_slot(struct top_map *m, uint64_t key, bool *found)
{
    uint32_t i = (uint32_t)mix(key) & (m->cap - 1);
    while (m->keys[i] != TOP_EMPTY && m->keys[i] != key)
        i = (i + 1) & (m->cap - 1);
    *found = m->keys[i] == key;
    m->keys[i] = key;   /* claims the slot; callers always fill vals on !found */
    return &m->vals[i];
}

/* Keeps the load under 1/2; false when out of memory. */
static bool map_reserve(struct top_map *m)
{
    if ((m->used + 1) * 2 <= m->cap)
        return true;
    struct top_map n;
    if (!map_init(&n, m->cap * 2)) {
        free(n.keys);
        free(n.vals);
        return false;
    }
    for (uint32_t i = 0; i < m->cap; i++) {
        if (m->keys[i] == TOP_EMPTY)
            continue;
        bool f;
        *map_slot(&n, m->keys[i], &f) = m->vals[i];
        n.used++;
    }
    free(m->keys);
    free(m->vals);
    *m = n;
    return true;
}

static void map_free(struct top_map *m)
{
    free(m->keys);
    free(m->vals);
}

struct top_view *top_view_new(uint32_t window_s)
{
    if (window_s < 1 || window_s > TOP_MAX_WINDOW_S + 1)   /* + 1: a one-table run (cmd_top.c) */
        return NULL;
    struct top_view *v = calloc(1, sizeof *v);
    if (!v)
        return NULL;
    v->window_s = window_s;
    v->buckets = calloc(window_s, sizeof *v->buckets);
    bool ok = v->buckets && map_init(&v->nidx, 256);
    for (uint32_t i = 0; ok && i < window_s; i++) {
        v->buckets[i].sec = -1;
        ok = map_init(&v->buckets[i].idx, 64);
    }
    ok = ok && grow((void **)&v->nodes, &v->cap_nodes, 1, sizeof *v->nodes);
    if (!ok) {
        top_view_free(v);
        return NULL;
    }
    v->nodes[0] = (struct top_node){0, UINT32_MAX};
    v->nnodes = 1;
    return v;
}

void top_view_free(struct top_view *v)
{
    if (!v)
        return;
    for (uint32_t i = 0; v->buckets && i < v->window_s; i++) {
        free(v->buckets[i].e);
        map_free(&v->buckets[i].idx);
    }
    free(v->buckets);
    for (uint32_t i = 0; i < v->nfuncs; i++) {
        free(v->funcs[i].name);
        free(v->funcs[i].file);
    }
    free(v->funcs);
    free(v->fidx);
    free(v->nodes);
    map_free(&v->nidx);
    free(v->threads);
    free(v->own);
    free(v->total);
    free(v->stamp);
    free(v->rows);
    free(v->frames);
    free(v);
}

void top_view_set_thread_filter(struct top_view *v, const char *const *specs, size_t n)
{
    v->specs = specs;
    v->nspecs = n;
    for (uint32_t i = 0; i < v->nthreads; i++)
        v->threads[i].name[0] = '\0';   /* re-evaluated on the next feed */
}

static uint64_t str_hash(const char *s, uint64_t h)
{
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 0x100000001b3ULL;
    return h;
}

static bool func_is(const struct top_func *f, const char *name, const char *file, int32_t line)
{
    return f->line == line && strcmp(f->name, name) == 0 && strcmp(f->file, file) == 0;
}

static bool fidx_rehash(struct top_view *v)
{
    uint32_t cap = v->fidx_cap ? v->fidx_cap * 2 : 256;
    uint32_t *n = calloc(cap, sizeof *n);
    if (!n)
        return false;
    for (uint32_t f = 0; f < v->nfuncs; f++) {
        uint32_t i = (uint32_t)v->funcs[f].hash & (cap - 1);
        while (n[i])
            i = (i + 1) & (cap - 1);
        n[i] = f + 1;
    }
    free(v->fidx);
    v->fidx = n;
    v->fidx_cap = cap;
    return true;
}

/* The function id of (name, file, line), added when new; UINT32_MAX when out of memory. */
static uint32_t func_of(struct top_view *v, const char *name, const char *file, int32_t line)
{
    uint64_t h = mix(str_hash(file, str_hash(name, 0xcbf29ce484222325ULL)) ^ (uint32_t)line);
    if ((v->nfuncs + 1) * 2 > v->fidx_cap && !fidx_rehash(v))
        return UINT32_MAX;
    uint32_t i = (uint32_t)h & (v->fidx_cap - 1);
    for (; v->fidx[i]; i = (i + 1) & (v->fidx_cap - 1)) {
        const struct top_func *f = &v->funcs[v->fidx[i] - 1];
        if (f->hash == h && func_is(f, name, file, line))
            return v->fidx[i] - 1;
    }
    if (!grow((void **)&v->funcs, &v->cap_funcs, v->nfuncs + 1, sizeof *v->funcs))
        return UINT32_MAX;
    struct top_func *f = &v->funcs[v->nfuncs];
    f->name = strdup(name);
    f->file = strdup(file);
    if (!f->name || !f->file) {
        free(f->name);
        free(f->file);
        return UINT32_MAX;
    }
    f->line = line;
    f->hash = h;
    v->fidx[i] = ++v->nfuncs;
    return v->nfuncs - 1;
}

static uint32_t frame_func(struct top_view *v, const struct py_frame *fr)
{
    const struct py_code *c = fr->code;
    if (!c)
        return func_of(v, "<unknown>", "?", 0);
    return func_of(v, c->name ? c->name : "?", c->filename ? c->filename : "?", c->firstlineno);
}

/* The trie node for func called from parent; 0 (the root) when out of memory. */
static uint32_t node_of(struct top_view *v, uint32_t parent, uint32_t func)
{
    if (!map_reserve(&v->nidx) ||
        !grow((void **)&v->nodes, &v->cap_nodes, v->nnodes + 1, sizeof *v->nodes))
        return 0;
    bool found;
    uint32_t *slot = map_slot(&v->nidx, (uint64_t)parent << 32 | func, &found);
    if (found)
        return *slot;
    v->nidx.used++;
    v->nodes[v->nnodes] = (struct top_node){parent, func};
    *slot = v->nnodes;
    return v->nnodes++;
}

static bool thread_selected(const struct top_view *v, const struct top_thr *t)
{
    if (!v->nspecs)
        return true;
    for (size_t i = 0; i < v->nspecs; i++) {
        const char *spec = v->specs[i];
        char *end;
        long tid = strtol(spec, &end, 10);
        if (*spec && !*end ? tid == t->native_id : fnmatch(spec, t->name, 0) == 0)
            return true;
    }
    return false;
}

/* The thread table index of pt; UINT32_MAX when out of memory. */
static uint32_t thread_of(struct top_view *v, const struct py_thread *pt)
{
    uint32_t i = 0;
    while (i < v->nthreads &&
           (v->threads[i].thread_id != pt->thread_id || v->threads[i].native_id != pt->native_id))
        i++;
    if (i == v->nthreads) {
        if (!grow((void **)&v->threads, &v->cap_threads, i + 1, sizeof *v->threads))
            return UINT32_MAX;
        v->threads[i] = (struct top_thr){.thread_id = pt->thread_id, .native_id = pt->native_id};
        v->threads[i].selected = thread_selected(v, &v->threads[i]);
        v->nthreads++;
    }
    struct top_thr *t = &v->threads[i];
    if (pt->name[0] && strcmp(pt->name, t->name) != 0) {
        /* Names arrive after the first walk of a new thread, and may change. */
        snprintf(t->name, sizeof t->name, "%s", pt->name);
        t->selected = thread_selected(v, t);
    }
    return i;
}

static struct top_bucket *bucket_at(struct top_view *v, uint64_t t_ns)
{
    if (!v->have_origin) {
        v->have_origin = true;
        v->origin_ns = t_ns;
    }
    if (t_ns < v->origin_ns)
        return NULL;
    int64_t sec = (int64_t)((t_ns - v->origin_ns) / NS);
    struct top_bucket *b = &v->buckets[sec % v->window_s];
    if (b->sec > sec)
        return NULL;            /* older than the window: out of order, dropped */
    if (b->sec != sec) {
        /* The second this slot held has left the window: reuse it. */
        b->sec = sec;
        b->rounds = b->samples = b->errors = b->gil_rounds = 0;
        b->n = 0;
        map_clear(&b->idx);
    }
    return b;
}

static void bucket_add(struct top_bucket *b, uint32_t node, uint32_t thread, uint8_t flags)
{
    if (!map_reserve(&b->idx) || !grow((void **)&b->e, &b->cap, b->n + 1, sizeof *b->e))
        return;
    bool found;
    uint64_t key = (uint64_t)node << 32 | (uint64_t)(thread & 0xffffff) << 8 | flags;
    uint32_t *slot = map_slot(&b->idx, key, &found);
    if (found) {
        b->e[*slot].count++;
        return;
    }
    b->idx.used++;
    b->e[b->n] = (struct top_entry){node, thread, 1, flags};
    *slot = b->n++;
}

/* The leaf node of thread pt's stack (root side first, so callers share nodes). */
static uint32_t stack_node(struct top_view *v, const struct py_snapshot *snap,
                           const struct py_thread *pt)
{
    uint32_t node = 0;
    for (uint32_t i = pt->nframes; i-- > 0;) {
        uint32_t f = frame_func(v, py_thread_frame(snap, pt, i));
        if (f == UINT32_MAX)
            return node;
        node = node_of(v, node, f);
    }
    return node;
}

void top_view_feed(struct top_view *v, const struct py_snapshot *snap, uint64_t t_ns)
{
    struct top_bucket *b = bucket_at(v, t_ns);
    if (!b)
        return;
    b->rounds++;
    bool gil = false;
    v->last_threads = snap->nthreads;
    v->last_active = v->last_idle = 0;
    for (uint32_t i = 0; i < snap->nthreads; i++) {
        const struct py_thread *pt = &snap->threads[i];
        gil |= pt->holds_gil;
        if (pt->idle)
            v->last_idle++;
        else
            v->last_active++;
        uint32_t ti = thread_of(v, pt);
        if (ti == UINT32_MAX || !v->threads[ti].selected)
            continue;
        b->samples++;
        if (pt->bad) {
            /* A torn stack lacks its root side: it cannot be placed, only counted. */
            b->errors++;
            continue;
        }
        uint8_t flags = (pt->holds_gil ? F_GIL : 0) | (pt->idle ? F_IDLE : 0);
        bucket_add(b, stack_node(v, snap, pt), ti, flags);
    }
    b->gil_rounds += gil;
}

void top_view_feed_failed(struct top_view *v, uint64_t t_ns)
{
    struct top_bucket *b = bucket_at(v, t_ns);
    if (!b)
        return;
    b->rounds++;
    b->samples++;
    b->errors++;
}

static bool entry_wanted(const struct top_entry *e, const struct top_query *q)
{
    if (q->thread >= 0 && e->thread != (uint32_t)q->thread)
        return false;
    if (q->gil_only && !(e->flags & F_GIL))
        return false;
    return q->idle || !(e->flags & F_IDLE);
}

/* Own to the leaf's function; total once to every distinct function on the stack. */
static void count_entry(struct top_view *v, const struct top_entry *e)
{
    uint32_t node = e->node;
    if (!node)
        return;
    v->own[v->nodes[node].func] += e->count;
    v->stamp_now++;
    if (v->stamp_now == 0) {
        memset(v->stamp, 0, v->cap_scratch * sizeof *v->stamp);
        v->stamp_now = 1;
    }
    for (; node; node = v->nodes[node].parent) {
        uint32_t f = v->nodes[node].func;
        if (v->stamp[f] != v->stamp_now) {
            v->stamp[f] = v->stamp_now;
            v->total[f] += e->count;
        }
    }
}

static bool scratch_ready(struct top_view *v)
{
    uint32_t cap = v->cap_scratch;
    if (v->nfuncs > cap) {
        uint32_t c2 = cap, c3 = cap, c4 = cap;
        if (!grow((void **)&v->own, &cap, v->nfuncs, sizeof *v->own) ||
            !grow((void **)&v->total, &c2, v->nfuncs, sizeof *v->total) ||
            !grow((void **)&v->rows, &c3, v->nfuncs, sizeof *v->rows) ||
            !grow((void **)&v->stamp, &c4, v->nfuncs, sizeof *v->stamp))
            return false;
        memset(v->stamp, 0, c4 * sizeof *v->stamp);
        v->stamp_now = 0;
        v->cap_scratch = cap;
    }
    memset(v->own, 0, v->nfuncs * sizeof *v->own);
    memset(v->total, 0, v->nfuncs * sizeof *v->total);
    return true;
}

static double row_key(const struct top_row *r, enum top_sort s)
{
    switch (s) {
    case TOP_SORT_OWN_PCT: return r->own_pct;
    case TOP_SORT_TOTAL_PCT: return r->total_pct;
    case TOP_SORT_OWN_TIME: return r->own_s;
    default: return r->total_s;
    }
}

static int row_cmp(const void *a, const void *b, void *arg)
{
    const struct top_row *x = a, *y = b;
    enum top_sort s = *(const enum top_sort *)arg;
    double kx = row_key(x, s), ky = row_key(y, s);
    if (kx != ky)
        return kx > ky ? -1 : 1;
    /* Equal keys (own% and own time are proportional): the other count, then the name. */
    if (x->total != y->total)
        return x->total > y->total ? -1 : 1;
    int c = strcmp(x->name, y->name);
    return c ? c : strcmp(x->file, y->file);
}

size_t top_view_rows(struct top_view *v, const struct top_query *q, uint64_t now_ns,
                     const struct top_row **rows, struct top_stats *st)
{
    struct top_stats s = {.threads = v->last_threads, .active = v->last_active,
                          .idle = v->last_idle};
    if (st)
        *st = s;
    *rows = NULL;
    if (!v->have_origin || now_ns < v->origin_ns || !scratch_ready(v))
        return 0;
    *rows = v->rows;
    int64_t now_sec = (int64_t)((now_ns - v->origin_ns) / NS);
    int64_t first = now_sec - (int64_t)v->window_s + 1;
    if (first < 0)
        first = 0;
    for (uint32_t i = 0; i < v->window_s; i++) {
        const struct top_bucket *b = &v->buckets[i];
        if (b->sec < first || b->sec > now_sec)
            continue;
        s.rounds += b->rounds;
        s.samples += b->samples;
        s.errors += b->errors;
        s.gil_rounds += b->gil_rounds;
        for (uint32_t k = 0; k < b->n; k++)
            if (entry_wanted(&b->e[k], q))
                count_entry(v, &b->e[k]);
    }
    uint64_t span = now_ns - (v->origin_ns + (uint64_t)first * NS);
    s.span_s = (double)(span ? span : 1) / 1e9;
    s.rate_hz = (double)s.rounds / s.span_s;
    if (st)
        *st = s;
    double period = s.rounds ? s.span_s / (double)s.rounds : 0;
    double pct = s.rounds ? 100.0 / (double)s.rounds : 0;
    size_t n = 0;
    for (uint32_t f = 0; f < v->nfuncs; f++) {
        if (!v->total[f])
            continue;
        v->rows[n++] = (struct top_row){
            .name = v->funcs[f].name, .file = v->funcs[f].file, .line = v->funcs[f].line,
            .own = v->own[f], .total = v->total[f],
            .own_pct = (double)v->own[f] * pct, .total_pct = (double)v->total[f] * pct,
            .own_s = (double)v->own[f] * period, .total_s = (double)v->total[f] * period,
        };
    }
    enum top_sort sort = q->sort < TOP_SORT_COUNT ? q->sort : TOP_SORT_OWN_PCT;
    qsort_r(v->rows, n, sizeof *v->rows, row_cmp, &sort);
    return n;
}

uint32_t top_view_threads(const struct top_view *v) { return v->nthreads; }

bool top_view_thread(const struct top_view *v, uint32_t i, struct top_thread_info *out)
{
    if (i >= v->nthreads)
        return false;
    const struct top_thr *t = &v->threads[i];
    *out = (struct top_thread_info){t->native_id, t->thread_id, t->name, t->selected};
    return true;
}

const char *top_sort_name(enum top_sort s)
{
    static const char *const names[] = {"own %", "total %", "own time", "total time"};
    return s < TOP_SORT_COUNT ? names[s] : "?";
}
