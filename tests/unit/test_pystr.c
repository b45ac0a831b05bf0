/*
 * test_pystr.c — readers/pystr.c: PEP 393 state words (constructed and read from real objects),
 * code points of every width to UTF-8, byte strings made valid, and truncation that never splits a
 * character. Expected replacements follow Python's own bytes.decode("utf-8", "replace").
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "readers/pystr.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define FFFD "\xef\xbf\xbd"

/* ---- an independent UTF-8 checker (arithmetic decoding, not pystr.c's range table) ---------- */

static bool valid_utf8(const char *s, size_t len)
{
    const uint8_t *p = (const uint8_t *)s;
    size_t i = 0;
    while (i < len) {
        uint32_t cp;
        size_t need;
        if (p[i] < 0x80) { cp = p[i]; need = 0; }
        else if ((p[i] & 0xE0) == 0xC0) { cp = p[i] & 0x1F; need = 1; }
        else if ((p[i] & 0xF0) == 0xE0) { cp = p[i] & 0x0F; need = 2; }
        else if ((p[i] & 0xF8) == 0xF0) { cp = p[i] & 0x07; need = 3; }
        else return false;
        if (i + need >= len)
            return false;       /* sequence runs past the end */
        for (size_t k = 1; k <= need; k++) {
            if ((p[i + k] & 0xC0) != 0x80)
                return false;
            cp = cp << 6 | (p[i + k] & 0x3F);
        }
        static const uint32_t min_for[] = { 0, 0x80, 0x800, 0x10000 };
        if (cp < min_for[need] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return false;
        i += need + 1;
    }
    return true;
}

/* Length of the longest prefix of full[0..len) that ends on a character boundary and is <= max. */
static size_t whole_char_prefix(const char *full, size_t len, size_t max)
{
    if (max >= len)
        return len;
    size_t k = max;
    while (k > 0 && ((uint8_t)full[k] & 0xC0) == 0x80)
        k--;
    return k;
}

/* ---- state words ---------------------------------------------------------------------------- */

static void assert_state(struct pystr_state s, int kind, bool compact, bool ascii)
{
    assert_int_equal(s.kind, kind);
    assert_int_equal(s.compact, compact);
    assert_int_equal(s.ascii, ascii);
}

static void test_state_constructed_bit_patterns(void **state)
{
    (void)state;
    for (uint32_t interned = 0; interned < 4; interned++)
        for (uint32_t kind = 0; kind < 8; kind++)
            for (uint32_t compact = 0; compact < 2; compact++)
                for (uint32_t ascii = 0; ascii < 2; ascii++) {
                    uint32_t w = interned | kind << 2 | compact << 5 | ascii << 6;
                    assert_state(pystr_parse_state(w, 2), (int)kind, compact, ascii);
                    /* ready (≤3.11) / statically_allocated (3.12+) bit and padding garbage */
                    assert_state(pystr_parse_state(w | 0xDEADBE80u, 2), (int)kind, compact, ascii);
                }
    /* Free-threaded 3.13 builds keep interned in a whole byte before the bitfield. */
    assert_state(pystr_parse_state(0x3 | 2u << 8 | 1u << 11, 8), 2, true, false);
    assert_state(pystr_parse_state(0xFFFFFFFF, 2), 7, true, true);
}

static void test_state_bad_interned_width(void **state)
{
    (void)state;
    assert_state(pystr_parse_state(0xE5, -1), 0, false, false);
    assert_state(pystr_parse_state(0xE5, 40), 0, false, false);
}

/*
 * State words of live objects, read with ctypes.c_uint32.from_address(id(s) + 32) under the pyenv
 * interpreters (the word is at +32 in every 64-bit 3.x). Note the garbage above bit 7: CPython
 * never clears the bitfield's padding.
 */
static void test_state_from_real_objects(void **state)
{
    (void)state;
    static const struct {
        const char *what;
        uint32_t word;
        int kind;
        bool compact, ascii;
    } real[] = {
        { "3.6 sys.intern ascii", 0xe5, 1, true, true },
        { "3.6 joined ascii", 0xe4, 1, true, true },
        { "3.6 'caf\\xe9'", 0x332df2a4, 1, true, false },
        { "3.6 '\\u51fd\\u6570'", 0x32be96a8, 2, true, false },
        { "3.6 interned ucs2", 0x32be9ca9, 2, true, false },
        { "3.6 ucs4", 0xb0, 4, true, false },
        { "3.8 interned ucs2", 0xa9, 2, true, false },
        { "3.9 sys.intern ascii", 0xb51ad2e5, 1, true, true },
        { "3.10 joined ascii", 0xbeca13e4, 1, true, true },
        { "3.10 ucs2", 0xbf3a35a8, 2, true, false },
        { "3.11 '\\xe9' singleton", 0xa4, 1, true, false },
        { "3.11 latin-1", 0x24a5bba4, 1, true, false },
        { "3.12 sys.intern ascii", 0x66, 1, true, true },
        { "3.12 empty (static, immortal)", 0xe7, 1, true, true },
        { "3.12 latin-1", 0x64b7de24, 1, true, false },
        { "3.12 ucs2", 0xe1db9b28, 2, true, false },
        { "3.12 ucs4", 0x6535d430, 4, true, false },
        { "3.13 joined ascii", 0x20206064, 1, true, true },
        { "3.13 '\\xe9' singleton", 0xa7, 1, true, false },
        { "3.13 interned ucs2", 0xa6d6e629, 2, true, false },
        { "3.13 ucs4", 0x5ef26630, 4, true, false },
    };
    for (size_t i = 0; i < ARRAY_LEN(real); i++) {
        struct pystr_state s = pystr_parse_state(real[i].word, 2);
        if (s.kind != real[i].kind || s.compact != real[i].compact || s.ascii != real[i].ascii)
            fail_msg("%s (0x%x): kind %d compact %d ascii %d", real[i].what, real[i].word, s.kind,
                     s.compact, s.ascii);
    }
}

/* ---- code points to UTF-8 ------------------------------------------------------------------- */

static void assert_converts(const void *data, size_t n, int kind, const char *want)
{
    char out[128];
    memset(out, 'Z', sizeof out);
    size_t len = pystr_to_utf8(data, n, kind, out, sizeof out);
    assert_int_equal(len, strlen(want));
    assert_memory_equal(out, want, len + 1);
}

static void test_ascii_and_latin1(void **state)
{
    (void)state;
    assert_converts("hello_world", 11, 1, "hello_world");
    static const uint8_t latin1[] = { 'c', 'a', 'f', 0xE9, ' ', 0xFF, 0x80, 0xA0 };
    assert_converts(latin1, sizeof latin1, 1, "caf\xc3\xa9 \xc3\xbf\xc2\x80\xc2\xa0");
    assert_converts("", 0, 1, "");
}

static void test_ucs2(void **state)
{
    (void)state;
    static const uint16_t cjk[] = { 0x51FD, 0x6570 };                    /* 函数 */
    static const uint16_t greek[] = { 0x03B1, 0x03B2, 0x03B3, '_', 'x' }; /* αβγ_x */
    static const uint16_t edges[] = { 0x007F, 0x0080, 0x07FF, 0x0800, 0xFFFE, 0xFFFF };
    assert_converts(cjk, 2, 2, "\xe5\x87\xbd\xe6\x95\xb0");
    assert_converts(greek, 5, 2, "\xce\xb1\xce\xb2\xce\xb3_x");
    assert_converts(edges, 6, 2,
                    "\x7f\xc2\x80\xdf\xbf\xe0\xa0\x80\xef\xbf\xbe\xef\xbf\xbf");
}

static void test_ucs4(void **state)
{
    (void)state;
    static const uint32_t frak[] = { 0x1D523, 0x1D532, 0x1D52B, 0x1D520 };  /* 𝔣𝔲𝔫𝔠 */
    static const uint32_t mixed[] = { 0x1F600, 'a', 0xE9, 0x51FD, 0x10000, 0x10FFFF };
    assert_converts(frak, 4, 4, "\xf0\x9d\x94\xa3\xf0\x9d\x94\xb2\xf0\x9d\x94\xab\xf0\x9d\x94\xa0");
    assert_converts(mixed, 6, 4,
                    "\xf0\x9f\x98\x80" "a" "\xc3\xa9" "\xe5\x87\xbd" "\xf0\x90\x80\x80"
                    "\xf4\x8f\xbf\xbf");
}

static void test_invalid_code_points_become_replacement(void **state)
{
    (void)state;
    /* PEP 393 strings can hold lone surrogates ('\ud800'); a high+low pair in a kind-2 string
     * is still two separate code points, never one character. */
    static const uint16_t lone[] = { 0xD800, 'a', 0xDBFF, 0xDC00, 0xDFFF, 0xD7FF, 0xE000 };
    static const uint32_t wide[] = { 0x110000, 0xFFFFFFFF, 0xD83D, 0xDE00, 0x80000000, 'z' };
    assert_converts(lone, 7, 2, FFFD "a" FFFD FFFD FFFD "\xed\x9f\xbf\xee\x80\x80");
    assert_converts(wide, 6, 4, FFFD FFFD FFFD FFFD FFFD "z");
}

static void test_embedded_nul_is_kept(void **state)
{
    (void)state;
    char out[8];
    assert_int_equal(pystr_to_utf8("a\0b", 3, 1, out, sizeof out), 3);
    assert_memory_equal(out, "a\0b\0", 4);
}

static void test_unknown_kind_gives_empty_string(void **state)
{
    (void)state;
    char out[8] = "xxxxxxx";
    for (int kind = -1; kind <= 8; kind++) {
        if (kind == 1 || kind == 2 || kind == 4)
            continue;
        out[0] = 'x';
        assert_int_equal(pystr_to_utf8("abcd", 4, kind, out, sizeof out), 0);
        assert_int_equal(out[0], '\0');
    }
    assert_int_equal(pystr_to_utf8(NULL, 4, 1, out, sizeof out), 0);
    assert_int_equal(out[0], '\0');
}

static void test_cap_zero_writes_nothing(void **state)
{
    (void)state;
    char out[1] = { 'x' };
    assert_int_equal(pystr_to_utf8("abc", 3, 1, out, 0), 0);
    assert_int_equal(pystr_bytes_to_utf8((const uint8_t *)"abc", 3, out, 0), 0);
    assert_int_equal(out[0], 'x');
}

static void test_unaligned_wide_data(void **state)
{
    (void)state;
    /* Buffers read from the target need not be aligned for uint16_t/uint32_t. */
    uint8_t buf[1 + 3 * 4];
    static const uint32_t cps[] = { 0x1F600, 0x51FD, 'q' };
    memcpy(buf + 1, cps, sizeof cps);
    assert_converts(buf + 1, 3, 4, "\xf0\x9f\x98\x80\xe5\x87\xbd" "q");
    static const uint16_t u16[] = { 0x03B1, 'q' };
    memcpy(buf + 1, u16, sizeof u16);
    assert_converts(buf + 1, 2, 2, "\xce\xb1q");
}

/*
 * At every cap from 1 to 16 (in a buffer of exactly cap bytes, so ASan sees any overrun) the
 * output is the longest whole-character prefix of the full conversion, valid and NUL-terminated.
 */
static void check_truncation_cp(const void *data, size_t n, int kind)
{
    char full[256];
    size_t full_len = pystr_to_utf8(data, n, kind, full, sizeof full);
    assert_true(valid_utf8(full, full_len));
    for (size_t cap = 1; cap <= 16; cap++) {
        char *out = malloc(cap);
        assert_non_null(out);
        size_t len = pystr_to_utf8(data, n, kind, out, cap);
        assert_int_equal(len, whole_char_prefix(full, full_len, cap - 1));
        assert_memory_equal(out, full, len);
        assert_int_equal(out[len], '\0');
        assert_true(valid_utf8(out, len));
        free(out);
    }
}

static void test_truncation_never_splits_code_points(void **state)
{
    (void)state;
    static const uint8_t latin1[] = { 0xE9, 'a', 0xFF, 0xFF, 'b', 0xE9, 0xE9, 0xE9, 0xE9, 'c' };
    static const uint16_t ucs2[] = { 0x51FD, 0x6570, 'x', 0x03B1, 0xD800, 0x51FD, 'y' };
    static const uint32_t ucs4[] = { 0x1D523, 'a', 0x1D532, 0xE9, 0x1D52B, 0x110000, 0x1D520 };
    check_truncation_cp("plain_ascii_name_longer_than_16", 31, 1);
    check_truncation_cp(latin1, ARRAY_LEN(latin1), 1);
    check_truncation_cp(ucs2, ARRAY_LEN(ucs2), 2);
    check_truncation_cp(ucs4, ARRAY_LEN(ucs4), 4);
}

static void test_random_code_points_give_valid_utf8(void **state)
{
    (void)state;
    uint32_t seed = 99, cps[24];
    char out[24 * 4 + 1];
    for (int iter = 0; iter < 5000; iter++) {
        for (size_t i = 0; i < ARRAY_LEN(cps); i++) {
            seed = seed * 1664525u + 1013904223u;
            /* bias towards the interesting region around the surrogates and U+10FFFF */
            cps[i] = (iter & 1) ? seed : (seed >> 11) % 0x120000;
        }
        size_t cap = 1 + (size_t)(iter % (int)sizeof out);
        size_t len = pystr_to_utf8(cps, ARRAY_LEN(cps), 4, out, cap);
        assert_true(len < cap);
        assert_true(valid_utf8(out, len));
    }
}

/* ---- byte strings --------------------------------------------------------------------------- */

static void test_bytes_match_python_replace(void **state)
{
    (void)state;
    /* Expected values are bytes.decode("utf-8", "replace").encode() from CPython 3. */
    static const struct { const char *in; size_t n; const char *want; } cases[] = {
        { "abc", 3, "abc" },
        { "caf\xc3\xa9", 5, "caf\xc3\xa9" },
        { "caf\xe9", 4, "caf" FFFD },                       /* latin-1, not UTF-8 */
        { "\xc0\xaf", 2, FFFD FFFD },                       /* overlong '/' */
        { "\xe0\x80\xaf", 3, FFFD FFFD FFFD },              /* overlong, 3 bytes */
        { "\xed\xa0\x80", 3, FFFD FFFD FFFD },              /* encoded surrogate */
        { "\xf4\x90\x80\x80", 4, FFFD FFFD FFFD FFFD },     /* U+110000 */
        { "\xf0\x8f\xbf\xbf", 4, FFFD FFFD FFFD FFFD },     /* overlong U+FFFF */
        { "\xf5\x80", 2, FFFD FFFD },
        { "\xff\xfe", 2, FFFD FFFD },
        { "\xf0\x9f\x98", 3, FFFD },                        /* cut 4-byte sequence: one */
        { "\xe2\x82x", 3, FFFD "x" },
        { "\xf1\x80\x80\xe1\x80\xc2", 6, FFFD FFFD FFFD },
        { "\xe1\x80\xe2\xf0\x91\x92\xf1\xbf\x41", 9, FFFD FFFD FFFD FFFD "A" },
        { "\xf0\x9f\x98\x80", 4, "\xf0\x9f\x98\x80" },
        { "\xef\xbf\xbf", 3, "\xef\xbf\xbf" },
        { "\xf4\x8f\xbf\xbf", 4, "\xf4\x8f\xbf\xbf" },
        { "\xc2\x80\xdf\xbf\xe0\xa0\x80", 7, "\xc2\x80\xdf\xbf\xe0\xa0\x80" },
        { "", 0, "" },
    };
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        char out[64];
        size_t len = pystr_bytes_to_utf8((const uint8_t *)cases[i].in, cases[i].n, out, sizeof out);
        if (len != strlen(cases[i].want) || memcmp(out, cases[i].want, len + 1) != 0)
            fail_msg("case %zu: got %zu bytes, want %zu", i, len, strlen(cases[i].want));
    }
}

static void test_bytes_embedded_nul_and_null_input(void **state)
{
    (void)state;
    char out[8];
    assert_int_equal(pystr_bytes_to_utf8((const uint8_t *)"a\0b", 3, out, sizeof out), 3);
    assert_memory_equal(out, "a\0b\0", 4);
    assert_int_equal(pystr_bytes_to_utf8(NULL, 5, out, sizeof out), 0);
    assert_int_equal(out[0], '\0');
}

static void check_truncation_bytes(const char *in, size_t n)
{
    char full[256];
    size_t full_len = pystr_bytes_to_utf8((const uint8_t *)in, n, full, sizeof full);
    assert_true(valid_utf8(full, full_len));
    for (size_t cap = 1; cap <= 16; cap++) {
        char *out = malloc(cap);
        assert_non_null(out);
        size_t len = pystr_bytes_to_utf8((const uint8_t *)in, n, out, cap);
        assert_int_equal(len, whole_char_prefix(full, full_len, cap - 1));
        assert_memory_equal(out, full, len);
        assert_int_equal(out[len], '\0');
        free(out);
    }
}

static void test_bytes_truncation_never_splits(void **state)
{
    (void)state;
    check_truncation_bytes("\xf0\x9f\x98\x80" "a\xe5\x87\xbd\xff" "bc\xc3\xa9\xe2\x82", 16);
    check_truncation_bytes("ab\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9", 16);
    check_truncation_bytes("\xff\xfe\xfd\xfc\xfb\xfa", 6);
}

static void test_random_bytes_give_valid_utf8(void **state)
{
    (void)state;
    uint32_t seed = 7;
    char out[40 * 3 + 1];
    for (int iter = 0; iter < 20000; iter++) {
        size_t n = (size_t)(iter % 41);
        uint8_t *in = malloc(n ? n : 1);
        assert_non_null(in);
        for (size_t i = 0; i < n; i++) {
            seed = seed * 1664525u + 1013904223u;
            uint8_t b = (uint8_t)(seed >> 24);
            /* mostly lead and continuation bytes, so that near-valid sequences are common */
            in[i] = (iter & 1) ? b : (uint8_t)(0x80 | (b & 0x7F));
        }
        size_t cap = 1 + (size_t)(iter % (int)sizeof out);
        size_t len = pystr_bytes_to_utf8(in, n, out, cap);
        assert_true(len < cap);
        assert_true(valid_utf8(out, len));
        /* Valid input is copied unchanged when it fits. */
        if (valid_utf8((const char *)in, n) && n < cap) {
            assert_int_equal(len, n);
            assert_memory_equal(out, in, n);
        }
        free(in);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_state_constructed_bit_patterns),
        cmocka_unit_test(test_state_bad_interned_width),
        cmocka_unit_test(test_state_from_real_objects),
        cmocka_unit_test(test_ascii_and_latin1),
        cmocka_unit_test(test_ucs2),
        cmocka_unit_test(test_ucs4),
        cmocka_unit_test(test_invalid_code_points_become_replacement),
        cmocka_unit_test(test_embedded_nul_is_kept),
        cmocka_unit_test(test_unknown_kind_gives_empty_string),
        cmocka_unit_test(test_cap_zero_writes_nothing),
        cmocka_unit_test(test_unaligned_wide_data),
        cmocka_unit_test(test_truncation_never_splits_code_points),
        cmocka_unit_test(test_random_code_points_give_valid_utf8),
        cmocka_unit_test(test_bytes_match_python_replace),
        cmocka_unit_test(test_bytes_embedded_nul_and_null_input),
        cmocka_unit_test(test_bytes_truncation_never_splits),
        cmocka_unit_test(test_random_bytes_give_valid_utf8),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
