/*
 * ebpf.c — the user side of eBPF sampling (see ebpf.h): loading and attaching the programs,
 * keeping the procs/threads maps current from each target's thread list, and turning ring-buffer
 * records into one-thread snapshots for the session sink. Built without libbpf/clang/bpftool,
 * only ebpf_check() remains useful: it says what the build lacked.
 */
#include "attach/ebpf.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifdef PT_HAVE_EBPF
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/perf_event.h>
#include <linux/types.h>
#include <sys/syscall.h>

#include "attach/proc.h"
#include "attach/sampler.h"
#endif

#define EBPF_BTF_PATH "/sys/kernel/btf/vmlinux"
#define EBPF_PERM_ADVICE                                                                           \
    "run pytrace as root, or grant it CAP_BPF, CAP_PERFMON and CAP_SYS_PTRACE (e.g. "             \
    "setcap cap_bpf,cap_perfmon,cap_sys_ptrace+ep pytrace, or docker run --cap-add BPF "           \
    "--cap-add PERFMON --cap-add SYS_PTRACE)"

enum pt_status ebpf_check(struct pt_err *err)
{
#ifndef PT_HAVE_EBPF
    return pt_fail(err, PT_EFAIL,
                   "--ebpf: this pytrace was built without eBPF support (missing at build time: "
                   "%s); install them (apt-get install clang bpftool libbpf-dev) and rebuild",
                   PT_EBPF_MISSING);
#else
    if (access(EBPF_BTF_PATH, R_OK) != 0)
        return pt_fail(err, PT_EFAIL,
                       "--ebpf: the kernel has no BTF (%s is missing): it needs a kernel built "
                       "with CONFIG_DEBUG_INFO_BTF=y; record without --ebpf instead",
                       EBPF_BTF_PATH);
    return PT_OK;
#endif
}

#ifndef PT_HAVE_EBPF

enum pt_status ebpf_open(struct ebpf_sampler **out, const struct ebpf_opts *o, struct pt_err *err)
{
    (void)o;
    *out = NULL;
    return ebpf_check(err);
}

enum pt_status ebpf_add_target(struct ebpf_sampler *e, struct py_proc *p, uint32_t proc,
                               struct pt_err *err)
{
    (void)e, (void)p, (void)proc;
    return ebpf_check(err);
}

void ebpf_remove_target(struct ebpf_sampler *e, pid_t pid) { (void)e, (void)pid; }

int ebpf_poll(struct ebpf_sampler *e, const struct session_sink *sink, int timeout_ms)
{
    (void)e, (void)sink, (void)timeout_ms;
    return -1;
}

void ebpf_flush(struct ebpf_sampler *e, const struct session_sink *sink) { (void)e, (void)sink; }

void ebpf_get_stats(struct ebpf_sampler *e, struct ebpf_stats *out)
{
    (void)e;
    memset(out, 0, sizeof *out);
}

void ebpf_close(struct ebpf_sampler *e) { (void)e; }

#else

#include "attach/ebpf_priv.h"

static int quiet_print(enum libbpf_print_level lvl, const char *fmt, va_list ap)
{
    if (lvl == LIBBPF_WARN && getenv("PYTRACE_DEBUG"))
        return vfprintf(stderr, fmt, ap);
    return 0;
}

static enum pt_status perm_or_fail(struct pt_err *err, int e, const char *what)
{
    /* EACCES is also how the verifier rejects a program: only a permission problem when we
     * are not root. */
    if (e == EPERM || (e == EACCES && geteuid() != 0))
        return pt_fail(err, PT_EPERM, "--ebpf: not allowed to %s: %s", what, EBPF_PERM_ADVICE);
    return pt_fail(err, PT_EFAIL, "--ebpf: cannot %s: %s (PYTRACE_DEBUG=1 shows libbpf's log)",
                   what, strerror(e));
}

static int add_link(struct ebpf_sampler *e, struct bpf_link *l)
{
    struct bpf_link **n = realloc(e->links, (size_t)(e->nlinks + 1) * sizeof *n);
    if (!n) {
        bpf_link__destroy(l);
        return -1;
    }
    e->links = n;
    e->links[e->nlinks++] = l;
    return 0;
}

/* One CPU-clock event per online CPU, each running on_cpu_clock. */
static enum pt_status attach_perf(struct ebpf_sampler *e, double rate_hz, struct pt_err *err)
{
    int ncpu = libbpf_num_possible_cpus();
    int attached = 0, last_errno = 0;
    for (int cpu = 0; cpu < ncpu; cpu++) {
        struct perf_event_attr a;
        memset(&a, 0, sizeof a);
        a.size = sizeof a;
        a.type = PERF_TYPE_SOFTWARE;
        a.config = PERF_COUNT_SW_CPU_CLOCK;
        a.sample_period = e->period_ns;
        int fd = (int)syscall(__NR_perf_event_open, &a, -1, cpu, -1, PERF_FLAG_FD_CLOEXEC);
        if (fd < 0) {
            if (errno != ENODEV)   /* offline CPU */
                last_errno = errno;
            continue;
        }
        struct bpf_link *l = bpf_program__attach_perf_event(e->skel->progs.on_cpu_clock, fd);
        if (!l) {
            last_errno = errno;
            close(fd);
            continue;
        }
        if (add_link(e, l) != 0)
            return pt_fail(err, PT_EFAIL, "out of memory");
        attached++;
    }
    (void)rate_hz;
    if (!attached)
        return perm_or_fail(err, last_errno ? last_errno : ENODEV,
                            "open CPU-clock perf events");
    return PT_OK;
}

enum pt_status ebpf_open(struct ebpf_sampler **out, const struct ebpf_opts *o, struct pt_err *err)
{
    *out = NULL;
    enum pt_status rc = ebpf_check(err);
    if (rc != PT_OK)
        return rc;
    libbpf_set_print(quiet_print);
    struct ebpf_sampler *e = calloc(1, sizeof *e);
    if (!e)
        return pt_fail(err, PT_EFAIL, "out of memory");
    py_snapshot_init(&e->one);
    e->period_ns = (uint64_t)(1e9 / (o->rate_hz > 0 ? o->rate_hz : 1000));
    e->skel = pysample__open();
    if (!e->skel) {
        rc = perm_or_fail(err, errno, "open the BPF object");
        goto fail;
    }
    e->skel->rodata->want_offcpu = o->off_cpu ? 1 : 0;
    e->skel->rodata->period_ns = e->period_ns;
    e->tmp = malloc(sizeof *e->tmp);
    if (!e->tmp) {
        rc = pt_fail(err, PT_EFAIL, "out of memory");
        goto fail;
    }
    if (!o->off_cpu)
        bpf_program__set_autoload(e->skel->progs.on_switch, false);
    if (pysample__load(e->skel) != 0) {
        rc = perm_or_fail(err, errno, "load the BPF programs");
        goto fail;
    }
    if ((rc = attach_perf(e, o->rate_hz, err)) != PT_OK)
        goto fail;
    if (o->off_cpu) {
        struct bpf_link *l = bpf_program__attach(e->skel->progs.on_switch);
        if (!l || add_link(e, l) != 0) {
            rc = perm_or_fail(err, errno, "attach to the sched_switch tracepoint");
            goto fail;
        }
    }
    e->rb = ring_buffer__new(bpf_map__fd(e->skel->maps.events), ebpf_on_record, e, NULL);
    if (!e->rb) {
        rc = perm_or_fail(err, errno, "create the ring buffer");
        goto fail;
    }
    *out = e;
    return PT_OK;
fail:
    ebpf_close(e);
    return rc;
}

static struct ebpf_target *target_of(struct ebpf_sampler *e, pid_t pid)
{
    for (uint32_t i = 0; i < e->ntargets; i++)
        if (e->targets[i]->pid == pid)
            return e->targets[i];
    return NULL;
}

/* The GIL fields the walker reads (walk.c): per runtime up to 3.11, per interpreter from 3.12. */
static void gil_addrs(struct py_proc *p, struct pys_layout *pl)
{
    const struct py_layout *L = &p->layout;
    if (p->tstate_current_addr) {
        pl->gil_holder_addr = p->tstate_current_addr;
    } else if (L->is_ceval_gil >= 0) {
        uint64_t interp = 0, gil = 0;
        if (py_proc_first_interp(p, &interp) == 0 && interp &&
            mem_read_ptr(p->mem, interp + (uint64_t)L->is_ceval_gil, &gil) == 0 && gil &&
            L->gil_locked >= 0 && L->gil_last_holder >= 0) {
            pl->gil_holder_addr = gil + (uint64_t)L->gil_last_holder;
            pl->gil_locked_addr = gil + (uint64_t)L->gil_locked;
        }
    } else if (p->runtime && L->rt_gilstate_current >= 0) {
        pl->gil_holder_addr = p->runtime + (uint64_t)L->rt_gilstate_current;
    }
}

static int max4(int a, int b, int c, int d)
{
    int m = a > b ? a : b;
    m = m > c ? m : c;
    return m > d ? m : d;
}

/* The per-process map value from the reader's layout. */
static enum pt_status bpf_layout(struct py_proc *p, struct pys_layout *pl, struct pt_err *err)
{
    const struct py_layout *L = &p->layout;
    memset(pl, 0, sizeof *pl);
    pl->ts_frame = pl->ts_cframe = pl->ts_current_frame = pl->f_owner = -1;
    pl->owner_cstack = pl->owner_interp = -1;
    pl->ts_datastack_chunk = pl->ts_datastack_top = -1;
    int end;
    if (L->frame_model == PY_FRAMES_OBJECTS) {
        pl->frame_model = PYS_FRAMES_OBJECTS;
        pl->ts_frame = L->ts_frame;
        pl->f_back = L->fo_back;
        pl->f_code = L->fo_code;
        pl->f_instr = L->fo_lasti;
        end = max4(L->fo_back + 8, L->fo_code + 8, L->fo_lasti + 4, 16);
    } else {
        pl->frame_model = PYS_FRAMES_INTERP;
        pl->ts_cframe = L->ts_cframe;
        pl->cf_current_frame = L->cf_current_frame;
        pl->ts_current_frame = L->ts_current_frame;
        pl->f_back = L->if_previous;
        pl->f_code = L->if_code;
        pl->f_instr = L->if_instr;
        pl->f_owner = L->if_owner;
        pl->owner_cstack = L->if_owner_cstack;
        pl->owner_interp = L->if_owner_interpreter;
        pl->code_tag_mask = (uint8_t)L->if_code_tag_mask;
        pl->ts_datastack_chunk = L->ts_datastack_chunk;
        pl->ts_datastack_top = L->ts_datastack_top;
        end = max4(L->if_previous + 8, L->if_code + 8, L->if_instr + 8, L->if_owner + 1);
    }
    if (end > PYS_FRAME_BUF || pl->f_back < 0 || pl->f_code < 0 || pl->f_instr < 0)
        return pt_fail(err, PT_EVERSION, "--ebpf: the frame layout of Python %d.%d is not one "
                       "the BPF walk can follow; record without --ebpf", L->major, L->minor);
    pl->frame_len = (uint32_t)end;
    gil_addrs(p, pl);
    return PT_OK;
}

enum pt_status ebpf_add_target(struct ebpf_sampler *e, struct py_proc *p, uint32_t proc,
                               struct pt_err *err)
{
    struct pys_layout pl;
    enum pt_status rc = bpf_layout(p, &pl, err);
    if (rc != PT_OK)
        return rc;
    if (target_of(e, p->pid))
        return PT_OK;
    if (e->ntargets == e->cap_targets) {
        uint32_t cap = e->cap_targets ? e->cap_targets * 2 : 4;
        struct ebpf_target **n = realloc(e->targets, cap * sizeof *n);
        if (!n)
            return pt_fail(err, PT_EFAIL, "out of memory");
        e->targets = n;
        e->cap_targets = cap;
    }
    struct ebpf_target *t = calloc(1, sizeof *t);
    if (!t)
        return pt_fail(err, PT_EFAIL, "out of memory");
    t->pid = p->pid;
    t->p = p;
    t->proc = proc;
    py_snapshot_init(&t->walk);
    __u32 key = (__u32)p->pid;
    if (bpf_map_update_elem(bpf_map__fd(e->skel->maps.procs), &key, &pl, BPF_ANY) != 0) {
        free(t);
        return pt_fail(err, PT_EFAIL, "--ebpf: cannot add process %d to the BPF map (%s)",
                       (int)p->pid, strerror(errno));
    }
    e->targets[e->ntargets++] = t;
    ebpf_refresh(e, t, sampler_now_ns());
    return PT_OK;
}

void ebpf_forget_thread(struct ebpf_sampler *e, pid_t host_tid)
{
    __u32 key = (__u32)host_tid;
    bpf_map_delete_elem(bpf_map__fd(e->skel->maps.threads), &key);
    bpf_map_delete_elem(bpf_map__fd(e->skel->maps.offcpu), &key);
    bpf_map_delete_elem(bpf_map__fd(e->skel->maps.preempted), &key);
}

void ebpf_remove_target(struct ebpf_sampler *e, pid_t pid)
{
    for (uint32_t i = 0; i < e->ntargets; i++) {
        struct ebpf_target *t = e->targets[i];
        if (t->pid != pid)
            continue;
        __u32 key = (__u32)pid;
        bpf_map_delete_elem(bpf_map__fd(e->skel->maps.procs), &key);
        for (uint32_t k = 0; k < t->nth; k++) {
            ebpf_forget_thread(e, t->th[k].host_tid);
            free(t->th[k].last);
        }
        py_snapshot_free(&t->walk);
        if (e->one_p == t->p)
            e->one_p = NULL;
        free(t->th);
        free(t);
        e->targets[i] = e->targets[--e->ntargets];
        return;
    }
}

#endif
