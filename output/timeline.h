/*
 * timeline.h — from a thread's sequence of sampled stacks to calls with begin and end times.
 *
 * Each sample gives, per thread, the stack root-first as frames with an identity: the frame's
 * address (a frame object or an interpreter frame slot) and its code. Comparing a stack with the
 * previous one of the same thread, the longest common prefix of identical frames continues; frames
 * past it ended (between the previous sample and this one) and the new ones began (likewise).
 * A frame slot reused by a new call of the same code between two samples looks identical; hints
 * split it: the call's argument slots changed (argsig), the feeder saw its instruction offset go
 * back where no loop of its code leads (restart), or its caller is at another call site. Calls shorter than the sampling interval can be missed entirely.
 *
 * A span's true begin lies in (begin_lo, begin]: begin is its first sighting, begin_lo the sample
 * before it. Its true end lies in [end, end_hi): end is its last sighting, end_hi the first sample
 * that no longer showed it. The estimator writers and viewers use is the midpoint of each interval
 * (docs/timing.md). Time is CLOCK_MONOTONIC nanoseconds.
 */
#ifndef PT_TIMELINE_H
#define PT_TIMELINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* One frame of a sampled stack, root first. */
struct tl_frame {
    uint64_t addr;         /* frame identity: frame object / interpreter frame address */
    uint32_t function;     /* interned function id (code identity); 0 = unknown */
    int32_t line;          /* current line in this frame */
    int32_t lasti;         /* byte offset of the current instruction, -1 unknown */
    uint64_t argsig;       /* hash of the argument slots' contents (0 = unknown) */
    bool restart;          /* the feeder knows this frame began a new call since the previous
                            * sample (its offset went back where no loop of its code leads) */
};

/* One captured argument or local of a call: StringEntry ids (output/trace.h), flags TL_LOCAL_*. */
struct tl_local {
    uint32_t name, value;
    uint32_t flags;
};
enum { TL_LOCAL_ARG = 1, TL_LOCAL_REDACTED = 2 };
enum { TL_LOCALS_TRUNCATED = 1, TL_LOCALS_UNREADABLE = 2 };

struct tl_span {
    uint32_t thread;       /* caller's thread index */
    uint32_t function;
    uint32_t depth;        /* 0 = outermost */
    int32_t call_line;     /* line in the parent frame when this call was first seen, -1 root */
    int32_t first_line;    /* this frame's line at its first sighting */
    uint64_t begin_lo, begin, end, end_hi;
    uint64_t samples;      /* samples in which this call was on the stack */
    bool open_begin;       /* already running when the recording started (begin_lo unknown) */
    bool open_end;         /* still running when the recording stopped (end_hi unknown) */
    const struct tl_local *locals;  /* the call's variables at its first sighting (--locals), set
                                     * by the begin hook; owned by whoever set it (the recorder, or
                                     * a loaded trace's locals array); NULL = none */
    uint32_t n_locals;
    uint32_t locals_flags; /* TL_LOCALS_* */
    bool off_cpu;          /* --ebpf: a blocked (off-CPU) period, not a call (never from tl_feed) */
};

/* Receives every finished span, innermost first when several end at once. */
typedef void (*tl_emit_fn)(const struct tl_span *span, void *ctx);

struct timeline;

/* Called for every call as it is first seen (depth `index` of the sample just fed, root first),
 * before tl_feed() returns; it may set span->locals. */
typedef void (*tl_begin_fn)(struct tl_span *span, size_t index, void *ctx);

struct timeline *tl_new(tl_emit_fn emit, void *ctx);

/* Installs a begin hook (called with the emit ctx); NULL removes it. */
void tl_set_begin_hook(struct timeline *tl, tl_begin_fn fn);
void tl_free(struct timeline *tl);

/*
 * Feeds thread `thread`'s stack sampled at t_ns (n frames, root first). Times must not go back
 * for one thread. Spans that ended are emitted before this returns. A thread seen for the first
 * time starts with open_begin spans. Steady state allocates nothing. Returns 0, -1 on OOM.
 */
int tl_feed(struct timeline *tl, uint32_t thread, uint64_t t_ns, const struct tl_frame *frames,
            size_t n);

/* tl_feed() when the caller knows that the first `same` frames (root first) are the previous good
 * sample's frames of this thread with every field equal: they are not compared again. same = 0
 * is tl_feed(); a `same` larger than either stack is taken as 0. */
int tl_feed_same(struct timeline *tl, uint32_t thread, uint64_t t_ns, const struct tl_frame *frames,
                 size_t n, size_t same);

/* A sample of thread `thread` at t_ns could not be read (torn): it neither ends nor extends
 * spans, but the next good sample's begin_lo/end_hi bounds are not moved past it either. */
void tl_feed_bad(struct timeline *tl, uint32_t thread, uint64_t t_ns);

/* The thread has exited (or the target has): all its open spans end at its last sample, with
 * end_hi = t_ns. */
void tl_end_thread(struct timeline *tl, uint32_t thread, uint64_t t_ns);

/* Recording stopped at t_ns: every open span ends with open_end set. */
void tl_finish(struct timeline *tl, uint64_t t_ns);

#endif
