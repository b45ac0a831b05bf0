/*
 * caps.c — the start-up permission check (see caps.h): capability bits and seccomp mode from
 * /proc/self/status, Yama's ptrace_scope, and one process_vm_readv of our own memory (a seccomp
 * filter that blocks the call refuses it for any target, ourselves included).
 */
#include "attach/caps.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#define CAPS_SYS_PTRACE_BIT 19

void caps_check(struct caps_report *r)
{
    memset(r, 0, sizeof *r);
    r->root = geteuid() == 0;
    r->ptrace_scope = -1;
    r->seccomp = -1;
    FILE *f = fopen("/proc/self/status", "re");
    char line[256];
    while (f && fgets(line, sizeof line, f)) {
        if (!strncmp(line, "CapEff:", 7))
            r->cap_sys_ptrace = (strtoull(line + 7, NULL, 16) >> CAPS_SYS_PTRACE_BIT) & 1;
        else if (!strncmp(line, "Seccomp:", 8))
            r->seccomp = atoi(line + 8);
    }
    if (f)
        fclose(f);
    f = fopen("/proc/sys/kernel/yama/ptrace_scope", "re");
    if (f) {
        if (fscanf(f, "%d", &r->ptrace_scope) != 1)
            r->ptrace_scope = -1;
        fclose(f);
    }
    static volatile uint64_t probe = 0x70797472616365ULL;
    uint64_t got = 0;
    struct iovec local = { &got, sizeof got }, remote = { (void *)&probe, sizeof probe };
    ssize_t n = process_vm_readv(getpid(), &local, 1, &remote, 1, 0);
    r->vm_readv_ok = n == (ssize_t)sizeof got && got == probe;
    r->vm_readv_errno = n < 0 ? errno : 0;
}
