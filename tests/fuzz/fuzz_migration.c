/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 the vfu authors. */

/*
 * The migration state machine driven through its handlers: each input is a
 * list of operations (state SET/GET, feature probes, MIG_DATA_READ/WRITE,
 * device reset, raw payloads) and of changes to how the device's callbacks
 * behave (fail with an errno, return short, return too much, return 0).
 * The state the server reports is checked against what the operations
 * imply, so a wrong transition is a finding even when nothing crashes.
 */

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "migration_internal.h"
#include "fuzz_input.h"
#include "private.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* How the device's callbacks misbehave, set by the input. */
struct mig_dev {
    int transition_err;     /* 0: succeed */
    uint8_t read_mode;      /* 0 normal, 1 fail, 2 short, 3 overrun, 4 EOF */
    uint8_t write_mode;     /* 0 normal, 1 fail, 2 zero, 3 overrun, 4 partial */
    uint64_t stream;        /* bytes the device produced or took */
    unsigned transitions;
};

static int
transition(vfu_ctx_t *ctx, vfu_migr_state_t state)
{
    struct mig_dev *d = vfu_get_private(ctx);

    d->transitions++;
    if (d->transition_err != 0) {
        errno = d->transition_err;
        return -1;
    }
    return 0;
}

static ssize_t
read_data(vfu_ctx_t *ctx, void *buf, uint64_t count)
{
    struct mig_dev *d = vfu_get_private(ctx);

    switch (d->read_mode) {
    case 1:
        errno = EIO;
        return -1;
    case 2:
        count /= 2;
        break;
    case 3:
        return (ssize_t)(count + 1);
    case 4:
        return 0;
    default:
        break;
    }
    memset(buf, (int)(d->stream & 0xff), count);
    d->stream += count;
    return (ssize_t)count;
}

static ssize_t
write_data(vfu_ctx_t *ctx, void *buf, uint64_t count)
{
    struct mig_dev *d = vfu_get_private(ctx);
    volatile const char *b = buf;

    if (count > 0) {
        (void)b[count - 1];     /* the whole span must be readable */
    }
    switch (d->write_mode) {
    case 1:
        errno = ENOSPC;
        return -1;
    case 2:
        return 0;
    case 3:
        return (ssize_t)(count + 1);
    case 4:
        count = (count + 1) / 2;
        break;
    default:
        break;
    }
    d->stream += count;
    return (ssize_t)count;
}

static const vfu_migration_callbacks_t cbs = {
    .version = VFU_MIGR_CALLBACKS_VERS,
    .transition = transition,
    .read_data = read_data,
    .write_data = write_data,
};

static vfu_ctx_t *
device(void)
{
    static vfu_ctx_t *ctx;
    static struct mig_dev dev;

    if (ctx == NULL) {
        /* An abstract socket: nothing is left behind in the file system. */
        ctx = vfu_create_ctx(VFU_TRANS_SOCK, "", LIBVFIO_USER_FLAG_ATTACH_NB,
                             &dev, VFU_DEV_TYPE_PCI);
        if (ctx == NULL ||
            vfu_pci_init(ctx, VFU_PCI_TYPE_EXPRESS, PCI_HEADER_TYPE_NORMAL, 0) < 0 ||
            vfu_setup_device_migration_callbacks(ctx, &cbs) < 0 ||
            vfu_realize_ctx(ctx) < 0) {
            perror("fuzz_migration device");
            abort();
        }
    }
    return ctx;
}

/* As the dispatcher does: the state check, then the handler. */
static int
call(vfu_ctx_t *ctx, vfu_cmd_handler_t *h, uint16_t cmd, const void *p,
     size_t len, void *reply, size_t reply_cap)
{
    struct vfu_msg msg;
    void *copy = malloc(len > 0 ? len : 1);
    int rc;

    memset(&msg, 0, sizeof(msg));
    memcpy(copy, p, len);
    msg.hdr.cmd = cmd;
    msg.in = copy;
    msg.in_size = len;
    rc = vfu_migration_check_cmd(ctx, cmd);
    if (rc == 0) {
        rc = h(ctx, &msg);
    }
    if (rc == 0 && reply != NULL) {
        size_t off = 0;
        for (int i = 0; i < msg.out_iovcnt; i++) {
            size_t n = msg.out[i].iov_len;
            if (off + n > reply_cap) {
                n = reply_cap - off;
            }
            memcpy((char *)reply + off, msg.out[i].iov_base, n);
            off += n;
        }
    }
    free(copy);
    return rc;
}

/* A MIG_DEVICE_STATE feature request: header, then the state. */
struct state_req {
    uint8_t b[sizeof(struct vfio_user_device_feature) +
              sizeof(struct vfio_user_device_feature_mig_state)];
};

static struct state_req
state_req(uint32_t flags, uint32_t state)
{
    struct vfio_user_device_feature h = {
        .argsz = sizeof(struct state_req),
        .flags = flags | VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE,
    };
    struct vfio_user_device_feature_mig_state st = { .device_state = state };
    struct state_req r;

    memcpy(r.b, &h, sizeof(h));
    memcpy(r.b + sizeof(h), &st, sizeof(st));
    return r;
}

static uint32_t
get_state(vfu_ctx_t *ctx)
{
    struct state_req req = state_req(VFIO_DEVICE_FEATURE_GET, 0), rep;
    struct vfio_user_device_feature_mig_state st;

    memset(&rep, 0, sizeof(rep));
    if (call(ctx, vfu_handle_device_feature, VFIO_USER_DEVICE_FEATURE, &req,
             sizeof(req), &rep, sizeof(rep)) < 0) {
        abort();                /* GET never fails */
    }
    memcpy(&st, rep.b + sizeof(struct vfio_user_device_feature), sizeof(st));
    return st.device_state;
}

static void
check(bool ok, const char *what, uint32_t a, uint32_t b)
{
    if (!ok) {
        fprintf(stderr, "fuzz_migration: %s (%u, %u)\n", what, a, b);
        abort();
    }
}

static bool
is_saving(uint32_t s)
{
    return s == VFIO_USER_DEVICE_STATE_PRE_COPY ||
           s == VFIO_USER_DEVICE_STATE_STOP_COPY;
}

static void
op_set(vfu_ctx_t *ctx, struct mig_dev *d, struct in *in)
{
    uint32_t target = (uint32_t)take(in, 1) % 10;
    uint32_t before = get_state(ctx), after;
    uint32_t next;
    unsigned calls = d->transitions;
    struct state_req req = state_req(VFIO_DEVICE_FEATURE_SET, target);
    int rc = call(ctx, vfu_handle_device_feature, VFIO_USER_DEVICE_FEATURE,
                  &req, sizeof(req), NULL, 0);

    after = get_state(ctx);
    if (rc == 0) {
        check(after == target, "SET succeeded but state differs", after, target);
        check(vfu_mig_next_state(before, target, &next) == 0,
              "SET succeeded along no path", before, target);
    } else if (d->transitions > calls) {
        /* The last arc the device was asked for failed: the state is where
         * the arcs before it led. */
        uint32_t want = before;

        for (unsigned k = calls + 1; k < d->transitions; k++) {
            check(vfu_mig_next_state(want, target, &next) == 0,
                  "device asked for an arc off the path", want, target);
            want = next;
        }
        check(after == want, "failed transition left the wrong state", after,
              want);
    } else {
        check(after == before, "refused SET changed the state", before, after);
    }
}

static void
op_read(vfu_ctx_t *ctx, struct in *in)
{
    struct vfio_user_mig_data req;
    uint8_t f = (uint8_t)take(in, 1);
    uint32_t state = get_state(ctx);
    int rc;

    req.size = f & 0x80 ? (uint32_t)take(in, 4) : (uint32_t)take(in, 2);
    req.argsz = (uint32_t)(sizeof(req) + req.size);
    if (f & 0x40) {
        req.argsz = (uint32_t)take(in, 4);
    }
    rc = call(ctx, vfu_handle_mig_data_read, VFIO_USER_MIG_DATA_READ, &req,
              f & 0x20 ? take(in, 1) % (sizeof(req) + 1) : sizeof(req),
              NULL, 0);
    if (!is_saving(state)) {
        check(rc < 0, "MIG_DATA_READ outside a saving state", state, 0);
    }
}

static void
op_write(vfu_ctx_t *ctx, struct in *in)
{
    uint8_t f = (uint8_t)take(in, 1);
    uint32_t state = get_state(ctx);
    size_t n = f & 0x80 ? (size_t)take(in, 3) & 0x3fffff : (size_t)take(in, 1);
    uint8_t *buf = calloc(1, sizeof(struct vfio_user_mig_data) + n);
    struct vfio_user_mig_data req = {
        .argsz = (uint32_t)(sizeof(req) + n),
        .size = (uint32_t)n,
    };
    int rc;

    if (f & 0x40) {
        req.size = (uint32_t)take(in, 4);
    }
    memcpy(buf, &req, sizeof(req));
    rc = call(ctx, vfu_handle_mig_data_write, VFIO_USER_MIG_DATA_WRITE, buf,
              sizeof(req) + n, NULL, 0);
    if (state != VFIO_USER_DEVICE_STATE_RESUMING) {
        check(rc < 0, "MIG_DATA_WRITE outside RESUMING", state, 0);
    }
    free(buf);
}

/* Feature requests with any flags and sizes: probes, GETs, bad mixes. */
static void
op_feature(vfu_ctx_t *ctx, struct in *in)
{
    uint8_t buf[32];
    uint32_t flags = (uint32_t)take(in, 4);
    uint32_t argsz = (uint32_t)take(in, 4);
    size_t len = 8 + (size_t)(take(in, 1) % 25);

    memcpy(buf, &argsz, 4);
    memcpy(buf + 4, &flags, 4);
    for (size_t i = 8; i < len; i++) {
        buf[i] = (uint8_t)take(in, 1);
    }
    call(ctx, vfu_handle_device_feature, VFIO_USER_DEVICE_FEATURE, buf, len,
         NULL, 0);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    vfu_ctx_t *ctx = device();
    struct mig_dev *d = vfu_get_private(ctx);
    struct in in = { data, size };
    static const int errs[] = { 0, EINVAL, EIO, ENOMEM, EBUSY, EPERM };

    while (in.left > 0) {
        uint8_t op = (uint8_t)take(&in, 1);

        switch (op % 8) {
        case 0:
        case 1:
            op_set(ctx, d, &in);
            break;
        case 2:
            op_read(ctx, &in);
            break;
        case 3:
            op_write(ctx, &in);
            break;
        case 4:
            op_feature(ctx, &in);
            break;
        case 5:
            d->transition_err = errs[(op >> 3) % ARRAY_SIZE(errs)];
            d->read_mode = (uint8_t)(take(&in, 1) % 5);
            d->write_mode = (uint8_t)(take(&in, 1) % 5);
            break;
        case 6:
            /* What a device reset does to migration. */
            vfu_migration_reset(ctx);
            check(get_state(ctx) == VFIO_USER_DEVICE_STATE_RUNNING,
                  "reset left a state other than RUNNING", get_state(ctx), 0);
            break;
        default:
            check(vfu_migration_check_cmd(ctx, (uint16_t)take(&in, 1)) == 0 ||
                  errno == EINVAL || errno == EIO, "check_cmd errno",
                  (uint32_t)errno, 0);
            break;
        }
    }
    /* Next input starts from a running, well-behaved device. */
    memset(d, 0, sizeof(*d));
    vfu_migration_reset(ctx);
    return 0;
}
