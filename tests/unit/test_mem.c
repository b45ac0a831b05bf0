/*
 * test_mem.c — attach/mem.c: the fake source (regions, whole-or-nothing reads, pokes, counters)
 * and the live source against a real process: a forked child that fills known buffers after the
 * fork (so reading our own copy would not pass) and then blocks on a pipe while we read it.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "attach/mem.h"


/* ---- fake source ------------------------------------------------------------------------------ */

static struct mem_src *fake_with(uint64_t addr, const void *bytes, size_t len)
{
    struct mem_src *m = mem_fake_new();
    assert_non_null(m);
    assert_int_equal(mem_fake_add(m, addr, bytes, len), 0);
    return m;
}

static void fake_read_inside_a_region_returns_its_bytes(void **state)
{
    (void)state;
    uint8_t bytes[64], out[16];
    for (int i = 0; i < 64; i++)
        bytes[i] = (uint8_t)(i * 7);
    struct mem_src *m = fake_with(0x1000, bytes, sizeof bytes);
    assert_int_equal(mem_read(m, 0x1000, out, 16), 0);
    assert_memory_equal(out, bytes, 16);
    assert_int_equal(mem_read(m, 0x1000 + 48, out, 16), 0);      /* ends exactly at the end */
    assert_memory_equal(out, bytes + 48, 16);
    mem_close(m);
}

static void fake_read_not_wholly_inside_a_region_fails(void **state)
{
    (void)state;
    uint8_t bytes[64] = { 0 }, out[16];
    struct mem_src *m = fake_with(0x1000, bytes, sizeof bytes);
    assert_int_equal(mem_read(m, 0x1000 + 49, out, 16), -1);     /* one byte past the end */
    assert_int_equal(mem_read(m, 0x1000 - 1, out, 16), -1);      /* starts before */
    assert_int_equal(mem_read(m, 0x2000, out, 1), -1);           /* nothing there */
    assert_int_equal(mem_read(m, UINT64_MAX - 4, out, 16), -1);  /* would wrap around */
    mem_close(m);
}

static void fake_read_across_two_adjacent_regions_fails(void **state)
{
    (void)state;
    uint8_t a[32] = { 1 }, b[32] = { 2 }, out[16];
    struct mem_src *m = fake_with(0x1000, a, sizeof a);
    assert_int_equal(mem_fake_add(m, 0x1000 + sizeof a, b, sizeof b), 0);
    assert_int_equal(mem_read(m, 0x1000 + 24, out, 16), -1);
    assert_int_equal(mem_read(m, 0x1000 + 32, out, 16), 0);
    assert_int_equal(out[0], 2);
    mem_close(m);
}

static void fake_add_copies_the_callers_bytes(void **state)
{
    (void)state;
    uint8_t bytes[8] = { 1, 2, 3, 4, 5, 6, 7, 8 }, out[8];
    struct mem_src *m = fake_with(0x5000, bytes, sizeof bytes);
    memset(bytes, 0, sizeof bytes);
    assert_int_equal(mem_read(m, 0x5000, out, 8), 0);
    assert_int_equal(out[7], 8);
    mem_close(m);
}

static void fake_region_pokes_are_seen_by_later_reads(void **state)
{
    (void)state;
    uint8_t bytes[32] = { 0 };
    uint64_t v = 0;
    struct mem_src *m = fake_with(0x7000, bytes, sizeof bytes);
    uint8_t *r = mem_fake_region(m, 0x7000);
    assert_non_null(r);
    const uint64_t want = 0x1122334455667788ULL;
    memcpy(r + 8, &want, 8);
    assert_int_equal(mem_read_ptr(m, 0x7008, &v), 0);
    assert_int_equal(v, want);
    assert_null(mem_fake_region(m, 0x7008));      /* only a region's start names it */
    assert_null(mem_fake_region(m, 0x9000));
    mem_close(m);
}

static void fake_read_ptr_is_little_endian(void **state)
{
    (void)state;
    const uint8_t le[8] = { 0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11 };
    uint64_t v = 0;
    struct mem_src *m = fake_with(0x100, le, sizeof le);
    assert_int_equal(mem_read_ptr(m, 0x100, &v), 0);
    assert_int_equal(v, 0x1122334455667788ULL);
    assert_int_equal(mem_read_ptr(m, 0x101, &v), -1);
    mem_close(m);
}

static void fake_counts_reads_and_failures(void **state)
{
    (void)state;
    uint8_t bytes[16] = { 0 }, out[8];
    struct mem_src *m = fake_with(0x100, bytes, sizeof bytes);
    assert_int_equal(m->reads, 0);
    assert_int_equal(m->failures, 0);
    mem_read(m, 0x100, out, 8);
    mem_read(m, 0x900, out, 8);
    mem_read(m, 0x108, out, 8);
    assert_int_equal(m->reads, 3);
    assert_int_equal(m->failures, 1);
    mem_close(m);
}

static void fake_readv_returns_count_of_leading_complete_iovs(void **state)
{
    (void)state;
    uint8_t bytes[64], b0[8], b1[8], b2[8];
    for (int i = 0; i < 64; i++)
        bytes[i] = (uint8_t)i;
    struct mem_src *m = fake_with(0x100, bytes, sizeof bytes);
    struct mem_iov ok3[] = { { 0x100, b0, 8 }, { 0x110, b1, 8 }, { 0x120, b2, 8 } };
    assert_int_equal(mem_readv(m, ok3, 3), 3);
    assert_int_equal(b1[0], 0x10);
    assert_int_equal(b2[7], 0x27);
    struct mem_iov mid[] = { { 0x100, b0, 8 }, { 0x900, b1, 8 }, { 0x120, b2, 8 } };
    assert_int_equal(mem_readv(m, mid, 3), 1);
    struct mem_iov first[] = { { 0x900, b0, 8 }, { 0x100, b1, 8 } };
    assert_int_equal(mem_readv(m, first, 2), 0);
    assert_int_equal(mem_readv(m, ok3, 0), 0);
    mem_close(m);
}

static void mem_close_of_null_is_a_no_op(void **state)
{
    (void)state;
    mem_close(NULL);
}

/* ---- live source -------------------------------------------------------------------------------- */

#define BIG_N 1500     /* more iovecs than one process_vm_readv call takes (IOV_MAX = 1024) */

static uint8_t child_buf[8192];          /* page-spanning, filled by the child after fork */
static uint64_t child_big[BIG_N];
static uint8_t own_buf[256];

struct child {
    pid_t pid;
    int release_fd;      /* closing it lets the child exit */
    uint64_t hole;       /* an address unmapped in the child */
};

static uint8_t child_byte(size_t i) { return (uint8_t)(i * 31 + 5); }

/* Forks a child that fills the buffers, says so, and blocks until released. */
static int child_start(struct child *c)
{
    int ready[2], release[2];
    if (pipe(ready) != 0 || pipe(release) != 0)
        return -1;
    /* An address range that is unmapped in the parent at fork, hence in the child too. */
    void *hole = mmap(NULL, 2 * 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (hole == MAP_FAILED)
        return -1;
    munmap(hole, 2 * 4096);
    c->hole = (uint64_t)(uintptr_t)hole;
    memset(child_buf, 0xee, sizeof child_buf);
    c->pid = fork();
    if (c->pid < 0)
        return -1;
    if (c->pid == 0) {
        close(ready[0]);
        close(release[1]);
        for (size_t i = 0; i < sizeof child_buf; i++)
            child_buf[i] = child_byte(i);
        for (size_t i = 0; i < BIG_N; i++)
            child_big[i] = i * 3 + 1;
        char one = 1;
        if (write(ready[1], &one, 1) != 1)
            _exit(1);
        char buf;
        while (read(release[0], &buf, 1) > 0)
            ;
        _exit(0);
    }
    close(ready[1]);
    close(release[0]);
    char buf;
    ssize_t got = read(ready[0], &buf, 1);
    close(ready[0]);
    c->release_fd = release[1];
    return got == 1 ? 0 : -1;
}

static void child_stop(struct child *c)
{
    close(c->release_fd);
    waitpid(c->pid, NULL, 0);
}

static struct child the_child;

static int live_group_setup(void **state)
{
    (void)state;
    return child_start(&the_child);
}

static int live_group_teardown(void **state)
{
    (void)state;
    child_stop(&the_child);
    return 0;
}

/* Per test: a live source on the child, closed by the teardown even when an assertion fails. */
static int live_setup(void **state)
{
    struct mem_src *m = NULL;
    struct pt_err err;
    if (mem_open_pid(&m, the_child.pid, &err) != PT_OK)
        return -1;
    *state = m;
    return 0;
}

static int live_teardown(void **state)
{
    mem_close(*state);
    return 0;
}

static void live_reads_a_childs_buffer(void **state)
{
    struct mem_src *m = *state;
    uint8_t out[sizeof child_buf];
    assert_int_equal(mem_read(m, (uint64_t)(uintptr_t)child_buf, out, sizeof out), 0);
    for (size_t i = 0; i < sizeof out; i++)
        if (out[i] != child_byte(i))
            fail_msg("byte %zu: got %#x, want %#x", i, out[i], child_byte(i));
    assert_int_equal(child_buf[0], 0xee);    /* ours is untouched: that was the child's copy */
    assert_true(m->reads >= 1);
}

static void live_zero_length_read_succeeds(void **state)
{
    struct mem_src *m = *state;
    uint8_t out[1];
    assert_int_equal(mem_read(m, (uint64_t)(uintptr_t)child_buf, out, 0), 0);
}

static void live_read_of_unmapped_address_fails_cleanly(void **state)
{
    struct mem_src *m = *state;
    uint8_t out[64];
    uint64_t failures = m->failures;
    assert_int_equal(mem_read(m, the_child.hole, out, sizeof out), -1);
    assert_int_equal(m->failures, failures + 1);
    /* A read that starts mapped and runs into the hole fails as a whole, too. */
    assert_int_equal(mem_read(m, the_child.hole - 8, out, 16), -1);
    /* And the source still works afterwards. */
    assert_int_equal(mem_read(m, (uint64_t)(uintptr_t)child_buf, out, 8), 0);
    assert_int_equal(out[1], child_byte(1));
}

static void live_readv_with_failing_middle_iov_counts_leading_ones(void **state)
{
    struct mem_src *m = *state;
    uint8_t b0[16], b1[16], b2[16];
    uint64_t buf = (uint64_t)(uintptr_t)child_buf;
    struct mem_iov iov[] = { { buf, b0, 16 }, { the_child.hole, b1, 16 }, { buf + 64, b2, 16 } };
    assert_int_equal(mem_readv(m, iov, 3), 1);
    assert_int_equal(b0[3], child_byte(3));
    struct mem_iov ok[] = { { buf, b0, 16 }, { buf + 4096, b1, 16 }, { buf + 64, b2, 16 } };
    assert_int_equal(mem_readv(m, ok, 3), 3);
    assert_int_equal(b1[0], child_byte(4096));
    assert_int_equal(b2[15], child_byte(64 + 15));
}

static void live_readv_beyond_iov_max_reads_every_iov(void **state)
{
    struct mem_src *m = *state;
    static uint64_t out[BIG_N];
    static struct mem_iov iov[BIG_N];
    for (size_t i = 0; i < BIG_N; i++)
        iov[i] = (struct mem_iov){ (uint64_t)(uintptr_t)&child_big[i], &out[i], 8 };
    assert_int_equal(mem_readv(m, iov, BIG_N), BIG_N);
    for (size_t i = 0; i < BIG_N; i++)
        assert_int_equal(out[i], i * 3 + 1);
    /* A failure in the second batch still counts the whole first batch. */
    iov[1200].addr = the_child.hole;
    assert_int_equal(mem_readv(m, iov, BIG_N), 1200);
}

static void live_reads_own_process(void **state)
{
    (void)state;
    struct mem_src *m = NULL;
    struct pt_err err;
    for (size_t i = 0; i < sizeof own_buf; i++)
        own_buf[i] = (uint8_t)(255 - i);
    assert_int_equal(mem_open_pid(&m, getpid(), &err), PT_OK);
    uint8_t out[sizeof own_buf];
    int rc = mem_read(m, (uint64_t)(uintptr_t)own_buf, out, sizeof out);
    mem_close(m);
    assert_int_equal(rc, 0);
    assert_memory_equal(out, own_buf, sizeof out);
}

static void live_open_of_missing_pid_is_enoproc(void **state)
{
    (void)state;
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0)
        _exit(0);
    assert_int_equal(waitpid(pid, NULL, 0), pid);    /* reaped: the pid names nothing now */
    struct mem_src *m = (struct mem_src *)&m;        /* must be reset on failure */
    struct pt_err err;
    pt_err_clear(&err);
    assert_int_equal(mem_open_pid(&m, pid, &err), PT_ENOPROC);
    assert_null(m);
    assert_int_equal(err.code, PT_ENOPROC);
    char want[32];
    snprintf(want, sizeof want, "%d", (int)pid);
    assert_non_null(strstr(err.msg, want));
}

#define LIVE(f) cmocka_unit_test_setup_teardown(f, live_setup, live_teardown)

int main(void)
{
    const struct CMUnitTest fake[] = {
        cmocka_unit_test(fake_read_inside_a_region_returns_its_bytes),
        cmocka_unit_test(fake_read_not_wholly_inside_a_region_fails),
        cmocka_unit_test(fake_read_across_two_adjacent_regions_fails),
        cmocka_unit_test(fake_add_copies_the_callers_bytes),
        cmocka_unit_test(fake_region_pokes_are_seen_by_later_reads),
        cmocka_unit_test(fake_read_ptr_is_little_endian),
        cmocka_unit_test(fake_counts_reads_and_failures),
        cmocka_unit_test(fake_readv_returns_count_of_leading_complete_iovs),
        cmocka_unit_test(mem_close_of_null_is_a_no_op),
    };
    const struct CMUnitTest live[] = {
        LIVE(live_reads_a_childs_buffer),
        LIVE(live_zero_length_read_succeeds),
        LIVE(live_read_of_unmapped_address_fails_cleanly),
        LIVE(live_readv_with_failing_middle_iov_counts_leading_ones),
        LIVE(live_readv_beyond_iov_max_reads_every_iov),
        cmocka_unit_test(live_reads_own_process),
        cmocka_unit_test(live_open_of_missing_pid_is_enoproc),
    };
    int failed = cmocka_run_group_tests_name("mem_fake", fake, NULL, NULL);
    failed += cmocka_run_group_tests_name("mem_live", live, live_group_setup, live_group_teardown);
    return failed ? 1 : 0;
}
