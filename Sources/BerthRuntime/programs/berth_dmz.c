/*
 * berth-dmz — the last exec before a container's process (CVE-2019-5736).
 * Category: a freestanding C program (no libc), built by the package's plugin
 * with the toolchain's clang and embedded in berth-runtime.
 *
 * Why: until its final execve, the process that enters a container runs the
 * runtime's own binary, so /proc/PID/exe of that process is the host file.
 * Non-dumpable hides it from the container's other processes, but a container
 * binary that is a script with "#!/proc/self/exe" makes execve run the host
 * binary inside the container, dumpable, where a process of the container can
 * hold it and rewrite it once it exits. The child therefore first execs this
 * program from a sealed memfd: /proc/self/exe is then an unwritable copy of a
 * few hundred bytes, and the container's binary is exec'd from here.
 *
 * Contract with the child (child.c, final_exec): argv is the container
 * process's argv; the last environment entry is
 * "BERTH_DMZ_EXEC=<sync fd>:<path>", removed before the execve. On failure an
 * ERROR{exec, errno, path} goes to the sync socket, as the child would send it.
 * Without that entry (a script re-entering through /proc/self/exe), it exits 127.
 */
#include "berth_launch.h"

#if defined(__x86_64__)
enum { NR_write = 1, NR_fcntl = 72, NR_execve = 59, NR_nanosleep = 35, NR_exit_group = 231 };
static long sys3(long n, long a, long b, long c) {
    long r;
    __asm__ volatile("syscall" : "=a"(r) : "a"(n), "D"(a), "S"(b), "d"(c) : "rcx", "r11", "memory");
    return r;
}
__asm__(".text\n.global _start\n_start:\n\txor %rbp, %rbp\n\tmov %rsp, %rdi\n\tand $-16, %rsp\n\tcall dmz_main\n\thlt\n");
#elif defined(__aarch64__)
enum { NR_write = 64, NR_fcntl = 25, NR_execve = 221, NR_nanosleep = 101, NR_exit_group = 94 };
static long sys3(long n, long a, long b, long c) {
    register long x8 __asm__("x8") = n;
    register long x0 __asm__("x0") = a;
    register long x1 __asm__("x1") = b;
    register long x2 __asm__("x2") = c;
    __asm__ volatile("svc 0" : "+r"(x0) : "r"(x8), "r"(x1), "r"(x2) : "memory");
    return x0;
}
__asm__(".text\n.global _start\n_start:\n\tmov x29, #0\n\tmov x0, sp\n\tbl dmz_main\n");
#else
#error "berth-dmz: no syscall glue for this architecture"
#endif

/* The compiler may call these for struct copies even in a freestanding build. */
void *memset(void *d, int c, unsigned long n) {
    unsigned char *p = d;
    while (n--) *p++ = (unsigned char)c;
    return d;
}
void *memcpy(void *d, const void *s, unsigned long n) {
    unsigned char *p = d;
    const unsigned char *q = s;
    while (n--) *p++ = *q++;
    return d;
}

static const char marker[] = "BERTH_DMZ_EXEC=";

__attribute__((noreturn)) static void leave(int code) {
    for (;;) sys3(NR_exit_group, code, 0, 0);
}

__attribute__((noreturn, used)) void dmz_main(long *sp) {
    long argc = sp[0];
    char **argv = (char **)(sp + 1);
    char **envp = argv + argc + 1;
    long envc = 0;
    while (envp[envc]) envc++;
    const char *entry = envc > 0 ? envp[envc - 1] : 0;
    for (unsigned long i = 0; entry && i < sizeof marker - 1; i++)
        if (entry[i] != marker[i]) entry = 0;
    if (!entry) {
        static const char msg[] = "berth-dmz: not started by berth-runtime; nothing to run\n";
        sys3(NR_write, 2, (long)msg, sizeof msg - 1);
        leave(127);
    }
    envp[envc - 1] = 0;
    const char *at = entry + sizeof marker - 1;
    long sync = 0;
    while (*at >= '0' && *at <= '9') sync = sync * 10 + (*at++ - '0');
    const char *path = *at == ':' ? at + 1 : at;
    /* the sync socket reports a failed execve; a successful one closes it (EOF) */
    sys3(NR_fcntl, sync, 2 /* F_SETFD */, 1 /* FD_CLOEXEC */);
    long r = 0;
    /* ETXTBSY is transient (a forked writer still holds the file): retry ~100 ms */
    for (int attempt = 0; attempt < 50; attempt++) {
        r = sys3(NR_execve, (long)path, (long)argv, (long)envp);
        if (r != -26 /* ETXTBSY */) break;
        long ts[2] = {0, 2 * 1000 * 1000};
        sys3(NR_nanosleep, (long)ts, 0, 0);
    }
    struct berth_sync_msg msg;
    memset(&msg, 0, sizeof msg);
    msg.type = BERTH_SYNC_ERROR;
    msg.stage = BERTH_STAGE_EXEC;
    msg.err = (int32_t)-r;
    for (int i = 0; path[i] && i < BERTH_DETAIL_MAX - 1; i++) msg.detail[i] = path[i];
    sys3(NR_write, sync, (long)&msg, sizeof msg);
    leave(1);
}
