#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <unistd.h>
#include <nftables/libnftables.h>
#include "berth_net.h"

/* Another namespace for this thread only: CLONE_NEWNET is per task, so the
 * process's other threads never see it. If the way back fails the thread
 * would go on in the wrong namespace: that cannot be recovered from. */
static void back_to(int original) {
    if (setns(original, CLONE_NEWNET) < 0) abort();
    close(original);
}

int berth_netns_create(const char *path) {
    int original = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
    if (original < 0) return -1;
    if (unshare(CLONE_NEWNET) < 0) {
        int e = errno;
        close(original);
        errno = e;
        return -1;
    }
    int r = mount("/proc/thread-self/ns/net", path, NULL, MS_BIND, NULL);
    int e = errno;
    back_to(original);
    errno = e;
    return r;
}

int berth_socket_in_netns(int nsfd, int domain, int type, int protocol) {
    int original = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
    if (original < 0) return -1;
    if (setns(nsfd, CLONE_NEWNET) < 0) {
        int e = errno;
        close(original);
        errno = e;
        return -1;
    }
    int fd = socket(domain, type, protocol);
    int e = errno;
    back_to(original);
    errno = e;
    return fd;
}

int berth_nft_run(const char *command, int json, char **output, char **error) {
    *error = NULL;
    if (output) *output = NULL;
    struct nft_ctx *ctx = nft_ctx_new(NFT_CTX_DEFAULT);
    if (!ctx) {
        *error = strdup("nft_ctx_new failed");
        return -1;
    }
    unsigned int flags = json ? (NFT_CTX_OUTPUT_JSON | NFT_CTX_OUTPUT_HANDLE) : NFT_CTX_OUTPUT_HANDLE;
    nft_ctx_output_set_flags(ctx, flags);
    nft_ctx_buffer_output(ctx);
    nft_ctx_buffer_error(ctx);
    int r = nft_run_cmd_from_buffer(ctx, command);
    if (r != 0) {
        const char *text = nft_ctx_get_error_buffer(ctx);
        *error = strdup(text && *text ? text : "nft command failed");
    } else if (output) {
        const char *text = nft_ctx_get_output_buffer(ctx);
        *output = strdup(text ? text : "");
    }
    nft_ctx_free(ctx);
    return r == 0 ? 0 : -1;
}
