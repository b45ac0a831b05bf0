/*
 * proc.c — /proc readers. Every parse is defensive: a process can exit between any two reads,
 * and comm/paths may contain spaces or parentheses.
 */
#include "attach/proc.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int read_small_file(const char *path, char *buf, size_t cap, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    size_t got = 0;
    while (got + 1 < cap) {
        ssize_t r = read(fd, buf + got, cap - 1 - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    close(fd);
    buf[got] = '\0';
    if (len)
        *len = got;
    return 0;
}

enum pt_status proc_maps(pid_t pid, struct proc_map **out, size_t *n, struct pt_err *err)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/maps", (int)pid);
    FILE *f = fopen(path, "re");
    *out = NULL;
    *n = 0;
    if (!f) {
        if (errno == ENOENT)
            return pt_fail(err, PT_ENOPROC, "no such process: %d", (int)pid);
        return pt_fail(err, PT_EPERM, "permission denied reading process %d (%s): " PT_PERM_ADVICE,
                       (int)pid, strerror(errno));
    }
    size_t cap = 64;
    struct proc_map *maps = malloc(cap * sizeof *maps);
    char *line = NULL;
    size_t linecap = 0;
    while (maps && getline(&line, &linecap, f) > 0) {
        if (*n == cap) {
            struct proc_map *m = realloc(maps, cap * 2 * sizeof *m);
            if (!m) {
                free(maps);
                maps = NULL;
                break;
            }
            maps = m;
            cap *= 2;
        }
        struct proc_map *m = &maps[*n];
        char perms[8] = "";
        unsigned long long start, end, off, ino;
        int pathpos = 0;
        if (sscanf(line, "%llx-%llx %7s %llx %*s %llu %n", &start, &end, perms, &off, &ino,
                   &pathpos) < 5)
            continue;
        m->start = start;
        m->end = end;
        m->offset = off;
        m->inode = ino;
        m->r = perms[0] == 'r';
        m->w = perms[1] == 'w';
        m->x = perms[2] == 'x';
        const char *p = pathpos > 0 ? line + pathpos : "";
        size_t len = strcspn(p, "\n");
        if (len >= sizeof m->path)
            len = sizeof m->path - 1;
        memcpy(m->path, p, len);
        m->path[len] = '\0';
        (*n)++;
    }
    free(line);
    fclose(f);
    if (!maps)
        return pt_fail(err, PT_EFAIL, "out of memory reading %s", path);
    if (*n == 0) {
        free(maps);
        return pt_fail(err, PT_ENOPROC, "process %d has no memory maps (exited, or a kernel thread)",
                       (int)pid);
    }
    *out = maps;
    return PT_OK;
}

bool proc_alive(pid_t pid)
{
    struct proc_tstat st;
    return proc_thread_stat(pid, pid, &st) == 0 && st.state != 'Z' && st.state != 'X';
}

bool proc_alive_fd(pid_t pid, int *fd)
{
    struct proc_tstat st;
    if (*fd < 0) {
        char path[64];
        snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
        *fd = open(path, O_RDONLY | O_CLOEXEC);
        if (*fd < 0)
            return false;
    }
    return proc_thread_stat_fd(*fd, &st) == 0 && st.state != 'Z' && st.state != 'X';
}

long proc_perf_max_rate(void)
{
    char buf[64];
    if (read_small_file("/proc/sys/kernel/perf_event_max_sample_rate", buf, sizeof buf, NULL) != 0)
        return -1;
    char *end;
    long v = strtol(buf, &end, 10);
    return end != buf && v > 0 ? v : -1;
}

void proc_warn_perf_rate(const char *verb, double rate_hz)
{
    long cap = proc_perf_max_rate();
    if (cap <= 0 || rate_hz < (double)cap)
        return;
    /* The kernel stops an event for the rest of a tick once it took more than cap / HZ samples
     * in it: at the cap itself, jitter alone does that now and then. */
    fprintf(stderr, "pytrace %s: --ebpf: kernel.perf_event_max_sample_rate is %ld (the kernel "
            "lowers it itself when sampling interrupts run long), so at -r %.0f the CPU clock is "
            "throttled and loses ticks (pytrace fills them in from the samples around them); "
            "for the full rate: sysctl -w kernel.perf_event_max_sample_rate=%.0f\n",
            verb, cap, rate_hz, 2 * rate_hz);
}

int proc_exe(pid_t pid, char *buf, size_t cap)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/exe", (int)pid);
    ssize_t len = readlink(path, buf, cap - 1);
    if (len < 0) {
        buf[0] = '\0';
        return -1;
    }
    buf[len] = '\0';
    return 0;
}

void proc_root_path(pid_t pid, const char *path, char *out, size_t cap)
{
    snprintf(out, cap, "/proc/%d/root%s", (int)pid, path);
}

int proc_threads(pid_t pid, pid_t *tids, int cap)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/task", (int)pid);
    DIR *d = opendir(path);
    if (!d)
        return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (!isdigit((unsigned char)e->d_name[0]))
            continue;
        if (n < cap)
            tids[n] = (pid_t)atoi(e->d_name);
        n++;
    }
    closedir(d);
    return n < cap ? n : cap;
}

int proc_children(pid_t pid, pid_t *out, int cap)
{
    static __thread pid_t tids[PROC_MAX_TASKS];
    int nt = proc_threads(pid, tids, PROC_MAX_TASKS);
    if (nt < 0)
        return -1;
    int n = 0;
    for (int i = 0; i < nt && n < cap; i++) {
        char path[96], buf[4096], *save = NULL;
        size_t len;
        snprintf(path, sizeof path, "/proc/%d/task/%d/children", (int)pid, (int)tids[i]);
        if (read_small_file(path, buf, sizeof buf, &len) != 0)
            continue;
        if (len == sizeof buf - 1) {   /* a full buffer may end in half a pid */
            char *last = strrchr(buf, ' ');
            if (last)
                *last = '\0';
        }
        for (char *tok = strtok_r(buf, " \n", &save); tok && n < cap;
             tok = strtok_r(NULL, " \n", &save)) {
            pid_t child = (pid_t)atoi(tok);
            if (child > 0)
                out[n++] = child;
        }
    }
    return n;
}

pid_t proc_tracer(pid_t pid)
{
    char path[64], buf[4096];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    if (read_small_file(path, buf, sizeof buf, NULL) != 0)
        return 0;
    const char *p = strstr(buf, "\nTracerPid:");
    long v = p ? strtol(p + 11, NULL, 10) : 0;
    return v > 0 && v <= INT_MAX ? (pid_t)v : 0;
}

int proc_parse_nspid(const char *status, pid_t *out, int cap)
{
    const char *p = strncmp(status, "NSpid:", 6) == 0 ? status : strstr(status, "\nNSpid:");
    if (!p)
        return 0;
    p += *p == '\n' ? 7 : 6;
    int n = 0;
    while (n < cap) {
        while (*p == ' ' || *p == '\t')
            p++;
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p || v <= 0 || v > INT_MAX)
            break;
        out[n++] = (pid_t)v;
        p = end;
    }
    return n;
}

int proc_nspid(pid_t pid, pid_t *out, int cap)
{
    char path[64], buf[4096];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    if (read_small_file(path, buf, sizeof buf, NULL) != 0)
        return 0;
    return proc_parse_nspid(buf, out, cap);
}

int proc_thread_nspid(pid_t pid, pid_t tid, pid_t *out, int cap)
{
    char path[96], buf[4096];
    snprintf(path, sizeof path, "/proc/%d/task/%d/status", (int)pid, (int)tid);
    if (read_small_file(path, buf, sizeof buf, NULL) != 0)
        return 0;
    return proc_parse_nspid(buf, out, cap);
}

static int parse_stat(char *buf, struct proc_tstat *out);

int proc_thread_stat(pid_t pid, pid_t tid, struct proc_tstat *out)
{
    char path[96], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/task/%d/stat", (int)pid, (int)tid);
    if (read_small_file(path, buf, sizeof buf, NULL) != 0)
        return -1;
    return parse_stat(buf, out);
}

int proc_thread_stat_fd(int fd, struct proc_tstat *out)
{
    char buf[1024];
    ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
    if (n <= 0)
        return -1;
    buf[n] = '\0';
    return parse_stat(buf, out);
}

static int parse_stat(char *buf, struct proc_tstat *out)
{
    /* comm may hold spaces and ')': the state follows the LAST ')'. */
    char *p = strrchr(buf, ')');
    if (!p || p[1] != ' ')
        return -1;
    p += 2;
    out->state = *p;
    /* Fields after state: ppid pgrp session tty_nr tpgid flags minflt cminflt majflt cmajflt
     * utime stime — utime is the 11th after state. Skipped by hand: this runs every sample, and
     * sscanf cost more than the numbers are worth. */
    p++;
    for (int field = 0; field < 10; field++) {
        while (*p == ' ')
            p++;
        while (*p && *p != ' ')
            p++;
        if (!*p)
            return -1;
    }
    char *end;
    unsigned long long ut = strtoull(p, &end, 10);
    if (end == p)
        return -1;
    p = end;
    unsigned long long st = strtoull(p, &end, 10);
    if (end == p)
        return -1;
    static long hz;
    if (!hz)
        hz = sysconf(_SC_CLK_TCK) > 0 ? sysconf(_SC_CLK_TCK) : 100;
    out->utime_ns = ut * (1000000000ULL / (unsigned long long)hz);
    out->stime_ns = st * (1000000000ULL / (unsigned long long)hz);
    return 0;
}

int proc_cmdline(pid_t pid, char *buf, size_t cap)
{
    char path[64];
    size_t len = 0;
    snprintf(path, sizeof path, "/proc/%d/cmdline", (int)pid);
    if (read_small_file(path, buf, cap, &len) != 0)
        return -1;
    while (len > 0 && buf[len - 1] == '\0')
        len--;
    for (size_t i = 0; i < len; i++)
        if (buf[i] == '\0')
            buf[i] = ' ';
    buf[len] = '\0';
    return 0;
}

int proc_comm(pid_t pid, pid_t tid, char *buf, size_t cap)
{
    char path[96];
    size_t len = 0;
    snprintf(path, sizeof path, "/proc/%d/task/%d/comm", (int)pid, (int)tid);
    if (read_small_file(path, buf, cap, &len) != 0)
        return -1;
    if (len > 0 && buf[len - 1] == '\n')
        buf[len - 1] = '\0';
    return 0;
}

int proc_rss_open(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/statm", (int)pid);
    return open(path, O_RDONLY | O_CLOEXEC);
}

int64_t proc_rss_fd(int fd)
{
    static long page;
    if (!page)
        page = sysconf(_SC_PAGESIZE) > 0 ? sysconf(_SC_PAGESIZE) : 4096;
    char buf[128];
    ssize_t n = fd >= 0 ? pread(fd, buf, sizeof buf - 1, 0) : -1;
    if (n <= 0)
        return -1;
    buf[n] = '\0';
    /* "size resident shared text lib data dt": the second field, in pages. */
    const char *c = strchr(buf, ' ');
    if (!c || c[1] < '0' || c[1] > '9')
        return -1;
    uint64_t rss = 0;
    for (c++; *c >= '0' && *c <= '9'; c++)
        rss = rss * 10 + (uint64_t)(*c - '0');
    return (int64_t)rss * page;
}

int64_t proc_rss(pid_t pid)
{
    int fd = proc_rss_open(pid);
    int64_t rss = proc_rss_fd(fd);
    if (fd >= 0)
        close(fd);
    return rss;
}
