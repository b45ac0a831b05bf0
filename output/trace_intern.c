/*
 * trace_intern.c — the writer's interned tables: strings, functions, stack-trie nodes, processes,
 * threads and counter series, each an id-indexed array plus an open-addressing hash table of ids.
 * trace_stack() runs for every frame of every sample, so a lookup of a known entry is a hash, a
 * probe and a compare: no allocation, no string work.
 */
#include <stdlib.h>
#include <string.h>

#include "output/trace_writer.h"
#include "readers/pystr.h"
#include "util/mix.h"

int trace_grow(void **p, size_t *cap, size_t need, size_t elem)
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

int trace_vec_push(struct trace_vec *v, const void *elem, size_t size)
{
    if (trace_grow(&v->p, &v->cap, v->n + 1, size) != 0)
        return -1;
    memcpy((char *)v->p + v->n * size, elem, size);
    v->n++;
    return 0;
}

const char *trace_valid_text(struct trace_writer *w, const char *s)
{
    /* The target's bytes need not be UTF-8, but proto3 `string` must be: strict readers (Python's
     * protobuf) reject a whole chunk otherwise. Every invalid byte grows to at most 3. */
    size_t n = strlen(s);
    if (n > (SIZE_MAX - 1) / 3 || trace_grow((void **)&w->text, &w->text_cap, 3 * n + 1, 1) != 0)
        return NULL;
    pystr_bytes_to_utf8((const uint8_t *)s, n, w->text, 3 * n + 1);
    return w->text;
}

/* ---- hashing ------------------------------------------------------------------------------- */


static uint64_t hadd(uint64_t h, uint64_t v)
{
    return pt_mix64(h ^ (v + 0x9e3779b97f4a7c15ULL));
}

static uint32_t hash_str(const char *s)
{
    uint64_t h = 0xcbf29ce484222325ULL;   /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (uint8_t)*s) * 0x100000001b3ULL;
    return (uint32_t)pt_mix64(h);
}

/* ---- the hash table of ids ----------------------------------------------------------------- */

typedef bool (*trace_eq_fn)(const struct trace_writer *w, uint32_t id, const void *key);

/* Makes room for one more id (load factor <= 3/4). Returns 0 or -1 (table unchanged). */
static int htab_reserve(struct trace_htab *t)
{
    uint64_t cap = t->mask ? (uint64_t)t->mask + 1 : 0;
    if (((uint64_t)t->used + 1) * 4 <= cap * 3)
        return 0;
    uint64_t ncap = cap ? cap * 2 : 64;
    if (ncap > (1ULL << 31))
        return -1;
    struct trace_slot *slots = calloc(ncap, sizeof *slots);
    if (!slots)
        return -1;
    uint32_t nmask = (uint32_t)(ncap - 1);
    for (uint64_t i = 0; i < cap; i++) {
        if (!t->slots[i].id)
            continue;
        uint32_t k = t->slots[i].hash & nmask;
        while (slots[k].id)
            k = (k + 1) & nmask;
        slots[k] = t->slots[i];
    }
    free(t->slots);
    t->slots = slots;
    t->mask = nmask;
    return 0;
}

/* The slot holding key, or the empty slot where it belongs. Needs htab_reserve() first. */
static struct trace_slot *htab_find(const struct trace_htab *t, uint32_t hash, trace_eq_fn eq,
                                    const struct trace_writer *w, const void *key)
{
    for (uint32_t i = hash & t->mask;; i = (i + 1) & t->mask) {
        struct trace_slot *s = &t->slots[i];
        if (!s->id || (s->hash == hash && eq(w, s->id, key)))
            return s;
    }
}

static void htab_put(struct trace_htab *t, struct trace_slot *s, uint32_t id, uint32_t hash)
{
    s->id = id;
    s->hash = hash;
    t->used++;
}

/* Looks key up; on a miss, returns the slot to fill after growing the table's array, or NULL
 * when out of memory. *found is the existing id (0 on a miss). */
static struct trace_slot *lookup(struct trace_writer *w, struct trace_htab *t, uint32_t hash,
                                 trace_eq_fn eq, const void *key, uint32_t *found)
{
    *found = 0;
    if (htab_reserve(t) != 0) {
        w->oom = true;
        return NULL;
    }
    struct trace_slot *s = htab_find(t, hash, eq, w, key);
    *found = s->id;
    return s;
}

/* Grows an id-indexed array so that id n (the next one) fits. */
static bool room_for(struct trace_writer *w, void **arr, size_t *cap, uint32_t n, size_t elem)
{
    if (n == UINT32_MAX || trace_grow(arr, cap, (size_t)n + 1, elem) != 0) {
        w->oom = true;
        return false;
    }
    return true;
}

/* ---- strings ------------------------------------------------------------------------------- */

static bool str_eq(const struct trace_writer *w, uint32_t id, const void *key)
{
    return strcmp(w->strs[id], key) == 0;
}

uint32_t trace_string(struct trace_writer *w, const char *s)
{
    if (!s || !*s)
        return 0;                       /* id 0 is the empty string */
    const char *v = trace_valid_text(w, s);
    if (!v) {
        w->oom = true;
        return 0;
    }
    uint32_t h = hash_str(v), id;
    struct trace_slot *slot = lookup(w, &w->str_tab, h, str_eq, v, &id);
    if (!slot || id)
        return id;
    if (!room_for(w, (void **)&w->strs, &w->cap_strs, w->n_strs, sizeof *w->strs))
        return 0;
    size_t len = strlen(v);
    char *copy = malloc(len + 1);
    if (!copy) {
        w->oom = true;
        return 0;
    }
    memcpy(copy, v, len + 1);
    id = w->n_strs++;
    w->strs[id] = copy;
    htab_put(&w->str_tab, slot, id, h);
    w->pending_bytes += len + 8;
    return id;
}

/* ---- functions and stack nodes -------------------------------------------------------------- */

struct fn_key {
    struct trace_function f;
    struct trace_fn_native x;
};

static bool fn_eq(const struct trace_writer *w, uint32_t id, const void *key)
{
    const struct trace_function *a = &w->fns[id];
    const struct fn_key *b = key;
    const struct trace_fn_native *ax = &w->fnx[id];
    return a->name == b->f.name && a->qualname == b->f.qualname && a->file == b->f.file &&
           a->first_line == b->f.first_line && ax->kind == b->x.kind &&
           ax->approximate == b->x.approximate && ax->module == b->x.module;
}

static uint32_t intern_function(struct trace_writer *w, const struct fn_key *key)
{
    uint32_t h = (uint32_t)hadd(hadd(hadd(hadd(hadd(1, key->f.name), key->f.qualname), key->f.file),
                                     (uint32_t)key->f.first_line),
                                key->x.kind * 2u + key->x.approximate), id;
    struct trace_slot *slot = lookup(w, &w->fn_tab, h, fn_eq, key, &id);
    if (!slot || id)
        return id;
    if (!room_for(w, (void **)&w->fns, &w->cap_fns, w->n_fns, sizeof *w->fns) ||
        !room_for(w, (void **)&w->fnx, &w->cap_fnx, w->n_fns, sizeof *w->fnx))
        return 0;
    id = w->n_fns++;
    w->fns[id] = key->f;
    w->fnx[id] = key->x;
    htab_put(&w->fn_tab, slot, id, h);
    w->pending_bytes += key->x.kind ? 24 : 16;
    return id;
}

uint32_t trace_function(struct trace_writer *w, const char *name, const char *qualname,
                        const char *file, int32_t first_line)
{
    struct fn_key key = {
        .f = {trace_string(w, name), trace_string(w, qualname), trace_string(w, file), first_line},
        .x = {TRACE_FN_PYTHON, false, 0},
    };
    return intern_function(w, &key);
}

uint32_t trace_native_function(struct trace_writer *w, const char *symbol, const char *module,
                               bool approximate)
{
    uint32_t name = trace_string(w, symbol ? symbol : "??");
    uint32_t mod = trace_string(w, module);
    struct fn_key key = {
        .f = {name, name, mod, 0},
        .x = {TRACE_FN_NATIVE, approximate, mod},
    };
    return intern_function(w, &key);
}

static bool stack_eq(const struct trace_writer *w, uint32_t id, const void *key)
{
    const struct trace_stack_node *a = &w->stacks[id], *b = key;
    return a->parent == b->parent && a->function == b->function && a->line == b->line;
}

uint32_t trace_stack(struct trace_writer *w, uint32_t parent, uint32_t function, int32_t line)
{
    if (parent >= w->n_stacks)
        return 0;                       /* a caller's bug; the file must stay loadable */
    struct trace_stack_node key = {
        .parent = parent,
        .function = function < w->n_fns ? function : 0,
        .line = line,
    };
    uint32_t h = (uint32_t)hadd(hadd(hadd(2, key.parent), key.function), (uint32_t)line), id;
    struct trace_slot *slot = lookup(w, &w->stack_tab, h, stack_eq, &key, &id);
    if (!slot || id)
        return id;
    if (w->n_stacks > TRACE_MAX_STACK_ID ||
        !room_for(w, (void **)&w->stacks, &w->cap_stacks, w->n_stacks, sizeof *w->stacks))
        return 0;
    id = w->n_stacks++;
    w->stacks[id] = key;
    htab_put(&w->stack_tab, slot, id, h);
    w->pending_bytes += 14;
    return id;
}

/* ---- processes and threads ----------------------------------------------------------------- */

static bool proc_eq(const struct trace_writer *w, uint32_t id, const void *key)
{
    const struct trace_process *a = &w->procs[id], *b = key;
    return a->pid == b->pid && a->nspid == b->nspid && a->cmdline == b->cmdline &&
           a->python_version == b->python_version && a->parent == b->parent;
}

uint32_t trace_process(struct trace_writer *w, int64_t pid, int64_t nspid, const char *cmdline,
                       const char *python_version, uint32_t parent_process)
{
    struct trace_process key = {
        .pid = pid,
        .nspid = nspid,
        .cmdline = trace_string(w, cmdline),
        .python_version = trace_string(w, python_version),
        .parent = trace_process_ok(w, parent_process) ? parent_process : 0,
    };
    uint32_t h = (uint32_t)hadd(hadd(hadd(hadd(hadd(3, (uint64_t)pid), (uint64_t)nspid),
                                          key.cmdline), key.python_version), key.parent), id;
    struct trace_slot *slot = lookup(w, &w->proc_tab, h, proc_eq, &key, &id);
    if (!slot || id)
        return id;
    if (!room_for(w, (void **)&w->procs, &w->cap_procs, w->n_procs, sizeof *w->procs))
        return 0;
    id = w->n_procs++;
    w->procs[id] = key;
    htab_put(&w->proc_tab, slot, id, h);
    w->pending_bytes += 32;
    return id;
}

static bool thread_eq(const struct trace_writer *w, uint32_t id, const void *key)
{
    const struct trace_thread *a = &w->threads[id], *b = key;
    return a->process == b->process && a->tid == b->tid && a->thread_id == b->thread_id;
}

/* A thread is (process, tid, thread_id); its name is an attribute that may change. */
uint32_t trace_thread(struct trace_writer *w, uint32_t process, int64_t tid, uint64_t thread_id,
                      const char *name)
{
    struct trace_thread key = {
        .process = trace_process_ok(w, process) ? process : 0,
        .tid = tid,
        .thread_id = thread_id,
    };
    uint32_t h = (uint32_t)hadd(hadd(hadd(4, key.process), (uint64_t)tid), thread_id), id;
    struct trace_slot *slot = lookup(w, &w->thread_tab, h, thread_eq, &key, &id);
    if (id)
        trace_thread_name(w, id, name);
    if (!slot || id)
        return id;
    if (!room_for(w, (void **)&w->threads, &w->cap_threads, w->n_threads, sizeof *w->threads) ||
        !room_for(w, (void **)&w->ts, &w->cap_ts, w->n_threads, sizeof *w->ts))
        return 0;
    key.name = trace_string(w, name);
    id = w->n_threads++;
    w->threads[id] = key;
    struct trace_tstate *ts = &w->ts[id];
    memset(ts, 0, sizeof *ts);
    pytrace__sample_block__init(&ts->blk);
    ts->blk.thread = id;
    ts->blk.period_us = w->period_us;
    htab_put(&w->thread_tab, slot, id, h);
    w->pending_bytes += 32;
    return id;
}

void trace_thread_name(struct trace_writer *w, uint32_t thread, const char *name)
{
    if (!trace_thread_ok(w, thread))
        return;
    uint32_t sid = trace_string(w, name);
    if (sid == w->threads[thread].name)
        return;
    w->threads[thread].name = sid;
    if (thread >= w->threads_flushed)
        return;                         /* its Thread entry is still pending: it carries the name */
    Pytrace__ThreadName r = PYTRACE__THREAD_NAME__INIT;
    r.thread = thread;
    r.name = sid;
    if (trace_vec_push(&w->renames, &r, sizeof r) != 0)
        w->oom = true;
    w->pending_bytes += 8;
}

/* ---- counter series ------------------------------------------------------------------------ */

static bool series_eq(const struct trace_writer *w, uint32_t id, const void *key)
{
    const uint32_t *k = key;
    return w->series[id - 1].msg.kind == k[0] && w->series[id - 1].msg.owner == k[1];
}

uint32_t trace_series_id(struct trace_writer *w, uint32_t kind, uint32_t owner)
{
    uint32_t key[2] = { kind, owner };
    uint32_t h = (uint32_t)hadd(hadd(5, kind), owner), id;
    struct trace_slot *slot = lookup(w, &w->series_tab, h, series_eq, key, &id);
    if (!slot || id)
        return id;
    if (!room_for(w, (void **)&w->series, &w->cap_series, w->n_series, sizeof *w->series))
        return 0;
    struct trace_series *s = &w->series[w->n_series++];
    memset(s, 0, sizeof *s);
    pytrace__counter_series__init(&s->msg);
    s->msg.kind = kind;
    s->msg.owner = owner;
    htab_put(&w->series_tab, slot, w->n_series, h);
    return w->n_series;
}

void trace_intern_free(struct trace_writer *w)
{
    for (uint32_t i = 1; i < w->n_strs; i++)
        free(w->strs[i]);
    free(w->strs);
    free(w->fns);
    free(w->fnx);
    free(w->stacks);
    free(w->procs);
    for (uint32_t i = 1; i < w->n_threads; i++) {
        free(w->ts[i].tick);
        free(w->ts[i].ref);
    }
    free(w->threads);
    free(w->ts);
    for (uint32_t i = 0; i < w->n_series; i++) {
        free(w->series[i].dt);
        free(w->series[i].dv);
    }
    free(w->series);
    free(w->str_tab.slots);
    free(w->fn_tab.slots);
    free(w->stack_tab.slots);
    free(w->proc_tab.slots);
    free(w->thread_tab.slots);
    free(w->series_tab.slots);
    free(w->text);
}
