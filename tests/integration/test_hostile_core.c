/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 the vfu authors. */

/*
 * Issue 12, the core's holes: each test here is a hostile (or merely
 * unlucky) client or device, speaking raw messages over a socketpair to a
 * context served on the test's own thread, so that every step is in the
 * test's hands: eventfds that are not eventfds or cannot take a write,
 * re-entrant calls from callbacks, destroy with a device thread doing DMA,
 * fds read ahead during a DMA call, non-blocking loops that must be woken,
 * stale reply bytes, oversized messages, and what VERSION and REGION_INFO
 * may announce.
 */

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "libvfio-user.h"
#include "private.h"
#include "harness.h"

#define BAR0_SIZE   0x1000u
#define BAR2_SIZE   (1u << 20)
#define NR_MSIX     16u
#define IOVA        0x100000u
#define MAP_SIZE    0x10000u

struct hdr {
    uint16_t id, cmd;
    uint32_t size, flags, err;
};

enum bar0_mode {
    BAR0_PLAIN,         /* reads and writes bar0[] */
    BAR0_FILL_AA,       /* reads fill 0xaa */
    BAR0_NO_FILL,       /* reads claim the count and write nothing */
    BAR0_NESTED_RUN,    /* a write calls vfu_run_ctx() */
    BAR0_DESTROY,       /* a write calls vfu_destroy_ctx() */
    BAR0_MSG_DMA,       /* a write reads client memory by message */
    BAR0_FAIL_2ND,      /* the second write of a run fails with EIO */
};

struct fx {
    char dir[64], path[96];
    vfu_ctx_t *ctx;
    int fd;                     /* the client's end */
    uint16_t next_id;
    enum bar0_mode mode;
    uint8_t bar0[BAR0_SIZE];
    unsigned writes;
    int nested_rc, nested_errno;
    int quiesce_busy;           /* quiesce callback answers EBUSY */
    unsigned quiesce_calls;
    void (*on_quiesce)(struct fx *);
    uint64_t sg[8];             /* one dma_sg_t, 8-aligned */
    int dma_rc;
    char log[8192];             /* the last log lines */
    int bar4_fd;                /* BAR4: 4 KiB of memfd, mappable */
};

static struct fx *the_fx;

static void
log_fn(vfu_ctx_t *ctx, int level, const char *msg)
{
    struct fx *f = the_fx;
    size_t n = strlen(f->log), m = strlen(msg);

    (void)ctx;
    (void)level;
    if (getenv("HARNESS_VERBOSE") != NULL) {
        fprintf(stderr, "vfu: %s\n", msg);
    }
    if (n + m + 2 >= sizeof(f->log)) {
        n = 0;
    }
    memcpy(f->log + n, msg, m);
    f->log[n + m] = '\n';
    f->log[n + m + 1] = '\0';
}

static ssize_t
bar0_cb(vfu_ctx_t *ctx, char *buf, size_t count, loff_t off, bool is_write)
{
    struct fx *f = vfu_get_private(ctx);

    if (off < 0 || (size_t)off + count > BAR0_SIZE) {
        errno = EINVAL;
        return -1;
    }
    if (!is_write) {
        switch (f->mode) {
        case BAR0_FILL_AA:
            memset(buf, 0xaa, count);
            return (ssize_t)count;
        case BAR0_NO_FILL:
            return (ssize_t)count;
        default:
            memcpy(buf, f->bar0 + off, count);
            return (ssize_t)count;
        }
    }
    f->writes++;
    switch (f->mode) {
    case BAR0_NESTED_RUN:
        errno = 0;
        f->nested_rc = vfu_run_ctx(ctx);
        f->nested_errno = errno;
        break;
    case BAR0_DESTROY:
        vfu_destroy_ctx(ctx);
        break;
    case BAR0_MSG_DMA: {
        char data[16];
        f->dma_rc = vfu_sgl_read(ctx, (dma_sg_t *)f->sg, 1, data, 0);
        break;
    }
    case BAR0_FAIL_2ND:
        if (f->writes == 2) {
            errno = EIO;
            return -1;
        }
        break;
    default:
        break;
    }
    memcpy(f->bar0 + off, buf, count);
    return (ssize_t)count;
}

static ssize_t
bar2_cb(vfu_ctx_t *ctx, char *buf, size_t count, loff_t off, bool is_write)
{
    (void)ctx;
    (void)off;
    if (!is_write) {
        memset(buf, 0x5a, count);
    }
    return (ssize_t)count;
}

static int
quiesce_cb(vfu_ctx_t *ctx)
{
    struct fx *f = vfu_get_private(ctx);

    f->quiesce_calls++;
    if (f->on_quiesce != NULL) {
        f->on_quiesce(f);
    }
    if (f->quiesce_busy) {
        errno = EBUSY;
        return -1;
    }
    return 0;
}

static void
dma_reg(vfu_ctx_t *ctx, vfu_dma_info_t *info)
{
    (void)ctx;
    (void)info;
}

static void
dma_unreg(vfu_ctx_t *ctx, vfu_dma_info_t *info)
{
    (void)ctx;
    (void)info;
}

/* ---- raw messages ---- */

static void
xread(int fd, void *buf, size_t len)
{
    assert_int_equal(harness_raw_read(fd, buf, len, 5000), 0);
}

/* Read one message: its header, its payload into buf (cap bytes at most),
 * and any fds into fds (nfds in, received out). */
static size_t
xrecv(int fd, struct hdr *h, void *buf, size_t cap, int *fds, int *nfds)
{
    char cbuf[CMSG_SPACE(sizeof(int) * 16)];
    struct iovec iov = { h, sizeof(*h) };
    struct msghdr mh = {
        .msg_iov = &iov, .msg_iovlen = 1,
        .msg_control = cbuf, .msg_controllen = sizeof(cbuf),
    };
    struct pollfd pf = { .fd = fd, .events = POLLIN };
    int got = 0;

    assert_int_equal(poll(&pf, 1, 5000), 1);
    assert_int_equal(recvmsg(fd, &mh, MSG_WAITALL | MSG_CMSG_CLOEXEC),
                     (ssize_t)sizeof(*h));
    for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); cm != NULL;
         cm = CMSG_NXTHDR(&mh, cm)) {
        int n = (int)((cm->cmsg_len - CMSG_LEN(0)) / sizeof(int));
        for (int i = 0; i < n; i++) {
            int x;
            memcpy(&x, CMSG_DATA(cm) + i * sizeof(int), sizeof(int));
            if (fds != NULL && nfds != NULL && got < *nfds) {
                fds[got++] = x;
            } else {
                close(x);
            }
        }
    }
    if (nfds != NULL) {
        *nfds = got;
    }
    assert_true(h->size >= sizeof(*h));
    size_t len = h->size - sizeof(*h);
    assert_true(len <= cap);
    xread(fd, buf, len);
    return len;
}

/* Send a command, let the server handle it, read its reply: its errno. */
static int
command_fds(struct fx *f, uint16_t cmd, const void *payload, size_t len,
            const int *fds, int nfds, void *reply, size_t cap)
{
    static char sink[BAR2_SIZE + 64];
    struct hdr h;
    uint16_t id = f->next_id++;

    harness_raw_send(f->fd, id, cmd, VFIO_USER_F_TYPE_COMMAND, payload, len, fds, nfds);
    assert_true(vfu_run_ctx(f->ctx) >= 0);
    xrecv(f->fd, &h, reply != NULL ? reply : sink, reply != NULL ? cap : sizeof(sink),
          NULL, NULL);
    assert_int_equal(h.id, id);
    assert_true(h.flags & VFIO_USER_F_TYPE_REPLY);
    return (int)h.err;
}

static int
command(struct fx *f, uint16_t cmd, const void *payload, size_t len)
{
    return command_fds(f, cmd, payload, len, NULL, 0, NULL, 0);
}

/* VERSION with json (NULL: none); the reply's JSON into reply. */
static void
negotiate(struct fx *f, const char *json, char *reply, size_t cap)
{
    char buf[512] = { 0 }, rep[1024];
    size_t len = 4;

    if (json != NULL) {
        strcpy(buf + 4, json);
        len += strlen(json) + 1;
    }
    assert_int_equal(command_fds(f, VFIO_USER_VERSION, buf, len, NULL, 0,
                                 rep, sizeof(rep) - 1), 0);
    if (reply != NULL) {
        snprintf(reply, cap, "%.*s", (int)cap - 1, rep + 4);
    }
}

static void
open_ctx(struct fx *f)
{
    int sv[2];

    snprintf(f->dir, sizeof(f->dir), "/tmp/vfu-hostile-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->path, sizeof(f->path), "%s/s", f->dir);
    f->ctx = vfu_create_ctx(VFU_TRANS_SOCK, f->path, LIBVFIO_USER_FLAG_ATTACH_NB,
                            f, VFU_DEV_TYPE_PCI);
    assert_non_null(f->ctx);
    assert_int_equal(vfu_setup_log(f->ctx, log_fn, LOG_DEBUG), 0);
    assert_int_equal(vfu_pci_init(f->ctx, VFU_PCI_TYPE_CONVENTIONAL, 0, 0), 0);
    assert_int_equal(vfu_setup_region(f->ctx, VFU_PCI_DEV_BAR0_REGION_IDX,
                                      BAR0_SIZE, bar0_cb, VFU_REGION_FLAG_RW |
                                      VFU_REGION_FLAG_MEM, NULL, 0, -1, 0), 0);
    assert_int_equal(vfu_setup_region(f->ctx, VFU_PCI_DEV_BAR2_REGION_IDX,
                                      BAR2_SIZE, bar2_cb, VFU_REGION_FLAG_RW |
                                      VFU_REGION_FLAG_MEM, NULL, 0, -1, 0), 0);
    f->bar4_fd = memfd_create("bar4", MFD_CLOEXEC);
    assert_true(f->bar4_fd >= 0);
    assert_int_equal(ftruncate(f->bar4_fd, 0x1000), 0);
    assert_int_equal(vfu_setup_region(f->ctx, VFU_PCI_DEV_BAR4_REGION_IDX,
                                      0x1000, NULL, VFU_REGION_FLAG_RW |
                                      VFU_REGION_FLAG_MEM, NULL, 0,
                                      f->bar4_fd, 0), 0);
    assert_int_equal(vfu_setup_device_nr_irqs(f->ctx, VFU_DEV_INTX_IRQ, 1), 0);
    assert_int_equal(vfu_setup_device_nr_irqs(f->ctx, VFU_DEV_MSIX_IRQ, NR_MSIX), 0);
    vfu_setup_device_quiesce_cb(f->ctx, quiesce_cb);
    assert_int_equal(vfu_setup_device_dma(f->ctx, 0, dma_reg, dma_unreg), 0);
    assert_int_equal(vfu_realize_ctx(f->ctx), 0);
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    assert_int_equal(vfu_attach_fd(f->ctx, sv[0]), 0);
    f->fd = sv[1];
}

static int
setup_raw(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));

    assert_non_null(f);
    the_fx = f;
    f->next_id = 1;
    open_ctx(f);
    *state = f;
    return 0;
}

static int
setup(void **state)
{
    setup_raw(state);
    negotiate(*state, "{\"capabilities\":{\"max_msg_fds\":16}}", NULL, 0);
    return 0;
}

static int
teardown(void **state)
{
    struct fx *f = *state;

    if (f->fd >= 0) {
        close(f->fd);
    }
    if (f->ctx != NULL) {
        vfu_destroy_ctx(f->ctx);
    }
    close(f->bar4_fd);
    rmdir(f->dir);
    the_fx = NULL;
    free(f);
    return 0;
}

/* SET_IRQS of one action/data for [start, start + count), with fds. */
static int
set_irqs(struct fx *f, uint32_t flags, uint32_t index, uint32_t start,
         uint32_t count, const int *fds, int nfds)
{
    struct vfio_irq_set s = {
        .argsz = sizeof(s), .flags = flags, .index = index,
        .start = start, .count = count,
    };

    return command_fds(f, VFIO_USER_DEVICE_SET_IRQS, &s, sizeof(s), fds, nfds,
                       NULL, 0);
}

static uint64_t
efd_read(int fd)
{
    uint64_t v = 0;
    struct pollfd p = { .fd = fd, .events = POLLIN };

    if (poll(&p, 1, 100) == 1 && read(fd, &v, sizeof(v)) != sizeof(v)) {
        v = 0;
    }
    return v;
}

/* ---- 1: IRQ eventfds ---- */

/*
 * A pipe is no eventfd: refused. Taken, its write end would be written on
 * each trigger, and with its read end closed a C server dies of SIGPIPE.
 */
static void
test_irq_pipe_refused(void **state)
{
    struct fx *f = *state;
    int p[2];

    assert_int_equal(pipe(p), 0);
    assert_int_equal(set_irqs(f, VFIO_IRQ_SET_DATA_EVENTFD |
                              VFIO_IRQ_SET_ACTION_TRIGGER, VFU_DEV_MSIX_IRQ,
                              0, 1, &p[1], 1), EINVAL);
    close(p[0]);
    close(p[1]);
    errno = 0;
    assert_int_equal(vfu_irq_trigger(f->ctx, 0), -1);
    assert_int_equal(errno, ENOENT);
    /* Nor a socket, among eventfds: the whole set is refused. */
    int e = eventfd(0, EFD_CLOEXEC), sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    int two[2] = { e, sv[0] };
    assert_int_equal(set_irqs(f, VFIO_IRQ_SET_DATA_EVENTFD |
                              VFIO_IRQ_SET_ACTION_TRIGGER, VFU_DEV_MSIX_IRQ,
                              0, 2, two, 2), EINVAL);
    errno = 0;
    assert_int_equal(vfu_irq_trigger(f->ctx, 0), -1);
    assert_int_equal(errno, ENOENT);
    close(e);
    close(sv[0]);
    close(sv[1]);
}

struct trig {
    vfu_ctx_t *ctx;
    uint32_t vec;
    int rc;
    int done;
};

static void *
trigger_thread(void *arg)
{
    struct trig *t = arg;

    t->rc = vfu_irq_trigger(t->ctx, t->vec);
    __atomic_store_n(&t->done, 1, __ATOMIC_RELEASE);
    return NULL;
}

/* Did a vfu_irq_trigger() on another thread return within ms? */
static bool
trigger_returns(vfu_ctx_t *ctx, uint32_t vec, int ms, pthread_t *tid,
                struct trig *t)
{
    t->ctx = ctx;
    t->vec = vec;
    t->done = 0;
    assert_int_equal(pthread_create(tid, NULL, trigger_thread, t), 0);
    for (int i = 0; i < ms && !__atomic_load_n(&t->done, __ATOMIC_ACQUIRE); i++) {
        usleep(1000);
    }
    return __atomic_load_n(&t->done, __ATOMIC_ACQUIRE);
}

/*
 * A blocking eventfd with its counter one short of saturation: a write
 * would block until someone reads it, which a client that leaves never
 * does. The trigger must return at once.
 */
static void
test_irq_saturated_never_blocks(void **state)
{
    struct fx *f = *state;
    int e = eventfd(0, EFD_CLOEXEC);            /* blocking */
    uint64_t full = 0xfffffffffffffffeull;
    struct trig t;
    pthread_t tid;

    assert_true(e >= 0);
    assert_int_equal(write(e, &full, sizeof(full)), sizeof(full));
    assert_int_equal(set_irqs(f, VFIO_IRQ_SET_DATA_EVENTFD |
                              VFIO_IRQ_SET_ACTION_TRIGGER, VFU_DEV_MSIX_IRQ,
                              3, 1, &e, 1), 0);
    bool returned = trigger_returns(f->ctx, 3, 2000, &tid, &t);
    if (!returned) {
        uint64_t v;
        assert_int_equal(read(e, &v, sizeof(v)), sizeof(v));   /* unblock it */
    }
    pthread_join(tid, NULL);
    assert_true(returned);
    assert_int_equal(t.rc, 0);
    /* The client's eventfd is ours to signal again once it has room. */
    uint64_t v;
    fcntl(e, F_SETFL, O_NONBLOCK);
    assert_int_equal(read(e, &v, sizeof(v)), sizeof(v));
    assert_int_equal(vfu_irq_trigger(f->ctx, 3), 0);
    assert_int_equal(efd_read(e), 1);
    close(e);
}

/*
 * INTx announces what it does: maskable, but not automasked, for a trigger
 * does not mask it. Each trigger signals; a mask holds them back until the
 * unmask.
 */
static void
test_intx_not_automasked(void **state)
{
    struct fx *f = *state;
    struct vfio_irq_info in = { .argsz = sizeof(in), .index = VFU_DEV_INTX_IRQ };
    struct vfio_irq_info out;
    int e = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);

    assert_int_equal(command_fds(f, VFIO_USER_DEVICE_GET_IRQ_INFO, &in,
                                 sizeof(in), NULL, 0, &out, sizeof(out)), 0);
    assert_int_equal(out.flags, VFIO_IRQ_INFO_EVENTFD | VFIO_IRQ_INFO_MASKABLE);
    assert_int_equal(set_irqs(f, VFIO_IRQ_SET_DATA_EVENTFD |
                              VFIO_IRQ_SET_ACTION_TRIGGER, VFU_DEV_INTX_IRQ,
                              0, 1, &e, 1), 0);
    assert_int_equal(vfu_irq_trigger(f->ctx, 0), 0);
    assert_int_equal(vfu_irq_trigger(f->ctx, 0), 0);
    assert_int_equal(efd_read(e), 2);
    assert_int_equal(set_irqs(f, VFIO_IRQ_SET_DATA_NONE |
                              VFIO_IRQ_SET_ACTION_MASK, VFU_DEV_INTX_IRQ,
                              0, 1, NULL, 0), 0);
    assert_int_equal(vfu_irq_trigger(f->ctx, 0), 0);
    assert_int_equal(efd_read(e), 0);
    assert_int_equal(set_irqs(f, VFIO_IRQ_SET_DATA_NONE |
                              VFIO_IRQ_SET_ACTION_UNMASK, VFU_DEV_INTX_IRQ,
                              0, 1, NULL, 0), 0);
    assert_int_equal(efd_read(e), 1);           /* delivered on unmask */
    close(e);
}

/* ---- 4: re-entrant calls from callbacks ---- */

/* A REGION_WRITE of 4 bytes to BAR0 at off. */
static int
bar0_write(struct fx *f, uint64_t off, uint32_t val)
{
    struct {
        struct vfio_user_region_access a;
        uint32_t v;
    } w = { { off, VFU_PCI_DEV_BAR0_REGION_IDX, 4 }, val };

    return command_fds(f, VFIO_USER_REGION_WRITE, &w, sizeof(w), NULL, 0,
                       NULL, 0);
}

static int
bar0_read(struct fx *f, uint64_t off, void *out, uint32_t count)
{
    struct vfio_user_region_access a = { off, VFU_PCI_DEV_BAR0_REGION_IDX, count };
    char rep[sizeof(a) + 256];
    int err;

    assert_true(count <= 256);
    err = command_fds(f, VFIO_USER_REGION_READ, &a, sizeof(a), NULL, 0, rep,
                      sizeof(rep));
    if (err == 0) {
        memcpy(out, rep + sizeof(a), count);
    }
    return err;
}

/*
 * vfu_run_ctx() from a callback of vfu_run_ctx(): refused with EDEADLK,
 * and a request queued behind is left for the outer loop, not handled by
 * the nested one.
 */
static void
test_nested_run_refused(void **state)
{
    struct fx *f = *state;
    struct {
        struct vfio_user_region_access a;
        uint32_t v;
    } w = { { 0, VFU_PCI_DEV_BAR0_REGION_IDX, 4 }, 0x11 };
    struct vfio_user_region_access r = { 0, VFU_PCI_DEV_BAR0_REGION_IDX, 4 };
    char rep[64];
    struct hdr h;

    f->mode = BAR0_NESTED_RUN;
    /* The write and a read behind it, in one go. */
    harness_raw_send(f->fd, 50, VFIO_USER_REGION_WRITE, VFIO_USER_F_TYPE_COMMAND, &w,
          sizeof(w), NULL, 0);
    harness_raw_send(f->fd, 51, VFIO_USER_REGION_READ, VFIO_USER_F_TYPE_COMMAND, &r,
          sizeof(r), NULL, 0);
    assert_int_equal(vfu_run_ctx(f->ctx), 2);
    assert_int_equal(f->nested_rc, -1);
    assert_int_equal(f->nested_errno, EDEADLK);
    xrecv(f->fd, &h, rep, sizeof(rep), NULL, NULL);
    assert_int_equal(h.id, 50);
    assert_int_equal(h.err, 0);
    xrecv(f->fd, &h, rep, sizeof(rep), NULL, NULL);
    assert_int_equal(h.id, 51);
    assert_int_equal(h.err, 0);
    uint32_t v;
    memcpy(&v, rep + sizeof(r), 4);
    assert_int_equal(v, 0x11);
}

/*
 * vfu_destroy_ctx() from a callback: refused (logged, errno EBUSY); the
 * context goes on serving, and is destroyed by the teardown.
 */
static void
test_destroy_in_callback_refused(void **state)
{
    struct fx *f = *state;
    uint32_t v = 0;

    f->mode = BAR0_DESTROY;
    assert_int_equal(bar0_write(f, 8, 0x22), 0);
    assert_non_null(strstr(f->log, "vfu_destroy_ctx()"));
    f->mode = BAR0_PLAIN;
    assert_int_equal(bar0_read(f, 8, &v, 4), 0);
    assert_int_equal(v, 0x22);
}

/* ---- 2: destroy waits for a quiesce under way ---- */

/* DMA_MAP [IOVA, IOVA + MAP_SIZE) read-write, backed by fd if fd >= 0. */
static int
dma_map(struct fx *f, int fd)
{
    struct vfio_user_dma_map m = {
        .argsz = sizeof(m),
        .flags = VFIO_USER_F_DMA_REGION_READ | VFIO_USER_F_DMA_REGION_WRITE,
        .addr = IOVA, .size = MAP_SIZE,
    };

    return command_fds(f, VFIO_USER_DMA_MAP, &m, sizeof(m), &fd, fd >= 0,
                       NULL, 0);
}

/* A memfd of MAP_SIZE that cannot shrink (a well-behaved client's). */
static int
sealed_memfd(void)
{
    int fd = memfd_create("hostile", MFD_CLOEXEC | MFD_ALLOW_SEALING);

    assert_true(fd >= 0);
    assert_int_equal(ftruncate(fd, MAP_SIZE), 0);
    assert_int_equal(fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_SEAL), 0);
    return fd;
}

struct dev_thread {
    struct fx *f;
    int stop;           /* set by the quiesce callback */
    int asked;          /* ... which answered EBUSY */
    unsigned long loops;
    int quiesced_rc;
};

static struct dev_thread *the_dev;

static void
stop_device(struct fx *f)
{
    (void)f;
    __atomic_store_n(&the_dev->asked, 1, __ATOMIC_RELEASE);
    __atomic_store_n(&the_dev->stop, 1, __ATOMIC_RELEASE);
}

/* The device: DMA through an SG entry it holds until told to quiesce. */
static void *
device_dma(void *arg)
{
    struct dev_thread *d = arg;
    vfu_ctx_t *ctx = d->f->ctx;
    struct iovec iov;

    assert_int_equal(vfu_sgl_get(ctx, (dma_sg_t *)d->f->sg, &iov, 1, 0), 0);
    volatile uint8_t *p = iov.iov_base;
    while (!__atomic_load_n(&d->stop, __ATOMIC_ACQUIRE)) {
        /* atomic: the test thread watches the count */
        unsigned long n = __atomic_load_n(&d->loops, __ATOMIC_RELAXED);
        p[n % iov.iov_len]++;
        __atomic_store_n(&d->loops, n + 1, __ATOMIC_RELAXED);
    }
    vfu_sgl_put(ctx, (dma_sg_t *)d->f->sg, &iov, 1);
    usleep(20000);      /* quiescing takes a while */
    if (__atomic_load_n(&d->asked, __ATOMIC_ACQUIRE)) {
        d->quiesced_rc = vfu_device_quiesced(ctx, 0);
    }
    return NULL;
}

/*
 * The client goes while a device thread writes its memory through
 * vfu_sgl_get(): the loop asks the device to quiesce (EBUSY) and
 * vfu_run_ctx() fails with EBUSY. The application then destroys the
 * context before the device has called vfu_device_quiesced(): destroy must
 * wait for that call (the device is still doing DMA, and then calls into
 * the context) before it unmaps and frees. Not waiting faults the device
 * thread. Destroy itself does not call the quiesce callback (libvfio-user's
 * test_destroy.py checks that).
 */
static void
test_destroy_waits_for_pending_quiesce(void **state)
{
    struct fx *f = *state;
    struct dev_thread d = { .f = f };
    int mfd = sealed_memfd();
    pthread_t t;

    assert_int_equal(dma_map(f, mfd), 0);
    close(mfd);
    assert_int_equal(vfu_addr_to_sgl(f->ctx, (vfu_dma_addr_t)(uintptr_t)IOVA,
                                     MAP_SIZE, (dma_sg_t *)f->sg, 1,
                                     PROT_READ | PROT_WRITE), 1);
    the_dev = &d;
    f->quiesce_busy = 1;
    f->on_quiesce = stop_device;
    assert_int_equal(pthread_create(&t, NULL, device_dma, &d), 0);
    while (__atomic_load_n(&d.loops, __ATOMIC_RELAXED) < 1000) {
        usleep(1000);
    }
    close(f->fd);
    f->fd = -1;
    errno = 0;
    assert_int_equal(vfu_run_ctx(f->ctx), -1);
    assert_int_equal(errno, EBUSY);
    unsigned calls = f->quiesce_calls;
    vfu_destroy_ctx(f->ctx);
    f->ctx = NULL;
    pthread_join(t, NULL);
    assert_int_equal(f->quiesce_calls, calls);     /* destroy asked nothing */
    assert_int_equal(d.quiesced_rc, 0);
    the_dev = NULL;
}

/* ---- 8: non-blocking loops are woken for what is buffered ---- */

/*
 * A DMA_MAP that parks (quiesce EBUSY) with a REGION_READ behind it, both
 * read by the same vfu_run_ctx(). Once vfu_device_quiesced() has finished
 * the map, the read is in the context's buffer and the socket is empty:
 * the poll fd must say so, or a non-blocking loop sleeps on it for ever.
 */
static void
test_quiesced_wakes_poll_fd(void **state)
{
    struct fx *f = *state;
    struct vfio_user_dma_map m = {
        .argsz = sizeof(m),
        .flags = VFIO_USER_F_DMA_REGION_READ | VFIO_USER_F_DMA_REGION_WRITE,
        .addr = IOVA, .size = MAP_SIZE,
    };
    struct vfio_user_region_access r = { 0, VFU_PCI_DEV_BAR0_REGION_IDX, 4 };
    struct pollfd p = { .fd = vfu_get_poll_fd(f->ctx), .events = POLLIN };
    char rep[64];
    struct hdr h;

    f->quiesce_busy = 1;
    harness_raw_send(f->fd, 60, VFIO_USER_DMA_MAP, VFIO_USER_F_TYPE_COMMAND, &m,
          sizeof(m), NULL, 0);
    harness_raw_send(f->fd, 61, VFIO_USER_REGION_READ, VFIO_USER_F_TYPE_COMMAND, &r,
          sizeof(r), NULL, 0);
    usleep(10000);
    errno = 0;
    assert_int_equal(vfu_run_ctx(f->ctx), -1);
    assert_int_equal(errno, EBUSY);
    f->quiesce_busy = 0;
    assert_int_equal(vfu_device_quiesced(f->ctx, 0), 0);
    xrecv(f->fd, &h, rep, sizeof(rep), NULL, NULL);
    assert_int_equal(h.id, 60);
    assert_int_equal(h.err, 0);
    assert_int_equal(poll(&p, 1, 500), 1);
    assert_int_equal(vfu_run_ctx(f->ctx), 1);
    xrecv(f->fd, &h, rep, sizeof(rep), NULL, NULL);
    assert_int_equal(h.id, 61);
    assert_int_equal(h.err, 0);
}

/* ---- 11: region reads carry no stale bytes ---- */

/*
 * A read handler that claims the whole count but writes nothing: the reply
 * is zeros, not the previous reply's 0xaa (the reply buffer is reused).
 */
static void
test_region_read_zeroes_unfilled(void **state)
{
    struct fx *f = *state;
    uint8_t v[64], zero[64] = { 0 };

    f->mode = BAR0_FILL_AA;
    assert_int_equal(bar0_read(f, 0, v, sizeof(v)), 0);
    assert_int_equal(v[0], 0xaa);
    f->mode = BAR0_NO_FILL;
    memset(v, 0xff, sizeof(v));
    assert_int_equal(bar0_read(f, 0, v, sizeof(v)), 0);
    assert_memory_equal(v, zero, sizeof(v));
}

/* ---- 7: fds read ahead during a DMA call are kept ---- */

#define NR_AHEAD 12

struct dma_client {
    struct fx *f;
    int efds[NR_AHEAD];
    int requests;
};

/*
 * The client's side of a device callback that reads its memory by message:
 * at the first DMA_READ, it first sends NR_AHEAD SET_IRQS, each with an
 * eventfd for one MSI-X vector, and only then the reply; later DMA_READs
 * (the layout probe may ask again) are answered at once.
 */
static void *
dma_client(void *arg)
{
    struct dma_client *d = arg;
    int fd = d->f->fd;

    for (;;) {
        struct pollfd p = { .fd = fd, .events = POLLIN };
        char req[64], rep[64 + 16];
        struct hdr h;

        if (poll(&p, 1, 300) != 1) {
            return NULL;
        }
        /* Replies to the requests are the test's to read. */
        if (recv(fd, &h, sizeof(h), MSG_PEEK | MSG_WAITALL) != sizeof(h) ||
            h.cmd != VFIO_USER_DMA_READ) {
            return NULL;
        }
        xrecv(fd, &h, req, sizeof(req), NULL, NULL);
        if (d->requests++ == 0) {
            for (int i = 0; i < NR_AHEAD; i++) {
                struct vfio_irq_set s = {
                    .argsz = sizeof(s), .index = VFU_DEV_MSIX_IRQ,
                    .flags = VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER,
                    .start = (uint32_t)i, .count = 1,
                };
                harness_raw_send(fd, (uint16_t)(100 + i), VFIO_USER_DEVICE_SET_IRQS,
                      VFIO_USER_F_TYPE_COMMAND, &s, sizeof(s), &d->efds[i], 1);
            }
        }
        uint64_t count;
        memcpy(&count, req + 8, 8);
        assert_true(count <= 64);
        memcpy(rep, req, 16);
        memset(rep + 16, 0x77, count);
        harness_raw_send(fd, h.id, h.cmd, VFIO_USER_F_TYPE_REPLY, rep, 16 + count, NULL, 0);
    }
}

/*
 * While a callback waits for its DMA_READ reply, the client sends twelve
 * fd-carrying requests: all are read ahead of the reply, and each keeps
 * its fd (the ninth and later used to be closed and handled without, so
 * that an eventfd assignment became a de-assignment).
 */
static void
test_fds_read_ahead_kept(void **state)
{
    struct fx *f = *state;
    struct dma_client d = { .f = f };
    struct {
        struct vfio_user_region_access a;
        uint32_t v;
    } w = { { 0, VFU_PCI_DEV_BAR0_REGION_IDX, 4 }, 1 };
    pthread_t t;

    assert_int_equal(dma_map(f, -1), 0);        /* by message only */
    assert_int_equal(vfu_addr_to_sgl(f->ctx, (vfu_dma_addr_t)(uintptr_t)IOVA,
                                     16, (dma_sg_t *)f->sg, 1,
                                     PROT_READ | PROT_WRITE), 1);
    for (int i = 0; i < NR_AHEAD; i++) {
        d.efds[i] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    }
    f->mode = BAR0_MSG_DMA;
    harness_raw_send(f->fd, 70, VFIO_USER_REGION_WRITE, VFIO_USER_F_TYPE_COMMAND, &w,
          sizeof(w), NULL, 0);
    usleep(10000);
    assert_int_equal(pthread_create(&t, NULL, dma_client, &d), 0);
    assert_int_equal(vfu_run_ctx(f->ctx), 1 + NR_AHEAD);
    pthread_join(t, NULL);
    assert_int_equal(f->dma_rc, 0);
    for (int i = 0; i < 1 + NR_AHEAD; i++) {
        char rep[64];
        struct hdr h;
        xrecv(f->fd, &h, rep, sizeof(rep), NULL, NULL);
        assert_int_equal(h.err, 0);
    }
    for (int i = 0; i < NR_AHEAD; i++) {
        assert_int_equal(vfu_irq_trigger(f->ctx, (uint32_t)i), 0);
        assert_int_equal(efd_read(d.efds[i]), 1);
        close(d.efds[i]);
    }
}

/* ---- 12: WRITE_MULTI, the reply buffer, oversized messages ---- */

/*
 * Entries are all checked before any is written; a device callback failing
 * midway leaves the entries before it applied, the rest unmade, the
 * device's errno in the reply, and the log names the entry.
 */
static void
test_write_multi_partial_reported(void **state)
{
    struct fx *f = *state;
    struct {
        uint64_t wr_cnt;
        struct vfio_user_write_multi_one wrs[3];
    } m = { .wr_cnt = 3 };
    uint32_t v;

    for (int i = 0; i < 3; i++) {
        m.wrs[i].offset = 0x100 + 4 * (uint64_t)i;
        m.wrs[i].region = VFU_PCI_DEV_BAR0_REGION_IDX;
        m.wrs[i].count = 4;
        v = 0x1000u + (uint32_t)i;
        memcpy(m.wrs[i].data, &v, 4);
    }
    /* A bad entry last: nothing is written at all. */
    m.wrs[2].offset = BAR0_SIZE;
    assert_int_equal(command(f, VFIO_USER_REGION_WRITE_MULTI, &m, sizeof(m)),
                     EINVAL);
    assert_int_equal(f->writes, 0);
    /* The device fails the second. */
    m.wrs[2].offset = 0x108;
    f->mode = BAR0_FAIL_2ND;
    f->log[0] = '\0';
    assert_int_equal(command(f, VFIO_USER_REGION_WRITE_MULTI, &m, sizeof(m)),
                     EIO);
    assert_int_equal(f->writes, 2);
    memcpy(&v, f->bar0 + 0x100, 4);
    assert_int_equal(v, 0x1000);
    memcpy(&v, f->bar0 + 0x108, 4);
    assert_int_equal(v, 0);
    assert_non_null(strstr(f->log, "entry 1 of 3 failed"));
}

/* A 1 MiB read grows the reply buffer; it goes with the client. */
static void
test_scratch_freed_with_client(void **state)
{
    struct fx *f = *state;
    struct vfio_user_region_access a = { 0, VFU_PCI_DEV_BAR2_REGION_IDX, BAR2_SIZE };

    assert_int_equal(command(f, VFIO_USER_REGION_READ, &a, sizeof(a)), 0);
    assert_true(f->ctx->scratch_size >= BAR2_SIZE);
    close(f->fd);
    f->fd = -1;
    errno = 0;
    assert_int_equal(vfu_run_ctx(f->ctx), -1);
    assert_int_equal(errno, ENOTCONN);
    assert_null(f->ctx->scratch);
    assert_int_equal(f->ctx->scratch_size, 0);
}

/*
 * An oversized message, then a complete one with an fd, read together:
 * the oversized one's refusal drops its own payload and fds, not the fd of
 * the message behind it.
 */
static void
test_oversized_keeps_fds_behind(void **state)
{
    (void)state;
    struct vfu_conn c;
    struct vfu_msg m;
    int sv[2], e = eventfd(0, EFD_CLOEXEC);
    static char big[5000];
    struct hdr h = { 1, VFIO_USER_REGION_WRITE, sizeof(big), 0, 0 };

    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    assert_int_equal(vfu_conn_init(&c, sv[0], 4096, 8), 0);
    c.serve_mode = true;
    memcpy(big, &h, sizeof(h));
    assert_int_equal(send(sv[1], big, sizeof(big), 0), (ssize_t)sizeof(big));
    uint32_t payload = 7;
    harness_raw_send(sv[1], 2, VFIO_USER_DEVICE_SET_IRQS, VFIO_USER_F_TYPE_COMMAND,
          &payload, sizeof(payload), &e, 1);
    usleep(10000);
    int taken = 0;
    for (int i = 0; i < 100 && taken < 2; i++) {
        int rc = vfu_conn_take(&c, &m);
        assert_true(rc >= 0);
        if (rc == 0) {
            assert_true(vfu_conn_fill(&c, false) > 0);
            continue;
        }
        taken++;
        if (taken == 1) {
            assert_null(m.in);              /* refused unread */
            assert_int_equal(m.nr_fds, 0);
        } else {
            assert_int_equal(m.hdr.msg_id, 2);
            assert_int_equal(m.nr_fds, 1);
            vfu_msg_close_fds(&m);
        }
        vfu_conn_unpin(&c);
    }
    assert_int_equal(taken, 2);
    vfu_conn_fini(&c);
    close(sv[1]);
    close(e);
}

/* ---- 13: what VERSION and REGION_INFO announce ---- */

/* No JSON: nothing proposed, so no write_multiple (nor twin socket). */
static void
test_version_announces_only_proposed(void **state)
{
    struct fx *f = *state;
    char reply[512];

    negotiate(f, NULL, reply, sizeof(reply));
    assert_null(strstr(reply, "write_multiple"));
    assert_null(strstr(reply, "twin_socket"));
    assert_non_null(strstr(reply, "max_msg_fds"));
}

static void
test_version_write_multiple_when_proposed(void **state)
{
    struct fx *f = *state;
    char reply[512];

    negotiate(f, "{\"capabilities\":{\"write_multiple\":true}}", reply,
              sizeof(reply));
    assert_non_null(strstr(reply, "\"write_multiple\":true"));
}

/*
 * max_msg_fds 0: the client takes no fds, so REGION_INFO of a mappable
 * region sends none and says the region is not mappable.
 */
static void
test_region_info_no_fd_beyond_max_msg_fds(void **state)
{
    struct fx *f = *state;
    struct vfio_region_info in = {
        .argsz = sizeof(in), .index = VFU_PCI_DEV_BAR4_REGION_IDX,
    };
    struct vfio_region_info out;
    struct hdr h;
    int fds[2], nfds = 2;

    negotiate(f, "{\"capabilities\":{\"max_msg_fds\":0}}", NULL, 0);
    harness_raw_send(f->fd, 90, VFIO_USER_DEVICE_GET_REGION_INFO, VFIO_USER_F_TYPE_COMMAND,
          &in, sizeof(in), NULL, 0);
    assert_int_equal(vfu_run_ctx(f->ctx), 1);
    xrecv(f->fd, &h, &out, sizeof(out), fds, &nfds);
    assert_int_equal(h.err, 0);
    assert_int_equal(nfds, 0);
    assert_int_equal(out.flags & VFIO_REGION_INFO_FLAG_MMAP, 0);
    assert_int_equal(out.size, 0x1000);
}

/* The default (max_msg_fds 1) still gets the fd. */
static void
test_region_info_fd_by_default(void **state)
{
    struct fx *f = *state;
    struct vfio_region_info in = {
        .argsz = sizeof(in), .index = VFU_PCI_DEV_BAR4_REGION_IDX,
    };
    struct vfio_region_info out;
    struct hdr h;
    int fds[2], nfds = 2;

    negotiate(f, NULL, NULL, 0);
    harness_raw_send(f->fd, 91, VFIO_USER_DEVICE_GET_REGION_INFO, VFIO_USER_F_TYPE_COMMAND,
          &in, sizeof(in), NULL, 0);
    assert_int_equal(vfu_run_ctx(f->ctx), 1);
    xrecv(f->fd, &h, &out, sizeof(out), fds, &nfds);
    assert_int_equal(h.err, 0);
    assert_int_equal(nfds, 1);
    assert_true(out.flags & VFIO_REGION_INFO_FLAG_MMAP);
    close(fds[0]);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_irq_pipe_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_irq_saturated_never_blocks, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_intx_not_automasked, setup, teardown),
        cmocka_unit_test_setup_teardown(test_nested_run_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_destroy_waits_for_pending_quiesce, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_destroy_in_callback_refused, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_quiesced_wakes_poll_fd, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_region_read_zeroes_unfilled, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_fds_read_ahead_kept, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_write_multi_partial_reported, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_scratch_freed_with_client, setup,
                                        teardown),
        cmocka_unit_test(test_oversized_keeps_fds_behind),
        cmocka_unit_test_setup_teardown(test_version_announces_only_proposed,
                                        setup_raw, teardown),
        cmocka_unit_test_setup_teardown(test_version_write_multiple_when_proposed,
                                        setup_raw, teardown),
        cmocka_unit_test_setup_teardown(test_region_info_no_fd_beyond_max_msg_fds,
                                        setup_raw, teardown),
        cmocka_unit_test_setup_teardown(test_region_info_fd_by_default,
                                        setup_raw, teardown),
    };

    signal(SIGPIPE, SIG_DFL);   /* a C server's default: SIGPIPE kills */
    return cmocka_run_group_tests(tests, NULL, NULL);
}
