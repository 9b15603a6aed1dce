/*
 * berth_net.h — what Swift cannot do for container networking: switch one
 * thread's network namespace (to make one or open a socket inside one), and
 * run nftables commands through libnftables.
 */
#ifndef BERTH_NET_H
#define BERTH_NET_H

#ifdef __cplusplus
extern "C" {
#endif

/* A new network namespace, bind-mounted on `path` (an existing file); the
 * calling thread is back in its own namespace on return. -1 with errno. */
int berth_netns_create(const char *path);

/* socket(2) made inside the network namespace `nsfd`: the socket stays in
 * that namespace; the calling thread returns to its own. -1 with errno. */
int berth_socket_in_netns(int nsfd, int domain, int type, int protocol);

/* Runs an nftables command buffer (JSON when `json`); with `output`, the
 * listing (JSON, with handles) is returned in *output (free it). On failure
 * returns -1 and *error holds nft's message (free it). */
int berth_nft_run(const char *command, int json, char **output, char **error);

#ifdef __cplusplus
}
#endif
#endif
