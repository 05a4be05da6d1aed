/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 the vfu authors. */

/* Context life cycle: create, realize, attach, run, destroy; logging. */

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "private.h"
#include "tran_sock.h"

/*
 * The largest request we take, header included: a REGION_WRITE of the
 * max_data_xfer_size we announce, behind its 16-byte header and 16-byte
 * access struct, is the largest any command needs. A header announcing
 * more is answered EINVAL at once, without waiting for its payload.
 */
#define VFU_MAX_MSG_SIZE (VFU_DEFAULT_MAX_DATA_XFER + 2 * VFU_HDR_SIZE)

/*
 * The poll fd is an epoll set of the listening socket or the connection
 * (the latter only once someone asked for the poll fd: a blocking loop
 * reads the socket directly, and membership costs every message),
 * plus an eventfd that a device thread kicks when it read requests the loop
 * has yet to handle: they are in our buffer, where no poll would see them.
 */
static int
setup_poll(vfu_ctx_t *ctx)
{
    struct epoll_event ev = { .events = EPOLLIN };

    ctx->poll_fd = epoll_create1(EPOLL_CLOEXEC);
    ctx->kick_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (ctx->poll_fd < 0 || ctx->kick_fd < 0) {
        return -1;
    }
    ev.data.fd = ctx->kick_fd;
    if (epoll_ctl(ctx->poll_fd, EPOLL_CTL_ADD, ctx->kick_fd, &ev) < 0) {
        return -1;
    }
    ev.data.fd = ctx->listen_fd;
    return epoll_ctl(ctx->poll_fd, EPOLL_CTL_ADD, ctx->listen_fd, &ev);
}

/* Watch fd instead of old in the poll set. */
static void
poll_swap(vfu_ctx_t *ctx, int old, int fd)
{
    struct epoll_event ev = { .events = EPOLLIN, .data.fd = fd };

    if (old >= 0) {
        epoll_ctl(ctx->poll_fd, EPOLL_CTL_DEL, old, NULL);
    }
    if (fd >= 0) {
        epoll_ctl(ctx->poll_fd, EPOLL_CTL_ADD, fd, &ev);
    }
}

/* Take back a kick: the loop is about to look at its buffer anyway. */
static void
clear_kick(vfu_ctx_t *ctx)
{
    uint64_t n;

    /* A plain load first: the exchange is a locked instruction. */
    if (__atomic_load_n(&ctx->kicked, __ATOMIC_ACQUIRE) &&
        __atomic_exchange_n(&ctx->kicked, false, __ATOMIC_ACQ_REL)) {
        if (read(ctx->kick_fd, &n, sizeof(n)) < 0) {
            /* EAGAIN: nothing to clear */
        }
    }
}

static void
kick_loop(void *arg)
{
    vfu_ctx_t *ctx = arg;
    uint64_t one = 1;

    __atomic_store_n(&ctx->kicked, true, __ATOMIC_RELEASE);
    if (write(ctx->kick_fd, &one, sizeof(one)) < 0) {
        /* EAGAIN: already kicked, the loop will look */
    }
}

/*
 * Mark the context as handling requests on this thread, so that a device
 * callback calling vfu_run_ctx() or vfu_destroy_ctx() is refused rather than
 * re-enter the loop (which would reuse the request and reply buffers in
 * use) or free the context under it.
 */
static void
busy_enter(vfu_ctx_t *ctx)
{
    if (__atomic_add_fetch(&ctx->busy_depth, 1, __ATOMIC_ACQ_REL) == 1) {
        ctx->busy_thread = pthread_self();
    }
}

static void
busy_leave(vfu_ctx_t *ctx)
{
    __atomic_sub_fetch(&ctx->busy_depth, 1, __ATOMIC_ACQ_REL);
}

static bool
busy(vfu_ctx_t *ctx)
{
    return __atomic_load_n(&ctx->busy_depth, __ATOMIC_ACQUIRE) > 0;
}

vfu_ctx_t *
vfu_create_ctx(vfu_trans_t trans, const char *path, int flags, void *pvt,
               vfu_dev_type_t dev_type)
{
    vfu_ctx_t *ctx;
    int saved;

    /* What the library cannot do is ENOTSUP; what the caller got wrong,
     * EINVAL. */
    if (trans != VFU_TRANS_SOCK || dev_type != VFU_DEV_TYPE_PCI) {
        errno = ENOTSUP;
        return NULL;
    }
    if (path == NULL || (flags & ~LIBVFIO_USER_FLAG_ATTACH_NB) != 0) {
        errno = EINVAL;
        return NULL;
    }
    ctx = calloc(1, sizeof(*ctx));
    if (ctx == NULL) {
        return NULL;
    }
    ctx->trans = trans;
    ctx->flags = flags;
    ctx->pvt = pvt;
    ctx->dev_type = dev_type;
    ctx->log_level = LOG_ERR;
    ctx->listen_fd = -1;
    ctx->poll_fd = -1;
    ctx->kick_fd = -1;
    ctx->nr_regions = VFU_PCI_DEV_NUM_REGIONS;
    ctx->max_dma_maps = VFU_DEFAULT_MAX_DMA_MAPS;
    vfu_caps_defaults(&ctx->caps);
    pthread_mutex_init(&ctx->irq_lock, NULL);
    pthread_mutex_init(&ctx->quiesce_lock, NULL);
    pthread_cond_init(&ctx->quiesce_cond, NULL);
    pthread_rwlock_init(&ctx->conn_lock, NULL);
    ctx->regions = calloc(ctx->nr_regions, sizeof(*ctx->regions));
    ctx->sock_path = strdup(path);
    if (ctx->regions == NULL || ctx->sock_path == NULL) {
        goto fail;
    }
    for (uint32_t i = 0; i < ctx->nr_regions; i++) {
        ctx->regions[i].fd = -1;
    }
    /* Like libvfio-user: one ERR and one REQ IRQ unless the device says. */
    if (vfu_setup_device_nr_irqs(ctx, VFU_DEV_ERR_IRQ, 1) < 0 ||
        vfu_setup_device_nr_irqs(ctx, VFU_DEV_REQ_IRQ, 1) < 0) {
        goto fail;
    }
    if (vfu_sock_listen(ctx) < 0 || setup_poll(ctx) < 0) {
        goto fail;
    }
    return ctx;
fail:
    saved = errno;
    vfu_destroy_ctx(ctx);
    errno = saved;
    return NULL;
}

int
vfu_realize_ctx(vfu_ctx_t *ctx)
{
    if (ctx == NULL) {
        errno = EINVAL;
        return -1;
    }
    if (ctx->realized) {
        return 0;
    }
    if (vfu_pci_realize(ctx) < 0) {
        return -1;
    }
    ctx->realized = true;
    return 0;
}

int
vfu_attach_fd(vfu_ctx_t *ctx, int fd)
{
    ctx->conn = calloc(1, sizeof(*ctx->conn));
    if (ctx->conn == NULL || vfu_conn_init(ctx->conn, fd, VFU_MAX_MSG_SIZE,
                                           VFU_DEFAULT_MAX_FDS) < 0) {
        int saved = errno;
        free(ctx->conn);
        ctx->conn = NULL;
        close(fd);
        errno = saved;
        return -1;
    }
    ctx->conn->serve_mode = true;
    ctx->conn->kick = kick_loop;
    ctx->conn->kick_arg = ctx;
    poll_swap(ctx, ctx->listen_fd, ctx->poll_used ? fd : -1);
    ctx->negotiated = false;
    vfu_caps_defaults(&ctx->caps);
    ctx->dma_msg_layout = 0;        /* each client shows its own */
    vfu_log(ctx, LOG_INFO, "client connected");
    return 0;
}

/*
 * Drop a client that failed to negotiate, keeping why: attach reports it.
 */
static int
negotiation_failed(vfu_ctx_t *ctx, int err)
{
    vfu_conn_lost(ctx);
    errno = err;
    return -1;
}

/*
 * Take the client's VERSION and answer it, as libvfio-user's attach does:
 * a client is attached once it is negotiated. Blocking, this waits for the
 * VERSION up to VFU_CALL_TIMEOUT_MS (a client that connects and says
 * nothing is dropped); non-blocking, it fails with EAGAIN until the VERSION
 * is in, keeping the connection, and the next vfu_attach_ctx() goes on.
 * Anything but a well-formed VERSION gets an error reply and the client is
 * dropped: -1 with errno EINVAL.
 */
static int
negotiate(vfu_ctx_t *ctx)
{
    bool block = !(ctx->flags & LIBVFIO_USER_FLAG_ATTACH_NB);
    struct vfu_conn *c = ctx->conn;
    struct vfu_msg *msg = &ctx->msg;
    int rc;

    while ((rc = vfu_conn_take(c, msg)) == 0) {
        if (block && vfu_wait_fd(c->fd, POLLIN, VFU_CALL_TIMEOUT_MS) < 0) {
            vfu_log_errno(ctx, LOG_ERR, errno, "waiting for VERSION");
            return negotiation_failed(ctx, errno == ETIMEDOUT ? ETIMEDOUT
                                                              : EINVAL);
        }
        if (vfu_conn_fill(c, false) < 0) {
            if (!block && (errno == EAGAIN || errno == EWOULDBLOCK)) {
                return -1;          /* EAGAIN: call again when readable */
            }
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
                continue;
            }
            vfu_log_errno(ctx, LOG_ERR, errno, "reading VERSION");
            return negotiation_failed(ctx, EINVAL);
        }
    }
    if (rc < 0) {
        vfu_log_errno(ctx, LOG_ERR, errno, "reading VERSION");
        return negotiation_failed(ctx, EINVAL);
    }
    if (msg->in == NULL || msg->hdr.cmd != VFIO_USER_VERSION) {
        /* An oversized one's payload is not waited for: the client goes. */
        if (msg->in == NULL) {
            vfu_log(ctx, LOG_ERR, "first message of bad size %u",
                    msg->hdr.msg_size);
        } else {
            vfu_log(ctx, LOG_ERR, "%s before VERSION",
                    vfu_cmd_name(msg->hdr.cmd));
        }
        vfu_msg_close_fds(msg);
        if (vfu_conn_reply(c, msg, EINVAL) < 0) {
            /* the client is dropped anyway */
        }
        return negotiation_failed(ctx, EINVAL);
    }
    if (vfu_dispatch(ctx, msg) < 0 || !ctx->negotiated) {
        return negotiation_failed(ctx, EINVAL);
    }
    vfu_conn_unpin(c);
    return 0;
}

int
vfu_attach_ctx(vfu_ctx_t *ctx)
{
    int fd, rc;

    if (ctx == NULL || !ctx->realized) {
        errno = EINVAL;
        return -1;
    }
    if (busy(ctx)) {
        errno = pthread_equal(ctx->busy_thread, pthread_self()) ? EDEADLK : EBUSY;
        return -1;
    }
    if (ctx->conn == NULL) {
        fd = vfu_sock_accept(ctx);
        if (fd < 0 || vfu_attach_fd(ctx, fd) < 0) {
            return -1;
        }
    } else if (ctx->negotiated) {
        errno = EBUSY;
        return -1;
    }
    busy_enter(ctx);
    rc = negotiate(ctx);
    busy_leave(ctx);
    return rc;
}

int
vfu_get_poll_fd(vfu_ctx_t *ctx)
{
    if (ctx == NULL) {
        errno = EINVAL;
        return -1;
    }
    if (!ctx->poll_used) {
        ctx->poll_used = true;
        if (ctx->conn != NULL) {
            poll_swap(ctx, -1, ctx->conn->fd);
        }
    }
    return ctx->poll_fd;
}

int
vfu_get_poll_fds(vfu_ctx_t *ctx, int fds[2])
{
    if (ctx == NULL || fds == NULL) {
        errno = EINVAL;
        return -1;
    }
    fds[0] = ctx->conn != NULL ? ctx->conn->fd : ctx->listen_fd;
    fds[1] = ctx->kick_fd;
    return 0;
}

/*
 * The client is gone: tell the device, drop everything the client gave us
 * (DMA maps, eventfds) and abandon any migration (the device is brought
 * back to RUNNING). Config space and the device's own state are kept.
 * The caller has quiesced the device if it needed to.
 */
void
vfu_conn_lost(vfu_ctx_t *ctx)
{
    if (ctx->conn == NULL) {
        return;
    }
    vfu_log(ctx, LOG_INFO, "client disconnected");
    __atomic_store_n(&ctx->lost_pending, false, __ATOMIC_RELEASE);
    vfu_conn_fail_calls(ctx->conn, ENOTCONN);
    vfu_twin_hangup(ctx);       /* the twin goes with the main socket */
    if (ctx->reset_cb != NULL) {
        ctx->reset_cb(ctx, VFU_RESET_LOST_CONN);
    }
    vfu_dma_release(ctx);
    vfu_irqs_release(ctx);
    vfu_migration_reset(ctx);
    ctx->pending_msg = NULL;
    __atomic_store_n(&ctx->quiesce_pending, false, __ATOMIC_RELEASE);
    ctx->quiesced = false;
    /* Wait for device threads still inside a DMA message exchange. */
    struct vfu_conn *c = ctx->conn;
    pthread_rwlock_wrlock(&ctx->conn_lock);
    ctx->conn = NULL;
    pthread_rwlock_unlock(&ctx->conn_lock);
    poll_swap(ctx, ctx->poll_used ? c->fd : -1, ctx->listen_fd);
    /* A kick for requests of the lost client must not keep polls awake. */
    clear_kick(ctx);
    vfu_conn_fini(c);
    free(c);
    vfu_twin_close(ctx);
    ctx->negotiated = false;
    /* Reply storage sized by this client's requests (up to a 1 MiB read)
     * is not kept for the next. */
    vfu_scratch_release(ctx);
}

/*
 * The connection broke while serving: the teardown unmaps the client's DMA,
 * so a device with a quiesce callback is quiesced first. If it answers
 * EBUSY the teardown waits for vfu_device_quiesced() and this returns -1
 * with errno EBUSY. A device that fails to quiesce otherwise is torn down
 * all the same: the client is gone either way.
 */
int
vfu_conn_lost_quiesce(vfu_ctx_t *ctx)
{
    if (ctx->conn == NULL) {
        return 0;
    }
    if (ctx->quiesce_cb != NULL && !ctx->quiesced) {
        errno = 0;
        if (ctx->quiesce_cb(ctx) < 0) {
            if (errno == EBUSY) {
                __atomic_store_n(&ctx->lost_pending, true, __ATOMIC_RELEASE);
                return -1;
            }
            vfu_log_errno(ctx, LOG_WARNING, errno,
                          "quiesce for a lost client failed");
        }
        ctx->quiesced = true;
    }
    vfu_conn_lost(ctx);
    return 0;
}

/* Why vfu_run_ctx() drops the client. */
enum lost {
    LOST_NONE,
    LOST_STREAM,    /* reading failed: closed, reset or unframeable */
    LOST_REPLY,     /* a request was handled, but its reply could not go */
};

/*
 * Handle every complete message already buffered. Returns 0, or -1 with
 * errno: EBUSY (a request waits for the device to quiesce) or the reason
 * the client must go (*lost).
 */
static int
drain(vfu_ctx_t *ctx, int *count, enum lost *lost)
{
    struct vfu_conn *c = ctx->conn;
    struct vfu_msg *msg = &ctx->msg;
    int rc;

    while ((rc = vfu_conn_take(c, msg)) == 1) {
        if (vfu_dispatch(ctx, msg) < 0) {
            (*count)++;
            *lost = LOST_REPLY;
            return -1;
        }
        (*count)++;
        if (__atomic_load_n(&ctx->quiesce_pending, __ATOMIC_ACQUIRE)) {
            /* msg stays pinned until vfu_device_quiesced() */
            errno = EBUSY;
            return -1;
        }
        vfu_conn_unpin(c);
    }
    if (rc < 0) {
        *lost = LOST_STREAM;
    }
    return rc;
}

static int run(vfu_ctx_t *ctx);

int
vfu_run_ctx(vfu_ctx_t *ctx)
{
    int rc;

    if (ctx == NULL || !ctx->realized) {
        errno = EINVAL;
        return -1;
    }
    /* From a callback of this very loop: it would never return to us. */
    if (busy(ctx)) {
        bool self = pthread_equal(ctx->busy_thread, pthread_self());
        vfu_log(ctx, LOG_ERR, "vfu_run_ctx() %s: refused",
                self ? "inside a device callback" : "while another thread "
                "handles requests");
        errno = self ? EDEADLK : EBUSY;
        return -1;
    }
    busy_enter(ctx);
    rc = run(ctx);
    busy_leave(ctx);
    return rc;
}

static int
run(vfu_ctx_t *ctx)
{
    struct vfu_conn *c;
    enum lost lost = LOST_NONE;
    int count = 0, rc, err = 0;
    bool block;

    if (ctx->conn == NULL) {
        errno = ENOTCONN;
        return -1;
    }
    if (__atomic_load_n(&ctx->quiesce_pending, __ATOMIC_ACQUIRE) ||
        __atomic_load_n(&ctx->lost_pending, __ATOMIC_ACQUIRE)) {
        errno = EBUSY;
        return -1;
    }
    block = !(ctx->flags & LIBVFIO_USER_FLAG_ATTACH_NB);
    c = ctx->conn;
    clear_kick(ctx);
    vfu_conn_loop_enter(c);
    for (;;) {
        rc = drain(ctx, &count, &lost);
        vfu_dma_report_guard(ctx);
        if (rc < 0) {
            err = errno;
            break;
        }
        if (vfu_conn_fill(c, block) < 0) {
            err = errno;
            if (block && (err == EAGAIN || err == EWOULDBLOCK)) {
                continue;   /* the receive timeout; an idle client is fine */
            }
            if (err == EINTR) {
                rc = -1;    /* a signal: the caller decides, the client stays */
                break;
            }
            if (err == EAGAIN || err == EWOULDBLOCK) {
                rc = 0;
            } else {
                rc = -1;
                lost = LOST_STREAM;
            }
            break;
        }
        /*
         * Non-blocking, a read that left room in the buffer emptied the
         * socket: handle what came and let the caller's poll tell us about
         * more, rather than spend a read on learning there is none.
         */
        if (!block && c->rx_tail < c->rx_cap) {
            rc = drain(ctx, &count, &lost);
            err = errno;
            break;
        }
    }
    vfu_conn_loop_leave(c);
    if (lost != LOST_NONE) {
        if (err != ENOTCONN) {
            vfu_log_errno(ctx, LOG_ERR, err, "dropping client");
        }
        err = vfu_conn_lost_quiesce(ctx) < 0 ? EBUSY : ENOTCONN;
        /*
         * Non-blocking, a request was handled before its reply failed: this
         * call reports it, as libvfio-user does, and the next one the loss
         * (the client is already dropped).
         */
        if (lost == LOST_REPLY && err == ENOTCONN && !block && count > 0) {
            rc = 0;
        }
    }
    if (rc < 0) {
        errno = err;
        return -1;
    }
    return count;
}

/* How long vfu_destroy_ctx() waits for a device to finish quiescing. */
#define VFU_DESTROY_QUIESCE_MS VFU_CALL_TIMEOUT_MS

/* Is a quiesce still under way: pending, or being finished right now by
 * vfu_device_quiesced() on another thread? quiesce_lock held. */
static bool
quiescing(vfu_ctx_t *ctx)
{
    return __atomic_load_n(&ctx->quiesce_pending, __ATOMIC_ACQUIRE) ||
           __atomic_load_n(&ctx->lost_pending, __ATOMIC_ACQUIRE) ||
           (busy(ctx) && !pthread_equal(ctx->busy_thread, pthread_self()));
}

/*
 * Destroy does not quiesce the device: like libvfio-user, it expects the
 * caller to have stopped the device's DMA (its suite checks that the
 * quiesce callback is not called). But a quiesce already under way (a
 * parked request, a lost client: vfu_run_ctx() failed with EBUSY) ends in
 * vfu_device_quiesced() from the device, which must not find the context
 * freed, and until then the device may still be doing DMA: destroy waits
 * for it, bounded by VFU_DESTROY_QUIESCE_MS so that a device that never
 * answers cannot hang it. Returns false if another thread is still inside
 * the context after that (freeing it would pull it from under that
 * thread); a quiesce merely never reported is released all the same.
 */
static bool
destroy_wait_quiesce(vfu_ctx_t *ctx)
{
    struct timespec deadline;
    int rc = 0;

    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += VFU_DESTROY_QUIESCE_MS / 1000;
    pthread_mutex_lock(&ctx->quiesce_lock);
    while (quiescing(ctx) && rc != ETIMEDOUT) {
        rc = pthread_cond_timedwait(&ctx->quiesce_cond, &ctx->quiesce_lock,
                                    &deadline);
    }
    bool inside = busy(ctx);
    pthread_mutex_unlock(&ctx->quiesce_lock);
    if (rc == ETIMEDOUT) {
        vfu_log(ctx, LOG_ERR, "destroy: the pending quiesce did not finish "
                "in %u ms%s", VFU_DESTROY_QUIESCE_MS,
                inside ? "" : "; releasing anyway");
    }
    return !inside;
}

void
vfu_destroy_ctx(vfu_ctx_t *ctx)
{
    if (ctx == NULL) {
        return;
    }
    if ((busy(ctx) && pthread_equal(ctx->busy_thread, pthread_self())) ||
        !destroy_wait_quiesce(ctx)) {
        /* The loop that called the callback still uses the context. */
        vfu_log(ctx, LOG_ERR, "vfu_destroy_ctx() while requests are being "
                "handled (from a device callback?): refused, the context "
                "stays");
        errno = EBUSY;
        return;
    }
    if (ctx->conn != NULL) {
        vfu_conn_lost(ctx);
    }
    vfu_sock_close(ctx);
    if (ctx->poll_fd >= 0) {
        close(ctx->poll_fd);
    }
    if (ctx->kick_fd >= 0) {
        close(ctx->kick_fd);
    }
    vfu_migration_free(ctx);
    vfu_dma_free(ctx);
    vfu_pci_free(ctx);
    vfu_irqs_free(ctx);
    vfu_regions_free(ctx);
    free(ctx->scratch);
    pthread_mutex_destroy(&ctx->irq_lock);
    pthread_mutex_destroy(&ctx->quiesce_lock);
    pthread_cond_destroy(&ctx->quiesce_cond);
    pthread_rwlock_destroy(&ctx->conn_lock);
    free(ctx->sock_path);
    free(ctx);
}

void *
vfu_get_private(vfu_ctx_t *ctx)
{
    return ctx->pvt;
}

int
vfu_setup_log(vfu_ctx_t *ctx, vfu_log_fn_t *log, int level)
{
    if (ctx == NULL || level < LOG_EMERG || level > LOG_DEBUG) {
        errno = EINVAL;
        return -1;
    }
    ctx->log_fn = log;
    ctx->log_level = level;
    return 0;
}

bool
vfu_log_enabled(const vfu_ctx_t *ctx, int level)
{
    return ctx != NULL && ctx->log_fn != NULL && level <= ctx->log_level;
}

/* Logging must not change errno: callers log on their way out of an error. */
static void __attribute__((format(printf, 4, 0)))
vlog(vfu_ctx_t *ctx, int level, int err, const char *fmt, va_list ap)
{
    char buf[1024];
    int saved = errno;
    int n;

    if (!vfu_log_enabled(ctx, level)) {
        return;
    }
    n = vsnprintf(buf, sizeof(buf), fmt, ap);
    if (err != 0 && n >= 0 && (size_t)n < sizeof(buf)) {
        snprintf(buf + n, sizeof(buf) - n, ": %s", strerror(err));
    }
    ctx->log_fn(ctx, level, buf);
    errno = saved;
}

void
vfu_log(vfu_ctx_t *ctx, int level, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vlog(ctx, level, 0, fmt, ap);
    va_end(ap);
}

void
vfu_log_errno(vfu_ctx_t *ctx, int level, int err, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vlog(ctx, level, err, fmt, ap);
    va_end(ap);
}

int
vfu_setup_device_reset_cb(vfu_ctx_t *ctx, vfu_reset_cb_t *reset)
{
    if (ctx == NULL) {
        errno = EINVAL;
        return -1;
    }
    ctx->reset_cb = reset;
    return 0;
}

void
vfu_setup_device_quiesce_cb(vfu_ctx_t *ctx, vfu_device_quiesce_cb_t *quiesce_cb)
{
    if (ctx != NULL) {
        ctx->quiesce_cb = quiesce_cb;
    }
}

/* A vfu_device_quiesced() call is over: a destroy may be waiting for it. */
static void
quiesced_done(vfu_ctx_t *ctx)
{
    pthread_mutex_lock(&ctx->quiesce_lock);
    pthread_cond_broadcast(&ctx->quiesce_cond);
    pthread_mutex_unlock(&ctx->quiesce_lock);
}

int
vfu_device_quiesced(vfu_ctx_t *ctx, int quiesce_errno)
{
    if (ctx == NULL || ctx->quiesce_cb == NULL) {
        errno = EINVAL;
        return -1;
    }
    if (!__atomic_load_n(&ctx->quiesce_pending, __ATOMIC_ACQUIRE) &&
        !__atomic_load_n(&ctx->lost_pending, __ATOMIC_ACQUIRE)) {
        errno = EINVAL;
        return -1;
    }
    busy_enter(ctx);
    if (__atomic_load_n(&ctx->lost_pending, __ATOMIC_ACQUIRE)) {
        /* Quiesced or not, the client is gone: finish dropping it. */
        if (quiesce_errno != 0) {
            vfu_log_errno(ctx, LOG_WARNING, quiesce_errno,
                          "quiesce for a lost client failed");
        }
        ctx->quiesced = true;
        vfu_conn_lost(ctx);
        busy_leave(ctx);
        quiesced_done(ctx);
        return 0;
    }
    int rc = vfu_dispatch_resume(ctx, quiesce_errno);
    /*
     * Requests that came in behind the parked one wait in our buffer,
     * where no poll sees them: wake the loop's poll fd for them.
     */
    if (ctx->conn != NULL && ctx->conn->rx_tail > ctx->conn->rx_head) {
        kick_loop(ctx);
    }
    busy_leave(ctx);
    quiesced_done(ctx);
    return rc;
}
