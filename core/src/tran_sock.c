/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 the vfu authors. */

/* The listening UNIX socket and accepting one client at a time. */

#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "private.h"
#include "tran_sock.h"

/* Does a server accept connections at path? */
static bool
socket_is_live(const char *path)
{
    struct sockaddr_un addr = { .sun_family = AF_UNIX };
    /* Non-blocking: a server whose backlog is full must not hang us. */
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    bool live;

    if (fd < 0) {
        return false;
    }
    memcpy(addr.sun_path, path, strlen(path));
    live = connect(fd, (struct sockaddr *)&addr, sizeof(addr)) == 0 ||
           errno == EAGAIN;   /* its backlog is full: still alive */
    close(fd);
    return live;
}

/*
 * Never replace anything but a socket at the path: a typo must not cost the
 * user a file. A socket left by a dead server is replaced; one a running
 * server listens on is not (EADDRINUSE), or both would lose it.
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
    if (socket_is_live(path)) {
        errno = EADDRINUSE;
        return -1;
    }
    return unlink(path);
}

/*
 * Bind under a temporary name, make it owner-only, listen, then rename it
 * into place: the socket file appears only once it accepts connections, with
 * its final permissions, and replaces a stale socket atomically.
 */
static int
bind_path(vfu_ctx_t *ctx, int fd)
{
    struct sockaddr_un addr = { .sun_family = AF_UNIX };
    const char *path = ctx->sock_path;
    char tmp[sizeof(addr.sun_path) + 32];

    /* unique per process and context */
    snprintf(tmp, sizeof(tmp), "%s.tmp-%d-%lx", path, (int)getpid(),
             (unsigned long)((uintptr_t)ctx & 0xffffff));
    if (strlen(tmp) >= sizeof(addr.sun_path)) {
        /* No room for a temporary name: bind in place. */
        if (clear_stale_socket(path) < 0) {
            return -1;
        }
        memcpy(addr.sun_path, path, strlen(path));
        if (bind(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0 ||
            chmod(path, 0600) < 0 || listen(fd, 1) < 0) {
            return -1;
        }
        return 0;
    }
    unlink(tmp);
    memcpy(addr.sun_path, tmp, strlen(tmp));
    if (bind(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
        return -1;
    }
    if (chmod(tmp, 0600) < 0 || listen(fd, 1) < 0 ||
        clear_stale_socket(path) < 0 || rename(tmp, path) < 0) {
        int saved = errno;
        unlink(tmp);
        errno = saved;
        return -1;
    }
    return 0;
}

int
vfu_sock_listen(vfu_ctx_t *ctx)
{
    struct sockaddr_un addr = { .sun_family = AF_UNIX };
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
        if (bind_path(ctx, fd) < 0) {
            goto fail;
        }
    } else {
        /* An empty path autobinds an abstract address (unix(7)); log it. */
        struct sockaddr_un got;
        socklen_t glen = sizeof(got);
        if (bind(fd, (struct sockaddr *)&addr, sizeof(sa_family_t)) < 0 ||
            listen(fd, 1) < 0) {
            goto fail;
        }
        if (getsockname(fd, (struct sockaddr *)&got, &glen) == 0 &&
            glen > sizeof(sa_family_t) + 1) {
            vfu_log(ctx, LOG_INFO, "listening on abstract socket @%.*s",
                    (int)(glen - sizeof(sa_family_t) - 1), got.sun_path + 1);
        }
    }
    if (ctx->flags & LIBVFIO_USER_FLAG_ATTACH_NB) {
        fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
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

/* ---- the twin socket ---- */

int
vfu_twin_open(vfu_ctx_t *ctx)
{
    /* DMA_READ replies carry up to max_data_xfer_size (the client's). */
    size_t size = ctx->caps.max_data_xfer_size + 4096;
    struct vfu_conn *t;
    int sv[2], saved;

    if (size < VFU_DEFAULT_MAX_DATA_XFER + 4096) {
        size = VFU_DEFAULT_MAX_DATA_XFER + 4096;
    }
    vfu_twin_hangup(ctx);
    vfu_twin_close(ctx);    /* VERSION is once per client: never there */
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
        return -1;
    }
    t = calloc(1, sizeof(*t));
    /* Replies to our requests carry no fds: none are taken from it. */
    if (t == NULL || vfu_conn_init(t, sv[0], size, 0) < 0) {
        saved = errno;
        free(t);
        close(sv[0]);
        close(sv[1]);
        errno = saved;
        return -1;
    }
    pthread_rwlock_wrlock(&ctx->conn_lock);
    ctx->twin = t;
    pthread_rwlock_unlock(&ctx->conn_lock);
    return sv[1];
}

void
vfu_twin_hangup(vfu_ctx_t *ctx)
{
    /* Only the loop's thread changes ctx->twin: no lock to look at it. */
    if (ctx->twin != NULL) {
        vfu_conn_fail_calls(ctx->twin, ENOTCONN);
        shutdown(ctx->twin->fd, SHUT_RDWR);
    }
}

void
vfu_twin_close(vfu_ctx_t *ctx)
{
    struct vfu_conn *t;

    if (ctx->twin == NULL) {
        return;
    }
    pthread_rwlock_wrlock(&ctx->conn_lock);
    t = ctx->twin;
    ctx->twin = NULL;
    pthread_rwlock_unlock(&ctx->conn_lock);
    vfu_conn_fini(t);
    free(t);
}

int
vfu_twin_on_request(void *opaque, struct vfu_msg *msg)
{
    /*
     * The client sends its requests on the main socket; one here is a
     * confused or hostile client. No reply: a peer that does not read
     * them must not hold up the device thread that found it.
     */
    vfu_log(opaque, LOG_ERR, "%s request on the twin socket dropped",
            vfu_cmd_name(msg->hdr.cmd));
    return 0;
}
