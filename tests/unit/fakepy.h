/*
 * fakepy.h — a fake CPython process in fake memory, laid out from a struct py_layout, so that one
 * test of the readers runs unchanged against every CPython version the tables describe.
 *
 * The whole fake "target" is one zeroed heap region of a mem_fake source; objects are bump-
 * allocated in it (16-byte aligned, like pymalloc) and written field by field at the layout's
 * offsets. Anything outside the heap is unmapped, which is how tests spell a wild pointer. The
 * builder keeps a pointer to the fake's own copy of the heap, so a test can still poke target
 * memory after fakepy_proc() has handed the source to a struct py_proc.
 *
 * Every code object carries the same small "program": FAKEPY_CODE_LEN bytes of bytecode whose
 * line table (a real table of the layout's kind) maps
 *     [0,2) -> first   [2,10) -> first+1   [10,20) -> first+2   [20,40) -> first+4
 * fakepy_line() answers that map independently of the table encoders, for expectations.
 *
 * Builder mistakes (heap exhausted) are test bugs and abort via assert().
 */
#ifndef PT_TEST_FAKEPY_H
#define PT_TEST_FAKEPY_H

#include <stddef.h>
#include <stdint.h>

#include "attach/mem.h"
#include "readers/layout.h"
#include "readers/runtime.h"

#define FAKEPY_HEAP_BASE 0x7f3a00000000ULL
#define FAKEPY_UNMAPPED  0x7f3b00000000ULL   /* never inside the heap */
#define FAKEPY_CODE_LEN 40                   /* bytes of bytecode of every fake code object */
#define FAKEPY_FRAME_SLOTS 8                 /* localsplus slots (locals + value stack) a frame has */

struct fakepy {
    const struct py_layout *L;
    struct mem_src *mem;            /* owned by the builder until fakepy_proc() */
    uint8_t *heap;                  /* the fake's copy of [base, base + cap) */
    uint64_t base, cap, top;
    /* Type objects (just addresses; tp_name is filled in for pyobj_type_name). */
    uint64_t code_type, str_type, unicode_type, bytes_type, frame_type;
    uint64_t runtime;               /* &_PyRuntime (3.7+), else 0 */
    uint64_t interp_head_addr;      /* &interp_head (2.7/3.6), else 0 */
    uint64_t tstate_current_addr;   /* &_PyThreadState_Current (2.7/3.6), else 0 */
};

/* A fake process with an empty runtime (no interpreters yet); heap_size bytes of target heap. */
void fakepy_init(struct fakepy *fp, const struct py_layout *L, size_t heap_size);
/* Frees the memory source unless fakepy_proc() took it. */
void fakepy_fini(struct fakepy *fp);

/* A py_proc over the fake memory (takes the source), with types and 2.7/3.6 anchors set. */
struct py_proc *fakepy_proc(struct fakepy *fp);

uint64_t fakepy_alloc(struct fakepy *fp, size_t len);
void fakepy_put64(struct fakepy *fp, uint64_t addr, uint64_t v);
void fakepy_put32(struct fakepy *fp, uint64_t addr, uint32_t v);
void fakepy_put8(struct fakepy *fp, uint64_t addr, uint8_t v);
uint64_t fakepy_get64(const struct fakepy *fp, uint64_t addr);

/* A str object holding utf8: PEP 393 compact (ASCII, latin-1, UCS-2 or UCS-4, the narrowest that
 * fits, as CPython picks) on 3.x; a PyStringObject of the UTF-8 bytes on 2.7. */
uint64_t fakepy_str(struct fakepy *fp, const char *utf8);
/* 2.7 only: a PyUnicodeObject (Py_UNICODE array of the layout's width). */
uint64_t fakepy_unicode27(struct fakepy *fp, const char *utf8);
/* A bytes object (2.7: PyStringObject). */
uint64_t fakepy_bytes(struct fakepy *fp, const void *data, size_t len);

/* The standard program's line table in the layout's format; returns its length. */
size_t fakepy_linetable(const struct py_layout *L, uint8_t out[64]);
/* Line of byte offset off in the standard program. */
int fakepy_line(int firstlineno, int off);

/* A function's co_flags (CO_OPTIMIZED | CO_NEWLOCALS), which fake code objects have. */
#define FAKEPY_CO_FUNCTION 0x3

/* A code object of the standard program. qualname is ignored before 3.11. */
uint64_t fakepy_code(struct fakepy *fp, const char *name, const char *qualname,
                     const char *filename, int firstlineno);
/* Same, with the name objects already built (for hostile names). */
uint64_t fakepy_code_objs(struct fakepy *fp, uint64_t name, uint64_t qualname, uint64_t filename,
                          int firstlineno);

/* A frame running `code` at byte offset lasti, whose caller is back (0: outermost). A frame
 * object up to 3.10 (f_lasti stored in the version's unit), an interpreter frame from 3.11 (instr
 * pointer into the code's inline bytecode, owner "thread"); either way followed by
 * FAKEPY_FRAME_SLOTS localsplus slots, the first holding an object pointer. */
uint64_t fakepy_frame(struct fakepy *fp, uint64_t code, uint64_t back, int lasti);
/* 3.11+: sets an interpreter frame's owner byte. */
void fakepy_frame_owner(struct fakepy *fp, uint64_t frame, int owner);
/* The field that links frame to its caller (f_back / previous). */
uint64_t fakepy_frame_back_addr(const struct fakepy *fp, uint64_t frame);

/* Appends an interpreter to the runtime's list. */
uint64_t fakepy_interp(struct fakepy *fp, int64_t id);
/* Appends a thread state to interp's list, with `top` as its innermost frame (0: none). */
uint64_t fakepy_thread(struct fakepy *fp, uint64_t interp, uint64_t top, uint64_t thread_id,
                       int64_t native_id);
/* A thread put first in interp's list, as CPython does with a new thread (the old head's prev
 * then points at it). */
uint64_t fakepy_thread_first(struct fakepy *fp, uint64_t interp, uint64_t top, uint64_t thread_id,
                             int64_t native_id);
/* Makes top the innermost frame of thread state ts (a call or a return). */
void fakepy_set_top(struct fakepy *fp, uint64_t ts, uint64_t top);
/* Makes tstate the GIL holder, the way the version records it. */
void fakepy_set_gil(struct fakepy *fp, uint64_t interp, uint64_t tstate, int locked);

#endif
