/*
 * privfile.h — files only their owner can read. Traces and everything derived from them
 * (exports, HTML views) can hold secrets, so pytrace creates them 0600, and narrows an existing
 * file it overwrites to 0600 as well.
 */
#ifndef PT_PRIVFILE_H
#define PT_PRIVFILE_H

#include <stdio.h>

/* fopen(path, "w") with mode 0600; NULL and errno on failure. */
FILE *privfile_open(const char *path);

#endif
