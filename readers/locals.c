/*
 * locals.c — a frame's variables by name (locals.h): slot names decoded once per code object,
 * slot values read with the frame's code pointer in one read, cells dereferenced, rules asked
 * before any value is read, values rendered by pyrepr.c into the caller's buffer.
 */
#include "readers/locals.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "readers/pyrepr.h"
#include "readers/pystr.h"

#define CO_VARARGS 0x4
#define CO_VARKEYWORDS 0x8
#define LOCALS_FRAME_READ 4096   /* frame header + local slots read at once */
#define LOCALS_ATTEMPTS 3        /* reads of a frame that keeps changing before giving up */

static struct py_varnames *varnames_alloc(uint32_t n)
{
    size_t head = (sizeof(struct py_varnames) + 7) & ~(size_t)7;
    struct py_varnames *v = calloc(1, head + (size_t)n * (PY_LOCALS_NAME + 1) + 1);
    if (!v)
        return NULL;
    v->names = (char (*)[PY_LOCALS_NAME])((char *)v + head);
    v->kinds = (uint8_t *)((char *)v + head + (size_t)n * PY_LOCALS_NAME);
    return v;
}

/* Appends the names of tuple `tuple` with kind `kind` to v (at most cap slots in all). */
static int add_names(struct py_proc *p, struct py_varnames *v, uint32_t cap, uint64_t tuple,
                     uint8_t kind)
{
    uint64_t items[PY_LOCALS_SLOTS];
    if (!tuple)
        return 0;
    int n = pyobj_read_tuple(p->mem, &p->layout, tuple, items, PY_LOCALS_SLOTS);
    if (n < 0)
        return -1;
    for (int i = 0; i < n && v->n < cap; i++) {
        char buf[PY_LOCALS_NAME * 4];
        if (pyobj_read_str(p->mem, &p->layout, &p->types, items[i], buf, sizeof buf) < 0)
            return -1;
        pystr_bytes_to_utf8((const uint8_t *)buf, strlen(buf), v->names[v->n], PY_LOCALS_NAME);
        v->kinds[v->n++] = kind;
    }
    return n;
}

static int32_t i32_field(const uint8_t *head, int32_t off)
{
    int32_t v = 0;
    if (off >= 0)
        memcpy(&v, head + off, 4);
    return v;
}

static uint64_t u64_field(const uint8_t *head, int32_t off)
{
    uint64_t v = 0;
    if (off >= 0)
        memcpy(&v, head + off, 8);
    return v;
}

/* Names of the slots of the code object at addr, per the version's code layout. */
static struct py_varnames *decode_varnames(struct py_proc *p, uint64_t addr)
{
    const struct py_layout *L = &p->layout;
    uint8_t head[1024];
    if (L->co_size < 64 || L->co_size > (int32_t)sizeof head ||
        mem_read(p->mem, addr, head, (size_t)L->co_size) != 0)
        return NULL;
    struct py_varnames *v = varnames_alloc(PY_LOCALS_SLOTS);
    if (!v)
        return NULL;
    int bad = 0;
    if (L->co_localsplusnames >= 0) {
        static __thread uint8_t kinds[PY_LOCALS_SLOTS * 16];
        size_t nk = 0;
        bad |= add_names(p, v, PY_LOCALS_SLOTS, u64_field(head, L->co_localsplusnames),
                         PY_VAR_LOCAL) < 0;
        if (!bad && pyobj_read_bytes(p->mem, L, u64_field(head, L->co_localspluskinds), kinds,
                                     sizeof kinds, &nk) != 0)
            bad = 1;
        for (uint32_t i = 0; !bad && i < v->n; i++)
            v->kinds[i] = i < nk ? kinds[i] : PY_VAR_LOCAL;
        v->nlocals = v->n;
    } else {
        bad |= add_names(p, v, PY_LOCALS_SLOTS, u64_field(head, L->co_varnames), PY_VAR_LOCAL) < 0;
        v->nlocals = v->n;
        bad |= add_names(p, v, PY_LOCALS_SLOTS, u64_field(head, L->co_cellvars), PY_VAR_CELL) < 0;
        bad |= add_names(p, v, PY_LOCALS_SLOTS, u64_field(head, L->co_freevars), PY_VAR_FREE) < 0;
    }
    int32_t flags = i32_field(head, L->co_flags);
    int64_t nargs = (int64_t)i32_field(head, L->co_argcount) + i32_field(head, L->co_kwonlyargcount) +
                    ((flags & CO_VARARGS) ? 1 : 0) + ((flags & CO_VARKEYWORDS) ? 1 : 0);
    if (bad || nargs < 0) {
        free(v);
        return NULL;
    }
    v->nargs = nargs < v->n ? (uint32_t)nargs : v->n;
    return v;
}

const struct py_varnames *py_varnames_of(struct py_proc *p, const struct py_code *code)
{
    if (!code)
        return NULL;
    /* The cache owns its entries; the names hang off one like its line table does. */
    struct py_code *c = (struct py_code *)code;
    if (!c->vars && !c->vars_failed) {
        c->vars = decode_varnames(p, c->addr);
        c->vars_failed = c->vars == NULL;
    }
    return c->vars;
}

/* Copies s into the text arena; NULL when it is full. */
static const char *keep(struct py_locals *out, const char *s)
{
    size_t n = strlen(s) + 1;
    if (out->used + n > sizeof out->text)
        return NULL;
    char *at = out->text + out->used;
    memcpy(at, s, n);
    out->used += (uint32_t)n;
    return at;
}

static bool is_cell(struct py_proc *p, uint64_t obj)
{
    uint64_t type;
    char name[16];
    if (pyobj_type(p->mem, &p->layout, obj, &type) != 0)
        return false;
    if (p->types.cell)
        return type == p->types.cell;
    return pyobj_type_name(p->mem, &p->layout, type, name, sizeof name) >= 0 &&
           strcmp(name, "cell") == 0;
}

/* The object a slot refers to: cells dereferenced; 0 when unbound. */
static uint64_t slot_value(struct py_proc *p, const struct py_varnames *v, uint32_t i, uint64_t slot)
{
    slot &= ~(uint64_t)(uint8_t)p->layout.if_code_tag_mask;   /* 3.14: tagged _PyStackRef */
    if (!slot || !(v->kinds[i] & (PY_VAR_CELL | PY_VAR_FREE)) || !is_cell(p, slot))
        return slot;
    uint64_t ref = 0;
    if (mem_read_ptr(p->mem, slot + (uint64_t)p->layout.cell_ref, &ref) != 0)
        return 0;
    return ref;
}

/*
 * Up to 3.10 an argument a closure captures also has a cell slot, after the plain locals: 3.x
 * moves the value into the cell and empties the argument's slot, 2.7 keeps both. The cell slot
 * of argument i (or -1), so the value is reported once, in the argument's place.
 */
static int arg_cell(const struct py_varnames *v, uint32_t i)
{
    if (i >= v->nargs || v->nlocals == v->n)
        return -1;
    for (uint32_t j = v->nlocals; j < v->n; j++)
        if ((v->kinds[j] & PY_VAR_CELL) && strcmp(v->names[j], v->names[i]) == 0)
            return (int)j;
    return -1;
}

static void add_local(struct py_proc *p, const struct py_code *code, const struct rules *rules,
                      struct py_locals *out, const char *name, bool arg, uint64_t obj)
{
    enum rule_action act = rules ? rules_value(rules, arg, name, NULL, code->filename, code->name)
                                 : RULE_NONE;
    if (act == RULE_DROP) {
        out->dropped++;
        return;
    }
    if (out->n == PY_LOCALS_MAX) {
        out->truncated = true;
        return;
    }
    char value[PY_LOCALS_VALUE];
    if (act == RULE_REDACT)
        snprintf(value, sizeof value, "<redacted>");
    else
        pyrepr(p, obj, value, sizeof value);
    struct py_local *l = &out->items[out->n];
    l->name = keep(out, name);
    l->value = keep(out, value);
    if (!l->name || !l->value) {
        out->truncated = true;
        return;
    }
    l->arg = arg;
    l->redacted = act == RULE_REDACT;
    out->redacted += l->redacted;
    out->n++;
}

/*
 * After the values were read: is the frame still running the call they came from? Its code and
 * slots must be unchanged (a slot that changed may have freed what we rendered), and an
 * interpreter frame in its thread's current data-stack chunk must still lie below the top: a
 * returned frame keeps its stale slots there (3.11+ does not clear them).
 */
static bool still_same(struct py_proc *p, uint64_t tstate, uint64_t frame, const uint8_t *buf,
                       size_t base, size_t len, size_t code_off)
{
    const struct py_layout *L = &p->layout;
    static __thread uint8_t again[LOCALS_FRAME_READ];
    uint64_t chunk = 0, top = 0;
    struct mem_iov iov[3] = {{frame, again, len}};
    int n = 1;
    if (tstate && L->frame_model == PY_FRAMES_INTERP && L->ts_datastack_chunk >= 0 &&
        L->ts_datastack_top >= 0) {
        iov[n++] = (struct mem_iov){tstate + (uint64_t)L->ts_datastack_chunk, &chunk, 8};
        iov[n++] = (struct mem_iov){tstate + (uint64_t)L->ts_datastack_top, &top, 8};
    }
    /* Only the code pointer and the slots matter: the rest of the frame moves as it runs. */
    if (mem_readv(p->mem, iov, n) != n || memcmp(again + code_off, buf + code_off, 8) != 0 ||
        memcmp(again + base, buf + base, len - base) != 0)
        return false;
    /* A frame below the chunk (an older chunk, a generator's own frame) cannot be placed. */
    return !(chunk && frame >= chunk && frame >= top);
}

/* One attempt: 1 when the frame changed while it was read (worth another try). */
static int read_once(struct py_proc *p, uint64_t tstate, const struct py_frame *f,
                     const struct py_varnames *v, const struct rules *rules,
                     struct py_locals *out, struct pt_err *err)
{
    const struct py_layout *L = &p->layout;
    out->n = out->redacted = out->dropped = out->used = 0;
    out->truncated = false;
    bool interp = L->frame_model == PY_FRAMES_INTERP;
    int32_t base = interp ? L->if_localsplus : L->fo_localsplus;
    int32_t code_off = interp ? L->if_code : L->fo_code;
    uint8_t buf[LOCALS_FRAME_READ];
    uint32_t n = v->n;
    if (base < 0 || code_off < 0 || (size_t)base + 8 > sizeof buf)
        return pt_fail(err, PT_EFAIL, "no local slots in this version's frame layout");
    if ((size_t)base + (size_t)n * 8 > sizeof buf)
        n = (uint32_t)((sizeof buf - (size_t)base) / 8);
    size_t len = (size_t)base + (size_t)n * 8;
    if (mem_read(p->mem, f->addr, buf, len) != 0)
        return pt_fail(err, PT_EFAIL, "frame at 0x%llx is no longer readable",
                       (unsigned long long)f->addr);
    uint64_t code;
    memcpy(&code, buf + code_off, 8);
    code &= ~(uint64_t)(uint8_t)L->if_code_tag_mask;
    if (code != f->code_addr)
        return pt_fail(err, PT_EFAIL, "frame at 0x%llx runs other code now",
                       (unsigned long long)f->addr);
    uint8_t done[PY_LOCALS_SLOTS] = {0};   /* cell slots already reported as their argument */
    for (uint32_t i = 0; i < n; i++) {
        if ((v->kinds[i] & PY_VAR_HIDDEN) || done[i])
            continue;
        uint64_t slot;
        memcpy(&slot, buf + base + 8 * i, 8);
        uint64_t obj = slot_value(p, v, i, slot);
        int cell = arg_cell(v, i);
        if (cell >= 0 && (uint32_t)cell < n) {
            done[cell] = 1;
            if (!obj) {
                memcpy(&slot, buf + base + 8 * (uint32_t)cell, 8);
                obj = slot_value(p, v, (uint32_t)cell, slot);
            }
        }
        if (obj)
            add_local(p, f->code, rules, out, v->names[i], i < v->nargs, obj);
    }
    if (n < v->n)
        out->truncated = true;
    return still_same(p, tstate, f->addr, buf, (size_t)base, len, (size_t)code_off) ? PT_OK : 1;
}

enum pt_status py_locals_read(struct py_proc *p, const struct py_thread *t, const struct py_frame *f,
                              const struct rules *rules, struct py_locals *out, struct pt_err *err)
{
    out->n = out->redacted = out->dropped = out->used = 0;
    out->truncated = false;
    const struct py_varnames *v = py_varnames_of(p, f->code);
    if (!v)
        return pt_fail(err, PT_EFAIL, "frame at 0x%llx: the names of its variables cannot be read",
                       (unsigned long long)f->addr);
    for (int attempt = 0; attempt < LOCALS_ATTEMPTS; attempt++) {
        int rc = read_once(p, t ? t->tstate : 0, f, v, rules, out, err);
        if (rc != 1)
            return (enum pt_status)rc;
    }
    out->n = 0;
    return pt_fail(err, PT_EFAIL, "frame at 0x%llx changed while its variables were read",
                   (unsigned long long)f->addr);
}
