/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 the vfu authors. */

/*
 * Interrupts: the counts a device declares, the client's eventfds
 * (SET_IRQS), masking, and vfu_irq_trigger() from any thread.
 *
 * The eventfds are the client's, so the client can make writing them
 * block (a saturated counter) or, were they anything else, fail or raise
 * SIGPIPE. Only eventfds are taken; they are made non-blocking; each write
 * is preceded by a poll that says the counter has room; and no lock is held
 * across a write: a trigger takes a reference to the vector's eventfd under
 * irq_lock and writes after dropping it, so SET_IRQS and other vectors'
 * triggers never wait for one write.
 */

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <linux/vfio.h>

#include "private.h"

_Static_assert(sizeof(struct vfio_irq_set) == 20, "irq set");
_Static_assert(sizeof(struct vfio_irq_info) == 16, "irq info");

/* Upper bound on vectors per type: MSI-X allows 2048. */
#define VFU_MAX_IRQS_PER_TYPE 2048

struct vfu_efd {
    int fd;
    unsigned refs;      /* the vector's own, plus one per write in flight;
                         * atomic (taken under irq_lock, dropped without) */
};

static struct vfu_efd *
efd_get(struct vfu_efd *e)
{
    __atomic_add_fetch(&e->refs, 1, __ATOMIC_RELAXED);
    return e;
}

static void
efd_put(struct vfu_efd *e)
{
    if (e != NULL && __atomic_sub_fetch(&e->refs, 1, __ATOMIC_ACQ_REL) == 0) {
        close(e->fd);
        free(e);
    }
}

/*
 * Is fd an eventfd? Its fdinfo says so ("eventfd-count:"); without /proc,
 * an anonymous inode (no file type bits) is the best fstat can tell, and
 * the other anonymous files refuse 8-byte writes harmlessly.
 */
static bool
is_eventfd(int fd)
{
    char path[64], buf[512];
    struct stat st;
    ssize_t n;
    int f;

    snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
    f = open(path, O_RDONLY | O_CLOEXEC);
    if (f < 0) {
        return errno == ENOENT && fstat(fd, &st) == 0 &&
               (st.st_mode & S_IFMT) == 0;
    }
    do {
        n = read(f, buf, sizeof(buf) - 1);
    } while (n < 0 && errno == EINTR);
    close(f);
    if (n <= 0) {
        return false;
    }
    buf[n] = '\0';
    return strstr(buf, "eventfd-count:") != NULL;
}

/*
 * Wrap a client's fd for a vector: an eventfd, made non-blocking. The flag
 * lives in the open file the client shares with us, so its own reads of it
 * stop blocking too; QEMU creates its interrupt eventfds non-blocking
 * anyway, and a blocking write would let a client hang the device.
 */
static struct vfu_efd *
efd_new(int fd)
{
    struct vfu_efd *e;
    int fl;

    if (!is_eventfd(fd)) {
        errno = EINVAL;
        return NULL;
    }
    fl = fcntl(fd, F_GETFL);
    if (fl < 0 || (!(fl & O_NONBLOCK) && fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)) {
        return NULL;
    }
    e = malloc(sizeof(*e));
    if (e == NULL) {
        return NULL;
    }
    e->fd = fd;
    e->refs = 1;
    return e;
}

int
vfu_setup_device_nr_irqs(vfu_ctx_t *ctx, enum vfu_dev_irq_type type,
                         uint32_t count)
{
    struct vfu_irq_type *t;
    struct vfu_efd **efds;
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

/* Drop the vectors' eventfds (closed once no write uses them). */
static void
close_vectors(struct vfu_irq_type *t, uint32_t start, uint32_t count)
{
    for (uint32_t i = start; i < start + count; i++) {
        efd_put(t->efds[i]);
        t->efds[i] = NULL;
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
    /*
     * INTx can be masked by the client, but a trigger does not mask it
     * (no VFIO_IRQ_INFO_AUTOMASKED): each vfu_irq_trigger() is one signal,
     * as for MSI and MSI-X, which clients that never unmask (vfu's own,
     * the Lua host's) rely on. A client that unmasks after each interrupt,
     * as QEMU does at EOI, works the same either way.
     */
    if (in->index == VFU_DEV_INTX_IRQ) {
        out->flags |= VFIO_IRQ_INFO_MASKABLE;
    }
    /* MSI and MSI-X vectors can be set one range at a time (no NORESIZE). */
    return vfu_msg_reply_add(msg, out, sizeof(*out));
}

/*
 * Signal an eventfd without ever blocking: it is non-blocking, and the poll
 * catches a client that made it blocking again behind our back. A full
 * counter means the interrupt is pending anyway.
 */
static int
signal_efd(int fd)
{
    struct pollfd p = { .fd = fd, .events = POLLOUT };
    uint64_t one = 1;
    ssize_t n;

    if (poll(&p, 1, 0) != 1 || !(p.revents & POLLOUT)) {
        return 0;
    }
    do {
        n = write(fd, &one, sizeof(one));
    } while (n < 0 && errno == EINTR);
    return n < 0 && errno != EAGAIN ? -1 : 0;
}

/* Signal e outside irq_lock and drop the reference taken for it. */
static int
signal_put(struct vfu_efd *e)
{
    int rc = 0;

    if (e != NULL) {
        rc = signal_efd(e->fd);
        efd_put(e);
    }
    return rc;
}

/*
 * Vector i of t fires: returns a reference to the eventfd to signal (after
 * irq_lock is dropped), or NULL when masked (then remembered as pending)
 * or unset (errno ENOENT). irq_lock held.
 */
static struct vfu_efd *
fire(struct vfu_irq_type *t, uint32_t i)
{
    if (t->masked[i]) {
        t->pending[i] = true;
        errno = 0;
        return NULL;
    }
    if (t->efds[i] == NULL) {
        errno = ENOENT;
        return NULL;
    }
    return efd_get(t->efds[i]);
}

static int
set_mask(vfu_ctx_t *ctx, uint32_t type, uint32_t start, uint32_t count,
         const uint8_t *bools, bool mask)
{
    struct vfu_irq_type *t = &ctx->irqs[type];

    for (uint32_t i = 0; i < count; i++) {
        struct vfu_efd *e = NULL;

        if (bools != NULL && !bools[i]) {
            continue;
        }
        pthread_mutex_lock(&ctx->irq_lock);
        t->masked[start + i] = mask;
        if (!mask && t->pending[start + i]) {
            /* What fired while masked is delivered now. */
            t->pending[start + i] = false;
            e = fire(t, start + i);
        }
        pthread_mutex_unlock(&ctx->irq_lock);
        signal_put(e);
    }
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
    struct vfu_efd *e[VFU_MAX_RX_FDS];

    if (msg->nr_fds != 0 && msg->nr_fds != count) {
        errno = EINVAL;
        return -1;
    }
    /* All or nothing: anything but an eventfd refuses the whole set. */
    for (uint32_t i = 0; i < msg->nr_fds; i++) {
        e[i] = efd_new(msg->fds[i]);
        if (e[i] == NULL) {
            int err = errno == ENOMEM ? ENOMEM : EINVAL;
            vfu_log(ctx, LOG_ERR, "SET_IRQS: fd %u is not an eventfd", i);
            while (i-- > 0) {
                free(e[i]);     /* the fds stay in msg, closed after */
            }
            errno = err;
            return -1;
        }
    }
    pthread_mutex_lock(&ctx->irq_lock);
    close_vectors(t, start, count);
    for (uint32_t i = 0; i < msg->nr_fds; i++) {
        t->efds[start + i] = e[i];
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

    for (uint32_t i = 0; i < count; i++) {
        struct vfu_efd *e = NULL;

        if (bools == NULL || bools[i]) {
            pthread_mutex_lock(&ctx->irq_lock);
            if (t->efds[start + i] != NULL) {
                e = fire(t, start + i);
            }
            pthread_mutex_unlock(&ctx->irq_lock);
        }
        signal_put(e);
    }
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
    struct vfu_efd *e = NULL;
    int rc = 0;

    if (ctx == NULL) {
        errno = EINVAL;
        return -1;
    }
    pthread_mutex_lock(&ctx->irq_lock);
    t = &ctx->irqs[ctx->irq_active];
    if (subindex < t->count) {
        e = fire(t, subindex);
        if (e == NULL && errno != 0) {
            rc = -1;
        }
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
    if (e != NULL) {
        rc = signal_put(e);
    }
    return rc;
}
