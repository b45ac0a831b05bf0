/*
 * fuzz_readers.c — libFuzzer target over the readers: the input is a target's memory. It becomes
 * one fake region at FUZZ_BASE that holds _PyRuntime (or interp_head) for a layout chosen by the
 * first byte, and py_walk() runs over it; the same bytes also go through every line-table decoder
 * and the string converters, and the walked frames' variables and objects at input-chosen
 * addresses are rendered as --locals would. Anything the walker reads from the input is
 * attacker-controlled: cycles, wild pointers, giant lengths must end in a marked-bad result, never
 * a crash or a hang.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "readers/linetable.h"
#include "readers/locals.h"
#include "readers/pyrepr.h"
#include "readers/pystr.h"
#include "readers/walk.h"

#define FUZZ_BASE 0x10000ULL

static void fuzz_linetables(const uint8_t *data, size_t size)
{
    static struct lt_range ranges[4096];
    size_t n;
    for (int kind = PY_LT_LNOTAB27; kind <= PY_LT_LOCATIONS; kind++) {
        lt_decode((enum py_linetable_kind)kind, data, size, 1, ranges, 4096, &n);
        if (n)
            (void)lt_line_at(ranges, n, (uint32_t)(data[0] * 2));
    }
}

static void fuzz_strings(const uint8_t *data, size_t size)
{
    char out[256];
    pystr_bytes_to_utf8(data, size, out, sizeof out);
    pystr_to_utf8(data, size, 1, out, sizeof out);
    pystr_to_utf8(data, size / 2, 2, out, sizeof out);
    pystr_to_utf8(data, size / 4, 4, out, sizeof out);
}

/* Every walked frame's variables, and objects at addresses the input picks (--locals). */
static void fuzz_locals(struct py_proc *p, const struct py_snapshot *s, const uint8_t *data,
                        size_t size)
{
    static struct py_locals out;
    struct pt_err err;
    for (uint32_t i = 0; i < s->nframes && i < 64; i++)
        if (s->frames[i].code)
            py_locals_read(p, NULL, &s->frames[i], NULL, &out, &err);
    char buf[PYREPR_MAX];
    for (size_t k = 0; k + 1 < size && k < 32; k += 2) {
        uint64_t off = ((uint64_t)data[k] | (uint64_t)data[k + 1] << 8) * 8;
        pyrepr(p, FUZZ_BASE + off % size, buf, sizeof buf);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    fuzz_linetables(data + 1, size - 1);
    fuzz_strings(data + 1, size - 1);

    const struct py_layout *L = &py_layouts_gen[data[0] % py_layouts_gen_count];
    struct mem_src *mem = mem_fake_new();
    if (!mem)
        return 0;
    mem_fake_add(mem, FUZZ_BASE, data + 1, size - 1);
    struct py_version v = {L->major, L->minor, 0, 0};
    bool has_runtime = L->rt_interpreters_head >= 0;
    struct py_proc *p = py_proc_from_mem(mem, L, &v, has_runtime ? FUZZ_BASE : 0,
                                         has_runtime ? 0 : FUZZ_BASE);
    if (!p)
        return 0;
    struct py_snapshot s;
    py_snapshot_init(&s);
    py_walk(p, &s, 0, NULL);
    py_walk(p, &s, 0, NULL);   /* again, through the warm code cache */
    fuzz_locals(p, &s, data + 1, size - 1);
    py_snapshot_free(&s);
    py_proc_close(p);
    return 0;
}
