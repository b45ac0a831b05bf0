/*
 * elf.c — symbols, sections and file bytes of an ELF64 object, read through libelf.
 *
 * Both symbol tables are indexed once at open: a hash table for exact name lookup (the runtime
 * finder asks for a handful of names) and an address-sorted array of functions for native
 * symbolization. Names point into libelf's string tables, which live as long as the Elf handle.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include "symbols/elf.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <gelf.h>
#include <libelf.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* One hash slot; name == NULL marks an empty slot. */
struct sym_slot {
    const char *name;
    uint64_t value;
    uint64_t size;
    uint32_t hash;
};

/* One function symbol for elf_nearest; rank orders candidates that share an address. */
struct func_sym {
    uint64_t start;
    uint64_t size;
    const char *name;
    uint32_t rank;   /* lower wins: binding first, then "has a size", then table order */
};

struct elf_file {
    char *path;
    int fd;
    Elf *elf;
    bool dyn;
    uint64_t page;

    const char *raw;        /* whole file image (libelf's mmap), NULL if unavailable */
    size_t rawsize;

    struct elf_segment *segs;   /* PT_LOAD headers in file order */
    size_t nsegs;

    struct sym_slot *slots;     /* open addressing, capacity is a power of two */
    size_t slot_mask;
    size_t nslots_used;         /* <= half the capacity: every probe reaches an empty slot */

    struct func_sym *funcs;     /* sorted by start, one entry per address */
    size_t nfuncs;
    size_t funcs_cap;
};

/* ---- symbol index ------------------------------------------------------------------------- */

/* FNV-1a: symbol names are short and the table is built once, so a simple hash is enough. */
static uint32_t elf_hash_name(const char *s)
{
    uint32_t h = 2166136261u;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    return h;
}

/* Inserts unless the name is present: .dynsym is indexed first, so its entries win. */
static void elf_index_insert(struct elf_file *ef, const char *name, uint64_t value, uint64_t size)
{
    /* Capacity came from the section headers' sizes; never trust them to match the data. */
    if (2 * (ef->nslots_used + 1) > ef->slot_mask + 1)
        return;
    uint32_t h = elf_hash_name(name);
    for (size_t i = h & ef->slot_mask;; i = (i + 1) & ef->slot_mask) {
        struct sym_slot *s = &ef->slots[i];
        if (!s->name) {
            *s = (struct sym_slot){ .name = name, .value = value, .size = size, .hash = h };
            ef->nslots_used++;
            return;
        }
        if (s->hash == h && strcmp(s->name, name) == 0)
            return;
    }
}

static uint32_t elf_func_rank(const GElf_Sym *sym, uint32_t order)
{
    unsigned bind = GELF_ST_BIND(sym->st_info);
    uint32_t b = bind == STB_GLOBAL ? 0 : bind == STB_WEAK ? 1 : 2;
    /* order (< 2^29 symbols) breaks the remaining ties deterministically: first seen wins. */
    return (b << 30) | ((sym->st_size == 0) << 29) | (order & 0x1fffffff);
}

/* Indexes one SHT_DYNSYM/SHT_SYMTAB section. A damaged table is skipped rather than failing the
 * open: a truncated .symtab must not hide the .dynsym that still answers most lookups. */
static void elf_index_table(struct elf_file *ef, Elf_Scn *scn, const GElf_Shdr *sh, uint32_t *order)
{
    Elf_Data *d = elf_getdata(scn, NULL);
    size_t entsz = gelf_fsize(ef->elf, ELF_T_SYM, 1, EV_CURRENT);
    if (!d || entsz == 0)
        return;
    size_t n = d->d_size / entsz;
    for (size_t i = 1; i < n; i++) {   /* entry 0 is the reserved null symbol */
        GElf_Sym sym;
        if (!gelf_getsym(d, (int)i, &sym) || sym.st_name == 0 || sym.st_shndx == SHN_UNDEF)
            continue;
        unsigned type = GELF_ST_TYPE(sym.st_info);
        /* Section and file symbols name no program object (and would shadow nothing useful). */
        if (type == STT_SECTION || type == STT_FILE)
            continue;
        const char *name = elf_strptr(ef->elf, sh->sh_link, sym.st_name);
        if (!name || !*name)
            continue;
        elf_index_insert(ef, name, sym.st_value, sym.st_size);
        if ((type == STT_FUNC || type == STT_GNU_IFUNC) && sym.st_value != 0 &&
            ef->nfuncs < ef->funcs_cap) {
            ef->funcs[ef->nfuncs++] = (struct func_sym){
                .start = sym.st_value, .size = sym.st_size, .name = name,
                .rank = elf_func_rank(&sym, (*order)++),
            };
        }
    }
}

static int elf_func_cmp(const void *a, const void *b)
{
    const struct func_sym *x = a, *y = b;
    if (x->start != y->start)
        return x->start < y->start ? -1 : 1;
    return x->rank < y->rank ? -1 : x->rank > y->rank;
}

/* Sorts functions by address and keeps only the best-ranked name per address. */
static void elf_funcs_finish(struct elf_file *ef)
{
    if (ef->nfuncs == 0)
        return;
    qsort(ef->funcs, ef->nfuncs, sizeof *ef->funcs, elf_func_cmp);
    size_t w = 1;
    for (size_t r = 1; r < ef->nfuncs; r++)
        if (ef->funcs[r].start != ef->funcs[w - 1].start)
            ef->funcs[w++] = ef->funcs[r];
    ef->nfuncs = w;
}

/* Finds the symbol tables, sizes the index from their entry counts, then fills it. */
static enum pt_status elf_index_symbols(struct elf_file *ef, struct pt_err *err)
{
    Elf_Scn *tabs[2] = { NULL, NULL };   /* [0] .dynsym, [1] .symtab */
    GElf_Shdr shdrs[2];
    size_t total = 0;
    size_t entsz = gelf_fsize(ef->elf, ELF_T_SYM, 1, EV_CURRENT);

    for (Elf_Scn *scn = NULL; (scn = elf_nextscn(ef->elf, scn)) != NULL;) {
        GElf_Shdr sh;
        if (!gelf_getshdr(scn, &sh))
            continue;
        int k = sh.sh_type == SHT_DYNSYM ? 0 : sh.sh_type == SHT_SYMTAB ? 1 : -1;
        if (k < 0 || tabs[k] || sh.sh_entsize == 0 || sh.sh_size > ef->rawsize)
            continue;
        tabs[k] = scn;
        shdrs[k] = sh;
        total += entsz ? sh.sh_size / entsz : 0;
    }

    size_t cap = 16;
    while (cap < 2 * total + 1)
        cap <<= 1;
    ef->slots = calloc(cap, sizeof *ef->slots);
    ef->funcs = calloc(total ? total : 1, sizeof *ef->funcs);
    if (!ef->slots || !ef->funcs)
        return pt_fail(err, PT_EFAIL, "%s: out of memory indexing %zu symbols", ef->path, total);
    ef->slot_mask = cap - 1;
    ef->funcs_cap = total;

    uint32_t order = 0;
    for (int k = 0; k < 2; k++)
        if (tabs[k])
            elf_index_table(ef, tabs[k], &shdrs[k], &order);
    elf_funcs_finish(ef);
    return PT_OK;
}

/* ---- open / close ------------------------------------------------------------------------- */

static enum pt_status elf_read_segments(struct elf_file *ef, struct pt_err *err)
{
    size_t phnum;
    if (elf_getphdrnum(ef->elf, &phnum) != 0)
        return pt_fail(err, PT_EFAIL, "%s: unreadable program headers (%s)", ef->path,
                       elf_errmsg(-1));
    ef->segs = calloc(phnum ? phnum : 1, sizeof *ef->segs);
    if (!ef->segs)
        return pt_fail(err, PT_EFAIL, "%s: out of memory", ef->path);
    for (size_t i = 0; i < phnum; i++) {
        GElf_Phdr ph;
        if (!gelf_getphdr(ef->elf, (int)i, &ph))
            return pt_fail(err, PT_EFAIL, "%s: unreadable program header %zu (%s)", ef->path, i,
                           elf_errmsg(-1));
        if (ph.p_type != PT_LOAD)
            continue;
        ef->segs[ef->nsegs++] = (struct elf_segment){
            .vaddr = ph.p_vaddr, .memsz = ph.p_memsz, .filesz = ph.p_filesz,
            .offset = ph.p_offset, .writable = (ph.p_flags & PF_W) != 0,
            .executable = (ph.p_flags & PF_X) != 0,
        };
    }
    return PT_OK;
}

/* Checks that this is an ELF64 little-endian object we can read raw bytes from. */
static enum pt_status elf_check_header(struct elf_file *ef, struct pt_err *err)
{
    if (elf_kind(ef->elf) != ELF_K_ELF)
        return pt_fail(err, PT_EFAIL, "%s: not an ELF file", ef->path);
    GElf_Ehdr eh;
    if (!gelf_getehdr(ef->elf, &eh))
        return pt_fail(err, PT_EFAIL, "%s: unreadable ELF header (%s)", ef->path, elf_errmsg(-1));
    if (eh.e_ident[EI_CLASS] != ELFCLASS64)
        return pt_fail(err, PT_EFAIL, "%s: not a 64-bit ELF file (32-bit targets are unsupported)",
                       ef->path);
    /* Callers decode the bytes elf_read_vaddr returns as host integers. */
    if (eh.e_ident[EI_DATA] != ELFDATA2LSB)
        return pt_fail(err, PT_EFAIL, "%s: not a little-endian ELF file", ef->path);
    if (eh.e_type != ET_EXEC && eh.e_type != ET_DYN)
        return pt_fail(err, PT_EFAIL, "%s: ELF type %u is neither an executable nor a shared "
                       "object", ef->path, (unsigned)eh.e_type);
    ef->dyn = eh.e_type == ET_DYN;
    return PT_OK;
}

enum pt_status elf_open(struct elf_file **out, const char *path, struct pt_err *err)
{
    *out = NULL;
    if (elf_version(EV_CURRENT) == EV_NONE)
        return pt_fail(err, PT_EFAIL, "%s: libelf is too old (%s)", path, elf_errmsg(-1));

    struct elf_file *ef = calloc(1, sizeof *ef);
    if (!ef || !(ef->path = strdup(path))) {
        free(ef);
        return pt_fail(err, PT_EFAIL, "%s: out of memory", path);
    }
    long pg = sysconf(_SC_PAGESIZE);
    ef->page = pg > 0 ? (uint64_t)pg : 4096;
    ef->fd = -1;

    enum pt_status st;
    ef->fd = open(path, O_RDONLY | O_CLOEXEC);
    if (ef->fd < 0) {
        st = pt_fail(err, PT_EFAIL, "%s: cannot open (%s)", path, strerror(errno));
        goto fail;
    }
    ef->elf = elf_begin(ef->fd, ELF_C_READ_MMAP, NULL);
    if (!ef->elf) {
        st = pt_fail(err, PT_EFAIL, "%s: not a readable ELF file (%s)", path, elf_errmsg(-1));
        goto fail;
    }
    if ((st = elf_check_header(ef, err)) != PT_OK)
        goto fail;
    /* The whole image (libelf's mmap) serves elf_read_vaddr and bounds section sizes. */
    ef->raw = elf_rawfile(ef->elf, &ef->rawsize);
    if (!ef->raw) {
        st = pt_fail(err, PT_EFAIL, "%s: cannot map file (%s)", path, elf_errmsg(-1));
        goto fail;
    }
    if ((st = elf_read_segments(ef, err)) != PT_OK)
        goto fail;
    if ((st = elf_index_symbols(ef, err)) != PT_OK)
        goto fail;
    *out = ef;
    return PT_OK;

fail:
    elf_close(ef);
    return st;
}

void elf_close(struct elf_file *ef)
{
    if (!ef)
        return;
    if (ef->elf)
        elf_end(ef->elf);
    if (ef->fd >= 0)
        close(ef->fd);
    free(ef->slots);
    free(ef->funcs);
    free(ef->segs);
    free(ef->path);
    free(ef);
}

/* ---- lookups ------------------------------------------------------------------------------ */

int elf_symbol(struct elf_file *ef, const char *name, uint64_t *value, uint64_t *size)
{
    uint32_t h = elf_hash_name(name);
    for (size_t i = h & ef->slot_mask;; i = (i + 1) & ef->slot_mask) {
        const struct sym_slot *s = &ef->slots[i];
        if (!s->name)
            return -1;   /* the table is never full (cap > 2n), so a probe always ends */
        if (s->hash == h && strcmp(s->name, name) == 0) {
            if (value)
                *value = s->value;
            if (size)
                *size = s->size;
            return 0;
        }
    }
}

int elf_nearest(struct elf_file *ef, uint64_t addr, const char **name, uint64_t *start, bool *exact)
{
    /* Last function whose start <= addr. */
    size_t lo = 0, hi = ef->nfuncs;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (ef->funcs[mid].start <= addr)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == 0)
        return -1;
    const struct func_sym *f = &ef->funcs[lo - 1];
    if (name)
        *name = f->name;
    if (start)
        *start = f->start;
    if (exact)
        *exact = addr - f->start < f->size;
    return 0;
}

/* Finds a section by name (names come from the section-header string table, shstrndx). */
static Elf_Scn *elf_find_section(struct elf_file *ef, const char *name, GElf_Shdr *sh)
{
    size_t shstrndx;
    if (elf_getshdrstrndx(ef->elf, &shstrndx) != 0)
        return NULL;
    for (Elf_Scn *scn = NULL; (scn = elf_nextscn(ef->elf, scn)) != NULL;) {
        if (!gelf_getshdr(scn, sh))
            continue;
        const char *n = elf_strptr(ef->elf, shstrndx, sh->sh_name);
        if (n && strcmp(n, name) == 0)
            return scn;
    }
    return NULL;
}

int elf_section(struct elf_file *ef, const char *name, uint64_t *addr, uint64_t *size)
{
    GElf_Shdr sh;
    if (!elf_find_section(ef, name, &sh))
        return -1;
    if (addr)
        *addr = sh.sh_addr;
    if (size)
        *size = sh.sh_size;
    return 0;
}

int elf_read_vaddr(struct elf_file *ef, uint64_t vaddr, void *buf, size_t len)
{
    for (size_t i = 0; i < ef->nsegs; i++) {
        const struct elf_segment *s = &ef->segs[i];
        /* Written as differences so that a vaddr near 2^64 cannot wrap into a segment. */
        if (vaddr < s->vaddr || vaddr - s->vaddr > s->memsz || len > s->memsz - (vaddr - s->vaddr))
            continue;
        uint64_t rel = vaddr - s->vaddr;
        uint64_t in_file = rel < s->filesz ? s->filesz - rel : 0;
        size_t from_file = in_file < len ? (size_t)in_file : len;
        if (from_file) {
            /* A truncated or corrupt file may claim bytes past its end. */
            if (s->offset > ef->rawsize || rel > ef->rawsize - s->offset ||
                from_file > ef->rawsize - s->offset - rel)
                return -1;
            memcpy(buf, ef->raw + s->offset + rel, from_file);
        }
        /* Past p_filesz the loader zero-fills (.bss), so the image holds zeros there. */
        memset((char *)buf + from_file, 0, len - from_file);
        return 0;
    }
    return -1;
}

bool elf_is_dyn(struct elf_file *ef)
{
    return ef->dyn;
}

/*
 * ld.so maps a PT_LOAD with
 *     mmap(bias + ALIGN_DOWN(p_vaddr, page), ..., ALIGN_DOWN(p_offset, page)),
 * so for a maps line lying in that segment
 *     map_start = bias + ALIGN_DOWN(p_vaddr, page) + (map_offset - ALIGN_DOWN(p_offset, page))
 * and bias = map_start - ALIGN_DOWN(p_vaddr, page) - (map_offset - ALIGN_DOWN(p_offset, page)).
 * The last term is 0 for the first line of a segment; it is not for the later lines of a segment
 * the kernel split (RELRO's mprotect turns the data segment's head read-only). We align to the
 * page, not p_align, because that is what ld.so does: with a 2 MiB p_align (older binutils)
 * every segment starting in the file's first 2 MiB would align down to offset 0. The target
 * runs on our kernel, so our page size is its page size.
 */
uint64_t elf_load_bias(struct elf_file *ef, uint64_t map_start, uint64_t map_offset)
{
    if (!ef->dyn)
        return 0;
    const struct elf_segment *hit = NULL;
    uint64_t mask = ~(ef->page - 1), moff = map_offset & mask;
    for (size_t i = 0; i < ef->nsegs; i++) {
        const struct elf_segment *s = &ef->segs[i];
        uint64_t soff = s->offset & mask;
        if (soff == moff) {   /* the segment's own first mapping: unambiguous */
            hit = s;
            break;
        }
        if (!hit && moff > soff && moff < s->offset + s->filesz)
            hit = s;
    }
    /* No segment maps that offset: assume the usual vaddr == offset layout rather than fail. */
    if (!hit)
        return map_start - moff;
    return map_start - (hit->vaddr & mask) - (moff - (hit->offset & mask));
}

int elf_segments(struct elf_file *ef, struct elf_segment *out, int cap)
{
    for (size_t i = 0; i < ef->nsegs && (int)i < cap; i++)
        out[i] = ef->segs[i];
    return (int)ef->nsegs;
}

/* Scans one block of notes for NT_GNU_BUILD_ID and writes it as hex; 0 on success. */
static int elf_note_build_id(Elf_Data *d, char *out, size_t cap)
{
    GElf_Nhdr nh;
    size_t off = 0, name_off, desc_off, next;
    while (off < d->d_size && (next = gelf_getnote(d, off, &nh, &name_off, &desc_off)) > 0) {
        off = next;
        if (nh.n_type != NT_GNU_BUILD_ID || nh.n_namesz != sizeof ELF_NOTE_GNU ||
            memcmp((const char *)d->d_buf + name_off, ELF_NOTE_GNU, sizeof ELF_NOTE_GNU) != 0)
            continue;
        if (nh.n_descsz == 0 || cap < 2 * (size_t)nh.n_descsz + 1)
            return -1;
        const unsigned char *id = (const unsigned char *)d->d_buf + desc_off;
        static const char hex[] = "0123456789abcdef";
        for (size_t i = 0; i < nh.n_descsz; i++) {
            out[2 * i] = hex[id[i] >> 4];
            out[2 * i + 1] = hex[id[i] & 15];
        }
        out[2 * nh.n_descsz] = '\0';
        return 0;
    }
    return -1;
}

int elf_build_id(struct elf_file *ef, char *out, size_t cap)
{
    for (Elf_Scn *scn = NULL; (scn = elf_nextscn(ef->elf, scn)) != NULL;) {
        GElf_Shdr sh;
        Elf_Data *d;
        if (gelf_getshdr(scn, &sh) && sh.sh_type == SHT_NOTE && (d = elf_getdata(scn, NULL)) &&
            elf_note_build_id(d, out, cap) == 0)
            return 0;
    }
    /* Section headers may be stripped away entirely; the loader's PT_NOTE still carries it. */
    size_t phnum;
    if (elf_getphdrnum(ef->elf, &phnum) != 0)
        return -1;
    for (size_t i = 0; i < phnum; i++) {
        GElf_Phdr ph;
        Elf_Data *d;
        if (!gelf_getphdr(ef->elf, (int)i, &ph) || ph.p_type != PT_NOTE)
            continue;
        d = elf_getdata_rawchunk(ef->elf, (int64_t)ph.p_offset, ph.p_filesz,
                                 ph.p_align == 8 ? ELF_T_NHDR8 : ELF_T_NHDR);
        if (d && elf_note_build_id(d, out, cap) == 0)
            return 0;
    }
    return -1;
}

int elf_debuglink(struct elf_file *ef, char *out, size_t cap)
{
    GElf_Shdr sh;
    Elf_Scn *scn = elf_find_section(ef, ".gnu_debuglink", &sh);
    Elf_Data *d = scn ? elf_getdata(scn, NULL) : NULL;
    if (!d || !d->d_buf)
        return -1;
    /* The name is NUL-terminated, then padded to 4 and followed by a CRC32 we do not need. */
    const char *nul = memchr(d->d_buf, '\0', d->d_size);
    size_t n = nul ? (size_t)(nul - (const char *)d->d_buf) : 0;
    if (n == 0 || n + 1 > cap)
        return -1;
    memcpy(out, d->d_buf, n + 1);
    return 0;
}

const char *elf_path(const struct elf_file *ef)
{
    return ef->path;
}
