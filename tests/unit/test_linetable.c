/*
 * test_linetable.c — readers/linetable.c against the interpreters' own answers and against
 * hostile tables.
 *
 * Fixtures in tests/unit/fixtures/linetables/ come from scripts/gen_linetable_fixtures.py run under
 * every supported CPython: raw tables plus PyCode_Addr2Line at every byte offset. The hand-made
 * cases pin the corners real compilers rarely emit (truncation, bad headers, overflow, tiny caps).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "readers/linetable.h"
#include "fixture_text.h"

#ifndef PT_SOURCE_ROOT
#error "build with -DPT_SOURCE_ROOT=\"<repo root>\" so that fixtures can be found"
#endif

#define FIXTURE_DIR PT_SOURCE_ROOT "/tests/unit/fixtures/linetables/"
#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* ---- fixture reading ------------------------------------------------------------------------ */

struct fx_code {
    char name[256];
    int firstlineno;
    uint32_t codelen;
    uint8_t *tab;
    size_t tablen;
    int32_t *want;          /* expected line at every byte offset [0, codelen) */
};

/* Expands "runs <start> <line> ..." into one expected line per byte. */
static void fx_expand_runs(struct fx_code *c, char **cursor)
{
    c->want = malloc(sizeof(int32_t) * (c->codelen ? c->codelen : 1));
    assert_non_null(c->want);
    long start = -1, line = 0;
    char *tok;
    while ((tok = fx_token(cursor)) != NULL) {
        long next = strtol(tok, NULL, 10);
        tok = fx_token(cursor);
        assert_non_null(tok);
        for (long off = start; start >= 0 && off < next; off++)
            c->want[off] = (int32_t)line;
        start = next;
        line = strtol(tok, NULL, 10);
    }
    assert_true(start >= 0 || c->codelen == 0);
    for (long off = start; off >= 0 && off < (long)c->codelen; off++)
        c->want[off] = (int32_t)line;
}

/* Reads a whole fixture file; returns the number of code objects, sets *kind. */
static size_t fx_load(const char *file, enum py_linetable_kind *kind, struct fx_code **codes)
{
    char path[1024];
    snprintf(path, sizeof path, "%s%s", FIXTURE_DIR, file);
    FILE *fh = fopen(path, "r");
    if (!fh)
        fail_msg("missing fixture %s (run scripts/gen_linetable_fixtures.py)", path);

    size_t n = 0, cap = 0;
    struct fx_code *cur = NULL;
    char *line = NULL, *cursor;
    size_t linecap = 0;
    *codes = NULL;
    *kind = 0;
    while (getline(&line, &linecap, fh) > 0) {
        char *tag = strtok_r(line, " \t\n", &cursor);
        if (!tag || tag[0] == '#')
            continue;
        if (strcmp(tag, "kind") == 0) {
            *kind = (enum py_linetable_kind)atoi(fx_token(&cursor));
        } else if (strcmp(tag, "code") == 0) {
            if (n == cap) {
                cap = cap ? 2 * cap : 32;
                *codes = realloc(*codes, cap * sizeof **codes);
                assert_non_null(*codes);
            }
            cur = &(*codes)[n++];
            memset(cur, 0, sizeof *cur);
            snprintf(cur->name, sizeof cur->name, "%s", fx_token(&cursor));
            cur->firstlineno = atoi(fx_token(&cursor));
            cur->codelen = (uint32_t)strtoul(fx_token(&cursor), NULL, 10);
        } else if (strcmp(tag, "table") == 0) {
            assert_non_null(cur);
            cur->tab = fx_unhex(fx_token(&cursor), &cur->tablen);
        } else if (strcmp(tag, "runs") == 0) {
            assert_non_null(cur);
            fx_expand_runs(cur, &cursor);
        }
    }
    free(line);
    fclose(fh);
    assert_true(*kind >= PY_LT_LNOTAB27 && *kind <= PY_LT_LOCATIONS);
    assert_true(n > 0);
    return n;
}

static void fx_free(struct fx_code *codes, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(codes[i].tab);
        free(codes[i].want);
    }
    free(codes);
}

/* ---- checks on real tables ------------------------------------------------------------------ */

/* Every format yields at most one range per two table bytes, plus lnotab's open-ended tail. */
static size_t max_ranges(size_t tablen)
{
    return tablen / 2 + 2;
}

static void check_well_formed(const struct lt_range *r, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        assert_true(r[i].start < r[i].end);
        if (i > 0) {
            assert_true(r[i - 1].end <= r[i].start);
            /* merged: no two touching neighbours share a line */
            assert_false(r[i - 1].end == r[i].start && r[i - 1].line == r[i].line);
        }
    }
}

/* Decoding a real table reproduces CPython's line at every byte, through both entry points. */
static size_t check_code_against_cpython(enum py_linetable_kind kind, const struct fx_code *c)
{
    size_t cap = max_ranges(c->tablen), n = 99;
    struct lt_range *r = malloc(cap * sizeof *r);
    assert_non_null(r);
    int rc = lt_decode(kind, c->tab, c->tablen, c->firstlineno, r, cap, &n);
    if (rc != 0)
        fail_msg("%s: lt_decode failed after %zu ranges", c->name, n);
    check_well_formed(r, n);

    for (uint32_t off = 0; off < c->codelen; off++) {
        int32_t got = lt_line_at(r, n, off);
        if (got != c->want[off])
            fail_msg("%s: offset %u: line %d, CPython says %d", c->name, off, got, c->want[off]);
        int32_t one_shot = lt_addr2line(kind, c->tab, c->tablen, c->firstlineno, off);
        if (one_shot != c->want[off])
            fail_msg("%s: offset %u: lt_addr2line %d, CPython says %d", c->name, off, one_shot,
                     c->want[off]);
    }
    /* 3.10+ tables describe exactly the code they belong to; lnotab's last line runs on. */
    if (n > 0 && c->codelen > 0) {
        if (kind == PY_LT_LNOTAB27 || kind == PY_LT_LNOTAB)
            assert_int_equal(r[n - 1].end, UINT32_MAX);
        else
            assert_int_equal(r[n - 1].end, c->codelen);
    }
    free(r);
    return c->codelen;
}

/* A cap one short of what the table needs fails, but keeps exactly the ranges that fit. */
static void check_small_cap(enum py_linetable_kind kind, const struct fx_code *c)
{
    size_t cap = max_ranges(c->tablen), n, m;
    struct lt_range *full = malloc(cap * sizeof *full), *part = malloc(cap * sizeof *part);
    assert_true(full && part);
    assert_int_equal(lt_decode(kind, c->tab, c->tablen, c->firstlineno, full, cap, &n), 0);
    if (n > 0) {
        assert_int_equal(lt_decode(kind, c->tab, c->tablen, c->firstlineno, part, n - 1, &m), -1);
        assert_int_equal(m, n - 1);
        assert_memory_equal(part, full, m * sizeof *part);
    }
    free(full);
    free(part);
}

/*
 * Every prefix of a real table (a read torn by the target freeing or rewriting it) decodes without
 * reading past its end, and whatever it yields agrees with the full table. lnotab's last range is
 * excluded: its line is only known once the rest of the table is.
 */
static void check_prefixes(enum py_linetable_kind kind, const struct fx_code *c)
{
    size_t cap = max_ranges(c->tablen), n;
    struct lt_range *r = malloc(cap * sizeof *r);
    assert_non_null(r);
    bool open_tail = kind == PY_LT_LNOTAB27 || kind == PY_LT_LNOTAB;
    for (size_t len = 0; len < c->tablen; len++) {
        /* Copy so that ASan sees exactly `len` readable bytes. */
        uint8_t *cut = malloc(len ? len : 1);
        assert_non_null(cut);
        memcpy(cut, c->tab, len);
        int rc = lt_decode(kind, cut, len, c->firstlineno, r, cap, &n);
        assert_true(rc == 0 || rc == -1);
        check_well_formed(r, n);
        size_t checked = open_tail && rc == 0 && n > 0 ? n - 1 : n;
        for (size_t i = 0; i < checked; i++)
            for (uint32_t off = r[i].start; off < r[i].end && off < c->codelen; off++)
                if (r[i].line != c->want[off])
                    fail_msg("%s: prefix %zu: offset %u line %d, want %d", c->name, len, off,
                             r[i].line, c->want[off]);
        free(cut);
    }
    free(r);
}

static void check_version(const char *file)
{
    enum py_linetable_kind kind;
    struct fx_code *codes;
    size_t n = fx_load(file, &kind, &codes), offsets = 0;
    for (size_t i = 0; i < n; i++) {
        offsets += check_code_against_cpython(kind, &codes[i]);
        check_small_cap(kind, &codes[i]);
        check_prefixes(kind, &codes[i]);
    }
    print_message("%s: %zu code objects, %zu byte offsets match CPython\n", file, n, offsets);
    fx_free(codes, n);
}

static void test_py27_lnotab_matches_cpython(void **state) { (void)state; check_version("py2.7.txt"); }
static void test_py36_lnotab_matches_cpython(void **state) { (void)state; check_version("py3.6.txt"); }
static void test_py37_lnotab_matches_cpython(void **state) { (void)state; check_version("py3.7.txt"); }
static void test_py38_lnotab_matches_cpython(void **state) { (void)state; check_version("py3.8.txt"); }
static void test_py39_lnotab_matches_cpython(void **state) { (void)state; check_version("py3.9.txt"); }
static void test_py310_linetable_matches_cpython(void **state) { (void)state; check_version("py3.10.txt"); }
static void test_py311_locations_match_cpython(void **state) { (void)state; check_version("py3.11.txt"); }
static void test_py312_locations_match_cpython(void **state) { (void)state; check_version("py3.12.txt"); }
static void test_py313_locations_match_cpython(void **state) { (void)state; check_version("py3.13.txt"); }

/* ---- hand-made tables ----------------------------------------------------------------------- */

#define DECODE(kind, bytes, first, out, n) \
    lt_decode((kind), (bytes), sizeof(bytes), (first), (out), ARRAY_LEN(out), (n))

static void assert_range(const struct lt_range *r, uint32_t start, uint32_t end, int32_t line)
{
    assert_int_equal(r->start, start);
    assert_int_equal(r->end, end);
    assert_int_equal(r->line, line);
}

static void test_empty_tables(void **state)
{
    (void)state;
    struct lt_range r[4];
    size_t n = 99;

    /* lnotab: no pairs means every offset is on the first line. */
    assert_int_equal(lt_decode(PY_LT_LNOTAB, NULL, 0, 7, r, 4, &n), 0);
    assert_int_equal(n, 1);
    assert_range(&r[0], 0, UINT32_MAX, 7);
    /* 3.10+: no entries means no ranges at all. */
    assert_int_equal(lt_decode(PY_LT_LINETABLE310, (const uint8_t *)"", 0, 7, r, 4, &n), 0);
    assert_int_equal(n, 0);
    assert_int_equal(lt_decode(PY_LT_LOCATIONS, NULL, 0, 7, r, 4, &n), 0);
    assert_int_equal(n, 0);
    assert_int_equal(lt_line_at(r, 0, 0), -1);
    assert_int_equal(lt_addr2line(PY_LT_LOCATIONS, NULL, 0, 7, 10), 7);
    assert_int_equal(lt_addr2line(PY_LT_LNOTAB27, NULL, 0, 7, 10), 7);
}

static void test_lnotab27_line_increment_is_unsigned(void **state)
{
    (void)state;
    static const uint8_t tab[] = { 6, 200, 4, 1 };
    struct lt_range r[4];
    size_t n;
    assert_int_equal(DECODE(PY_LT_LNOTAB27, tab, 10, r, &n), 0);
    assert_int_equal(n, 3);
    assert_range(&r[0], 0, 6, 10);
    assert_range(&r[1], 6, 10, 210);
    assert_range(&r[2], 10, UINT32_MAX, 211);
}

static void test_lnotab3_line_increment_is_signed(void **state)
{
    (void)state;
    static const uint8_t tab[] = { 6, 200, 4, 0x7f };   /* 200 as int8 is -56 */
    struct lt_range r[4];
    size_t n;
    assert_int_equal(DECODE(PY_LT_LNOTAB, tab, 100, r, &n), 0);
    assert_int_equal(n, 3);
    assert_range(&r[1], 6, 10, 44);
    assert_range(&r[2], 10, UINT32_MAX, 171);
}

static void test_lnotab_split_deltas(void **state)
{
    (void)state;
    /* 300 bytes then +300 lines, spelled the way compilers split them: (255,0) (45,127) (0,127)
     * (0,46) — the zero-address pairs only move the line. */
    static const uint8_t tab[] = { 255, 0, 45, 127, 0, 127, 0, 46, 2, 1 };
    struct lt_range r[8];
    size_t n;
    assert_int_equal(DECODE(PY_LT_LNOTAB, tab, 1, r, &n), 0);
    assert_int_equal(n, 3);
    assert_range(&r[0], 0, 300, 1);      /* the two address pairs merge */
    assert_range(&r[1], 300, 302, 301);
    assert_range(&r[2], 302, UINT32_MAX, 302);
    assert_int_equal(lt_line_at(r, n, 299), 1);
    assert_int_equal(lt_line_at(r, n, 300), 301);
    assert_int_equal(lt_line_at(r, n, 1u << 30), 302);
    assert_int_equal(lt_addr2line(PY_LT_LNOTAB, tab, sizeof tab, 1, 301), 301);
}

static void test_lnotab_odd_length_is_truncated(void **state)
{
    (void)state;
    static const uint8_t tab[] = { 4, 1, 4 };
    struct lt_range r[4];
    size_t n;
    assert_int_equal(DECODE(PY_LT_LNOTAB, tab, 1, r, &n), -1);
    assert_int_equal(n, 1);
    assert_range(&r[0], 0, 4, 1);
    /* The one-shot lookup still answers from what was readable, and falls back past it. */
    assert_int_equal(lt_addr2line(PY_LT_LNOTAB, tab, sizeof tab, 1, 2), 1);
    assert_int_equal(lt_addr2line(PY_LT_LNOTAB, tab, sizeof tab, 1, 5), 1);
}

static void test_310_no_line_keeps_running_line(void **state)
{
    (void)state;
    /* +0 for 4 bytes, no line for 2 bytes, then +1 — relative to the line before the gap. */
    static const uint8_t tab[] = { 4, 0, 2, 0x80, 6, 1 };
    struct lt_range r[4];
    size_t n;
    assert_int_equal(DECODE(PY_LT_LINETABLE310, tab, 20, r, &n), 0);
    assert_int_equal(n, 3);
    assert_range(&r[0], 0, 4, 20);
    assert_range(&r[1], 4, 6, -1);
    assert_range(&r[2], 6, 12, 21);
    assert_int_equal(lt_line_at(r, n, 5), -1);
    assert_int_equal(lt_line_at(r, n, 12), -1);
    assert_int_equal(lt_addr2line(PY_LT_LINETABLE310, tab, sizeof tab, 20, 5), -1);
    assert_int_equal(lt_addr2line(PY_LT_LINETABLE310, tab, sizeof tab, 20, 12), 20);
}

static void test_310_zero_width_pairs_only_move_the_line(void **state)
{
    (void)state;
    /* A -300 jump in the 3.10 spelling: (0,-128) cannot carry -128, so -127 -127 -46. */
    static const uint8_t tab[] = { 2, 0, 0, 0x81, 0, 0x81, 8, (uint8_t)-46 };
    struct lt_range r[4];
    size_t n;
    assert_int_equal(DECODE(PY_LT_LINETABLE310, tab, 400, r, &n), 0);
    assert_int_equal(n, 2);
    assert_range(&r[0], 0, 2, 400);
    assert_range(&r[1], 2, 10, 100);
}

static void test_locations_every_form(void **state)
{
    (void)state;
    static const uint8_t tab[] = {
        0x80 | 14 << 3 | 0, 0x03, 0, 1, 1,  /* long form, 1 unit, line -1 */
        0x80 | 13 << 3 | 1, 0x04,           /* no columns, 2 units, line +2 */
        0x80 | 12 << 3 | 2, 5, 9,           /* one-line form, 3 units, line +2 */
        0x80 | 3 << 3 | 0, 0x12,            /* short form, 1 unit, same line */
        0x80 | 15 << 3 | 7,                 /* no location, 8 units */
        0x80 | 10 << 3 | 0, 1, 2,           /* one-line +0: still relative to the line before 15 */
        0x80 | 11 << 3 | 0, 1, 2,           /* one-line +1 */
    };
    struct lt_range r[8];
    size_t n;
    assert_int_equal(DECODE(PY_LT_LOCATIONS, tab, 10, r, &n), 0);
    assert_int_equal(n, 6);
    assert_range(&r[0], 0, 2, 9);
    assert_range(&r[1], 2, 6, 11);
    assert_range(&r[2], 6, 14, 13);         /* one-line and short form merged */
    assert_range(&r[3], 14, 30, -1);
    assert_range(&r[4], 30, 32, 13);
    assert_range(&r[5], 32, 34, 14);
    assert_int_equal(lt_line_at(r, n, 33), 14);
    assert_int_equal(lt_line_at(r, n, 34), -1);
}

static void test_locations_multi_chunk_varints(void **state)
{
    (void)state;
    /* svarint 2*1000 = 2000 = 0b11111_010000: chunks 0x10|0x40, 0x1f. */
    static const uint8_t tab[] = { 0x80 | 13 << 3 | 0, 0x50, 0x1f,
                                   0x80 | 14 << 3 | 0, 0x41, 0x3f, 0x40, 0x01, 0x7f, 0x01, 0 };
    struct lt_range r[4];
    size_t n;
    assert_int_equal(DECODE(PY_LT_LOCATIONS, tab, 1, r, &n), 0);
    assert_int_equal(n, 2);
    assert_range(&r[0], 0, 2, 1001);
    /* 0x41,0x3f = 1 | 63<<6 = 4033: odd, so -(4033>>1) = -2016 */
    assert_range(&r[1], 2, 4, 1001 - 2016);
}

static void test_locations_truncated_varint(void **state)
{
    (void)state;
    static const uint8_t tab[] = { 0x80 | 13 << 3 | 0, 0x02, 0x80 | 13 << 3 | 0, 0x42 };
    struct lt_range r[4];
    size_t n;
    assert_int_equal(DECODE(PY_LT_LOCATIONS, tab, 5, r, &n), -1);
    assert_int_equal(n, 1);
    assert_range(&r[0], 0, 2, 6);
    assert_int_equal(lt_addr2line(PY_LT_LOCATIONS, tab, sizeof tab, 5, 1), 6);
    assert_int_equal(lt_addr2line(PY_LT_LOCATIONS, tab, sizeof tab, 5, 2), 5);
}

static void test_locations_entry_without_high_bit(void **state)
{
    (void)state;
    static const uint8_t tab[] = { 0x80 | 0 << 3 | 0, 0x01, 0x70 | 0, 0x01 };
    struct lt_range r[4];
    size_t n;
    assert_int_equal(DECODE(PY_LT_LOCATIONS, tab, 5, r, &n), -1);
    assert_int_equal(n, 1);
    assert_range(&r[0], 0, 2, 5);
}

static void test_locations_payload_with_high_bit_is_a_cut_entry(void **state)
{
    (void)state;
    /* A one-line entry whose column bytes are missing: the next byte is an entry head. */
    static const uint8_t tab[] = { 0x80 | 11 << 3 | 0, 3, 0x80 | 0 << 3 | 0, 0x01 };
    struct lt_range r[4];
    size_t n;
    assert_int_equal(DECODE(PY_LT_LOCATIONS, tab, 5, r, &n), -1);
    assert_int_equal(n, 0);
}

static void test_locations_truncated_forms(void **state)
{
    (void)state;
    static const uint8_t long_form[] = { 0x80 | 14 << 3, 0x02, 0x00, 0x01 };  /* no end column */
    static const uint8_t one_line[] = { 0x80 | 10 << 3, 0x01 };
    static const uint8_t short_form[] = { 0x80 | 2 << 3 };
    struct lt_range r[4];
    size_t n;
    assert_int_equal(DECODE(PY_LT_LOCATIONS, long_form, 1, r, &n), -1);
    assert_int_equal(n, 0);
    assert_int_equal(DECODE(PY_LT_LOCATIONS, one_line, 1, r, &n), -1);
    assert_int_equal(DECODE(PY_LT_LOCATIONS, short_form, 1, r, &n), -1);
    assert_int_equal(n, 0);
}

static void test_locations_huge_deltas_are_malformed(void **state)
{
    (void)state;
    /* A varint of 7 chunks (more than 32 bits) and a line pushed past INT32_MAX. */
    static const uint8_t endless[] = { 0x80 | 13 << 3, 0x7f, 0x7f, 0x7f, 0x7f, 0x7f, 0x7f, 0x01 };
    static const uint8_t too_far[] = { 0x80 | 13 << 3, 0x7e, 0x7f, 0x7f, 0x7f, 0x7f, 0x03,
                                       0x80 | 13 << 3, 0x7e, 0x7f, 0x7f, 0x7f, 0x7f, 0x03 };
    struct lt_range r[4];
    size_t n;
    assert_int_equal(DECODE(PY_LT_LOCATIONS, endless, 1, r, &n), -1);
    assert_int_equal(n, 0);
    /* 0xFFFFFFFE >> 1 = 2^31 - 1: first entry lands on INT32_MAX exactly, the second overflows. */
    assert_int_equal(DECODE(PY_LT_LOCATIONS, too_far, 0, r, &n), -1);
    assert_int_equal(n, 1);
    assert_range(&r[0], 0, 2, INT32_MAX);
}

static void test_lnotab_huge_lines_are_malformed(void **state)
{
    (void)state;
    static const uint8_t tab[] = { 2, 127, 2, 127 };
    struct lt_range r[4];
    size_t n;
    assert_int_equal(DECODE(PY_LT_LNOTAB, tab, INT32_MAX - 200, r, &n), -1);
    assert_int_equal(n, 2);
    assert_range(&r[1], 2, 4, INT32_MAX - 73);
}

static void test_cap_too_small(void **state)
{
    (void)state;
    static const uint8_t tab[] = { 2, 1, 2, 1, 2, 1 };
    struct lt_range r[4];
    size_t n = 99;
    assert_int_equal(lt_decode(PY_LT_LINETABLE310, tab, sizeof tab, 1, r, 2, &n), -1);
    assert_int_equal(n, 2);
    assert_range(&r[1], 2, 4, 3);
    assert_int_equal(lt_decode(PY_LT_LINETABLE310, tab, sizeof tab, 1, NULL, 0, &n), -1);
    assert_int_equal(n, 0);
    assert_int_equal(lt_decode(PY_LT_LINETABLE310, tab, sizeof tab, 1, r, 3, &n), 0);
    assert_int_equal(n, 3);
}

static void test_unknown_kind_and_null_table(void **state)
{
    (void)state;
    static const uint8_t tab[] = { 2, 1 };
    struct lt_range r[4];
    size_t n = 99;
    assert_int_equal(DECODE((enum py_linetable_kind)9, tab, 1, r, &n), -1);
    assert_int_equal(n, 0);
    assert_int_equal(lt_decode(PY_LT_LNOTAB, NULL, 4, 1, r, 4, &n), -1);
    assert_int_equal(lt_addr2line((enum py_linetable_kind)0, tab, sizeof tab, 42, 0), 42);
}

static void test_line_at_edges(void **state)
{
    (void)state;
    /* Gaps never come out of lt_decode, but lt_line_at must not assume contiguity. */
    static const struct lt_range r[] = { { 0, 4, 1 }, { 4, 8, 2 }, { 10, 12, 3 }, { 12, 20, 4 } };
    static const struct { uint32_t off; int32_t line; } want[] = {
        { 0, 1 }, { 3, 1 }, { 4, 2 }, { 7, 2 }, { 8, -1 }, { 9, -1 }, { 10, 3 }, { 12, 4 },
        { 19, 4 }, { 20, -1 }, { UINT32_MAX, -1 },
    };
    for (size_t i = 0; i < ARRAY_LEN(want); i++)
        assert_int_equal(lt_line_at(r, ARRAY_LEN(r), want[i].off), want[i].line);
    static const struct lt_range late[] = { { 6, 8, 5 } };
    assert_int_equal(lt_line_at(late, 1, 0), -1);
    assert_int_equal(lt_line_at(late, 1, 6), 5);
    assert_int_equal(lt_line_at(NULL, 0, 6), -1);
}

/* Random bytes of every kind: no crash, no read past len (ASan), well-formed output. */
static void test_random_garbage(void **state)
{
    (void)state;
    uint32_t seed = 12345;
    struct lt_range r[64];
    for (int iter = 0; iter < 20000; iter++) {
        size_t len = (size_t)(iter % 90);
        uint8_t *tab = malloc(len ? len : 1);
        assert_non_null(tab);
        for (size_t i = 0; i < len; i++) {
            seed = seed * 1103515245u + 12345u;
            tab[i] = (uint8_t)(seed >> 16);
        }
        enum py_linetable_kind kind = (enum py_linetable_kind)(1 + iter % 4);
        size_t n;
        int rc = lt_decode(kind, tab, len, iter, r, ARRAY_LEN(r), &n);
        assert_true(rc == 0 || rc == -1);
        check_well_formed(r, n);
        for (size_t i = 0; i < n; i++)
            assert_int_equal(lt_addr2line(kind, tab, len, iter, r[i].start), r[i].line);
        free(tab);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_py27_lnotab_matches_cpython),
        cmocka_unit_test(test_py36_lnotab_matches_cpython),
        cmocka_unit_test(test_py37_lnotab_matches_cpython),
        cmocka_unit_test(test_py38_lnotab_matches_cpython),
        cmocka_unit_test(test_py39_lnotab_matches_cpython),
        cmocka_unit_test(test_py310_linetable_matches_cpython),
        cmocka_unit_test(test_py311_locations_match_cpython),
        cmocka_unit_test(test_py312_locations_match_cpython),
        cmocka_unit_test(test_py313_locations_match_cpython),
        cmocka_unit_test(test_empty_tables),
        cmocka_unit_test(test_lnotab27_line_increment_is_unsigned),
        cmocka_unit_test(test_lnotab3_line_increment_is_signed),
        cmocka_unit_test(test_lnotab_split_deltas),
        cmocka_unit_test(test_lnotab_odd_length_is_truncated),
        cmocka_unit_test(test_310_no_line_keeps_running_line),
        cmocka_unit_test(test_310_zero_width_pairs_only_move_the_line),
        cmocka_unit_test(test_locations_every_form),
        cmocka_unit_test(test_locations_multi_chunk_varints),
        cmocka_unit_test(test_locations_truncated_varint),
        cmocka_unit_test(test_locations_entry_without_high_bit),
        cmocka_unit_test(test_locations_payload_with_high_bit_is_a_cut_entry),
        cmocka_unit_test(test_locations_truncated_forms),
        cmocka_unit_test(test_locations_huge_deltas_are_malformed),
        cmocka_unit_test(test_lnotab_huge_lines_are_malformed),
        cmocka_unit_test(test_cap_too_small),
        cmocka_unit_test(test_unknown_kind_and_null_table),
        cmocka_unit_test(test_line_at_edges),
        cmocka_unit_test(test_random_garbage),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
