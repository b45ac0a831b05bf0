/*
 * test_loops_hostile.c — readers/loops.c against hostile input. Hand-made cases pin what real
 * compilers never emit: EXTENDED_ARG chains, unknown opcodes, truncated arguments, more edges than
 * room; and no prefix of any fixture of loops_fixture.h, nor random bytes or fixtures with bytes
 * flipped, make the scan crash or read past the code (ASan).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "readers/loops.h"
#include "tests/unit/loops_fixture.h"

/* ---- hostile input -------------------------------------------------------------------------- */

static const struct py_opcodes *ops_v(int major, int minor)
{
    const struct py_opcodes *ops = opcodes_for_version(major, minor);
    assert_non_null(ops);
    return ops;
}

static int scan_bytes(const struct py_opcodes *ops, const uint8_t *bytes, size_t len, size_t *n)
{
    uint8_t *copy = malloc(len ? len : 1);
    assert_non_null(copy);
    memcpy(copy, bytes, len);
    struct loop_jump got[8];
    int rc = loops_scan(ops, copy, len, got, 8, n);
    free(copy);
    return rc;
}

static uint8_t op_of(const struct py_opcodes *ops, uint8_t flag, uint8_t not_flag)
{
    for (int op = 0; op < 256; op++)
        if ((ops->flags[op] & flag) == flag && !(ops->flags[op] & not_flag) && ops->deopt[op] == op)
            return (uint8_t)op;
    fail_msg("no opcode with flags %#x", flag);
    return 0;
}

static void test_extended_arg_chains(void **state)
{
    (void)state;
    const struct py_opcodes *ops = ops_v(3, 9);
    uint8_t ext = ops->extended_arg, jabs = op_of(ops, OPC_JUMP_ABS | OPC_KNOWN, 0);
    size_t n = 99;
    /* Three zero prefixes are legal: a jump to 0 from offset 6. */
    uint8_t ok[] = {ext, 0, ext, 0, ext, 0, jabs, 0};
    assert_int_equal(scan_bytes(ops, ok, sizeof ok, &n), LOOPS_OK);
    assert_int_equal(n, 1);
    /* Prefixes that push the argument past 32 bits are garbage, not a huge jump. */
    uint8_t big[] = {ext, 1, ext, 0, ext, 0, ext, 0, jabs, 0};
    assert_int_equal(scan_bytes(ops, big, sizeof big, &n), LOOPS_EBADCODE);
    /* A prefix with nothing after it. */
    uint8_t dangling[] = {jabs, 0, ext, 0};
    assert_int_equal(scan_bytes(ops, dangling, sizeof dangling, &n), LOOPS_EBADCODE);
    /* A prefixed target past the end. */
    uint8_t far[] = {ext, 1, jabs, 0};
    assert_int_equal(scan_bytes(ops, far, sizeof far, &n), LOOPS_EBADCODE);
    /* 2.7: EXTENDED_ARG gives the high 16 bits. */
    const struct py_opcodes *o27 = ops_v(2, 7);
    uint8_t j27 = op_of(o27, OPC_JUMP_ABS | OPC_KNOWN, OPC_DEFERRED);
    uint8_t b27[] = {o27->extended_arg, 0, 0, j27, 0, 0};
    assert_int_equal(scan_bytes(o27, b27, sizeof b27, &n), LOOPS_OK);
    assert_int_equal(n, 1);
    uint8_t c27[] = {o27->extended_arg, 1, 0, j27, 0, 0};
    assert_int_equal(scan_bytes(o27, c27, sizeof c27, &n), LOOPS_EBADCODE);
    /* 3.11+: the last prefix counts from after the jump's caches. */
    const struct py_opcodes *o13 = ops_v(3, 13);
    uint8_t back = op_of(o13, OPC_JUMP_REL_BACK | OPC_KNOWN, 0);
    assert_int_equal(o13->cache_entries[back], 1);
    uint8_t nop = op_of(o13, OPC_KNOWN, OPC_JUMP_ABS | OPC_JUMP_REL_FWD | OPC_JUMP_REL_BACK |
                                            OPC_HIDDEN);
    uint8_t code13[600];
    for (size_t i = 0; i < sizeof code13; i += 2) {
        code13[i] = nop;
        code13[i + 1] = 0;
        if (o13->cache_entries[nop])
            fail_msg("picked an opcode with caches");
    }
    /* at 590: EXTENDED_ARG 1, JUMP_BACKWARD 40 (+1 cache) → next 596 − 2·296 = 4 */
    code13[590] = o13->extended_arg;
    code13[591] = 1;
    code13[592] = back;
    code13[593] = 40;
    code13[594] = 0xff;   /* the cache unit: garbage that must not be decoded */
    code13[595] = 0xff;
    struct loop_jump got[4];
    assert_int_equal(loops_scan(o13, code13, 596, got, 4, &n), LOOPS_OK);
    assert_int_equal(n, 1);
    assert_int_equal(got[0].src, 592);
    assert_int_equal(got[0].target, 4);
}

static void test_malformed_bytecode_is_refused(void **state)
{
    (void)state;
    size_t n = 99;
    const struct py_opcodes *o12 = ops_v(3, 12);
    /* odd length, empty, unknown opcode, caches past the end */
    uint8_t odd[] = {1, 0, 1};
    assert_int_equal(scan_bytes(o12, odd, sizeof odd, &n), LOOPS_EBADCODE);
    assert_int_equal(scan_bytes(o12, odd, 0, &n), LOOPS_EBADCODE);
    int unknown = -1;
    for (int op = 0; op < 256 && unknown < 0; op++)
        if (!o12->flags[op])
            unknown = op;
    assert_true(unknown >= 0);
    uint8_t bad[] = {1, 0, (uint8_t)unknown, 0};
    assert_int_equal(scan_bytes(o12, bad, sizeof bad, &n), LOOPS_EBADCODE);
    int cached = -1;
    for (int op = 0; op < 256 && cached < 0; op++)
        if (o12->cache_entries[op] >= 2 && o12->deopt[op] == op)
            cached = op;
    uint8_t cut[] = {(uint8_t)cached, 0, 0, 0};
    assert_int_equal(scan_bytes(o12, cut, sizeof cut, &n), LOOPS_EBADCODE);
    /* a backward jump landing before the code */
    uint8_t back = op_of(o12, OPC_JUMP_REL_BACK | OPC_KNOWN, 0);
    uint8_t under[] = {1, 0, back, 5};
    assert_int_equal(scan_bytes(o12, under, sizeof under, &n), LOOPS_EBADCODE);
    /* 2.7: an argument cut off */
    const struct py_opcodes *o27 = ops_v(2, 7);
    uint8_t j27 = op_of(o27, OPC_JUMP_ABS | OPC_KNOWN, OPC_DEFERRED);
    uint8_t cut27[] = {j27, 0};
    assert_int_equal(scan_bytes(o27, cut27, sizeof cut27, &n), LOOPS_EBADCODE);
    /* no table */
    assert_int_equal(loops_scan(NULL, cut27, 2, NULL, 0, &n), LOOPS_EBADCODE);
    assert_null(opcodes_for_version(3, 14));
    assert_null(opcodes_for_version(3, 5));
}

static void test_too_many_edges(void **state)
{
    (void)state;
    const struct py_opcodes *o10 = ops_v(3, 10);
    uint8_t jabs = op_of(o10, OPC_JUMP_ABS | OPC_KNOWN, 0);
    uint8_t code[20];
    for (size_t i = 0; i < sizeof code; i += 2) {
        code[i] = jabs;
        code[i + 1] = 0;   /* every instruction jumps back to 0 */
    }
    struct loop_jump got[10];
    size_t n = 99;
    assert_int_equal(loops_scan(o10, code, sizeof code, got, 9, &n), LOOPS_ENOSPC);
    assert_int_equal(loops_scan(o10, code, sizeof code, got, 10, &n), LOOPS_OK);
    assert_int_equal(n, 10);
}

/* Every prefix of every fixture: never a crash or an overread (ASan), and edges inside the code. */
static void test_truncated_bytecode_never_overreads(void **state)
{
    (void)state;
    struct loop_jump *got = malloc(EDGES_CAP * sizeof *got);
    assert_non_null(got);
    for (size_t v = 0; v < NFIXTURES; v++) {
        struct fx_file fx;
        fx_load(ALL_FIXTURES[v], &fx);
        const struct py_opcodes *ops = ops_of(&fx);
        for (size_t i = 0; i < fx.n; i++) {
            const struct fx_code *c = &fx.codes[i];
            size_t step = c->len > 2000 ? 7 : 1;
            for (size_t len = 0; len < c->len; len += step) {
                uint8_t *copy = malloc(len ? len : 1);
                assert_non_null(copy);
                memcpy(copy, c->code, len);
                size_t n = 0;
                int rc = loops_scan(ops, copy, len, got, EDGES_CAP, &n);
                assert_true(rc <= LOOPS_OK && rc >= LOOPS_ENOSPC);
                for (size_t k = 0; rc == LOOPS_OK && k < n; k++) {
                    assert_true(got[k].src <= len);
                    assert_true(got[k].target < len && got[k].target <= got[k].src);
                }
                free(copy);
            }
        }
        fx_free(&fx);
    }
    free(got);
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;
static uint32_t rng(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)rng_state;
}

/* Random bytes, and fixtures with random bytes flipped, under every version's table. */
static void test_random_bytes_never_crash(void **state)
{
    (void)state;
    struct loop_jump got[64];
    size_t ok = 0;
    for (size_t v = 0; v < NFIXTURES; v++) {
        struct fx_file fx;
        fx_load(ALL_FIXTURES[v], &fx);
        const struct py_opcodes *ops = ops_of(&fx);
        for (int iter = 0; iter < 3000; iter++) {
            size_t len = rng() % 300;
            uint8_t *buf = malloc(len ? len : 1);
            assert_non_null(buf);
            const struct fx_code *c = &fx.codes[rng() % fx.n];
            if (iter % 2 && c->len >= len) {
                memcpy(buf, c->code, len);
                for (int flips = 1 + rng() % 4; flips > 0 && len; flips--)
                    buf[rng() % len] = (uint8_t)rng();
            } else {
                for (size_t k = 0; k < len; k++)
                    buf[k] = (uint8_t)rng();
            }
            size_t n = 0;
            int rc = loops_scan(ops, buf, len, got, 64, &n);
            if (rc == LOOPS_OK) {
                ok++;
                for (size_t k = 0; k < n; k++) {
                    assert_true(got[k].target < len && got[k].target <= got[k].src);
                    assert_true(got[k].src <= len);
                    (void)loops_may_go_back(got, n, rng() % (len + 1), rng() % (len + 1));
                }
            }
            free(buf);
        }
        fx_free(&fx);
    }
    assert_true(ok > 100);   /* the flipped fixtures still scan often enough to exercise edges */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_extended_arg_chains),
        cmocka_unit_test(test_malformed_bytecode_is_refused),
        cmocka_unit_test(test_too_many_edges),
        cmocka_unit_test(test_truncated_bytecode_never_overreads),
        cmocka_unit_test(test_random_bytes_never_crash),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
