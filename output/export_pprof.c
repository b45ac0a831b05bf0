/*
 * export_pprof.c — pprof's profile (output/profile.proto), gzipped, for go tool pprof, Pyroscope
 * and Parca. Samples are aggregated per (stack, thread, GIL, idle) so the labels stay exact; one
 * Location per (function, line), since Python frames have no addresses. Values are the sample
 * count, wall time (count × achieved period) and CPU time (the samples whose thread was not idle,
 * × period: an estimate from the sampled OS state, not a CPU clock). Every selected sample is
 * counted: torn ones and threads with no Python frame under a frame that says so.
 */
#include "output/export.h"

#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "profile.pb-c.h"

/* Sample values, in sample_type order; wall is the default view (pytrace samples every thread,
 * running or not, like a wall-clock profiler). */
enum { V_SAMPLES, V_WALL, V_CPU, N_VALUES };

/* Fixed strings: string_table[0..N_FIXED), in this order ("" first, as pprof requires). */
enum { S_EMPTY, S_SAMPLES, S_COUNT, S_WALL, S_NANOSECONDS, S_CPU, S_THREAD_NAME, S_TID, S_GIL,
       S_IDLE, S_TRUE, S_FALSE, S_TORN, S_NO_FRAME, S_UNKNOWN, N_FIXED };
static const char *const fixed_strings[N_FIXED] = {
    "", "samples", "count", "wall", "nanoseconds", "cpu", "thread_name", "tid", "gil", "idle",
    "true", "false", "<torn sample>", "<no Python frame>", "<unknown>",
};

#define PP_TORN UINT32_MAX   /* group node of torn samples; node 0: no Python frame */
#define PP_FN_TORN(t) ((uint32_t)(t)->n_functions)       /* their synthetic functions */
#define PP_FN_NONE(t) ((uint32_t)(t)->n_functions + 1)
#define PP_LABELS 4

/* Samples of one stack leaf, thread and GIL/idle state. */
struct pp_group {
    uint32_t node, thread;
    uint8_t flags;
    uint64_t count;
};

typedef Perftools__Profiles__Function pp_function;
typedef Perftools__Profiles__Location pp_location;
typedef Perftools__Profiles__Line pp_line;
typedef Perftools__Profiles__Sample pp_sample;
typedef Perftools__Profiles__Label pp_label;

/* Everything the Profile message points into; freed together by pp_free. */
struct pp {
    const struct export_view *v;
    char **strings;              /* borrowed from the trace or fixed_strings */
    size_t n_strings, cap_strings;
    int64_t *str_of;             /* by trace string id: string_table index, 0 = not yet */
    uint64_t *fn_of;             /* by function id (+2 synthetic): Function id, 0 = not yet */
    pp_function *fns;
    size_t n_fns;
    uint64_t *loc_keys, *loc_vals;   /* open addressing: (function, line) -> Location id */
    size_t loc_cap;
    pp_location *locs;
    pp_line *lines;
    size_t n_locs, cap_locs;
    struct pp_group *groups;
    size_t n_groups;
    pp_sample *samples;
    uint64_t *loc_ids;           /* every sample's location ids, leaf first, back to back */
    size_t n_loc_ids, cap_loc_ids;
    int64_t *values;
    pp_label *labels;
    size_t *n_labels;
    /* The message's pointer arrays, made once the arrays above stop moving. */
    pp_sample **sample_ptrs;
    pp_label **label_ptrs;
    pp_location **loc_ptrs;
    pp_line **line_ptrs;
    pp_function **fn_ptrs;
    bool oom;
};

static void *pp_grow(struct pp *p, void *arr, size_t *cap, size_t need, size_t size)
{
    if (need <= *cap)
        return arr;
    size_t cap2 = *cap ? *cap : 64;
    while (cap2 < need)
        cap2 *= 2;
    void *grown = realloc(arr, cap2 * size);
    if (!grown) {
        p->oom = true;
        return arr;
    }
    *cap = cap2;
    return grown;
}

static int64_t pp_add_string(struct pp *p, const char *s)
{
    p->strings = pp_grow(p, p->strings, &p->cap_strings, p->n_strings + 1, sizeof *p->strings);
    if (p->oom)
        return 0;
    /* protobuf-c only reads the strings; the cast keeps them borrowed, never copied. */
    p->strings[p->n_strings] = (char *)s;
    return (int64_t)p->n_strings++;
}

/* The string_table index of trace string `id`. */
static int64_t pp_tstr(struct pp *p, uint32_t id)
{
    const struct trace *t = p->v->t;
    if (!id || id >= t->n_strings)
        return S_EMPTY;
    if (!p->str_of[id])
        p->str_of[id] = pp_add_string(p, trace_str(t, id));
    return p->str_of[id];
}

/* The Function id of trace function `fn`: 0 is unknown, and two ids past the trace's stand for
 * the synthetic frames (PP_FN_TORN, PP_FN_NONE). */
static uint64_t pp_function_id(struct pp *p, uint32_t fn)
{
    const struct trace *t = p->v->t;
    if (p->fn_of[fn])
        return p->fn_of[fn];
    pp_function *f = &p->fns[p->n_fns];
    perftools__profiles__function__init(f);
    f->id = p->n_fns + 1;
    if (fn == PP_FN_TORN(t) || fn == PP_FN_NONE(t)) {
        f->name = fn == PP_FN_TORN(t) ? S_TORN : S_NO_FRAME;
    } else if (!fn) {
        f->name = S_UNKNOWN;
    } else {
        const struct trace_function *tf = &t->functions[fn];
        /* The qualname (Class.method, 3.11+) reads best; co_name is what the runtime calls it.
         * pprof takes name == system_name as "not demangled yet" and its demanglers turn
         * Python's "<module>", "<lambda>" or "<genexpr>" into "<unknown>": system_name is only
         * set when it differs. */
        const char *qual = trace_str(t, tf->qualname);
        f->name = pp_tstr(p, *qual ? tf->qualname : tf->name);
        if (*qual && strcmp(qual, trace_str(t, tf->name)) != 0)
            f->system_name = pp_tstr(p, tf->name);
        f->filename = pp_tstr(p, tf->file);
        f->start_line = tf->first_line;
    }
    p->n_fns++;
    return p->fn_of[fn] = f->id;
}

static uint64_t pp_hash(uint64_t k)
{
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdULL;
    k ^= k >> 33;
    return k;
}

static void pp_loc_rehash(struct pp *p)
{
    size_t cap = p->loc_cap ? p->loc_cap * 2 : 1024;
    uint64_t *keys = calloc(cap, sizeof *keys), *vals = calloc(cap, sizeof *vals);
    if (!keys || !vals) {
        free(keys);
        free(vals);
        p->oom = true;
        return;
    }
    for (size_t i = 0; i < p->loc_cap; i++) {
        if (!p->loc_vals[i])
            continue;
        size_t j = pp_hash(p->loc_keys[i]) & (cap - 1);
        while (vals[j])
            j = (j + 1) & (cap - 1);
        keys[j] = p->loc_keys[i];
        vals[j] = p->loc_vals[i];
    }
    free(p->loc_keys);
    free(p->loc_vals);
    p->loc_keys = keys;
    p->loc_vals = vals;
    p->loc_cap = cap;
}

static uint64_t pp_new_location(struct pp *p, uint32_t fn, int32_t line)
{
    size_t cap = p->cap_locs;
    p->locs = pp_grow(p, p->locs, &cap, p->n_locs + 1, sizeof *p->locs);
    p->lines = pp_grow(p, p->lines, &p->cap_locs, p->n_locs + 1, sizeof *p->lines);
    if (p->oom)
        return 0;
    pp_location *l = &p->locs[p->n_locs];
    pp_line *ln = &p->lines[p->n_locs];
    perftools__profiles__location__init(l);
    perftools__profiles__line__init(ln);
    l->id = p->n_locs + 1;
    l->mapping_id = 1;
    ln->function_id = pp_function_id(p, fn);
    ln->line = line > 0 ? line : 0;
    p->n_locs++;
    return l->id;
}

/* The Location id of (function, line), made on first use. */
static uint64_t pp_location_id(struct pp *p, uint32_t fn, int32_t line)
{
    if (2 * (p->n_locs + 1) > p->loc_cap)
        pp_loc_rehash(p);
    if (p->oom)
        return 0;
    uint64_t key = (uint64_t)fn << 32 | (uint32_t)line;
    size_t j = pp_hash(key) & (p->loc_cap - 1);
    while (p->loc_vals[j] && p->loc_keys[j] != key)
        j = (j + 1) & (p->loc_cap - 1);
    if (!p->loc_vals[j]) {
        p->loc_keys[j] = key;
        p->loc_vals[j] = pp_new_location(p, fn, line);
    }
    return p->loc_vals[j];
}

static int cmp_group(const void *a, const void *b)
{
    const struct pp_group *x = a, *y = b;
    if (x->node != y->node)
        return x->node < y->node ? -1 : 1;
    if (x->thread != y->thread)
        return x->thread < y->thread ? -1 : 1;
    return (int)x->flags - (int)y->flags;
}

/* Selected samples, merged per (node, thread, GIL, idle); torn ones under PP_TORN. */
static void pp_aggregate(struct pp *p)
{
    const struct trace *t = p->v->t;
    p->groups = malloc((p->v->samples_kept + 1) * sizeof *p->groups);
    if (!p->groups) {
        p->oom = true;
        return;
    }
    size_t n = 0;
    for (size_t i = 0; i < t->n_samples; i++) {
        const struct trace_sample *s = &t->samples[i];
        if (!export_sample_ok(p->v, s))
            continue;
        if (n == p->v->samples_kept)   /* counted with the same test: cannot happen */
            break;
        uint32_t node = s->flags & TRACE_F_BAD ? PP_TORN : s->stack < t->n_stacks ? s->stack : 0;
        uint8_t state = s->flags & (TRACE_F_GIL | TRACE_F_IDLE);
        p->groups[n++] = (struct pp_group){node, s->thread, state, 1};
    }
    qsort(p->groups, n, sizeof *p->groups, cmp_group);
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        if (m && !cmp_group(&p->groups[m - 1], &p->groups[i]))
            p->groups[m - 1].count++;
        else
            p->groups[m++] = p->groups[i];
    }
    p->n_groups = m;
}

/* Appends the group's location ids, leaf first; returns how many. */
static size_t pp_stack_locations(struct pp *p, const struct pp_group *g,
                                 struct export_frame *frames)
{
    const struct trace *t = p->v->t;
    size_t depth = 0;
    if (g->node != PP_TORN && g->node)
        depth = export_stack(p->v, g->node, frames, EXPORT_MAX_DEPTH);
    /* An id the trace does not define is unknown (0), never one of the synthetic ids. */
    for (size_t d = 0; d < depth; d++)
        if (frames[d].function >= t->n_functions)
            frames[d].function = 0;
    if (!depth) {
        /* A torn read or a thread with no Python frame still counts, under a frame saying so. */
        frames[0] = (struct export_frame){g->node == PP_TORN ? PP_FN_TORN(t) : PP_FN_NONE(t), 0};
        depth = 1;
    }
    p->loc_ids = pp_grow(p, p->loc_ids, &p->cap_loc_ids, p->n_loc_ids + depth, sizeof *p->loc_ids);
    if (p->oom)
        return 0;
    for (size_t d = 0; d < depth; d++) {
        const struct export_frame *f = &frames[depth - 1 - d];
        p->loc_ids[p->n_loc_ids + d] = pp_location_id(p, f->function, f->line);
    }
    p->n_loc_ids += depth;
    return depth;
}

/* The sampling period in whole nanoseconds, from the achieved rate (export_view_init); libm
 * stays out of the link: round by hand. */
static int64_t pp_period(const struct export_view *v)
{
    return (int64_t)(v->period_ns + 0.5);
}

static void pp_label_str(pp_label *l, int64_t key, int64_t str)
{
    perftools__profiles__label__init(l);
    l->key = key;
    l->str = str;
}

/* Values and labels of group i (its pointers are set in pp_link, once arrays stop moving). */
static void pp_fill_sample(struct pp *p, size_t i)
{
    const struct pp_group *g = &p->groups[i];
    const struct trace *t = p->v->t;
    int64_t period = pp_period(p->v);
    int64_t *val = &p->values[i * N_VALUES];
    val[V_SAMPLES] = (int64_t)g->count;
    val[V_WALL] = (int64_t)g->count * period;
    val[V_CPU] = g->flags & TRACE_F_IDLE ? 0 : (int64_t)g->count * period;
    pp_label *l = &p->labels[i * PP_LABELS];
    size_t n = 0;
    const struct trace_thread *th = g->thread < t->n_threads ? &t->threads[g->thread] : NULL;
    if (th && *trace_str(t, th->name))
        pp_label_str(&l[n++], S_THREAD_NAME, pp_tstr(p, th->name));
    if (th) {
        perftools__profiles__label__init(&l[n]);
        l[n].key = S_TID;
        l[n++].num = th->tid;
    }
    pp_label_str(&l[n++], S_GIL, g->flags & TRACE_F_GIL ? S_TRUE : S_FALSE);
    pp_label_str(&l[n++], S_IDLE, g->flags & TRACE_F_IDLE ? S_TRUE : S_FALSE);
    p->n_labels[i] = n;
}

static void pp_build_samples(struct pp *p)
{
    struct export_frame *frames = malloc(EXPORT_MAX_DEPTH * sizeof *frames);
    size_t n = p->n_groups;
    p->samples = calloc(n + 1, sizeof *p->samples);
    p->values = calloc(n * N_VALUES + 1, sizeof *p->values);
    p->labels = calloc(n * PP_LABELS + 1, sizeof *p->labels);
    p->n_labels = calloc(n + 1, sizeof *p->n_labels);
    if (!frames || !p->samples || !p->values || !p->labels || !p->n_labels) {
        free(frames);
        p->oom = true;
        return;
    }
    for (size_t i = 0; i < n && !p->oom; i++) {
        perftools__profiles__sample__init(&p->samples[i]);
        p->samples[i].n_location_id = pp_stack_locations(p, &p->groups[i], frames);
        pp_fill_sample(p, i);
    }
    free(frames);
}

static void pp_link(struct pp *p)
{
    p->sample_ptrs = calloc(p->n_groups + 1, sizeof *p->sample_ptrs);
    p->label_ptrs = calloc(p->n_groups * PP_LABELS + 1, sizeof *p->label_ptrs);
    p->loc_ptrs = calloc(p->n_locs + 1, sizeof *p->loc_ptrs);
    p->line_ptrs = calloc(p->n_locs + 1, sizeof *p->line_ptrs);
    p->fn_ptrs = calloc(p->n_fns + 1, sizeof *p->fn_ptrs);
    if (!p->sample_ptrs || !p->label_ptrs || !p->loc_ptrs || !p->line_ptrs || !p->fn_ptrs) {
        p->oom = true;
        return;
    }
    size_t off = 0;
    for (size_t i = 0; i < p->n_groups; i++) {
        pp_sample *s = &p->samples[i];
        s->location_id = &p->loc_ids[off];
        off += s->n_location_id;
        s->n_value = N_VALUES;
        s->value = &p->values[i * N_VALUES];
        s->n_label = p->n_labels[i];
        s->label = &p->label_ptrs[i * PP_LABELS];
        for (size_t k = 0; k < PP_LABELS; k++)
            s->label[k] = &p->labels[i * PP_LABELS + k];
        p->sample_ptrs[i] = s;
    }
    for (size_t i = 0; i < p->n_locs; i++) {
        p->line_ptrs[i] = &p->lines[i];
        p->locs[i].n_line = 1;
        p->locs[i].line = &p->line_ptrs[i];
        p->loc_ptrs[i] = &p->locs[i];
    }
    for (size_t i = 0; i < p->n_fns; i++)
        p->fn_ptrs[i] = &p->fns[i];
}

static bool pp_init(struct pp *p, const struct export_view *v)
{
    const struct trace *t = v->t;
    memset(p, 0, sizeof *p);
    p->v = v;
    p->str_of = calloc(t->n_strings + 1, sizeof *p->str_of);
    p->fn_of = calloc(t->n_functions + 2, sizeof *p->fn_of);
    p->fns = calloc(t->n_functions + 2, sizeof *p->fns);
    if (!p->str_of || !p->fn_of || !p->fns) {
        p->oom = true;
        return false;
    }
    for (size_t i = 0; i < N_FIXED; i++)
        pp_add_string(p, fixed_strings[i]);
    return !p->oom;
}

static void pp_free(struct pp *p)
{
    free(p->strings);
    free(p->str_of);
    free(p->fn_of);
    free(p->fns);
    free(p->loc_keys);
    free(p->loc_vals);
    free(p->locs);
    free(p->lines);
    free(p->groups);
    free(p->samples);
    free(p->loc_ids);
    free(p->values);
    free(p->labels);
    free(p->n_labels);
    free(p->sample_ptrs);
    free(p->label_ptrs);
    free(p->loc_ptrs);
    free(p->line_ptrs);
    free(p->fn_ptrs);
}

/* One mapping for the interpreter, marked fully symbolized: pprof then names it as the profile's
 * binary and never tries to symbolize Python locations (they have no addresses) from files. */
static void pp_mapping(struct pp *p, Perftools__Profiles__Mapping *m)
{
    const struct trace *t = p->v->t;
    perftools__profiles__mapping__init(m);
    m->id = 1;
    m->filename = pp_add_string(p, *t->python_binary ? t->python_binary : t->name);
    m->has_functions = m->has_filenames = m->has_line_numbers = true;
}

/* The selected window in wall-clock time: its start (ns since the epoch) and length. */
static void pp_window(const struct export_view *v, int64_t *start_wall, int64_t *duration)
{
    const struct trace *t = v->t;
    uint64_t end = t->has_trailer ? t->summary.end_mono_ns : 0;
    for (size_t i = 0; i < t->n_samples; i++)
        if (t->samples[i].t_ns > end)
            end = t->samples[i].t_ns;
    if (end > v->t1)
        end = v->t1;
    *start_wall = (int64_t)t->start_wall_ns + ((int64_t)v->t0 - (int64_t)t->start_mono_ns);
    *duration = end > v->t0 ? (int64_t)(end - v->t0) : 0;
}

/* Streams buf through gzip (zlib's own header and trailer: windowBits 16 + MAX_WBITS). */
static enum pt_status pp_write_gzip(const uint8_t *buf, size_t len, FILE *out, struct pt_err *err)
{
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    if (deflateInit2(&zs, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 16 + MAX_WBITS, 8,
                     Z_DEFAULT_STRATEGY) != Z_OK)
        return pt_fail(err, PT_EFAIL, "cannot start gzip compression");
    unsigned char chunk[1 << 16];
    enum pt_status rc = PT_OK;
    int zrc;
    zs.next_in = (Bytef *)buf;
    do {
        /* avail_in is a uInt: feed a buffer past 4 GiB in pieces. */
        if (!zs.avail_in && len) {
            zs.avail_in = len > (1u << 30) ? (1u << 30) : (uInt)len;
            len -= zs.avail_in;
        }
        zs.next_out = chunk;
        zs.avail_out = sizeof chunk;
        zrc = deflate(&zs, len || zs.avail_in ? Z_NO_FLUSH : Z_FINISH);
        size_t n = sizeof chunk - zs.avail_out;
        if (zrc == Z_STREAM_ERROR || (n && fwrite(chunk, 1, n, out) != n)) {
            rc = pt_fail(err, PT_EFAIL, "cannot write the pprof profile");
            break;
        }
    } while (zrc != Z_STREAM_END);
    deflateEnd(&zs);
    return rc;
}

static enum pt_status pp_pack_and_write(struct pp *p, FILE *out, struct pt_err *err)
{
    const struct export_view *v = p->v;
    Perftools__Profiles__Profile prof;
    Perftools__Profiles__ValueType types[N_VALUES], period_type, *type_ptrs[N_VALUES];
    static const int64_t type_names[N_VALUES][2] = {
        [V_SAMPLES] = {S_SAMPLES, S_COUNT}, [V_WALL] = {S_WALL, S_NANOSECONDS},
        [V_CPU] = {S_CPU, S_NANOSECONDS},
    };
    perftools__profiles__profile__init(&prof);
    for (size_t i = 0; i < N_VALUES; i++) {
        perftools__profiles__value_type__init(&types[i]);
        types[i].type = type_names[i][0];
        types[i].unit = type_names[i][1];
        type_ptrs[i] = &types[i];
    }
    perftools__profiles__value_type__init(&period_type);
    period_type.type = S_WALL;
    period_type.unit = S_NANOSECONDS;
    int64_t comment = *v->t->cmdline ? pp_add_string(p, v->t->cmdline) : 0;
    Perftools__Profiles__Mapping mapping, *mapping_ptr = &mapping;
    pp_mapping(p, &mapping);
    if (p->oom)
        return pt_fail(err, PT_EFAIL, "out of memory");
    prof.n_sample_type = N_VALUES;
    prof.sample_type = type_ptrs;
    prof.n_sample = p->n_groups;
    prof.sample = p->sample_ptrs;
    prof.n_mapping = 1;
    prof.mapping = &mapping_ptr;
    prof.n_location = p->n_locs;
    prof.location = p->loc_ptrs;
    prof.n_function = p->n_fns;
    prof.function = p->fn_ptrs;
    prof.n_string_table = p->n_strings;
    prof.string_table = p->strings;
    pp_window(v, &prof.time_nanos, &prof.duration_nanos);
    prof.period_type = &period_type;
    prof.period = pp_period(v);
    prof.n_comment = comment ? 1 : 0;
    prof.comment = &comment;
    prof.default_sample_type = S_WALL;

    size_t len = perftools__profiles__profile__get_packed_size(&prof);
    uint8_t *buf = malloc(len ? len : 1);
    if (!buf)
        return pt_fail(err, PT_EFAIL, "out of memory");
    perftools__profiles__profile__pack(&prof, buf);
    enum pt_status rc = pp_write_gzip(buf, len, out, err);
    free(buf);
    return rc;
}

enum pt_status export_pprof(const struct export_view *v, FILE *out, struct pt_err *err)
{
    struct pp p;
    enum pt_status rc;
    if (pp_init(&p, v)) {
        pp_aggregate(&p);
        if (!p.oom)
            pp_build_samples(&p);
        if (!p.oom)
            pp_link(&p);
    }
    if (p.oom)
        rc = pt_fail(err, PT_EFAIL, "out of memory");
    else
        rc = pp_pack_and_write(&p, out, err);
    pp_free(&p);
    return rc;
}
