#ifndef BERTH_TLS_H
#define BERTH_TLS_H

/* The daemon's TLS front (OpenSSL): a server context that requires a client
 * certificate signed by the given CA (mutual TLS), and a proxy that carries one
 * accepted connection's decrypted bytes to and from a backend descriptor. */

typedef struct berth_tls_server berth_tls_server;

/* NULL on failure, with a message in err (OpenSSL's reason, naming the file). */
berth_tls_server *berth_tls_server_new(const char *cert, const char *key, const char *ca, char *err, int errlen);
void berth_tls_server_free(berth_tls_server *s);

/* Handshake on client_fd, then copy both ways until either side closes; a
 * half-close of the client shuts the backend's write side (stdin EOF). Returns
 * 0, or -1 when the handshake failed (err says why). Closes neither fd. */
int berth_tls_proxy(berth_tls_server *s, int client_fd, int backend_fd, char *err, int errlen);

#endif

/* The client side (berth --host tcp://… --tlsverify): connect TLS on tcp_fd with a
 * client certificate, verifying the server against ca, then carry plain bytes
 * between local_fd and the TLS stream until either side ends. The handshake runs
 * before it returns success; the copying happens in berth_tls_client_run. */
typedef struct berth_tls_client berth_tls_client;
berth_tls_client *berth_tls_client_connect(int tcp_fd, const char *ca, const char *cert, const char *key, char *err, int errlen);
void berth_tls_client_run(berth_tls_client *c, int local_fd);
