/*
 * berth_http.h — libcurl for the registry client: one easy handle per process
 * (connections are kept alive between requests), body streamed both ways
 * through callbacks. Category: a third-party C library with variadic setopt.
 */
#ifndef BERTH_HTTP_H
#define BERTH_HTTP_H
#include <stddef.h>
#include <stdint.h>

/* Fills buf; returns bytes, 0 at the end, or (size_t)-1 to abort. */
typedef size_t (*berth_http_read_fn)(void *ctx, char *buf, size_t len);
/* Takes len bytes; returns len, or anything else to abort. */
typedef size_t (*berth_http_write_fn)(void *ctx, const char *buf, size_t len);

struct berth_http_request {
    const char *method;
    const char *url;
    const char *const *headers;  /* "Name: value" */
    int header_count;
    berth_http_read_fn read;     /* request body, or NULL */
    void *read_ctx;
    int64_t upload_size;         /* -1: unknown (chunked transfer encoding) */
    berth_http_write_fn write;   /* response body, or NULL to drop it */
    void *write_ctx;
    berth_http_write_fn header;  /* each response header line, or NULL */
    void *header_ctx;
    const char *userpwd;         /* basic auth "user:password", or NULL */
    long connect_timeout;        /* seconds */
    long low_speed_time;         /* abort when under 1 byte/s for this long */
};

/* 0 with *status set, or -1 with a message in error (curl's words). */
int berth_http_perform(const struct berth_http_request *r, long *status, char *error, size_t error_len);
#endif
