/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 the vfu authors. */

/* Message framing shared by server and client; see wire.h for the model. */

#include <assert.h>
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "wire.h"

_Static_assert(sizeof(struct vfio_user_header) == 16, "wire header is 16 bytes");

/* How long a vfu_conn_call waits for the peer before giving up. */
/* The socket buffer size we ask for (the kernel doubles it). */
#define VFU_SOCK_BUF_MAX (4 << 20)
/*
 * A call whose reply may be this big reads the reply header alone first,
 * so that the payload can go straight to the caller: one more system call
 * is cheaper than copying this much.
 */
#define VFU_DIRECT_MIN (32u << 10)

int
vfu_conn_init(struct vfu_conn *c, int fd, size_t max_msg_size, uint32_t max_fds)
{
    pthread_mutexattr_t attr;

    memset(c, 0, sizeof(*c));
    c->fd = fd;
    c->max_msg_size = max_msg_size;
    c->max_fds = max_fds < VFU_MAX_RX_FDS ? max_fds : VFU_MAX_RX_FDS;
    c->pinned = SIZE_MAX;
    /*
     * Room for one whole message behind a pinned one, so that a callback
     * waiting for a DMA reply can always read it. Untouched pages cost
     * nothing.
     */
    c->rx_cap = 2 * max_msg_size + 65536;
    c->rx = malloc(c->rx_cap);
    c->aligned = malloc(max_msg_size);
    if (c->rx == NULL || c->aligned == NULL) {
        free(c->rx);
        free(c->aligned);
        c->rx = c->aligned = NULL;
        return -1;
    }
    /*
     * The default ~200 KiB send buffer splits a 1 MiB message into a dozen
     * sleeps and wake-ups each way. Ask for room for a whole message; the
     * kernel caps it at net.core.wmem_max/rmem_max, and memory is only
     * charged for bytes in flight.
     */
    int sb = max_msg_size > VFU_SOCK_BUF_MAX ? VFU_SOCK_BUF_MAX
                                             : (int)max_msg_size;
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sb, sizeof(sb));
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &sb, sizeof(sb));
    pthread_mutexattr_init(&attr);
    pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_RECURSIVE);
    pthread_mutex_init(&c->rx_lock, &attr);
    pthread_mutexattr_destroy(&attr);
    pthread_mutex_init(&c->tx_lock, NULL);
    pthread_mutex_init(&c->call_lock, NULL);
    pthread_cond_init(&c->call_cond, NULL);
    return 0;
}

static void
close_batch(struct vfu_fd_batch *b)
{
    for (uint32_t i = 0; i < b->nr; i++) {
        close(b->fds[i]);
    }
    b->nr = 0;
}

static void
remove_batch(struct vfu_conn *c, uint32_t i)
{
    memmove(&c->batches[i], &c->batches[i + 1],
            (c->nr_batches - i - 1) * sizeof(c->batches[0]));
    c->nr_batches--;
}

void
vfu_conn_fini(struct vfu_conn *c)
{
    if (c->rx == NULL) {
        return;
    }
    vfu_conn_watchdog_stop(c);
    vfu_conn_fail_calls(c, ENOTCONN);
    for (uint32_t i = 0; i < c->nr_batches; i++) {
        close_batch(&c->batches[i]);
    }
    c->nr_batches = 0;
    if (c->fd >= 0) {
        close(c->fd);
        c->fd = -1;
    }
    free(c->rx);
    free(c->aligned);
    c->rx = c->aligned = NULL;
    pthread_mutex_destroy(&c->rx_lock);
    pthread_mutex_destroy(&c->tx_lock);
    pthread_mutex_destroy(&c->call_lock);
    pthread_cond_destroy(&c->call_cond);
}

void
vfu_conn_unpin(struct vfu_conn *c)
{
    c->pinned = SIZE_MAX;
}

/* Make room at the tail unless a message in use pins the buffer. */
static void
compact(struct vfu_conn *c)
{
    if (c->pinned != SIZE_MAX) {
        return;
    }
    if (c->rx_head == c->rx_tail) {
        c->rx_pos += c->rx_head;
        c->rx_head = c->rx_tail = 0;
    } else if (c->rx_head > 0 && c->rx_cap - c->rx_tail < c->max_msg_size) {
        memmove(c->rx, c->rx + c->rx_head, c->rx_tail - c->rx_head);
        c->rx_pos += c->rx_head;
        c->rx_tail -= c->rx_head;
        c->rx_head = 0;
    }
}

static void
stash_fds(struct vfu_conn *c, const struct msghdr *mh, uint64_t pos)
{
    struct vfu_fd_batch *b = NULL;

    for (struct cmsghdr *cm = CMSG_FIRSTHDR(mh); cm != NULL;
         cm = CMSG_NXTHDR((struct msghdr *)mh, cm)) {
        if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS) {
            continue;
        }
        size_t n = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        int *fds = (int *)CMSG_DATA(cm);
        if (b == NULL && c->nr_batches < VFU_FD_BATCHES) {
            b = &c->batches[c->nr_batches++];
            memset(b, 0, sizeof(*b));
            b->pos = pos;
        }
        for (size_t i = 0; i < n; i++) {
            int fd;
            memcpy(&fd, &fds[i], sizeof(fd));
            if (b != NULL && b->nr < VFU_MAX_RX_FDS) {
                b->fds[b->nr++] = fd;
            } else {
                close(fd);
                if (b != NULL) {
                    b->truncated = true;
                }
            }
        }
    }
    if (b != NULL && (mh->msg_flags & MSG_CTRUNC)) {
        b->truncated = true;
    }
}

/*
 * vfu_conn_fill, reading at most limit bytes if limit is not 0. Without
 * fds, a plain read(): the kernel then closes any fds that came along.
 */
static ssize_t
fill(struct vfu_conn *c, bool block, size_t limit, bool fds)
{
    char cbuf[CMSG_SPACE(sizeof(int) * VFU_MAX_RX_FDS)];
    struct iovec iov;
    struct msghdr mh;
    ssize_t n;

    if (c->eof) {
        errno = ENOTCONN;
        return -1;
    }
    compact(c);
    if (c->rx_tail == c->rx_cap) {
        errno = ENOBUFS;
        return -1;
    }
    iov.iov_base = c->rx + c->rx_tail;
    iov.iov_len = c->rx_cap - c->rx_tail;
    if (limit != 0 && iov.iov_len > limit) {
        iov.iov_len = limit;
    }
    memset(&mh, 0, sizeof(mh));
    mh.msg_iov = &iov;
    mh.msg_iovlen = 1;
    mh.msg_control = cbuf;
    mh.msg_controllen = sizeof(cbuf);
    /* A signal during a blocking wait is the caller's to see (EINTR). */
    do {
        if (fds) {
            n = recvmsg(c->fd, &mh, MSG_CMSG_CLOEXEC | (block ? 0 : MSG_DONTWAIT));
        } else {
            n = recv(c->fd, iov.iov_base, iov.iov_len, block ? 0 : MSG_DONTWAIT);
        }
    } while (n < 0 && errno == EINTR && !block);
    if (n < 0) {
        if (errno == ECONNRESET) {
            c->eof = true;
            errno = ENOTCONN;
        }
        return -1;
    }
    if (fds && mh.msg_controllen > 0) {
        stash_fds(c, &mh, c->rx_pos + c->rx_tail + (n > 0 ? n - 1 : 0));
    }
    if (n == 0) {
        c->eof = true;
        errno = ENOTCONN;
        return -1;
    }
    c->rx_tail += n;
    return n;
}

ssize_t
vfu_conn_fill(struct vfu_conn *c, bool block)
{
    return fill(c, block, 0, true);
}

/* Move the fds that arrived within stream range [start, end) into msg; any
 * batch before start is stale and closed. */
static void
claim_fds(struct vfu_conn *c, uint64_t start, uint64_t end, struct vfu_msg *m)
{
    uint32_t i = 0;

    while (i < c->nr_batches) {
        struct vfu_fd_batch *b = &c->batches[i];
        if (b->pos >= end) {
            i++;
            continue;
        }
        if (b->pos >= start && m != NULL) {
            m->fds_truncated |= b->truncated;
            for (uint32_t k = 0; k < b->nr; k++) {
                if (m->nr_fds < c->max_fds) {
                    m->fds[m->nr_fds++] = b->fds[k];
                } else {
                    close(b->fds[k]);
                    m->fds_truncated = true;
                }
            }
            b->nr = 0;
        }
        close_batch(b);
        remove_batch(c, i);
    }
}

static void
msg_reset(struct vfu_msg *m)
{
    m->in = NULL;
    m->in_size = 0;
    m->nr_fds = 0;
    m->fds_truncated = false;
    m->out_iovcnt = 0;
    m->out_size = 0;
    m->out_fds = NULL;
    m->nr_out_fds = 0;
}

int
vfu_conn_take(struct vfu_conn *c, struct vfu_msg *m)
{
    size_t avail;

    if (c->skip > 0) {
        size_t d = c->rx_tail - c->rx_head;
        if (d > c->skip) {
            d = c->skip;
        }
        claim_fds(c, 0, c->rx_pos + c->rx_head + d, NULL);
        c->rx_head += d;
        c->skip -= d;
        if (c->skip > 0) {
            return 0;
        }
    }
    avail = c->rx_tail - c->rx_head;
    if (avail < VFU_HDR_SIZE) {
        return 0;
    }
    msg_reset(m);
    memcpy(&m->hdr, c->rx + c->rx_head, VFU_HDR_SIZE);
    if (m->hdr.msg_size < VFU_HDR_SIZE) {
        errno = EPROTO;
        return -1;
    }
    uint64_t start = c->rx_pos + c->rx_head;
    if (m->hdr.msg_size > c->max_msg_size) {
        /* Answer it, then drop its payload as it streams in. */
        m->in_size = m->hdr.msg_size - VFU_HDR_SIZE;
        claim_fds(c, 0, c->rx_pos + c->rx_tail, NULL);
        c->rx_head += VFU_HDR_SIZE;
        c->skip = m->in_size;
        return 1;
    }
    if (avail < m->hdr.msg_size) {
        return 0;
    }
    claim_fds(c, start, start + m->hdr.msg_size, m);
    m->in = c->rx + c->rx_head + VFU_HDR_SIZE;
    m->in_size = m->hdr.msg_size - VFU_HDR_SIZE;
    /*
     * Handlers read payloads as structs. A message behind one of odd size
     * (a 1-byte write, say) starts unaligned: hand over an aligned copy.
     */
    if (((uintptr_t)m->in & 7) != 0) {
        memcpy(c->aligned, m->in, m->in_size);
        m->in = c->aligned;
    }
    c->pinned = c->rx_head;
    c->rx_head += m->hdr.msg_size;
    return 1;
}

void
vfu_msg_close_fds(struct vfu_msg *m)
{
    for (uint32_t i = 0; i < m->nr_fds; i++) {
        if (m->fds[i] >= 0) {
            close(m->fds[i]);
            m->fds[i] = -1;
        }
    }
    m->nr_fds = 0;
}

int
vfu_msg_reply_add(struct vfu_msg *m, const void *data, size_t size)
{
    if (m->out_iovcnt == VFU_MSG_MAX_IOV) {
        errno = E2BIG;
        return -1;
    }
    m->out[m->out_iovcnt].iov_base = (void *)data;
    m->out[m->out_iovcnt].iov_len = size;
    m->out_iovcnt++;
    m->out_size += size;
    return 0;
}

/* Close the fds a recvmsg() brought with bytes that are not ours to keep. */
static void
drop_fds(struct msghdr *mh)
{
    for (struct cmsghdr *cm = CMSG_FIRSTHDR(mh); cm != NULL;
         cm = CMSG_NXTHDR(mh, cm)) {
        if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS) {
            size_t n = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
            for (size_t i = 0; i < n; i++) {
                int fd;
                memcpy(&fd, CMSG_DATA(cm) + i * sizeof(int), sizeof(fd));
                close(fd);
            }
        }
    }
}

/* Step the pieces of mh past n bytes. */
static void
advance(struct msghdr *mh, size_t n)
{
    while (n > 0 && mh->msg_iovlen > 0) {
        if (n >= mh->msg_iov[0].iov_len) {
            n -= mh->msg_iov[0].iov_len;
            mh->msg_iov++;
            mh->msg_iovlen--;
        } else {
            mh->msg_iov[0].iov_base = (char *)mh->msg_iov[0].iov_base + n;
            mh->msg_iov[0].iov_len -= n;
            n = 0;
        }
    }
}

int
vfu_wait_fd(int fd, short events, int timeout_ms)
{
    struct pollfd p = { .fd = fd, .events = events };
    int rc;

    do {
        rc = poll(&p, 1, timeout_ms);
    } while (rc < 0 && errno == EINTR);
    if (rc == 0) {
        errno = ETIMEDOUT;
        return -1;
    }
    return rc < 0 ? -1 : 0;
}

/*
 * Messages up to this size without fds are gathered into one buffer and
 * go out with send(): copying a few hundred bytes costs less than the
 * kernel's handling of a msghdr and its pieces (measured: a 4-byte region
 * access round trip is ~2% faster per side).
 */
#define VFU_FLAT_SEND_MAX 2048u

int
vfu_conn_send(struct vfu_conn *c, const struct vfio_user_header *hdr,
              const struct iovec *iov, int iovcnt,
              const int *fds, uint32_t nr_fds)
{
    char cbuf[CMSG_SPACE(sizeof(int) * VFU_MAX_RX_FDS)];
    char flat[VFU_FLAT_SEND_MAX] __attribute__((aligned(8)));
    struct iovec v[VFU_MSG_MAX_IOV + 1];
    struct vfio_user_header h = *hdr;
    struct msghdr mh = { .msg_iov = v };
    size_t total = VFU_HDR_SIZE, sent = 0;
    bool use_flat;
    int cnt = 1, rc = 0;

    if (iovcnt > VFU_MSG_MAX_IOV || nr_fds > VFU_MAX_RX_FDS || c->fd < 0) {
        errno = c->fd < 0 ? ENOTCONN : EINVAL;
        return -1;
    }
    v[0].iov_base = &h;
    v[0].iov_len = VFU_HDR_SIZE;
    for (int i = 0; i < iovcnt; i++) {
        if (iov[i].iov_len == 0) {
            continue;
        }
        v[cnt++] = iov[i];
        total += iov[i].iov_len;
    }
    if (total > UINT32_MAX) {
        errno = EMSGSIZE;
        return -1;
    }
    h.msg_size = (uint32_t)total;
    use_flat = nr_fds == 0 && total <= sizeof(flat);
    if (use_flat) {
        size_t off = 0;
        for (int i = 0; i < cnt; i++) {
            memcpy(flat + off, v[i].iov_base, v[i].iov_len);
            off += v[i].iov_len;
        }
    }
    mh.msg_iovlen = cnt;
    if (nr_fds > 0) {
        memset(cbuf, 0, sizeof(cbuf));
        mh.msg_control = cbuf;
        mh.msg_controllen = CMSG_SPACE(sizeof(int) * nr_fds);
        struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
        cm->cmsg_level = SOL_SOCKET;
        cm->cmsg_type = SCM_RIGHTS;
        cm->cmsg_len = CMSG_LEN(sizeof(int) * nr_fds);
        memcpy(CMSG_DATA(cm), fds, sizeof(int) * nr_fds);
    }

    pthread_mutex_lock(&c->tx_lock);
    while (total > 0) {
        ssize_t n = use_flat ? send(c->fd, flat + sent, total, MSG_NOSIGNAL)
                             : sendmsg(c->fd, &mh, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            if ((errno == EAGAIN || errno == EWOULDBLOCK) &&
                vfu_wait_fd(c->fd, POLLOUT, VFU_CALL_TIMEOUT_MS) == 0) {
                continue;
            }
            rc = -1;
            break;
        }
        total -= (size_t)n;
        sent += (size_t)n;
        if (total > 0 && !use_flat) {
            /* A partial send: the fds went with the first byte. */
            mh.msg_control = NULL;
            mh.msg_controllen = 0;
            advance(&mh, (size_t)n);
        }
    }
    pthread_mutex_unlock(&c->tx_lock);
    if (rc < 0 && (errno == EPIPE || errno == ECONNRESET)) {
        errno = ENOTCONN;
    }
    return rc;
}

int
vfu_conn_reply(struct vfu_conn *c, const struct vfu_msg *req, int err)
{
    struct vfio_user_header h = {
        .msg_id = req->hdr.msg_id,
        .cmd = req->hdr.cmd,
        .flags = VFIO_USER_F_TYPE_REPLY,
    };

    if (err != 0) {
        h.flags |= VFIO_USER_F_ERROR;
        h.error_no = (uint32_t)err;
        return vfu_conn_send(c, &h, NULL, 0, NULL, 0);
    }
    return vfu_conn_send(c, &h, req->out, req->out_iovcnt,
                         req->out_fds, req->nr_out_fds);
}

/* ---- server->client (and client->server) calls ---- */

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

    pthread_mutex_lock(&c->call_lock);
    k = find_call(c, h->msg_id);
    if (k != NULL) {
        complete(k, h, payload, size);
        if (c->nr_waiting > 0) {
            pthread_cond_broadcast(&c->call_cond);
        }
    }
    pthread_mutex_unlock(&c->call_lock);
    return k != NULL;
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

/* Remove buffered bytes [off, off + len) that have been handled out of order. */
static void
excise(struct vfu_conn *c, size_t off, size_t len)
{
    uint64_t start = c->rx_pos + off;

    memmove(c->rx + off, c->rx + off + len, c->rx_tail - off - len);
    c->rx_tail -= len;
    for (uint32_t i = 0; i < c->nr_batches;) {
        struct vfu_fd_batch *b = &c->batches[i];
        if (b->pos >= start && b->pos < start + len) {
            close_batch(b);
            remove_batch(c, i);
            continue;
        }
        if (b->pos >= start + len) {
            b->pos -= len;
        }
        i++;
    }
}

/*
 * Drop the handled message at rx offset p: the head simply moves on, one
 * further in is cut out. Returns where the next message starts.
 */
static size_t
consume(struct vfu_conn *c, size_t p, size_t len)
{
    if (p == c->rx_head) {
        claim_fds(c, 0, c->rx_pos + p + len, NULL);
        c->rx_head += len;
        return c->rx_head;
    }
    excise(c, p, len);
    return p;
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
            errno = EPROTO;
            return -1;
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
            p = consume(c, p, h.msg_size);
        } else if (on_request != NULL) {
            struct vfu_msg m;
            uint64_t start = c->rx_pos + p;
            msg_reset(&m);
            m.hdr = h;
            claim_fds(c, start, start + h.msg_size, &m);
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
            excise(c, p, h.msg_size);
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
 * Read bytes [off, off + left) of k's reply payload from the socket into
 * its pieces. Failing half-way leaves the stream unusable: it ends here.
 */
static int
recv_into(struct vfu_conn *c, const struct vfu_call *k, size_t off,
          size_t left)
{
    char cbuf[CMSG_SPACE(sizeof(int) * VFU_MAX_RX_FDS)];
    struct iovec v[VFU_MSG_MAX_IOV];
    struct msghdr mh = { .msg_iov = v };
    size_t want = left;
    int cnt = 0;

    for (int i = 0; i < k->reply_iovcnt && want > 0; i++) {
        size_t l = k->reply[i].iov_len;
        if (off >= l) {
            off -= l;
            continue;
        }
        v[cnt].iov_base = (char *)k->reply[i].iov_base + off;
        v[cnt].iov_len = l - off < want ? l - off : want;
        want -= v[cnt].iov_len;
        off = 0;
        cnt++;
    }
    mh.msg_iovlen = cnt;
    while (left > 0) {
        if (!c->guarded && vfu_wait_fd(c->fd, POLLIN, VFU_CALL_TIMEOUT_MS) < 0) {
            c->eof = true;
            return -1;
        }
        mh.msg_control = cbuf;
        mh.msg_controllen = sizeof(cbuf);
        ssize_t n = recvmsg(c->fd, &mh, MSG_CMSG_CLOEXEC);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n >= 0 && mh.msg_controllen > 0) {
            drop_fds(&mh);      /* fds on a data reply: nobody takes them */
        }
        if (n <= 0) {
            c->eof = true;
            if (n == 0 || errno == ECONNRESET) {
                errno = ENOTCONN;
            } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
                errno = ETIMEDOUT;
            }
            return -1;
        }
        left -= (size_t)n;
        advance(&mh, (size_t)n);
    }
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
        excise(c, p, h.msg_size);
    } else {
        scatter(mine->reply, mine->reply_iovcnt, c->rx + p + VFU_HDR_SIZE, have);
        excise(c, p, c->rx_tail - p);
        if (recv_into(c, mine, have, len - have) < 0) {
            return -1;
        }
    }
    mine->done = true;
    mine->reply_size = len;
    return 1;
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
    /* A peer that never answers must not hang the call. */
    if (!c->guarded && vfu_wait_fd(c->fd, POLLIN, VFU_CALL_TIMEOUT_MS) < 0) {
        return -1;
    }
    /* Only a server's loop gets fds: replies to calls carry none. */
    do {
        n = fill(c, true, limit, c->serve_mode);
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
        if (w == ETIMEDOUT && !call.done && !self_read) {
            call.done = true;
            call.error = ETIMEDOUT;
        }
    }
    unlink_call(c, &call);
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
