/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 the vfu authors. */

/*
 * Interrupts: the counts a device declares, the client's eventfds
 * (SET_IRQS), masking, and vfu_irq_trigger() from any thread.
 */

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <linux/vfio.h>

#include "private.h"

_Static_assert(sizeof(struct vfio_irq_set) == 20, "irq set");
_Static_assert(sizeof(struct vfio_irq_info) == 16, "irq info");

/* Upper bound on vectors per type: MSI-X allows 2048. */
#define VFU_MAX_IRQS_PER_TYPE 2048

int
vfu_setup_device_nr_irqs(vfu_ctx_t *ctx, enum vfu_dev_irq_type type,
                         uint32_t count)
{
    struct vfu_irq_type *t;
    int *efds;
    bool *masked, *pending;

    if (ctx == NULL || (unsigned)type >= VFU_DEV_NUM_IRQS ||
        count > VFU_MAX_IRQS_PER_TYPE ||
        (type == VFU_DEV_INTX_IRQ && count > 1) ||
        (type == VFU_DEV_MSI_IRQ && count > 32) || ctx->conn != NULL) {
        errno = EINVAL;
        return -1;
    }
    t = &ctx->irqs[type];
    efds = calloc(count ? count : 1, sizeof(*efds));
    masked = calloc(count ? count : 1, sizeof(*masked));
    pending = calloc(count ? count : 1, sizeof(*pending));
    if (efds == NULL || masked == NULL || pending == NULL) {
        free(efds);
        free(masked);
        free(pending);
        errno = ENOMEM;
        return -1;
    }
    for (uint32_t i = 0; i < count; i++) {
        efds[i] = -1;
    }
    pthread_mutex_lock(&ctx->irq_lock);
    free(t->efds);
    free(t->masked);
    free(t->pending);
    t->efds = efds;
    t->masked = masked;
    t->pending = pending;
    t->count = count;
    pthread_mutex_unlock(&ctx->irq_lock);
    return 0;
}

int
vfu_setup_irq_state_callback(vfu_ctx_t *ctx, enum vfu_dev_irq_type type,
                             vfu_dev_irq_state_cb_t *cb)
{
    if (ctx == NULL || (unsigned)type >= VFU_DEV_NUM_IRQS) {
        errno = EINVAL;
        return -1;
    }
    ctx->irqs[type].state_cb = cb;
    return 0;
}

static void
close_vectors(struct vfu_irq_type *t, uint32_t start, uint32_t count)
{
    for (uint32_t i = start; i < start + count; i++) {
        if (t->efds[i] >= 0) {
            close(t->efds[i]);
            t->efds[i] = -1;
        }
        t->pending[i] = false;
    }
}

void
vfu_irqs_release(vfu_ctx_t *ctx)
{
    pthread_mutex_lock(&ctx->irq_lock);
    for (int i = 0; i < VFU_DEV_NUM_IRQS; i++) {
        struct vfu_irq_type *t = &ctx->irqs[i];
        close_vectors(t, 0, t->count);
        if (t->count > 0) {
            memset(t->masked, 0, t->count * sizeof(*t->masked));
        }
    }
    pthread_mutex_unlock(&ctx->irq_lock);
}

void
vfu_irqs_free(vfu_ctx_t *ctx)
{
    for (int i = 0; i < VFU_DEV_NUM_IRQS; i++) {
        struct vfu_irq_type *t = &ctx->irqs[i];
        if (t->efds != NULL) {
            close_vectors(t, 0, t->count);
        }
        free(t->efds);
        free(t->masked);
        free(t->pending);
        memset(t, 0, sizeof(*t));
    }
}

int
vfu_handle_irq_info(vfu_ctx_t *ctx, struct vfu_msg *msg)
{
    const struct vfio_irq_info *in = msg->in;
    struct vfio_irq_info *out = &ctx->irq_info_reply;

    if (msg->in_size != sizeof(*in) || in->argsz < sizeof(*in) ||
        in->index >= VFU_DEV_NUM_IRQS) {
        errno = EINVAL;
        return -1;
    }
    out->argsz = sizeof(*out);
    out->index = in->index;
    out->count = ctx->irqs[in->index].count;
    out->flags = VFIO_IRQ_INFO_EVENTFD;
    if (in->index == VFU_DEV_INTX_IRQ) {
        out->flags |= VFIO_IRQ_INFO_MASKABLE | VFIO_IRQ_INFO_AUTOMASKED;
    }
    /* MSI and MSI-X vectors can be set one range at a time (no NORESIZE). */
    return vfu_msg_reply_add(msg, out, sizeof(*out));
}

static int
signal_efd(int fd)
{
    uint64_t one = 1;
    ssize_t n;

    do {
        n = write(fd, &one, sizeof(one));
    } while (n < 0 && errno == EINTR);
    /* EAGAIN: the counter is saturated, the interrupt is pending anyway */
    return n < 0 && errno != EAGAIN ? -1 : 0;
}

/* Fire vector i of t unless masked (then remember it). irq_lock held. */
static int
fire(struct vfu_irq_type *t, uint32_t i)
{
    if (t->masked[i]) {
        t->pending[i] = true;
        return 0;
    }
    if (t->efds[i] < 0) {
        errno = ENOENT;
        return -1;
    }
    return signal_efd(t->efds[i]);
}

static int
set_mask(vfu_ctx_t *ctx, uint32_t type, uint32_t start, uint32_t count,
         const uint8_t *bools, bool mask)
{
    struct vfu_irq_type *t = &ctx->irqs[type];

    pthread_mutex_lock(&ctx->irq_lock);
    for (uint32_t i = 0; i < count; i++) {
        if (bools != NULL && !bools[i]) {
            continue;
        }
        t->masked[start + i] = mask;
        if (!mask && t->pending[start + i]) {
            t->pending[start + i] = false;
            if (t->efds[start + i] >= 0) {
                signal_efd(t->efds[start + i]);
            }
        }
    }
    pthread_mutex_unlock(&ctx->irq_lock);
    if (t->state_cb != NULL) {
        t->state_cb(ctx, start, count, mask);
    }
    return 0;
}

static int
set_eventfds(vfu_ctx_t *ctx, struct vfu_msg *msg, uint32_t type,
             uint32_t start, uint32_t count)
{
    struct vfu_irq_type *t = &ctx->irqs[type];

    if (msg->nr_fds != 0 && msg->nr_fds != count) {
        errno = EINVAL;
        return -1;
    }
    pthread_mutex_lock(&ctx->irq_lock);
    close_vectors(t, start, count);
    for (uint32_t i = 0; i < msg->nr_fds; i++) {
        t->efds[start + i] = msg->fds[i];
        msg->fds[i] = -1;
    }
    if (msg->nr_fds > 0 && type <= VFU_DEV_MSIX_IRQ) {
        ctx->irq_active = type;
    }
    pthread_mutex_unlock(&ctx->irq_lock);
    /* Assigning or removing eventfds enables or disables the vectors. */
    if (t->state_cb != NULL) {
        t->state_cb(ctx, start, count, msg->nr_fds == 0);
    }
    return 0;
}

static int
trigger(vfu_ctx_t *ctx, uint32_t type, uint32_t start, uint32_t count,
        const uint8_t *bools)
{
    struct vfu_irq_type *t = &ctx->irqs[type];

    pthread_mutex_lock(&ctx->irq_lock);
    for (uint32_t i = 0; i < count; i++) {
        if ((bools == NULL || bools[i]) && t->efds[start + i] >= 0) {
            fire(t, start + i);
        }
    }
    pthread_mutex_unlock(&ctx->irq_lock);
    return 0;
}

int
vfu_handle_set_irqs(vfu_ctx_t *ctx, struct vfu_msg *msg)
{
    const struct vfio_irq_set *in = msg->in;
    uint32_t data, action, extra;
    const uint8_t *bools = NULL;

    if (msg->in_size < sizeof(*in) || in->argsz < sizeof(*in) ||
        in->index >= VFU_DEV_NUM_IRQS) {
        errno = EINVAL;
        return -1;
    }
    data = in->flags & VFIO_IRQ_SET_DATA_TYPE_MASK;
    action = in->flags & VFIO_IRQ_SET_ACTION_TYPE_MASK;
    extra = in->flags & ~(VFIO_IRQ_SET_DATA_TYPE_MASK | VFIO_IRQ_SET_ACTION_TYPE_MASK);
    /* exactly one data type and one action */
    if (extra != 0 || __builtin_popcount(data) != 1 ||
        __builtin_popcount(action) != 1) {
        errno = EINVAL;
        return -1;
    }
    const struct vfu_irq_type *t = &ctx->irqs[in->index];
    if (in->start > t->count || in->count > t->count - in->start) {
        errno = EINVAL;
        return -1;
    }
    /* The error and request IRQs are signalled, never masked. */
    if ((in->index == VFU_DEV_ERR_IRQ || in->index == VFU_DEV_REQ_IRQ) &&
        action != VFIO_IRQ_SET_ACTION_TRIGGER) {
        errno = EINVAL;
        return -1;
    }
    /* count 0 means one thing only: disable the whole index (TRIGGER with
     * DATA_NONE, from vector 0). */
    if (in->count == 0 && (in->start != 0 || data != VFIO_IRQ_SET_DATA_NONE ||
                           action != VFIO_IRQ_SET_ACTION_TRIGGER)) {
        errno = EINVAL;
        return -1;
    }
    size_t payload = data == VFIO_IRQ_SET_DATA_BOOL ? in->count : 0;
    if (msg->in_size != sizeof(*in) + payload ||
        (data != VFIO_IRQ_SET_DATA_EVENTFD && msg->nr_fds != 0)) {
        errno = EINVAL;
        return -1;
    }
    if (data == VFIO_IRQ_SET_DATA_BOOL) {
        bools = in->data;
    }

    switch (action) {
    case VFIO_IRQ_SET_ACTION_MASK:
    case VFIO_IRQ_SET_ACTION_UNMASK:
        if (data == VFIO_IRQ_SET_DATA_EVENTFD) {
            errno = EINVAL;   /* unmask-by-eventfd (resamplefd) is not offered */
            return -1;
        }
        return set_mask(ctx, in->index, in->start, in->count, bools,
                        action == VFIO_IRQ_SET_ACTION_MASK);
    default: /* TRIGGER */
        if (data == VFIO_IRQ_SET_DATA_EVENTFD) {
            return set_eventfds(ctx, msg, in->index, in->start, in->count);
        }
        if (data == VFIO_IRQ_SET_DATA_NONE && in->count == 0) {
            /* disable every vector of this index */
            struct vfu_msg none = { .nr_fds = 0 };
            return set_eventfds(ctx, &none, in->index, 0, t->count);
        }
        return trigger(ctx, in->index, in->start, in->count, bools);
    }
}

int
vfu_irq_trigger(vfu_ctx_t *ctx, uint32_t subindex)
{
    struct vfu_irq_type *t;
    int rc;

    if (ctx == NULL) {
        errno = EINVAL;
        return -1;
    }
    pthread_mutex_lock(&ctx->irq_lock);
    t = &ctx->irqs[ctx->irq_active];
    if (subindex < t->count) {
        rc = fire(t, subindex);
    } else {
        /* A vector the device has, of a type the client has not enabled
         * (or none yet): not set up, rather than out of range. */
        uint32_t most = 0;
        for (int i = VFU_DEV_INTX_IRQ; i <= VFU_DEV_MSIX_IRQ; i++) {
            most = ctx->irqs[i].count > most ? ctx->irqs[i].count : most;
        }
        errno = subindex < most ? ENOENT : EINVAL;
        rc = -1;
    }
    pthread_mutex_unlock(&ctx->irq_lock);
    return rc;
}
