/*
 * berth_image.h — the C libraries behind image content: libcrypto's SHA-256
 * (hardware-accelerated), zlib (gzip layers) and libzstd (zstd layers).
 * Category: third-party C libraries whose init calls are macros or whose
 * streams keep state Swift should not lay out by hand.
 */
#ifndef BERTH_IMAGE_H
#define BERTH_IMAGE_H
#include <stddef.h>
#include <stdint.h>

/* SHA-256 */
typedef struct berth_sha256 berth_sha256;
berth_sha256 *berth_sha256_new(void);
void berth_sha256_update(berth_sha256 *h, const void *data, size_t len);
/* Writes 32 bytes; the context can be reused after berth_sha256_reset. */
void berth_sha256_final(berth_sha256 *h, uint8_t out[32]);
void berth_sha256_reset(berth_sha256 *h);
void berth_sha256_free(berth_sha256 *h);

/* Streaming decompression of gzip (one or more members) or zstd frames. */
enum berth_codec { BERTH_CODEC_GZIP = 1, BERTH_CODEC_ZSTD = 2 };
typedef struct berth_inflater berth_inflater;
berth_inflater *berth_inflater_new(int codec);
/*
 * Consumes from in[0..inlen) and produces into out[0..outlen).
 * Returns 0 while more input is expected, 1 at the clean end of the stream,
 * or -1 on corrupt data (message in berth_inflater_error).
 */
int berth_inflater_run(berth_inflater *z, const uint8_t *in, size_t inlen, size_t *consumed,
                       uint8_t *out, size_t outlen, size_t *produced);
const char *berth_inflater_error(berth_inflater *z);
void berth_inflater_free(berth_inflater *z);

/* Streaming gzip compression (layers berth writes: import, build, commit). */
typedef struct berth_deflater berth_deflater;
berth_deflater *berth_deflater_new(int level);
/* finish=1 flushes the trailer; returns 0 (more output may follow), 1 when finished, -1 on error. */
int berth_deflater_run(berth_deflater *z, const uint8_t *in, size_t inlen, size_t *consumed,
                       uint8_t *out, size_t outlen, size_t *produced, int finish);
void berth_deflater_free(berth_deflater *z);
#endif

/* Filesystem calls the unpacker and the overlay mount need (hidden from Swift's Glibc). */
#include <sys/types.h>
/* openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS): a layer's symlinks cannot lead out of it. -1/errno. */
int berth_openat_in_root(int rootfd, const char *path, int flags, int mode);
int berth_mknodat(int dirfd, const char *name, unsigned int mode, unsigned int major, unsigned int minor);
int berth_lsetxattr_at(int dirfd, const char *name, const char *key, const void *value, size_t len);
/* All of a file's xattrs as "key\0" list; returns length or -1/errno. */
ssize_t berth_llistxattr(const char *path, char *list, size_t size);
ssize_t berth_lgetxattr(const char *path, const char *key, void *value, size_t size);
int berth_linkat_empty(int fd, int newdirfd, const char *newname);
extern const int berth_O_PATH_flag;
extern const int berth_AT_EMPTY_PATH;

/*
 * overlay: the new mount API with one fsconfig per lower layer ("lowerdir+",
 * Linux 6.8+), so the number of layers is not bounded by a page of options.
 * Returns 0, or -errno with the failing step in *step.
 */
int berth_overlay_mount_fsapi(const char *const *lowers, int nlower, const char *upper, const char *work,
                              const char *target, const char **step);
/* The kernel accepts "lowerdir+" (probed once with fsopen; no mount is made). */
int berth_overlay_has_lowerdir_plus(void);
unsigned int berth_dev_major(unsigned long dev);
unsigned int berth_dev_minor(unsigned long dev);
