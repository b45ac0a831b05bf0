/*
 * symcache.c — native address → symbol for one process: executable mappings from /proc/PID/maps,
 * each module opened once (by path and build-id) with its separate debug file when one is
 * installed, lookups through elf_nearest's sorted function table, C++ names demangled once.
 */
#include "symbols/symcache.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "attach/proc.h"
#include "symbols/elf.h"

/* libstdc++'s demangler (cxxabi.h is C++ only): malloc'd result, status 0 on success. */
extern char *__cxa_demangle(const char *mangled, char *buf, size_t *len, int *status);

#define SYM_MAX_MAPS 65536        /* a bound on the target's map count, read from /proc */
#define SYM_DEMANGLED_BUCKETS 1024

struct sym_module {
    char *path;                   /* as the target sees it */
    char build_id[48];
    struct elf_file *ef;          /* NULL when the file could not be opened */
    struct elf_file *debug;       /* separate debug file, NULL if none */
    uint64_t bias;
    struct proc_map map;          /* its first executable mapping, to open and place it */
    bool opened;                  /* opened on the first lookup that lands in it */
};

/* An executable mapping and the module it belongs to. */
struct sym_range {
    uint64_t start, end;
    int module;                   /* index in modules, -1 when not file-backed */
};

struct demangled {
    const char *raw;              /* borrowed from the module's string table */
    char *name;
    struct demangled *next;
};

struct sym_cache {
    pid_t pid;
    struct sym_range *ranges;
    size_t nranges;
    struct sym_module *modules;
    size_t nmodules, cap_modules;
    struct demangled *buckets[SYM_DEMANGLED_BUCKETS];
    bool maps_reread;             /* maps were re-read since the last successful lookup */
};

void symcache_demangle(const char *name, char *out, size_t cap)
{
    if (!cap)
        return;
    int status = -1;
    char *d = name[0] == '_' && name[1] == 'Z' ? __cxa_demangle(name, NULL, NULL, &status) : NULL;
    snprintf(out, cap, "%s", status == 0 && d ? d : name);
    free(d);
}

/* The name to show for a symbol-table name, computed once: C++ names demangled, a symbol
 * version suffix ("clock_nanosleep@GLIBC_2.2.5", from .symtab) dropped; plain names as they are. */
static const char *display_name(struct sym_cache *sc, const char *raw)
{
    const char *at = strchr(raw, '@');
    if ((raw[0] != '_' || raw[1] != 'Z') && !at)
        return raw;
    size_t h = ((uintptr_t)raw >> 3) % SYM_DEMANGLED_BUCKETS;
    for (struct demangled *d = sc->buckets[h]; d; d = d->next)
        if (d->raw == raw)
            return d->name;
    char *base = strndup(raw, at ? (size_t)(at - raw) : strlen(raw));
    int status = -1;
    char *name = base && base[0] == '_' && base[1] == 'Z'
                     ? __cxa_demangle(base, NULL, NULL, &status) : NULL;
    if (name && status == 0) {
        free(base);
    } else {
        free(name);
        name = base;
    }
    struct demangled *d = name ? malloc(sizeof *d) : NULL;
    if (!d) {
        free(name);
        return raw;
    }
    *d = (struct demangled){raw, name, sc->buckets[h]};
    sc->buckets[h] = d;
    return name;
}

/* Opens path as the target sees it: /proc/PID/root/path when that is still the mapped file (same
 * inode), else the mapping's map_files entry (a file replaced or deleted since it was mapped), and
 * the path after all when map_files fails (overlayfs may report another inode in the maps). */
static struct elf_file *open_target_file(pid_t pid, const char *path, const struct proc_map *m)
{
    char full[4200], mapped[96];
    struct elf_file *ef = NULL;
    struct stat st;
    proc_root_path(pid, path, full, sizeof full);
    bool same = !m || (stat(full, &st) == 0 && st.st_ino == m->inode);
    if (same && elf_open(&ef, full, NULL) == PT_OK)
        return ef;
    if (m) {
        snprintf(mapped, sizeof mapped, "/proc/%d/map_files/%llx-%llx", (int)pid,
                 (unsigned long long)m->start, (unsigned long long)m->end);
        if (elf_open(&ef, mapped, NULL) == PT_OK)
            return ef;
    }
    return !same && elf_open(&ef, full, NULL) == PT_OK ? ef : NULL;
}

/* The separate debug file of mod, by build-id and then by .gnu_debuglink. */
static struct elf_file *open_debug_file(pid_t pid, struct sym_module *mod)
{
    char path[4200], link[256], dir[4096];
    if (mod->build_id[0] && strlen(mod->build_id) > 2) {
        snprintf(path, sizeof path, "/usr/lib/debug/.build-id/%.2s/%s.debug", mod->build_id,
                 mod->build_id + 2);
        struct elf_file *ef = open_target_file(pid, path, NULL);
        if (ef)
            return ef;
    }
    if (elf_debuglink(mod->ef, link, sizeof link) != 0 || strchr(link, '/'))
        return NULL;
    snprintf(dir, sizeof dir, "%s", mod->path);
    char *slash = strrchr(dir, '/');
    if (!slash)
        return NULL;
    *slash = '\0';
    static const char *const fmts[] = {"%s/%s", "%s/.debug/%s", "/usr/lib/debug%s/%s"};
    for (size_t i = 0; i < sizeof fmts / sizeof fmts[0]; i++) {
        snprintf(path, sizeof path, fmts[i], dir, link);
        if (strcmp(path, mod->path) == 0)
            continue;
        struct elf_file *ef = open_target_file(pid, path, NULL);
        if (ef)
            return ef;
    }
    return NULL;
}

/* The module of mapping m (opened on first use); -1 when it cannot be recorded. */
static int module_for(struct sym_cache *sc, const struct proc_map *m)
{
    /* Same path and inode: the same file (a library replaced on disk gets a new inode). */
    for (size_t i = 0; i < sc->nmodules; i++)
        if (sc->modules[i].map.inode == m->inode && strcmp(sc->modules[i].path, m->path) == 0)
            return (int)i;
    if (sc->nmodules == sc->cap_modules) {
        size_t cap = sc->cap_modules ? sc->cap_modules * 2 : 16;
        struct sym_module *n = realloc(sc->modules, cap * sizeof *n);
        if (!n)
            return -1;
        sc->modules = n;
        sc->cap_modules = cap;
    }
    struct sym_module *mod = &sc->modules[sc->nmodules];
    memset(mod, 0, sizeof *mod);
    mod->path = strdup(m->path);
    if (!mod->path)
        return -1;
    mod->map = *m;
    return (int)sc->nmodules++;
}

/* Opens a module's file and debug file the first time an address lands in it: most mapped
 * libraries never appear in a stack, and indexing a large symbol table costs milliseconds. */
static void module_open(struct sym_cache *sc, struct sym_module *mod)
{
    if (mod->opened)
        return;
    mod->opened = true;
    mod->ef = open_target_file(sc->pid, mod->path, &mod->map);
    if (!mod->ef)
        return;
    if (elf_build_id(mod->ef, mod->build_id, sizeof mod->build_id) != 0)
        mod->build_id[0] = '\0';
    mod->bias = elf_load_bias(mod->ef, mod->map.start, mod->map.offset);
    mod->debug = open_debug_file(sc->pid, mod);
}

/* (Re-)reads the executable mappings; modules already open are kept (same path). */
static enum pt_status load_maps(struct sym_cache *sc, struct pt_err *err)
{
    struct proc_map *maps = NULL;
    size_t n = 0;
    enum pt_status rc = proc_maps(sc->pid, &maps, &n, err);
    if (rc != PT_OK)
        return rc;
    if (n > SYM_MAX_MAPS)
        n = SYM_MAX_MAPS;
    struct sym_range *r = calloc(n ? n : 1, sizeof *r);
    if (!r) {
        free(maps);
        return pt_fail(err, PT_EFAIL, "out of memory reading the maps of process %d", (int)sc->pid);
    }
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (!maps[i].x)
            continue;
        /* Pseudo-files ([vdso], [vsyscall]) have no ELF file we can open by name. */
        bool file = maps[i].path[0] == '/';
        r[k++] = (struct sym_range){maps[i].start, maps[i].end, file ? module_for(sc, &maps[i]) : -1};
    }
    free(maps);
    free(sc->ranges);
    sc->ranges = r;
    sc->nranges = k;
    return PT_OK;
}

enum pt_status symcache_open(struct sym_cache **out, pid_t pid, struct pt_err *err)
{
    struct sym_cache *sc = calloc(1, sizeof *sc);
    if (!sc)
        return pt_fail(err, PT_EFAIL, "out of memory for the symbol cache");
    sc->pid = pid;
    enum pt_status rc = load_maps(sc, err);
    if (rc != PT_OK) {
        symcache_close(sc);
        return rc;
    }
    *out = sc;
    return PT_OK;
}

void symcache_close(struct sym_cache *sc)
{
    if (!sc)
        return;
    for (size_t i = 0; i < sc->nmodules; i++) {
        free(sc->modules[i].path);
        if (sc->modules[i].ef)
            elf_close(sc->modules[i].ef);
        if (sc->modules[i].debug)
            elf_close(sc->modules[i].debug);
    }
    for (size_t b = 0; b < SYM_DEMANGLED_BUCKETS; b++) {
        for (struct demangled *d = sc->buckets[b], *next; d; d = next) {
            next = d->next;
            free(d->name);
            free(d);
        }
    }
    free(sc->modules);
    free(sc->ranges);
    free(sc);
}

size_t symcache_modules(const struct sym_cache *sc)
{
    return sc->nmodules;
}

static const struct sym_range *find_range(const struct sym_cache *sc, uint64_t addr)
{
    for (size_t i = 0; i < sc->nranges; i++)
        if (addr >= sc->ranges[i].start && addr < sc->ranges[i].end)
            return &sc->ranges[i];
    return NULL;
}

int symcache_lookup(struct sym_cache *sc, uint64_t addr, struct native_sym *out)
{
    *out = (struct native_sym){NULL, NULL, 0, false};
    const struct sym_range *r = find_range(sc, addr);
    if (!r && !sc->maps_reread) {   /* a library loaded since: read the maps once more */
        struct pt_err err;
        sc->maps_reread = true;
        if (load_maps(sc, &err) == PT_OK)
            r = find_range(sc, addr);
    }
    if (!r || r->module < 0)
        return -1;
    sc->maps_reread = false;
    struct sym_module *mod = &sc->modules[r->module];
    module_open(sc, mod);
    out->module = mod->path;
    if (!mod->ef)
        return -1;
    uint64_t link = addr - mod->bias, start = 0;
    const char *name = NULL;
    bool exact = false;
    /* The debug file has the static functions a stripped module lacks; prefer an exact hit. */
    if (mod->debug && elf_nearest(mod->debug, link, &name, &start, &exact) == 0 && exact) {
        /* found */
    } else if (elf_nearest(mod->ef, link, &name, &start, &exact) != 0) {
        out->offset = link;
        return -1;
    }
    out->name = display_name(sc, name);
    out->offset = link - start;
    out->approximate = !exact;
    return 0;
}
