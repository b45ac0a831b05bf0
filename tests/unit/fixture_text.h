/*
 * fixture_text.h — reading the text fixtures under tests/unit/fixtures/ (lines of whitespace-
 * separated tokens, byte strings in hex), shared by test_linetable.c and loops_fixture.h.
 * Test code; static inline.
 */
#ifndef PT_TESTS_FIXTURE_TEXT_H
#define PT_TESTS_FIXTURE_TEXT_H

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* One whitespace-separated token per call, from a line read by getline(). */
static inline char *fx_token(char **cursor)
{
    return strtok_r(NULL, " \t\n", cursor);
}

/* Hex digits to bytes ("-" is none); returns a malloc'd buffer. */
static inline uint8_t *fx_unhex(const char *hex, size_t *len)
{
    if (strcmp(hex, "-") == 0) {
        *len = 0;
        return malloc(1);
    }
    size_t n = strlen(hex) / 2;
    uint8_t *out = malloc(n ? n : 1);
    assert_non_null(out);
    for (size_t i = 0; i < n; i++) {
        unsigned v;
        assert_int_equal(sscanf(hex + 2 * i, "%2x", &v), 1);
        out[i] = (uint8_t)v;
    }
    *len = n;
    return out;
}

#endif
