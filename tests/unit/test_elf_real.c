/*
 * test_elf_real.c — symbols/elf.c against the real interpreters on this machine (pyenv 3.12 and 2.7
 * libpython, Debian's static non-PIE python3.11, a stripped copy), small binaries built with the
 * system compiler (an alias, a static twin), a live 3.12 process, and the cost of elf_open. Tests
 * whose file is absent print "SKIP <path>" and are skipped.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "symbols/elf.h"
#include "tests/unit/elf_fixture.h"

/* ---- helpers ------------------------------------------------------------------------------ */

static uint64_t sym_value(struct elf_file *ef, const char *name)
{
    uint64_t v = 0, sz = 0;
    if (elf_symbol(ef, name, &v, &sz) != 0)
        fail_msg("symbol %s not found in %s", name, elf_path(ef));
    return v;
}

/* Build-id as readelf prints it, or "" when readelf is unavailable. */
static void readelf_build_id(const char *path, char *out, size_t cap)
{
    char cmd[512], line[512];
    out[0] = '\0';
    snprintf(cmd, sizeof cmd, "readelf -n '%s' 2>/dev/null", path);
    FILE *p = popen(cmd, "r");
    if (!p)
        return;
    while (fgets(line, sizeof line, p)) {
        const char *b = strstr(line, "Build ID: ");
        if (b && sscanf(b + 10, "%127s", out) == 1 && strlen(out) < cap)
            break;
        out[0] = '\0';
    }
    pclose(p);
}

static void check_build_id(struct elf_file *ef)
{
    char id[128], want[128];
    assert_int_equal(elf_build_id(ef, id, sizeof id), 0);
    assert_int_equal(strlen(id), 40);
    assert_int_equal(strspn(id, "0123456789abcdef"), 40);
    readelf_build_id(elf_path(ef), want, sizeof want);
    if (want[0])
        assert_string_equal(id, want);
    assert_int_equal(elf_build_id(ef, id, 40), -1);   /* no room for the NUL */
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* ---- real interpreters -------------------------------------------------------------------- */

static void test_py312_runtime_tls_section_and_nearest(void **state)
{
    (void)state;
    need_file(PY312_LIB);
    struct elf_file *ef = open_ok(PY312_LIB);
    uint64_t v, sz, addr, secsz, start;
    assert_true(elf_is_dyn(ef));
    assert_string_equal(elf_path(ef), PY312_LIB);

    assert_int_equal(elf_symbol(ef, "_PyRuntime", &v, &sz), 0);
    assert_true(sz > 0);
    assert_int_equal(elf_section(ef, ".PyRuntime", &addr, &secsz), 0);
    assert_int_equal(v, addr);
    assert_true(secsz >= sz);

    /* Local TLS symbol, only in .symtab; its value is an offset into the TLS block. */
    assert_int_equal(elf_symbol(ef, "_Py_tss_tstate", &v, &sz), 0);
    assert_int_equal(sz, 8);
    assert_true(v < 0x1000);

    assert_int_equal(elf_symbol(ef, "no_such_symbol_in_libpython", &v, &sz), -1);
    assert_int_equal(elf_section(ef, ".no_such_section", &addr, &secsz), -1);

    uint64_t eval = sym_value(ef, "_PyEval_EvalFrameDefault");
    const char *name = NULL;
    bool exact = false;
    assert_int_equal(elf_nearest(ef, eval + 10, &name, &start, &exact), 0);
    assert_string_equal(name, "_PyEval_EvalFrameDefault");
    assert_int_equal(start, eval);
    assert_true(exact);
    assert_int_equal(elf_nearest(ef, eval, &name, &start, &exact), 0);
    assert_string_equal(name, "_PyEval_EvalFrameDefault");
    assert_int_equal(elf_nearest(ef, UINT64_MAX, &name, &start, &exact), 0);
    assert_false(exact);
    assert_int_equal(elf_nearest(ef, 0, &name, &start, &exact), -1);

    /* .symtab lists a size-0 "long_richcompare.cold" label before the sized
     * "_PyMem_SetupAllocators.cold" at the same address: the sized symbol names the address. */
    uint64_t cold = sym_value(ef, "_PyMem_SetupAllocators.cold");
    assert_int_equal(sym_value(ef, "long_richcompare.cold"), cold);
    assert_int_equal(elf_nearest(ef, cold + 1, &name, &start, &exact), 0);
    assert_string_equal(name, "_PyMem_SetupAllocators.cold");
    assert_true(exact);

    /* Py_Version is PY_VERSION_HEX: 0x030C01F0 for 3.12.1. */
    unsigned char ver[4];
    assert_int_equal(elf_read_vaddr(ef, sym_value(ef, "Py_Version"), ver, 4), 0);
    assert_int_equal(ver[3], 3);
    assert_int_equal(ver[2], 12);

    struct elf_segment segs[8];
    assert_int_equal(elf_segments(ef, segs, 8), 4);
    check_build_id(ef);
    elf_close(ef);
}

static void test_py27_local_interp_head_from_symtab(void **state)
{
    (void)state;
    need_file(PY27_LIB);
    struct elf_file *ef = open_ok(PY27_LIB);
    uint64_t v, sz;
    assert_int_equal(elf_symbol(ef, "interp_head", &v, &sz), 0);
    assert_true(v != 0);
    assert_int_equal(sz, 8);
    assert_int_equal(elf_symbol(ef, "_PyThreadState_Current", &v, &sz), 0);
    assert_true(v != 0);
    assert_int_equal(elf_symbol(ef, "_PyRuntime", &v, &sz), -1);
    elf_close(ef);
}

static void test_debian_python311_static_exec_via_dynsym(void **state)
{
    (void)state;
    need_file(DEB311_BIN);
    struct elf_file *ef = open_ok(DEB311_BIN);
    uint64_t v, sz, addr, secsz;
    assert_false(elf_is_dyn(ef));
    assert_int_equal(elf_load_bias(ef, 0x400000, 0), 0);
    assert_int_equal(elf_section(ef, ".symtab", &addr, &secsz), -1);
    assert_int_equal(elf_symbol(ef, "_PyRuntime", &v, &sz), 0);
    assert_true(v >= 0x400000);

    unsigned char ver[4];
    assert_int_equal(elf_read_vaddr(ef, sym_value(ef, "Py_Version"), ver, 4), 0);
    assert_int_equal(ver[3], 3);
    assert_int_equal(ver[2], 11);

    check_build_id(ef);
    char link[256];
    assert_int_equal(elf_debuglink(ef, link, sizeof link), 0);
    assert_true(strlen(link) > 0);
    assert_int_equal(elf_debuglink(ef, link, strlen(link)), -1);   /* no room for the NUL */

    /* Exported functions come from .dynsym alone. */
    uint64_t fn = sym_value(ef, "PyThread_get_thread_ident");
    const char *name;
    bool exact;
    assert_int_equal(elf_nearest(ef, fn, &name, &v, &exact), 0);
    assert_string_equal(name, "PyThread_get_thread_ident");
    assert_true(exact);
    elf_close(ef);
}

static void test_stripped_py312_keeps_dynsym_and_section(void **state)
{
    (void)state;
    need_file(PY312_LIB);
    char path[128], cmd[512];
    tmp_path(path, sizeof path, "libpython3.12-stripped.so");
    snprintf(cmd, sizeof cmd, "strip -o '%s' '%s' 2>/dev/null", path, PY312_LIB);
    if (system(cmd) != 0) {
        print_message("SKIP strip unavailable\n");
        skip();
    }
    struct elf_file *ef = open_ok(path);
    uint64_t v, sz, addr, secsz;
    assert_int_equal(elf_symbol(ef, "_PyRuntime", &v, &sz), 0);
    assert_int_equal(elf_symbol(ef, "_Py_tss_tstate", &v, &sz), -1);
    assert_int_equal(elf_section(ef, ".PyRuntime", &addr, &secsz), 0);
    assert_int_equal(addr, sym_value(ef, "_PyRuntime"));
    assert_int_equal(elf_section(ef, ".symtab", &addr, &secsz), -1);
    check_build_id(ef);
    elf_close(ef);
    unlink(path);
}

/* Compiles C sources (each a string) into tmpdir/out with the system compiler, or skips. */
static void build_c(const char *out, const char *flags, const char *const *srcs, int n, char *bin,
                    size_t cap)
{
    char cmd[1024], src[128];
    tmp_path(bin, cap, out);
    int len = snprintf(cmd, sizeof cmd, "cc -O1 %s -o '%s'", flags, bin);
    for (int i = 0; i < n; i++) {
        char name[64];
        snprintf(name, sizeof name, "%s_%d.c", out, i);
        tmp_path(src, sizeof src, name);
        write_file(src, srcs[i], strlen(srcs[i]));
        len += snprintf(cmd + len, sizeof cmd - (size_t)len, " '%s'", src);
    }
    snprintf(cmd + len, sizeof cmd - (size_t)len, " 2>/dev/null");
    if (system(cmd) != 0) {
        print_message("SKIP no C compiler to build %s\n", bin);
        skip();
    }
}

/* A LOCAL function and its GLOBAL alias share an address, and .symtab always lists locals
 * first: elf_nearest must still name the GLOBAL one. */
static void test_nearest_prefers_global_alias(void **state)
{
    (void)state;
    static const char *const srcs[] = {
        "static int hidden_impl(int x) { return x + 1; }\n"
        "int public_name(int x) __attribute__((alias(\"hidden_impl\")));\n"
        "int main(int argc, char **argv) { (void)argv; return public_name(argc); }\n",
    };
    char bin[128];
    build_c("alias", "", srcs, 1, bin, sizeof bin);
    struct elf_file *ef = open_ok(bin);
    uint64_t impl = sym_value(ef, "hidden_impl"), start;
    assert_int_equal(sym_value(ef, "public_name"), impl);
    const char *name;
    bool exact;
    assert_int_equal(elf_nearest(ef, impl, &name, &start, &exact), 0);
    assert_string_equal(name, "public_name");
    assert_int_equal(start, impl);
    assert_true(exact);
    elf_close(ef);
}

/* A static "twin" in one file and an exported "twin" in another: by name, the exported one
 * (.dynsym) wins over the .symtab local, which is what a stripped copy also answers. */
static void test_symbol_prefers_dynsym_over_symtab_local(void **state)
{
    (void)state;
    static const char *const srcs[] = {
        "static __attribute__((noinline, used)) int twin(int x) { return x * 3; }\n"
        "int call_a(int x) { return twin(x); }\n",
        "int twin(int x) { return x + 2; }\n",
    };
    char lib[128], stripped[128], cmd[512];
    build_c("libtwin.so", "-shared -fPIC", srcs, 2, lib, sizeof lib);
    tmp_path(stripped, sizeof stripped, "libtwin-stripped.so");
    snprintf(cmd, sizeof cmd, "strip -o '%s' '%s' 2>/dev/null", stripped, lib);
    if (system(cmd) != 0) {
        print_message("SKIP strip unavailable\n");
        skip();
    }
    struct elf_file *full = open_ok(lib), *dyn = open_ok(stripped);
    assert_int_equal(sym_value(full, "twin"), sym_value(dyn, "twin"));
    /* The local twin is still there for elf_nearest, at its own address. */
    const char *name;
    uint64_t start;
    bool exact;
    assert_int_equal(elf_nearest(full, sym_value(full, "call_a"), &name, &start, &exact), 0);
    assert_string_equal(name, "call_a");
    elf_close(full);
    elf_close(dyn);
}

/* ---- a live process ----------------------------------------------------------------------- */

/* Parses "start-end perms offset dev inode path"; returns the path or NULL. */
static const char *maps_line(char *line, uint64_t *start, uint64_t *offset)
{
    uint64_t end;
    int n = 0;
    if (sscanf(line, "%" SCNx64 "-%" SCNx64 " %*4s %" SCNx64 " %*s %*s %n", start, &end, offset,
               &n) < 3 || n == 0)
        return NULL;
    line[strcspn(line, "\n")] = '\0';
    return line + n;
}

static void test_load_bias_matches_live_python312(void **state)
{
    (void)state;
    need_file(PY312_LIB);
    need_file(PY312_BIN);
    int in[2], out[2];
    assert_int_equal(pipe2(in, O_CLOEXEC), 0);
    assert_int_equal(pipe2(out, O_CLOEXEC), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        dup2(in[0], 0);
        dup2(out[1], 1);
        /* Says "ready" once ld.so has mapped and relocated libpython, then blocks on stdin. */
        execl(PY312_BIN, PY312_BIN, "-c",
              "import sys; sys.stdout.write('r'); sys.stdout.flush(); sys.stdin.read()",
              (char *)NULL);
        _exit(127);
    }
    close(in[0]);
    close(out[1]);
    char ready = 0;
    assert_int_equal(read(out[0], &ready, 1), 1);
    assert_int_equal(ready, 'r');

    struct elf_file *ef = open_ok(PY312_LIB);
    char maps[64], mem[64], line[1024];
    snprintf(maps, sizeof maps, "/proc/%d/maps", (int)pid);
    snprintf(mem, sizeof mem, "/proc/%d/mem", (int)pid);
    FILE *f = fopen(maps, "r");
    assert_non_null(f);
    uint64_t bias = 0;
    int lines = 0;
    bool have_offset0 = false;
    while (fgets(line, sizeof line, f)) {
        uint64_t start, offset;
        const char *p = maps_line(line, &start, &offset);
        const char *base = p ? strrchr(p, '/') : NULL;
        if (!base || strcmp(base, "/libpython3.12.so.1.0") != 0)
            continue;
        uint64_t b = elf_load_bias(ef, start, offset);
        if (offset == 0) {
            have_offset0 = true;
            assert_int_equal(b, start);   /* first segment has p_vaddr 0 */
        }
        if (lines++ == 0)
            bias = b;
        assert_int_equal(b, bias);   /* every line of the library agrees, split ones too */
    }
    fclose(f);
    assert_true(have_offset0);
    assert_true(lines >= 4);

    int fd = open(mem, O_RDONLY | O_CLOEXEC);
    assert_true(fd >= 0);
    /* Read-only data and code are never relocated in a PIC library: live bytes == file bytes. */
    static const struct { const char *name; size_t len; } ro[] = {
        { "Py_Version", 8 }, { "_PyEval_EvalFrameDefault", 32 },
    };
    for (size_t i = 0; i < sizeof ro / sizeof *ro; i++) {
        unsigned char live[32], file[32];
        uint64_t v = sym_value(ef, ro[i].name);
        assert_int_equal(pread(fd, live, ro[i].len, (off_t)(bias + v)), (ssize_t)ro[i].len);
        assert_int_equal(elf_read_vaddr(ef, v, file, ro[i].len), 0);
        assert_memory_equal(live, file, ro[i].len);
    }
    /* _PyRuntime is writable data the runtime has changed, but at bias + value it must map. */
    unsigned char rt[8];
    assert_int_equal(pread(fd, rt, sizeof rt, (off_t)(bias + sym_value(ef, "_PyRuntime"))), 8);
    close(fd);
    elf_close(ef);

    close(in[1]);   /* EOF on stdin lets python exit */
    close(out[0]);
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

/* ---- cost --------------------------------------------------------------------------------- */

static void time_open(const char *path)
{
    if (access(path, R_OK) != 0) {
        print_message("SKIP %s\n", path);
        return;
    }
    double best = 1e9;
    for (int i = 0; i < 5; i++) {
        double t0 = now_ms();
        struct elf_file *ef = open_ok(path);
        double t = now_ms() - t0;
        elf_close(ef);
        best = t < best ? t : best;
    }
    print_message("elf_open %s: %.2f ms (best of 5)\n", path, best);
    assert_true(best < 1000);   /* sanitizers slow this ~5x; the point is no pathological cost */
}

static void test_open_indexes_symbols_quickly(void **state)
{
    (void)state;
    time_open(PY312_LIB);
    time_open(DEB311_BIN);
    time_open(PY27_LIB);
}

/* ---- main --------------------------------------------------------------------------------- */

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_py312_runtime_tls_section_and_nearest),
        cmocka_unit_test(test_py27_local_interp_head_from_symtab),
        cmocka_unit_test(test_debian_python311_static_exec_via_dynsym),
        cmocka_unit_test(test_stripped_py312_keeps_dynsym_and_section),
        cmocka_unit_test(test_nearest_prefers_global_alias),
        cmocka_unit_test(test_symbol_prefers_dynsym_over_symtab_local),
        cmocka_unit_test(test_load_bias_matches_live_python312),
        cmocka_unit_test(test_open_indexes_symbols_quickly),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
