/*
 * elf_fixture.h — what test_elf.c and test_elf_real.c share: where this machine's interpreters
 * live, a scratch directory for the cmocka group, skipping a test whose file is absent ("SKIP
 * <path>"), and an elf_open that fails the test with the library's message. Test code; every
 * helper is static inline.
 */
#ifndef PT_TESTS_ELF_FIXTURE_H
#define PT_TESTS_ELF_FIXTURE_H

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "symbols/elf.h"

#define PY312_LIB "/root/.pyenv/versions/3.12.1/lib/libpython3.12.so.1.0"
#define PY312_BIN "/root/.pyenv/versions/3.12.1/bin/python"
#define PY27_LIB "/root/.pyenv/versions/2.7.18/lib/libpython2.7.so.1.0"
#define DEB311_BIN "/usr/bin/python3.11"

static char tmpdir[64];

static inline void need_file(const char *path)
{
    if (access(path, R_OK) != 0) {
        print_message("SKIP %s\n", path);
        skip();
    }
}

static inline void tmp_path(char *out, size_t cap, const char *name)
{
    snprintf(out, cap, "%s/%s", tmpdir, name);
}

static inline void write_file(const char *path, const void *buf, size_t len)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, buf, len), (ssize_t)len);
    close(fd);
}

static inline struct elf_file *open_ok(const char *path)
{
    struct elf_file *ef = NULL;
    struct pt_err err = { 0 };
    enum pt_status st = elf_open(&ef, path, &err);
    if (st != PT_OK)
        print_message("elf_open(%s): %s\n", path, err.msg);
    assert_int_equal(st, PT_OK);
    assert_non_null(ef);
    return ef;
}

static inline int group_setup(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof tmpdir, "/tmp/test_elf.XXXXXX");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static inline int group_teardown(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

#endif
