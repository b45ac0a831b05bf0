/*
 * elf.h — symbols and sections of the target's executable and libpython, via libelf.
 *
 * An elf_file is opened from a path (always through /proc/PID/root/... so that a sidecar in
 * another mount namespace sees the target's own files). Lookups return link-time addresses; the
 * runtime address is load bias (from /proc/PID/maps) + link-time address, see elf_load_bias().
 * Symbol lookup tries .dynsym first and then .symtab (where local symbols such as 2.7's
 * interp_head and 3.12's _Py_tss_tstate live); stripped files simply have no .symtab.
 */
#ifndef PT_ELF_H
#define PT_ELF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/err.h"

struct elf_file;

/* Opens path. PT_EFAIL with a message naming the path when it is unreadable or not ELF. */
enum pt_status elf_open(struct elf_file **out, const char *path, struct pt_err *err);
void elf_close(struct elf_file *ef);

/* Finds a symbol (any binding, any type) by exact name; returns 0 and fills value/size, or -1. */
int elf_symbol(struct elf_file *ef, const char *name, uint64_t *value, uint64_t *size);

/* Finds a section by name; returns 0 and fills its link-time address and size, or -1. */
int elf_section(struct elf_file *ef, const char *name, uint64_t *addr, uint64_t *size);

/* Reads len bytes at link-time address vaddr from the file's contents (any PT_LOAD segment with
 * file bytes; .bss reads as zeros). Returns 0, or -1 when not wholly inside one segment. */
int elf_read_vaddr(struct elf_file *ef, uint64_t vaddr, void *buf, size_t len);

/* ELF type is ET_DYN (shared library or PIE) — i.e. it is relocated at load time. */
bool elf_is_dyn(struct elf_file *ef);

/*
 * Load bias given the runtime start address of the mapping that maps file offset `map_offset`
 * (a line of /proc/PID/maps for this file). For ET_EXEC files the bias is 0.
 */
uint64_t elf_load_bias(struct elf_file *ef, uint64_t map_start, uint64_t map_offset);

/* A PT_LOAD segment's link-time range and flags. */
struct elf_segment {
    uint64_t vaddr;
    uint64_t memsz;
    uint64_t filesz;
    uint64_t offset;
    bool writable;
    bool executable;
};

/* Fills up to cap PT_LOAD segments; returns how many there are in all. */
int elf_segments(struct elf_file *ef, struct elf_segment *out, int cap);

/* GNU build-id as lowercase hex into out (cap >= 41 for SHA-1); returns 0 or -1 if none. */
int elf_build_id(struct elf_file *ef, char *out, size_t cap);

/* .gnu_debuglink file name into out; returns 0 or -1 if none. */
int elf_debuglink(struct elf_file *ef, char *out, size_t cap);

/*
 * Nearest symbol at or below link-time address addr among function symbols of .symtab/.dynsym,
 * for native symbolization. Returns 0 and fills name (borrowed, lives as long as ef), the symbol's
 * start, and *exact (addr lies within the symbol's st_size); -1 when none.
 */
int elf_nearest(struct elf_file *ef, uint64_t addr, const char **name, uint64_t *start, bool *exact);

/* The path ef was opened from. */
const char *elf_path(const struct elf_file *ef);

#endif
