/*
 * trace.h — the .pytrace file: writing it while recording, and loading it back.
 *
 * A .pytrace file is a magic string, then chunks. Each chunk is a fixed frame (payload length and
 * CRC-32 of the payload, little-endian u32 each) around one protobuf-c `Chunk` message
 * (output/pytrace.proto). Interned tables (strings, functions, stack-trie nodes, processes,
 * threads) are emitted in the chunk that first uses them, so a reader can stream. The writer
 * flushes a chunk at least every second, with write(2) straight to the file, so after a SIGKILL
 * the file reads back up to its last whole chunk; the loader then says it is truncated. The first
 * chunk carries the header, the last one the trailer (counts).
 *
 * Samples cost about two bytes when the stack did not change: per thread and chunk, a packed
 * array of stack references (0 = same stack and flags as before) and of time deltas in
 * microseconds relative to the nominal interval.
 */
#ifndef PT_TRACE_H
#define PT_TRACE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "output/timeline.h"
#include "util/err.h"

#define TRACE_MAGIC "PYTRACE1"   /* 8 bytes at offset 0 */

/* Per-sample flags. */
enum {
    TRACE_F_GIL = 1 << 0,        /* the thread held the GIL */
    TRACE_F_IDLE = 1 << 1,       /* the thread was not running on a CPU */
    TRACE_F_BAD = 1 << 2,        /* torn read: the stack is partial (or empty) */
};

enum trace_counter_kind {
    TRACE_C_CPU_USER_NS = 1,     /* per thread, cumulative */
    TRACE_C_CPU_SYS_NS = 2,      /* per thread, cumulative */
    TRACE_C_RSS_BYTES = 3,       /* per process */
};

enum trace_event_kind {
    TRACE_E_PROCESS_START = 1,   /* a (sub)process was attached */
    TRACE_E_PROCESS_EXIT = 2,    /* value = exit status (or -signal), when known */
    TRACE_E_THREAD_START = 3,
    TRACE_E_THREAD_EXIT = 4,
    TRACE_E_OVERRUN = 5,         /* value = samples missed because sampling fell behind */
    TRACE_E_NOTE = 6,            /* text */
};

struct trace_tag {
    const char *key, *value;
};

/* What the header records. Strings are copied; NULL means empty. */
struct trace_meta {
    int64_t pid;                 /* the target as pytrace sees it */
    const int64_t *nspid;        /* NSpid chain, outermost first (may be NULL) */
    size_t n_nspid;
    const char *name;            /* --name, or the target's comm */
    const char *python_version;  /* "3.11.7" */
    const char *python_binary;
    const char *cmdline;
    const char *host;
    const char *pytrace_version;
    uint64_t start_wall_ns;      /* CLOCK_REALTIME at start */
    uint64_t start_mono_ns;      /* CLOCK_MONOTONIC at the same instant */
    double rate_hz;              /* asked */
    bool blocking;
    bool native;
    const struct trace_tag *tags;
    size_t n_tags;
    const char *filters;         /* the rule chain, rules_describe() (util/rules.h) */
    bool locals;                 /* --locals: spans carry their call's variables */
    uint32_t rotation_seq;       /* daemon: number of this file among a process's rotated files */
    const char *recording_id;    /* daemon: shared by a process's rotated files; NULL = none */
    const char *backend;         /* "ebpf" with --ebpf; NULL/"" = the default sampler */
};

/* What the trailer records. */
struct trace_summary {
    uint64_t end_mono_ns;
    uint64_t samples;            /* thread samples written */
    uint64_t walks;              /* sampling rounds attempted */
    uint64_t errors;             /* thread samples marked bad */
    uint64_t missed;             /* rounds skipped because sampling fell behind */
    uint64_t overruns;           /* rounds that took longer than the interval */
    double achieved_hz;
    uint64_t busy_ns;            /* wall time of the rounds' work (not the waits) */
    int64_t exit_status;         /* target's, when it exited and it is known; else INT64_MIN */
    uint64_t redacted;           /* local/argument values hidden by redact rules */
    uint64_t dropped;            /* locals/arguments omitted by drop rules */
    uint64_t excluded;           /* frames removed by exclude/fold rules, summed over samples */
};

struct trace_writer;

/* Creates path with mode 0600 (O_EXCL unless overwrite), writes the magic and the header chunk. */
enum pt_status trace_writer_open(struct trace_writer **out, const char *path, bool overwrite,
                                 const struct trace_meta *meta, struct pt_err *err);

/* Interning. Ids start at 1; 0 means none. Equal content gives the same id. A thread is
 * (process, tid, thread_id): asking again with another name renames it. */
uint32_t trace_string(struct trace_writer *w, const char *s);
uint32_t trace_function(struct trace_writer *w, const char *name, const char *qualname,
                        const char *file, int32_t first_line);
/* A native (C) function (--native): name and qualname are the symbol ("??" when unknown), file and
 * module the module's path (may be NULL), first_line 0. */
uint32_t trace_native_function(struct trace_writer *w, const char *symbol, const char *module,
                               bool approximate);
/* A stack-trie node: `function` at `line` called from stack node `parent` (0 = root). */
uint32_t trace_stack(struct trace_writer *w, uint32_t parent, uint32_t function, int32_t line);
uint32_t trace_process(struct trace_writer *w, int64_t pid, int64_t nspid, const char *cmdline,
                       const char *python_version, uint32_t parent_process);
uint32_t trace_thread(struct trace_writer *w, uint32_t process, int64_t tid, uint64_t thread_id,
                      const char *name);
void trace_thread_name(struct trace_writer *w, uint32_t thread, const char *name);

/* Records. Ids they name must come from this writer (span->thread is a trace_thread() id); a
 * record naming an unknown thread, stack or owner is dropped, so the file always loads. */
void trace_sample(struct trace_writer *w, uint32_t thread, uint64_t t_ns, uint32_t stack,
                  uint8_t flags);
void trace_span(struct trace_writer *w, const struct tl_span *span);
void trace_counter(struct trace_writer *w, enum trace_counter_kind kind, uint32_t owner,
                   uint64_t t_ns, int64_t value);
void trace_event(struct trace_writer *w, enum trace_event_kind kind, uint32_t process,
                 uint32_t thread, uint64_t t_ns, int64_t value, const char *text);

#define TRACE_FLUSH_NS 1000000000ULL      /* at most this much recording is lost on a crash */
/* A flush packs and writes the chunk in the sampling thread: ≈ 5 ns a byte on this 2-core VM. At
 * 128 KiB that is ≈ 0.7 ms, which the sampler's 1 ms catch-up (attach/sampler.h) absorbs at
 * 100 kHz; 1 MiB chunks stalled it ≈ 5 ms each, five times a second, and cost 2–3% of the
 * samples asked. Small chunks also keep a reader's unit of loss small. */
#define TRACE_FLUSH_BYTES (128u << 10)

/* Writes the pending chunk if TRACE_FLUSH_NS has passed since the last one, or it has grown to
 * TRACE_FLUSH_BYTES (as estimated while records are added). */
enum pt_status trace_maybe_flush(struct trace_writer *w, uint64_t now_ns, struct pt_err *err);
enum pt_status trace_flush(struct trace_writer *w, struct pt_err *err);
/* Bytes written to the file so far. */
uint64_t trace_bytes(const struct trace_writer *w);

/* Flushes, writes the trailer chunk, fsyncs and closes. Frees w in every case. */
enum pt_status trace_writer_close(struct trace_writer *w, const struct trace_summary *sum,
                                  struct pt_err *err);

/* ---- Loading ------------------------------------------------------------------------------ */

struct trace_function { uint32_t name, qualname, file; int32_t first_line; };
/* What a native (C) function adds (Function fields 6-8); kind TRACE_FN_PYTHON for Python code. */
enum { TRACE_FN_PYTHON = 0, TRACE_FN_NATIVE = 1 };
struct trace_fn_native { uint32_t kind; bool approximate; uint32_t module; };
struct trace_stack_node { uint32_t parent, function; int32_t line; };
struct trace_process { int64_t pid, nspid; uint32_t cmdline, python_version, parent; };
struct trace_thread { uint32_t process; int64_t tid; uint64_t thread_id; uint32_t name; };
struct trace_sample { uint32_t thread, stack; uint64_t t_ns; uint8_t flags; };
struct trace_counter { uint32_t kind, owner; uint64_t t_ns; int64_t value; };
struct trace_event { uint32_t kind, process, thread; uint64_t t_ns; int64_t value; uint32_t text; };

/* A whole trace in memory. Index 0 of every id table (strings to threads) is a placeholder;
 * strings[0] is "". */
struct trace {
    /* header */
    int64_t pid;
    int64_t *nspid;
    size_t n_nspid;
    char *name, *python_version, *python_binary, *cmdline, *host, *pytrace_version, *filters;
    char *backend;               /* "" or "ebpf" */
    uint64_t start_wall_ns, start_mono_ns;
    double rate_hz;
    bool blocking, native;
    bool has_locals;                      /* recorded with --locals */
    char **tag_keys, **tag_values;
    size_t n_tags;
    uint32_t rotation_seq;                /* daemon rotation (header fields 20, 21) */
    char *recording_id;

    char **strings;                       size_t n_strings;
    struct trace_function *functions;     size_t n_functions;
    struct trace_fn_native *fn_native;    /* parallel to functions; NULL: all Python code */
    struct trace_stack_node *stacks;      size_t n_stacks;
    struct trace_process *processes;      size_t n_processes;
    struct trace_thread *threads;         size_t n_threads;
    struct trace_sample *samples;         size_t n_samples;   /* file order: chunk by chunk,
                                                                  per thread within a chunk */
    struct tl_span *spans;                size_t n_spans;
    struct tl_local *locals;              size_t n_locals;    /* spans' variables; each span's
                                                                  locals point into this array */
    struct trace_counter *counters;       size_t n_counters;
    struct trace_event *events;           size_t n_events;

    bool has_trailer;
    struct trace_summary summary;         /* valid when has_trailer */
    bool truncated;                       /* the file ended inside a chunk or lacks a trailer */
    uint64_t valid_bytes;                 /* bytes up to the end of the last whole chunk */
};

/*
 * Loads path. PT_ECORRUPT (with a message naming the file and offset) when it is not a .pytrace
 * file or its first chunk is unreadable; a file cut off later loads with truncated = true.
 */
enum pt_status trace_load(const char *path, struct trace **out, struct pt_err *err);
void trace_free(struct trace *t);

/* The native facts of function id, or NULL when it is Python code (or unknown). */
static inline const struct trace_fn_native *trace_fn_native(const struct trace *t, size_t id)
{
    return t->fn_native && id < t->n_functions && t->fn_native[id].kind == TRACE_FN_NATIVE
               ? &t->fn_native[id] : NULL;
}

/* Convenience: the string of id (or "" when out of range). */
static inline const char *trace_str(const struct trace *t, uint32_t id)
{
    return id < t->n_strings && t->strings[id] ? t->strings[id] : "";
}

#endif
