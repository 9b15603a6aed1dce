#include "berth_tls.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

struct berth_tls_server { SSL_CTX *ctx; };

static void reason(char *err, int errlen, const char *what, const char *file) {
    unsigned long e = ERR_get_error();
    char buf[256] = "unknown error";
    if (e) ERR_error_string_n(e, buf, sizeof buf);
    snprintf(err, (size_t)errlen, "%s%s%s: %s", what, file ? " " : "", file ? file : "", buf);
    ERR_clear_error();
}

berth_tls_server *berth_tls_server_new(const char *cert, const char *key, const char *ca, char *err, int errlen) {
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx) { reason(err, errlen, "TLS context", NULL); return NULL; }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) { reason(err, errlen, "server certificate", cert); goto fail; }
    if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1) { reason(err, errlen, "server key", key); goto fail; }
    if (SSL_CTX_check_private_key(ctx) != 1) { reason(err, errlen, "server key does not match the certificate", key); goto fail; }
    if (SSL_CTX_load_verify_locations(ctx, ca, NULL) != 1) { reason(err, errlen, "CA certificate", ca); goto fail; }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
    berth_tls_server *s = malloc(sizeof *s);
    s->ctx = ctx;
    return s;
fail:
    SSL_CTX_free(ctx);
    return NULL;
}

void berth_tls_server_free(berth_tls_server *s) {
    if (!s) return;
    SSL_CTX_free(s->ctx);
    free(s);
}

static int write_all(int fd, const char *buf, int n) {
    for (int off = 0; off < n;) {
        ssize_t w = write(fd, buf + off, (size_t)(n - off));
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return -1;
        off += (int)w;
    }
    return 0;
}

/* After the handshake the TLS socket is non-blocking: a read that only finds
 * protocol records (TLS 1.3 session tickets, say) returns WANT_READ instead of
 * blocking while the other side has bytes to send. */
static void set_nonblocking(int fd) { fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK); }

/* SSL_write of all of buf on a non-blocking socket: waits in poll when it must. */
static int ssl_write_all(SSL *ssl, int fd, const char *buf, int n) {
    for (int off = 0; off < n;) {
        int w = SSL_write(ssl, buf + off, n - off);
        if (w > 0) { off += w; continue; }
        int e = SSL_get_error(ssl, w);
        if (e != SSL_ERROR_WANT_WRITE && e != SSL_ERROR_WANT_READ) return -1;
        struct pollfd p = {.fd = fd, .events = (short)(e == SSL_ERROR_WANT_WRITE ? POLLOUT : POLLIN)};
        if (poll(&p, 1, -1) < 0 && errno != EINTR) return -1;
    }
    return 0;
}

int berth_tls_proxy(berth_tls_server *s, int client_fd, int backend_fd, char *err, int errlen) {
    SSL *ssl = SSL_new(s->ctx);
    if (!ssl) { reason(err, errlen, "TLS session", NULL); return -1; }
    SSL_set_fd(ssl, client_fd);
    if (SSL_accept(ssl) != 1) {
        reason(err, errlen, "TLS handshake (a client certificate signed by the CA is required)", NULL);
        SSL_free(ssl);
        return -1;
    }
    set_nonblocking(client_fd);
    char buf[16384];
    int client_open = 1, backend_open = 1;
    while (backend_open) {
        struct pollfd fds[2] = {{.fd = client_open ? client_fd : -1, .events = POLLIN}, {.fd = backend_fd, .events = POLLIN}};
        /* bytes OpenSSL already decrypted do not show in poll */
        int pending = client_open && SSL_pending(ssl) > 0;
        if (!pending && poll(fds, 2, -1) < 0) {
            if (errno == EINTR) continue;
            break;
        }
        if (pending || (fds[0].revents & (POLLIN | POLLHUP | POLLERR))) {
            int n = SSL_read(ssl, buf, sizeof buf);
            if (n > 0) {
                if (write_all(backend_fd, buf, n) < 0) break;
            } else {
                int e = SSL_get_error(ssl, n);
                if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) continue;
                /* the client is done sending: the backend sees EOF, its answer still flows */
                client_open = 0;
                shutdown(backend_fd, SHUT_WR);
            }
        }
        if (fds[1].revents & (POLLIN | POLLHUP | POLLERR)) {
            ssize_t n = read(backend_fd, buf, sizeof buf);
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) { backend_open = 0; break; }
            if (ssl_write_all(ssl, client_fd, buf, (int)n) < 0) break;
        }
    }
    SSL_shutdown(ssl);
    SSL_free(ssl);
    ERR_clear_error();
    return 0;
}

struct berth_tls_client { SSL_CTX *ctx; SSL *ssl; int fd; };

berth_tls_client *berth_tls_client_connect(int tcp_fd, const char *ca, const char *cert, const char *key, char *err, int errlen) {
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx) { reason(err, errlen, "TLS context", NULL); return NULL; }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL *ssl = NULL;
    if (SSL_CTX_load_verify_locations(ctx, ca, NULL) != 1) { reason(err, errlen, "CA certificate", ca); goto fail; }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    if (cert && SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) { reason(err, errlen, "client certificate", cert); goto fail; }
    if (key && SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1) { reason(err, errlen, "client key", key); goto fail; }
    ssl = SSL_new(ctx);
    SSL_set_fd(ssl, tcp_fd);
    if (SSL_connect(ssl) != 1) { reason(err, errlen, "TLS handshake with the daemon", NULL); goto fail; }
    berth_tls_client *c = malloc(sizeof *c);
    c->ctx = ctx; c->ssl = ssl; c->fd = tcp_fd;
    return c;
fail:
    if (ssl) SSL_free(ssl);
    SSL_CTX_free(ctx);
    return NULL;
}

void berth_tls_client_run(berth_tls_client *c, int local_fd) {
    set_nonblocking(c->fd);
    char buf[16384];
    int local_open = 1;
    for (;;) {
        struct pollfd fds[2] = {{.fd = local_open ? local_fd : -1, .events = POLLIN}, {.fd = c->fd, .events = POLLIN}};
        int pending = SSL_pending(c->ssl) > 0;
        if (!pending && poll(fds, 2, -1) < 0) { if (errno == EINTR) continue; break; }
        if (pending || (fds[1].revents & (POLLIN | POLLHUP | POLLERR))) {
            int n = SSL_read(c->ssl, buf, sizeof buf);
            if (n > 0) { if (write_all(local_fd, buf, n) < 0) break; }
            else {
                int e = SSL_get_error(c->ssl, n);
                if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) continue;
                /* the daemon is done: so is the local side */
                shutdown(local_fd, SHUT_RDWR);
                break;
            }
        }
        if (fds[0].revents & (POLLIN | POLLHUP | POLLERR)) {
            ssize_t n = read(local_fd, buf, sizeof buf);
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) { local_open = 0; shutdown(c->fd, SHUT_WR); continue; }
            if (ssl_write_all(c->ssl, c->fd, buf, (int)n) < 0) break;
        }
    }
    SSL_shutdown(c->ssl);
    SSL_free(c->ssl);
    SSL_CTX_free(c->ctx);
    close(c->fd);
    free(c);
}
