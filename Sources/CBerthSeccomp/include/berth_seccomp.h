/*
 * berth_seccomp.h — libseccomp, for compiling OCI seccomp profiles.
 * Category: a third-party C library (the macros below cannot be called from Swift).
 */
#ifndef BERTH_SECCOMP_H
#define BERTH_SECCOMP_H
#include <seccomp.h>
#include <stdint.h>

static inline uint32_t berth_scmp_act_errno(uint16_t e) { return SCMP_ACT_ERRNO(e); }
static inline uint32_t berth_scmp_act_trace(uint16_t e) { return SCMP_ACT_TRACE(e); }

/* Exports the compiled filter into a memfd and returns it (lseek'd to 0), or -errno. */
int berth_seccomp_export(scmp_filter_ctx ctx);
#endif
