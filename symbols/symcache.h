/*
 * symcache.h — names for native instruction addresses of one process, from our own ELF tables.
 *
 * A sym_cache belongs to one target process. It knows the process's executable mappings (from
 * /proc/PID/maps, re-read when an address falls outside every known one) and opens each mapped
 * module once, on the first address that lands in it, through /proc/PID/root (or map_files).
 * Modules are keyed by path and inode (a library replaced on disk is a new module). Its separate
 * debug file is used too when present: /usr/lib/debug/.build-id/xx/yyyy.debug first, then the
 * .gnu_debuglink name beside the file, in its .debug/ and under /usr/lib/debug/<dir>/. C++ names
 * are demangled (libstdc++'s __cxa_demangle). A name that is only the nearest symbol below the
 * address, outside that symbol's size (a static function of a stripped module such as Debian's
 * python3.11, which keeps only its exports), is flagged approximate.
 */
#ifndef PT_SYMCACHE_H
#define PT_SYMCACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "util/err.h"

struct sym_cache;

/* A resolved address. Strings are owned by the cache and live until symcache_close. */
struct native_sym {
    const char *name;        /* demangled symbol, NULL when no symbol was found */
    const char *module;      /* path of the mapped file as the target sees it, NULL if none */
    uint64_t offset;         /* address - symbol start (or - module load bias without a symbol) */
    bool approximate;        /* nearest symbol below, outside its size: likely a wrong name */
};

/* Creates the cache of process pid (reads its maps). PT_ENOPROC when the pid is gone. */
enum pt_status symcache_open(struct sym_cache **out, pid_t pid, struct pt_err *err);
void symcache_close(struct sym_cache *sc);

/*
 * Resolves runtime address addr. For a return address (every frame but the innermost) pass
 * addr - 1, so a call at the very end of a function names that function. Fills *out always
 * (name/module NULL when unknown); returns 0 when a symbol was found, -1 otherwise.
 */
int symcache_lookup(struct sym_cache *sc, uint64_t addr, struct native_sym *out);

/* Demangles an Itanium C++ name into out (copies name unchanged when it is not one). */
void symcache_demangle(const char *name, char *out, size_t cap);

/* Modules known so far (executable file mappings; for tests). */
size_t symcache_modules(const struct sym_cache *sc);

#endif
