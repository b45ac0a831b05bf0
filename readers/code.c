/*
 * code.c — the code-object cache: open addressing on the object's address, decoding through
 * pyobj.c, linetable.c and loops.c. Entries are never freed while the cache lives (ids stay stable
 * for trace interning); a reused address overwrites its slot's contents in place.
 */
#include "readers/code.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define CODE_LT_MAX 65536      /* bytes of line table we accept from a target */
#define CODE_RANGES_MAX 65536  /* decoded ranges we keep per code object */
#define CODE_BC_MAX (256u << 10) /* bytes of bytecode we read to find loops; larger: loops unknown */
#define CODE_LOOPS_MAX 16384   /* backward edges we keep per code object */
#define CODE_HEAD_MAX 1024     /* bytes of a code object's head (co_size) we accept */
#define CODE_RECHECK_MAX 64    /* entries re-checked together at a tick (code_cache_recheck) */

struct code_cache {
    struct py_code **slots;    /* open addressing, power-of-two size */
    size_t cap, count;
    uint32_t epoch;
    uint32_t next_id;
    struct lt_range *scratch;  /* decode buffer, reused */
    uint8_t *bytecode;         /* bytecode read buffer (CODE_BC_MAX), reused */
    struct loop_jump *edges;   /* loops_scan buffer (CODE_LOOPS_MAX), reused */
    /* Entries checked in the current epoch, in first-use order (up to CODE_RECHECK_MAX): the
     * ones a tick re-checks in one read. */
    struct py_code *recent[CODE_RECHECK_MAX];
    uint32_t nrecent;
    uint8_t *heads;            /* CODE_RECHECK_MAX heads of CODE_HEAD_MAX, allocated on first use */
};

struct code_cache *code_cache_new(void)
{
    struct code_cache *cc = calloc(1, sizeof *cc);
    if (!cc)
        return NULL;
    cc->cap = 1024;
    cc->slots = calloc(cc->cap, sizeof *cc->slots);
    cc->scratch = malloc(CODE_RANGES_MAX * sizeof *cc->scratch);
    cc->bytecode = malloc(CODE_BC_MAX);
    cc->edges = malloc(CODE_LOOPS_MAX * sizeof *cc->edges);
    cc->epoch = 1;
    if (!cc->slots || !cc->scratch || !cc->bytecode || !cc->edges) {
        code_cache_free(cc);
        return NULL;
    }
    return cc;
}

static void code_clear(struct py_code *c)
{
    if (c->qualname != c->name)
        free(c->qualname);
    free(c->name);
    free(c->filename);
    free(c->lines);
    free(c->loops);
    free(c->vars);
    c->vars = NULL;
    c->vars_failed = false;
    c->name = c->qualname = c->filename = NULL;
    c->lines = NULL;
    c->nlines = 0;
    c->loops = NULL;
    c->nloops = 0;
    c->loops_known = false;
    c->body = false;
}

void code_cache_free(struct code_cache *cc)
{
    if (!cc)
        return;
    for (size_t i = 0; i < cc->cap && cc->slots; i++) {
        if (cc->slots[i]) {
            code_clear(cc->slots[i]);
            free(cc->slots[i]);
        }
    }
    free(cc->slots);
    free(cc->scratch);
    free(cc->bytecode);
    free(cc->edges);
    free(cc->heads);
    free(cc);
}

void code_cache_tick(struct code_cache *cc)
{
    cc->epoch++;
    cc->nrecent = 0;
}

static int fingerprint_of(const struct py_layout *L, const struct py_types *types,
                          const uint8_t *head, uint64_t fp[4]);

/* c was checked in the current epoch. */
static void mark_checked(struct code_cache *cc, struct py_code *c)
{
    c->epoch = cc->epoch;
    if (cc->nrecent < CODE_RECHECK_MAX)
        cc->recent[cc->nrecent++] = c;
}

void code_cache_recheck(struct code_cache *cc, struct mem_src *mem, const struct py_layout *L,
                        const struct py_types *types)
{
    struct py_code *was[CODE_RECHECK_MAX];
    uint32_t n = cc->nrecent;
    memcpy(was, cc->recent, n * sizeof *was);
    code_cache_tick(cc);
    size_t need = (size_t)L->co_size;
    if (n == 0 || need < 64 || need > CODE_HEAD_MAX)
        return;
    if (!cc->heads && !(cc->heads = malloc((size_t)CODE_RECHECK_MAX * CODE_HEAD_MAX)))
        return;
    struct mem_iov iov[CODE_RECHECK_MAX];
    for (uint32_t i = 0; i < n; i++)
        iov[i] = (struct mem_iov){was[i]->addr, cc->heads + (size_t)i * CODE_HEAD_MAX, need};
    int got = mem_readv(mem, iov, (int)n);
    for (int i = 0; i < got; i++) {
        uint64_t fp[4];
        /* Unchanged: trusted for this epoch. Changed or unreadable: left to code_cache_get(),
         * which decodes it afresh (or fails the frame) on its next use, as after a plain tick. */
        if (fingerprint_of(L, types, iov[i].buf, fp) == 0 && memcmp(was[i]->fp, fp, sizeof fp) == 0)
            mark_checked(cc, was[i]);
    }
}

size_t code_cache_size(const struct code_cache *cc)
{
    return cc->count;
}

static size_t slot_of(const struct code_cache *cc, uint64_t addr)
{
    uint64_t h = addr >> 4;
    h ^= h >> 29;
    h *= 0xbf58476d1ce4e5b9ULL;
    h ^= h >> 32;
    return (size_t)h & (cc->cap - 1);
}

static int grow(struct code_cache *cc)
{
    size_t oldcap = cc->cap;
    struct py_code **old = cc->slots;
    struct py_code **slots = calloc(oldcap * 2, sizeof *slots);
    if (!slots)
        return -1;
    cc->slots = slots;
    cc->cap = oldcap * 2;
    for (size_t i = 0; i < oldcap; i++) {
        if (!old[i])
            continue;
        size_t s = slot_of(cc, old[i]->addr);
        while (cc->slots[s])
            s = (s + 1) & (cc->cap - 1);
        cc->slots[s] = old[i];
    }
    free(old);
    return 0;
}

/* Reads the fingerprint fields of the code object at addr (one read of the object's head). */
static int read_fingerprint(struct mem_src *mem, const struct py_layout *L,
                            const struct py_types *types, uint64_t addr, uint8_t *head,
                            uint64_t fp[4])
{
    size_t need = (size_t)L->co_size;
    if (need < 64 || need > CODE_HEAD_MAX)
        return -1;
    if (mem_read(mem, addr, head, need) != 0)
        return -1;
    return fingerprint_of(L, types, head, fp);
}

/* The fingerprint from a code object's head as read; -1 when it is not one. */
static int fingerprint_of(const struct py_layout *L, const struct py_types *types,
                          const uint8_t *head, uint64_t fp[4])
{
    if (types && types->code) {
        uint64_t type;
        memcpy(&type, head + L->ob_type, 8);
        if (type != types->code)
            return -1;
    }
    int32_t first;
    memcpy(&fp[0], head + L->co_name, 8);
    memcpy(&fp[1], head + L->co_filename, 8);
    memcpy(&fp[2], head + L->co_linetable, 8);
    memcpy(&first, head + L->co_firstlineno, 4);
    fp[3] = (uint64_t)(uint32_t)first;
    return fp[0] && fp[1] ? 0 : -1;
}

static char *read_name(struct mem_src *mem, const struct py_layout *L, const struct py_types *types,
                       uint64_t addr)
{
    char buf[PYOBJ_STR_MAX];
    if (pyobj_read_str(mem, L, types, addr, buf, sizeof buf) < 0)
        return NULL;
    return strdup(buf);
}

/*
 * Reads the bytecode (≤3.10: the co_code bytes object; 3.11+: ob_size code units inline at
 * co_code_adaptive, as quickened and possibly instrumented at this moment) and keeps its backward
 * edges. Any failure leaves loops_known false: the timeline then never splits on offsets.
 */
static void decode_loops(struct py_code *c, struct code_cache *cc, struct mem_src *mem,
                         const struct py_layout *L, const uint8_t *head)
{
    const struct py_opcodes *ops = opcodes_for_version(L->major, L->minor);
    size_t len = 0, n = 0;
    if (!ops)
        return;
    if (L->co_code_adaptive >= 0) {
        int64_t units;
        memcpy(&units, head + L->ob_size, 8);
        if (units <= 0 || (uint64_t)units > CODE_BC_MAX / 2)
            return;
        len = (size_t)units * 2;
        if (mem_read(mem, c->addr + (uint64_t)L->co_code_adaptive, cc->bytecode, len) != 0)
            return;
    } else if (L->co_code >= 0) {
        uint64_t bytes;
        memcpy(&bytes, head + L->co_code, 8);
        if (pyobj_read_bytes(mem, L, bytes, cc->bytecode, CODE_BC_MAX, &len) != 0)
            return;
    } else {
        return;
    }
    if (loops_scan(ops, cc->bytecode, len, cc->edges, CODE_LOOPS_MAX, &n) != LOOPS_OK)
        return;
    if (n) {
        c->loops = malloc(n * sizeof *c->loops);
        if (!c->loops)
            return;
        memcpy(c->loops, cc->edges, n * sizeof *c->loops);
    }
    c->nloops = (uint32_t)n;
    c->loops_known = true;
}

static int decode(struct py_code *c, struct code_cache *cc, struct mem_src *mem,
                  const struct py_layout *L, const struct py_types *types, const uint8_t *head)
{
    int32_t i32;
    c->name = read_name(mem, L, types, c->fp[0]);
    c->filename = read_name(mem, L, types, c->fp[1]);
    if (!c->name || !c->filename)
        return -1;
    c->qualname = c->name;
    if (L->co_qualname >= 0) {
        uint64_t q;
        memcpy(&q, head + L->co_qualname, 8);
        char *qn = q ? read_name(mem, L, types, q) : NULL;
        if (qn)
            c->qualname = qn;
    }
    c->firstlineno = (int32_t)c->fp[3];
    memcpy(&i32, head + L->co_argcount, 4);
    c->argcount = i32;
    if (L->co_nlocals >= 0) {
        memcpy(&i32, head + L->co_nlocals, 4);
        c->nlocals = i32;
    }
    if (L->co_flags >= 0) {
        memcpy(&i32, head + L->co_flags, 4);
        c->generator = (i32 & PY_CO_GENERATOR_FLAGS) != 0;
        c->body = !(i32 & PY_CO_OPTIMIZED);
    }
    c->trampoline = L->if_owner_cstack >= 0 && strcmp(c->name, "<interpreter trampoline>") == 0;
    /* The line table: a bytes object. A malformed one leaves every line at firstlineno. */
    static __thread uint8_t tab[CODE_LT_MAX];
    size_t len = 0;
    size_t n = 0;
    c->bad_linetable = true;
    if (pyobj_read_bytes(mem, L, c->fp[2], tab, sizeof tab, &len) == 0) {
        int rc = lt_decode(L->linetable, tab, len, c->firstlineno, cc->scratch, CODE_RANGES_MAX, &n);
        c->bad_linetable = rc != 0;
    }
    if (n) {
        c->lines = malloc(n * sizeof *c->lines);
        if (!c->lines)
            return -1;
        memcpy(c->lines, cc->scratch, n * sizeof *c->lines);
        c->nlines = (uint32_t)n;
    }
    decode_loops(c, cc, mem, L, head);
    return 0;
}

uint32_t code_cache_epoch(const struct code_cache *cc)
{
    return cc->epoch;
}

const struct py_code *code_cache_get(struct code_cache *cc, struct mem_src *mem,
                                     const struct py_layout *L, const struct py_types *types,
                                     uint64_t addr, uint64_t frame)
{
    uint8_t head[CODE_HEAD_MAX];
    uint64_t fp[4];
    if (!addr)
        return NULL;
    size_t s = slot_of(cc, addr);
    while (cc->slots[s] && cc->slots[s]->addr != addr)
        s = (s + 1) & (cc->cap - 1);
    struct py_code *c = cc->slots[s];
    if (c && c->epoch == cc->epoch && !(c->body && frame && frame != c->frame))
        return c;
    errno = 0;
    if (read_fingerprint(mem, L, types, addr, head, fp) != 0) {
        /* The process has gone (--ebpf drains its last records after it exits): its code objects
         * are what they were when last checked. */
        return c && c->fp[0] && errno == ESRCH ? c : NULL;
    }
    if (c && memcmp(c->fp, fp, sizeof fp) == 0) {
        mark_checked(cc, c);
        c->frame = frame;
        return c;
    }
    if (!c) {
        if ((cc->count + 1) * 2 > cc->cap) {
            if (grow(cc) != 0)
                return NULL;
            return code_cache_get(cc, mem, L, types, addr, frame);
        }
        c = calloc(1, sizeof *c);
        if (!c)
            return NULL;
        c->id = ++cc->next_id;
        cc->slots[s] = c;
        cc->count++;
    } else {
        /* Address reused by another code object: decode afresh, under a new id. */
        code_clear(c);
        c->id = ++cc->next_id;
    }
    c->addr = addr;
    c->frame = frame;
    memcpy(c->fp, fp, sizeof fp);
    c->epoch = cc->epoch;
    if (decode(c, cc, mem, L, types, head) != 0) {
        code_clear(c);
        c->epoch = 0;   /* retry next time */
        memset(c->fp, 0, sizeof c->fp);
        return NULL;
    }
    mark_checked(cc, c);
    return c;
}

bool code_may_go_back(const struct py_code *code, int32_t from, int32_t to)
{
    if (!code || !code->loops_known || from < 0 || to < 0)
        return true;
    return loops_may_go_back(code->loops, code->nloops, (uint32_t)from, (uint32_t)to);
}

int32_t code_line(const struct py_code *code, int64_t off)
{
    if (off < 0 || !code->nlines)
        return code->firstlineno;
    int32_t line = lt_line_at(code->lines, code->nlines, (uint32_t)off);
    return line;
}
