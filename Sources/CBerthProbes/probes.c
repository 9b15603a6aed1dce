/* libbpf glue for BerthProbes: see include/berth_probes.h. */
#include "berth_probes.h"
#include <bpf/libbpf.h>
#include <bpf/btf.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <sys/utsname.h>

struct berth_probes {
    struct bpf_object *object;
    uint32_t withheld;
    struct bpf_link *links[16];
    int link_count;
    struct ring_buffer *ring;
    berth_event_fn fn;
    void *context;
};

/* libbpf's messages (the verifier log among them) go to a buffer, so a failure can
 * name the program and quote the verifier instead of spraying stderr. */
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static char log_text[16384];
static size_t log_used;

static int capture(enum libbpf_print_level level, const char *format, va_list args)
{
    if (level == LIBBPF_DEBUG)
        return 0;
    if (log_used < sizeof(log_text) - 1) {
        int n = vsnprintf(log_text + log_used, sizeof(log_text) - log_used, format, args);
        if (n > 0)
            log_used += (size_t)n < sizeof(log_text) - log_used ? (size_t)n : sizeof(log_text) - 1 - log_used;
    }
    return 0;
}

static void log_begin(void)
{
    log_used = 0;
    log_text[0] = 0;
    libbpf_set_print(capture);
}

/* The message: what failed, then the last lines libbpf logged (the verifier's verdict). */
static void log_end(char *err, size_t err_size, const char *what, int error)
{
    size_t keep = err_size > 1200 ? 1000 : err_size / 2;
    const char *tail = log_text;
    if (log_used > keep) {
        tail = log_text + log_used - keep;
        const char *nl = strchr(tail, '\n');
        if (nl)
            tail = nl + 1;
    }
    if (err && err_size)
        snprintf(err, err_size, "%s: %s%s%s", what, strerror(error < 0 ? -error : error),
                 *tail ? "\n" : "", tail);
    libbpf_set_print(NULL);
}

static const struct { const char *name; uint32_t needs; } programs[] = {
    { "berth_sys_enter", BERTH_TRACE_SYSCALLS | BERTH_TRACE_LATENCY },
    { "berth_sys_exit", BERTH_TRACE_LATENCY },
    { "berth_exec", BERTH_TRACE_EXEC },
    { "berth_exit", BERTH_TRACE_EXEC },
    { "berth_fork", BERTH_TRACE_EXEC },
    { "berth_oom", BERTH_TRACE_OOM },
    { "berth_oom_pid", BERTH_TRACE_OOM },
    { "berth_wakeup", BERTH_TRACE_RUNQ },
    { "berth_wakeup_new", BERTH_TRACE_RUNQ },
    { "berth_switch", BERTH_TRACE_RUNQ },
    { "berth_empty_enter", BERTH_TRACE_EMPTY },
    { "berth_empty_exit", BERTH_TRACE_EMPTY },
};

/* Which mark_victim this kernel has: (task, uid) since 6.6, (pid) before. Read from
 * the kernel's BTF (the typedef of the tracepoint's prototype), not from a version. */
static bool mark_victim_takes_task(void)
{
    struct btf *btf = btf__load_vmlinux_btf();
    if (!btf)
        return true;
    bool task = true;
    int id = btf__find_by_name_kind(btf, "btf_trace_mark_victim", BTF_KIND_TYPEDEF);
    if (id > 0) {
        const struct btf_type *t = btf__type_by_id(btf, btf__type_by_id(btf, id)->type);  /* pointer */
        if (t && btf_is_ptr(t)) {
            const struct btf_type *proto = btf__type_by_id(btf, t->type);
            /* (void *__data, first argument, …) */
            if (proto && btf_is_func_proto(proto) && btf_vlen(proto) >= 2) {
                const struct btf_type *first = btf__type_by_id(btf, btf_params(proto)[1].type);
                while (first && (btf_is_typedef(first) || btf_is_mod(first)))
                    first = btf__type_by_id(btf, first->type);
                task = first && btf_is_ptr(first);
            }
        }
    }
    btf__free(btf);
    return task;
}

/* The running kernel is at least major.minor (uname). */
static bool kernel_at_least(int major, int minor)
{
    struct utsname u;
    int a = 0, b = 0;
    if (uname(&u) != 0 || sscanf(u.release, "%d.%d", &a, &b) != 2)
        return false;
    return a > major || (a == major && b >= minor);
}

uint32_t berth_probes_withheld(struct berth_probes *p)
{
    return p->withheld;
}

struct berth_probes *berth_probes_load(const void *object, size_t size, uint32_t what,
                                       char *err, size_t err_size)
{
    struct berth_probes *p = calloc(1, sizeof(*p));
    if (!p) {
        snprintf(err, err_size, "out of memory");
        return NULL;
    }
    /* Run-queue latency creates task storage in sched_wakeup, under the run-queue
     * lock. Before 6.4 that allocation could enter the page allocator and wake
     * kswapd, taking a run-queue lock again: a deadlock, seen as a soft lockup
     * on 6.1. Since 6.4 local storage comes from the BPF memory allocator. */
    if ((what & BERTH_TRACE_RUNQ) && !kernel_at_least(6, 4)) {
        what &= ~BERTH_TRACE_RUNQ;
        p->withheld |= BERTH_TRACE_RUNQ;
    }
    pthread_mutex_lock(&log_lock);
    log_begin();
    LIBBPF_OPTS(bpf_object_open_opts, opts, .object_name = "berth_probes");
    p->object = bpf_object__open_mem(object, size, &opts);
    if (!p->object) {
        int e = errno;
        log_end(err, err_size, "opening the probe object", e);
        pthread_mutex_unlock(&log_lock);
        free(p);
        return NULL;
    }
    struct bpf_program *prog;
    bool task_victim = (what & BERTH_TRACE_OOM) ? mark_victim_takes_task() : true;
    bpf_object__for_each_program(prog, p->object) {
        const char *name = bpf_program__name(prog);
        bool wanted = false;
        for (size_t i = 0; i < sizeof(programs) / sizeof(programs[0]); i++)
            if (strcmp(programs[i].name, name) == 0 && (programs[i].needs & what))
                wanted = true;
        if (strcmp(name, "berth_oom") == 0)
            wanted = wanted && task_victim;
        if (strcmp(name, "berth_oom_pid") == 0)
            wanted = wanted && !task_victim;
        bpf_program__set_autoload(prog, wanted);
    }
    int rc = bpf_object__load(p->object);
    if (rc) {
        /* libbpf's log names the failing program ("prog 'x': ..."). */
        log_end(err, err_size, "loading the probes (BPF verifier)", rc);
        pthread_mutex_unlock(&log_lock);
        bpf_object__close(p->object);
        free(p);
        return NULL;
    }
    libbpf_set_print(NULL);
    pthread_mutex_unlock(&log_lock);
    return p;
}

int berth_probes_attach(struct berth_probes *p, char *err, size_t err_size)
{
    struct bpf_program *prog;
    bpf_object__for_each_program(prog, p->object) {
        if (!bpf_program__autoload(prog))
            continue;
        if (p->link_count == (int)(sizeof(p->links) / sizeof(p->links[0])))
            return -E2BIG;
        struct bpf_link *link = bpf_program__attach(prog);
        if (!link) {
            int e = errno;
            snprintf(err, err_size, "attaching BPF program %s (%s): %s", bpf_program__name(prog),
                     bpf_program__section_name(prog), strerror(e));
            return -e;
        }
        p->links[p->link_count++] = link;
    }
    return 0;
}

void berth_probes_detach(struct berth_probes *p)
{
    for (int i = 0; i < p->link_count; i++)
        bpf_link__destroy(p->links[i]);
    p->link_count = 0;
}

int berth_probes_map_fd(struct berth_probes *p, const char *name)
{
    return bpf_object__find_map_fd_by_name(p->object, name);
}

static int on_record(void *context, void *data, size_t size)
{
    struct berth_probes *p = context;
    if (size < sizeof(struct berth_event))
        return 0;
    return p->fn(p->context, data);
}

int berth_probes_poll(struct berth_probes *p, int timeout_ms, berth_event_fn fn, void *context)
{
    if (!p->ring) {
        int fd = berth_probes_map_fd(p, "events");
        if (fd < 0)
            return -ENOENT;
        p->ring = ring_buffer__new(fd, on_record, p, NULL);
        if (!p->ring)
            return -errno;
    }
    p->fn = fn;
    p->context = context;
    int n = ring_buffer__poll(p->ring, timeout_ms);
    return n == -EINTR ? 0 : n;
}

static struct bpf_program *loaded_program(struct berth_probes *p, int index)
{
    struct bpf_program *prog;
    int i = 0;
    bpf_object__for_each_program(prog, p->object) {
        if (!bpf_program__autoload(prog))
            continue;
        if (i++ == index)
            return prog;
    }
    return NULL;
}

int berth_probes_program_count(struct berth_probes *p)
{
    int n = 0;
    while (loaded_program(p, n))
        n++;
    return n;
}

const char *berth_probes_program_name(struct berth_probes *p, int index)
{
    struct bpf_program *prog = loaded_program(p, index);
    return prog ? bpf_program__name(prog) : NULL;
}

int berth_probes_program_stats(struct berth_probes *p, int index, uint64_t *run_time_ns, uint64_t *run_count)
{
    struct bpf_program *prog = loaded_program(p, index);
    if (!prog)
        return -ENOENT;
    struct bpf_prog_info info;
    uint32_t len = sizeof(info);
    memset(&info, 0, sizeof(info));
    if (bpf_obj_get_info_by_fd(bpf_program__fd(prog), &info, &len))
        return -errno;
    *run_time_ns = info.run_time_ns;
    *run_count = info.run_cnt;
    return 0;
}

int berth_probes_kernel_ids(struct berth_probes *p, int maps, uint32_t *ids, int max)
{
    int n = 0;
    if (maps) {
        struct bpf_map *map;
        bpf_object__for_each_map(map, p->object) {
            struct bpf_map_info info;
            uint32_t len = sizeof(info);
            memset(&info, 0, sizeof(info));
            if (n < max && bpf_obj_get_info_by_fd(bpf_map__fd(map), &info, &len) == 0)
                ids[n++] = info.id;
        }
    } else {
        struct bpf_program *prog;
        bpf_object__for_each_program(prog, p->object) {
            if (!bpf_program__autoload(prog))
                continue;
            struct bpf_prog_info info;
            uint32_t len = sizeof(info);
            memset(&info, 0, sizeof(info));
            if (n < max && bpf_obj_get_info_by_fd(bpf_program__fd(prog), &info, &len) == 0)
                ids[n++] = info.id;
        }
    }
    return n;
}

void berth_probes_destroy(struct berth_probes *p)
{
    if (!p)
        return;
    if (p->ring)
        ring_buffer__free(p->ring);
    berth_probes_detach(p);
    bpf_object__close(p->object);
    free(p);
}

int berth_probes_possible_cpus(void)
{
    return libbpf_num_possible_cpus();
}

int berth_probes_enable_stats(void)
{
    int fd = bpf_enable_stats(BPF_STATS_RUN_TIME);
    return fd < 0 ? -errno : fd;
}
