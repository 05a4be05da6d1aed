/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 the vfu authors. */

/*
 * Migration v2 end to end: real servers on UNIX sockets (each run by its own
 * thread), a client speaking the wire protocol, and a test device whose
 * migration stream is generated from its offset so that streams of any
 * length (up to 1 GiB) are checked on both ends without being stored.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>

#include "libvfio-user.h"
#include "migration_internal.h"
#include "wire.h"

#define NS VFIO_USER_DEVICE_NUM_STATES
#define MAX_LOG 64

enum {
    STOP = VFIO_USER_DEVICE_STATE_STOP,
    RUN = VFIO_USER_DEVICE_STATE_RUNNING,
    SC = VFIO_USER_DEVICE_STATE_STOP_COPY,
    RES = VFIO_USER_DEVICE_STATE_RESUMING,
    PC = VFIO_USER_DEVICE_STATE_PRE_COPY,
};

/* ---- the stream: byte i is byte (i % 8) of word(i / 8) ---- */

static uint64_t
word_at(uint64_t k)
{
    uint64_t z = k + 0x9e3779b97f4a7c15ull;

    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static void
fill_stream(uint8_t *buf, uint64_t off, size_t n)
{
    size_t i = 0;

    for (; i < n && ((off + i) & 7) != 0; i++) {
        buf[i] = (uint8_t)(word_at((off + i) >> 3) >> (8 * ((off + i) & 7)));
    }
    for (; i + 8 <= n; i += 8) {
        uint64_t w = word_at((off + i) >> 3);
        memcpy(buf + i, &w, 8);
    }
    for (; i < n; i++) {
        buf[i] = (uint8_t)(word_at((off + i) >> 3) >> (8 * ((off + i) & 7)));
    }
}

/* Position-weighted sum: order matters, chunking does not. */
static void
csum_update(uint64_t *cs, uint64_t off, const uint8_t *buf, size_t n)
{
    size_t i = 0;

    for (; i < n && ((off + i) & 7) != 0; i++) {
        *cs += ((uint64_t)buf[i] << (8 * ((off + i) & 7))) *
               (2 * ((off + i) >> 3) + 1);
    }
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, buf + i, 8);
        *cs += w * (2 * ((off + i) >> 3) + 1);
    }
    for (; i < n; i++) {
        *cs += ((uint64_t)buf[i] << (8 * ((off + i) & 7))) *
               (2 * ((off + i) >> 3) + 1);
    }
}

/* ---- the test device ---- */

/*
 * The server thread runs the callbacks and the test thread reads and sets
 * what they use between requests. The socket orders the two, but TSan
 * cannot see that: what both touch is atomic.
 */
struct dev {
    /* what the device was told, in order */
    _Atomic vfu_migr_state_t log[MAX_LOG];
    _Atomic unsigned nlog;
    vfu_migr_state_t state;
    _Atomic int fail_into;          /* state whose arc fails, or -1 */
    _Atomic int fail_errno;
    /* the next BAR0 access (re)sets the migration callbacks, from the
     * server thread, and records the result here */
    _Atomic bool resetup;
    _Atomic int resetup_ret, resetup_errno;

    /* saving side */
    uint64_t pre_len, total_len;    /* bytes offered in PRE_COPY, in all */
    uint64_t rd_off, rd_calls, src_sum;

    /* resuming side */
    uint64_t wr_off, dst_sum, expect_len;
    uint8_t *scratch;
    size_t scratch_size;

    uint8_t bar0[256];
};

static int
dev_transition(vfu_ctx_t *ctx, vfu_migr_state_t s)
{
    struct dev *d = vfu_get_private(ctx);

    if (d->nlog < MAX_LOG) {
        d->log[d->nlog++] = s;
    }
    if (d->fail_into >= 0 && (int)s == d->fail_into) {
        errno = d->fail_errno;
        return -1;
    }
    /* Leaving RESUMING checks that the whole stream arrived. */
    if (d->state == VFU_MIGR_STATE_RESUME && s == VFU_MIGR_STATE_STOP &&
        d->wr_off != d->expect_len) {
        errno = EINVAL;
        return -1;
    }
    if ((s == VFU_MIGR_STATE_PRE_COPY ||
         s == VFU_MIGR_STATE_STOP_AND_COPY) &&
        d->state != VFU_MIGR_STATE_PRE_COPY) {
        d->rd_off = 0;
        d->src_sum = 0;
    }
    if (s == VFU_MIGR_STATE_RESUME) {
        d->wr_off = 0;
        d->dst_sum = 0;
    }
    d->state = s;
    return 0;
}

static ssize_t
dev_read(vfu_ctx_t *ctx, void *buf, uint64_t count)
{
    struct dev *d = vfu_get_private(ctx);
    uint64_t end = d->state == VFU_MIGR_STATE_PRE_COPY ? d->pre_len
                                                      : d->total_len;
    uint64_t n = d->rd_off < end ? end - d->rd_off : 0;

    assert_true(d->state == VFU_MIGR_STATE_PRE_COPY ||
                d->state == VFU_MIGR_STATE_STOP_AND_COPY);
    d->rd_calls++;
    if (n > count) {
        n = count;
    }
    fill_stream(buf, d->rd_off, n);
    csum_update(&d->src_sum, d->rd_off, buf, n);
    d->rd_off += n;
    return (ssize_t)n;
}

static ssize_t
dev_write(vfu_ctx_t *ctx, void *buf, uint64_t count)
{
    struct dev *d = vfu_get_private(ctx);

    assert_int_equal(d->state, VFU_MIGR_STATE_RESUME);
    if (d->scratch_size < count) {
        free(d->scratch);
        d->scratch = malloc(count);
        assert_non_null(d->scratch);
        d->scratch_size = count;
    }
    fill_stream(d->scratch, d->wr_off, count);
    if (d->wr_off + count > d->expect_len ||
        memcmp(d->scratch, buf, count) != 0) {
        errno = EILSEQ;     /* corrupt: refuse, keep the device intact */
        return -1;
    }
    csum_update(&d->dst_sum, d->wr_off, buf, count);
    d->wr_off += count;
    return (ssize_t)count;
}

static const vfu_migration_callbacks_t dev_cbs = {
    .version = VFU_MIGR_CALLBACKS_VERS,
    .transition = dev_transition,
    .read_data = dev_read,
    .write_data = dev_write,
};

static ssize_t
bar0_access(vfu_ctx_t *ctx, char *buf, size_t count, loff_t off, bool wr)
{
    struct dev *d = vfu_get_private(ctx);

    if (atomic_exchange(&d->resetup, false)) {
        errno = 0;
        d->resetup_ret = vfu_setup_device_migration_callbacks(ctx, &dev_cbs);
        d->resetup_errno = errno;
    }

    if (off < 0 || (size_t)off > sizeof(d->bar0) ||
        count > sizeof(d->bar0) - (size_t)off) {
        errno = EINVAL;
        return -1;
    }
    if (wr) {
        memcpy(d->bar0 + off, buf, count);
    } else {
        memcpy(buf, d->bar0 + off, count);
    }
    return (ssize_t)count;
}

/* ---- a server on its own thread ---- */

struct srv {
    char path[108];
    vfu_ctx_t *ctx;
    struct dev dev;
    pthread_t thread;
    atomic_bool stop;
};

static void *
srv_main(void *arg)
{
    struct srv *s = arg;

    while (!atomic_load(&s->stop)) {
        if (vfu_attach_ctx(s->ctx) < 0) {
            continue;
        }
        while (vfu_run_ctx(s->ctx) >= 0) {
        }
    }
    return NULL;
}

static struct srv *
srv_start(bool migratable)
{
    static atomic_int seq;
    struct srv *s = calloc(1, sizeof(*s));

    assert_non_null(s);
    snprintf(s->path, sizeof(s->path), "/tmp/vfu-mig-%d-%d.sock", getpid(),
             atomic_fetch_add(&seq, 1));
    unlink(s->path);
    s->dev.fail_into = -1;
    s->dev.state = VFU_MIGR_STATE_RUNNING;
    s->ctx = vfu_create_ctx(VFU_TRANS_SOCK, s->path, 0, &s->dev,
                            VFU_DEV_TYPE_PCI);
    assert_non_null(s->ctx);
    assert_int_equal(vfu_pci_init(s->ctx, VFU_PCI_TYPE_CONVENTIONAL,
                                  PCI_HEADER_TYPE_NORMAL, 0), 0);
    vfu_pci_set_id(s->ctx, 0x4e58, 0x0001, 0, 0);
    assert_int_equal(vfu_setup_region(s->ctx, VFU_PCI_DEV_BAR0_REGION_IDX,
                                      sizeof(s->dev.bar0), bar0_access,
                                      VFU_REGION_FLAG_RW | VFU_REGION_FLAG_MEM,
                                      NULL, 0, -1, 0), 0);
    assert_int_equal(vfu_setup_device_dma(s->ctx, 0, NULL, NULL), 0);
    if (migratable) {
        assert_int_equal(vfu_setup_device_migration_callbacks(s->ctx,
                                                              &dev_cbs), 0);
    }
    assert_int_equal(vfu_realize_ctx(s->ctx), 0);
    assert_int_equal(pthread_create(&s->thread, NULL, srv_main, s), 0);
    return s;
}

static void
srv_stop(struct srv *s)
{
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un sa = { .sun_family = AF_UNIX };

    atomic_store(&s->stop, true);
    /* Wake a blocked accept: this client leaves without VERSION. */
    memcpy(sa.sun_path, s->path, strlen(s->path) + 1);
    if (fd >= 0) {
        (void)connect(fd, (struct sockaddr *)&sa, sizeof(sa));
        close(fd);
    }
    pthread_join(s->thread, NULL);
    vfu_destroy_ctx(s->ctx);
    unlink(s->path);
    free(s->dev.scratch);
    free(s);
}

/* ---- a client over the shared framing ---- */

struct cli {
    struct vfu_conn conn;
    uint32_t max_xfer;
    bool migration_offered;
};

static int
cli_call(struct cli *c, uint16_t cmd, const void *req, size_t req_size,
         void *reply, size_t *reply_size)
{
    struct iovec iov = { .iov_base = (void *)req, .iov_len = req_size };

    return vfu_conn_call(&c->conn, cmd, &iov, req_size ? 1 : 0, NULL, 0,
                         reply, reply_size, NULL, NULL);
}

static struct cli *
cli_open(struct srv *s, uint32_t max_xfer)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    struct cli *c = calloc(1, sizeof(*c));
    char req[256], reply[512];
    size_t len, rsize = sizeof(reply) - 1;
    int fd;

    assert_non_null(c);
    fd = socket(AF_UNIX, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    memcpy(sa.sun_path, s->path, strlen(s->path) + 1);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(vfu_conn_init(&c->conn, fd, (size_t)max_xfer + 4096, 8),
                     0);
    c->max_xfer = max_xfer;

    memset(req, 0, 4);  /* version 0.0 */
    len = 4 + (size_t)snprintf(req + 4, sizeof(req) - 4,
        "{\"capabilities\":{\"max_msg_fds\":8,\"max_data_xfer_size\":%u,"
        "\"migration\":{\"pgsize\":4096,\"max_bitmap_size\":1048576}}}",
        max_xfer) + 1;
    assert_int_equal(cli_call(c, VFIO_USER_VERSION, req, len, reply, &rsize),
                     0);
    reply[rsize] = '\0';
    c->migration_offered = rsize > 4 && strstr(reply + 4, "\"migration\"");
    return c;
}

static void
cli_close(struct cli *c)
{
    vfu_conn_fini(&c->conn);
    free(c);
}

/* DEVICE_FEATURE with explicit argsz and payload; returns 0 or errno. */
static int
feature_raw(struct cli *c, uint32_t argsz, uint32_t flags, const void *data,
            size_t data_size, void *reply, size_t *reply_size)
{
    uint8_t req[64];
    struct vfio_user_device_feature f = { .argsz = argsz, .flags = flags };
    size_t dummy = 0;

    assert_true(sizeof(f) + data_size <= sizeof(req));
    memcpy(req, &f, sizeof(f));
    if (data_size) {
        memcpy(req + sizeof(f), data, data_size);
    }
    if (reply_size == NULL) {
        reply_size = &dummy;
    }
    return cli_call(c, VFIO_USER_DEVICE_FEATURE, req, sizeof(f) + data_size,
                    reply, reply_size) < 0 ? errno : 0;
}

static int
set_state(struct cli *c, uint32_t state)
{
    struct vfio_user_device_feature_mig_state st = { .device_state = state };
    uint8_t reply[16];
    size_t rsize = sizeof(reply);
    int err = feature_raw(c, 16, VFIO_DEVICE_FEATURE_SET |
                          VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE,
                          &st, sizeof(st), reply, &rsize);

    if (err == 0) {
        /* The reply repeats the request. */
        assert_int_equal(rsize, 16);
        assert_memory_equal(reply + 8, &st, sizeof(st));
    }
    return err;
}

static uint32_t
get_state(struct cli *c)
{
    uint8_t reply[16];
    size_t rsize = sizeof(reply);
    struct vfio_user_device_feature f;
    struct vfio_user_device_feature_mig_state st;

    assert_int_equal(feature_raw(c, 16, VFIO_DEVICE_FEATURE_GET |
                                 VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE,
                                 NULL, 0, reply, &rsize), 0);
    assert_int_equal(rsize, 16);
    memcpy(&f, reply, sizeof(f));
    memcpy(&st, reply + 8, sizeof(st));
    assert_int_equal(f.argsz, 16);
    assert_int_equal(st.data_fd, UINT32_MAX);
    return st.device_state;
}

/* MIG_DATA_READ; returns bytes read or -errno. */
static long
data_read(struct cli *c, void *buf, uint32_t size, uint32_t argsz)
{
    struct vfio_user_mig_data req = { .argsz = argsz, .size = size };
    size_t rsize = sizeof(req) + (size_t)size;
    uint8_t *reply = malloc(rsize);
    struct vfio_user_mig_data hdr;
    long ret;

    assert_non_null(reply);
    if (cli_call(c, VFIO_USER_MIG_DATA_READ, &req, sizeof(req), reply,
                 &rsize) < 0) {
        ret = -errno;
    } else {
        assert_true(rsize >= sizeof(hdr));
        memcpy(&hdr, reply, sizeof(hdr));
        assert_int_equal(hdr.argsz, rsize);
        assert_int_equal(hdr.size, rsize - sizeof(hdr));
        assert_true(hdr.size <= size);
        memcpy(buf, reply + sizeof(hdr), hdr.size);
        ret = hdr.size;
    }
    free(reply);
    return ret;
}

/* MIG_DATA_WRITE of size bytes, declaring decl_size; 0 or errno. */
static int
data_write(struct cli *c, const void *buf, uint32_t size, uint32_t decl_size)
{
    struct vfio_user_mig_data req = { .argsz = sizeof(req), .size = decl_size };
    struct iovec iov[2] = {
        { .iov_base = &req, .iov_len = sizeof(req) },
        { .iov_base = (void *)buf, .iov_len = size },
    };

    return vfu_conn_call(&c->conn, VFIO_USER_MIG_DATA_WRITE, iov,
                         size ? 2 : 1, NULL, 0, NULL, NULL, NULL, NULL) < 0
           ? errno : 0;
}

static int
bar0_rw(struct cli *c, bool wr)
{
    uint8_t req[sizeof(struct vfio_user_region_access) + 4] = { 0 };
    uint8_t reply[sizeof(req)];
    size_t rsize = sizeof(reply);
    struct vfio_user_region_access a = {
        .offset = 8, .region = VFU_PCI_DEV_BAR0_REGION_IDX, .count = 4,
    };

    memcpy(req, &a, sizeof(a));
    return cli_call(c, wr ? VFIO_USER_REGION_WRITE : VFIO_USER_REGION_READ,
                    req, wr ? sizeof(req) : sizeof(a), reply, &rsize) < 0
           ? errno : 0;
}

static int
dma_map_unmap(struct cli *c, bool map)
{
    struct vfio_user_dma_map m = {
        .argsz = sizeof(m),
        .flags = VFIO_USER_F_DMA_REGION_READ | VFIO_USER_F_DMA_REGION_WRITE,
        .addr = 0x100000, .size = 0x1000,
    };
    struct vfio_user_dma_unmap u = {
        .argsz = sizeof(u), .addr = 0x100000, .size = 0x1000,
    };
    uint8_t reply[64];
    size_t rsize = sizeof(reply);

    if (map) {
        return cli_call(c, VFIO_USER_DMA_MAP, &m, sizeof(m), reply, &rsize) < 0
               ? errno : 0;
    }
    return cli_call(c, VFIO_USER_DMA_UNMAP, &u, sizeof(u), reply, &rsize) < 0
           ? errno : 0;
}

static int
device_reset(struct cli *c)
{
    return cli_call(c, VFIO_USER_DEVICE_RESET, NULL, 0, NULL, NULL) < 0
           ? errno : 0;
}

/* Drive the device to state s from RUNNING along legal arcs. */
static void
go_to(struct cli *c, uint32_t s)
{
    assert_int_equal(set_state(c, s), 0);
    assert_int_equal(get_state(c), s);
}

/* ---- tests ---- */

static void
test_feature_migration_flags(void **state)
{
    struct srv *s = srv_start(true);
    struct cli *c = cli_open(s, 1 << 20);
    struct vfio_user_device_feature_migration mf;
    uint8_t reply[16];
    size_t rsize = sizeof(reply);

    assert_true(c->migration_offered);
    assert_true(vfu_migration_enabled(s->ctx));
    assert_int_equal(feature_raw(c, 16, VFIO_DEVICE_FEATURE_GET |
                                 VFIO_DEVICE_FEATURE_MIGRATION, NULL, 0,
                                 reply, &rsize), 0);
    assert_int_equal(rsize, 16);
    memcpy(&mf, reply + 8, sizeof(mf));
    assert_int_equal(mf.flags, VFIO_MIGRATION_STOP_COPY |
                               VFIO_MIGRATION_PRE_COPY);
    assert_int_equal(get_state(c), RUN);
    cli_close(c);
    srv_stop(s);

    /* Without migration: not offered in VERSION, features refused. */
    s = srv_start(false);
    c = cli_open(s, 1 << 20);
    assert_false(c->migration_offered);
    assert_false(vfu_migration_enabled(s->ctx));
    rsize = sizeof(reply);
    assert_int_equal(feature_raw(c, 16, VFIO_DEVICE_FEATURE_GET |
                                 VFIO_DEVICE_FEATURE_MIGRATION, NULL, 0,
                                 reply, &rsize), ENOTSUP);
    assert_int_equal(feature_raw(c, 16, VFIO_DEVICE_FEATURE_GET |
                                 VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE, NULL, 0,
                                 reply, &rsize), ENOTSUP);
    assert_int_equal(data_read(c, reply, 8, 16), -ENOTSUP);
    assert_int_equal(data_write(c, reply, 8, 8), ENOTSUP);
    cli_close(c);
    srv_stop(s);
}

static void
test_setup_errors(void **state)
{
    vfu_migration_callbacks_t cbs = {
        .version = VFU_MIGR_CALLBACKS_VERS, .transition = dev_transition,
        .read_data = dev_read, .write_data = dev_write,
    };
    struct srv *s = srv_start(true);
    struct cli *c;

    errno = 0;
    assert_int_equal(vfu_setup_device_migration_callbacks(NULL, &cbs), -1);
    assert_int_equal(errno, EINVAL);
    assert_int_equal(vfu_setup_device_migration_callbacks(s->ctx, NULL), -1);
    assert_int_equal(errno, EINVAL);
    srv_stop(s);

    /* After realize, with a client attached (libvfio-user allows it): the
     * device becomes migratable; replacing the callbacks works while
     * RUNNING and is refused mid-migration, leaving the state alone. */
    s = srv_start(false);
    c = cli_open(s, 1 << 20);
    assert_false(c->migration_offered);
    assert_int_equal(feature_raw(c, 16, VFIO_DEVICE_FEATURE_GET |
                                 VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE,
                                 NULL, 0, NULL, NULL), ENOTSUP);
    s->dev.resetup = true;
    assert_int_equal(bar0_rw(c, false), 0);
    assert_int_equal(s->dev.resetup_ret, 0);
    assert_int_equal(get_state(c), RUN);
    go_to(c, STOP);
    s->dev.resetup = true;
    assert_int_equal(bar0_rw(c, false), 0);
    assert_int_equal(s->dev.resetup_ret, -1);
    assert_int_equal(s->dev.resetup_errno, EBUSY);
    assert_int_equal(get_state(c), STOP);
    go_to(c, RUN);
    s->dev.resetup = true;
    assert_int_equal(bar0_rw(c, false), 0);
    assert_int_equal(s->dev.resetup_ret, 0);
    s->dev.nlog = 0;
    go_to(c, SC);
    assert_int_equal(s->dev.nlog, 2);
    cli_close(c);
    srv_stop(s);

    vfu_ctx_t *ctx = vfu_create_ctx(VFU_TRANS_SOCK, "/tmp/vfu-mig-setup.sock",
                                    0, NULL, VFU_DEV_TYPE_PCI);
    assert_non_null(ctx);
    cbs.version = 1;
    assert_int_equal(vfu_setup_device_migration_callbacks(ctx, &cbs), -1);
    assert_int_equal(errno, EINVAL);
    cbs.version = VFU_MIGR_CALLBACKS_VERS;
    cbs.read_data = NULL;
    assert_int_equal(vfu_setup_device_migration_callbacks(ctx, &cbs), -1);
    assert_int_equal(errno, EINVAL);
    assert_false(vfu_migration_enabled(ctx));
    cbs.read_data = dev_read;
    assert_int_equal(vfu_setup_device_migration_callbacks(ctx, &cbs), 0);
    assert_true(vfu_migration_enabled(ctx));
    vfu_destroy_ctx(ctx);
    unlink("/tmp/vfu-mig-setup.sock");
}

/* Every (current, target) pair of settable states, over the wire. */
static void
test_every_arc(void **state)
{
    static const uint32_t settable[] = { STOP, RUN, SC, RES, PC };
    struct srv *s = srv_start(true);
    struct cli *c = cli_open(s, 1 << 20);
    struct dev *d = &s->dev;

    for (size_t i = 0; i < 5; i++) {
        for (uint32_t target = 0; target < NS + 2; target++) {
            uint32_t cur = settable[i], expect[8], n = 0, x = cur, next;
            bool ok = vfu_mig_next_state(cur, target, &next) == 0;
            int err;

            assert_int_equal(device_reset(c), 0);
            assert_int_equal(get_state(c), RUN);
            d->expect_len = 0;   /* an empty stream resumes fine */
            if (cur != RUN) {
                /* Reach cur along its own path from RUNNING. */
                assert_int_equal(set_state(c, cur), 0);
            }
            assert_int_equal(get_state(c), cur);

            while (ok && x != target) {
                assert_int_equal(vfu_mig_next_state(x, target, &x), 0);
                expect[n++] = vfu_mig_state_to_vfu(x);
            }
            d->nlog = 0;
            err = set_state(c, target);
            if (!ok) {
                assert_int_equal(err, EINVAL);
                assert_int_equal(d->nlog, 0);
                assert_int_equal(get_state(c), cur);
                continue;
            }
            assert_int_equal(err, 0);
            assert_int_equal(get_state(c), target);
            assert_int_equal(d->nlog, n);
            for (uint32_t k = 0; k < n; k++) {
                assert_int_equal(d->log[k], expect[k]);
            }
        }
    }
    /* Values far outside the enum. */
    assert_int_equal(set_state(c, UINT32_MAX), EINVAL);
    assert_int_equal(set_state(c, 0x10002), EINVAL);
    cli_close(c);
    srv_stop(s);
}

static void
test_callback_failure_keeps_state(void **state)
{
    struct srv *s = srv_start(true);
    struct cli *c = cli_open(s, 1 << 20);
    struct dev *d = &s->dev;
    uint8_t buf[64];

    /* RUNNING -> STOP_COPY fails on its second arc: the device stays in
     * STOP, the last state it reached, and the client gets the errno. */
    d->fail_into = VFU_MIGR_STATE_STOP_AND_COPY;
    d->fail_errno = ENOSPC;
    d->nlog = 0;
    assert_int_equal(set_state(c, SC), ENOSPC);
    assert_int_equal(d->nlog, 2);
    assert_int_equal(d->log[0], VFU_MIGR_STATE_STOP);
    assert_int_equal(d->log[1], VFU_MIGR_STATE_STOP_AND_COPY);
    assert_int_equal(get_state(c), STOP);
    /* STOP's rules hold, and the client may try again or go elsewhere. */
    assert_int_equal(bar0_rw(c, false), 0);
    assert_int_equal(dma_map_unmap(c, true), EINVAL);
    assert_int_equal(data_read(c, buf, 8, 16), -EINVAL);
    assert_int_equal(set_state(c, SC), ENOSPC);
    assert_int_equal(get_state(c), STOP);
    d->fail_into = -1;
    d->nlog = 0;
    assert_int_equal(set_state(c, SC), 0);
    assert_int_equal(d->nlog, 1);
    assert_int_equal(set_state(c, RUN), 0);
    assert_int_equal(d->nlog, 3);

    /* A failing first arc leaves the state untouched. */
    d->fail_into = VFU_MIGR_STATE_STOP;
    d->fail_errno = EPERM;
    assert_int_equal(set_state(c, RES), EPERM);
    assert_int_equal(get_state(c), RUN);
    assert_int_equal(bar0_rw(c, true), 0);

    /* A callback failing with errno 0 is reported as EIO. */
    d->fail_errno = 0;
    assert_int_equal(set_state(c, STOP), EIO);
    assert_int_equal(get_state(c), RUN);
    d->fail_into = -1;

    /* ERROR can never be set. */
    assert_int_equal(set_state(c, VFIO_USER_DEVICE_STATE_ERROR), EINVAL);
    assert_int_equal(get_state(c), RUN);
    cli_close(c);
    srv_stop(s);
}

static void
test_feature_malformed(void **state)
{
    struct srv *s = srv_start(true);
    struct cli *c = cli_open(s, 1 << 20);
    struct vfio_user_device_feature_mig_state st = { .device_state = STOP };
    const uint32_t MS = VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE;
    const uint32_t MG = VFIO_DEVICE_FEATURE_MIGRATION;
    const uint32_t G = VFIO_DEVICE_FEATURE_GET, S = VFIO_DEVICE_FEATURE_SET,
                   P = VFIO_DEVICE_FEATURE_PROBE;
    uint8_t reply[64], big[40] = { 0 };
    size_t rsize;

    /* Payload shorter than the feature header. */
    rsize = sizeof(reply);
    assert_int_equal(cli_call(c, VFIO_USER_DEVICE_FEATURE, "abc", 3, reply,
                              &rsize), -1);
    assert_int_equal(errno, EINVAL);
    /* GET and SET together, neither, unknown op bits, SET on MIGRATION. */
    assert_int_equal(feature_raw(c, 16, G | S | MS, &st, 8, NULL, NULL),
                     EINVAL);
    assert_int_equal(feature_raw(c, 16, MS, NULL, 0, NULL, NULL), EINVAL);
    assert_int_equal(feature_raw(c, 16, G | MS | (1u << 20), NULL, 0, NULL,
                                 NULL), EINVAL);
    assert_int_equal(feature_raw(c, 16, S | MG, &st, 8, NULL, NULL), EINVAL);
    assert_int_equal(feature_raw(c, 16, P | S | MG, NULL, 0, NULL, NULL),
                     EINVAL);
    /* argsz too small for the reply. */
    assert_int_equal(feature_raw(c, 15, G | MS, NULL, 0, NULL, NULL), EINVAL);
    assert_int_equal(feature_raw(c, 0, S | MS, &st, 8, NULL, NULL), EINVAL);
    /* SET without, or with a truncated, device_state; oversized payloads. */
    assert_int_equal(feature_raw(c, 16, S | MS, NULL, 0, NULL, NULL), EINVAL);
    assert_int_equal(feature_raw(c, 16, S | MS, &st, 4, NULL, NULL), EINVAL);
    assert_int_equal(feature_raw(c, 16, S | MS, big, sizeof(big), NULL, NULL),
                     EINVAL);
    assert_int_equal(feature_raw(c, 16, G | MG, big, 12, NULL, NULL), EINVAL);
    assert_int_equal(get_state(c), RUN);

    /* PROBE: success for supported ops, reply repeats the request. */
    rsize = sizeof(reply);
    assert_int_equal(feature_raw(c, 8, P | G | S | MS, NULL, 0, reply,
                                 &rsize), 0);
    assert_int_equal(rsize, 8);
    rsize = sizeof(reply);
    assert_int_equal(feature_raw(c, 8, P | MG, NULL, 0, reply, &rsize), 0);
    assert_int_equal(rsize, 8);
    rsize = sizeof(reply);
    assert_int_equal(feature_raw(c, 16, P | S | MS, &st, 8, reply, &rsize), 0);
    assert_int_equal(rsize, 16);
    assert_memory_equal(reply + 8, &st, 8);
    /* PROBE with an argsz too small for the request it repeats. */
    assert_int_equal(feature_raw(c, 2, P | MG, NULL, 0, NULL, NULL), EINVAL);
    assert_int_equal(feature_raw(c, 15, P | S | MS, &st, 8, NULL, NULL),
                     EINVAL);
    /* PROBE of SET did not change the state. */
    assert_int_equal(get_state(c), RUN);
    /* GET may carry the (ignored) data struct. */
    rsize = sizeof(reply);
    assert_int_equal(feature_raw(c, 16, G | MS, &st, 8, reply, &rsize), 0);
    cli_close(c);
    srv_stop(s);
}

static void
test_commands_per_state(void **state)
{
    struct srv *s = srv_start(true);
    struct cli *c = cli_open(s, 1 << 20);
    uint8_t buf[64];

    /* RUNNING: device access and DMA fine, no migration data. */
    assert_int_equal(bar0_rw(c, true), 0);
    assert_int_equal(dma_map_unmap(c, true), 0);
    assert_int_equal(dma_map_unmap(c, false), 0);
    assert_int_equal(data_read(c, buf, 8, 16), -EINVAL);
    assert_int_equal(data_write(c, buf, 8, 8), EINVAL);

    /* STOP: config/BAR access answered, DMA map/unmap refused. */
    go_to(c, STOP);
    assert_int_equal(bar0_rw(c, false), 0);
    assert_int_equal(bar0_rw(c, true), 0);
    assert_int_equal(dma_map_unmap(c, true), EINVAL);
    assert_int_equal(dma_map_unmap(c, false), EINVAL);
    assert_int_equal(data_read(c, buf, 8, 16), -EINVAL);
    assert_int_equal(data_write(c, buf, 8, 8), EINVAL);

    /* STOP_COPY: the same, plus reading. */
    go_to(c, SC);
    assert_int_equal(bar0_rw(c, false), 0);
    assert_int_equal(dma_map_unmap(c, true), EINVAL);
    assert_int_equal(data_read(c, buf, 8, 16), 0);
    assert_int_equal(data_write(c, buf, 8, 8), EINVAL);

    /* RESUMING: the client restores config and IRQs; DMA is allowed. */
    go_to(c, STOP);
    go_to(c, RES);
    assert_int_equal(bar0_rw(c, true), 0);
    assert_int_equal(dma_map_unmap(c, true), 0);
    assert_int_equal(dma_map_unmap(c, false), 0);
    assert_int_equal(data_read(c, buf, 8, 16), -EINVAL);

    /* PRE_COPY: running, and readable. */
    go_to(c, RUN);
    go_to(c, PC);
    assert_int_equal(bar0_rw(c, true), 0);
    assert_int_equal(dma_map_unmap(c, true), 0);
    assert_int_equal(dma_map_unmap(c, false), 0);
    assert_int_equal(data_read(c, buf, 8, 16), 0);
    assert_int_equal(data_write(c, buf, 8, 8), EINVAL);
    cli_close(c);
    srv_stop(s);
}

static void
test_data_malformed(void **state)
{
    struct srv *s = srv_start(true);
    struct cli *c = cli_open(s, 1 << 16);
    struct dev *d = &s->dev;
    uint8_t *buf = calloc(1, (1 << 16) + 64);
    struct vfio_user_mig_data req = { .argsz = 16, .size = 8 };
    uint8_t raw[12] = { 0 };
    size_t rsize;

    d->pre_len = 100;
    d->total_len = 1000;
    go_to(c, PC);
    /* Above max_data_xfer_size, argsz short, wrong payload size. */
    assert_int_equal(data_read(c, buf, (1 << 16) + 1, (1 << 16) + 9), -EINVAL);
    assert_int_equal(data_read(c, buf, 8, 15), -EINVAL);
    assert_int_equal(data_read(c, buf, 8, 0), -EINVAL);
    rsize = 64;
    assert_int_equal(cli_call(c, VFIO_USER_MIG_DATA_READ, &req, 4, buf,
                              &rsize), -1);
    assert_int_equal(errno, EINVAL);
    memcpy(raw, &req, sizeof(req));
    rsize = 64;
    assert_int_equal(cli_call(c, VFIO_USER_MIG_DATA_READ, raw, sizeof(raw),
                              buf, &rsize), -1);
    assert_int_equal(errno, EINVAL);
    assert_int_equal(d->rd_calls, 0);
    /* Zero bytes asked: nothing read, the stream does not end. */
    assert_int_equal(data_read(c, buf, 0, 8), 0);
    assert_int_equal(d->rd_calls, 0);
    /* argsz larger than needed is fine. */
    assert_int_equal(data_read(c, buf, 64, UINT32_MAX), 64);

    go_to(c, RUN);
    go_to(c, STOP);
    go_to(c, RES);
    d->expect_len = 16;
    /* Declared size disagrees with the data, too big, truncated header. */
    assert_int_equal(data_write(c, buf, 8, 9), EINVAL);
    assert_int_equal(data_write(c, buf, 8, 7), EINVAL);
    assert_int_equal(data_write(c, buf, 8, UINT32_MAX), EINVAL);
    /* The framing may refuse it first (E2BIG); either way not accepted. */
    int err = data_write(c, buf, (1 << 16) + 8, (1 << 16) + 8);
    assert_true(err == EINVAL || err == E2BIG);
    rsize = 0;
    assert_int_equal(cli_call(c, VFIO_USER_MIG_DATA_WRITE, &req, 7, NULL,
                              NULL), -1);
    assert_int_equal(errno, EINVAL);
    assert_int_equal(d->wr_off, 0);
    /* Zero-byte write is a no-op. */
    assert_int_equal(data_write(c, buf, 0, 0), 0);
    assert_int_equal(get_state(c), RES);
    free(buf);
    cli_close(c);
    srv_stop(s);
}

/* Source and destination servers; the client moves the stream across. */
static void
migrate_stream(uint64_t pre_len, uint64_t total_len, uint32_t chunk,
               uint32_t max_xfer)
{
    struct srv *src = srv_start(true), *dst = srv_start(true);
    struct cli *cs = cli_open(src, max_xfer), *cd = cli_open(dst, max_xfer);
    uint8_t *buf = malloc(chunk);
    uint64_t moved = 0, wire_sum = 0, pre_moved;
    long n;

    assert_non_null(buf);
    src->dev.pre_len = pre_len;
    src->dev.total_len = total_len;
    dst->dev.expect_len = total_len;
    go_to(cd, STOP);
    go_to(cd, RES);

    go_to(cs, PC);
    do {
        n = data_read(cs, buf, chunk, chunk + 8);
        assert_true(n >= 0);
        csum_update(&wire_sum, moved, buf, (size_t)n);
        assert_int_equal(data_write(cd, buf, (uint32_t)n, (uint32_t)n), 0);
        moved += (uint64_t)n;
    } while (n == (long)chunk);
    pre_moved = moved;
    assert_int_equal(pre_moved, pre_len);
    /* Pre-copy reads after a short one still ask the device. */
    uint64_t calls = src->dev.rd_calls;
    assert_int_equal(data_read(cs, buf, chunk, chunk + 8), 0);
    assert_int_equal(src->dev.rd_calls, calls + 1);

    go_to(cs, SC);
    do {
        n = data_read(cs, buf, chunk, chunk + 8);
        assert_true(n >= 0);
        csum_update(&wire_sum, moved, buf, (size_t)n);
        assert_int_equal(data_write(cd, buf, (uint32_t)n, (uint32_t)n), 0);
        moved += (uint64_t)n;
    } while (n == (long)chunk);
    assert_int_equal(moved, total_len);
    /* The stream has ended: the device is not asked again. */
    calls = src->dev.rd_calls;
    assert_int_equal(data_read(cs, buf, chunk, chunk + 8), 0);
    assert_int_equal(src->dev.rd_calls, calls);

    assert_true(src->dev.src_sum == wire_sum);
    assert_true(dst->dev.dst_sum == wire_sum);
    go_to(cs, STOP);
    go_to(cd, RUN);     /* RESUMING -> STOP -> RUNNING, data complete */
    assert_int_equal(dst->dev.state, VFU_MIGR_STATE_RUNNING);

    free(buf);
    cli_close(cs);
    cli_close(cd);
    srv_stop(src);
    srv_stop(dst);
}

static void
test_streams(void **state)
{
    const uint32_t mx = 1 << 20;
    static const uint64_t sizes[] = {
        0, 1, 7, 8, 4095, (1 << 20) - 1, 1 << 20, (1 << 20) + 1,
        3 * (1 << 20) + 17,
    };

    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        migrate_stream(0, sizes[i], mx, mx);
        migrate_stream(sizes[i] / 2, sizes[i], mx, mx);
    }
    /* Odd chunk sizes: unaligned offsets everywhere. */
    migrate_stream(1000, 100003, 4093, mx);
    migrate_stream(5, 9, 1, 4096);
}

static void
test_stream_1g(void **state)
{
    const uint32_t mx = 1u << 20;

    migrate_stream(256ull << 20, 1ull << 30, mx, mx);
}

static void
test_corrupt_stream_rejected(void **state)
{
    struct srv *dst = srv_start(true);
    struct cli *c = cli_open(dst, 1 << 20);
    uint8_t buf[4096];

    dst->dev.expect_len = 3 * sizeof(buf);
    go_to(c, STOP);
    go_to(c, RES);
    fill_stream(buf, 0, sizeof(buf));
    assert_int_equal(data_write(c, buf, sizeof(buf), sizeof(buf)), 0);
    fill_stream(buf, sizeof(buf), sizeof(buf));
    buf[100] ^= 0x40;
    assert_int_equal(data_write(c, buf, sizeof(buf), sizeof(buf)), EILSEQ);
    assert_int_equal(get_state(c), RES);
    /* Leaving RESUMING with an incomplete stream fails: still RESUMING. */
    assert_int_equal(set_state(c, STOP), EINVAL);
    assert_int_equal(get_state(c), RES);
    /* The server still serves; a reset recovers. */
    assert_int_equal(device_reset(c), 0);
    assert_int_equal(get_state(c), RUN);
    cli_close(c);
    srv_stop(dst);
}

/* A client vanishing in any state: the next client finds RUNNING. */
static void
test_disconnect_each_state(void **state)
{
    /* FAILED: a transition to STOP_COPY failed half way, leaving STOP. */
    enum { FAILED = VFIO_USER_DEVICE_NUM_STATES };
    static const uint32_t states[] = { RUN, STOP, SC, RES, PC, FAILED };
    struct srv *s = srv_start(true);
    struct dev *d = &s->dev;
    uint8_t buf[256];

    d->pre_len = 300;
    d->total_len = 1000;
    for (size_t i = 0; i < sizeof(states) / sizeof(states[0]); i++) {
        struct cli *c = cli_open(s, 1 << 20);
        uint32_t st = states[i];

        assert_int_equal(get_state(c), RUN);
        if (st == FAILED) {
            d->fail_into = VFU_MIGR_STATE_STOP_AND_COPY;
            d->fail_errno = EIO;
            assert_int_equal(set_state(c, SC), EIO);
            d->fail_into = -1;
            st = STOP;
        } else if (st == RES) {
            go_to(c, STOP);
            go_to(c, RES);
            d->expect_len = 1000;
            fill_stream(buf, 0, sizeof(buf));
            assert_int_equal(data_write(c, buf, sizeof(buf), sizeof(buf)), 0);
        } else if (st != RUN) {
            go_to(c, st);
            if (st == SC || st == PC) {
                assert_int_equal(data_read(c, buf, sizeof(buf), 512),
                                 (long)sizeof(buf));
            }
        }
        assert_int_equal(get_state(c), st);
        d->nlog = 0;
        cli_close(c);

        /* The next client: RUNNING, the device was told, service works. */
        c = cli_open(s, 1 << 20);
        assert_int_equal(get_state(c), RUN);
        if (st == RUN) {
            assert_int_equal(d->nlog, 0);
        } else {
            assert_int_equal(d->nlog, 1);
            assert_int_equal(d->log[0], VFU_MIGR_STATE_RUNNING);
        }
        assert_int_equal(bar0_rw(c, false), 0);
        go_to(c, SC);
        assert_int_equal(data_read(c, buf, sizeof(buf), 512),
                         (long)sizeof(buf));
        go_to(c, RUN);
        cli_close(c);
    }
    srv_stop(s);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_feature_migration_flags),
        cmocka_unit_test(test_setup_errors),
        cmocka_unit_test(test_every_arc),
        cmocka_unit_test(test_callback_failure_keeps_state),
        cmocka_unit_test(test_feature_malformed),
        cmocka_unit_test(test_commands_per_state),
        cmocka_unit_test(test_data_malformed),
        cmocka_unit_test(test_streams),
        cmocka_unit_test(test_corrupt_stream_rejected),
        cmocka_unit_test(test_disconnect_each_state),
        cmocka_unit_test(test_stream_1g),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
