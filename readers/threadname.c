/*
 * threadname.c — Python-level thread names. Placeholder until the threading-module reader lands:
 * names the main thread (native id == pid) "MainThread" and leaves others empty.
 */
#include "readers/walk.h"

#include <stdio.h>

void py_thread_names(struct py_proc *p, struct py_snapshot *s)
{
    for (uint32_t i = 0; i < s->nthreads; i++) {
        struct py_thread *t = &s->threads[i];
        if (t->native_id == p->pid)
            snprintf(t->name, sizeof t->name, "MainThread");
    }
}
