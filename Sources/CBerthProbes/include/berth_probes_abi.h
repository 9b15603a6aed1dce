/*
 * berth_probes_abi.h — the layout shared by the BPF programs (BerthProbes/bpf) and
 * the user side: map keys and values, event records, flags. One definition for both.
 * Plain fixed-width types only: this header is compiled for -target bpf too.
 */
#ifndef BERTH_PROBES_ABI_H
#define BERTH_PROBES_ABI_H

#ifdef __bpf__
typedef unsigned int berth_u32;
typedef unsigned long long berth_u64;
typedef int berth_s32;
typedef long long berth_s64;
#else
#include <stdint.h>
typedef uint32_t berth_u32;
typedef uint64_t berth_u64;
typedef int32_t berth_s32;
typedef int64_t berth_s64;
#endif

/* Containers traced at once by one probe set; syscall numbers counted (x86_64 < 512). */
#define BERTH_MAX_SLOTS 64
#define BERTH_MAX_SYSCALLS 512
/* log2 buckets: bucket i holds values in [2^i, 2^(i+1)) ns; bucket 0 also holds 0. */
#define BERTH_HIST_BUCKETS 32
#define BERTH_FILENAME_LEN 128
#define BERTH_ARGS_LEN 128
#define BERTH_COMM_LEN 16
/* The tracked-id filter: 1024 bits, one per (cgroup id mod 1024). */
#define BERTH_FILTER_WORDS 16

/* What is traced for a cgroup (tracked map value flags). */
#define BERTH_TRACE_SYSCALLS (1u << 0)
#define BERTH_TRACE_LATENCY  (1u << 1)
#define BERTH_TRACE_EXEC     (1u << 2)
#define BERTH_TRACE_OOM      (1u << 3)
#define BERTH_TRACE_RUNQ     (1u << 4)
/* Benchmark only: empty programs on sys_enter and sys_exit (the kernel's floor). */
#define BERTH_TRACE_EMPTY    (1u << 5)

/* tracked: v2 cgroup id -> this. */
struct berth_tracked {
    berth_u32 slot;
    berth_u32 flags;
};

/* syscalls (per-CPU array, index slot * BERTH_MAX_SYSCALLS + nr). */
struct berth_syscall_stat {
    berth_u64 count;
    berth_u64 total_ns;   /* sum of enter→exit latencies */
    berth_u64 timed;      /* calls whose latency was measured (exit seen) */
};

/* syscall_hist (array, index slot * BERTH_MAX_SYSCALLS + nr): latency histogram of
 * one syscall of one container. Shared by the CPUs (atomic adds): one 256-byte
 * entry per syscall and slot, 8 MiB whatever the number of CPUs, and an inlined
 * array lookup instead of a hash on every traced syscall's exit. */
struct berth_hist {
    berth_u64 buckets[BERTH_HIST_BUCKETS];
};

/* counters (per-CPU array, index slot; slot BERTH_MAX_SLOTS is "not attributable"). */
struct berth_counters {
    berth_u64 forks;        /* new processes */
    berth_u64 threads;      /* new threads */
    berth_u64 execs;
    berth_u64 exits;
    berth_u64 oom_kills;
    berth_u64 lost_events;  /* ring buffer full: the event was counted here, not sent */
    berth_u64 runq_waits;   /* wakeup→run intervals measured */
    berth_u64 runq_total_ns;
};

enum berth_event_kind {
    BERTH_EVENT_EXEC = 1,
    BERTH_EVENT_EXIT = 2,
    BERTH_EVENT_OOM = 3,
};

/* One ring buffer record. */
struct berth_event {
    berth_u32 kind;
    berth_u32 slot;
    berth_u64 cgroup_id;
    berth_u64 timestamp_ns;     /* CLOCK_MONOTONIC (bpf_ktime_get_ns) */
    berth_u32 pid;              /* tgid as user space sees it from the host */
    berth_u32 ppid;
    berth_s32 exit_status;      /* EXIT: wait status (code << 8 | signal) */
    berth_u32 args_len;         /* EXEC: bytes of args used */
    char comm[BERTH_COMM_LEN];
    /* OOM: the victim's memory at the time, in pages; memcg usage in pages (0 if unknown). */
    berth_u64 total_vm;
    berth_u64 anon_rss;
    berth_u64 file_rss;
    berth_u64 shmem_rss;
    berth_u64 memcg_usage;
    char filename[BERTH_FILENAME_LEN];  /* EXEC: the path given to execve */
    char args[BERTH_ARGS_LEN];          /* EXEC: argv head, NUL-separated */
};

#endif
