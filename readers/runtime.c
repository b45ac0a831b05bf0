/*
 * runtime.c — finding CPython inside a process: which mapped file holds the interpreter, its
 * version, the layout to read it with, and the address of _PyRuntime (3.7+) or interp_head
 * (2.7/3.6). Symbols come first; a stripped binary falls back to the .PyRuntime section (3.10+)
 * and then to a scan of its writable segments for a runtime whose interpreter → thread state →
 * interpreter back-pointer chain validates.
 */
#include "readers/runtime.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "readers/walk.h"
#include "symbols/elf.h"

#define SCAN_CHUNK (64 * 1024)
#define SCAN_MAX_VALIDATIONS 200000
#define PY_MAX_TID_PROBE 4096

struct candidate {
    const struct proc_map *map;   /* the mapping of file offset 0 (lowest address) */
    struct elf_file *ef;
    uint64_t bias;
};

static const char *base_name(const char *path)
{
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

/* "python3.11", "libpython3.11.so.1.0", "libpython2.7.so", "python3.6m" -> 3, 11. */
static int version_from_name(const char *name, int *major, int *minor)
{
    const char *p = strstr(name, "python");
    while (p) {
        const char *q = p + 6;
        if ((q[0] == '2' || q[0] == '3') && q[1] == '.' && isdigit((unsigned char)q[2])) {
            *major = q[0] - '0';
            *minor = atoi(q + 2);
            return 0;
        }
        p = strstr(q, "python");
    }
    return -1;
}

/* Looks for "M.m.u" (followed by NUL, or '+', 'a', 'b', 'r' of a pre-release) in the file's
 * .rodata: the PY_VERSION literal that Py_GetVersion() formats. */
static int micro_from_rodata(struct elf_file *ef, int major, int minor, int *micro)
{
    uint64_t addr, size;
    if (elf_section(ef, ".rodata", &addr, &size) != 0 || size == 0 || size > (256u << 20))
        return -1;
    char *buf = malloc(size + 1);
    if (!buf)
        return -1;
    int rc = -1;
    if (elf_read_vaddr(ef, addr, buf, size) == 0) {
        buf[size] = '\0';
        char pat[16];
        int plen = snprintf(pat, sizeof pat, "%d.%d.", major, minor);
        for (const char *p = buf; p + plen < buf + size; p++) {
            p = memmem(p, (size_t)(buf + size - p), pat, (size_t)plen);
            if (!p)
                break;
            /* The literal may be tail-merged into a longer string such as an install prefix
             * ".../versions/2.7.18": accept any start that does not extend the number. */
            if (p > buf && (isdigit((unsigned char)p[-1]) || p[-1] == '.'))
                continue;
            const char *d = p + plen;
            if (!isdigit((unsigned char)*d))
                continue;
            const char *e = d;
            while (isdigit((unsigned char)*e))
                e++;
            if (*e == '\0' || *e == '+' || *e == 'a' || *e == 'b' || *e == 'r') {
                *micro = atoi(d);
                rc = 0;
                break;
            }
        }
    }
    free(buf);
    return rc;
}

static uint64_t sym_addr(struct candidate *c, const char *name)
{
    uint64_t v, sz;
    if (elf_symbol(c->ef, name, &v, &sz) != 0 || !v)
        return 0;
    return c->bias + v;
}

static bool looks_like_python(struct elf_file *ef)
{
    uint64_t v, sz;
    return elf_symbol(ef, "PyCode_Type", &v, &sz) == 0 || elf_symbol(ef, "Py_Initialize", &v, &sz) == 0;
}

/* Opens the file behind map: through /proc/PID/root first, then /proc/PID/map_files (which also
 * works for deleted or replaced files). */
static struct elf_file *open_mapped(pid_t pid, const struct proc_map *m)
{
    char path[4200];
    struct elf_file *ef = NULL;
    proc_root_path(pid, m->path, path, sizeof path);
    if (elf_open(&ef, path, NULL) == PT_OK)
        return ef;
    snprintf(path, sizeof path, "/proc/%d/map_files/%llx-%llx", (int)pid,
             (unsigned long long)m->start, (unsigned long long)m->end);
    if (elf_open(&ef, path, NULL) == PT_OK)
        return ef;
    return NULL;
}

static const struct proc_map *lowest_map_of(const struct proc_map *maps, size_t n, const char *path)
{
    const struct proc_map *best = NULL;
    for (size_t i = 0; i < n; i++)
        if (strcmp(maps[i].path, path) == 0 && (!best || maps[i].start < best->start))
            best = &maps[i];
    return best;
}

/* The file holding the interpreter: a mapped libpython, else the executable. */
static int find_python_binary(pid_t pid, const struct proc_map *maps, size_t n, struct candidate *out)
{
    char exe[4096];
    proc_exe(pid, exe, sizeof exe);
    const char *paths[2] = {NULL, NULL};
    for (size_t i = 0; i < n && !paths[0]; i++)
        if (strstr(base_name(maps[i].path), "libpython"))
            paths[0] = maps[i].path;
    /* The executable's mapping carries its path as maps shows it ("(deleted)" suffix included). */
    for (size_t i = 0; i < n && !paths[1]; i++)
        if (maps[i].path[0] == '/' && strncmp(maps[i].path, exe, strlen(exe)) == 0)
            paths[1] = maps[i].path;
    for (int k = 0; k < 2; k++) {
        if (!paths[k])
            continue;
        const struct proc_map *m = lowest_map_of(maps, n, paths[k]);
        struct elf_file *ef = m ? open_mapped(pid, m) : NULL;
        if (!ef)
            continue;
        if (!looks_like_python(ef) && k == 1) {
            elf_close(ef);
            continue;
        }
        out->map = m;
        out->ef = ef;
        out->bias = elf_load_bias(ef, m->start, m->offset);
        return 0;
    }
    return -1;
}

static bool in_rw_map(const struct proc_map *maps, size_t n, uint64_t addr)
{
    if (!addr || (addr & 7))
        return false;
    for (size_t i = 0; i < n; i++)
        if (addr >= maps[i].start && addr < maps[i].end)
            return maps[i].r && maps[i].w;
    return false;
}

/*
 * An interpreter state is real if its first thread state points back at it and its sys.modules
 * is a dict. (The back-pointer alone also holds for a thread state whose interpreter's first
 * thread is itself, as 2.7/3.6 share one offset for both fields.)
 */
static bool interp_validates(struct py_proc *p, uint64_t interp)
{
    const struct py_layout *L = &p->layout;
    uint64_t ts = 0, back = 0;
    if (p->types.dict && L->is_modules >= 0) {
        uint64_t modules = 0, type = 0;
        if (mem_read_ptr(p->mem, interp + (uint64_t)L->is_modules, &modules) != 0 || !modules ||
            pyobj_type(p->mem, L, modules, &type) != 0 || type != p->types.dict)
            return false;
    }
    if (mem_read_ptr(p->mem, interp + (uint64_t)L->is_tstate_head, &ts) != 0 || !ts || (ts & 7))
        return false;
    if (mem_read_ptr(p->mem, ts + (uint64_t)L->ts_interp, &back) != 0)
        return false;
    return back == interp;
}

/*
 * Scans the binary's writable segments for a word that points to a validating interpreter. For
 * 3.7+ the word sits at _PyRuntime + rt_interpreters_head; for 2.7/3.6 it is interp_head itself.
 */
static int scan_for_runtime(struct py_proc *p, struct candidate *c, const struct proc_map *maps,
                            size_t n)
{
    struct elf_segment segs[16];
    int nseg = elf_segments(c->ef, segs, 16);
    uint64_t *chunk = malloc(SCAN_CHUNK);
    int64_t field = p->layout.rt_interpreters_head >= 0 ? p->layout.rt_interpreters_head : 0;
    long validations = 0;
    if (!chunk)
        return -1;
    for (int i = 0; i < nseg && i < 16; i++) {
        if (!segs[i].writable)
            continue;
        uint64_t lo = (c->bias + segs[i].vaddr) & ~7ULL, hi = c->bias + segs[i].vaddr + segs[i].memsz;
        for (uint64_t a = lo; a < hi; a += SCAN_CHUNK) {
            size_t len = hi - a < SCAN_CHUNK ? (size_t)(hi - a) & ~7UL : SCAN_CHUNK;
            if (len == 0 || mem_read(p->mem, a, chunk, len) != 0)
                continue;
            for (size_t w = 0; w < len / 8; w++) {
                uint64_t v = chunk[w];
                if (!in_rw_map(maps, n, v))
                    continue;
                if (++validations > SCAN_MAX_VALIDATIONS)
                    goto out;
                if (interp_validates(p, v)) {
                    uint64_t at = a + w * 8;
                    if (p->layout.rt_interpreters_head >= 0)
                        p->runtime = at - (uint64_t)field;
                    else
                        p->interp_head_addr = at;
                    free(chunk);
                    return 0;
                }
            }
        }
    }
out:
    free(chunk);
    return -1;
}

static void find_types(struct py_proc *p, struct candidate *c)
{
    struct py_types *t = &p->types;
    t->code = sym_addr(c, "PyCode_Type");
    t->unicode = sym_addr(c, "PyUnicode_Type");
    t->bytes = sym_addr(c, p->version.major == 2 ? "PyString_Type" : "PyBytes_Type");
    t->str = p->version.major == 2 ? t->bytes : t->unicode;
    t->tuple = sym_addr(c, "PyTuple_Type");
    t->dict = sym_addr(c, "PyDict_Type");
    t->list = sym_addr(c, "PyList_Type");
    t->long_ = sym_addr(c, "PyLong_Type");
    t->int27 = p->version.major == 2 ? sym_addr(c, "PyInt_Type") : 0;
    t->float_ = sym_addr(c, "PyFloat_Type");
    t->bool_ = sym_addr(c, "PyBool_Type");
    t->none = sym_addr(c, "_Py_NoneStruct");
    t->set_ = sym_addr(c, "PySet_Type");
    t->frozenset = sym_addr(c, "PyFrozenSet_Type");
    t->cell = sym_addr(c, "PyCell_Type");
}

/* Version from Py_Version (3.11+), else the file name, with the micro from .rodata. */
static int detect_version(struct py_proc *p, struct candidate *c)
{
    struct py_version *v = &p->version;
    uint64_t at = sym_addr(c, "Py_Version");
    uint32_t hex = 0;
    if (at && mem_read(p->mem, at, &hex, 4) == 0 && (hex >> 24) == 3) {
        v->hex = hex;
        v->major = (int)(hex >> 24);
        v->minor = (int)((hex >> 16) & 0xff);
        v->micro = (int)((hex >> 8) & 0xff);
        return 0;
    }
    if (version_from_name(base_name(c->map->path), &v->major, &v->minor) != 0) {
        /* A renamed binary: take the first version literal we can find. */
        for (int minor = 14; minor >= 6; minor--) {
            if (micro_from_rodata(c->ef, 3, minor, &v->micro) == 0) {
                v->major = 3;
                v->minor = minor;
                return 0;
            }
        }
        if (micro_from_rodata(c->ef, 2, 7, &v->micro) == 0) {
            v->major = 2;
            v->minor = 7;
            return 0;
        }
        return -1;
    }
    if (micro_from_rodata(c->ef, v->major, v->minor, &v->micro) != 0)
        v->micro = -1;
    return 0;
}

static enum pt_status choose_layout(struct py_proc *p, struct pt_err *err)
{
    struct py_version *v = &p->version;
    const struct py_layout *table = layout_for_version(v->major, v->minor);
    if (p->runtime && (v->major > 3 || (v->major == 3 && v->minor >= 13))) {
        uint8_t image[4096];
        struct pt_err derr;
        if (mem_read(p->mem, p->runtime, image, sizeof image) == 0 &&
            layout_from_debug_offsets(&p->layout, image, sizeof image, &derr) == PT_OK) {
            p->layout_from_debug_offsets = true;
            uint64_t hex;
            memcpy(&hex, image + 8, 8);
            if ((hex >> 24) == 3) {
                v->hex = (uint32_t)hex;
                v->major = 3;
                v->minor = (int)((hex >> 16) & 0xff);
                v->micro = (int)((hex >> 8) & 0xff);
            }
            return PT_OK;
        }
        if (!table)
            return pt_fail(err, PT_EVERSION, "Python %d.%d in process %d is not supported: %s",
                           v->major, v->minor, (int)p->pid, derr.msg);
    }
    if (!table)
        return pt_fail(err, PT_EVERSION,
                       "Python %d.%d in process %d is not supported (pytrace reads 2.7 and "
                       "3.6-3.13, and 3.14+ through _Py_DebugOffsets)",
                       v->major, v->minor, (int)p->pid);
    p->layout = *table;
    return PT_OK;
}

/* Where the runtime is: symbol, then .PyRuntime section; the scan comes after the layout. */
static void find_anchor_symbols(struct py_proc *p, struct candidate *c, bool use_symbols)
{
    uint64_t addr, size;
    if (use_symbols) {
        p->runtime = sym_addr(c, "_PyRuntime");
        p->interp_head_addr = sym_addr(c, "interp_head");
        if (p->runtime || p->interp_head_addr) {
            p->anchor = PY_ANCHOR_SYMBOL;
            return;
        }
    }
    if (elf_section(c->ef, ".PyRuntime", &addr, &size) == 0 && size > 0) {
        p->runtime = c->bias + addr;
        p->anchor = PY_ANCHOR_SECTION;
    }
}

static enum pt_status open_proc(struct py_proc *p, struct pt_err *err)
{
    struct proc_map *maps = NULL;
    size_t n = 0;
    struct candidate c = {0};
    enum pt_status rc = proc_maps(p->pid, &maps, &n, err);
    if (rc != PT_OK)
        return rc;
    if (find_python_binary(p->pid, maps, n, &c) != 0) {
        char exe[4096], comm[64] = "?";
        proc_exe(p->pid, exe, sizeof exe);
        proc_comm(p->pid, p->pid, comm, sizeof comm);
        free(maps);
        return pt_fail(err, PT_ENOTPY,
                       "process %d (%s, %s) is not a Python process: no libpython or CPython "
                       "symbols in its executable; pass the pid of the python process itself",
                       (int)p->pid, comm, exe[0] ? exe : "exe unreadable");
    }
    snprintf(p->binary, sizeof p->binary, "%s", c.map->path);
    p->bias = c.bias;
    /* PYTRACE_NO_SYMBOLS=1 makes pytrace find the runtime as if the binary were fully stripped
     * (used by tests of the scan fallback; also a work-around for a binary with wrong symbols). */
    const char *nosym = getenv("PYTRACE_NO_SYMBOLS");
    bool use_symbols = !(nosym && *nosym == '1');
    rc = PT_OK;
    if (detect_version(p, &c) != 0) {
        rc = pt_fail(err, PT_ENOTPY,
                     "process %d: %s looks like CPython but its version cannot be determined",
                     (int)p->pid, p->binary);
        goto done;
    }
    find_anchor_symbols(p, &c, use_symbols);
    /* 2.7 and 3.6 keep the GIL holder in an exported global (3.7+ in _PyRuntime). */
    if (p->version.major == 2 || (p->version.major == 3 && p->version.minor < 7))
        p->tstate_current_addr = sym_addr(&c, "_PyThreadState_Current");
    if ((rc = choose_layout(p, err)) != PT_OK)
        goto done;
    find_types(p, &c);
    if (!p->runtime && !p->interp_head_addr) {
        if (scan_for_runtime(p, &c, maps, n) != 0) {
            rc = pt_fail(err, PT_ENOTPY,
                         "process %d: Python %d.%d found in %s but its interpreter state was not "
                         "(stripped binary and no interpreter has started a thread yet?)",
                         (int)p->pid, p->version.major, p->version.minor, p->binary);
            goto done;
        }
        p->anchor = PY_ANCHOR_SCAN;
    }
done:
    elf_close(c.ef);
    free(maps);
    return rc;
}

enum pt_status py_proc_open(struct py_proc **out, pid_t pid, struct pt_err *err)
{
    *out = NULL;
    struct py_proc *p = calloc(1, sizeof *p);
    if (!p)
        return pt_fail(err, PT_EFAIL, "out of memory");
    p->pid = pid;
    p->pthread_tid_offset = -1;
    tidmap_init(&p->tids, pid);
    enum pt_status rc = mem_open_pid(&p->mem, pid, err);
    if (rc == PT_OK && !getenv("PYTRACE_NO_PREFETCH")) {
        /* Sampling rounds read through a one-syscall prefetch of the last round's regions
         * (PYTRACE_NO_PREFETCH=1 turns it off, to measure what it saves). */
        struct mem_src *round = mem_round_new(p->mem);
        if (!round)
            rc = pt_fail(err, PT_EFAIL, "out of memory");
        else
            p->mem = round;
    }
    if (rc == PT_OK)
        rc = open_proc(p, err);
    if (rc == PT_OK)
        mem_round_pages(p->mem, p->layout.frame_model == PY_FRAMES_OBJECTS);
    if (rc == PT_OK && !(p->codes = code_cache_new()))
        rc = pt_fail(err, PT_EFAIL, "out of memory");
    if (rc != PT_OK) {
        py_proc_close(p);
        return rc;
    }
    *out = p;
    return PT_OK;
}

struct py_proc *py_proc_from_mem(struct mem_src *mem, const struct py_layout *L,
                                 const struct py_version *v, uint64_t runtime,
                                 uint64_t interp_head_addr)
{
    struct py_proc *p = calloc(1, sizeof *p);
    if (!p) {
        mem_close(mem);
        return NULL;
    }
    p->mem = mem;
    p->layout = *L;
    p->version = *v;
    p->runtime = runtime;
    p->interp_head_addr = interp_head_addr;
    p->pthread_tid_offset = -2;
    p->anchor = PY_ANCHOR_SYMBOL;
    if (!(p->codes = code_cache_new())) {
        py_proc_close(p);
        return NULL;
    }
    return p;
}

void py_proc_close(struct py_proc *p)
{
    if (!p)
        return;
    mem_close(p->mem);
    code_cache_free(p->codes);
    free(p->stackbuf);
    py_prev_stacks_free(p);
    for (size_t i = 0; i < p->n_tstat; i++)
        if (p->tstat[i].fd >= 0)
            close(p->tstat[i].fd);
    free(p->tstat);
    tidmap_free(&p->tids);
    free(p);
}

void py_version_str(const struct py_version *v, char *out, size_t cap)
{
    if (v->micro >= 0)
        snprintf(out, cap, "%d.%d.%d", v->major, v->minor, v->micro);
    else
        snprintf(out, cap, "%d.%d", v->major, v->minor);
}

int py_proc_first_interp(struct py_proc *p, uint64_t *interp)
{
    *interp = 0;
    if (p->runtime && p->layout.rt_interpreters_head >= 0)
        return mem_read_ptr(p->mem, p->runtime + (uint64_t)p->layout.rt_interpreters_head, interp);
    if (p->interp_head_addr)
        return mem_read_ptr(p->mem, p->interp_head_addr, interp);
    if (p->tstate_current_addr) {
        /* Stripped 2.7/3.6 found by scan sets interp_head_addr; this is the last resort. */
        uint64_t ts = 0;
        if (mem_read_ptr(p->mem, p->tstate_current_addr, &ts) != 0 || !ts)
            return -1;
        return mem_read_ptr(p->mem, ts + (uint64_t)p->layout.ts_interp, interp);
    }
    return -1;
}

/* tid is the target's (native_id); /proc names the thread by pytrace's id for it. */
static int tstat_open(struct py_proc *p, pid_t tid)
{
    char path[96];
    pid_t host = tidmap_host(&p->tids, tid);
    if (host <= 0)
        return -1;
    snprintf(path, sizeof path, "/proc/%d/task/%d/stat", (int)p->pid, (int)host);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        tidmap_forget(&p->tids, tid);   /* that thread exited: its id may be reused */
    return fd;
}

int py_proc_thread_stat(struct py_proc *p, pid_t tid, struct proc_tstat *out)
{
    size_t i;
    if (p->pid <= 0)
        return -1;
    for (i = 0; i < p->n_tstat && p->tstat[i].tid != tid; i++)
        ;
    if (i == p->n_tstat) {
        /* Slots of exited threads are recycled before the table grows. */
        for (i = 0; i < p->n_tstat && p->tstat[i].fd >= 0; i++)
            ;
        if (i == p->n_tstat) {
            if (p->n_tstat == p->cap_tstat) {
                size_t cap = p->cap_tstat ? p->cap_tstat * 2 : 16;
                struct py_tstat_fd *t = realloc(p->tstat, cap * sizeof *t);
                if (!t)
                    return proc_thread_stat(p->pid, tidmap_host(&p->tids, tid), out);
                p->tstat = t;
                p->cap_tstat = cap;
            }
            p->n_tstat++;
        }
        p->tstat[i].tid = tid;
        p->tstat[i].fd = tstat_open(p, tid);
    }
    if (p->tstat[i].fd < 0 || proc_thread_stat_fd(p->tstat[i].fd, out) != 0) {
        /* The thread exited (its stat file is gone): free the slot. */
        if (p->tstat[i].fd >= 0)
            close(p->tstat[i].fd);
        p->tstat[i].fd = -1;
        p->tstat[i].tid = 0;
        return -1;
    }
    return 0;
}

/* Offsets of the kernel tid inside struct pthread to try first: glibc x86_64 (2.26+). */
static const int32_t known_tid_offsets[] = {0x2d0};

static bool tid_in(pid_t tid, const pid_t *tids, int n)
{
    for (int i = 0; i < n; i++)
        if (tids[i] == tid)
            return tid > 0;
    return false;
}

/*
 * pthread_t is the address of the thread's struct pthread, which holds its kernel tid. The offset
 * is a libc detail: try glibc's, else find the one offset where the word equals a live tid of the
 * target. Only used before 3.11, whose thread states lack native_thread_id.
 */
int64_t py_proc_tid_of(struct py_proc *p, uint64_t thread_id)
{
    pid_t tids[PY_MAX_TID_PROBE];
    int32_t v = 0;
    if (!thread_id || p->pthread_tid_offset == -2)
        return -1;
    if (p->pthread_tid_offset >= 0) {
        if (mem_read(p->mem, thread_id + (uint64_t)p->pthread_tid_offset, &v, 4) == 0 && v > 0)
            return v;
        return -1;
    }
    int nt = proc_threads(p->pid, tids, PY_MAX_TID_PROBE);
    if (nt <= 0)
        return -1;
    /* struct pthread holds the tid the target's own pid namespace gave the thread. */
    for (int i = 0; i < nt; i++)
        tids[i] = tidmap_ns(&p->tids, tids[i]);
    for (size_t i = 0; i < sizeof known_tid_offsets / sizeof *known_tid_offsets; i++) {
        if (mem_read(p->mem, thread_id + (uint64_t)known_tid_offsets[i], &v, 4) == 0 &&
            tid_in(v, tids, nt)) {
            p->pthread_tid_offset = known_tid_offsets[i];
            return v;
        }
    }
    int32_t block[512];
    if (mem_read(p->mem, thread_id, block, sizeof block) != 0) {
        p->pthread_tid_offset = -2;
        return -1;
    }
    for (int i = 0; i < 512; i++) {
        if (tid_in(block[i], tids, nt)) {
            p->pthread_tid_offset = i * 4;
            return block[i];
        }
    }
    p->pthread_tid_offset = -2;
    return -1;
}
