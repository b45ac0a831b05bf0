/*
 * per_layout.h — runs a test program's cmocka tests once for each layout in py_layouts_gen[], each
 * pass as its own group named "<name>_cpython_X.Y", with the program's `cur` set to that layout:
 * the reader tests over fake processes (fakepy.c) are one test written once for every version.
 * Include after cmocka.h.
 */
#ifndef PT_TESTS_PER_LAYOUT_H
#define PT_TESTS_PER_LAYOUT_H

#include <stdio.h>

#include "readers/layout.h"

static inline int per_layout_run(const char *name, const struct CMUnitTest *tests, size_t n,
                                 const struct py_layout **cur)
{
    int failed = 0;
    for (size_t i = 0; i < py_layouts_gen_count; i++) {
        char group[64];
        *cur = &py_layouts_gen[i];
        snprintf(group, sizeof group, "%s_cpython_%d.%d", name, (*cur)->major, (*cur)->minor);
        print_message("[ LAYOUT   ] CPython %d.%d (group %s)\n", (*cur)->major, (*cur)->minor,
                      group);
        failed += _cmocka_run_group_tests(group, tests, n, NULL, NULL);
    }
    return failed ? 1 : 0;
}

#define PER_LAYOUT_RUN(name, tests, cur) \
    per_layout_run(name, tests, sizeof(tests) / sizeof((tests)[0]), &(cur))

#endif
