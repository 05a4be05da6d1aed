/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 the vfu authors. */

/*
 * Calls over a connection: a request sent from any thread and its reply
 * handed back, whoever reads it. The thread that gets the read side reads
 * for everyone: replies go to their callers (its own without call_lock:
 * only the reader completes calls), requests from the peer stay queued
 * for the loop or go to on_request. Framing is wire.c's.
 */

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "wire.h"
#include "wire_internal.h"

static struct vfu_call *
find_call(struct vfu_conn *c, uint16_t msg_id)
{
    for (struct vfu_call *k = c->calls; k != NULL; k = k->next) {
        if (k->msg_id == msg_id && !k->done) {
            return k;
        }
    }
    return NULL;
}

/* Copy size bytes into the pieces of iov (they hold at least that). */
static void
scatter(const struct iovec *iov, int iovcnt, const void *data, size_t size)
{
    const char *p = data;

    for (int i = 0; i < iovcnt && size > 0; i++) {
        size_t n = iov[i].iov_len < size ? iov[i].iov_len : size;
        memcpy(iov[i].iov_base, p, n);
        p += n;
        size -= n;
    }
}

/* Store a reply's outcome in k: its errno, or its payload. */
static void
complete(struct vfu_call *k, const struct vfio_user_header *h,
         const void *payload, size_t size)
{
    if (h->flags & VFIO_USER_F_ERROR) {
        k->error = h->error_no != 0 ? (int)h->error_no : EIO;
    } else if (size > k->reply_cap) {
        k->error = EMSGSIZE;
    } else {
        scatter(k->reply, k->reply_iovcnt, payload, size);
        k->reply_size = size;
    }
    k->done = true;
    k->replied = true;
}

/* The late reply to a call we gave up on? Then it is forgotten too.
 * call_lock held. */
static bool
take_abandoned(struct vfu_conn *c, uint16_t msg_id)
{
    for (uint32_t i = 0; i < VFU_ABANDONED_CALLS; i++) {
        if (c->abandoned[i] == (uint32_t)msg_id + 1) {
            c->abandoned[i] = 0;
            return true;
        }
    }
    return false;
}

/*
 * Hand a reply to the call waiting for it, if any. A call is completed
 * only by the thread holding the read side (here, or its owner reading its
 * own reply), so call_lock is only for the list and the wake-up.
 */
static bool
deliver(struct vfu_conn *c, const struct vfio_user_header *h,
        const void *payload, size_t size)
{
    struct vfu_call *k;
    bool late = false;

    pthread_mutex_lock(&c->call_lock);
    k = find_call(c, h->msg_id);
    if (k != NULL) {
        complete(k, h, payload, size);
        if (c->nr_waiting > 0) {
            pthread_cond_broadcast(&c->call_cond);
        }
    } else {
        late = take_abandoned(c, h->msg_id);
    }
    pthread_mutex_unlock(&c->call_lock);
    return k != NULL || late;
}

bool
vfu_conn_deliver_reply(struct vfu_conn *c, struct vfu_msg *m)
{
    return deliver(c, &m->hdr, m->in, m->in_size);
}

void
vfu_conn_fail_calls(struct vfu_conn *c, int err)
{
    pthread_mutex_lock(&c->call_lock);
    c->closing = true;
    c->close_err = err;
    pthread_cond_broadcast(&c->call_cond);
    pthread_mutex_unlock(&c->call_lock);
}

/*
 * Look through buffered messages beyond the one in use: hand replies to
 * their callers and requests to on_request; leave other requests queued.
 * *stop is where the first message not handled here starts (SIZE_MAX while
 * an oversized message is being dropped).
 */
static int
scan(struct vfu_conn *c, struct vfu_call *mine,
     vfu_conn_request_fn_t *on_request, void *opaque, size_t *stop)
{
    size_t p = c->rx_head;

    *stop = SIZE_MAX;
    if (c->skip > 0) {
        return 0;
    }
    while (c->rx_tail - p >= VFU_HDR_SIZE) {
        struct vfio_user_header h;
        memcpy(&h, c->rx + p, VFU_HDR_SIZE);
        if (h.msg_size < VFU_HDR_SIZE) {
            if (!c->serve_mode) {
                errno = EPROTO;
                return -1;
            }
            /* framed as the bare header, left for the loop to answer */
            p += VFU_HDR_SIZE;
            continue;
        }
        if (h.msg_size > c->max_msg_size || c->rx_tail - p < h.msg_size) {
            break;  /* the loop deals with it, or take_direct */
        }
        if ((h.flags & VFIO_USER_F_TYPE_MASK) == VFIO_USER_F_TYPE_REPLY) {
            const void *payload = c->rx + p + VFU_HDR_SIZE;
            if (h.msg_id == mine->msg_id && !mine->done) {
                complete(mine, &h, payload, h.msg_size - VFU_HDR_SIZE);
            } else {
                deliver(c, &h, payload, h.msg_size - VFU_HDR_SIZE);
            }
            p = vfu_conn_consume(c, p, h.msg_size);
        } else if (on_request != NULL) {
            struct vfu_msg m;
            uint64_t start = c->rx_pos + p;
            vfu_msg_reset(&m);
            m.hdr = h;
            vfu_conn_claim_fds(c, start, start + h.msg_size, &m);
            m.in = c->rx + p + VFU_HDR_SIZE;
            m.in_size = h.msg_size - VFU_HDR_SIZE;
            if (((uintptr_t)m.in & 7) != 0) {
                /* c->aligned may hold the loop's message: use the tail */
                m.in = NULL;
            }
            char *copy = NULL;
            if (m.in == NULL) {
                copy = malloc(m.in_size ? m.in_size : 1);
                if (copy == NULL) {
                    return -1;
                }
                memcpy(copy, c->rx + p + VFU_HDR_SIZE, m.in_size);
                m.in = copy;
            }
            int rc = on_request(opaque, &m);
            free(copy);
            vfu_msg_close_fds(&m);
            vfu_conn_excise(c, p, h.msg_size);
            if (rc < 0) {
                return -1;
            }
        } else {
            p += h.msg_size;
        }
    }
    *stop = p;
    return 0;
}

/*
 * If the message at rx offset p is mine's reply, take it: the buffered part
 * is copied to the caller's pieces and the rest read straight into them.
 * Returns 1 if taken, 0 if not, -1 with errno if the stream broke.
 */
static int
take_direct(struct vfu_conn *c, struct vfu_call *mine, size_t p)
{
    struct vfio_user_header h;
    size_t have, len;

    if (p == SIZE_MAX || c->rx_tail - p < VFU_HDR_SIZE) {
        return 0;
    }
    memcpy(&h, c->rx + p, VFU_HDR_SIZE);
    if ((h.flags & VFIO_USER_F_TYPE_MASK) != VFIO_USER_F_TYPE_REPLY ||
        (h.flags & VFIO_USER_F_ERROR) || h.msg_id != mine->msg_id ||
        h.msg_size < VFU_HDR_SIZE ||
        h.msg_size - VFU_HDR_SIZE > mine->reply_cap) {
        return 0;
    }
    len = h.msg_size - VFU_HDR_SIZE;
    have = c->rx_tail - p - VFU_HDR_SIZE;
    if (have >= len) {
        /* Complete but above max_msg_size: it fits the caller, though. */
        scatter(mine->reply, mine->reply_iovcnt, c->rx + p + VFU_HDR_SIZE, len);
        vfu_conn_excise(c, p, h.msg_size);
    } else {
        scatter(mine->reply, mine->reply_iovcnt, c->rx + p + VFU_HDR_SIZE, have);
        vfu_conn_excise(c, p, c->rx_tail - p);
        if (vfu_conn_recv_into(c, mine->reply, mine->reply_iovcnt, have,
                               len - have) < 0) {
            return -1;
        }
    }
    mine->done = true;
    mine->replied = true;
    mine->reply_size = len;
    return 1;
}

/* Does the message at rx offset p ask for a reply? *size: its size. */
static bool
wants_reply(const struct vfu_conn *c, size_t p, size_t *size)
{
    struct vfio_user_header h;

    memcpy(&h, c->rx + p, VFU_HDR_SIZE);
    *size = h.msg_size < VFU_HDR_SIZE ? VFU_HDR_SIZE : h.msg_size;
    return (h.flags & VFIO_USER_F_TYPE_MASK) == VFIO_USER_F_TYPE_COMMAND &&
           !(h.flags & VFIO_USER_F_NO_REPLY);
}

/*
 * Is the peer waiting for the loop, which runs on this very thread: does
 * the request being handled, or one queued behind it (up to stop), want a
 * reply?
 *
 * A server's loop calls the client (message DMA) from inside a device
 * callback, so nothing queued gets answered until the call returns. QEMU
 * 10.2 serves our requests on its main loop only, and a vCPU waiting for
 * a region access reply holds the lock that main loop needs: it answers
 * nothing until its own request times out (5 s, after which its stream
 * breaks on our late reply). A client that serves us while it waits is
 * unaffected: it answers well within VFU_PEER_WAIT_MS.
 */
static bool
peer_awaits_reply(const struct vfu_conn *c, size_t stop)
{
    size_t p = c->rx_head, size;

    /* The loop's thread, inside vfu_run_ctx() or not (a timer of the
     * program's own loop): nobody else answers while it waits. */
    if (!c->serve_mode || stop == SIZE_MAX ||
        !pthread_equal(__atomic_load_n(&c->loop_thread, __ATOMIC_RELAXED),
                       pthread_self())) {
        return false;
    }
    if (c->pinned != SIZE_MAX && wants_reply(c, c->pinned, &size)) {
        return true;
    }
    for (; p + VFU_HDR_SIZE <= stop; p += size) {
        if (wants_reply(c, p, &size)) {
            return true;
        }
    }
    return false;
}

/*
 * One blocking read (bounded by the call timeout), then hand out what came.
 * stop is where scan() left off.
 */
static int
read_for_replies(struct vfu_conn *c, struct vfu_call *mine,
                 vfu_conn_request_fn_t *on_request, void *opaque, size_t stop)
{
    size_t limit = 0;
    ssize_t n;
    int rc;

    rc = take_direct(c, mine, stop);
    if (rc != 0) {
        return rc < 0 ? -1 : 0;
    }
    /* Where a big reply may start, read no further than its header. */
    if (mine->reply_cap >= VFU_DIRECT_MIN && stop != SIZE_MAX &&
        c->rx_tail - stop < VFU_HDR_SIZE) {
        limit = VFU_HDR_SIZE - (c->rx_tail - stop);
    }
    /*
     * A peer that never answers must not hang the call: the call as a
     * whole gets VFU_CALL_TIMEOUT_MS, so a peer that keeps sending
     * something else (or a byte now and then) cannot stretch it either.
     */
    if (!c->guarded) {
        uint64_t now = vfu_coarse_ms(), age = now - mine->started_ms;
        uint64_t left = age < VFU_CALL_TIMEOUT_MS ? VFU_CALL_TIMEOUT_MS - age : 0;

        /* Each waiting for the other: give up first, after a grace. */
        if (mine->peer_waits_ms == 0 && peer_awaits_reply(c, stop)) {
            mine->peer_waits_ms = now != 0 ? now : 1;
        }
        if (mine->peer_waits_ms != 0) {
            uint64_t waited = now - mine->peer_waits_ms;
            if (waited >= VFU_PEER_WAIT_MS) {
                errno = EBUSY;
                return -1;
            }
            left = left < VFU_PEER_WAIT_MS - waited ? left
                                                    : VFU_PEER_WAIT_MS - waited;
        }
        if (left == 0) {
            errno = ETIMEDOUT;
            return -1;
        }
        if (vfu_wait_fd(c->fd, POLLIN, (int)left) < 0) {
            if (errno == ETIMEDOUT && mine->peer_waits_ms != 0) {
                errno = EBUSY;
            }
            return -1;
        }
    }
    /* Only a server's loop gets fds: replies to calls carry none. */
    do {
        n = vfu_conn_read(c, true, limit, c->serve_mode);
    } while (n < 0 && errno == EINTR);
    if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            errno = ETIMEDOUT;
        }
        return -1;
    }
    rc = scan(c, mine, on_request, opaque, &stop);
    if (rc == 0 && !mine->done && take_direct(c, mine, stop) < 0) {
        rc = -1;
    }
    return rc;
}

static void
unlink_call(struct vfu_conn *c, struct vfu_call *call)
{
    for (struct vfu_call **pp = &c->calls; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == call) {
            *pp = call->next;
            __atomic_sub_fetch(&c->nr_calls, 1, __ATOMIC_SEQ_CST);
            return;
        }
    }
}

int
vfu_conn_call(struct vfu_conn *c, uint16_t cmd,
              const struct iovec *iov, int iovcnt,
              const int *fds, uint32_t nr_fds,
              void *reply, size_t *reply_size,
              vfu_conn_request_fn_t *on_request, void *opaque)
{
    struct iovec r = {
        .iov_base = reply,
        .iov_len = reply_size != NULL ? *reply_size : 0,
    };

    return vfu_conn_callv(c, cmd, iov, iovcnt, fds, nr_fds, &r, 1,
                          reply_size, on_request, opaque);
}

/*
 * One turn at the read side: what is buffered, then one read. Returns with
 * call_lock held, having woken the waiters (one may take over reading).
 */
static void
read_turn(struct vfu_conn *c, struct vfu_call *call,
          vfu_conn_request_fn_t *on_request, void *opaque)
{
    size_t stop;
    int rc = scan(c, call, on_request, opaque, &stop);

    if (rc == 0 && !call->done) {
        rc = read_for_replies(c, call, on_request, opaque, stop);
    }
    int err = errno;
    bool left = c->rx_tail > c->rx_head;
    pthread_mutex_unlock(&c->rx_lock);
    /* Requests we read for the loop must not wait for a poll wake-up. */
    if (left && c->serve_mode && c->kick != NULL) {
        c->kick(c->kick_arg);
    }
    pthread_mutex_lock(&c->call_lock);
    if (rc < 0 && !call->done) {
        call->done = true;
        call->error = err == ENOTCONN && c->timed_out ? ETIMEDOUT : err;
    }
    if (c->nr_waiting > 0) {
        pthread_cond_broadcast(&c->call_cond);
    }
}

/* May this thread read replies itself, rather than wait for the loop? */
static bool
may_read(struct vfu_conn *c)
{
    return !c->serve_mode ||
           !__atomic_load_n(&c->loop_reading, __ATOMIC_SEQ_CST) ||
           pthread_equal(__atomic_load_n(&c->loop_thread, __ATOMIC_RELAXED),
                         pthread_self());
}

void
vfu_conn_loop_enter(struct vfu_conn *c)
{
    pthread_mutex_lock(&c->rx_lock);
    /* Atomic: callers glance at it without a lock (see may_read()). */
    __atomic_store_n(&c->loop_thread, pthread_self(), __ATOMIC_RELAXED);
    __atomic_store_n(&c->loop_reading, true, __ATOMIC_RELEASE);
}

void
vfu_conn_loop_leave(struct vfu_conn *c)
{
    /* seq_cst with the nr_calls load below, as callv's increment is with
     * its loop_reading load: one of the two sides sees the other. */
    __atomic_store_n(&c->loop_reading, false, __ATOMIC_SEQ_CST);
    pthread_mutex_unlock(&c->rx_lock);
    /*
     * Callers waiting for the loop to hand them a reply must now read it
     * themselves: the loop may not read again before they time out (a
     * quiesce it waits for may depend on them).
     */
    if (__atomic_load_n(&c->nr_calls, __ATOMIC_SEQ_CST) > 0) {
        pthread_mutex_lock(&c->call_lock);
        pthread_cond_broadcast(&c->call_cond);
        pthread_mutex_unlock(&c->call_lock);
    }
}

bool
vfu_conn_loop_step_out(struct vfu_conn *c)
{
    if (!c->serve_mode || !__atomic_load_n(&c->loop_reading, __ATOMIC_SEQ_CST) ||
        !pthread_equal(__atomic_load_n(&c->loop_thread, __ATOMIC_RELAXED),
                       pthread_self())) {
        return false;
    }
    vfu_conn_loop_leave(c);
    return true;
}

void
vfu_conn_loop_step_in(struct vfu_conn *c, bool out)
{
    if (out) {
        vfu_conn_loop_enter(c);
    }
}

int
vfu_conn_callv(struct vfu_conn *c, uint16_t cmd,
               const struct iovec *iov, int iovcnt,
               const int *fds, uint32_t nr_fds,
               const struct iovec *reply_iov, int reply_iovcnt,
               size_t *reply_size,
               vfu_conn_request_fn_t *on_request, void *opaque)
{
    struct vfu_call call = {
        .reply = reply_iov,
        .reply_iovcnt = reply_iovcnt,
    };
    struct vfio_user_header h = { .cmd = cmd, .flags = VFIO_USER_F_TYPE_COMMAND };

    if (reply_iovcnt < 0 || reply_iovcnt > VFU_MSG_MAX_IOV) {
        errno = EINVAL;
        return -1;
    }
    for (int i = 0; i < reply_iovcnt; i++) {
        call.reply_cap += reply_iov[i].iov_len;
    }
    pthread_mutex_lock(&c->call_lock);
    if (c->closing) {
        pthread_mutex_unlock(&c->call_lock);
        errno = ENOTCONN;
        return -1;
    }
    call.msg_id = c->next_msg_id++;
    call.started_ms = vfu_coarse_ms();
    call.next = c->calls;
    c->calls = &call;
    __atomic_add_fetch(&c->nr_calls, 1, __ATOMIC_SEQ_CST);
    pthread_mutex_unlock(&c->call_lock);

    h.msg_id = call.msg_id;
    if (vfu_conn_send(c, &h, iov, iovcnt, fds, nr_fds) < 0) {
        int err = errno;
        pthread_mutex_lock(&c->call_lock);
        unlink_call(c, &call);
        pthread_mutex_unlock(&c->call_lock);
        errno = err;
        return -1;
    }

    /*
     * Whoever gets the read side reads: a client, the loop's own thread (a
     * callback doing DMA), or any thread while no loop is reading. Others
     * wait for the reader to hand them their reply. The usual case, nobody
     * else reading, takes the read side straight away.
     */
    if (may_read(c) && pthread_mutex_trylock(&c->rx_lock) == 0) {
        read_turn(c, &call, on_request, opaque);
    } else {
        pthread_mutex_lock(&c->call_lock);
    }
    while (!call.done) {
        bool self_read = may_read(c);

        if (c->closing) {
            call.done = true;
            call.error = c->close_err;
            break;
        }
        if (self_read && pthread_mutex_trylock(&c->rx_lock) == 0) {
            pthread_mutex_unlock(&c->call_lock);
            read_turn(c, &call, on_request, opaque);
            continue;
        }
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += VFU_CALL_TIMEOUT_MS / 1000;
        c->nr_waiting++;
        int w = pthread_cond_timedwait(&c->call_cond, &c->call_lock, &ts);
        c->nr_waiting--;
        if (w == ETIMEDOUT && !call.done &&
            (!self_read ||
             vfu_coarse_ms() - call.started_ms >= VFU_CALL_TIMEOUT_MS)) {
            call.done = true;
            call.error = ETIMEDOUT;
        }
    }
    unlink_call(c, &call);
    if (!call.replied) {
        c->abandoned[c->nr_abandoned++ % VFU_ABANDONED_CALLS] =
            (uint32_t)call.msg_id + 1;
    }
    pthread_mutex_unlock(&c->call_lock);

    if (call.error != 0) {
        errno = call.error;
        return -1;
    }
    if (reply_size != NULL) {
        *reply_size = call.reply_size;
    }
    return 0;
}
