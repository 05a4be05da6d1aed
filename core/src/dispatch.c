/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 the vfu authors. */

/*
 * From a framed message to its handler and back: checks that apply to every
 * command, quiescing the device where the protocol changes what the device
 * may touch, and the reply (or none, for posted writes).
 */

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "private.h"

static int
handle_device_info(vfu_ctx_t *ctx, struct vfu_msg *msg)
{
    struct vfio_user_device_info *in = msg->in;
    struct vfio_user_device_info *out = &ctx->info_reply;

    if (msg->in_size < sizeof(*in) || in->argsz < sizeof(*out)) {
        errno = EINVAL;
        return -1;
    }
    out->argsz = sizeof(*out);
    out->flags = VFIO_DEVICE_FLAGS_PCI | VFIO_DEVICE_FLAGS_RESET;
    out->num_regions = ctx->nr_regions;
    out->num_irqs = VFU_DEV_NUM_IRQS;
    return vfu_msg_reply_add(msg, out, sizeof(*out));
}

static int
handle_device_reset(vfu_ctx_t *ctx, struct vfu_msg *msg)
{
    if (ctx->reset_cb != NULL && ctx->reset_cb(ctx, VFU_RESET_DEVICE) < 0) {
        return -1;
    }
    vfu_pci_reset(ctx);
    vfu_migration_reset(ctx);
    return 0;
}

static int
handle_dma_read_write(vfu_ctx_t *ctx, struct vfu_msg *msg)
{
    /* Only servers answer DMA requests; a client asking us is confused. */
    errno = EINVAL;
    return -1;
}

static vfu_cmd_handler_t *const handlers[] = {
    [VFIO_USER_VERSION] = vfu_handle_version,
    [VFIO_USER_DMA_MAP] = vfu_handle_dma_map,
    [VFIO_USER_DMA_UNMAP] = vfu_handle_dma_unmap,
    [VFIO_USER_DEVICE_GET_INFO] = handle_device_info,
    [VFIO_USER_DEVICE_GET_REGION_INFO] = vfu_handle_region_info,
    [VFIO_USER_DEVICE_GET_REGION_IO_FDS] = vfu_handle_region_io_fds,
    [VFIO_USER_DEVICE_GET_IRQ_INFO] = vfu_handle_irq_info,
    [VFIO_USER_DEVICE_SET_IRQS] = vfu_handle_set_irqs,
    [VFIO_USER_REGION_READ] = vfu_handle_region_read,
    [VFIO_USER_REGION_WRITE] = vfu_handle_region_write,
    [VFIO_USER_DMA_READ] = handle_dma_read_write,
    [VFIO_USER_DMA_WRITE] = handle_dma_read_write,
    [VFIO_USER_DEVICE_RESET] = handle_device_reset,
    [VFIO_USER_REGION_WRITE_MULTI] = vfu_handle_region_write_multi,
    [VFIO_USER_DEVICE_FEATURE] = vfu_handle_device_feature,
    [VFIO_USER_MIG_DATA_READ] = vfu_handle_mig_data_read,
    [VFIO_USER_MIG_DATA_WRITE] = vfu_handle_mig_data_write,
};

const char *
vfu_cmd_name(uint16_t cmd)
{
    static const char *const names[] = {
        [VFIO_USER_VERSION] = "VERSION",
        [VFIO_USER_DMA_MAP] = "DMA_MAP",
        [VFIO_USER_DMA_UNMAP] = "DMA_UNMAP",
        [VFIO_USER_DEVICE_GET_INFO] = "DEVICE_GET_INFO",
        [VFIO_USER_DEVICE_GET_REGION_INFO] = "DEVICE_GET_REGION_INFO",
        [VFIO_USER_DEVICE_GET_REGION_IO_FDS] = "DEVICE_GET_REGION_IO_FDS",
        [VFIO_USER_DEVICE_GET_IRQ_INFO] = "DEVICE_GET_IRQ_INFO",
        [VFIO_USER_DEVICE_SET_IRQS] = "DEVICE_SET_IRQS",
        [VFIO_USER_REGION_READ] = "REGION_READ",
        [VFIO_USER_REGION_WRITE] = "REGION_WRITE",
        [VFIO_USER_DMA_READ] = "DMA_READ",
        [VFIO_USER_DMA_WRITE] = "DMA_WRITE",
        [VFIO_USER_DEVICE_RESET] = "DEVICE_RESET",
        [VFIO_USER_REGION_WRITE_MULTI] = "REGION_WRITE_MULTI",
        [VFIO_USER_DEVICE_FEATURE] = "DEVICE_FEATURE",
        [VFIO_USER_MIG_DATA_READ] = "MIG_DATA_READ",
        [VFIO_USER_MIG_DATA_WRITE] = "MIG_DATA_WRITE",
    };
    if (cmd < ARRAY_SIZE(names) && names[cmd] != NULL) {
        return names[cmd];
    }
    return "unknown";
}

/* Commands that change what the device may touch wait for it to quiesce. */
static bool
needs_quiesce(vfu_ctx_t *ctx, const struct vfu_msg *msg)
{
    switch (msg->hdr.cmd) {
    case VFIO_USER_DMA_MAP:
    case VFIO_USER_DMA_UNMAP:
    case VFIO_USER_DEVICE_RESET:
        return true;
    case VFIO_USER_REGION_WRITE: {
        /* Initiate-FLR in the PCIe capability resets like DEVICE_RESET. */
        const struct vfio_user_region_access *a = msg->in;
        return msg->in_size >= sizeof(*a) &&
               a->region == VFU_PCI_DEV_CFG_REGION_IDX &&
               a->count <= msg->in_size - sizeof(*a) &&
               vfu_pci_write_starts_flr(ctx, a->offset, a->data, a->count);
    }
    case VFIO_USER_DEVICE_FEATURE: {
        const struct vfio_user_device_feature *f = msg->in;
        return msg->in_size >= sizeof(*f) &&
               (f->flags & VFIO_DEVICE_FEATURE_SET) &&
               (f->flags & VFIO_DEVICE_FEATURE_MASK) ==
                   VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE;
    }
    default:
        return false;
    }
}

/* Checks before a command reaches its handler: errno, or 0. */
static int
precheck(vfu_ctx_t *ctx, const struct vfu_msg *msg)
{
    uint16_t cmd = msg->hdr.cmd;

    /* A header declaring more than we take, or less than itself. */
    if (msg->in == NULL) {
        return EINVAL;
    }
    if ((msg->hdr.flags & VFIO_USER_F_TYPE_MASK) != VFIO_USER_F_TYPE_COMMAND ||
        (msg->hdr.flags & VFIO_USER_F_ERROR)) {
        return EINVAL;
    }
    if (msg->fds_truncated || msg->nr_fds > VFU_DEFAULT_MAX_FDS) {
        return EINVAL;
    }
    if (cmd >= ARRAY_SIZE(handlers) || handlers[cmd] == NULL) {
        return EINVAL;
    }
    /* VERSION comes first, and once. */
    if ((cmd == VFIO_USER_VERSION) == ctx->negotiated) {
        return EINVAL;
    }
    if (cmd != VFIO_USER_VERSION && vfu_migration_check_cmd(ctx, cmd) < 0) {
        return errno;
    }
    return 0;
}

/* The reply the client gets, for the trace: header and gathered payload. */
static void
trace_reply(vfu_ctx_t *ctx, const struct vfu_msg *msg, int err)
{
    struct vfio_user_header h = {
        .msg_id = msg->hdr.msg_id,
        .cmd = msg->hdr.cmd,
        .flags = VFIO_USER_F_TYPE_REPLY | (err != 0 ? VFIO_USER_F_ERROR : 0),
        .error_no = (uint32_t)err,
    };
    const void *payload = NULL;
    size_t size = err != 0 ? 0 : msg->out_size;
    char *flat = NULL;

    h.msg_size = (uint32_t)(sizeof(h) + size);
    if (size > 0 && msg->out_iovcnt == 1) {
        payload = msg->out[0].iov_base;
    } else if (size > 0 && (flat = malloc(size)) != NULL) {
        size_t off = 0;
        for (int i = 0; i < msg->out_iovcnt; i++) {
            memcpy(flat + off, msg->out[i].iov_base, msg->out[i].iov_len);
            off += msg->out[i].iov_len;
        }
        payload = flat;
    }
    ctx->trace_fn(ctx, &h, payload, payload != NULL ? size : 0, true,
                  ctx->trace_arg);
    free(flat);
}

static int
finish(vfu_ctx_t *ctx, struct vfu_msg *msg, int err)
{
    bool no_reply = msg->hdr.flags & VFIO_USER_F_NO_REPLY;
    int rc = 0;

    vfu_msg_close_fds(msg);
    if (err != 0) {
        vfu_log_errno(ctx, LOG_ERR, err, "%s (msg %u, %u bytes) failed",
                      vfu_cmd_name(msg->hdr.cmd), msg->hdr.msg_id,
                      msg->hdr.msg_size);
    }
    if (!no_reply) {
        if (ctx->trace_fn != NULL) {
            trace_reply(ctx, msg, err);
        }
        rc = vfu_conn_reply(ctx->conn, msg, err);
    }
    return rc;
}

static int
run_handler(vfu_ctx_t *ctx, struct vfu_msg *msg)
{
    int err = 0;

    if (handlers[msg->hdr.cmd](ctx, msg) < 0) {
        err = errno != 0 ? errno : EIO;
    }
    return err;
}

int
vfu_dispatch(vfu_ctx_t *ctx, struct vfu_msg *msg)
{
    int err;

    if (ctx->trace_fn != NULL) {
        /* an oversized request: no payload, its declared size */
        ctx->trace_fn(ctx, &msg->hdr, msg->in, msg->in_size, false,
                      ctx->trace_arg);
    }
    /* A reply to one of our DMA requests, taken by the loop. */
    if ((msg->hdr.flags & VFIO_USER_F_TYPE_MASK) == VFIO_USER_F_TYPE_REPLY &&
        msg->in != NULL && vfu_conn_deliver_reply(ctx->conn, msg)) {
        vfu_msg_close_fds(msg);
        return 0;
    }
    err = precheck(ctx, msg);
    if (err != 0) {
        return finish(ctx, msg, err);
    }
    if (needs_quiesce(ctx, msg) && ctx->quiesce_cb != NULL && !ctx->quiesced) {
        /* The callback may wait for a device thread that waits for a DMA
         * reply: that thread reads it itself meanwhile. */
        bool out = vfu_conn_loop_step_out(ctx->conn);
        int rc;

        errno = 0;
        rc = ctx->quiesce_cb(ctx);
        {
            int saved = errno;
            vfu_conn_loop_step_in(ctx->conn, out);
            errno = saved;
        }
        if (rc < 0) {
            if (errno == EBUSY) {
                __atomic_store_n(&ctx->quiesce_pending, true, __ATOMIC_RELEASE);
                ctx->pending_msg = msg;
                return 0;
            }
            return finish(ctx, msg, errno != 0 ? errno : EIO);
        }
        ctx->quiesced = true;
    }
    err = run_handler(ctx, msg);
    /* The device resumes once the command is done. */
    ctx->quiesced = false;
    return finish(ctx, msg, err);
}

/*
 * The request's own outcome goes to the client: this fails only when there
 * was nothing to finish.
 */
int
vfu_dispatch_resume(vfu_ctx_t *ctx, int quiesce_errno)
{
    struct vfu_msg *msg = ctx->pending_msg;
    int err = quiesce_errno;

    __atomic_store_n(&ctx->quiesce_pending, false, __ATOMIC_RELEASE);
    ctx->pending_msg = NULL;
    if (msg == NULL || ctx->conn == NULL) {
        errno = ENOTCONN;
        return -1;
    }
    if (err == 0) {
        ctx->quiesced = true;
        err = run_handler(ctx, msg);
    } else if (ctx->reset_cb != NULL) {
        /* A device that could not quiesce is put back to a known state. */
        ctx->reset_cb(ctx, VFU_RESET_DEVICE);
    }
    if (finish(ctx, msg, err) < 0) {
        /* Gone while the device is still quiesced: drop it right away. */
        vfu_log_errno(ctx, LOG_ERR, errno, "reply after quiesce failed");
        vfu_conn_lost(ctx);
    } else {
        vfu_conn_unpin(ctx->conn);
    }
    ctx->quiesced = false;
    return 0;
}

int
vfu_setup_trace(vfu_ctx_t *ctx, vfu_trace_fn_t *fn, void *arg)
{
    if (ctx == NULL) {
        errno = EINVAL;
        return -1;
    }
    ctx->trace_fn = fn;
    ctx->trace_arg = arg;
    return 0;
}
