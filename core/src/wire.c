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
#include "wire_internal.h"

_Static_assert(sizeof(struct vfio_user_header) == 16, "wire header is 16 bytes");

/* The socket buffer size we ask for (the kernel doubles it). */
#define VFU_SOCK_BUF_MAX (4 << 20)

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
    free(c->batches);
    c->batches = NULL;
    c->cap_batches = 0;
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

/* A new batch at the end of the table, grown as needed; NULL if full. */
static struct vfu_fd_batch *
new_batch(struct vfu_conn *c, uint64_t pos)
{
    struct vfu_fd_batch *b;

    if (c->nr_batches == c->cap_batches) {
        uint32_t cap = c->cap_batches ? 2 * c->cap_batches : VFU_FD_BATCHES;
        if (cap > VFU_FD_BATCHES_MAX) {
            return NULL;
        }
        b = realloc(c->batches, cap * sizeof(*b));
        if (b == NULL) {
            return NULL;
        }
        c->batches = b;
        c->cap_batches = cap;
    }
    b = &c->batches[c->nr_batches++];
    memset(b, 0, sizeof(*b));
    b->pos = pos;
    return b;
}

/*
 * Keep the fds a read brought for the message they belong to. An fd is
 * never dropped silently: one without room fails its message (truncated)
 * or, with no batch to say so, the whole stream (fds_lost).
 */
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
        if (b == NULL && (b = new_batch(c, pos)) == NULL) {
            c->fds_lost = true;
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

ssize_t
vfu_conn_read(struct vfu_conn *c, bool block, size_t limit, bool fds)
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
    return vfu_conn_read(c, block, 0, true);
}

void
vfu_conn_claim_fds(struct vfu_conn *c, uint64_t start, uint64_t end,
                   struct vfu_msg *m)
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

void
vfu_msg_reset(struct vfu_msg *m)
{
    m->in = NULL;
    m->in_size = 0;
    m->nr_fds = 0;
    m->fds_truncated = false;
    m->out_iovcnt = 0;
    m->out_size = 0;
    m->out_fds = NULL;
    m->nr_out_fds = 0;
    m->out_owned_fd = -1;
}

int
vfu_conn_take(struct vfu_conn *c, struct vfu_msg *m)
{
    size_t avail;

    if (c->fds_lost) {
        errno = EPROTO;     /* which message lost them is unknown */
        return -1;
    }
    if (c->skip > 0) {
        size_t d = c->rx_tail - c->rx_head;
        if (d > c->skip) {
            d = c->skip;
        }
        vfu_conn_claim_fds(c, 0, c->rx_pos + c->rx_head + d, NULL);
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
    vfu_msg_reset(m);
    memcpy(&m->hdr, c->rx + c->rx_head, VFU_HDR_SIZE);
    uint64_t start = c->rx_pos + c->rx_head;
    if (m->hdr.msg_size < VFU_HDR_SIZE) {
        if (!c->serve_mode) {
            errno = EPROTO;
            return -1;
        }
        /*
         * A server answers it (EINVAL) and reads on after the header: the
         * header is all it can have sent, and a client that got its size
         * wrong is better told so than dropped.
         */
        vfu_conn_claim_fds(c, start, start + VFU_HDR_SIZE, m);
        c->rx_head += VFU_HDR_SIZE;
        return 1;
    }
    if (m->hdr.msg_size > c->max_msg_size) {
        /* Answer it, then drop its payload as it streams in, and its fds
         * (those read with its bytes): not those of messages behind it. */
        m->in_size = m->hdr.msg_size - VFU_HDR_SIZE;
        vfu_conn_claim_fds(c, 0, start + m->hdr.msg_size, NULL);
        c->rx_head += VFU_HDR_SIZE;
        c->skip = m->in_size;
        return 1;
    }
    if (avail < m->hdr.msg_size) {
        return 0;
    }
    vfu_conn_claim_fds(c, start, start + m->hdr.msg_size, m);
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

int
vfu_conn_sendv(struct vfu_conn *c, struct iovec *v, int cnt, size_t total,
               const int *fds, uint32_t nr_fds)
{
    char cbuf[CMSG_SPACE(sizeof(int) * VFU_MAX_RX_FDS)];
    struct msghdr mh = { .msg_iov = v, .msg_iovlen = (size_t)cnt };
    /* One piece and no fds: send(), which the kernel handles for less. */
    bool plain = cnt == 1 && nr_fds == 0;
    bool sent_some = false;
    int rc = 0;

    if (nr_fds > VFU_MAX_RX_FDS || c->fd < 0) {
        errno = c->fd < 0 ? ENOTCONN : EINVAL;
        return -1;
    }
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
        ssize_t n = plain ? send(c->fd, v[0].iov_base, v[0].iov_len, MSG_NOSIGNAL)
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
        sent_some = true;
        if (total > 0) {
            /* A partial send: the fds went with the first byte. */
            mh.msg_control = NULL;
            mh.msg_controllen = 0;
            advance(&mh, (size_t)n);
        }
    }
    if (rc < 0 && sent_some) {
        /* Half a message went out: nothing after it can be framed. */
        int saved = errno;
        shutdown(c->fd, SHUT_RDWR);
        errno = saved;
    }
    pthread_mutex_unlock(&c->tx_lock);
    if (rc < 0 && (errno == EPIPE || errno == ECONNRESET)) {
        errno = ENOTCONN;
    }
    return rc;
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
    char flat[VFU_FLAT_SEND_MAX] __attribute__((aligned(8)));
    struct iovec v[VFU_MSG_MAX_IOV + 1];
    struct vfio_user_header h = *hdr;
    size_t total = VFU_HDR_SIZE;
    int cnt = 1;

    if (iovcnt > VFU_MSG_MAX_IOV) {
        errno = EINVAL;
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
    if (nr_fds == 0 && total <= sizeof(flat)) {
        size_t off = 0;
        for (int i = 0; i < cnt; i++) {
            memcpy(flat + off, v[i].iov_base, v[i].iov_len);
            off += v[i].iov_len;
        }
        v[0].iov_base = flat;
        v[0].iov_len = total;
        cnt = 1;
    }
    return vfu_conn_sendv(c, v, cnt, total, fds, nr_fds);
}

int
vfu_conn_reply(struct vfu_conn *c, const struct vfu_msg *req, int err)
{
    struct vfio_user_header h = {
        .msg_id = req->hdr.msg_id,
        .cmd = req->hdr.cmd,
        .flags = VFIO_USER_F_TYPE_REPLY,
    };

    int rc;

    if (err != 0) {
        h.flags |= VFIO_USER_F_ERROR;
        h.error_no = (uint32_t)err;
        rc = vfu_conn_send(c, &h, NULL, 0, NULL, 0);
    } else {
        rc = vfu_conn_send(c, &h, req->out, req->out_iovcnt,
                           req->out_fds, req->nr_out_fds);
    }
    if (req->out_owned_fd >= 0) {
        /* In flight now, or never going: our copy is not needed. */
        int saved = errno;
        close(req->out_owned_fd);
        errno = saved;
    }
    return rc;
}

/* ---- for wire_call.c ---- */

/* Remove buffered bytes [off, off + len) that have been handled out of order. */
void
vfu_conn_excise(struct vfu_conn *c, size_t off, size_t len)
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
size_t
vfu_conn_consume(struct vfu_conn *c, size_t p, size_t len)
{
    if (p == c->rx_head) {
        vfu_conn_claim_fds(c, 0, c->rx_pos + p + len, NULL);
        c->rx_head += len;
        return c->rx_head;
    }
    vfu_conn_excise(c, p, len);
    return p;
}

/*
 * Read bytes [off, off + left) of a payload from the socket into its
 * pieces iov. Failing half-way leaves the stream unusable: it ends here.
 */
int
vfu_conn_recv_into(struct vfu_conn *c, const struct iovec *iov, int iovcnt,
                   size_t off, size_t left)
{
    char cbuf[CMSG_SPACE(sizeof(int) * VFU_MAX_RX_FDS)];
    struct iovec v[VFU_MSG_MAX_IOV];
    struct msghdr mh = { .msg_iov = v };
    size_t want = left;
    int cnt = 0;

    for (int i = 0; i < iovcnt && want > 0; i++) {
        size_t l = iov[i].iov_len;
        if (off >= l) {
            off -= l;
            continue;
        }
        v[cnt].iov_base = (char *)iov[i].iov_base + off;
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
