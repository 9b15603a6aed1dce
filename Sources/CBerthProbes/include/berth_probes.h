/*
 * berth_probes.h — loading, attaching and reading berth's BPF programs with libbpf.
 * Category: a third-party C library (libbpf's skeleton-less object API, ring buffer
 * callbacks and the log hook are easier to hold in C than in Swift).
 */
#ifndef BERTH_PROBES_H
#define BERTH_PROBES_H
#include <stddef.h>
#include <stdint.h>
#include <bpf/bpf.h>
#include "berth_probes_abi.h"

struct berth_probes;

/* Opens the object from memory, keeps only the programs the BERTH_TRACE_* mask
 * needs, and loads them. NULL on failure, with a message in err naming the
 * program and the end of the verifier's log. */
struct berth_probes *berth_probes_load(const void *object, size_t size, uint32_t what,
                                       char *err, size_t err_size);
/* BERTH_TRACE_* parts asked for but not loaded because this kernel cannot run
 * them safely (run-queue latency before Linux 6.4). */
uint32_t berth_probes_withheld(struct berth_probes *p);
/* Attaches every loaded program; 0 or -errno with a message in err. */
int berth_probes_attach(struct berth_probes *p, char *err, size_t err_size);
/* Detaches every program (they stay loaded, maps keep their contents); attach again to resume. */
void berth_probes_detach(struct berth_probes *p);
/* The fd of a map by name, or -1. */
int berth_probes_map_fd(struct berth_probes *p, const char *name);

typedef int (*berth_event_fn)(void *context, const struct berth_event *event);
/* Waits up to timeout_ms for events and hands each to fn; the number handled or -errno. */
int berth_probes_poll(struct berth_probes *p, int timeout_ms, berth_event_fn fn, void *context);

/* Loaded programs, for their self-cost: count, then name/fd by index. */
int berth_probes_program_count(struct berth_probes *p);
const char *berth_probes_program_name(struct berth_probes *p, int index);
/* run_time_ns and run_cnt of a program (counted while BPF stats are enabled). */
int berth_probes_program_stats(struct berth_probes *p, int index, uint64_t *run_time_ns, uint64_t *run_count);

/* Kernel ids of the loaded programs (maps == 0) or of the maps (maps == 1): up to
 * max into ids; returns how many. For checking that nothing outlives the set. */
int berth_probes_kernel_ids(struct berth_probes *p, int maps, uint32_t *ids, int max);

/* Detaches and unloads everything: programs, links, maps. */
void berth_probes_destroy(struct berth_probes *p);

/* Possible CPUs (the width of a per-CPU map value), or -errno. */
int berth_probes_possible_cpus(void);
/* BPF run-time statistics on while the returned fd is open; -errno. */
int berth_probes_enable_stats(void);
#endif
