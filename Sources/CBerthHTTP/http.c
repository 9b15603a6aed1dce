#include "berth_http.h"
#include <curl/curl.h>
#include <stdio.h>
#include <string.h>

static CURL *handle;

static size_t on_read(char *buf, size_t size, size_t n, void *p) {
    const struct berth_http_request *r = p;
    size_t got = r->read(r->read_ctx, buf, size * n);
    return got == (size_t)-1 ? CURL_READFUNC_ABORT : got;
}

static size_t on_write(char *buf, size_t size, size_t n, void *p) {
    const struct berth_http_request *r = p;
    if (!r->write) return size * n;
    return r->write(r->write_ctx, buf, size * n);
}

static size_t on_header(char *buf, size_t size, size_t n, void *p) {
    const struct berth_http_request *r = p;
    if (!r->header) return size * n;
    return r->header(r->header_ctx, buf, size * n);
}

int berth_http_perform(const struct berth_http_request *r, long *status, char *error, size_t error_len) {
    if (!handle) {
        curl_global_init(CURL_GLOBAL_DEFAULT);
        handle = curl_easy_init();
        if (!handle) { snprintf(error, error_len, "cannot start libcurl"); return -1; }
    } else {
        curl_easy_reset(handle);   /* keeps the connection cache */
    }
    char curl_error[CURL_ERROR_SIZE] = "";
    struct curl_slist *list = NULL;
    for (int i = 0; i < r->header_count; i++) list = curl_slist_append(list, r->headers[i]);
    /* no "Expect: 100-continue" round trip before uploads */
    list = curl_slist_append(list, "Expect:");
    curl_easy_setopt(handle, CURLOPT_URL, r->url);
    curl_easy_setopt(handle, CURLOPT_HTTPHEADER, list);
    curl_easy_setopt(handle, CURLOPT_ERRORBUFFER, curl_error);
    curl_easy_setopt(handle, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(handle, CURLOPT_FOLLOWLOCATION, 1L);   /* blob GETs redirect to storage */
    curl_easy_setopt(handle, CURLOPT_MAXREDIRS, 10L);
    curl_easy_setopt(handle, CURLOPT_CONNECTTIMEOUT, r->connect_timeout > 0 ? r->connect_timeout : 30L);
    curl_easy_setopt(handle, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(handle, CURLOPT_LOW_SPEED_TIME, r->low_speed_time > 0 ? r->low_speed_time : 60L);
    curl_easy_setopt(handle, CURLOPT_USERAGENT, "berth/0.3");
    curl_easy_setopt(handle, CURLOPT_WRITEFUNCTION, on_write);
    curl_easy_setopt(handle, CURLOPT_WRITEDATA, (void *)r);
    curl_easy_setopt(handle, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(handle, CURLOPT_HEADERDATA, (void *)r);
    if (r->userpwd) {
        curl_easy_setopt(handle, CURLOPT_HTTPAUTH, CURLAUTH_BASIC);
        curl_easy_setopt(handle, CURLOPT_USERPWD, r->userpwd);
    }
    if (strcmp(r->method, "HEAD") == 0) {
        curl_easy_setopt(handle, CURLOPT_NOBODY, 1L);
    } else if (strcmp(r->method, "GET") != 0) {
        curl_easy_setopt(handle, CURLOPT_CUSTOMREQUEST, r->method);
        if (r->read) {
            curl_easy_setopt(handle, CURLOPT_UPLOAD, 1L);
            curl_easy_setopt(handle, CURLOPT_READFUNCTION, on_read);
            curl_easy_setopt(handle, CURLOPT_READDATA, (void *)r);
            if (r->upload_size >= 0) curl_easy_setopt(handle, CURLOPT_INFILESIZE_LARGE, (curl_off_t)r->upload_size);
        } else {
            curl_easy_setopt(handle, CURLOPT_POSTFIELDSIZE, 0L);
            curl_easy_setopt(handle, CURLOPT_POSTFIELDS, "");
        }
    }
    CURLcode rc = curl_easy_perform(handle);
    curl_slist_free_all(list);
    if (rc != CURLE_OK) {
        snprintf(error, error_len, "%s", curl_error[0] ? curl_error : curl_easy_strerror(rc));
        return -1;
    }
    curl_easy_getinfo(handle, CURLINFO_RESPONSE_CODE, status);
    return 0;
}
