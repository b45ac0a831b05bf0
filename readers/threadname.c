/*
 * threadname.c — Python-level thread names, as threading.enumerate() shows them: threading._active
 * maps each thread's ident (its pthread_t, == thread state's thread_id) to its Thread object, whose
 * name is the instance attribute _name (2.7: the mangled _Thread__name). Threads not started by
 * the threading module keep an empty name; a thread whose name cannot be read keeps its OS name.
 */
#include "readers/pydict.h"
#include "readers/walk.h"
#include "util/mix.h"

#include <stdio.h>
#include <string.h>

struct names_ctx {
    struct py_proc *p;
    struct py_snapshot *s;
    uint64_t interp;
};

static int read_ident(struct py_proc *p, uint64_t key, uint64_t *ident)
{
    int64_t v;
    uint64_t type = 0;
    if (p->types.int27 && pyobj_type(p->mem, &p->layout, key, &type) == 0 && type == p->types.int27)
        return mem_read(p->mem, key + (uint64_t)p->layout.int27_ival, ident, 8);
    if (pyobj_read_long(p->mem, &p->layout, key, &v) != 0)
        return -1;
    *ident = (uint64_t)v;
    return 0;
}

static int name_one(uint64_t key, uint64_t thread, void *vctx)
{
    struct names_ctx *c = vctx;
    struct py_proc *p = c->p;
    uint64_t ident;
    if (read_ident(p, key, &ident) != 0)
        return 0;
    for (uint32_t i = 0; i < c->s->nthreads; i++) {
        struct py_thread *t = &c->s->threads[i];
        if (t->thread_id != ident || t->interp != c->interp)
            continue;
        const char *attr = p->version.major == 2 ? "_Thread__name" : "_name";
        uint64_t name = pydict_get_attr(p, thread, attr);
        if (name)
            pyobj_read_str(p->mem, &p->layout, &p->types, name, t->name, sizeof t->name);
    }
    return 0;
}

/* threading._active of interpreter interp (0: threading not imported, or unreadable). */
static uint64_t active_threads(struct py_proc *p, uint64_t interp)
{
    const struct py_layout *L = &p->layout;
    struct py_names_cache *c = &p->names;
    uint64_t modules = 0, used = 0, threading, dict = 0, active = 0;
    if (mem_read_ptr(p->mem, interp + (uint64_t)L->is_modules, &modules) != 0 || !modules)
        return 0;
    bool counted = L->dict_ma_used >= 0 &&
                   mem_read(p->mem, modules + (uint64_t)L->dict_ma_used, &used, 8) == 0;
    if (counted && c->interp == interp && c->modules == modules && c->used == used)
        return c->active;
    threading = pydict_get_str(p, modules, "threading");
    if (threading && mem_read_ptr(p->mem, threading + (uint64_t)L->md_dict, &dict) == 0)
        active = pydict_get_str(p, dict, "_active");
    if (counted && (active || !threading))   /* a module found half-imported is looked up again */
        *c = (struct py_names_cache){interp, modules, used, active};
    return active;
}

void py_thread_names(struct py_proc *p, struct py_snapshot *s)
{
    for (uint32_t i = 0; i < s->nthreads; i++) {
        s->threads[i].name[0] = '\0';
        s->threads[i].name_os = false;
    }
    /* Each interpreter has its own sys.modules and threading module. */
    for (uint32_t i = 0; i < s->nthreads; i++) {
        uint64_t interp = s->threads[i].interp;
        bool seen = false;
        for (uint32_t k = 0; k < i; k++)
            seen |= s->threads[k].interp == interp;
        if (seen || p->layout.is_modules < 0)
            continue;
        uint64_t active = active_threads(p, interp);
        struct names_ctx ctx = {p, s, interp};
        if (active)
            pydict_each(p, active, name_one, &ctx);
    }
    /* Fall back to the OS thread name (set by some libraries) for threads outside threading;
     * the process's own thread is the one threading names MainThread, imported or not (so that
     * --thread MainThread selects it in a program that never imports threading). */
    for (uint32_t i = 0; i < s->nthreads; i++) {
        struct py_thread *t = &s->threads[i];
        pid_t host = t->name[0] || p->pid <= 0 ? -1 : tidmap_host(&p->tids, (pid_t)t->native_id);
        if (host <= 0)
            continue;
        if (host != p->pid) {
            /* (also a thread that threading starts, before it enters it in _active: callers
             * read its name again soon) */
            proc_comm(p->pid, host, t->name, sizeof t->name);
            t->name_os = true;
        } else
            snprintf(t->name, sizeof t->name, "MainThread");
    }
}

uint64_t py_thread_set_sig(const struct py_snapshot *s)
{
    uint64_t sig = s->nthreads;
    for (uint32_t i = 0; i < s->nthreads; i++) {   /* a sum: the list's order does not count */
        const struct py_thread *t = &s->threads[i];
        sig += pt_mix64(pt_mix64(pt_mix64(t->tstate) ^ t->thread_id) ^ (uint64_t)t->native_id);
    }
    return sig;
}
