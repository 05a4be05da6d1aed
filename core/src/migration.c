/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 the vfu authors. */

/*
 * VFIO migration v2 over vfio-user: DEVICE_FEATURE MIGRATION and
 * MIG_DEVICE_STATE, MIG_DATA_READ/WRITE, and which commands each state
 * admits. The state machine itself is in migration_fsm.c.
 *
 * Choices where the spec leaves room (see also vfu_migration_check_cmd):
 *  - PRE_COPY is always offered, as libvfio-user does: every v2 device has
 *    read_data, and it may simply return 0 bytes while running.
 *  - A failing transition callback leaves the device in the last state it
 *    reached (the one before the failed arc), as libvfio-user does and as
 *    linux/vfio.h allows; the client reads it back with GET and decides
 *    (retry, another state, or reset). The device is never put in ERROR.
 *  - Callbacks may be set or replaced after vfu_realize_ctx(), as in
 *    libvfio-user, but not while a migration is under way.
 *  - A reset, including the loss of the client, returns the state to
 *    RUNNING, like VFIO_DEVICE_RESET in the kernel and libvfio-user on a
 *    lost connection; the device is told so through transition(RUNNING)
 *    so that it never believes it is still stopped.
 *  - In STOP_COPY a short read ends the stream: later reads return 0 bytes
 *    without asking the device. In PRE_COPY a short read only means "no
 *    more for now", so every read asks the device.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "migration_internal.h"
#include "private.h"

struct vfu_migration {
    vfu_migration_callbacks_t cb;
    uint32_t state;
    bool end_of_stream;             /* STOP_COPY produced a short read */
    uint64_t stream_bytes;          /* of the current session, for logs */

    /* DEVICE_FEATURE reply: header and 8 bytes of feature data */
    uint8_t feature_reply[sizeof(struct vfio_user_device_feature) + 8];
    /* MIG_DATA_READ reply: struct vfio_user_mig_data then the data */
    uint8_t *read_buf;
    size_t read_cap;
};

_Static_assert(sizeof(struct vfio_user_device_feature_migration) == 8 &&
               sizeof(struct vfio_user_device_feature_mig_state) == 8,
               "feature_reply holds either feature's data");

static bool
is_saving(uint32_t state)
{
    return state == VFIO_USER_DEVICE_STATE_PRE_COPY ||
           state == VFIO_USER_DEVICE_STATE_STOP_COPY;
}

static void
mig_enter(struct vfu_migration *m, uint32_t state)
{
    /* PRE_COPY -> STOP_COPY continues one session; anything else starts
     * a new one, or ends it. */
    if (!(is_saving(m->state) && is_saving(state))) {
        m->stream_bytes = 0;
    }
    m->end_of_stream = false;
    m->state = state;
}

static uint64_t
max_xfer(const vfu_ctx_t *ctx)
{
    uint64_t max = ctx->negotiated ? ctx->caps.max_data_xfer_size
                                   : VFU_DEFAULT_MAX_DATA_XFER;

    if (max == 0 || max > VFU_MAX_DATA_XFER_LIMIT) {
        max = VFU_MAX_DATA_XFER_LIMIT;
    }
    return max;
}

bool
vfu_migration_enabled(const vfu_ctx_t *ctx)
{
    return ctx != NULL && ctx->migr != NULL;
}

int
vfu_setup_device_migration_callbacks(vfu_ctx_t *ctx,
                                     const vfu_migration_callbacks_t *cbs)
{
    if (ctx == NULL || cbs == NULL) {
        errno = EINVAL;
        return -1;
    }
    if (cbs->version != VFU_MIGR_CALLBACKS_VERS || cbs->transition == NULL ||
        cbs->read_data == NULL || cbs->write_data == NULL) {
        vfu_log(ctx, LOG_ERR, "migration callbacks: need version %d with "
                "transition, read_data and write_data",
                VFU_MIGR_CALLBACKS_VERS);
        errno = EINVAL;
        return -1;
    }
    /* New callbacks would find a device mid-migration they were never told
     * about. (Before realize, and between migrations, anything goes.) */
    if (ctx->migr != NULL &&
        ctx->migr->state != VFIO_USER_DEVICE_STATE_RUNNING) {
        vfu_log(ctx, LOG_ERR, "migration callbacks: device is in %s, not "
                "RUNNING", vfu_mig_state_name(ctx->migr->state));
        errno = EBUSY;
        return -1;
    }
    if (ctx->migr == NULL) {
        ctx->migr = calloc(1, sizeof(*ctx->migr));
        if (ctx->migr == NULL) {
            errno = ENOMEM;
            return -1;
        }
        ctx->migr->state = VFIO_USER_DEVICE_STATE_RUNNING;
    }
    ctx->migr->cb = *cbs;
    return 0;
}

/* Walk from the current state to target, one callback per arc. */
static int
mig_set_state(vfu_ctx_t *ctx, struct vfu_migration *m, uint32_t target)
{
    uint32_t next;

    if (!vfu_mig_state_settable(target)) {
        vfu_log(ctx, LOG_ERR, "migration: state %u (%s) cannot be set%s",
                target, vfu_mig_state_name(target),
                target == VFIO_USER_DEVICE_STATE_RUNNING_P2P ||
                target == VFIO_USER_DEVICE_STATE_PRE_COPY_P2P ?
                ": P2P states are not used by vfio-user" : "");
        errno = EINVAL;
        return -1;
    }
    if (vfu_mig_next_state(m->state, target, &next) < 0) {
        vfu_log(ctx, LOG_ERR, "migration: no path from %s to %s",
                vfu_mig_state_name(m->state), vfu_mig_state_name(target));
        return -1;
    }
    while (m->state != target) {
        int ret;

        if (vfu_mig_next_state(m->state, target, &next) < 0) {
            return -1;  /* the table is closed under its own steps */
        }
        errno = 0;
        ret = m->cb.transition(ctx, vfu_mig_state_to_vfu(next));
        if (ret != 0) {
            int err = (ret < 0 && errno != 0) ? errno : EIO;

            vfu_log_errno(ctx, LOG_ERR, err,
                          "migration: device failed %s -> %s, still in %s",
                          vfu_mig_state_name(m->state),
                          vfu_mig_state_name(next),
                          vfu_mig_state_name(m->state));
            errno = err;
            return -1;
        }
        vfu_log(ctx, LOG_DEBUG, "migration: %s -> %s",
                vfu_mig_state_name(m->state), vfu_mig_state_name(next));
        mig_enter(m, next);
    }
    return 0;
}

static int
reply_feature(struct vfu_msg *msg, struct vfu_migration *m,
              const struct vfio_user_device_feature *hdr,
              const void *data, size_t data_size)
{
    memcpy(m->feature_reply, hdr, sizeof(*hdr));
    if (data_size > 0) {
        memcpy(m->feature_reply + sizeof(*hdr), data, data_size);
    }
    return vfu_msg_reply_add(msg, m->feature_reply, sizeof(*hdr) + data_size);
}

int
vfu_migration_feature(vfu_ctx_t *ctx, struct vfu_msg *msg)
{
    const uint32_t ops_mask = VFIO_DEVICE_FEATURE_GET |
                              VFIO_DEVICE_FEATURE_SET |
                              VFIO_DEVICE_FEATURE_PROBE;
    struct vfio_user_device_feature req;
    struct vfu_migration *m = ctx->migr;
    const size_t data_size = 8;     /* both features carry 8 bytes */
    uint32_t index, ops, supported;
    bool probe;

    if (msg->in == NULL || msg->in_size < sizeof(req)) {
        vfu_log(ctx, LOG_ERR, "device feature: payload of %zu bytes too short",
                msg->in_size);
        errno = EINVAL;
        return -1;
    }
    memcpy(&req, msg->in, sizeof(req));
    index = req.flags & VFIO_DEVICE_FEATURE_MASK;
    ops = req.flags & ~(uint32_t)VFIO_DEVICE_FEATURE_MASK;
    if (index != VFIO_DEVICE_FEATURE_MIGRATION &&
        index != VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE) {
        errno = ENOTSUP;
        return -1;
    }
    if (m == NULL) {
        vfu_log(ctx, LOG_DEBUG, "device feature %u: device has no migration",
                index);
        errno = ENOTSUP;
        return -1;
    }

    supported = VFIO_DEVICE_FEATURE_GET;
    if (index == VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE) {
        supported |= VFIO_DEVICE_FEATURE_SET;
    }
    probe = (ops & VFIO_DEVICE_FEATURE_PROBE) != 0;
    if ((ops & ~ops_mask) != 0 ||
        (ops & (VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_SET) &
         ~supported) != 0 ||
        (!probe && (ops & (VFIO_DEVICE_FEATURE_GET |
                           VFIO_DEVICE_FEATURE_SET)) ==
         (VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_SET)) ||
        (!probe && (ops & supported) == 0)) {
        vfu_log(ctx, LOG_ERR, "device feature %u: bad flags %#x", index,
                req.flags);
        errno = EINVAL;
        return -1;
    }
    /* Requests carry the header, optionally followed by the feature data
     * (required for SET); nothing else. */
    if (msg->in_size != sizeof(req) &&
        msg->in_size != sizeof(req) + data_size) {
        vfu_log(ctx, LOG_ERR, "device feature %u: bad payload size %zu",
                index, msg->in_size);
        errno = EINVAL;
        return -1;
    }

    if (probe) {
        /* The reply repeats the request, so argsz must cover it. */
        if (req.argsz < msg->in_size) {
            vfu_log(ctx, LOG_ERR, "device feature %u PROBE: argsz %u below "
                    "%zu", index, req.argsz, msg->in_size);
            errno = EINVAL;
            return -1;
        }
        return reply_feature(msg, m, &req, (const char *)msg->in + sizeof(req),
                             msg->in_size - sizeof(req));
    }
    if (req.argsz < sizeof(req) + data_size) {
        vfu_log(ctx, LOG_ERR, "device feature %u: argsz %u below %zu", index,
                req.argsz, sizeof(req) + data_size);
        errno = EINVAL;
        return -1;
    }

    if (ops & VFIO_DEVICE_FEATURE_GET) {
        struct vfio_user_device_feature hdr = {
            .argsz = sizeof(req) + data_size,
            .flags = req.flags,
        };

        if (index == VFIO_DEVICE_FEATURE_MIGRATION) {
            struct vfio_user_device_feature_migration mf = {
                .flags = VFIO_MIGRATION_STOP_COPY | VFIO_MIGRATION_PRE_COPY,
            };
            return reply_feature(msg, m, &hdr, &mf, sizeof(mf));
        } else {
            struct vfio_user_device_feature_mig_state st = {
                .device_state = m->state,
                .data_fd = UINT32_MAX,  /* -1: no fd over vfio-user */
            };
            return reply_feature(msg, m, &hdr, &st, sizeof(st));
        }
    }

    /* SET of MIG_DEVICE_STATE; the dispatcher has quiesced the device. */
    struct vfio_user_device_feature_mig_state st;

    if (msg->in_size != sizeof(req) + sizeof(st)) {
        vfu_log(ctx, LOG_ERR, "device feature SET: missing device_state");
        errno = EINVAL;
        return -1;
    }
    memcpy(&st, (const char *)msg->in + sizeof(req), sizeof(st));
    if (mig_set_state(ctx, m, st.device_state) < 0) {
        return -1;
    }
    return reply_feature(msg, m, &req, &st, sizeof(st));
}

int
vfu_handle_mig_data_read(vfu_ctx_t *ctx, struct vfu_msg *msg)
{
    struct vfu_migration *m = ctx->migr;
    struct vfio_user_mig_data req, hdr;
    ssize_t n = 0;

    if (m == NULL) {
        vfu_log(ctx, LOG_ERR, "MIG_DATA_READ: device has no migration");
        errno = ENOTSUP;
        return -1;
    }
    if (msg->in == NULL || msg->in_size != sizeof(req)) {
        vfu_log(ctx, LOG_ERR, "MIG_DATA_READ: bad payload size %zu",
                msg->in_size);
        errno = EINVAL;
        return -1;
    }
    memcpy(&req, msg->in, sizeof(req));
    if (!is_saving(m->state)) {
        vfu_log(ctx, LOG_ERR, "MIG_DATA_READ in state %s",
                vfu_mig_state_name(m->state));
        errno = EINVAL;
        return -1;
    }
    if (req.size > max_xfer(ctx)) {
        vfu_log(ctx, LOG_ERR, "MIG_DATA_READ: size %u above %llu", req.size,
                (unsigned long long)max_xfer(ctx));
        errno = EINVAL;
        return -1;
    }
    if ((uint64_t)req.argsz < sizeof(req) + (uint64_t)req.size) {
        vfu_log(ctx, LOG_ERR, "MIG_DATA_READ: argsz %u too small for %u bytes",
                req.argsz, req.size);
        errno = EINVAL;
        return -1;
    }
    if (m->read_cap < sizeof(req) + req.size) {
        uint8_t *p = realloc(m->read_buf, sizeof(req) + req.size);

        if (p == NULL) {
            errno = ENOMEM;
            return -1;
        }
        m->read_buf = p;
        m->read_cap = sizeof(req) + req.size;
    }

    if (req.size > 0 && !m->end_of_stream) {
        errno = 0;
        n = m->cb.read_data(ctx, m->read_buf + sizeof(req), req.size);
        if (n < 0) {
            int err = errno != 0 ? errno : EIO;

            vfu_log_errno(ctx, LOG_ERR, err, "MIG_DATA_READ: device failed");
            errno = err;
            return -1;
        }
        if ((uint64_t)n > req.size) {
            vfu_log(ctx, LOG_ERR, "MIG_DATA_READ: device returned %zd bytes "
                    "for %u", n, req.size);
            errno = EIO;
            return -1;
        }
        if ((uint64_t)n < req.size &&
            m->state == VFIO_USER_DEVICE_STATE_STOP_COPY) {
            m->end_of_stream = true;
        }
    }
    m->stream_bytes += (uint64_t)n;
    hdr.argsz = sizeof(hdr) + (uint32_t)n;
    hdr.size = (uint32_t)n;
    memcpy(m->read_buf, &hdr, sizeof(hdr));
    return vfu_msg_reply_add(msg, m->read_buf, sizeof(hdr) + (size_t)n);
}

int
vfu_handle_mig_data_write(vfu_ctx_t *ctx, struct vfu_msg *msg)
{
    struct vfu_migration *m = ctx->migr;
    struct vfio_user_mig_data req;
    uint8_t *data;
    uint64_t done = 0;

    if (m == NULL) {
        vfu_log(ctx, LOG_ERR, "MIG_DATA_WRITE: device has no migration");
        errno = ENOTSUP;
        return -1;
    }
    if (msg->in == NULL || msg->in_size < sizeof(req)) {
        vfu_log(ctx, LOG_ERR, "MIG_DATA_WRITE: bad payload size %zu",
                msg->in_size);
        errno = EINVAL;
        return -1;
    }
    memcpy(&req, msg->in, sizeof(req));
    if (m->state != VFIO_USER_DEVICE_STATE_RESUMING) {
        vfu_log(ctx, LOG_ERR, "MIG_DATA_WRITE in state %s",
                vfu_mig_state_name(m->state));
        errno = EINVAL;
        return -1;
    }
    if ((uint64_t)req.size != (uint64_t)msg->in_size - sizeof(req)) {
        vfu_log(ctx, LOG_ERR, "MIG_DATA_WRITE: size %u but %zu data bytes",
                req.size, msg->in_size - sizeof(req));
        errno = EINVAL;
        return -1;
    }
    if (req.size > max_xfer(ctx)) {
        vfu_log(ctx, LOG_ERR, "MIG_DATA_WRITE: size %u above %llu", req.size,
                (unsigned long long)max_xfer(ctx));
        errno = EINVAL;
        return -1;
    }

    data = (uint8_t *)msg->in + sizeof(req);
    while (done < req.size) {
        ssize_t n;

        errno = 0;
        n = m->cb.write_data(ctx, data + done, req.size - done);
        if (n < 0) {
            int err = errno != 0 ? errno : EIO;

            vfu_log_errno(ctx, LOG_ERR, err, "MIG_DATA_WRITE: device refused "
                          "data at stream offset %llu",
                          (unsigned long long)(m->stream_bytes + done));
            m->stream_bytes += done;
            errno = err;
            return -1;
        }
        if (n == 0 || (uint64_t)n > req.size - done) {
            /* No progress or overrun: retrying could spin forever. */
            vfu_log(ctx, LOG_ERR, "MIG_DATA_WRITE: device consumed %zd of %llu "
                    "bytes", n, (unsigned long long)(req.size - done));
            m->stream_bytes += done;
            errno = EIO;
            return -1;
        }
        done += (uint64_t)n;
    }
    m->stream_bytes += done;
    return 0;
}

/*
 * Which commands each state admits. The spec (after linux/vfio.h) asks a
 * stopped device to keep answering config space and MSI-X, and QEMU reads
 * and writes config space while saving (STOP_COPY) and loading (RESUMING),
 * so region access and SET_IRQS stay allowed, as in libvfio-user. Refused:
 *  - DMA_MAP/UNMAP in STOP and STOP_COPY: the device is frozen and its state
 *    (which may refer to client memory) is being saved; EINVAL.
 *  - MIG_DATA_READ outside PRE_COPY/STOP_COPY and MIG_DATA_WRITE outside
 *    RESUMING: EINVAL.
 * (ERROR needs no rule: the device never enters it, see the top.)
 */
int
vfu_migration_check_cmd(vfu_ctx_t *ctx, uint16_t cmd)
{
    const struct vfu_migration *m = ctx->migr;
    uint32_t s;
    int err = 0;

    if (m == NULL) {
        return 0;   /* handlers answer ENOTSUP for MIG_DATA_* */
    }
    s = m->state;
    switch (cmd) {
    case VFIO_USER_DMA_MAP:
    case VFIO_USER_DMA_UNMAP:
        if (s == VFIO_USER_DEVICE_STATE_STOP ||
            s == VFIO_USER_DEVICE_STATE_STOP_COPY) {
            err = EINVAL;
        }
        break;
    case VFIO_USER_MIG_DATA_READ:
        if (!is_saving(s)) {
            err = EINVAL;
        }
        break;
    case VFIO_USER_MIG_DATA_WRITE:
        if (s != VFIO_USER_DEVICE_STATE_RESUMING) {
            err = EINVAL;
        }
        break;
    default:
        break;
    }
    if (err != 0) {
        vfu_log(ctx, LOG_ERR, "command %u not allowed in migration state %s",
                cmd, vfu_mig_state_name(s));
        errno = err;
        return -1;
    }
    return 0;
}

void
vfu_migration_reset(vfu_ctx_t *ctx)
{
    struct vfu_migration *m = ctx->migr;

    if (m == NULL) {
        return;
    }
    if (m->state != VFIO_USER_DEVICE_STATE_RUNNING) {
        errno = 0;
        if (m->cb.transition(ctx, VFU_MIGR_STATE_RUNNING) != 0) {
            /* The reset callback already returned the device to power-on
             * state, so RUNNING is still the truth; just say so. */
            vfu_log(ctx, LOG_WARNING, "migration: device refused RUNNING "
                    "after reset from %s", vfu_mig_state_name(m->state));
        }
        vfu_log(ctx, LOG_DEBUG, "migration: reset %s -> RUNNING",
                vfu_mig_state_name(m->state));
    }
    mig_enter(m, VFIO_USER_DEVICE_STATE_RUNNING);
    /* The read buffer can be as large as max_data_xfer_size: give it back. */
    free(m->read_buf);
    m->read_buf = NULL;
    m->read_cap = 0;
}

void
vfu_migration_free(vfu_ctx_t *ctx)
{
    if (ctx == NULL || ctx->migr == NULL) {
        return;
    }
    free(ctx->migr->read_buf);
    free(ctx->migr);
    ctx->migr = NULL;
}
