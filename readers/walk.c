/*
 * walk.c — interpreters → thread states, and for each thread its stack (stack.c). Version
 * differences are offsets in struct py_layout. Lists read from the target may be cyclic or
 * dangling: every chain is bounded and checked for cycles with Brent's method (O(1) memory).
 */
#include "readers/stack.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

void py_snapshot_init(struct py_snapshot *s)
{
    memset(s, 0, sizeof *s);
}

void py_snapshot_free(struct py_snapshot *s)
{
    free(s->threads);
    free(s->frames);
    memset(s, 0, sizeof *s);
}

static struct py_thread *push_thread(struct py_snapshot *s)
{
    if (s->nthreads == s->cap_threads) {
        uint32_t cap = s->cap_threads ? s->cap_threads * 2 : 16;
        struct py_thread *t = realloc(s->threads, cap * sizeof *t);
        if (!t)
            return NULL;
        s->threads = t;
        s->cap_threads = cap;
    }
    struct py_thread *t = &s->threads[s->nthreads++];
    memset(t, 0, sizeof *t);
    t->native_id = -1;
    t->interp_id = -1;
    return t;
}

#define WALK_RETRIES 2
#define WALK_REFETCHES 2   /* whole-plan re-reads per thread and sample (frame objects) */

#define FIELDS_BLOCK_MAX 8192   /* read fields this close together in one call */

/* The span [*lo, *hi) of the present fields; *hi < 0 when none is. */
static void fields_span(const int32_t *off, int n, int32_t *lo, int32_t *hi)
{
    *lo = INT32_MAX;
    *hi = -1;
    for (int i = 0; i < n; i++) {
        if (off[i] >= 0) {
            *lo = off[i] < *lo ? off[i] : *lo;
            *hi = off[i] + 8 > *hi ? off[i] + 8 : *hi;
        }
    }
}

/*
 * Reads n 8-byte fields at base + off[i] (off < 0: absent, left 0) into out[], with one read of
 * the span covering them when it is small (a syscall costs far more than the bytes it moves).
 * Returns 0 when every present field was read.
 */
static int read_fields(struct py_proc *p, uint64_t base, const int32_t *off, int n, uint64_t *out,
                       bool fresh)
{
    int32_t lo, hi;
    fields_span(off, n, &lo, &hi);
    for (int i = 0; i < n; i++)
        out[i] = 0;
    if (hi < 0)
        return 0;
    static __thread uint8_t block[FIELDS_BLOCK_MAX];
    if (hi - lo <= FIELDS_BLOCK_MAX) {
        if ((fresh ? mem_read_fresh : mem_read)(p->mem, base + (uint64_t)lo, block,
                                                (size_t)(hi - lo)) != 0)
            return -1;
        for (int i = 0; i < n; i++)
            if (off[i] >= 0)
                memcpy(&out[i], block + (off[i] - lo), 8);
        return 0;
    }
    for (int i = 0; i < n; i++)
        if (off[i] >= 0 && (fresh ? mem_read_fresh(p->mem, base + (uint64_t)off[i], &out[i], 8)
                                  : mem_read_ptr(p->mem, base + (uint64_t)off[i], &out[i])) != 0)
            return -1;
    return 0;
}

static uint64_t gil_holder_global(struct py_proc *p)
{
    const struct py_layout *L = &p->layout;
    uint64_t holder = 0;
    if (p->tstate_current_addr)
        mem_read_ptr(p->mem, p->tstate_current_addr, &holder);
    else if (p->runtime && L->rt_gilstate_current >= 0)
        mem_read_ptr(p->mem, p->runtime + (uint64_t)L->rt_gilstate_current, &holder);
    return holder;
}

/* 3.12+: each interpreter points at the GIL it uses; the holder is valid only while locked. */
static uint64_t gil_holder_of(struct py_proc *p, uint64_t gil)
{
    const struct py_layout *L = &p->layout;
    if (!gil || L->gil_locked < 0 || L->gil_last_holder < 0)
        return 0;
    const int32_t off[2] = {L->gil_locked, L->gil_last_holder};
    uint64_t v[2];
    if (read_fields(p, gil, off, 2, v, false) != 0)
        return 0;
    return (uint32_t)v[0] ? v[1] : 0;   /* locked is an int */
}

/* Whether any of t's frames or their offsets changed since the last walk; remembers them. */
static bool stack_moved(struct py_prev_stack *ps, const struct py_snapshot *s,
                        const struct py_thread *t)
{
    if (!ps || !t->nframes)
        return false;
    uint64_t sig = t->nframes;
    for (uint32_t i = 0; i < t->nframes; i++) {
        const struct py_frame *f = py_thread_frame(s, t, i);
        sig = (sig ^ f->addr ^ ((uint64_t)(uint32_t)f->lasti << 32)) * 0x100000001b3ull;
    }
    bool moved = sig != ps->sig;
    ps->sig = sig;
    return moved;
}

/* A GIL holder whose stack stood still is read at most this often (it may be blocked in C). */
#define GIL_HOLDER_STAT_NS 1000000ull
/* A blocked thread without the GIL whose stack stood still is read at most this often. */
#define BLOCKED_STAT_NS 50000000ull

/*
 * Idle or running, from /proc/PID/task/TID/stat — except that a thread holding the GIL whose stack
 * moved since the last walk is running Python code: no syscall for it between the rounds that
 * read CPU times. A GIL holder that did not move may be blocked in C: its state is read again
 * when the last reading is older than GIL_HOLDER_STAT_NS, else that reading stands. A thread that
 * was blocked at a reading under BLOCKED_STAT_NS old, has not held the GIL since and whose stack
 * has not moved, ran no Python code meanwhile: it is taken as still blocked (a sleeping or waiting
 * thread costs a /proc read every 50 ms, not every round; the daemon's idle workers spent a
 * quarter of its CPU there). A thread that wakes into C code without the GIL shows that late.
 */
static void fill_os_state(struct py_proc *p, const struct py_snapshot *s, struct py_thread *t,
                          bool cpu_round)
{
    struct py_prev_stack *ps = stack_prev(p, t->tstate, true);
    bool moved = stack_moved(ps, s, t);
    if (ps && t->holds_gil)
        ps->gil_since_stat = true;
    if (!cpu_round && !t->holds_gil && !t->bad && ps && !moved && !ps->gil_since_stat &&
        ps->stat_state && ps->stat_state != 'R' && s->t_ns - ps->stat_ns < BLOCKED_STAT_NS) {
        t->os_state = ps->stat_state;
        t->idle = true;
        return;
    }
    if (!cpu_round && t->holds_gil && !t->bad && ps) {
        if (moved) {
            t->os_state = 'R';
            t->idle = false;
            return;
        }
        if (ps->stat_state && s->t_ns - ps->stat_ns < GIL_HOLDER_STAT_NS) {
            t->os_state = ps->stat_state;
            t->idle = ps->stat_state != 'R';
            return;
        }
    }
    struct proc_tstat st;
    if (t->native_id > 0 && py_proc_thread_stat(p, (pid_t)t->native_id, &st) == 0) {
        if (ps) {
            ps->stat_state = st.state;
            ps->stat_ns = s->t_ns;
            ps->gil_since_stat = t->holds_gil;
        }
        t->os_state = st.state;
        t->idle = st.state != 'R';
        t->cpu_user_ns = st.utime_ns;
        t->cpu_sys_ns = st.stime_ns;
        t->cpu_valid = cpu_round;
    } else {
        t->idle = !t->holds_gil;
    }
}

/* Forgets the threads from number k on (and their frames). */
static void drop_threads_from(struct py_snapshot *s, uint32_t k)
{
    if (k >= s->nthreads)
        return;
    for (uint32_t r = k; r < s->nthreads; r++)
        s->bad_threads -= s->threads[r].bad ? 1 : 0;
    s->nframes = s->threads[k].first;
    s->nthreads = k;
}

/*
 * A cyclic list is only noticed after Brent's detector has gone round once: drop the threads
 * pushed since `start` from the first one whose thread state repeats an earlier one (rare path).
 */
static void drop_repeats(struct py_snapshot *s, uint32_t start)
{
    for (uint32_t k = start; k < s->nthreads; k++) {
        for (uint32_t j = start; j < k; j++) {
            if (s->threads[j].tstate == s->threads[k].tstate) {
                drop_threads_from(s, k);
                return;
            }
        }
    }
}

/*
 * Up to 3.11 a thread state is made and put first in the list by the thread that starts it, with
 * that thread's ids, and takes its own when its thread runs. Until then, to a caller it would look
 * like a second copy of its creator: a sample with no stack, or (read from an older copy of the
 * thread state than its frames) the new thread's stack, either one ending the creator's calls.
 * Drops, from the threads pushed since `start`, each one whose thread id a later one (older:
 * threads are put first) has, with its frames.
 */
#define UNSTARTED_NEAR_HEAD 8   /* threads started at once that drop_unstarted() looks for */

static void drop_unstarted(struct py_snapshot *s, uint32_t start)
{
    /* New thread states are put first: only the list's first few can be unstarted (a
     * comparison with every later one; all of them would be quadratic in the thread count). */
    for (uint32_t k = start; k < s->nthreads && k < start + UNSTARTED_NEAR_HEAD; k++) {
        const struct py_thread *t = &s->threads[k];
        bool later = false;
        for (uint32_t j = k + 1; j < s->nthreads && !later && t->thread_id; j++)
            later = s->threads[j].thread_id == t->thread_id;
        if (!later)
            continue;
        uint32_t first = t->first, n = t->nframes;
        s->bad_threads -= t->bad ? 1 : 0;
        memmove(&s->frames[first], &s->frames[first + n], (s->nframes - first - n) * sizeof *s->frames);
        s->nframes -= n;
        memmove(&s->threads[k], &s->threads[k + 1], (s->nthreads - k - 1) * sizeof *s->threads);
        s->nthreads--;
        for (uint32_t j = k; j < s->nthreads; j++)
            s->threads[j].first -= n;
        k--;
    }
}

/* Bytes of a thread state to read. */
static size_t ts_need(const struct py_layout *L)
{
    size_t need = (size_t)L->ts_size;
    return need > 4096 || need < 64 ? 4096 : need;
}

/* The stack of thread t (thread state tstate, just read into ts as fr says), read again at once
 * when torn, and its OS state. */
static void walk_stack(struct py_proc *p, struct py_snapshot *s, struct py_thread *t,
                       uint64_t tstate, uint8_t *ts, size_t need, struct fast_read *fr,
                       uint64_t interp, uint64_t gil, unsigned flags, bool cpu_round)
{
    const struct py_layout *L = &p->layout;
    int rd;
    t->holds_gil = gil && gil == tstate;
    t->first = s->nframes;
    if (!t->bad && !(flags & PY_WALK_NO_STACKS))
        stack_walk(p, s, t, ts, need, fr);
    /* A torn stack is read again at once (a few microseconds later), up to twice: the
     * sample moves a little in time rather than being lost. Frame objects: from the round's
     * whole plan read again in one syscall (mem_round_refetch(), or already by the walk when
     * it missed the prefetch), not frame by frame. */
    for (int retry = 0; retry < WALK_RETRIES && t->bad && !t->truncated &&
                        !(flags & PY_WALK_NO_STACKS); retry++) {
        bool copy = fr->refetched;
        if (!copy && L->frame_model == PY_FRAMES_OBJECTS && fr->refetches_left > 0) {
            fr->refetches_left--;
            copy = stack_refetch(p, tstate, fr) == 0;
        }
        fr->refetched = false;
        if (!copy)
            mem_round_drop(p->mem);   /* read the target again, not the round's prefetch */
        s->nframes = t->first;
        t->nframes = 0;
        t->bad = false;
        /* 3.11+: the guarded read again (one syscall), where the stack was just found. */
        fr->retries_left = WALK_RETRIES - 1 - retry;
        fr->sc0 = mem_syscalls(p->mem);
        rd = copy ? mem_read(p->mem, tstate, ts, need)
                  : stack_read_thread(p, tstate, ts, need, fr);
        if (rd != 0 || u64_at(ts, L->ts_interp) != interp) {
            t->bad = true;
        } else {
            stack_walk(p, s, t, ts, need, fr);
            /* Frame objects: torn in the copy, but maybe whole from the top read after it. */
            if (copy && t->bad && L->frame_model == PY_FRAMES_OBJECTS)
                stack_walk_from_guard(p, s, t, ts, need, fr);
        }
    }
    if (flags & PY_WALK_OS_STATE)
        fill_os_state(p, s, t, cpu_round);
    if (t->bad) {
        s->bad_threads++;
        /* The thread lives on: its last good stack stays the reference its next walk is
         * checked against (forgotten, that walk would be believed whatever its depth). */
        struct py_prev_stack *ps = stack_prev(p, tstate, false);
        if (ps)
            ps->seen = true;
    }
}

/* How a walk of one interpreter's thread list ended. */
enum walk_end {
    WALK_DONE,          /* read to its end (or as far as it could be: s->complete says) */
    WALK_HEAD_MOVED,    /* check_head: the first thread state is no longer the list's head */
    WALK_TORN,          /* a thread state in it is no longer this interpreter's */
};

/*
 * Walks the thread list from tstate. With check_head (the interpreter's fields came from
 * p->icache), returns WALK_HEAD_MOVED without recording anything when the first thread state is
 * no longer the list's head: a thread started since (it is put first, and the old head's prev
 * points at it), or the head was freed (the allocator writes over prev) or belongs elsewhere.
 * A thread state further on that no longer names this interpreter was freed or reused while the
 * list was read (a thread ended or started): its ids and its next link are garbage. Unless
 * last_try, the walk then records nothing and returns WALK_TORN (the caller reads the list
 * again); on the last try the list ends there, incomplete.
 */
static enum walk_end walk_threads(struct py_proc *p, struct py_snapshot *s, uint64_t interp,
                                  int64_t interp_id, uint64_t tstate, uint64_t gil,
                                  unsigned flags, bool cpu_round, bool check_head, bool last_try)
{
    uint32_t start = s->nthreads;
    const struct py_layout *L = &p->layout;
    uint8_t ts[4096];
    size_t need = ts_need(L);
    if (L->is_ceval_gil >= 0 && gil)
        s->gil_holder = gil;
    struct cycle cyc;
    cycle_init(&cyc, tstate);
    for (uint32_t n = 0; tstate && n < PY_MAX_THREADS; n++) {
        struct fast_read fr = {.retries_left = WALK_RETRIES, .reseeked = false,
                               .refetches_left = WALK_REFETCHES, .refetched = false};
        mem_round_resume(p->mem);   /* each thread's walk reads in time order on its own */
        int rd = flags & PY_WALK_NO_STACKS ? mem_read(p->mem, tstate, ts, need)
                                           : stack_read_thread(p, tstate, ts, need, &fr);
        if (n == 0 && check_head &&
            (rd != 0 || u64_at(ts, L->ts_prev) != 0 || u64_at(ts, L->ts_interp) != interp))
            return WALK_HEAD_MOVED;
        if (rd == 0 && u64_at(ts, L->ts_interp) != interp && !last_try) {
            drop_threads_from(s, start);
            return WALK_TORN;
        }
        if (rd != 0 || u64_at(ts, L->ts_interp) != interp) {
            s->bad_threads++;
            s->complete = false;
            drop_unstarted(s, start);
            return WALK_DONE;
        }
        struct py_thread *t = push_thread(s);
        if (!t) {
            s->complete = false;
            return true;
        }
        t->tstate = tstate;
        t->interp = interp;
        if (s->nthreads == 1)
            p->first_tstate = tstate;   /* staged into the next round's prefetch (3.11+) */
        t->interp_id = interp_id;
        t->thread_id = u64_at(ts, L->ts_thread_id);
        if (L->ts_native_thread_id >= 0)
            t->native_id = (int64_t)u64_at(ts, L->ts_native_thread_id);
        else
            t->native_id = py_proc_tid_of(p, t->thread_id);
        /* A thread state that no thread runs is none to sample: 3.12+ put one in the list
         * before its thread starts, with no ids yet, and keep one a moment with no native id
         * as its thread ends; up to 3.10 a pthread with no tid ended after its thread state
         * was read (the list came from the round's prefetch). */
        if (!t->thread_id || (t->native_id <= 0 && (L->ts_native_thread_id >= 0 ||
                                                    p->pthread_tid_offset >= 0)))
            s->nthreads--;
        else
            walk_stack(p, s, t, tstate, ts, need, &fr, interp, gil, flags, cpu_round);
        uint64_t next = u64_at(ts, L->ts_next);
        if (next && cycle_step(&cyc, next)) {
            s->complete = false;
            drop_repeats(s, start);
            drop_unstarted(s, start);
            return WALK_DONE;
        }
        tstate = next;
    }
    if (tstate)
        s->complete = false;   /* more than PY_MAX_THREADS */
    drop_unstarted(s, start);
    return WALK_DONE;
}

/* The fields of an interpreter that a walk reads: the next one, the first thread, the id and (3.12+)
 * the GIL pointer. */
static void interp_fields(const struct py_layout *L, int32_t off[4])
{
    off[0] = L->is_next;
    off[1] = L->is_tstate_head;
    off[2] = L->is_id;
    off[3] = L->is_ceval_gil;
}

/* How a read is made: planned into the next rounds' prefetch (ROUND), served by this round's
 * prefetch if it holds it but not planned for the next (ONE_OFF), or newer than the prefetch
 * (FRESH: after a check found the list changed since it). */
enum read_how { READ_ROUND, READ_ONE_OFF, READ_FRESH };

static int read_fields_how(struct py_proc *p, uint64_t base, const int32_t *off, int n,
                           uint64_t *out, enum read_how how)
{
    if (how == READ_ONE_OFF)
        mem_round_plan(p->mem, false);
    int rc = read_fields(p, base, off, n, out, how == READ_FRESH);
    if (how == READ_ONE_OFF)
        mem_round_plan(p->mem, true);
    return rc;
}

/* Reads the fields of interpreter number n of the list into v (next, first thread state, id,
 * GIL pointer); the first is kept in ic while it is the only one. Returns 0, or -1 (the snapshot
 * is then incomplete). */
static int read_interp(struct py_proc *p, struct py_interp_cache *ic, uint64_t interp, int n,
                       enum read_how how, uint64_t v[4], uint64_t t_ns)
{
    int32_t off[4];
    interp_fields(&p->layout, off);
    if (read_fields_how(p, interp, off, 4, v, how) != 0) {
        ic->interp = 0;   /* read the list again next round */
        return -1;
    }
    if (n == 0) {
        ic->interp = v[0] ? 0 : interp;   /* a second interpreter: read every round */
        ic->ns = t_ns;
        memcpy(ic->v, v, sizeof ic->v);
    }
    return 0;
}

/* Asks the next round's prefetch for the blocks the cache's refresh reads (3.12+: the runtime's
 * interpreter list too; ≤ 3.11 read that every round). */
static void want_fields(struct py_proc *p, uint64_t base, const int32_t *off, int n)
{
    int32_t lo, hi;
    fields_span(off, n, &lo, &hi);
    if (hi >= 0 && hi - lo <= FIELDS_BLOCK_MAX)
        mem_round_want(p->mem, base + (uint64_t)lo, (size_t)(hi - lo));
}

static void want_interp_refresh(struct py_proc *p, uint64_t interp)
{
    const struct py_layout *L = &p->layout;
    if (p->runtime && L->rt_interpreters_head >= 0 && L->rt_gilstate_current < 0) {
        const int32_t off[2] = {L->rt_interpreters_head, L->rt_gilstate_current};
        want_fields(p, p->runtime, off, 2);
    }
    int32_t off[4];
    interp_fields(L, off);
    want_fields(p, interp, off, 4);
}

enum pt_status py_walk(struct py_proc *p, struct py_snapshot *s, unsigned flags,
                       struct pt_err *err)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    s->t_ns = (uint64_t)now.tv_sec * 1000000000ULL + (uint64_t)now.tv_nsec;
    s->nthreads = s->nframes = s->bad_threads = 0;
    s->complete = true;
    s->cpu_times = (flags & PY_WALK_OS_STATE) && s->t_ns - p->cpu_read_ns >= PY_CPU_TIMES_NS;
    if (s->cpu_times)
        p->cpu_read_ns = s->t_ns;
    for (uint32_t i = 0; i < p->n_prev; i++)
        p->prev[i].seen = false;
    const struct py_layout *L = &p->layout;
    struct py_interp_cache *ic = &p->icache;
    /* Rounds under PY_INTERP_LIST_NS / 2 apart use the cache, and the reads that refresh it are
     * one-offs: not planned into every round's prefetch (where a region near the GIL's would
     * stay, merged with it), but asked of the prefetch of the round they fall due in, one round
     * ahead (mem_round_want), so that they cost no syscall of their own. Slower rounds read the
     * fields every round, in the prefetch. (Deciding by the cache's age alone made 100 Hz rounds,
     * 10 ms apart give or take the timer, read them every other round with three syscalls of
     * their own: the regions left the plan in the rounds between.) */
    uint64_t gap = s->t_ns - p->walk_ns;
    bool fast = ic->interp && gap < PY_INTERP_LIST_NS / 2;
    bool cache_fresh = fast && s->t_ns - ic->ns < PY_INTERP_LIST_NS;
    bool due_next = cache_fresh && s->t_ns + gap - ic->ns >= PY_INTERP_LIST_NS;
    enum read_how how = fast ? READ_ONE_OFF : READ_ROUND;
    p->walk_ns = s->t_ns;
    p->memo_gen++;
    uint64_t interp = 0;
    int rc = 0;
    stack_stage(p, p->first_tstate, ts_need(L));
    mem_round_begin(p->mem);
    if (due_next)
        want_interp_refresh(p, ic->interp);
    if (p->runtime && L->rt_interpreters_head >= 0 && L->rt_gilstate_current < 0 && cache_fresh) {
        /* 3.12+ with one interpreter: the runtime's list (which has no GIL holder to give from
         * 3.12) is read again every PY_INTERP_LIST_NS, not every round: a page less to pin; a
         * new subinterpreter shows up that much later. */
        interp = ic->interp;
        s->gil_holder = 0;   /* set from the interpreter's GIL below, as after a read */
    } else if (p->runtime && L->rt_interpreters_head >= 0) {
        /* 3.7+: the interpreter list and (up to 3.11) the GIL holder, in one read. */
        const int32_t off[2] = {L->rt_interpreters_head, L->rt_gilstate_current};
        uint64_t v[2];
        /* ≤ 3.11 read it every round (it holds the GIL holder) */
        bool once = how == READ_ONE_OFF && L->rt_gilstate_current < 0;
        rc = read_fields_how(p, p->runtime, off, 2, v, once ? READ_ONE_OFF : READ_ROUND);
        interp = v[0];
        s->gil_holder = v[1];
    } else {
        rc = py_proc_first_interp(p, &interp);
        s->gil_holder = gil_holder_global(p);
    }
    if (rc != 0) {
        mem_round_end(p->mem);
        if (!proc_alive(p->pid))
            return pt_fail(err, PT_ENOPROC, "process %d has exited", (int)p->pid);
        return pt_fail(err, PT_EFAIL, "cannot read the interpreter list of process %d", (int)p->pid);
    }
    uint64_t seen[PY_MAX_INTERPS];
    int n;
    for (n = 0; interp && n < PY_MAX_INTERPS; n++) {
        /* At most a few interpreters: a linear check keeps a cyclic list from repeating any. */
        for (int k = 0; k < n; k++) {
            if (seen[k] == interp) {
                s->complete = false;
                goto done;
            }
        }
        seen[n] = interp;
        /* next, the first thread, the id and (3.12+) the GIL pointer, in one read — or, for the
         * one interpreter, as read within PY_INTERP_LIST_NS (a page less to pin per round),
         * which walk_threads() checks against the first thread state's prev link. */
        bool cached = n == 0 && cache_fresh && interp == ic->interp && L->ts_prev >= 0;
        uint64_t v[4];
        if (cached)
            memcpy(v, ic->v, sizeof v);
        else if (read_interp(p, ic, interp, n, how, v, s->t_ns) != 0) {
            s->complete = false;
            break;
        }
        int64_t id = L->is_id >= 0 ? (int64_t)v[2] : -1;
        uint64_t gil = L->is_ceval_gil >= 0 ? gil_holder_of(p, v[3]) : s->gil_holder;
        enum walk_end end = walk_threads(p, s, interp, id, v[1], gil, flags, s->cpu_times,
                                         cached, false);
        if (end != WALK_DONE) {
            /* A thread started, or the first one ended, since the fields were read, or while the
             * list was read: the list again, from the target as it is now (a torn list: all of
             * the plan again, in one syscall, as a torn stack's retry reads it). */
            if (end == WALK_TORN)
                mem_round_refetch(p->mem);
            if (read_interp(p, ic, interp, n, READ_FRESH, v, s->t_ns) != 0) {
                s->complete = false;
                break;
            }
            walk_threads(p, s, interp, id, v[1], gil, flags, s->cpu_times, false, true);
        }
        interp = v[0];
    }
    if (interp && n == PY_MAX_INTERPS)
        s->complete = false;
done:
    /* Stacks of threads this walk did not see are forgotten (their slots are reused); a torn
     * list keeps them, as those threads may still live. */
    for (uint32_t i = 0; i < p->n_prev && s->complete; i++)
        if (!p->prev[i].seen)
            p->prev[i].tstate = 0;
    mem_round_end(p->mem);
    if (n > 1 && !(flags & PY_WALK_NO_STACKS))
        py_snapshot_merge_nested(s);
    if (flags & PY_WALK_NAMES)
        py_thread_names(p, s);
    return PT_OK;
}
