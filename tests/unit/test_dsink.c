/*
 * test_dsink.c — the daemon's bookkeeping that needs no target: --max-disk deletes the oldest
 * finished files first (by modification time, across date folders), never an open file, and
 * removes date folders it empties; the push queue counts every file it could not deliver exactly
 * once per sink (queue full, load failure, shutdown), and stopping never hangs.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "output/dsink.h"
#include "output/push.h"

static void make_file(const char *path, size_t bytes, time_t mtime)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    for (size_t i = 0; i < bytes; i++)
        fputc('x', f);
    fclose(f);
    struct timespec ts[2] = {{mtime, 0}, {mtime, 0}};
    assert_int_equal(utimensat(AT_FDCWD, path, ts, 0), 0);
}

static bool exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

static void enforce_disk_deletes_oldest_finished_first_and_prunes_folders(void **state)
{
    (void)state;
    char dir[] = "/tmp/test_dsink_XXXXXX", p[5][700], sub[600];
    assert_non_null(mkdtemp(dir));
    snprintf(sub, sizeof sub, "%s/2026_01_01_00_00_00", dir);
    assert_int_equal(mkdir(sub, 0700), 0);
    snprintf(p[0], sizeof p[0], "%s/a-0000.pytrace", sub);     /* oldest, alone in its folder */
    snprintf(p[1], sizeof p[1], "%s/b-0000.pytrace", dir);     /* second oldest, but open */
    snprintf(p[2], sizeof p[2], "%s/c-0001.pytrace", dir);
    snprintf(p[3], sizeof p[3], "%s/d-0002.pytrace", dir);     /* newest */
    snprintf(p[4], sizeof p[4], "%s/notes.txt", dir);          /* not a trace: never counted */
    make_file(p[0], 1000, 1000);
    make_file(p[1], 1000, 2000);
    make_file(p[2], 1000, 3000);
    make_file(p[3], 1000, 4000);
    make_file(p[4], 5000, 500);
    const char *open[] = {p[1]};
    uint64_t deleted = 0;
    assert_int_equal(dsink_enforce_disk(dir, 0, open, 1, &deleted, NULL, NULL), 4000);
    assert_int_equal(deleted, 0);
    assert_int_equal(dsink_enforce_disk(dir, 2500, open, 1, &deleted, NULL, NULL), 2000);
    assert_int_equal(deleted, 2);
    assert_false(exists(p[0]));
    assert_false(exists(sub));            /* the emptied date folder went too */
    assert_true(exists(p[1]));            /* open: kept although older */
    assert_false(exists(p[2]));
    assert_true(exists(p[3]));
    assert_true(exists(p[4]));
    unlink(p[1]);
    unlink(p[3]);
    unlink(p[4]);
    rmdir(dir);
}

static void push_counts_each_undelivered_file_once_per_sink(void **state)
{
    (void)state;
    /* Nothing listens on port 1; the files do not exist either: every file is dropped by both
     * sinks, whether it was refused by the full queue, failed to load, or was abandoned. */
    struct push_opts o = {
        .otlp_url = "http://127.0.0.1:1/v1/traces", .pprof_url = "http://127.0.0.1:1",
        .queue_cap = 2, .attempts = 1, .timeout_s = 1,
    };
    struct push *p;
    struct pt_err err;
    assert_int_equal(push_new(&p, &o, &err), PT_OK);
    int n = 20;
    for (int i = 0; i < n; i++)
        push_file(p, "/nonexistent/pytrace-test.pytrace");
    struct push_stats st;
    push_stop(p, 2000000000ULL, &st);
    assert_int_equal(st.queued + st.queue_full, n);
    for (int k = 0; k < PUSH_KINDS; k++) {
        assert_int_equal(st.k[k].sent, 0);
        assert_int_equal(st.k[k].dropped, n);
    }
}

static void push_without_sinks_accepts_and_does_nothing(void **state)
{
    (void)state;
    struct push_opts o = {0};
    struct push *p;
    struct pt_err err;
    assert_int_equal(push_new(&p, &o, &err), PT_OK);
    assert_true(push_file(p, "/x.pytrace"));
    struct push_stats st;
    push_stop(p, 0, &st);
    assert_int_equal(st.queued, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(enforce_disk_deletes_oldest_finished_first_and_prunes_folders),
        cmocka_unit_test(push_counts_each_undelivered_file_once_per_sink),
        cmocka_unit_test(push_without_sinks_accepts_and_does_nothing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
