// SPDX-License-Identifier: GPL-2.0
/*
 * berth's probes: per-container syscall counts and latency, exec / exit / fork,
 * OOM kills and run-queue latency. A container is known by its cgroup v2 id
 * (the kernfs id of its cgroup in the v2 tree); user space registers that id in `tracked`
 * before the container's first instruction, and every program returns at once
 * for anything else, so untracked processes pay as little as possible.
 */
#include "berth_kernel_types.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include "berth_probes_abi.h"

char LICENSE[] SEC("license") = "GPL";

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, BERTH_MAX_SLOTS);
    __type(key, u64);
    __type(value, struct berth_tracked);
} tracked SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, BERTH_MAX_SLOTS * BERTH_MAX_SYSCALLS);
    __type(key, u32);
    __type(value, struct berth_syscall_stat);
} syscalls SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, BERTH_MAX_SLOTS * BERTH_MAX_SYSCALLS);
    __type(key, u32);
    __type(value, struct berth_hist);
} syscall_hist SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, BERTH_MAX_SLOTS * BERTH_HIST_BUCKETS);
    __type(key, u32);
    __type(value, u64);
} runq_hist SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, BERTH_MAX_SLOTS + 1);
    __type(key, u32);
    __type(value, struct berth_counters);
} counters SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_RINGBUF);
    __uint(max_entries, 256 * 1024);
} events SEC(".maps");

/* Per thread: the open syscall (enter time, number) and the last wakeup. Task
 * storage, not a hash keyed by tid: it lives and dies with the task, and a thread
 * without any costs one pointer test. Only threads of tracked cgroups get one. */
struct task_info {
    u64 cgroup_id;  /* the cgroup slot and flags were taken for */
    u64 sys_start;
    u64 wakeup;
    u32 nr;
    u32 slot;
    u32 flags;
    u32 pad;
};
struct {
    __uint(type, BPF_MAP_TYPE_TASK_STORAGE);
    __uint(map_flags, BPF_F_NO_PREALLOC);
    __type(key, int);
    __type(value, struct task_info);
} task_info SEC(".maps");

/* A one-bit-per-(id mod 1024) filter of the tracked cgroup ids, written by user
 * space. Every hot program tests it first with plain loads and no helper call, so
 * an untracked task pays little more than an empty program; a set bit (a tracked
 * id, or another id that shares its bit) goes on to the exact lookup. */
u64 tracked_filter[BERTH_FILTER_WORDS] SEC(".data.filter");

static __always_inline bool maybe_tracked(u64 id)
{
    return tracked_filter[(id >> 6) & (BERTH_FILTER_WORDS - 1)] & (1ULL << (id & 63));
}

/* The task's cgroup v2 id by direct (BTF-checked) loads: cheaper than the helper. */
static __always_inline u64 cgroup_id_of(struct task_struct *task)
{
    return task->cgroups->dfl_cgrp->kn->id;
}

static __always_inline struct berth_tracked *tracked_entry(u64 id)
{
    if (!maybe_tracked(id))
        return 0;
    return bpf_map_lookup_elem(&tracked, &id);
}

static __always_inline struct berth_tracked *current_tracked(void)
{
    return tracked_entry(cgroup_id_of(bpf_get_current_task_btf()));
}

static __always_inline u32 log2_bucket(u64 v)
{
    u32 r = 0;
    if (v >= (1ULL << 32)) { v >>= 32; r += 32; }
    if (v >= (1ULL << 16)) { v >>= 16; r += 16; }
    if (v >= (1ULL << 8)) { v >>= 8; r += 8; }
    if (v >= (1ULL << 4)) { v >>= 4; r += 4; }
    if (v >= (1ULL << 2)) { v >>= 2; r += 2; }
    if (v >= (1ULL << 1)) { r += 1; }
    return r < BERTH_HIST_BUCKETS ? r : BERTH_HIST_BUCKETS - 1;
}

static __always_inline struct berth_counters *counters_of(u32 slot)
{
    return bpf_map_lookup_elem(&counters, &slot);
}

static __always_inline struct berth_event *reserve_event(u32 slot)
{
    struct berth_event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
    if (!e) {
        struct berth_counters *c = counters_of(slot);
        if (c)
            c->lost_events++;
    }
    return e;
}

SEC("tp_btf/sys_enter")
int BPF_PROG(berth_sys_enter, struct pt_regs *regs, long nr)
{
    struct task_struct *task = bpf_get_current_task_btf();
    u64 id = cgroup_id_of(task);
    if (!maybe_tracked(id))
        return 0;
    /* After a thread's first syscall its slot is in its task storage: no map lookup. */
    struct task_info *ti = bpf_task_storage_get(&task_info, task, 0, 0);
    u32 slot, flags;
    if (ti && ti->cgroup_id == id) {
        slot = ti->slot;
        flags = ti->flags;
    } else {
        struct berth_tracked *t = bpf_map_lookup_elem(&tracked, &id);
        if (!t)
            return 0;
        slot = t->slot;
        flags = t->flags;
        ti = bpf_task_storage_get(&task_info, task, 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
        if (ti) {
            ti->cgroup_id = id;
            ti->slot = slot;
            ti->flags = flags;
        }
    }
    if (slot >= BERTH_MAX_SLOTS || nr < 0 || nr >= BERTH_MAX_SYSCALLS)
        return 0;
    u32 index = slot * BERTH_MAX_SYSCALLS + (u32)nr;
    struct berth_syscall_stat *s = bpf_map_lookup_elem(&syscalls, &index);
    if (s)
        s->count++;
    if ((flags & BERTH_TRACE_LATENCY) && ti) {
        ti->nr = (u32)nr;
        ti->sys_start = bpf_ktime_get_ns();
    }
    return 0;
}

SEC("tp_btf/sys_exit")
int BPF_PROG(berth_sys_exit, struct pt_regs *regs, long ret)
{
    struct task_struct *task = bpf_get_current_task_btf();
    /* Only tracked tasks have task storage: the filter spares the rest the helper call. */
    if (!maybe_tracked(cgroup_id_of(task)))
        return 0;
    struct task_info *ti = bpf_task_storage_get(&task_info, task, 0, 0);
    if (!ti || !ti->sys_start)
        return 0;
    u64 delta = bpf_ktime_get_ns() - ti->sys_start;
    ti->sys_start = 0;
    u32 slot = ti->slot, nr = ti->nr;
    if (slot >= BERTH_MAX_SLOTS || nr >= BERTH_MAX_SYSCALLS)
        return 0;
    u32 index = slot * BERTH_MAX_SYSCALLS + nr;
    struct berth_syscall_stat *s = bpf_map_lookup_elem(&syscalls, &index);
    if (s) {
        s->total_ns += delta;
        s->timed++;
    }
    struct berth_hist *h = bpf_map_lookup_elem(&syscall_hist, &index);
    u32 b = log2_bucket(delta);
    if (h && b < BERTH_HIST_BUCKETS)
        __sync_fetch_and_add(&h->buckets[b], 1);
    return 0;
}

/* berth-dmz, the runtime's last exec before the container's own (run from a
 * memfd named "berth-dmz", see Sources/BerthRuntime/programs/berth_dmz.c), is
 * the runtime's step, not the container's: it is not an exec event. */
static __always_inline bool is_berth_dmz(struct linux_binprm *bprm)
{
    static const char want[] = "memfd:berth-dmz";
    char name[sizeof want];
    const unsigned char *n = BPF_CORE_READ(bprm, file, f_path.dentry, d_name.name);
    if (bpf_probe_read_kernel_str(name, sizeof name, n) != sizeof want)
        return false;
    for (int i = 0; i < (int)sizeof want; i++)
        if (name[i] != want[i])
            return false;
    return true;
}

SEC("tp_btf/sched_process_exec")
int BPF_PROG(berth_exec, struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm)
{
    struct berth_tracked *t = current_tracked();
    if (!t || !(t->flags & BERTH_TRACE_EXEC) || is_berth_dmz(bprm))
        return 0;
    u32 slot = t->slot;
    struct berth_counters *c = counters_of(slot);
    if (c)
        c->execs++;
    struct berth_event *e = reserve_event(slot);
    if (!e)
        return 0;
    e->kind = BERTH_EVENT_EXEC;
    e->slot = slot;
    e->cgroup_id = cgroup_id_of(bpf_get_current_task_btf());
    e->timestamp_ns = bpf_ktime_get_ns();
    e->pid = BPF_CORE_READ(p, tgid);
    e->ppid = BPF_CORE_READ(p, real_parent, tgid);
    e->exit_status = 0;
    bpf_get_current_comm(e->comm, sizeof(e->comm));
    e->total_vm = e->anon_rss = e->file_rss = e->shmem_rss = e->memcg_usage = 0;
    bpf_probe_read_kernel_str(e->filename, sizeof(e->filename), BPF_CORE_READ(bprm, filename));
    unsigned long start = BPF_CORE_READ(p, mm, arg_start);
    unsigned long end = BPF_CORE_READ(p, mm, arg_end);
    u32 len = end > start ? (u32)(end - start) : 0;
    if (len > BERTH_ARGS_LEN)
        len = BERTH_ARGS_LEN;
    long rc = len >= BERTH_ARGS_LEN
        ? bpf_probe_read_user(e->args, BERTH_ARGS_LEN, (void *)start)
        : bpf_probe_read_user(e->args, len & (BERTH_ARGS_LEN - 1), (void *)start);
    e->args_len = rc == 0 ? len : 0;
    bpf_ringbuf_submit(e, 0);
    return 0;
}

SEC("tp_btf/sched_process_exit")
int BPF_PROG(berth_exit, struct task_struct *p)
{
    struct berth_tracked *t = current_tracked();
    if (!t || !(t->flags & BERTH_TRACE_EXEC))
        return 0;
    /* One event per process: the thread-group leader's exit. */
    if (BPF_CORE_READ(p, pid) != BPF_CORE_READ(p, tgid))
        return 0;
    u32 slot = t->slot;
    struct berth_counters *c = counters_of(slot);
    if (c)
        c->exits++;
    struct berth_event *e = reserve_event(slot);
    if (!e)
        return 0;
    __builtin_memset(e, 0, sizeof(*e));
    e->kind = BERTH_EVENT_EXIT;
    e->slot = slot;
    e->cgroup_id = cgroup_id_of(bpf_get_current_task_btf());
    e->timestamp_ns = bpf_ktime_get_ns();
    e->pid = BPF_CORE_READ(p, tgid);
    e->ppid = BPF_CORE_READ(p, real_parent, tgid);
    e->exit_status = BPF_CORE_READ(p, exit_code);
    bpf_get_current_comm(e->comm, sizeof(e->comm));
    bpf_ringbuf_submit(e, 0);
    return 0;
}

SEC("tp_btf/sched_process_fork")
int BPF_PROG(berth_fork, struct task_struct *parent, struct task_struct *child)
{
    struct berth_tracked *t = current_tracked();
    if (!t)
        return 0;
    struct berth_counters *c = counters_of(t->slot);
    if (!c)
        return 0;
    if (BPF_CORE_READ(child, pid) == BPF_CORE_READ(child, tgid))
        c->forks++;
    else
        c->threads++;
    return 0;
}

/* What an OOM event says about the victim's memory, read the way this kernel
 * keeps it: per-CPU rss counters since 6.2, one struct of atomics before. */
static __always_inline void fill_oom(struct berth_event *e, struct task_struct *victim)
{
    struct mm_struct *mm = BPF_CORE_READ(victim, mm);
    if (mm) {
        e->total_vm = BPF_CORE_READ(mm, total_vm);
        if (bpf_core_type_exists(struct mm_rss_stat___v61)) {
            struct mm_struct___v61 *old = (void *)mm;
            e->file_rss = BPF_CORE_READ(old, rss_stat.count[MM_FILEPAGES].counter);
            e->anon_rss = BPF_CORE_READ(old, rss_stat.count[MM_ANONPAGES].counter);
            e->shmem_rss = BPF_CORE_READ(old, rss_stat.count[MM_SHMEMPAGES].counter);
        } else {
            e->file_rss = BPF_CORE_READ(mm, rss_stat[MM_FILEPAGES].count);
            e->anon_rss = BPF_CORE_READ(mm, rss_stat[MM_ANONPAGES].count);
            e->shmem_rss = BPF_CORE_READ(mm, rss_stat[MM_SHMEMPAGES].count);
        }
    }
    int memory = bpf_core_enum_value(enum cgroup_subsys_id, memory_cgrp_id);
    if (memory >= 0 && memory < 16) {
        struct cgroup_subsys_state *css = BPF_CORE_READ(victim, cgroups, subsys[memory]);
        if (css)
            e->memcg_usage = BPF_CORE_READ((struct mem_cgroup *)css, memory.usage.counter);
    }
}

static __always_inline int oom_event(struct task_struct *victim, u32 victim_pid)
{
    u64 id = cgroup_id_of(victim);
    struct berth_tracked *t = tracked_entry(id);
    if (!t || !(t->flags & BERTH_TRACE_OOM))
        return 0;
    u32 slot = t->slot;
    struct berth_counters *c = counters_of(slot);
    if (c)
        c->oom_kills++;
    struct berth_event *e = reserve_event(slot);
    if (!e)
        return 0;
    __builtin_memset(e, 0, sizeof(*e));
    e->kind = BERTH_EVENT_OOM;
    e->slot = slot;
    e->cgroup_id = id;
    e->timestamp_ns = bpf_ktime_get_ns();
    e->pid = victim_pid;
    /* Only the victim's own task says who it is (the legacy hook may run in another). */
    if (BPF_CORE_READ(victim, tgid) == (pid_t)victim_pid) {
        e->ppid = BPF_CORE_READ(victim, real_parent, tgid);
        BPF_CORE_READ_STR_INTO(&e->comm, victim, comm);
        fill_oom(e, victim);
    }
    bpf_ringbuf_submit(e, 0);
    return 0;
}

/* The victim is chosen and marked here. Since Linux 6.6 the tracepoint hands over
 * the victim's task, whose own cgroup names it even when the cgroup is removed
 * right after. */
SEC("tp_btf/mark_victim")
int BPF_PROG(berth_oom, struct task_struct *victim, uid_t uid)
{
    return oom_event(victim, BPF_CORE_READ(victim, tgid));
}

/* Before 6.6 it hands over only the pid. A memory-cgroup OOM kill runs in the task
 * whose charge failed, which is in the same cgroup: the event is attributed to that
 * cgroup, and carries the victim's details when the charging task is the victim. */
SEC("tp_btf/mark_victim")
int BPF_PROG(berth_oom_pid, int pid)
{
    return oom_event(bpf_get_current_task_btf(), (u32)pid);
}

/* Run-queue latency: wakeup (or preemption) stamps the task, the switch that runs
 * it measures. The switch is the hottest tracepoint there is: it tests the filter, then
 * task storage, which only tracked tasks have. */
static __always_inline void stamp_wakeup(struct task_struct *p)
{
    u64 id = cgroup_id_of(p);
    struct berth_tracked *t = tracked_entry(id);
    if (!t || !(t->flags & BERTH_TRACE_RUNQ))
        return;
    struct task_info *ti = bpf_task_storage_get(&task_info, p, 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
    if (ti) {
        ti->cgroup_id = id;
        ti->slot = t->slot;
        ti->flags = t->flags;
        ti->wakeup = bpf_ktime_get_ns();
    }
}

SEC("tp_btf/sched_wakeup")
int BPF_PROG(berth_wakeup, struct task_struct *p)
{
    stamp_wakeup(p);
    return 0;
}

SEC("tp_btf/sched_wakeup_new")
int BPF_PROG(berth_wakeup_new, struct task_struct *p)
{
    stamp_wakeup(p);
    return 0;
}

SEC("tp_btf/sched_switch")
int BPF_PROG(berth_switch, bool preempt, struct task_struct *prev, struct task_struct *next,
             unsigned int prev_state)
{
    /* A preempted task goes straight back on the run queue. */
    if (prev_state == 0 && maybe_tracked(cgroup_id_of(prev))) {
        struct task_info *pi = bpf_task_storage_get(&task_info, prev, 0, 0);
        if (pi && (pi->flags & BERTH_TRACE_RUNQ))
            pi->wakeup = bpf_ktime_get_ns();
    }
    if (!maybe_tracked(cgroup_id_of(next)))
        return 0;
    struct task_info *ti = bpf_task_storage_get(&task_info, next, 0, 0);
    if (!ti || !ti->wakeup)
        return 0;
    u64 delta = bpf_ktime_get_ns() - ti->wakeup;
    ti->wakeup = 0;
    u32 slot = ti->slot;
    if (slot >= BERTH_MAX_SLOTS)
        return 0;
    u32 index = slot * BERTH_HIST_BUCKETS + log2_bucket(delta);
    u64 *bucket = bpf_map_lookup_elem(&runq_hist, &index);
    if (bucket)
        (*bucket)++;
    struct berth_counters *c = counters_of(slot);
    if (c) {
        c->runq_waits++;
        c->runq_total_ns += delta;
    }
    return 0;
}

/* The floor, for the benchmark only: an empty program on each syscall tracepoint.
 * What any syscall tracer pays on this kernel before doing anything. */
SEC("tp_btf/sys_enter")
int BPF_PROG(berth_empty_enter)
{
    return 0;
}

SEC("tp_btf/sys_exit")
int BPF_PROG(berth_empty_exit)
{
    return 0;
}
