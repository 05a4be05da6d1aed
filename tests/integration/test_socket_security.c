/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 the vfu authors. */

/*
 * The socket file: created owner-only, widened or narrowed with
 * vfu_setup_socket_mode(), never put in place of a file that is not a
 * socket, and put in place of a stale socket.
 */

#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"
#include "vfu.h"

struct sfx {
    char dir[64];
    char path[96];
};

static int
setup(void **state)
{
    struct sfx *f = calloc(1, sizeof(*f));

    if (f == NULL) {
        return -1;
    }
    snprintf(f->dir, sizeof(f->dir), "/tmp/vfu-sock-XXXXXX");
    if (mkdtemp(f->dir) == NULL) {
        return -1;
    }
    snprintf(f->path, sizeof(f->path), "%s/dev.sock", f->dir);
    *state = f;
    return 0;
}

static int
teardown(void **state)
{
    struct sfx *f = *state;

    unlink(f->path);
    rmdir(f->dir);
    free(f);
    return 0;
}

static vfu_ctx_t *
create(const char *path)
{
    return vfu_create_ctx(VFU_TRANS_SOCK, path, LIBVFIO_USER_FLAG_ATTACH_NB,
                          NULL, VFU_DEV_TYPE_PCI);
}

static mode_t
mode_of(const char *path)
{
    struct stat st;

    assert_int_equal(lstat(path, &st), 0);
    assert_true(S_ISSOCK(st.st_mode));
    return st.st_mode & 07777;
}

/* 0600 whatever the umask says. */
static void
test_default_mode(void **state)
{
    struct sfx *f = *state;
    mode_t old = umask(0);
    vfu_ctx_t *ctx = create(f->path);

    umask(old);
    assert_non_null(ctx);
    assert_int_equal(mode_of(f->path), 0600);
    vfu_destroy_ctx(ctx);
    /* Destroying the context removes the file. */
    assert_int_equal(access(f->path, F_OK), -1);
    assert_int_equal(errno, ENOENT);
}

static void
test_setup_mode(void **state)
{
    struct sfx *f = *state;
    vfu_ctx_t *ctx = create(f->path);

    assert_non_null(ctx);
    assert_int_equal(vfu_setup_socket_mode(ctx, 0660), 0);
    assert_int_equal(mode_of(f->path), 0660);
    assert_int_equal(vfu_setup_socket_mode(ctx, 0400), 0);
    assert_int_equal(mode_of(f->path), 0400);
    /* Only permission bits. */
    assert_int_equal(vfu_setup_socket_mode(ctx, 04600), -1);
    assert_int_equal(errno, EINVAL);
    assert_int_equal(vfu_setup_socket_mode(ctx, S_IFSOCK | 0600), -1);
    assert_int_equal(errno, EINVAL);
    assert_int_equal(mode_of(f->path), 0400);
    assert_int_equal(vfu_setup_socket_mode(NULL, 0600), -1);
    assert_int_equal(errno, EINVAL);
    vfu_destroy_ctx(ctx);

    /* An abstract socket has no file to change. */
    ctx = create("");
    assert_non_null(ctx);
    assert_int_equal(vfu_setup_socket_mode(ctx, 0600), -1);
    assert_int_equal(errno, EINVAL);
    vfu_destroy_ctx(ctx);
}

/* A regular file, a directory, a symlink: left alone, EEXIST. */
static void
test_not_a_socket(void **state)
{
    struct sfx *f = *state;
    char target[128];
    int fd = open(f->path, O_CREAT | O_WRONLY | O_EXCL, 0644);

    assert_true(fd >= 0);
    assert_int_equal(write(fd, "keep", 4), 4);
    close(fd);
    assert_null(create(f->path));
    assert_int_equal(errno, EEXIST);
    fd = open(f->path, O_RDONLY);
    char buf[8] = { 0 };
    assert_int_equal(read(fd, buf, sizeof(buf)), 4);
    assert_string_equal(buf, "keep");
    close(fd);
    assert_int_equal(unlink(f->path), 0);

    assert_int_equal(mkdir(f->path, 0700), 0);
    assert_null(create(f->path));
    assert_int_equal(errno, EEXIST);
    assert_int_equal(rmdir(f->path), 0);

    /* A symlink, even to a socket, is not followed or replaced. */
    snprintf(target, sizeof(target), "%s/elsewhere", f->dir);
    assert_int_equal(symlink(target, f->path), 0);
    assert_null(create(f->path));
    assert_int_equal(errno, EEXIST);
    assert_int_equal(unlink(f->path), 0);
}

/* A socket nobody listens on (a crashed server's) is replaced. */
static void
test_stale_socket(void **state)
{
    struct sfx *f = *state;
    struct sockaddr_un addr = { .sun_family = AF_UNIX };
    int s = socket(AF_UNIX, SOCK_STREAM, 0);
    vfu_ctx_t *ctx;
    vfu_client_t *c;

    strcpy(addr.sun_path, f->path);
    assert_int_equal(bind(s, (struct sockaddr *)&addr, sizeof(addr)), 0);
    close(s);
    (void)mode_of(f->path);        /* a socket file, nobody behind it */

    ctx = create(f->path);
    assert_non_null(ctx);
    assert_int_equal(mode_of(f->path), 0600);
    assert_int_equal(vfu_pci_init(ctx, VFU_PCI_TYPE_CONVENTIONAL,
                                  PCI_HEADER_TYPE_NORMAL, 0), 0);
    assert_int_equal(vfu_realize_ctx(ctx), 0);
    /* Someone listens now: the new server. */
    c = vfu_client_connect(f->path);
    assert_non_null(c);
    vfu_client_close(c);
    vfu_destroy_ctx(ctx);
}

/* A socket another server listens on is not taken over. */
static void
test_live_socket(void **state)
{
    struct sfx *f = *state;
    vfu_ctx_t *first, *second;
    vfu_client_t *c;

    first = create(f->path);
    assert_non_null(first);
    second = create(f->path);
    assert_null(second);
    assert_int_equal(errno, EADDRINUSE);
    /* the first server still has its socket */
    assert_int_equal(vfu_pci_init(first, VFU_PCI_TYPE_CONVENTIONAL,
                                  PCI_HEADER_TYPE_NORMAL, 0), 0);
    assert_int_equal(vfu_realize_ctx(first), 0);
    c = vfu_client_connect(f->path);
    assert_non_null(c);
    vfu_client_close(c);
    vfu_destroy_ctx(first);
}

/*
 * A server that stopped accepting, its backlog full: still live, and
 * asking must not block (a blocking connect would wait for it forever).
 */
static void
test_live_socket_full_backlog(void **state)
{
    struct sfx *f = *state;
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    int lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int queued[16], n = 0;

    assert_true(lfd >= 0);
    strcpy(sa.sun_path, f->path);
    assert_int_equal(bind(lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(listen(lfd, 0), 0);
    /* Fill the backlog until a non-blocking connect is refused. */
    while (n < 16) {
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        assert_true(fd >= 0);
        if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
            assert_int_equal(errno, EAGAIN);
            close(fd);
            break;
        }
        queued[n++] = fd;
    }
    assert_true(n < 16);
    assert_null(create(f->path));
    assert_int_equal(errno, EADDRINUSE);
    for (int i = 0; i < n; i++) {
        close(queued[i]);
    }
    close(lfd);
}

/* Too long a path: ENAMETOOLONG, nothing created. */
static void
test_long_path(void **state)
{
    char path[200];

    memset(path, 'a', sizeof(path) - 1);
    path[0] = '/';
    path[sizeof(path) - 1] = '\0';
    assert_null(create(path));
    assert_int_equal(errno, ENAMETOOLONG);
}

int
main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_default_mode), T(test_setup_mode), T(test_not_a_socket),
        T(test_stale_socket), T(test_live_socket),
        T(test_live_socket_full_backlog), T(test_long_path),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
