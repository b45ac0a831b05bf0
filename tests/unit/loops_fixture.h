/*
 * loops_fixture.h — the reader of tests/unit/fixtures/loops/, shared by test_loops.c and
 * test_loops_hostile.c. scripts/gen_loop_fixtures.py writes them under every supported CPython: raw
 * bytecode (co_code, and from 3.11 the live quickened co_code_adaptive, from 3.12 also instrumented
 * by sys.monitoring) with the backward edges dis and the exception tables give, and may-go-back
 * answers found by a breadth-first search. Test code; every helper is static inline.
 */
#ifndef PT_TESTS_LOOPS_FIXTURE_H
#define PT_TESTS_LOOPS_FIXTURE_H

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "readers/loops.h"
#include "fixture_text.h"

#ifndef PT_SOURCE_ROOT
#error "build with -DPT_SOURCE_ROOT=\"<repo root>\" so that fixtures can be found"
#endif

#define FIXTURE_DIR PT_SOURCE_ROOT "/tests/unit/fixtures/loops/"
#define EDGES_CAP 4096

struct fx_probe {
    uint32_t from, to;
    bool back;
};

struct fx_code {
    char name[128];
    char form[16];            /* plain, adaptive, monitored, lines */
    uint8_t *code;            /* exactly len bytes, so ASan sees any overread */
    size_t len;
    bool hidden;              /* expect LOOPS_EHIDDEN */
    struct loop_jump *edges;
    size_t nedges;
    uint32_t *calls;
    size_t ncalls;
    struct fx_probe *probes;
    size_t nprobes;
};

struct fx_file {
    int major, minor;
    struct fx_code *codes;
    size_t n;
};

/* Reads the rest of a line as unsigned numbers ("-" is none); returns a malloc'd array. */
static inline uint32_t *fx_numbers(char **cursor, size_t *n)
{
    size_t cap = 64;
    uint32_t *v = malloc(cap * sizeof *v);
    assert_non_null(v);
    *n = 0;
    char *tok;
    while ((tok = fx_token(cursor)) != NULL) {
        if (strcmp(tok, "-") == 0)
            continue;
        if (*n == cap) {
            cap *= 2;
            v = realloc(v, cap * sizeof *v);
            assert_non_null(v);
        }
        v[(*n)++] = (uint32_t)strtoul(tok, NULL, 10);
    }
    return v;
}

static inline void fx_add_line(struct fx_code *cur, const char *tag, char **cursor)
{
    size_t k;
    uint32_t *v = fx_numbers(cursor, &k);
    if (strcmp(tag, "edges") == 0) {
        assert_int_equal(k % 2, 0);
        cur->nedges = k / 2;
        cur->edges = calloc(k / 2 + 1, sizeof *cur->edges);
        assert_non_null(cur->edges);
        for (size_t i = 0; i < k / 2; i++) {
            cur->edges[i].src = v[2 * i];
            cur->edges[i].target = v[2 * i + 1];
        }
        free(v);
    } else if (strcmp(tag, "calls") == 0) {
        cur->calls = v;
        cur->ncalls = k;
    } else {
        assert_int_equal(k % 3, 0);
        cur->nprobes = k / 3;
        cur->probes = calloc(k / 3 + 1, sizeof *cur->probes);
        assert_non_null(cur->probes);
        for (size_t i = 0; i < k / 3; i++)
            cur->probes[i] = (struct fx_probe){v[3 * i], v[3 * i + 1], v[3 * i + 2] != 0};
        free(v);
    }
}

static inline bool fx_load_path(const char *path, struct fx_file *fx)
{
    FILE *fh = fopen(path, "r");
    if (!fh)
        return false;
    size_t cap = 0;
    struct fx_code *cur = NULL;
    char *line = NULL, *cursor;
    size_t linecap = 0;
    memset(fx, 0, sizeof *fx);
    while (getline(&line, &linecap, fh) > 0) {
        char *tag = strtok_r(line, " \t\n", &cursor);
        if (!tag || tag[0] == '#')
            continue;
        if (strcmp(tag, "version") == 0) {
            fx->major = atoi(fx_token(&cursor));
            fx->minor = atoi(fx_token(&cursor));
        } else if (strcmp(tag, "code") == 0) {
            if (fx->n == cap) {
                cap = cap ? 2 * cap : 64;
                fx->codes = realloc(fx->codes, cap * sizeof *fx->codes);
                assert_non_null(fx->codes);
            }
            cur = &fx->codes[fx->n++];
            memset(cur, 0, sizeof *cur);
            snprintf(cur->name, sizeof cur->name, "%s", fx_token(&cursor));
            snprintf(cur->form, sizeof cur->form, "%s", fx_token(&cursor));
            cur->code = fx_unhex(fx_token(&cursor), &cur->len);
        } else if (strcmp(tag, "expect") == 0) {
            assert_non_null(cur);
            cur->hidden = strcmp(fx_token(&cursor), "hidden") == 0;
        } else {
            assert_non_null(cur);
            fx_add_line(cur, tag, &cursor);
        }
    }
    free(line);
    fclose(fh);
    return true;
}

static inline void fx_load(const char *file, struct fx_file *fx)
{
    char path[1024];
    snprintf(path, sizeof path, "%s%s", FIXTURE_DIR, file);
    if (!fx_load_path(path, fx))
        fail_msg("missing fixture %s (run scripts/gen_loop_fixtures.py)", path);
    assert_true(fx->n > 0);
}

static inline void fx_free(struct fx_file *fx)
{
    for (size_t i = 0; i < fx->n; i++) {
        free(fx->codes[i].code);
        free(fx->codes[i].edges);
        free(fx->codes[i].calls);
        free(fx->codes[i].probes);
    }
    free(fx->codes);
}

static inline const struct fx_code *fx_find(const struct fx_file *fx, const char *name,
                                            const char *form)
{
    for (size_t i = 0; i < fx->n; i++)
        if (strcmp(fx->codes[i].name, name) == 0 && strcmp(fx->codes[i].form, form) == 0)
            return &fx->codes[i];
    return NULL;
}

static inline const struct py_opcodes *ops_of(const struct fx_file *fx)
{
    const struct py_opcodes *ops = opcodes_for_version(fx->major, fx->minor);
    assert_non_null(ops);
    return ops;
}

static const char *const ALL_FIXTURES[] = {
    "py2.7.txt", "py3.6.txt", "py3.7.txt", "py3.8.txt", "py3.9.txt",
    "py3.10.txt", "py3.11.txt", "py3.12.txt", "py3.13.txt",
};
#define NFIXTURES (sizeof ALL_FIXTURES / sizeof ALL_FIXTURES[0])

#endif
