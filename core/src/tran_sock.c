/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 the vfu authors. */

/* The listening UNIX socket and accepting one client at a time. */

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "private.h"
#include "tran_sock.h"

/*
 * Never replace anything but a socket at the path: a typo must not cost the
 * user a file. A socket left by a dead server is replaced.
 */
static int
clear_stale_socket(const char *path)
{
    struct stat st;

    if (lstat(path, &st) < 0) {
        return errno == ENOENT ? 0 : -1;
    }
    if (!S_ISSOCK(st.st_mode)) {
        errno = EEXIST;
        return -1;
    }
    return unlink(path);
}

int
vfu_sock_listen(vfu_ctx_t *ctx)
{
    struct sockaddr_un addr = { .sun_family = AF_UNIX };
    socklen_t len = sizeof(sa_family_t);
    int fd, saved;

    if (strlen(ctx->sock_path) >= sizeof(addr.sun_path)) {
        errno = ENAMETOOLONG;
        return -1;
    }
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return -1;
    }
    if (ctx->sock_path[0] != '\0') {
        if (clear_stale_socket(ctx->sock_path) < 0) {
            goto fail;
        }
        memcpy(addr.sun_path, ctx->sock_path, strlen(ctx->sock_path));
        len = sizeof(addr);
    }
    /*
     * An empty path autobinds an abstract address (see unix(7)); the name
     * is logged. Owner-only access unless the caller loosens it.
     */
    mode_t old = umask(0177);
    int rc = bind(fd, (struct sockaddr *)&addr, len);
    umask(old);
    if (rc < 0 || listen(fd, 1) < 0) {
        goto fail;
    }
    if (ctx->flags & LIBVFIO_USER_FLAG_ATTACH_NB) {
        fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    }
    if (ctx->sock_path[0] == '\0') {
        struct sockaddr_un got;
        socklen_t glen = sizeof(got);
        if (getsockname(fd, (struct sockaddr *)&got, &glen) == 0 &&
            glen > sizeof(sa_family_t) + 1) {
            vfu_log(ctx, LOG_INFO, "listening on abstract socket @%.*s",
                    (int)(glen - sizeof(sa_family_t) - 1), got.sun_path + 1);
        }
    }
    ctx->listen_fd = fd;
    return 0;
fail:
    saved = errno;
    close(fd);
    errno = saved;
    return -1;
}

int
vfu_sock_accept(vfu_ctx_t *ctx)
{
    int fd;

    do {
        fd = accept4(ctx->listen_fd, NULL, NULL, SOCK_CLOEXEC);
    } while (fd < 0 && errno == EINTR);
    return fd;
}

void
vfu_sock_close(vfu_ctx_t *ctx)
{
    if (ctx->listen_fd >= 0) {
        close(ctx->listen_fd);
        ctx->listen_fd = -1;
        if (ctx->sock_path != NULL && ctx->sock_path[0] != '\0') {
            unlink(ctx->sock_path);
        }
    }
}

int
vfu_setup_socket_mode(vfu_ctx_t *ctx, mode_t mode)
{
    if (ctx == NULL || (mode & ~(mode_t)0777) != 0 || ctx->sock_path[0] == '\0') {
        errno = EINVAL;
        return -1;
    }
    return chmod(ctx->sock_path, mode);
}
