/*
 * test_ebpf_records.c — the eBPF backend's records turned into samples (attach/ebpf_records.c),
 * without the kernel: records as the BPF programs send them, handed to ebpf_on_record() one by
 * one, for a fake process of every CPython layout (tests/unit/fakepy.c), into a sink that logs
 * each sample's time and stack.
 *
 * What is pinned: the sampling grid covers wall time — ticks the CPU clock lost while a thread ran
 * (the kernel's perf throttling) are filled with the stack before them, waits are filled once and
 * not again, and jitter under half a period is not a gap; and frames that did not change since
 * the thread's previous record keep their names and lines while the changed ones are resolved.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attach/ebpf_priv.h"
#include "attach/session.h"
#include "readers/walk.h"

#include "fakepy.c"
#include "per_layout.h"

#define MS 1000000ULL
#define PID 4321
#define TSTATE 0x7f3a12345000ULL

static const struct py_layout *cur;

/* ---- the sink: every sample's time, leaf and stack ------------------------------------------ */

#define LOG_MAX 256
#define STACK_MAX 8

struct logged {
    uint64_t t_ns;
    uint32_t n;
    bool idle;
    char names[STACK_MAX][32];
    int32_t lines[STACK_MAX];
};

struct spy_sink {
    struct logged log[LOG_MAX];
    uint32_t n;
    uint32_t off_cpu;
};

static void spy_feed(void *ctx, uint32_t proc, struct py_proc *p, const struct py_snapshot *snap,
                     uint64_t t_ns)
{
    (void)proc;
    (void)p;
    struct spy_sink *k = ctx;
    assert_int_equal(snap->nthreads, 1);
    assert_true(k->n < LOG_MAX);
    struct logged *l = &k->log[k->n++];
    const struct py_thread *pt = &snap->threads[0];
    l->t_ns = t_ns;
    l->idle = pt->idle;
    l->n = pt->nframes < STACK_MAX ? pt->nframes : STACK_MAX;
    for (uint32_t i = 0; i < l->n; i++) {
        const struct py_frame *f = py_thread_frame(snap, pt, i);
        snprintf(l->names[i], sizeof l->names[i], "%s", f->code ? f->code->name : "?");
        l->lines[i] = f->line;
    }
}

static void spy_off_cpu(void *ctx, uint32_t proc, struct py_proc *p,
                        const struct py_snapshot *snap, uint64_t t_begin, uint64_t t_end)
{
    (void)proc;
    (void)p;
    (void)snap;
    (void)t_begin;
    (void)t_end;
    ((struct spy_sink *)ctx)->off_cpu++;
}

/* ---- a sampler with one traced thread of a fake process ------------------------------------- */

struct world {
    bool live;
    struct fakepy fp;
    struct py_proc *p;
    uint64_t main_code, spin_code, wait_code;
    struct ebpf_sampler e;
    struct ebpf_target t, *targets[1];
    struct ebpf_thread th;
    struct session_sink sink;
    struct spy_sink spy;
    struct pys_record *rec;
};

static void world_init(struct world *w)
{
    memset(w, 0, sizeof *w);
    fakepy_init(&w->fp, cur, 1u << 20);
    w->live = true;
    w->main_code = fakepy_code(&w->fp, "main", "main", "app.py", 10);
    w->spin_code = fakepy_code(&w->fp, "spin", "spin", "app.py", 30);
    w->wait_code = fakepy_code(&w->fp, "wait", "wait", "app.py", 50);
    w->p = fakepy_proc(&w->fp);

    w->th = (struct ebpf_thread){.host_tid = PID, .native_id = PID, .thread_id = 0x7f3a5f7fe700ULL,
                                 .tstate = TSTATE, .seen = true};
    w->t.pid = PID;
    w->t.p = w->p;
    w->t.proc = 1;
    w->t.th = &w->th;
    w->t.nth = w->t.cap = 1;
    py_snapshot_init(&w->t.walk);
    w->targets[0] = &w->t;

    py_snapshot_init(&w->e.one);
    w->e.targets = w->targets;
    w->e.ntargets = w->e.cap_targets = 1;
    w->e.period_ns = 1 * MS;
    w->e.tmp = calloc(1, sizeof *w->e.tmp);
    w->rec = calloc(1, sizeof *w->rec);
    assert_non_null(w->e.tmp);
    assert_non_null(w->rec);

    w->sink.feed = spy_feed;
    w->sink.off_cpu = spy_off_cpu;
    w->sink.ctx = &w->spy;
    w->e.sink = &w->sink;
}

static void world_fini(struct world *w)
{
    if (!w->live)
        return;
    free(w->th.last);
    free(w->e.tmp);
    free(w->rec);
    py_snapshot_free(&w->e.one);
    py_snapshot_free(&w->t.walk);
    py_proc_close(w->p);
    fakepy_fini(&w->fp);
    w->live = false;
}

static int world_setup(void **state)
{
    *state = calloc(1, sizeof(struct world));
    return *state ? 0 : -1;
}

static int world_teardown(void **state)
{
    world_fini(*state);
    free(*state);
    return 0;
}

/* The instruction field the BPF program sends for a frame of `code` at byte offset off. */
static uint64_t instr_of(uint64_t code, int off)
{
    if (cur->frame_model == PY_FRAMES_INTERP)
        return code + (uint64_t)cur->co_code_adaptive + (uint64_t)off;
    return cur->linetable == PY_LT_LINETABLE310 ? (uint64_t)(off / 2) : (uint64_t)off;
}

/* Frames innermost first: pairs of (code, byte offset); frame addresses stand for the slots of
 * a data stack (the outermost lowest), as the kernel would send them. */
static void set_frames(struct world *w, int n, const uint64_t *codes, const int *offs)
{
    w->rec->nframes = (__u16)n;
    for (int i = 0; i < n; i++) {
        w->rec->frames[i].addr = 0x7f3a40000000ULL + (uint64_t)(n - 1 - i) * 0x80;
        w->rec->frames[i].code = codes[i];
        w->rec->frames[i].instr = instr_of(codes[i], offs[i]);
    }
}

static void send_record(struct world *w)
{
    size_t size = PYS_RECORD_HEADER_SIZE + w->rec->nframes * sizeof(struct pys_frame);
    assert_int_equal(ebpf_on_record(&w->e, w->rec, size), 0);
}

/* An on-CPU sample of leaf at leaf_off called from main at main_off, in w->rec; returns its size. */
static size_t make_sample(struct world *w, uint64_t t_ns, uint64_t leaf, int leaf_off, int main_off)
{
    uint64_t codes[2] = {leaf, w->main_code};
    int offs[2] = {leaf_off, main_off};
    memset(w->rec, 0, PYS_RECORD_HEADER_SIZE);
    w->rec->kind = PYS_REC_SAMPLE;
    w->rec->pid = PID;
    w->rec->tid = PID;
    w->rec->t_ns = t_ns;
    w->rec->tstate = TSTATE;
    set_frames(w, 2, codes, offs);
    return PYS_RECORD_HEADER_SIZE + w->rec->nframes * sizeof(struct pys_frame);
}

static void sample(struct world *w, uint64_t t_ns, uint64_t leaf, int leaf_off, int main_off)
{
    make_sample(w, t_ns, leaf, leaf_off, main_off);
    send_record(w);
}

/* The thread blocked at t_ns in `leaf` and ran again at t_end (not a wait for a CPU). */
static void blocked(struct world *w, uint64_t t_ns, uint64_t t_end, uint64_t leaf)
{
    uint64_t codes[2] = {leaf, w->main_code};
    int offs[2] = {2, 4};
    memset(w->rec, 0, PYS_RECORD_HEADER_SIZE);
    w->rec->kind = PYS_REC_OFFCPU;
    w->rec->pid = PID;
    w->rec->tid = PID;
    w->rec->t_ns = t_ns;
    w->rec->t_end_ns = t_end;
    w->rec->tstate = TSTATE;
    set_frames(w, 2, codes, offs);
    send_record(w);
}

static void expect(const struct world *w, uint32_t i, uint64_t t_ns, const char *leaf)
{
    assert_true(i < w->spy.n);
    assert_int_equal(w->spy.log[i].t_ns, t_ns);
    assert_int_equal(w->spy.log[i].n, 2);
    assert_string_equal(w->spy.log[i].names[0], leaf);
    assert_string_equal(w->spy.log[i].names[1], "main");
}

/* ---- tests ----------------------------------------------------------------------------------- */

static void lost_ticks_are_filled_with_the_stack_before_them(void **state)
{
    struct world *w = *state;
    world_init(w);
    sample(w, 1 * MS, w->spin_code, 10, 4);
    sample(w, 5 * MS, w->wait_code, 2, 4);   /* the ticks of 2, 3 and 4 ms were throttled */
    assert_int_equal(w->spy.n, 5);
    expect(w, 0, 1 * MS, "spin");
    expect(w, 1, 2 * MS, "spin");
    expect(w, 2, 3 * MS, "spin");
    expect(w, 3, 4 * MS, "spin");
    expect(w, 4, 5 * MS, "wait");
    for (uint32_t i = 0; i < 5; i++)
        assert_false(w->spy.log[i].idle);
    assert_int_equal(w->e.gap_samples, 3);
}

static void jitter_under_half_a_period_is_not_a_gap(void **state)
{
    struct world *w = *state;
    world_init(w);
    sample(w, 1 * MS, w->spin_code, 10, 4);
    sample(w, 2 * MS + MS / 2 - 1, w->spin_code, 12, 4);
    sample(w, 3 * MS + MS / 3, w->spin_code, 14, 4);
    assert_int_equal(w->spy.n, 3);
    assert_int_equal(w->e.gap_samples, 0);
}

static void a_wait_is_filled_once_not_again_as_a_gap(void **state)
{
    struct world *w = *state;
    world_init(w);
    sample(w, 1 * MS, w->spin_code, 10, 4);
    blocked(w, 1 * MS + MS / 5, 4 * MS + MS / 2, w->wait_code);   /* idle at 2, 3 and 4 ms */
    sample(w, 5 * MS, w->spin_code, 10, 4);
    assert_int_equal(w->spy.n, 5);
    expect(w, 0, 1 * MS, "spin");
    expect(w, 1, 2 * MS, "wait");
    expect(w, 2, 3 * MS, "wait");
    expect(w, 3, 4 * MS, "wait");
    expect(w, 4, 5 * MS, "spin");
    assert_true(w->spy.log[1].idle);
    assert_false(w->spy.log[4].idle);
    assert_int_equal(w->spy.off_cpu, 1);
    assert_int_equal(w->e.gap_samples, 0);
}

static void unchanged_root_frames_keep_names_and_changed_ones_are_resolved(void **state)
{
    struct world *w = *state;
    world_init(w);
    sample(w, 1 * MS, w->spin_code, 10, 4);
    sample(w, 2 * MS, w->wait_code, 2, 4);     /* the leaf changed, main did not */
    sample(w, 3 * MS, w->wait_code, 2, 20);    /* main moved on: its line must follow */
    sample(w, 4 * MS, w->wait_code, 2, 20);    /* nothing changed */
    assert_int_equal(w->spy.n, 4);
    expect(w, 1, 2 * MS, "wait");
    expect(w, 2, 3 * MS, "wait");
    expect(w, 3, 4 * MS, "wait");
    assert_int_equal(w->spy.log[0].lines[0], fakepy_line(30, 10));
    assert_int_equal(w->spy.log[1].lines[0], fakepy_line(50, 2));
    assert_int_equal(w->spy.log[1].lines[1], fakepy_line(10, 4));
    assert_int_equal(w->spy.log[2].lines[1], fakepy_line(10, 20));
    assert_int_equal(w->spy.log[3].lines[0], fakepy_line(50, 2));
    assert_int_equal(w->spy.log[3].lines[1], fakepy_line(10, 20));
}

/* A drain past its time stops at the next look at the clock (every EBPF_DRAIN_CHECK records),
 * after handling the record it stopped on (libbpf has taken it off the ring); without a time
 * limit (0) it never stops. */
static void a_drain_past_its_time_stops_and_keeps_the_record_it_stopped_on(void **state)
{
    struct world *w = *state;
    world_init(w);
    size_t size = make_sample(w, 0, w->spin_code, 10, 4);
    w->e.drain_until_ns = 1;   /* long past */
    int rc = 0;
    uint32_t sent = 0;
    while (rc == 0 && sent < 10 * EBPF_DRAIN_CHECK) {
        w->rec->t_ns = (++sent) * MS;
        rc = ebpf_on_record(&w->e, w->rec, size);
    }
    assert_int_equal(rc, EBPF_DRAIN_CUT);
    assert_int_equal(sent, EBPF_DRAIN_CHECK);
    assert_int_equal(w->spy.n, EBPF_DRAIN_CHECK);   /* libbpf took the last one off the ring */
    w->e.drain_until_ns = 0;
    for (uint32_t i = 0; i < 2 * EBPF_DRAIN_CHECK; i++) {
        w->rec->t_ns = (++sent) * MS;
        assert_int_equal(ebpf_on_record(&w->e, w->rec, size), 0);
    }
}

#define WT(f) cmocka_unit_test_setup_teardown(f, world_setup, world_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        WT(lost_ticks_are_filled_with_the_stack_before_them),
        WT(a_drain_past_its_time_stops_and_keeps_the_record_it_stopped_on),
        WT(jitter_under_half_a_period_is_not_a_gap),
        WT(a_wait_is_filled_once_not_again_as_a_gap),
        WT(unchanged_root_frames_keep_names_and_changed_ones_are_resolved),
    };
    return PER_LAYOUT_RUN("ebpf_records", tests, cur);
}
