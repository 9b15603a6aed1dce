/*
 * berth_kernel_types.h — the few kernel structures the probes read, declared with
 * only the fields used. preserve_access_index makes every access a CO-RE relocation:
 * libbpf finds each field by name in the running kernel's BTF
 * (/sys/kernel/btf/vmlinux) at load time, so offsets are never compiled in and no
 * generated 130,000-line vmlinux.h is needed.
 */
#ifndef BERTH_KERNEL_TYPES_H
#define BERTH_KERNEL_TYPES_H

typedef unsigned char __u8;
typedef unsigned short __u16;
typedef unsigned int __u32;
typedef unsigned long long __u64;
typedef signed char __s8;
typedef short __s16;
typedef int __s32;
typedef long long __s64;
typedef __u16 __be16;
typedef __u32 __be32;
typedef __u32 __wsum;
typedef __u64 u64;
typedef __u32 u32;
typedef __s64 s64;
typedef int pid_t;
typedef unsigned int uid_t;
typedef _Bool bool;
#define true 1
#define false 0

/* The map and program type numbers (uapi linux/bpf.h). */
enum bpf_map_type {
    BPF_MAP_TYPE_HASH = 1,
    BPF_MAP_TYPE_ARRAY = 2,
    BPF_MAP_TYPE_PERCPU_HASH = 5,
    BPF_MAP_TYPE_PERCPU_ARRAY = 6,
    BPF_MAP_TYPE_RINGBUF = 27,
    BPF_MAP_TYPE_TASK_STORAGE = 29,
};
enum {
    BPF_ANY = 0,
    BPF_NOEXIST = 1,
    BPF_F_NO_PREALLOC = 1,
    BPF_LOCAL_STORAGE_GET_F_CREATE = 1,
};

#pragma clang attribute push (__attribute__((preserve_access_index)), apply_to = record)

struct kernfs_node { u64 id; };
struct cgroup { struct kernfs_node *kn; };
struct cgroup_subsys_state { struct cgroup *cgroup; };
struct css_set {
    struct cgroup_subsys_state *subsys[16];
    struct cgroup *dfl_cgrp;
};
struct percpu_counter { s64 count; };
struct mm_struct {
    unsigned long total_vm;
    unsigned long arg_start;
    unsigned long arg_end;
    struct percpu_counter rss_stat[4];
};
struct task_struct {
    pid_t pid;
    pid_t tgid;
    int exit_code;
    char comm[16];
    struct task_struct *real_parent;
    struct css_set *cgroups;
    struct mm_struct *mm;
};
struct qstr { const unsigned char *name; };
struct dentry { struct qstr d_name; };
struct path { struct dentry *dentry; };
struct file { struct path f_path; };
struct linux_binprm { struct file *file; const char *filename; };
typedef struct { long counter; } atomic_long_t;
struct page_counter { atomic_long_t usage; };
struct mem_cgroup {
    struct cgroup_subsys_state css;
    struct page_counter memory;
};
struct pt_regs { unsigned long orig_ax; };

/* Before Linux 6.2 the rss counters were one struct of atomics, not per-CPU
 * counters; the ___v61 flavours let CO-RE read whichever the kernel has. */
struct mm_rss_stat___v61 { atomic_long_t count[4]; };
struct mm_struct___v61 { struct mm_rss_stat___v61 rss_stat; };

#pragma clang attribute pop

enum cgroup_subsys_id { memory_cgrp_id = 4 };
enum { MM_FILEPAGES = 0, MM_ANONPAGES = 1, MM_SWAPENTS = 2, MM_SHMEMPAGES = 3 };

#endif
