/*
 * test_elf.c — symbols/elf.c on files made to pin it: hand-built ELF files that pin the segment and
 * load-bias arithmetic, and damaged files that must never crash the reader (empty, text, random
 * bytes, 32-bit, truncated and mutated copies of real ones). The real interpreters themselves are
 * test_elf_real.c's. Tests whose file is absent print "SKIP <path>" and are skipped.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <elf.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "symbols/elf.h"
#include "tests/unit/elf_fixture.h"

/* ---- helpers ------------------------------------------------------------------------------ */

/* Reads up to max bytes of path into a malloc'd buffer; *len gets the count. */
static unsigned char *slurp(const char *path, size_t max, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    assert_true(fd >= 0);
    struct stat st;
    assert_int_equal(fstat(fd, &st), 0);
    size_t n = (size_t)st.st_size < max ? (size_t)st.st_size : max;
    unsigned char *buf = malloc(n ? n : 1);
    assert_non_null(buf);
    size_t got = 0;
    while (got < n) {
        ssize_t r = pread(fd, buf + got, n - got, (off_t)got);
        assert_true(r > 0);
        got += (size_t)r;
    }
    close(fd);
    *len = n;
    return buf;
}

/* Calls every entry point; on damaged files each must answer or fail, never crash. */
static bool exercise(const char *path)
{
    struct elf_file *ef = NULL;
    struct pt_err err = { 0 };
    if (elf_open(&ef, path, &err) != PT_OK) {
        assert_null(ef);
        assert_int_equal(err.code, PT_EFAIL);
        assert_non_null(strstr(err.msg, path));
        return false;
    }
    static const char *names[] = { "_PyRuntime", "Py_Version", "_Py_tss_tstate", "main", "" };
    uint64_t v, sz, start;
    for (size_t i = 0; i < sizeof names / sizeof *names; i++)
        (void)elf_symbol(ef, names[i], &v, &sz);
    (void)elf_section(ef, ".PyRuntime", &v, &sz);
    (void)elf_section(ef, ".text", &v, &sz);
    const char *name;
    bool exact;
    static const uint64_t addrs[] = { 0, 0x1000, 0x10bdca, 0x400000, UINT64_MAX };
    for (size_t i = 0; i < sizeof addrs / sizeof *addrs; i++)
        if (elf_nearest(ef, addrs[i], &name, &start, &exact) == 0)
            assert_non_null(name);
    struct elf_segment segs[16];
    int n = elf_segments(ef, segs, 16);
    unsigned char buf[64];
    for (int i = 0; i < n && i < 16; i++) {
        (void)elf_read_vaddr(ef, segs[i].vaddr, buf, sizeof buf);
        (void)elf_read_vaddr(ef, segs[i].vaddr + segs[i].memsz - 1, buf, 1);
        (void)elf_load_bias(ef, 0x7f0000000000, segs[i].offset);
    }
    char text[128];
    (void)elf_build_id(ef, text, sizeof text);
    (void)elf_debuglink(ef, text, sizeof text);
    (void)elf_is_dyn(ef);
    elf_close(ef);
    return true;
}

/* xorshift64: deterministic "random" bytes so a failure reproduces. */
static uint64_t rng_next(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* ---- a hand-built ELF ----------------------------------------------------------------------
 * ET_DYN, no section headers. Segment 0 maps file [0, 0x200) at vaddr 0 and holds a PT_NOTE
 * with a GNU build-id; segment 1 maps file [0x1010, 0x2810) at vaddr 0x3010 with memsz 0x3000,
 * so its tail is .bss. The vaddr/offset skew (0x2000) is what load-bias arithmetic must undo. */
#define FAB_SEG1_OFF 0x1010u
#define FAB_SEG1_VADDR 0x3010u
#define FAB_SEG1_FILESZ 0x1800u
#define FAB_SEG1_MEMSZ 0x3000u
#define FAB_SIZE (FAB_SEG1_OFF + FAB_SEG1_FILESZ)

static unsigned char fab_byte(size_t i) { return (unsigned char)(i * 7 + 3); }

static void fab_build(unsigned char *img, uint16_t type, unsigned char cls)
{
    memset(img, 0, FAB_SIZE);
    Elf64_Ehdr eh = {
        .e_ident = { ELFMAG0, ELFMAG1, ELFMAG2, ELFMAG3, cls, ELFDATA2LSB, EV_CURRENT },
        .e_type = type, .e_machine = EM_X86_64, .e_version = EV_CURRENT,
        .e_phoff = sizeof(Elf64_Ehdr), .e_ehsize = sizeof(Elf64_Ehdr),
        .e_phentsize = sizeof(Elf64_Phdr), .e_phnum = 4,
    };
    Elf64_Phdr ph[4] = {
        { .p_type = PT_LOAD, .p_flags = PF_R, .p_offset = 0, .p_vaddr = 0, .p_paddr = 0,
          .p_filesz = 0x200, .p_memsz = 0x200, .p_align = 0x1000 },
        { .p_type = PT_LOAD, .p_flags = PF_R | PF_W, .p_offset = FAB_SEG1_OFF,
          .p_vaddr = FAB_SEG1_VADDR, .p_paddr = FAB_SEG1_VADDR, .p_filesz = FAB_SEG1_FILESZ,
          .p_memsz = FAB_SEG1_MEMSZ, .p_align = 0x1000 },
        { .p_type = PT_NOTE, .p_flags = PF_R, .p_offset = 0x100, .p_vaddr = 0x100,
          .p_filesz = 20, .p_memsz = 20, .p_align = 4 },
        { .p_type = PT_GNU_STACK, .p_flags = PF_R | PF_W },
    };
    memcpy(img, &eh, sizeof eh);
    memcpy(img + sizeof eh, ph, sizeof ph);
    /* GNU build-id note: namesz 4, descsz 4, type 3, "GNU\0", de ad be ef. */
    static const unsigned char note[20] = { 4, 0, 0, 0, 4, 0, 0, 0, 3, 0, 0, 0,
                                            'G', 'N', 'U', 0, 0xde, 0xad, 0xbe, 0xef };
    memcpy(img + 0x100, note, sizeof note);
    memcpy(img + 0x1f8, "ABCDEFGH", 8);
    for (size_t i = 0; i < FAB_SEG1_FILESZ; i++)
        img[FAB_SEG1_OFF + i] = fab_byte(i);
}

static struct elf_file *fab_open(const char *name, uint16_t type, size_t cut)
{
    static unsigned char img[FAB_SIZE];
    char path[128];
    fab_build(img, type, ELFCLASS64);
    tmp_path(path, sizeof path, name);
    write_file(path, img, cut ? cut : FAB_SIZE);
    return open_ok(path);
}

/* ---- open errors -------------------------------------------------------------------------- */

static void test_open_missing_file_fails_naming_path(void **state)
{
    (void)state;
    struct elf_file *ef = (void *)1;
    struct pt_err err = { 0 };
    const char *path = "/nonexistent/pytrace/libpython.so";
    assert_int_equal(elf_open(&ef, path, &err), PT_EFAIL);
    assert_null(ef);
    assert_int_equal(err.code, PT_EFAIL);
    assert_non_null(strstr(err.msg, path));
    assert_null(strchr(err.msg, '\n'));
}

static void test_open_empty_and_text_files_fail_cleanly(void **state)
{
    (void)state;
    char path[128];
    tmp_path(path, sizeof path, "empty");
    write_file(path, "", 0);
    assert_false(exercise(path));
    tmp_path(path, sizeof path, "text");
    write_file(path, "#!/bin/sh\necho not an ELF file\n", 31);
    assert_false(exercise(path));
}

static void test_open_random_bytes_never_crashes(void **state)
{
    (void)state;
    char path[128];
    unsigned char buf[8192];
    uint64_t seed = 0x9e3779b97f4a7c15u;
    tmp_path(path, sizeof path, "random");
    for (int round = 0; round < 64; round++) {
        for (size_t i = 0; i < sizeof buf; i++)
            buf[i] = (unsigned char)rng_next(&seed);
        if (round & 1) /* half of them look like ELF64 LSB so libelf reads on into the headers */
            memcpy(buf, "\177ELF\2\1\1", 7);
        write_file(path, buf, 64 + (size_t)(rng_next(&seed) % (sizeof buf - 64)));
        (void)exercise(path);
    }
}

static void test_open_rejects_32bit_elf(void **state)
{
    (void)state;
    static unsigned char img[FAB_SIZE];
    char path[128];
    fab_build(img, ET_DYN, ELFCLASS32);
    tmp_path(path, sizeof path, "elf32");
    write_file(path, img, FAB_SIZE);
    struct elf_file *ef = NULL;
    struct pt_err err = { 0 };
    assert_int_equal(elf_open(&ef, path, &err), PT_EFAIL);
    assert_null(ef);
    assert_non_null(strstr(err.msg, path));
    assert_non_null(strstr(err.msg, "64-bit"));
}

/* ---- the hand-built file ------------------------------------------------------------------ */

static void test_read_vaddr_copies_file_bytes_and_zero_fills_bss(void **state)
{
    (void)state;
    struct elf_file *ef = fab_open("fab_dyn", ET_DYN, 0);
    unsigned char buf[32], want[32];

    assert_int_equal(elf_read_vaddr(ef, FAB_SEG1_VADDR, buf, 16), 0);
    for (size_t i = 0; i < 16; i++)
        want[i] = fab_byte(i);
    assert_memory_equal(buf, want, 16);

    /* Straddling p_filesz: 8 file bytes, then 8 bytes of .bss. */
    assert_int_equal(elf_read_vaddr(ef, FAB_SEG1_VADDR + FAB_SEG1_FILESZ - 8, buf, 16), 0);
    memset(want, 0, sizeof want);
    for (size_t i = 0; i < 8; i++)
        want[i] = fab_byte(FAB_SEG1_FILESZ - 8 + i);
    assert_memory_equal(buf, want, 16);

    memset(buf, 0xff, sizeof buf);
    assert_int_equal(elf_read_vaddr(ef, FAB_SEG1_VADDR + FAB_SEG1_MEMSZ - 8, buf, 8), 0);
    memset(want, 0, sizeof want);
    assert_memory_equal(buf, want, 8);

    assert_int_equal(elf_read_vaddr(ef, 0x1f8, buf, 8), 0);
    assert_memory_equal(buf, "ABCDEFGH", 8);
    assert_int_equal(elf_read_vaddr(ef, FAB_SEG1_VADDR, buf, 0), 0);

    /* Not wholly inside one segment. */
    assert_int_equal(elf_read_vaddr(ef, 0x1f8, buf, 9), -1);
    assert_int_equal(elf_read_vaddr(ef, 0x200, buf, 1), -1);
    assert_int_equal(elf_read_vaddr(ef, FAB_SEG1_VADDR - 1, buf, 2), -1);
    assert_int_equal(elf_read_vaddr(ef, FAB_SEG1_VADDR + FAB_SEG1_MEMSZ - 8, buf, 9), -1);
    assert_int_equal(elf_read_vaddr(ef, UINT64_MAX - 2, buf, 4), -1);
    assert_int_equal(elf_read_vaddr(ef, FAB_SEG1_VADDR, buf, SIZE_MAX), -1);
    elf_close(ef);
}

static void test_read_vaddr_fails_past_end_of_truncated_file(void **state)
{
    (void)state;
    struct elf_file *ef = fab_open("fab_cut", ET_DYN, FAB_SEG1_OFF + 0x100);
    unsigned char buf[16];
    assert_int_equal(elf_read_vaddr(ef, FAB_SEG1_VADDR + 0xf0, buf, 16), 0);
    assert_int_equal(elf_read_vaddr(ef, FAB_SEG1_VADDR + 0xf8, buf, 16), -1);
    assert_int_equal(elf_read_vaddr(ef, FAB_SEG1_VADDR + 0x400, buf, 16), -1);
    /* .bss needs no file bytes, so it still reads as zeros. */
    assert_int_equal(elf_read_vaddr(ef, FAB_SEG1_VADDR + FAB_SEG1_FILESZ, buf, 16), 0);
    elf_close(ef);
}

static void test_segments_list_only_pt_load(void **state)
{
    (void)state;
    struct elf_file *ef = fab_open("fab_segs", ET_DYN, 0);
    struct elf_segment segs[4];
    assert_int_equal(elf_segments(ef, segs, 4), 2);
    assert_int_equal(segs[1].vaddr, FAB_SEG1_VADDR);
    assert_int_equal(segs[1].offset, FAB_SEG1_OFF);
    assert_int_equal(segs[1].filesz, FAB_SEG1_FILESZ);
    assert_int_equal(segs[1].memsz, FAB_SEG1_MEMSZ);
    assert_true(segs[1].writable);
    assert_false(segs[1].executable);
    assert_false(segs[0].writable);
    memset(segs, 0, sizeof segs);
    assert_int_equal(elf_segments(ef, segs, 1), 2);   /* the count is the total, cap or not */
    assert_int_equal(segs[1].vaddr, 0);
    elf_close(ef);
}

static void test_file_without_sections_answers_from_program_headers(void **state)
{
    (void)state;
    struct elf_file *ef = fab_open("fab_nosec", ET_DYN, 0);
    char id[64];
    uint64_t v, sz;
    const char *name;
    bool exact;
    assert_int_equal(elf_build_id(ef, id, sizeof id), 0);   /* from PT_NOTE */
    assert_string_equal(id, "deadbeef");
    assert_int_equal(elf_build_id(ef, id, 8), -1);
    assert_int_equal(elf_debuglink(ef, id, sizeof id), -1);
    assert_int_equal(elf_section(ef, ".text", &v, &sz), -1);
    assert_int_equal(elf_symbol(ef, "main", &v, &sz), -1);
    assert_int_equal(elf_nearest(ef, 0x1000, &name, &v, &exact), -1);
    elf_close(ef);
}

static void test_load_bias_undoes_page_aligned_mapping(void **state)
{
    (void)state;
    if (sysconf(_SC_PAGESIZE) != 0x1000) {
        print_message("SKIP page size is not 4 KiB\n");
        skip();
    }
    struct elf_file *ef = fab_open("fab_bias", ET_DYN, 0);
    const uint64_t base = 0x7f0000000000u;
    assert_true(elf_is_dyn(ef));
    /* Segment 0: file page 0 -> vaddr page 0. */
    assert_int_equal(elf_load_bias(ef, base, 0), base);
    /* Segment 1: ld.so maps file page 0x1000 at bias + vaddr page 0x3000. */
    assert_int_equal(elf_load_bias(ef, base + 0x3000, 0x1000), base);
    /* A later maps line of the same segment (split by mprotect): file page 0x2000 at +0x4000. */
    assert_int_equal(elf_load_bias(ef, base + 0x4000, 0x2000), base);
    /* An offset no segment maps falls back to vaddr == offset. */
    assert_int_equal(elf_load_bias(ef, base + 0x9000, 0x9000), base);
    elf_close(ef);

    ef = fab_open("fab_exec", ET_EXEC, 0);
    assert_false(elf_is_dyn(ef));
    assert_int_equal(elf_load_bias(ef, 0x400000, 0), 0);
    assert_int_equal(elf_load_bias(ef, base + 0x3000, 0x1000), 0);
    elf_close(ef);
}

/* ---- damaged copies of real files --------------------------------------------------------- */

static const char *pick_real_elf(void)
{
    if (access(PY312_LIB, R_OK) == 0)
        return PY312_LIB;
    if (access(DEB311_BIN, R_OK) == 0)
        return DEB311_BIN;
    print_message("SKIP %s and %s\n", PY312_LIB, DEB311_BIN);
    skip();
    return NULL;
}

static void test_truncated_prefixes_never_crash(void **state)
{
    (void)state;
    const char *src = pick_real_elf();
    size_t len;
    unsigned char *head = slurp(src, 4096, &len);
    char path[128];
    tmp_path(path, sizeof path, "prefix");
    const Elf64_Ehdr *eh = (const void *)head;
    size_t phend = eh->e_phoff + eh->e_phentsize * (size_t)eh->e_phnum;
    size_t extra[] = { EI_NIDENT, sizeof(Elf64_Ehdr) - 1, sizeof(Elf64_Ehdr),
                       sizeof(Elf64_Ehdr) + 1, phend - 1, phend, 4096 };
    for (size_t cut = 0; cut <= len; cut += 61) {
        write_file(path, head, cut);
        (void)exercise(path);
    }
    for (size_t i = 0; i < sizeof extra / sizeof *extra; i++) {
        if (extra[i] > len)
            continue;
        write_file(path, head, extra[i]);
        (void)exercise(path);
    }
    free(head);
}

/* Cuts the whole file inside its later parts: section data, .symtab, the section header table. */
static void test_truncated_tails_never_crash(void **state)
{
    (void)state;
    need_file(DEB311_BIN);
    size_t len;
    unsigned char *img = slurp(DEB311_BIN, SIZE_MAX, &len);
    const Elf64_Ehdr *eh = (const void *)img;
    assert_true(len > sizeof *eh && eh->e_shoff < len);
    size_t cuts[] = { len / 3, len / 2, eh->e_shoff - 1, eh->e_shoff + 1,
                      eh->e_shoff + eh->e_shentsize * 3u + 7, len - 1 };
    char path[128];
    tmp_path(path, sizeof path, "tail");
    for (size_t i = 0; i < sizeof cuts / sizeof *cuts; i++) {
        write_file(path, img, cuts[i]);
        (void)exercise(path);
    }
    free(img);
}

/* Flips bytes in the headers of a small real ELF (seeded, so a crash reproduces). */
static void test_mutated_headers_never_crash(void **state)
{
    (void)state;
    const char *src = "/bin/true";
    need_file(src);
    size_t len;
    unsigned char *orig = slurp(src, SIZE_MAX, &len);
    unsigned char *img = malloc(len);
    assert_non_null(img);
    const Elf64_Ehdr *eh = (const void *)orig;
    assert_true(len > sizeof *eh && eh->e_shoff < len && eh->e_phoff < len);
    char path[128];
    tmp_path(path, sizeof path, "mutant");
    uint64_t seed = 12345;
    int opened = 0;
    for (int round = 0; round < 400; round++) {
        memcpy(img, orig, len);
        int flips = 1 + (int)(rng_next(&seed) % 8);
        for (int f = 0; f < flips; f++) {
            uint64_t r = rng_next(&seed);
            size_t at;
            switch (r % 4) {
            case 0: at = r / 4 % sizeof *eh; break;
            case 1: at = eh->e_phoff + r / 4 % (eh->e_phentsize * (size_t)eh->e_phnum); break;
            case 2: at = eh->e_shoff + r / 4 % (len - eh->e_shoff); break;
            default: at = r / 4 % len; break;
            }
            img[at] = (unsigned char)rng_next(&seed);
        }
        write_file(path, img, len);
        opened += exercise(path);
    }
    print_message("mutants opened: %d of 400\n", opened);
    free(img);
    free(orig);
}

/* ---- main --------------------------------------------------------------------------------- */

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_open_missing_file_fails_naming_path),
        cmocka_unit_test(test_open_empty_and_text_files_fail_cleanly),
        cmocka_unit_test(test_open_random_bytes_never_crashes),
        cmocka_unit_test(test_open_rejects_32bit_elf),
        cmocka_unit_test(test_read_vaddr_copies_file_bytes_and_zero_fills_bss),
        cmocka_unit_test(test_read_vaddr_fails_past_end_of_truncated_file),
        cmocka_unit_test(test_segments_list_only_pt_load),
        cmocka_unit_test(test_file_without_sections_answers_from_program_headers),
        cmocka_unit_test(test_load_bias_undoes_page_aligned_mapping),
        cmocka_unit_test(test_truncated_prefixes_never_crash),
        cmocka_unit_test(test_truncated_tails_never_crash),
        cmocka_unit_test(test_mutated_headers_never_crash),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
