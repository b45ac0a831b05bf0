/*
 * stack.c — one thread's Python stack: frame objects linked by f_back (2.7, 3.6-3.10, reusing the
 * callers unchanged since the previous walk) and interpreter frames linked by previous (3.11+,
 * walked from the copy of the thread's data stack that datastack.c reads with its thread state).
 * A torn stack is marked bad, never guessed.
 */
#include "readers/stack.h"

#include <stdlib.h>
#include <string.h>

static inline struct py_frame *push_frame(struct py_snapshot *s)
{
    if (s->nframes == s->cap_frames) {
        uint32_t cap = s->cap_frames ? s->cap_frames * 2 : 256;
        struct py_frame *f = realloc(s->frames, cap * sizeof *f);
        if (!f)
            return NULL;
        s->frames = f;
        s->cap_frames = cap;
    }
    return &s->frames[s->nframes++];
}


/*
 * A cheap fingerprint of a call: the object pointers in its first argument slots, which a new call
 * reusing the same frame slot usually changes (docs/timing.md). `slots` holds up to 4 words read
 * with the frame; only the function's arguments are mixed in (locals change within a call).
 */
static uint64_t arg_signature(const struct py_code *code, const uint64_t *slots, int nslots)
{
    if (!code || nslots <= 0)
        return 0;
    int n = code->argcount < nslots ? code->argcount : nslots;
    uint64_t h = 0x9e3779b97f4a7c15ULL;
    /* Each step a bijection of h (xor, then an odd multiplier): one slot that differs changes
     * the result, and it costs two instructions a slot. */
    for (int i = 0; i < n; i++)
        h = (h ^ slots[i]) * 0xff51afd7ed558ccdULL;
    return n > 0 ? (h | 1) : 0;
}

/*
 * Code object, line and code key of the frame at `frame` running code_addr at byte offset lasti,
 * into f. Most frames of a sample were in the previous one, at the same place: a frame that is
 * still there (same frame, code and offset as in this walk or the one before) still runs that code
 * object, which therefore cannot have been freed — no re-validation needed. New frames, and frames
 * not seen in the last walk, go through the cache, which re-validates entries after each tick. The key comes in registers, not from f, which the caller has just
 * written: reading it back made every frame wait on its own stores.
 */
static inline __attribute__((always_inline)) void
resolve(struct py_proc *p, struct py_frame *f, uint64_t frame, uint64_t code_addr, int32_t lasti)
{
    struct py_frame_memo *m =
        &p->frame_memo[((frame ^ (code_addr << 7) ^ ((uint64_t)(int64_t)lasti << 17)) *
                        0x9e3779b97f4a7c15ull) >> 56];
    if (m->frame == frame && m->code_addr == code_addr && m->lasti == lasti && m->code &&
        p->memo_gen - m->gen <= 1) {
        m->gen = p->memo_gen;
        f->code = m->code;
        f->line = m->line;
        f->code_key = m->code_key;
        return;
    }
    mem_round_plan(p->mem, false);   /* code objects are read once, not every round */
    f->code = code_cache_get(p->codes, p->mem, &p->layout, &p->types, code_addr, frame);
    mem_round_plan(p->mem, true);
    f->line = f->code ? code_line(f->code, lasti) : -1;
    f->code_key = f->code ? f->code->id + 1 : 0;
    if (f->code)
        *m = (struct py_frame_memo){frame, code_addr, lasti, p->memo_gen, f->line,
                                    f->code, f->code_key};
}

void py_frame_resolve(struct py_proc *p, struct py_frame *f)
{
    resolve(p, f, f->addr, f->code_addr, f->lasti);
}

/* Records one frame; code may be NULL (unreadable), which marks the thread bad. Inlined into the
 * two walks: a call per frame, saving and restoring its registers, was a fifth of a 3.12 walk's
 * instructions (callgrind). */
static inline __attribute__((always_inline)) int
add_frame(struct py_proc *p, struct py_snapshot *s, struct py_thread *t, uint64_t frame,
          uint64_t code_addr, int64_t lasti, const uint64_t *slots, int nslots)
{
    struct py_frame *f = push_frame(s);
    if (!f)
        return -1;
    t->nframes++;
    int32_t at = lasti >= 0 && lasti < INT32_MAX ? (int32_t)lasti : -1;
    f->addr = frame;
    f->code_addr = code_addr;
    f->lasti = at;
    resolve(p, f, frame, code_addr, at);
    f->argsig = arg_signature(f->code, slots, nslots);
    /* Up to 3.10 every Python frame is its own eval call; 3.11+ set it from the frame below. */
    f->entry = p->layout.frame_model == PY_FRAMES_OBJECTS;
    if (!f->code)
        t->bad = true;
    return 0;
}

/* Reads a frame with its first argument slots; falls back to the frame alone near the end of a
 * mapping. Returns how many slots were read (0..ARG_SLOTS), or -1. */
#define ARG_SLOTS 4
static int read_frame(struct py_proc *p, struct window *w, uint64_t frame, uint8_t *buf,
                      size_t cap, size_t need, int32_t slots_at, uint64_t *slots)
{
    size_t full = slots_at >= 0 ? (size_t)slots_at + ARG_SLOTS * 8 : 0;
    if (full > need && full <= cap && from_window(w, frame, buf, full)) {
        w->last_miss = false;
        memcpy(slots, buf + slots_at, ARG_SLOTS * 8);
        return ARG_SLOTS;
    }
    if (w)
        w->last_miss = false;
    if (from_window(w, frame, buf, need))
        return 0;
    if (w && w->bytes)
        w->last_miss = true;
    if (full > need && full <= cap && mem_read(p->mem, frame, buf, full) == 0) {
        memcpy(slots, buf + slots_at, ARG_SLOTS * 8);
        return ARG_SLOTS;
    }
    return mem_read(p->mem, frame, buf, need) == 0 ? 0 : -1;
}

/*
 * Appends the frames below position j of the previous stack: frame j is unchanged (same address,
 * code, offset and caller), and a frame that is still executing a call keeps its callers, so
 * nothing below it needs reading again.
 */
static int reuse_below(struct py_proc *p, struct py_snapshot *s, struct py_thread *t,
                       const struct py_prev_stack *ps, uint32_t j, uint64_t *backs)
{
    (void)p;
    for (uint32_t k = j + 1; k < ps->n; k++) {
        if (t->nframes >= PY_MAX_FRAMES) {
            t->truncated = true;
            return 0;
        }
        struct py_frame *f = push_frame(s);
        if (!f)
            return -1;
        /* An unchanged frame still runs its code object (it holds a reference): its cache entry
         * needs neither a lookup nor a re-validation. */
        *f = ps->frames[k];
        if (!f->code)
            t->bad = true;
        backs[t->nframes++] = ps->backs[k];
    }
    return 0;
}

/*
 * Frame objects: this frame was not in the round's prefetch, and the walk would read the rest of
 * the stack one syscall per frame. When more than a few frames are likely to be left, the round's
 * plan is read again at once with the missed page (mem_round_refetch) and the caller walks the
 * thread again from that copy: one syscall and one instant instead of dozens of each.
 */
#define REFETCH_MIN_LEFT 4
static bool refetch(struct py_proc *p, struct py_thread *t, const struct py_prev_stack *ps,
                    struct fast_read *fr)
{
    if (!fr || fr->refetches_left <= 0 || !ps || ps->n < t->nframes + REFETCH_MIN_LEFT)
        return false;
    fr->refetches_left--;
    if (stack_refetch(p, t->tstate, fr) != 0)
        return false;   /* the rest of the walk reads afresh, as before */
    fr->refetched = true;
    fr->sc0 = mem_syscalls(p->mem);
    t->bad = true;   /* not torn: walk_threads() walks it again */
    return true;
}

int stack_refetch(struct py_proc *p, uint64_t tstate, struct fast_read *fr)
{
    const struct py_layout *L = &p->layout;
    fr->fo_guarded = false;
    int32_t a = L->ts_frame, b = L->ts_recursion_depth;
    int32_t lo = a < b ? a : b, hi = (a < b ? b : a) + 8;
    uint8_t buf[32];
    if (a < 0 || b < 0 || hi - lo > (int32_t)sizeof buf)
        return mem_round_refetch(p->mem);
    struct mem_iov iov = {tstate + (uint64_t)lo, buf, (size_t)(hi - lo)};
    int got = mem_round_refetch_then(p->mem, &iov, 1);
    if (got < 0)
        return -1;
    if (got == 1) {
        fr->fo_guard_frame = u64_at(buf, a - lo);
        fr->fo_guard_depth = i32_at(buf, b - lo);
        fr->fo_guarded = true;
    }
    return 0;
}

bool stack_walk_from_guard(struct py_proc *p, struct py_snapshot *s, struct py_thread *t,
                           uint8_t *ts, size_t need, struct fast_read *fr)
{
    const struct py_layout *L = &p->layout;
    if (!fr || !fr->fo_guarded || fr->refetched || t->truncated || !fr->fo_guard_frame ||
        fr->fo_guard_depth <= 0 || fr->fo_guard_frame == u64_at(ts, L->ts_frame))
        return false;
    fr->fo_guarded = false;   /* once per copy */
    memcpy(ts + L->ts_frame, &fr->fo_guard_frame, 8);
    memcpy(ts + L->ts_recursion_depth, &fr->fo_guard_depth, 4);
    s->nframes = t->first;
    t->nframes = 0;
    t->bad = false;
    fr->sc0 = mem_syscalls(p->mem);
    stack_walk(p, s, t, ts, need, fr);
    return true;
}

/* Frame objects (2.7, 3.6–3.10): f_back chain, read until a frame unchanged since the last walk
 * (depth: the thread state's recursion_depth, ≤ 0 unknown). */
static void walk_frame_objects(struct py_proc *p, struct py_snapshot *s, struct py_thread *t,
                               uint64_t frame, int32_t depth, struct fast_read *fr)
{
    const struct py_layout *L = &p->layout;
    uint8_t buf[1024];
    static __thread uint64_t backs[PY_MAX_FRAMES];
    size_t need = (size_t)(L->fo_lasti > L->fo_back ? L->fo_lasti : L->fo_back) + 8;
    if (L->fo_code + 8 > (int32_t)need)
        need = (size_t)L->fo_code + 8;
    /* The frame with its first argument slots (read_frame() falls back to less). */
    size_t full = L->fo_localsplus >= 0 ? (size_t)L->fo_localsplus + ARG_SLOTS * 8 : 0;
    const struct py_prev_stack *ps = stack_prev(p, t->tstate, false);
    struct cycle cyc;
    cycle_init(&cyc, frame);
    while (frame) {
        if (t->nframes >= PY_MAX_FRAMES) {
            t->truncated = true;
            return;
        }
        uint64_t slots[ARG_SLOTS];
        int nslots;
        const uint8_t *fb = full > need ? mem_round_peek(p->mem, frame, full) : NULL;
        if (fb) {
            /* In the round's prefetch: read in place (nearly every frame, every round). */
            nslots = ARG_SLOTS;
            memcpy(slots, fb + L->fo_localsplus, sizeof slots);
        } else {
            bool prefetched = !mem_round_dropped(p->mem);
            nslots = read_frame(p, NULL, frame, buf, sizeof buf, need, L->fo_localsplus, slots);
            if (nslots < 0) {
                t->bad = true;
                return;
            }
            if (prefetched && mem_round_dropped(p->mem) && refetch(p, t, ps, fr))
                return;
            fb = buf;
        }
        /* A frame object with no reference is a dead one (CPython keeps freed frames as its code
         * object's zombie or in a free list, and there the last one freed has no f_back): a walk
         * that reached it below the top ran into a frame freed while the stack was read. Without
         * this, one cut short there passed for a whole stack when its depth had been seen before
         * (session 15: 1-4% of a 200-deep recursion's samples, stacks without their callers).
         * The top itself may have returned since the thread state named it: what it and its
         * callers held then is the sample (a zombie keeps its caller link; a free list's frame
         * does not, and the walk below it ends torn). Torn there, a short call's samples went
         * to its caller: an 80 ns call's share fell from 19% to 4%. */
        if (t->nframes > 0 && L->ob_type >= 8 && u64_at(fb, L->ob_type - 8) == 0) {
            t->bad = true;
            return;
        }
        uint64_t code = u64_at(fb, L->fo_code);
        int64_t lasti = i32_at(fb, L->fo_lasti);
        if (L->linetable == PY_LT_LINETABLE310 && lasti >= 0)
            lasti *= 2;   /* 3.10 counts code units */
        uint64_t back = u64_at(fb, L->fo_back);
        uint32_t k = t->nframes;
        if (add_frame(p, s, t, frame, code, lasti, slots, nslots) != 0)
            return;
        backs[k] = back;
        int64_t at = ps ? prev_position(ps, frame) : -1;
        if (at >= 0) {
            uint32_t j = (uint32_t)at;
            const struct py_frame *pf = &ps->frames[j];
            const struct py_frame *cf = &s->frames[t->first + k];
            /* The arguments tell a recursion's levels apart: the frame object of level n, now
             * holding level n + 1's call, has other objects in its argument slots. */
            if (pf->code_addr == code && pf->lasti == cf->lasti && ps->backs[j] == back &&
                pf->argsig == cf->argsig && stack_reuse_fits(ps, j, t, depth)) {
                if (reuse_below(p, s, t, ps, j, backs) == 0 && !t->bad && !t->truncated)
                    stack_remember(p, s, t, backs, depth);
                return;
            }
        }
        if (back && cycle_step(&cyc, back)) {
            t->bad = true;
            return;
        }
        frame = back;
    }
    if (!t->bad && !t->truncated && !stack_depth_fits(p, t, depth))
        t->bad = true;   /* read again (walk_threads retries), or lost */
    /* A generator's frame gets its f_back when resumed and loses it when it yields: one found at
     * the bottom while the thread state counts more levels than were walked yielded while we
     * read — its callers are lost, not absent (a stack of the generator alone, seen in 3–14% of
     * a generator loop's samples before this check). One run from C with nothing below (a
     * thread whose target is a generator's __next__) has no such surplus. */
    if (!t->bad && !t->truncated && t->nframes && depth > 0) {
        const struct py_code *bottom = s->frames[s->nframes - 1].code;
        if (bottom && bottom->generator && depth - (int32_t)t->nframes > SURPLUS_SLACK)
            t->bad = true;
    }
    if (!t->bad && !t->truncated)
        stack_remember(p, s, t, backs, depth);
}

/* Whether the thread state in ts shows frames on its data stack (3.11+). The root chunk's first
 * slot is never used (CPython skips it so that popping the last frame never frees the chunk), and
 * a newer chunk is current only while it holds a frame: a used part past 24-byte header + one
 * slot means at least one frame is running. */
static bool data_stack_used(const struct py_layout *L, const uint8_t *ts)
{
    if (L->ts_datastack_chunk < 0 || L->ts_datastack_top < 0)
        return false;
    uint64_t chunk = u64_at(ts, L->ts_datastack_chunk), top = u64_at(ts, L->ts_datastack_top);
    return chunk && top > chunk + 32;
}

/*
 * Interpreter frames (3.11+): previous chain; C-stack shim frames are skipped. frames_below: the
 * thread's data stack held frames when its state was read. A generator's frame is linked to its
 * caller only while it runs (CPython clears previous when it yields): one found with no previous
 * while frames are running below is a generator that yielded while we read, and was maybe resumed
 * again by the time the top is checked — 3.11 has no shim frame that would tell, and without this
 * a `"".join(genexpr)` loop gave the genexpr alone as a whole stack in ~8% of its samples. (Its
 * link read again, once it ran again, gave fewer torn samples but wrong ones: by then the frame's
 * memory could hold another generator, freed and allocated again in the same place.)
 */
static void walk_interp_frames(struct py_proc *p, struct py_snapshot *s, struct py_thread *t,
                               uint64_t frame, struct window *w, bool frames_below)
{
    const struct py_layout *L = &p->layout;
    uint8_t buf[512];
    size_t need = (size_t)L->if_size;
    if (need > sizeof buf || need < 16)
        need = sizeof buf < 256 ? sizeof buf : 256;
    struct cycle cyc;
    cycle_init(&cyc, frame);
    while (frame) {
        if (t->nframes >= PY_MAX_FRAMES) {
            t->truncated = true;
            return;
        }
        uint64_t slots[ARG_SLOTS];
        int nslots;
        const uint8_t *fb = buf;
        size_t full = L->if_localsplus >= 0 ? (size_t)L->if_localsplus + ARG_SLOTS * 8 : need;
        const uint8_t *in = window_at(w, frame, full > need ? full : need);
        if (in) {
            /* In the copy: read in place (the common case, every frame of a steady stack). */
            fb = in;
            if (w->last_miss && !w->junction) {
                w->junction = frame;
                w->j_code = u64_at(fb, L->if_code);
                w->j_instr = u64_at(fb, L->if_instr);
            }
            w->last_miss = false;
            nslots = L->if_localsplus >= 0 ? ARG_SLOTS : 0;
            if (nslots)
                memcpy(slots, fb + L->if_localsplus, sizeof slots);
        } else {
            uint64_t sc = mem_syscalls(p->mem);
            nslots = read_frame(p, w, frame, buf, sizeof buf, need, L->if_localsplus, slots);
            /* A generator's or coroutine's frame, in its object on the heap, that the round's
             * prefetch did not have: its whole page is planned, as frame objects' are up to
             * 3.10. The next such objects come from the same pymalloc pools, and are then read
             * with the round's one syscall instead of one each. */
            if (nslots >= 0 && mem_syscalls(p->mem) != sc && L->if_owner_generator >= 0 &&
                (int8_t)buf[L->if_owner] == L->if_owner_generator)
                mem_round_want_page(p->mem, frame);
        }
        if (nslots < 0) {
            t->bad = true;
            return;
        }
        uint64_t code = u64_at(fb, L->if_code);
        code &= ~(uint64_t)(uint8_t)L->if_code_tag_mask;   /* 3.14: a tagged _PyStackRef */
        int8_t owner = (int8_t)fb[L->if_owner];
        bool shim = (L->if_owner_cstack >= 0 && owner == L->if_owner_cstack) ||
                    (L->if_owner_interpreter >= 0 && owner == L->if_owner_interpreter);
        /* Entry frames live on the C stack (3.12+), and stay put while their C frame runs:
         * only Python frames read outside the copy make the walk worth re-checking. */
        if (w && w->last_miss && !shim)
            w->misses++;
        /* The Python frame run by the C-level eval call this shim (3.12+) stands for. */
        if (shim && L->if_owner_cstack >= 0 && owner == L->if_owner_cstack && t->nframes)
            s->frames[s->nframes - 1].entry = true;
        if (!shim) {
            uint64_t instr = u64_at(fb, L->if_instr);
            int64_t lasti = -1;
            uint64_t start = code + (uint64_t)L->co_code_adaptive;
            /* Byte offset of the instruction CPython reports the line of (PyCode_Addr2Line gets
             * the same value): prev_instr (3.11–3.12) or instr_ptr (3.13+) minus code start. */
            if (instr >= start && instr - start < (1u << 30))
                lasti = (int64_t)(instr - start);
            if (add_frame(p, s, t, frame, code, lasti, slots, nslots) != 0)
                return;
            /* 3.12+'s C-stack entry frames run the "<interpreter trampoline>" code: one not
             * owned by the C stack is an entry frame read after its C call returned (the stack
             * slot reused), not a Python frame. */
            const struct py_code *c = s->frames[s->nframes - 1].code;
            if (c && c->trampoline) {
                t->bad = true;
                return;
            }
            if (L->if_is_entry >= 0 && (size_t)L->if_is_entry < need)
                s->frames[s->nframes - 1].entry = fb[L->if_is_entry] != 0;
        }
        uint64_t prev = u64_at(fb, L->if_previous);
        /* From 3.12 every chain ends in a shim frame (C-stack entry, or 3.14's base frame): a
         * Python frame with no previous one is a generator that yielded while we read. */
        if (!prev && !shim && (L->if_owner_cstack >= 0 || L->if_owner_interpreter >= 0)) {
            t->bad = true;
            return;
        }
        if (!prev && frames_below && owner == L->if_owner_generator) {
            t->bad = true;
            return;
        }
        if (prev && cycle_step(&cyc, prev)) {
            t->bad = true;
            return;
        }
        frame = prev;
    }
}

/* Walks the frames of the thread whose state is in ts; marks t bad when torn. */
void stack_walk(struct py_proc *p, struct py_snapshot *s, struct py_thread *t, const uint8_t *ts,
                size_t need, struct fast_read *fr)
{
    const struct py_layout *L = &p->layout;
    uint64_t frame = 0;
    (void)need;
    if (L->frame_model == PY_FRAMES_INTERP && fr && fr->ok) {
        const struct py_prev_stack *ps = stack_prev(p, t->tstate, false);
        uint64_t chunk = u64_at(ts, L->ts_datastack_chunk), top = u64_at(ts, L->ts_datastack_top);
        uint64_t cframe = L->ts_cframe >= 0 ? u64_at(ts, L->ts_cframe) : 0;
        int alt = -1;   /* which other cframe the thread state shows, if one */
        for (int i = 0; i < PY_CFRAME_ALTS && cframe && alt < 0; i++)
            if (cframe == fr->cframe_alt[i])
                alt = i;
        if (ps && chunk == ps->chunk && top > chunk && top - chunk <= ps->copylen &&
            (cframe == (L->ts_cframe >= 0 ? ps->cframe : 0) || alt >= 0)) {
            frame = L->ts_cframe < 0 ? u64_at(ts, L->ts_current_frame)
                                     : alt >= 0 ? fr->cf_alt[alt] : fr->cf_frame;
            uint64_t guard = alt >= 0 ? fr->guard_alt[alt] : fr->guard;
            /* The whole copy, not just up to the top the thread state showed: a frame pushed
             * between that read and the cframe's (both before the copy) is in it. */
            struct window w = {chunk, ps->copylen, fr->stack, 0, false, fr->old_base,
                               fr->old_len, fr->old_len ? fr->old_stack : NULL, 0, 0, 0};
            if (!stack_one_call_apart(L, &w, frame, guard) && !stack_heap_top(&w, frame, guard)) {
                t->bad = true;   /* the stack changed below its top while it was copied */
                stack_remember_data(p, t->tstate, ts, &w);
                return;
            }
            /* The sample is the instant of the guard read, not of the first pointer read: the
             * top of the copy (where the innermost frames are) was taken just before it. Walking
             * from the first pointer instead shows a caller frozen at its call instruction
             * whenever it called during the copy, and loses the callee: short calls came out
             * a fifth too rare against interrupt-time samplers (--blocking, --ebpf). */
            frame = guard;
            if (frame)
                walk_interp_frames(p, s, t, frame, &w, data_stack_used(L, ts));
            /* Frames outside the copy (generators, older chunks) were read afterwards, or come
             * from the round's prefetch: check the top again. */
            if (!t->bad && w.misses && !stack_recheck_holds(p, t, cframe, frame, &w))
                t->bad = true;
            stack_remember_data(p, t->tstate, ts, &w);
            return;
        }
        /* The stack is not where the guarded read looked (it moved to another data-stack chunk,
         * or grew past the copy): find it from this thread state, and have the caller read the
         * sample again the guarded way (one syscall) rather than frame by frame. A deep stack
         * that crosses a chunk boundary back and forth does this often. */
        if (fr->retries_left > 0 && !fr->reseeked && stack_reseek(p, t->tstate, ts)) {
            fr->reseeked = true;
            t->bad = true;   /* not torn: walk_threads() reads it again at once */
            return;
        }
    }
    /* The slow path reads in time order, as before the prefetch: thread state, frame pointer, data
     * stack, each afresh (a data stack older than its frame pointer tears). */
    if (L->frame_model == PY_FRAMES_INTERP)
        mem_round_drop(p->mem);
    if (stack_top_frame(p, ts, &frame) != 0) {
        t->bad = true;
        return;
    }
    struct window w = {0, 0, NULL, 0, false, 0, 0, NULL, 0, 0, 0};
    if (L->frame_model == PY_FRAMES_INTERP) {
        stack_copy_data(p, ts, &w);
        stack_remember_data(p, t->tstate, ts, &w);
        stack_copy_older(p, t->tstate, &w);
    }
    if (!frame)
        return;
    if (L->frame_model == PY_FRAMES_INTERP)
        walk_interp_frames(p, s, t, frame, &w, data_stack_used(L, ts));
    else
        walk_frame_objects(p, s, t, frame,
                           L->ts_recursion_depth >= 0 ? i32_at(ts, L->ts_recursion_depth) : 0, fr);
    if (fr && fr->refetched)
        return;
    /* The thread ran on while we read: if its top frame changed, what we walked may mix two
     * stacks (a generator that yielded, a call that returned). */
    uint64_t now_top = 0;
    uint64_t cframe = L->ts_cframe >= 0 ? u64_at(ts, L->ts_cframe) : 0;
    /* A walk served wholly by the round's one-syscall prefetch (no read of its own since the
     * thread state) saw a single instant of the target: nothing to re-check. */
    if (fr && mem_syscalls(p->mem) == fr->sc0)
        return;
    if (!t->bad && (stack_read_top(p, t->tstate, cframe, &now_top) != 0 ||
                    (now_top != frame && !stack_still_below(p, s, t, now_top))))
        t->bad = true;
}
