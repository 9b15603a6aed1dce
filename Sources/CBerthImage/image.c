#include "berth_image.h"
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>
#include <zstd.h>

struct berth_sha256 { EVP_MD_CTX *ctx; };

berth_sha256 *berth_sha256_new(void) {
    berth_sha256 *h = calloc(1, sizeof *h);
    if (!h) return NULL;
    h->ctx = EVP_MD_CTX_new();
    if (!h->ctx || EVP_DigestInit_ex(h->ctx, EVP_sha256(), NULL) != 1) { berth_sha256_free(h); return NULL; }
    return h;
}
void berth_sha256_update(berth_sha256 *h, const void *data, size_t len) { EVP_DigestUpdate(h->ctx, data, len); }
void berth_sha256_final(berth_sha256 *h, uint8_t out[32]) {
    unsigned int n = 32;
    EVP_DigestFinal_ex(h->ctx, out, &n);
}
void berth_sha256_reset(berth_sha256 *h) { EVP_DigestInit_ex(h->ctx, EVP_sha256(), NULL); }
void berth_sha256_free(berth_sha256 *h) {
    if (!h) return;
    if (h->ctx) EVP_MD_CTX_free(h->ctx);
    free(h);
}

struct berth_inflater {
    int codec;
    int started;      /* a gzip member is open */
    z_stream zs;
    ZSTD_DStream *zstd;
    char error[160];
};

berth_inflater *berth_inflater_new(int codec) {
    berth_inflater *z = calloc(1, sizeof *z);
    if (!z) return NULL;
    z->codec = codec;
    if (codec == BERTH_CODEC_GZIP) {
        /* 16 + MAX_WBITS: gzip wrapper only */
        if (inflateInit2(&z->zs, 16 + MAX_WBITS) != Z_OK) { free(z); return NULL; }
    } else if (codec == BERTH_CODEC_ZSTD) {
        z->zstd = ZSTD_createDStream();
        if (!z->zstd) { free(z); return NULL; }
        ZSTD_initDStream(z->zstd);
    } else { free(z); return NULL; }
    return z;
}

int berth_inflater_run(berth_inflater *z, const uint8_t *in, size_t inlen, size_t *consumed,
                       uint8_t *out, size_t outlen, size_t *produced) {
    *consumed = 0; *produced = 0;
    if (z->codec == BERTH_CODEC_ZSTD) {
        ZSTD_inBuffer ib = { in, inlen, 0 };
        ZSTD_outBuffer ob = { out, outlen, 0 };
        size_t r = ZSTD_decompressStream(z->zstd, &ob, &ib);
        *consumed = ib.pos; *produced = ob.pos;
        if (ZSTD_isError(r)) {
            snprintf(z->error, sizeof z->error, "zstd: %s", ZSTD_getErrorName(r));
            return -1;
        }
        /* r == 0: a frame ended; more frames may follow, the caller ends on EOF */
        return r == 0 ? 1 : 0;
    }
    z->zs.next_in = (Bytef *)in; z->zs.avail_in = (uInt)inlen;
    z->zs.next_out = out; z->zs.avail_out = (uInt)outlen;
    int r = inflate(&z->zs, Z_NO_FLUSH);
    *consumed = inlen - z->zs.avail_in;
    *produced = outlen - z->zs.avail_out;
    if (r == Z_STREAM_END) {
        /* another gzip member may follow (concatenated gzip is valid) */
        inflateReset(&z->zs);
        return 1;
    }
    if (r == Z_OK || r == Z_BUF_ERROR) return 0;
    snprintf(z->error, sizeof z->error, "gzip: %s", z->zs.msg ? z->zs.msg : "corrupt data");
    return -1;
}

const char *berth_inflater_error(berth_inflater *z) { return z->error; }

void berth_inflater_free(berth_inflater *z) {
    if (!z) return;
    if (z->codec == BERTH_CODEC_GZIP) inflateEnd(&z->zs);
    if (z->zstd) ZSTD_freeDStream(z->zstd);
    free(z);
}

struct berth_deflater { z_stream zs; };

berth_deflater *berth_deflater_new(int level) {
    berth_deflater *z = calloc(1, sizeof *z);
    if (!z) return NULL;
    if (deflateInit2(&z->zs, level, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY) != Z_OK) { free(z); return NULL; }
    return z;
}

int berth_deflater_run(berth_deflater *z, const uint8_t *in, size_t inlen, size_t *consumed,
                       uint8_t *out, size_t outlen, size_t *produced, int finish) {
    z->zs.next_in = (Bytef *)in; z->zs.avail_in = (uInt)inlen;
    z->zs.next_out = out; z->zs.avail_out = (uInt)outlen;
    int r = deflate(&z->zs, finish ? Z_FINISH : Z_NO_FLUSH);
    *consumed = inlen - z->zs.avail_in;
    *produced = outlen - z->zs.avail_out;
    if (r == Z_STREAM_END) return 1;
    if (r == Z_OK || r == Z_BUF_ERROR) return 0;
    return -1;
}

void berth_deflater_free(berth_deflater *z) {
    if (!z) return;
    deflateEnd(&z->zs);
    free(z);
}

/* ---- filesystem ---- */
#include <errno.h>
#include <fcntl.h>
#include <linux/mount.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

const int berth_O_PATH_flag = O_PATH;
const int berth_AT_EMPTY_PATH = AT_EMPTY_PATH;

int berth_openat_in_root(int rootfd, const char *path, int flags, int mode) {
    struct open_how how = { .flags = (uint64_t)(flags | O_CLOEXEC), .mode = (uint64_t)mode,
                            .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS };
    if (!(flags & O_CREAT)) how.mode = 0;
    int fd;
    do { fd = (int)syscall(SYS_openat2, rootfd, path, &how, sizeof how); } while (fd < 0 && (errno == EAGAIN || errno == EINTR));
    return fd;
}

int berth_mknodat(int dirfd, const char *name, unsigned int mode, unsigned int major, unsigned int minor) {
    return mknodat(dirfd, name, mode, makedev(major, minor));
}

int berth_lsetxattr_at(int dirfd, const char *name, const char *key, const void *value, size_t len) {
    /* O_PATH descriptors take no fsetxattr: go through /proc/self/fd. With a name,
     * the name itself is not followed (a symlink gets the xattr); without one,
     * the descriptor's own file does. */
    char fdpath[40];
    snprintf(fdpath, sizeof fdpath, "/proc/self/fd/%d", dirfd);
    if (!name || !*name) return setxattr(fdpath, key, value, len, 0);
    size_t plen = strlen(fdpath), nlen = strlen(name);
    char *full = malloc(plen + nlen + 2);
    if (!full) { errno = ENOMEM; return -1; }
    memcpy(full, fdpath, plen); full[plen] = '/'; memcpy(full + plen + 1, name, nlen + 1);
    int r = lsetxattr(full, key, value, len, 0);
    int e = errno;
    free(full);
    errno = e;
    return r;
}

ssize_t berth_llistxattr(const char *path, char *list, size_t size) { return llistxattr(path, list, size); }
ssize_t berth_lgetxattr(const char *path, const char *key, void *value, size_t size) { return lgetxattr(path, key, value, size); }

int berth_linkat_empty(int fd, int newdirfd, const char *newname) {
    return linkat(fd, "", newdirfd, newname, AT_EMPTY_PATH);
}

static int sys_fsopen(const char *fs, unsigned flags) { return (int)syscall(SYS_fsopen, fs, flags); }
static int sys_fsconfig(int fd, unsigned cmd, const char *key, const void *value, int aux) {
    return (int)syscall(SYS_fsconfig, fd, cmd, key, value, aux);
}
static int sys_fsmount(int fd, unsigned flags, unsigned attr) { return (int)syscall(SYS_fsmount, fd, flags, attr); }
static int sys_move_mount(int from, const char *fp, int to, const char *tp, unsigned flags) {
    return (int)syscall(SYS_move_mount, from, fp, to, tp, flags);
}

int berth_overlay_has_lowerdir_plus(void) {
    int fs = sys_fsopen("overlay", FSOPEN_CLOEXEC);
    if (fs < 0) return 0;
    /* an unknown key is EINVAL; a known key with a missing path is ENOENT */
    int r = sys_fsconfig(fs, FSCONFIG_SET_STRING, "lowerdir+", "/nonexistent-berth-probe", 0);
    int e = errno;
    close(fs);
    return r == 0 || e != EINVAL;
}

int berth_overlay_mount_fsapi(const char *const *lowers, int nlower, const char *upper, const char *work,
                              const char *target, const char **step) {
    int fs = sys_fsopen("overlay", FSOPEN_CLOEXEC), e;
    if (fs < 0) { *step = "fsopen overlay"; return -errno; }
#define CFG(key, val) do { if (sys_fsconfig(fs, FSCONFIG_SET_STRING, key, val, 0) < 0) { e = errno; *step = "fsconfig " key; goto fail; } } while (0)
    for (int i = 0; i < nlower; i++) CFG("lowerdir+", lowers[i]);
    if (upper) { CFG("upperdir", upper); CFG("workdir", work); }
    CFG("index", "off");
#undef CFG
    if (sys_fsconfig(fs, FSCONFIG_CMD_CREATE, NULL, NULL, 0) < 0) { e = errno; *step = "fsconfig create"; goto fail; }
    int mnt = sys_fsmount(fs, FSMOUNT_CLOEXEC, 0);
    if (mnt < 0) { e = errno; *step = "fsmount"; goto fail; }
    close(fs);
    if (sys_move_mount(mnt, "", AT_FDCWD, target, MOVE_MOUNT_F_EMPTY_PATH) < 0) {
        e = errno; close(mnt); *step = "move_mount"; return -e;
    }
    close(mnt);
    return 0;
fail:
    close(fs);
    return -e;
}

unsigned int berth_dev_major(unsigned long dev) { return major(dev); }
unsigned int berth_dev_minor(unsigned long dev) { return minor(dev); }
