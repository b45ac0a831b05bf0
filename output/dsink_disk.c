/*
 * dsink_disk.c — keeping the daemon's trace directory under --max-disk: list the .pytrace files
 * in it and in its date folders, and delete the oldest finished ones first (see dsink.h).
 */
#include "output/dsink.h"

#include <dirent.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct dfile {
    char path[PATH_MAX];
    uint64_t bytes;
    struct timespec mtime;
    bool open;
};

struct dlist {
    struct dfile *f;
    size_t n, cap;
};

static bool disk_is_trace(const char *name)
{
    size_t n = strlen(name), e = strlen(".pytrace");
    return n > e && strcmp(name + n - e, ".pytrace") == 0;
}

static void disk_add(struct dlist *l, const char *path, const struct stat *st)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 64;
        struct dfile *f = realloc(l->f, cap * sizeof *f);
        if (!f)
            return;
        l->f = f;
        l->cap = cap;
    }
    struct dfile *f = &l->f[l->n++];
    snprintf(f->path, sizeof f->path, "%s", path);
    f->bytes = (uint64_t)st->st_size;
    f->mtime = st->st_mtim;
    f->open = false;
}

/* Trace files in dir; depth 1 descends into (date) folders once. */
static void disk_list(struct dlist *l, const char *dir, int depth)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        char path[PATH_MAX];
        if (snprintf(path, sizeof path, "%s/%s", dir, e->d_name) >= (int)sizeof path)
            continue;
        struct stat st;
        if (lstat(path, &st) != 0)
            continue;
        if (S_ISDIR(st.st_mode) && depth > 0)
            disk_list(l, path, depth - 1);
        else if (S_ISREG(st.st_mode) && disk_is_trace(e->d_name))
            disk_add(l, path, &st);
    }
    closedir(d);
}

static int disk_older(const void *pa, const void *pb)
{
    const struct dfile *a = pa, *b = pb;
    if (a->mtime.tv_sec != b->mtime.tv_sec)
        return a->mtime.tv_sec < b->mtime.tv_sec ? -1 : 1;
    if (a->mtime.tv_nsec != b->mtime.tv_nsec)
        return a->mtime.tv_nsec < b->mtime.tv_nsec ? -1 : 1;
    return strcmp(a->path, b->path);
}

/* Removes the file's folder when it is a now-empty date folder below dir. */
static void disk_prune_folder(const char *dir, const char *path)
{
    char folder[PATH_MAX];
    snprintf(folder, sizeof folder, "%s", path);
    char *slash = strrchr(folder, '/');
    if (!slash)
        return;
    *slash = '\0';
    if (strcmp(folder, dir) != 0)
        rmdir(folder);   /* fails, harmlessly, unless empty */
}

uint64_t dsink_enforce_disk(const char *dir, uint64_t max_bytes, const char *const *open,
                            size_t n_open, uint64_t *deleted,
                            void (*on_delete)(void *ctx, const char *path), void *ctx)
{
    struct dlist l = {0};
    disk_list(&l, dir, 1);
    uint64_t total = 0;
    for (size_t i = 0; i < l.n; i++) {
        total += l.f[i].bytes;
        for (size_t k = 0; k < n_open; k++)
            if (strcmp(l.f[i].path, open[k]) == 0)
                l.f[i].open = true;
    }
    if (max_bytes && total > max_bytes) {
        qsort(l.f, l.n, sizeof *l.f, disk_older);
        for (size_t i = 0; i < l.n && total > max_bytes; i++) {
            if (l.f[i].open || unlink(l.f[i].path) != 0)
                continue;
            total -= l.f[i].bytes;
            if (deleted)
                (*deleted)++;
            if (on_delete)
                on_delete(ctx, l.f[i].path);
            disk_prune_folder(dir, l.f[i].path);
        }
    }
    free(l.f);
    return total;
}
