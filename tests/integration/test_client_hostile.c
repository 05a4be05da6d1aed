/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 the vfu authors. */

/*
 * vfu's client against a server that misbehaves: a fake server on a raw
 * socket answers VERSION properly, then replies to region accesses with
 * fds nobody asked for, wrong sizes, wrong ids and error flags. The client
 * must fail those calls with the right errno, close what it was sent, and
 * stay usable for the next call.
 */

#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"

/* How the fake server answers the n-th region access. */
enum answer {
    GOOD,           /* a proper reply */
    GOOD_WITH_FDS,  /* a proper reply carrying three eventfds */
    SHORT,          /* the data cut short */
    STRAY_ID,       /* a reply to another id first, then the proper one */
    ERROR_REPLY,    /* an error reply with ENODEV */
    SILENT,         /* no reply at all */
    HUGE_INFO,      /* to GET_REGION_INFO: "I need argsz 3.75 GiB" */
    END,
};

struct fake {
    char dir[64], path[96];
    int listen_fd;
    const enum answer *script;
    pthread_t thread;
};

static int
full(int fd, void *buf, size_t len, bool wr)
{
    char *p = buf;

    while (len > 0) {
        ssize_t n = wr ? send(fd, p, len, MSG_NOSIGNAL) : recv(fd, p, len, 0);
        if (n <= 0) {
            return -1;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

static int
send_fds(int fd, const void *buf, size_t len, const int *fds, int nr)
{
    char cbuf[CMSG_SPACE(sizeof(int) * 4)] = { 0 };
    struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };
    struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1,
                         .msg_control = cbuf,
                         .msg_controllen = CMSG_SPACE(sizeof(int) * nr) };
    struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);

    cm->cmsg_level = SOL_SOCKET;
    cm->cmsg_type = SCM_RIGHTS;
    cm->cmsg_len = CMSG_LEN(sizeof(int) * nr);
    memcpy(CMSG_DATA(cm), fds, sizeof(int) * nr);
    return sendmsg(fd, &mh, MSG_NOSIGNAL) == (ssize_t)len ? 0 : -1;
}

/* Read one request: header, then payload into body (up to cap bytes). */
static int
read_request(int fd, struct vfio_user_header *h, void *body, size_t cap)
{
    if (full(fd, h, sizeof(*h), false) < 0 || h->msg_size < sizeof(*h) ||
        h->msg_size - sizeof(*h) > cap) {
        return -1;
    }
    return full(fd, body, h->msg_size - sizeof(*h), false);
}

static void
answer_version(int fd, const struct vfio_user_header *req,
               const struct vfio_user_version *asked)
{
    static const char caps[] = "{\"capabilities\":{\"max_msg_fds\":8,"
                               "\"max_data_xfer_size\":1048576}}";
    struct {
        struct vfio_user_header h;
        struct vfio_user_version v;
        char json[sizeof(caps)];
    } __attribute__((packed)) rep = {
        .h = { .msg_id = req->msg_id, .cmd = VFIO_USER_VERSION,
               .msg_size = sizeof(rep), .flags = VFIO_USER_F_TYPE_REPLY },
        .v = { .major = asked->major, .minor = asked->minor },
    };

    memcpy(rep.json, caps, sizeof(caps));
    full(fd, &rep, sizeof(rep), true);
}

/* Reply to a 4-byte REGION_READ as the script says. */
static void
answer_read(int fd, const struct vfio_user_header *req,
            const struct vfio_user_region_access *a, enum answer how)
{
    struct {
        struct vfio_user_header h;
        struct vfio_user_region_access a;
        uint32_t data;
    } __attribute__((packed)) rep = {
        .h = { .msg_id = req->msg_id, .cmd = VFIO_USER_REGION_READ,
               .msg_size = sizeof(rep), .flags = VFIO_USER_F_TYPE_REPLY },
        .a = *a,
        .data = 0x600dcafe,
    };

    switch (how) {
    case GOOD_WITH_FDS: {
        int fds[3] = { eventfd(0, 0), eventfd(0, 0), eventfd(0, 0) };
        send_fds(fd, &rep, sizeof(rep), fds, 3);
        for (int i = 0; i < 3; i++) {
            close(fds[i]);
        }
        return;
    }
    case SHORT:
        rep.h.msg_size -= 2;
        full(fd, &rep, rep.h.msg_size, true);
        return;
    case STRAY_ID:
        rep.h.msg_id ^= 0x5555;
        full(fd, &rep, sizeof(rep), true);
        rep.h.msg_id = req->msg_id;
        break;
    case SILENT:
        return;
    case ERROR_REPLY:
        rep.h.msg_size = sizeof(rep.h);
        rep.h.flags |= VFIO_USER_F_ERROR;
        rep.h.error_no = ENODEV;
        full(fd, &rep, sizeof(rep.h), true);
        return;
    default:
        break;
    }
    full(fd, &rep, sizeof(rep), true);
}

/* A region info reply asking for an absurd argsz, as if caps followed. */
static void
answer_huge_info(int fd, const struct vfio_user_header *req)
{
    struct {
        struct vfio_user_header h;
        struct vfio_region_info info;
    } __attribute__((packed)) rep = {
        .h = { .msg_id = req->msg_id, .cmd = VFIO_USER_DEVICE_GET_REGION_INFO,
               .msg_size = sizeof(rep), .flags = VFIO_USER_F_TYPE_REPLY },
        .info = { .argsz = 0xf0000000u, .flags = VFIO_REGION_INFO_FLAG_CAPS,
                  .size = 4096 },
    };

    full(fd, &rep, sizeof(rep), true);
}

static void *
fake_main(void *arg)
{
    struct fake *f = arg;
    int fd = accept(f->listen_fd, NULL, NULL);
    struct vfio_user_header h;
    char body[4096];

    if (fd < 0) {
        return NULL;
    }
    if (read_request(fd, &h, body, sizeof(body)) == 0 &&
        h.cmd == VFIO_USER_VERSION) {
        struct vfio_user_version asked;
        memcpy(&asked, body, sizeof(asked));
        answer_version(fd, &h, &asked);
        const enum answer *s;
        for (s = f->script; *s != END; s++) {
            struct vfio_user_region_access a;
            if (read_request(fd, &h, body, sizeof(body)) < 0) {
                break;
            }
            if (*s == HUGE_INFO && h.cmd == VFIO_USER_DEVICE_GET_REGION_INFO) {
                answer_huge_info(fd, &h);
                continue;
            }
            if (h.cmd != VFIO_USER_REGION_READ) {
                break;
            }
            memcpy(&a, body, sizeof(a));
            answer_read(fd, &h, &a, *s);
        }
        /* Silent to the end: keep the line open until the client goes. */
        while (*s == END && s > f->script && s[-1] == SILENT &&
               read_request(fd, &h, body, sizeof(body)) == 0) {
        }
    }
    close(fd);
    return NULL;
}

static void
fake_start(struct fake *f, const enum answer *script)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };

    strcpy(f->dir, "/tmp/vfu-hostile-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->path, sizeof(f->path), "%s/s", f->dir);
    strcpy(sa.sun_path, f->path);
    f->script = script;
    f->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(f->listen_fd >= 0);
    assert_int_equal(bind(f->listen_fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(listen(f->listen_fd, 1), 0);
    assert_int_equal(pthread_create(&f->thread, NULL, fake_main, f), 0);
}

static void
fake_stop(struct fake *f)
{
    pthread_join(f->thread, NULL);
    close(f->listen_fd);
    unlink(f->path);
    rmdir(f->dir);
}

static void
test_hostile_replies(void **state)
{
    static const enum answer script[] = {
        GOOD, GOOD_WITH_FDS, GOOD, SHORT, GOOD, STRAY_ID, ERROR_REPLY, GOOD,
        HUGE_INFO, GOOD, END,
    };
    struct fake f;
    uint32_t v;
    int base;

    (void)state;
    fake_start(&f, script);
    vfu_client_t *c = vfu_client_connect(f.path);
    assert_non_null(c);
    if (vfu_client_negotiate(c, NULL, NULL) < 0) {
        fail_msg("negotiate: %s", strerror(errno));
    }
    base = harness_fd_count(getpid());

    v = 0;
    assert_int_equal(vfu_client_region_read(c, 0, 0, &v, 4), 0);
    assert_int_equal(v, 0x600dcafe);

    /* fds on a reply that carries none: taken, and closed, not kept. */
    v = 0;
    assert_int_equal(vfu_client_region_read(c, 0, 0, &v, 4), 0);
    assert_int_equal(v, 0x600dcafe);
    /* Counted after the next call: by then the fake (a thread of this
     * process) has closed its own copies. */
    assert_int_equal(vfu_client_region_read(c, 0, 0, &v, 4), 0);
    assert_int_equal(harness_fd_count(getpid()), base);

    /* A reply two bytes short of what was asked. */
    errno = 0;
    assert_int_equal(vfu_client_region_read(c, 0, 0, &v, 4), -1);
    assert_int_equal(errno, EPROTO);
    assert_int_equal(vfu_client_region_read(c, 0, 0, &v, 4), 0);

    /* A reply to nobody is skipped; the call still gets its own. */
    v = 0;
    assert_int_equal(vfu_client_region_read(c, 0, 0, &v, 4), 0);
    assert_int_equal(v, 0x600dcafe);

    /* The server's errno comes through. */
    errno = 0;
    assert_int_equal(vfu_client_region_read(c, 0, 0, &v, 4), -1);
    assert_int_equal(errno, ENODEV);
    assert_int_equal(vfu_client_region_read(c, 0, 0, &v, 4), 0);

    /* Asked for room for 3.75 GiB of caps: refused, not allocated. */
    struct vfu_client_region_info ri;
    errno = 0;
    assert_int_equal(vfu_client_get_region_info(c, 0, &ri), -1);
    assert_int_equal(errno, EMSGSIZE);
    assert_int_equal(vfu_client_region_read(c, 0, 0, &v, 4), 0);

    /* The script is over and the server hangs up: ENOTCONN, no hang. */
    errno = 0;
    assert_int_equal(vfu_client_region_read(c, 0, 0, &v, 4), -1);
    assert_int_equal(errno, ENOTCONN);
    /* The fake closed its end (that is the EOF): one fd fewer. */
    assert_int_equal(harness_fd_count(getpid()), base - 1);
    vfu_client_close(c);
    fake_stop(&f);
}

/*
 * A server that never answers: the call gives up after the call timeout
 * (10 s) with ETIMEDOUT, and the connection is abandoned.
 */
static void
test_silent_server(void **state)
{
    static const enum answer script[] = { GOOD, SILENT, END };
    struct timespec t0, t1;
    struct fake f;
    uint32_t v;

    (void)state;
    fake_start(&f, script);
    vfu_client_t *c = vfu_client_connect(f.path);
    assert_non_null(c);
    assert_int_equal(vfu_client_negotiate(c, NULL, NULL), 0);
    assert_int_equal(vfu_client_region_read(c, 0, 0, &v, 4), 0);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    errno = 0;
    assert_int_equal(vfu_client_region_read(c, 0, 0, &v, 4), -1);
    assert_int_equal(errno, ETIMEDOUT);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    assert_in_range(t1.tv_sec - t0.tv_sec, 9, 13);
    errno = 0;
    assert_int_equal(vfu_client_region_read(c, 0, 0, &v, 4), -1);
    assert_int_equal(errno, ENOTCONN);
    vfu_client_close(c);
    fake_stop(&f);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hostile_replies),
        cmocka_unit_test(test_silent_server),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
