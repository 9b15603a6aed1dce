/* internal.h — shared between launch.c (parent side) and child.c (child side). */
#ifndef BERTH_INTERNAL_H
#define BERTH_INTERNAL_H
#include "berth_launch.h"
#include <stddef.h>

void berth_copy(char *dst, size_t cap, const char *src);
void berth_reset_signals(void);
__attribute__((noreturn)) void berth_child_fail(int stage, int err, const char *detail);
__attribute__((noreturn)) void berth_child_main(const struct berth_plan *p, int fd);
__attribute__((noreturn)) void berth_exec_child_main(const struct berth_plan *p, int fd);
void berth_process_tail(const struct berth_plan *p);
#endif
