/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 the vfu authors. */

/*
 * The client side of vfio-user. Requests that only need a reply payload go
 * through vfu_conn_call(), so that several threads can have requests in
 * flight at once. Requests whose reply carries fds (and raw calls) use
 * call_owned(): it takes the read side of the connection before sending, so
 * that nobody else can read (and drop) the reply's fds, and meanwhile hands
 * other threads' replies to them.
 */

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "private.h"
#include "vfu-client.h"

/* How long a client waits for a reply before giving up. */
#define CLIENT_TIMEOUT_MS 10000
/* Room in the receive buffer beyond the largest data transfer. */
#define CLIENT_MSG_SLACK 4096
/* Guard against capability chains that loop. */
#define MAX_REGION_CAPS 64

struct dma_entry {
    uint64_t iova, size;
    uint32_t flags;
    char *vaddr;
};

struct vfu_client {
    struct vfu_conn conn;
    struct vfu_client_caps caps;        /* the server's, once negotiated */
    uint64_t our_max_xfer;              /* what we told the server */

    /* The twin socket, if negotiated: a thread of ours serves the
     * server's requests arriving on it. */
    struct vfu_conn twin;
    bool has_twin;
    pthread_t twin_thread;

    pthread_mutex_t dma_lock;           /* the table vs. DMA requests */
    struct dma_entry *dma;
    size_t nr_dma, cap_dma;

    /* vfu_client_defer_requests(): the server's requests that came while
     * a call waited, copied, to be served once it has its reply. */
    bool defer;
    pthread_mutex_t defer_lock;
    struct deferred *deferred, **deferred_tail;
};

struct deferred {
    struct deferred *next;
    struct vfio_user_header hdr;
    size_t size;                        /* of the payload that follows */
    char payload[];
};

/*
 * The spec's defaults for what a server leaves out, as the server side
 * assumes them of a client; except that a server naming no "migration"
 * reports no migration page size or bitmap bound.
 */
static void
spec_defaults(struct vfu_client_caps *caps)
{
    vfu_caps_defaults(caps);
    caps->migr_pgsize = 0;
    caps->migr_max_bitmap_size = 0;
}

void
vfu_client_default_caps(struct vfu_client_caps *caps)
{
    memset(caps, 0, sizeof(*caps));
    caps->max_msg_fds = 16;
    caps->pgsizes = 4096;
    caps->max_dma_maps = 65535;
    caps->max_data_xfer_size = 1u << 20;
    caps->has_migration = true;
    caps->migr_pgsize = 4096;
    caps->migr_max_bitmap_size = 256u << 20;
    caps->write_multiple = true;
    caps->twin_fd_index = -1;
}

vfu_client_t *
vfu_client_connect(const char *path)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    vfu_client_t *c;
    int fd, err;

    if (path == NULL) {
        errno = EINVAL;
        return NULL;
    }
    if (strlen(path) >= sizeof(sa.sun_path)) {
        errno = ENAMETOOLONG;
        return NULL;
    }
    strcpy(sa.sun_path, path);
    c = calloc(1, sizeof(*c));
    if (c == NULL) {
        return NULL;
    }
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        goto fail;
    }
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        goto fail_fd;
    }
    if (vfu_conn_init(&c->conn, fd, VFIO_USER_DEFAULT_MAX_DATA_XFER_SIZE +
                      CLIENT_MSG_SLACK, VFU_MAX_RX_FDS) < 0) {
        goto fail_fd;
    }
    c->conn.serve_mode = false;
    if (vfu_conn_watchdog_start(&c->conn) < 0) {
        err = errno;
        vfu_conn_fini(&c->conn);    /* closes fd */
        free(c);
        errno = err;
        return NULL;
    }
    pthread_mutex_init(&c->dma_lock, NULL);
    pthread_mutex_init(&c->defer_lock, NULL);
    c->deferred_tail = &c->deferred;
    spec_defaults(&c->caps);
    c->our_max_xfer = VFIO_USER_DEFAULT_MAX_DATA_XFER_SIZE;
    return c;

fail_fd:
    err = errno;
    close(fd);
    errno = err;
fail:
    err = errno;
    free(c);
    errno = err;
    return NULL;
}

void
vfu_client_close(vfu_client_t *c)
{
    if (c == NULL) {
        return;
    }
    if (c->has_twin) {
        /* Ends the serving thread's blocking read. */
        shutdown(c->twin.fd, SHUT_RDWR);
        pthread_join(c->twin_thread, NULL);
        vfu_conn_fini(&c->twin);
    }
    vfu_conn_fini(&c->conn);
    while (c->deferred != NULL) {
        struct deferred *d = c->deferred;
        c->deferred = d->next;
        free(d);
    }
    pthread_mutex_destroy(&c->defer_lock);
    pthread_mutex_destroy(&c->dma_lock);
    free(c->dma);
    free(c);
}

int
vfu_client_fd(vfu_client_t *c)
{
    return c->conn.fd;
}

const struct vfu_client_caps *
vfu_client_caps(vfu_client_t *c)
{
    return &c->caps;
}

uint16_t
vfu_client_next_msg_id(vfu_client_t *c)
{
    uint16_t id;

    pthread_mutex_lock(&c->conn.call_lock);
    id = c->conn.next_msg_id++;
    pthread_mutex_unlock(&c->conn.call_lock);
    return id;
}

/* ---- serving the server's requests ---- */

/* Find the table entry holding [addr, addr + count); dma_lock held. */
static struct dma_entry *
dma_find(vfu_client_t *c, uint64_t addr, uint64_t count)
{
    for (size_t i = 0; i < c->nr_dma; i++) {
        struct dma_entry *e = &c->dma[i];
        if (addr >= e->iova && addr - e->iova <= e->size &&
            count <= e->size - (addr - e->iova)) {
            return e;
        }
    }
    return NULL;
}

/* Answer m, which came on conn (the main socket or the twin), with err. */
static int
reply_error(struct vfu_conn *conn, const struct vfu_msg *m, int err)
{
    if (m->hdr.flags & VFIO_USER_F_NO_REPLY) {
        return 0;
    }
    return vfu_conn_reply(conn, m, err);
}

static int
serve_dma(vfu_client_t *c, struct vfu_conn *conn, struct vfu_msg *m)
{
    struct vfio_user_dma_region_access acc;
    struct vfio_user_header h = {
        .msg_id = m->hdr.msg_id,
        .cmd = m->hdr.cmd,
        .flags = VFIO_USER_F_TYPE_REPLY,
    };
    bool is_write = m->hdr.cmd == VFIO_USER_DMA_WRITE;
    struct iovec iov[2];
    struct dma_entry *e;
    int rc;

    if (m->in_size < sizeof(acc)) {
        return reply_error(conn, m, EINVAL);
    }
    memcpy(&acc, m->in, sizeof(acc));
    if (acc.count > c->our_max_xfer ||
        (is_write && m->in_size - sizeof(acc) != acc.count) ||
        (!is_write && m->in_size != sizeof(acc))) {
        return reply_error(conn, m, EINVAL);
    }
    pthread_mutex_lock(&c->dma_lock);
    e = dma_find(c, acc.addr, acc.count);
    if (e == NULL || e->vaddr == NULL) {
        pthread_mutex_unlock(&c->dma_lock);
        return reply_error(conn, m, ENOENT);
    }
    if (!(e->flags & (is_write ? VFIO_USER_F_DMA_REGION_WRITE
                               : VFIO_USER_F_DMA_REGION_READ))) {
        pthread_mutex_unlock(&c->dma_lock);
        return reply_error(conn, m, EPERM);
    }
    char *p = e->vaddr + (acc.addr - e->iova);
    iov[0].iov_base = &acc;
    iov[0].iov_len = sizeof(acc);
    if (is_write) {
        memcpy(p, (char *)m->in + sizeof(acc), acc.count);
        iov[1].iov_len = 0;
    } else {
        iov[1].iov_base = p;
        iov[1].iov_len = acc.count;
    }
    /* Send under the lock: an unmap must not free p while it is read. */
    rc = (m->hdr.flags & VFIO_USER_F_NO_REPLY) ? 0 :
         vfu_conn_send(conn, &h, iov, 2, NULL, 0);
    pthread_mutex_unlock(&c->dma_lock);
    return rc;
}

/* A request from the server that came on conn. */
static int
serve_request(vfu_client_t *c, struct vfu_conn *conn, struct vfu_msg *m)
{
    switch (m->hdr.cmd) {
    case VFIO_USER_DMA_READ:
    case VFIO_USER_DMA_WRITE:
        return serve_dma(c, conn, m);
    default:
        return reply_error(conn, m, ENOSYS);
    }
}

/* Keep a copy of request m to serve after the call under way. */
static int
defer_request(vfu_client_t *c, const struct vfu_msg *m)
{
    struct deferred *d = malloc(sizeof(*d) + m->in_size);

    if (d == NULL) {
        return reply_error(&c->conn, m, ENOMEM);
    }
    d->next = NULL;
    d->hdr = m->hdr;
    d->size = m->in_size;
    memcpy(d->payload, m->in, m->in_size);
    pthread_mutex_lock(&c->defer_lock);
    __atomic_store_n(c->deferred_tail, d, __ATOMIC_RELEASE);
    c->deferred_tail = &d->next;
    pthread_mutex_unlock(&c->defer_lock);
    return 0;
}

/* Serve what was deferred, in order; after a call, with or without its
 * reply (errno is kept for the caller). */
static void
serve_deferred(vfu_client_t *c)
{
    int saved;

    /* The usual case, nothing kept: no lock taken. */
    if (__atomic_load_n(&c->deferred, __ATOMIC_ACQUIRE) == NULL) {
        return;
    }
    saved = errno;
    for (;;) {
        struct deferred *d;
        struct vfu_msg m;

        pthread_mutex_lock(&c->defer_lock);
        d = c->deferred;
        if (d != NULL) {
            c->deferred = d->next;
            if (c->deferred == NULL) {
                c->deferred_tail = &c->deferred;
            }
        }
        pthread_mutex_unlock(&c->defer_lock);
        if (d == NULL) {
            break;
        }
        memset(&m, 0, sizeof(m));
        m.out_owned_fd = -1;
        m.hdr = d->hdr;
        m.in = d->payload;
        m.in_size = d->size;
        (void)serve_request(c, &c->conn, &m);
        free(d);
    }
    errno = saved;
}

/* A request from the server on the main socket while a call waits for its
 * reply (vfu_conn_request_fn_t). */
static int
on_request(void *opaque, struct vfu_msg *m)
{
    vfu_client_t *c = opaque;

    if (c->defer) {
        return defer_request(c, m);
    }
    return serve_request(c, &c->conn, m);
}

int
vfu_client_defer_requests(vfu_client_t *c, bool defer)
{
    if (c == NULL) {
        errno = EINVAL;
        return -1;
    }
    c->defer = defer;
    if (!defer) {
        serve_deferred(c);
    }
    return 0;
}

/*
 * The twin socket's thread: serves every request the server sends there,
 * whatever the client's other threads are doing (or not doing). Nothing
 * but requests should come: replies are dropped, too large requests
 * answered E2BIG. It ends when the socket does (the server went, or
 * vfu_client_close() shut it down) or the stream breaks.
 */
static void *
twin_main(void *arg)
{
    vfu_client_t *c = arg;
    struct vfu_conn *t = &c->twin;
    struct vfu_msg m;

    for (;;) {
        int rc;

        while ((rc = vfu_conn_take(t, &m)) == 1) {
            bool is_reply = (m.hdr.flags & VFIO_USER_F_TYPE_MASK) ==
                            VFIO_USER_F_TYPE_REPLY;
            if (!is_reply) {
                rc = m.in == NULL ? reply_error(t, &m, E2BIG)
                                  : serve_request(c, t, &m);
            }
            vfu_msg_close_fds(&m);
            vfu_conn_unpin(t);
            if (rc < 0) {
                return NULL;
            }
        }
        if (rc < 0) {
            return NULL;
        }
        if (vfu_conn_fill(t, true) < 0 && errno != EINTR) {
            return NULL;
        }
    }
}

/*
 * Take the twin socket the server passed at fds[idx], and start serving
 * it. Returns 0, or -1 with errno; fd is ours to close on failure.
 */
static int
start_twin(vfu_client_t *c, int fd)
{
    int rc, type = 0;
    socklen_t len = sizeof(type);

    /* Anything but a stream socket cannot be the twin. */
    if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) < 0 ||
        type != SOCK_STREAM) {
        errno = EPROTO;
        return -1;
    }
    /* DMA_WRITE requests carry up to what we told the server we take. */
    if (vfu_conn_init(&c->twin, fd, c->our_max_xfer + CLIENT_MSG_SLACK,
                      0) < 0) {
        return -1;
    }
    rc = pthread_create(&c->twin_thread, NULL, twin_main, c);
    if (rc != 0) {
        c->twin.fd = -1;        /* the caller closes it */
        vfu_conn_fini(&c->twin);
        errno = rc;
        return -1;
    }
    c->has_twin = true;
    return 0;
}

/* ---- calls ---- */

struct owned_reply {
    uint16_t msg_id;
    bool done;
    struct vfio_user_header hdr;
    void *buf;
    size_t cap, size;               /* size: full payload size */
    int *fds;
    uint32_t cap_fds, nr_fds;
};

static void
store_reply(struct owned_reply *r, struct vfu_msg *m)
{
    r->hdr = m->hdr;
    r->size = m->in_size;
    if (r->buf != NULL && m->in != NULL) {
        memcpy(r->buf, m->in, m->in_size < r->cap ? m->in_size : r->cap);
    }
    r->nr_fds = 0;
    for (uint32_t i = 0; i < m->nr_fds; i++) {
        if (r->fds != NULL && r->nr_fds < r->cap_fds) {
            r->fds[r->nr_fds++] = m->fds[i];
            m->fds[i] = -1;
        }
    }
    r->done = true;
}

/*
 * Handle one message taken from the stream; rx_lock held. With want set,
 * the reply it names (want->msg_id), or any message at all if any_msg, is
 * stored in it; other replies go to their vfu_conn_call() waiters and
 * requests are served. Returns 0, or -1/errno if the connection broke.
 */
static int
handle_taken(vfu_client_t *c, struct vfu_msg *m, struct owned_reply *want,
             bool any_msg, int *served)
{
    bool is_reply = (m->hdr.flags & VFIO_USER_F_TYPE_MASK) ==
                    VFIO_USER_F_TYPE_REPLY;
    int rc = 0;

    if (want != NULL && (any_msg || (is_reply && m->hdr.msg_id == want->msg_id))) {
        store_reply(want, m);
    } else if (is_reply) {
        if (m->in != NULL) {
            vfu_conn_deliver_reply(&c->conn, m);
        }
    } else if (m->in == NULL) {
        rc = reply_error(&c->conn, m, E2BIG);
    } else {
        rc = want != NULL ? on_request(c, m) : serve_request(c, &c->conn, m);
        if (served != NULL) {
            (*served)++;
        }
    }
    vfu_msg_close_fds(m);
    vfu_conn_unpin(&c->conn);
    return rc;
}

/* Read until want is done; rx_lock held. */
static int
read_until(vfu_client_t *c, struct owned_reply *want, bool any_msg,
           int timeout_ms)
{
    struct vfu_msg m;

    while (!want->done) {
        int rc = vfu_conn_take(&c->conn, &m);
        if (rc < 0) {
            return -1;
        }
        if (rc > 0) {
            if (handle_taken(c, &m, want, any_msg, NULL) < 0) {
                return -1;
            }
            continue;
        }
        if (vfu_wait_fd(c->conn.fd, POLLIN, timeout_ms) < 0) {
            return -1;
        }
        if (vfu_conn_fill(&c->conn, false) < 0 && errno != EAGAIN) {
            return -1;
        }
    }
    return 0;
}

/* Let threads waiting in vfu_conn_call() take over reading. */
static void
release_reader(vfu_client_t *c)
{
    pthread_mutex_unlock(&c->conn.rx_lock);
    pthread_mutex_lock(&c->conn.call_lock);
    if (c->conn.nr_waiting > 0) {
        pthread_cond_broadcast(&c->conn.call_cond);
    }
    pthread_mutex_unlock(&c->conn.call_lock);
}

/*
 * Send a request and wait for its reply holding the read side, so the
 * reply's fds reach us. Returns 0 or -1/errno (the server's on an error
 * reply).
 */
static int
call_owned(vfu_client_t *c, uint16_t cmd, const struct iovec *iov, int iovcnt,
           const int *fds, uint32_t nr_fds, struct owned_reply *r)
{
    struct vfio_user_header h = { .cmd = cmd, .flags = VFIO_USER_F_TYPE_COMMAND };
    int rc, err;

    pthread_mutex_lock(&c->conn.rx_lock);
    r->msg_id = h.msg_id = vfu_client_next_msg_id(c);
    r->done = false;
    rc = vfu_conn_send(&c->conn, &h, iov, iovcnt, fds, nr_fds);
    if (rc == 0) {
        rc = read_until(c, r, false, CLIENT_TIMEOUT_MS);
    }
    err = errno;
    release_reader(c);
    serve_deferred(c);
    if (rc < 0) {
        errno = err;
        return -1;
    }
    if (r->hdr.flags & VFIO_USER_F_ERROR) {
        for (uint32_t i = 0; i < r->nr_fds; i++) {
            close(r->fds[i]);
        }
        r->nr_fds = 0;
        errno = r->hdr.error_no != 0 ? (int)r->hdr.error_no : EIO;
        return -1;
    }
    return 0;
}

int
vfu_client_call(vfu_client_t *c, uint16_t cmd, const void *req,
                size_t req_size, const int *fds, uint32_t nr_fds,
                void *reply, size_t *reply_size,
                int *reply_fds, uint32_t *nr_reply_fds)
{
    struct iovec iov = { .iov_base = (void *)req, .iov_len = req_size };
    struct owned_reply r = {
        .buf = reply,
        .cap = reply_size != NULL ? *reply_size : 0,
        .fds = reply_fds,
        .cap_fds = nr_reply_fds != NULL ? *nr_reply_fds : 0,
    };

    if (nr_reply_fds != NULL) {
        *nr_reply_fds = 0;
    }
    if (call_owned(c, cmd, &iov, 1, fds, nr_fds, &r) < 0) {
        return -1;
    }
    if (nr_reply_fds != NULL) {
        *nr_reply_fds = r.nr_fds;
    }
    if (r.size > r.cap) {
        for (uint32_t i = 0; i < r.nr_fds; i++) {
            close(r.fds[i]);
        }
        if (nr_reply_fds != NULL) {
            *nr_reply_fds = 0;
        }
        errno = EMSGSIZE;
        return -1;
    }
    if (reply_size != NULL) {
        *reply_size = r.size;
    }
    return 0;
}

/* A plain request through vfu_conn_call(); the reply must fit *reply_size. */
static int
call(vfu_client_t *c, uint16_t cmd, const struct iovec *iov, int iovcnt,
     const int *fds, uint32_t nr_fds, void *reply, size_t *reply_size)
{
    int rc = vfu_conn_call(&c->conn, cmd, iov, iovcnt, fds, nr_fds,
                           reply, reply_size, on_request, c);

    serve_deferred(c);
    return rc;
}

/* The same with the reply scattered over pieces, large payloads read
 * straight into them. */
static int
callv(vfu_client_t *c, uint16_t cmd, const void *req, size_t req_size,
      const struct iovec *reply, int nr_reply, size_t *reply_size)
{
    struct iovec iov = { .iov_base = (void *)req, .iov_len = req_size };
    int rc = vfu_conn_callv(&c->conn, cmd, &iov, 1, NULL, 0, reply, nr_reply,
                            reply_size, on_request, c);

    serve_deferred(c);
    return rc;
}

static int
call1(vfu_client_t *c, uint16_t cmd, const void *req, size_t req_size,
      void *reply, size_t *reply_size)
{
    struct iovec iov = { .iov_base = (void *)req, .iov_len = req_size };
    return call(c, cmd, &iov, 1, NULL, 0, reply, reply_size);
}

/* call1() for a reply of exactly reply_size bytes; any other size: EPROTO. */
static int
call1_exact(vfu_client_t *c, uint16_t cmd, const void *req, size_t req_size,
            void *reply, size_t reply_size)
{
    size_t size = reply_size;

    if (call1(c, cmd, req, req_size, reply, &size) < 0) {
        return -1;
    }
    if (size != reply_size) {
        errno = EPROTO;
        return -1;
    }
    return 0;
}

int
vfu_client_send_raw(vfu_client_t *c, const void *buf, size_t len,
                    const int *fds, uint32_t nr_fds)
{
    struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };

    if (len == 0 && nr_fds > 0) {
        errno = EINVAL;     /* a stream carries no fds without a byte */
        return -1;
    }
    return vfu_conn_sendv(&c->conn, &iov, 1, len, fds, nr_fds);
}

int
vfu_client_recv_raw(vfu_client_t *c, struct vfio_user_header *hdr,
                    void *payload, size_t *size, int *fds, uint32_t *nr_fds,
                    int timeout_ms)
{
    struct owned_reply r = {
        .buf = payload,
        .cap = size != NULL ? *size : 0,
        .fds = fds,
        .cap_fds = nr_fds != NULL ? *nr_fds : 0,
    };
    int rc, err;

    pthread_mutex_lock(&c->conn.rx_lock);
    rc = read_until(c, &r, true, timeout_ms);
    err = errno;
    release_reader(c);
    if (rc < 0) {
        errno = err;
        return -1;
    }
    *hdr = r.hdr;
    if (size != NULL) {
        *size = r.size;
    }
    if (nr_fds != NULL) {
        *nr_fds = r.nr_fds;
    }
    return 0;
}

/* Milliseconds left until deadline (CLOCK_MONOTONIC ms), or -1 forever. */
static int
remaining_ms(int64_t deadline)
{
    struct timespec ts;

    if (deadline < 0) {
        return -1;
    }
    clock_gettime(CLOCK_MONOTONIC, &ts);
    int64_t now = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    return now >= deadline ? 0 : (int)(deadline - now);
}

int
vfu_client_poll(vfu_client_t *c, int timeout_ms)
{
    struct timespec ts;
    struct vfu_msg m;
    int64_t deadline = -1;
    int served = 0, rc, err;

    if (timeout_ms >= 0) {
        clock_gettime(CLOCK_MONOTONIC, &ts);
        deadline = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000 + timeout_ms;
    }
    pthread_mutex_lock(&c->conn.rx_lock);
    for (;;) {
        rc = vfu_conn_take(&c->conn, &m);
        if (rc > 0) {
            rc = handle_taken(c, &m, NULL, false, &served);
            if (rc < 0) {
                break;
            }
            continue;
        }
        if (rc < 0 || served > 0) {
            break;
        }
        int left = remaining_ms(deadline);
        if (left != 0 && vfu_wait_fd(c->conn.fd, POLLIN, left) < 0) {
            rc = errno == ETIMEDOUT ? 0 : -1;
            break;
        }
        if (vfu_conn_fill(&c->conn, false) < 0) {
            if (errno != EAGAIN) {
                rc = -1;
                break;
            }
            if (left == 0) {
                rc = 0;
                break;
            }
        }
    }
    err = errno;
    release_reader(c);
    if (rc < 0) {
        errno = err;
        return -1;
    }
    return served;
}

/* ---- VERSION ---- */

/* Let the receive buffer hold a transfer of xfer bytes; rx_lock held, and
 * nothing is pinned between calls. */
static int
grow_rx(vfu_client_t *c, uint64_t xfer)
{
    uint64_t need = xfer + CLIENT_MSG_SLACK;
    struct vfu_conn *k = &c->conn;

    if (need <= k->max_msg_size) {
        return 0;
    }
    if (xfer > VFU_MAX_DATA_XFER_LIMIT) {
        errno = EINVAL;
        return -1;
    }
    size_t cap = 2 * need + 65536;
    char *rx = realloc(k->rx, cap);
    if (rx == NULL) {
        return -1;
    }
    k->rx = rx;
    k->rx_cap = cap;
    /* The aligned copy of a payload must hold the biggest message too. */
    char *al = realloc(k->aligned, need);
    if (al == NULL) {
        return -1;
    }
    k->aligned = al;
    k->max_msg_size = need;
    return 0;
}

/*
 * The twin socket of the server's answer got: the fd to take from the
 * reply's fds, -1 when there is none, or -2 when the answer is wrong (a
 * twin we did not ask for, or a second one, or no fd where it says).
 */
static int
twin_index(const vfu_client_t *c, const struct vfu_client_caps *got,
           bool want_twin, uint32_t nr_fds)
{
    if (!got->twin_socket) {
        return -1;
    }
    if (!want_twin || c->has_twin || got->twin_fd_index < 0 ||
        (uint32_t)got->twin_fd_index >= nr_fds) {
        return -2;
    }
    return got->twin_fd_index;
}

static int
negotiate(vfu_client_t *c, uint16_t major, uint16_t minor, const void *data,
          size_t len, uint64_t our_xfer, bool want_twin,
          struct vfu_client_caps *server)
{
    struct vfio_user_version v = { .major = major, .minor = minor };
    struct iovec iov[2] = {
        { .iov_base = &v, .iov_len = sizeof(v) },
        { .iov_base = (void *)data, .iov_len = len },
    };
    int fds[VFU_MAX_RX_FDS];
    struct owned_reply r = { .cap = 65536, .fds = fds,
                             .cap_fds = VFU_MAX_RX_FDS };
    struct vfu_client_caps got;
    int rc = -1, twin = -1;

    r.buf = malloc(r.cap);
    if (r.buf == NULL) {
        return -1;
    }
    if (call_owned(c, VFIO_USER_VERSION, iov, 2, NULL, 0, &r) < 0) {
        goto out;
    }
    if (r.size < sizeof(v) || r.size > r.cap) {
        errno = EPROTO;
        goto out;
    }
    memcpy(&v, r.buf, sizeof(v));
    spec_defaults(&got);
    if (r.size > sizeof(v)) {
        const char *json = (const char *)r.buf + sizeof(v);
        size_t jlen = r.size - sizeof(v);
        if (json[jlen - 1] != '\0' || vfu_caps_parse(json, jlen, &got) < 0) {
            errno = EPROTO;
            goto out;
        }
    }
    got.major = v.major;
    got.minor = v.minor;
    if (got.major != major || got.minor > minor) {
        errno = EPROTO;
        goto out;
    }
    twin = twin_index(c, &got, want_twin, r.nr_fds);
    if (twin == -2) {
        errno = EPROTO;
        goto out;
    }
    pthread_mutex_lock(&c->conn.rx_lock);
    rc = grow_rx(c, our_xfer > got.max_data_xfer_size ? our_xfer
                                                      : got.max_data_xfer_size);
    pthread_mutex_unlock(&c->conn.rx_lock);
    if (rc < 0) {
        goto out;
    }
    c->our_max_xfer = our_xfer;
    if (twin >= 0) {
        rc = start_twin(c, fds[twin]);
        if (rc < 0) {
            goto out;
        }
        fds[twin] = -1;         /* the twin's now */
    }
    c->caps = got;
    if (server != NULL) {
        *server = got;
    }
out:
    {
        int err = errno;
        /* Fds that came with the answer and are not the twin. */
        for (uint32_t i = 0; i < r.nr_fds; i++) {
            if (fds[i] >= 0) {
                close(fds[i]);
            }
        }
        free(r.buf);
        errno = err;
    }
    return rc;
}

/* Did the capabilities document data (len bytes) propose the twin socket? */
static bool
proposes_twin(const void *data, size_t len)
{
    struct vfu_client_caps caps;

    vfu_caps_defaults(&caps);
    return len > 0 && vfu_caps_parse(data, len, &caps) == 0 && caps.twin_socket;
}

int
vfu_client_negotiate(vfu_client_t *c, const struct vfu_client_caps *caps,
                     struct vfu_client_caps *server)
{
    struct vfu_client_caps def;
    char json[1024];
    ssize_t n;

    if (caps == NULL) {
        vfu_client_default_caps(&def);
        caps = &def;
    }
    n = vfu_caps_format(caps, json, sizeof(json));
    if (n < 0) {
        return -1;
    }
    return negotiate(c, caps->major, caps->minor, json, (size_t)n,
                     caps->max_data_xfer_size != 0 ? caps->max_data_xfer_size
                         : VFIO_USER_DEFAULT_MAX_DATA_XFER_SIZE,
                     caps->twin_socket, server);
}

int
vfu_client_negotiate_raw(vfu_client_t *c, uint16_t major, uint16_t minor,
                         const void *data, size_t len,
                         struct vfu_client_caps *server)
{
    return negotiate(c, major, minor, data, len,
                     VFIO_USER_DEFAULT_MAX_DATA_XFER_SIZE,
                     proposes_twin(data, len), server);
}

/* ---- device, regions, interrupts ---- */

int
vfu_client_device_get_info(vfu_client_t *c, struct vfio_user_device_info *info)
{
    struct vfio_user_device_info req = { .argsz = sizeof(req) };

    return call1_exact(c, VFIO_USER_DEVICE_GET_INFO, &req, sizeof(req), info,
                       sizeof(*info));
}

void
vfu_client_region_info_free(struct vfu_client_region_info *ri)
{
    if (ri->fd >= 0) {
        close(ri->fd);
    }
    free(ri->sparse);
    free(ri->caps);
    memset(ri, 0, sizeof(*ri));
    ri->fd = -1;
}

/* Walk the capability chain of a region info reply of size bytes. */
static int
parse_region_caps(struct vfu_client_region_info *ri, const char *buf,
                  size_t size)
{
    uint64_t off = ri->info.cap_offset;

    if (!(ri->info.flags & VFIO_REGION_INFO_FLAG_CAPS)) {
        return 0;
    }
    for (int n = 0; off != 0; n++) {
        struct vfio_info_cap_header ch;
        if (n == MAX_REGION_CAPS || off < sizeof(ri->info) ||
            off > size || size - off < sizeof(ch)) {
            errno = EPROTO;
            return -1;
        }
        memcpy(&ch, buf + off, sizeof(ch));
        if (ch.id == VFIO_REGION_INFO_CAP_SPARSE_MMAP) {
            struct vfio_region_info_cap_sparse_mmap sp;
            if (size - off < sizeof(sp) || ri->sparse != NULL) {
                errno = EPROTO;
                return -1;
            }
            memcpy(&sp, buf + off, sizeof(sp));
            uint64_t bytes = (uint64_t)sp.nr_areas * sizeof(sp.areas[0]);
            if (bytes > size - off - sizeof(sp)) {
                errno = EPROTO;
                return -1;
            }
            ri->sparse = malloc(bytes + 1);
            if (ri->sparse == NULL) {
                return -1;
            }
            memcpy(ri->sparse, buf + off + sizeof(sp), bytes);
            ri->nr_sparse = sp.nr_areas;
        } else if (ch.id == VFIO_REGION_INFO_CAP_TYPE) {
            struct vfio_region_info_cap_type ty;
            if (size - off < sizeof(ty)) {
                errno = EPROTO;
                return -1;
            }
            memcpy(&ty, buf + off, sizeof(ty));
            ri->has_type = true;
            ri->type = ty.type;
            ri->subtype = ty.subtype;
        }
        off = ch.next;
    }
    return 0;
}

int
vfu_client_get_region_info(vfu_client_t *c, uint32_t index,
                           struct vfu_client_region_info *ri)
{
    struct vfio_region_info req = { .argsz = sizeof(req), .index = index };
    struct iovec iov = { .iov_base = &req, .iov_len = sizeof(req) };
    int fd = -1;
    struct owned_reply r = { .fds = &fd, .cap_fds = 1 };
    char *buf = NULL;

    memset(ri, 0, sizeof(*ri));
    ri->fd = -1;
    /* Twice at most: the first answer tells how much room the caps need. */
    for (int attempt = 0; attempt < 2; attempt++) {
        free(buf);
        buf = malloc(req.argsz);
        if (buf == NULL) {
            return -1;
        }
        r.buf = buf;
        r.cap = req.argsz;
        if (call_owned(c, VFIO_USER_DEVICE_GET_REGION_INFO, &iov, 1, NULL, 0,
                       &r) < 0) {
            goto fail;
        }
        if (r.size < sizeof(ri->info) || r.size > r.cap) {
            errno = EPROTO;
            goto fail_fd;
        }
        memcpy(&ri->info, buf, sizeof(ri->info));
        if (ri->info.argsz <= req.argsz || attempt == 1) {
            break;
        }
        /* Room for more than any reply we accept: the server is wrong. */
        if (ri->info.argsz > c->conn.max_msg_size - VFU_HDR_SIZE) {
            errno = EMSGSIZE;
            goto fail_fd;
        }
        if (r.nr_fds > 0) {
            close(fd);
            fd = -1;
        }
        req.argsz = ri->info.argsz;
    }
    if (parse_region_caps(ri, buf, r.size) < 0) {
        goto fail_fd;
    }
    if (r.size > sizeof(ri->info)) {
        ri->caps_size = r.size - sizeof(ri->info);
        ri->caps = malloc(ri->caps_size);
        if (ri->caps == NULL) {
            goto fail_fd;
        }
        memcpy(ri->caps, buf + sizeof(ri->info), ri->caps_size);
    }
    ri->fd = r.nr_fds > 0 ? fd : -1;
    free(buf);
    return 0;

fail_fd:
    if (r.nr_fds > 0) {
        close(fd);
    }
fail:
    {
        int err = errno;
        free(buf);
        free(ri->sparse);
        ri->sparse = NULL;
        errno = err;
    }
    return -1;
}

int
vfu_client_get_irq_info(vfu_client_t *c, uint32_t index,
                        struct vfio_irq_info *info)
{
    struct vfio_irq_info req = { .argsz = sizeof(req), .index = index };

    return call1_exact(c, VFIO_USER_DEVICE_GET_IRQ_INFO, &req, sizeof(req),
                       info, sizeof(*info));
}

int
vfu_client_set_irqs(vfu_client_t *c, uint32_t flags, uint32_t index,
                    uint32_t start, uint32_t count,
                    const int *fds, uint32_t nr_fds,
                    const void *data, size_t data_size)
{
    struct vfio_irq_set req = {
        .argsz = (uint32_t)(sizeof(req) + data_size),
        .flags = flags, .index = index, .start = start, .count = count,
    };
    struct iovec iov[2] = {
        { .iov_base = &req, .iov_len = sizeof(req) },
        { .iov_base = (void *)data, .iov_len = data_size },
    };
    int valid[VFU_MAX_RX_FDS];
    uint32_t nr = 0;

    if (nr_fds > VFU_MAX_RX_FDS || data_size > UINT32_MAX - sizeof(req)) {
        errno = EINVAL;
        return -1;
    }
    /* SCM_RIGHTS cannot carry "no fd": leave those entries out. */
    for (uint32_t i = 0; i < nr_fds; i++) {
        if (fds[i] >= 0) {
            valid[nr++] = fds[i];
        }
    }
    /* More than a message may carry, one a vector: in pieces. */
    uint32_t max = (uint32_t)c->caps.max_msg_fds;
    if (max > 0 && nr > max && nr == nr_fds && nr_fds == count &&
        (flags & VFIO_IRQ_SET_DATA_EVENTFD) && data_size == 0) {
        for (uint32_t done = 0; done < count; done += max) {
            uint32_t n = count - done < max ? count - done : max;
            if (vfu_client_set_irqs(c, flags, index, start + done, n,
                                    valid + done, n, NULL, 0) < 0) {
                return -1;
            }
        }
        return 0;
    }
    return call(c, VFIO_USER_DEVICE_SET_IRQS, iov, 2, valid, nr, NULL, NULL);
}

static size_t
xfer_chunk(vfu_client_t *c)
{
    uint64_t max = c->caps.max_data_xfer_size;

    if (max == 0 || max > c->conn.max_msg_size - CLIENT_MSG_SLACK) {
        max = c->conn.max_msg_size - CLIENT_MSG_SLACK;
    }
    return (size_t)max;
}

int
vfu_client_region_read(vfu_client_t *c, uint32_t index, uint64_t offset,
                       void *buf, size_t count)
{
    size_t chunk = xfer_chunk(c);
    size_t done = 0;

    do {
        size_t n = count - done < chunk ? count - done : chunk;
        struct vfio_user_region_access req = {
            .offset = offset + done, .region = index, .count = (uint32_t)n,
        };
        struct vfio_user_region_access rep = { 0 };
        struct iovec riov[2] = {
            { .iov_base = &rep, .iov_len = sizeof(rep) },
            { .iov_base = (char *)buf + done, .iov_len = n },
        };
        size_t size;
        if (callv(c, VFIO_USER_REGION_READ, &req, sizeof(req), riov, 2,
                  &size) < 0) {
            return -1;
        }
        if (size != sizeof(req) + n || rep.count != n) {
            errno = EPROTO;
            return -1;
        }
        done += n;
    } while (done < count);
    return 0;
}

int
vfu_client_region_write(vfu_client_t *c, uint32_t index, uint64_t offset,
                        const void *buf, size_t count)
{
    size_t chunk = xfer_chunk(c);
    size_t done = 0;

    do {
        size_t n = count - done < chunk ? count - done : chunk;
        struct vfio_user_region_access req = {
            .offset = offset + done, .region = index, .count = (uint32_t)n,
        };
        struct vfio_user_region_access rep;
        struct iovec iov[2] = {
            { .iov_base = &req, .iov_len = sizeof(req) },
            { .iov_base = (char *)buf + done, .iov_len = n },
        };
        size_t size = sizeof(rep);
        if (call(c, VFIO_USER_REGION_WRITE, iov, 2, NULL, 0, &rep,
                 &size) < 0) {
            return -1;
        }
        if (size != sizeof(rep) || rep.count != n) {
            errno = EPROTO;
            return -1;
        }
        done += n;
    } while (done < count);
    return 0;
}

int
vfu_client_region_write_posted(vfu_client_t *c, uint32_t index,
                               uint64_t offset, const void *buf, size_t count)
{
    struct vfio_user_region_access req = {
        .offset = offset, .region = index, .count = (uint32_t)count,
    };
    struct iovec iov[2] = {
        { .iov_base = &req, .iov_len = sizeof(req) },
        { .iov_base = (void *)buf, .iov_len = count },
    };
    struct vfio_user_header h = {
        .cmd = VFIO_USER_REGION_WRITE,
        .flags = VFIO_USER_F_TYPE_COMMAND | VFIO_USER_F_NO_REPLY,
    };

    if (count > xfer_chunk(c)) {
        errno = EINVAL;
        return -1;
    }
    h.msg_id = vfu_client_next_msg_id(c);
    return vfu_conn_send(&c->conn, &h, iov, 2, NULL, 0);
}

int
vfu_client_region_write_multi(vfu_client_t *c,
                              const struct vfio_user_write_multi_one *wrs,
                              uint32_t nr)
{
    struct vfio_user_write_multi req = { .wr_cnt = nr }, rep;
    struct iovec iov[2] = {
        { .iov_base = &req, .iov_len = sizeof(req) },
        { .iov_base = (void *)wrs, .iov_len = (size_t)nr * sizeof(*wrs) },
    };
    size_t size = sizeof(rep);

    if (nr == 0 || nr > VFIO_USER_MULTI_MAX) {
        errno = EINVAL;
        return -1;
    }
    if (call(c, VFIO_USER_REGION_WRITE_MULTI, iov, 2, NULL, 0, &rep,
             &size) < 0) {
        return -1;
    }
    if (size != sizeof(rep) || rep.wr_cnt > nr) {
        errno = EPROTO;
        return -1;
    }
    return (int)rep.wr_cnt;
}

int
vfu_client_device_reset(vfu_client_t *c)
{
    size_t size = 0;
    return call(c, VFIO_USER_DEVICE_RESET, NULL, 0, NULL, 0, NULL, &size);
}

int
vfu_client_get_region_io_fds(vfu_client_t *c, uint32_t index,
                             struct vfio_user_region_io_fds_reply *reply,
                             size_t *reply_size, int *fds, uint32_t *nr_fds)
{
    struct vfio_user_region_io_fds_request req = {
        .argsz = (uint32_t)(*reply_size > UINT32_MAX ? UINT32_MAX : *reply_size),
        .index = index,
    };
    struct iovec iov = { .iov_base = &req, .iov_len = sizeof(req) };
    struct owned_reply r = {
        .buf = reply, .cap = *reply_size,
        .fds = fds, .cap_fds = nr_fds != NULL ? *nr_fds : 0,
    };

    if (nr_fds != NULL) {
        *nr_fds = 0;
    }
    if (call_owned(c, VFIO_USER_DEVICE_GET_REGION_IO_FDS, &iov, 1, NULL, 0,
                   &r) < 0) {
        return -1;
    }
    if (r.size > r.cap || r.size < sizeof(*reply)) {
        for (uint32_t i = 0; i < r.nr_fds; i++) {
            close(fds[i]);
        }
        errno = r.size > r.cap ? EMSGSIZE : EPROTO;
        return -1;
    }
    *reply_size = r.size;
    if (nr_fds != NULL) {
        *nr_fds = r.nr_fds;
    }
    return 0;
}

/* ---- client memory ---- */

int
vfu_client_dma_map(vfu_client_t *c, uint64_t iova, uint64_t size,
                   uint32_t flags, int fd, uint64_t fd_offset, void *vaddr)
{
    struct vfio_user_dma_map req = {
        .argsz = sizeof(req), .flags = flags,
        .offset = fd_offset, .addr = iova, .size = size,
    };
    struct iovec iov = { .iov_base = &req, .iov_len = sizeof(req) };
    size_t rsize = 0;

    if (vaddr != NULL) {
        /* Make room first so that a mapping the server took is recorded. */
        pthread_mutex_lock(&c->dma_lock);
        if (c->nr_dma == c->cap_dma) {
            size_t cap = c->cap_dma ? 2 * c->cap_dma : 16;
            struct dma_entry *d = realloc(c->dma, cap * sizeof(*d));
            if (d == NULL) {
                pthread_mutex_unlock(&c->dma_lock);
                return -1;
            }
            c->dma = d;
            c->cap_dma = cap;
        }
        pthread_mutex_unlock(&c->dma_lock);
    }
    if (call(c, VFIO_USER_DMA_MAP, &iov, 1, fd >= 0 ? &fd : NULL,
             fd >= 0 ? 1 : 0, NULL, &rsize) < 0) {
        return -1;
    }
    if (vaddr != NULL) {
        pthread_mutex_lock(&c->dma_lock);
        c->dma[c->nr_dma++] = (struct dma_entry) {
            .iova = iova, .size = size, .flags = flags, .vaddr = vaddr,
        };
        pthread_mutex_unlock(&c->dma_lock);
    }
    return 0;
}

int
vfu_client_dma_unmap(vfu_client_t *c, uint64_t iova, uint64_t size,
                     uint32_t flags)
{
    struct vfio_user_dma_unmap req = {
        .argsz = sizeof(req), .flags = flags, .addr = iova, .size = size,
    };
    char rep[sizeof(req) + sizeof(struct vfio_user_bitmap)];
    size_t rsize = sizeof(rep);

    if (call1(c, VFIO_USER_DMA_UNMAP, &req, sizeof(req), rep, &rsize) < 0) {
        return -1;
    }
    pthread_mutex_lock(&c->dma_lock);
    for (size_t i = 0; i < c->nr_dma;) {
        struct dma_entry *e = &c->dma[i];
        if ((flags & VFIO_DMA_UNMAP_FLAG_ALL) ||
            (e->iova >= iova && e->iova - iova <= size &&
             e->size <= size - (e->iova - iova))) {
            *e = c->dma[--c->nr_dma];
            continue;
        }
        i++;
    }
    pthread_mutex_unlock(&c->dma_lock);
    return 0;
}

/* ---- device features, dirty page logging, migration ---- */

int
vfu_client_device_feature(vfu_client_t *c, uint32_t flags,
                          const void *in, size_t in_size,
                          void *out, size_t *out_size)
{
    size_t out_cap = out != NULL && out_size != NULL ? *out_size : 0;
    size_t room = in_size > out_cap ? in_size : out_cap;
    struct vfio_user_device_feature req = { .flags = flags };
    struct iovec iov[2] = {
        { .iov_base = &req, .iov_len = sizeof(req) },
        { .iov_base = (void *)in, .iov_len = in_size },
    };
    size_t size = sizeof(req) + room;
    char small[256];
    char *rbuf;
    int rc = -1;

    if (room > UINT32_MAX - sizeof(req)) {
        errno = EINVAL;
        return -1;
    }
    req.argsz = (uint32_t)(sizeof(req) + room);
    /* State changes and flags fit on the stack: no allocation for them. */
    rbuf = size <= sizeof(small) ? small : malloc(size);
    if (rbuf == NULL) {
        return -1;
    }
    if (call(c, VFIO_USER_DEVICE_FEATURE, iov, 2, NULL, 0, rbuf, &size) < 0) {
        goto out;
    }
    if (size < sizeof(req)) {
        errno = EPROTO;
        goto out;
    }
    size -= sizeof(req);
    if (size > out_cap) {
        size = out_cap;
    }
    if (size > 0) {
        memcpy(out, rbuf + sizeof(req), size);
    }
    if (out_size != NULL) {
        *out_size = size;
    }
    rc = 0;
out:
    if (rbuf != small) {
        int err = errno;
        free(rbuf);
        errno = err;
    }
    return rc;
}

int
vfu_client_dma_logging_start(vfu_client_t *c, uint64_t page_size,
    const struct vfio_user_device_feature_dma_logging_range *ranges,
    uint32_t nr)
{
    struct vfio_user_device_feature_dma_logging_control *ctl;
    size_t size = sizeof(*ctl) + (size_t)nr * sizeof(ranges[0]);
    size_t out_size = size;
    int rc;

    if (nr > (UINT32_MAX - sizeof(*ctl)) / sizeof(ranges[0])) {
        errno = EINVAL;
        return -1;
    }
    ctl = calloc(1, 2 * size);
    if (ctl == NULL) {
        return -1;
    }
    ctl->page_size = page_size;
    ctl->num_ranges = nr;
    if (nr > 0) {
        memcpy(ctl->ranges, ranges, nr * sizeof(ranges[0]));
    }
    rc = vfu_client_device_feature(c, VFIO_DEVICE_FEATURE_SET |
                                   VFIO_DEVICE_FEATURE_DMA_LOGGING_START,
                                   ctl, size, (char *)ctl + size, &out_size);
    {
        int err = errno;
        free(ctl);
        errno = err;
    }
    return rc;
}

int
vfu_client_dma_logging_stop(vfu_client_t *c)
{
    return vfu_client_device_feature(c, VFIO_DEVICE_FEATURE_SET |
                                     VFIO_DEVICE_FEATURE_DMA_LOGGING_STOP,
                                     NULL, 0, NULL, NULL);
}

/*
 * The bitmap is read from the socket straight into the caller's buffer. The
 * receive buffer still grows to hold the whole reply, for when another
 * thread is the one reading and takes it the ordinary way.
 */
int
vfu_client_dma_logging_report(vfu_client_t *c, uint64_t iova,
                              uint64_t length, uint64_t page_size,
                              void *bitmap, size_t bitmap_size)
{
    struct vfio_user_device_feature_dma_logging_report rep = {
        .iova = iova, .length = length, .page_size = page_size,
    };
    struct vfio_user_device_feature req = {
        .flags = VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT,
    };
    const size_t head = sizeof(req) + sizeof(rep);
    struct iovec iov[2] = {
        { .iov_base = &req, .iov_len = sizeof(req) },
        { .iov_base = &rep, .iov_len = sizeof(rep) },
    };
    char rhead[sizeof(req) + sizeof(rep)];
    struct iovec riov[2] = {
        { .iov_base = rhead, .iov_len = sizeof(rhead) },
        { .iov_base = bitmap, .iov_len = bitmap_size },
    };
    size_t size;
    int rc;

    if ((bitmap == NULL && bitmap_size != 0) ||
        bitmap_size > UINT32_MAX - head - VFU_HDR_SIZE) {
        errno = EINVAL;
        return -1;
    }
    req.argsz = (uint32_t)(head + bitmap_size);
    size = head + bitmap_size;
    if (size + VFU_HDR_SIZE > c->conn.max_msg_size) {
        int grown;

        pthread_mutex_lock(&c->conn.rx_lock);
        /* Not from inside a DMA request handler: its message is pinned. */
        grown = c->conn.pinned == SIZE_MAX ? grow_rx(c, size) : 0;
        pthread_mutex_unlock(&c->conn.rx_lock);
        if (grown < 0) {
            return -1;
        }
    }
    rc = vfu_conn_callv(&c->conn, VFIO_USER_DEVICE_FEATURE, iov, 2, NULL, 0,
                        riov, 2, &size, on_request, c);
    serve_deferred(c);
    if (rc < 0) {
        return -1;
    }
    if (size < head) {
        errno = EPROTO;
        return -1;
    }
    size -= head;
    if (size < bitmap_size) {
        memset((char *)bitmap + size, 0, bitmap_size - size);
    }
    return 0;
}

/* GET of a feature whose answer is exactly out_size bytes; else EPROTO. */
static int
feature_get_exact(vfu_client_t *c, uint32_t feature, void *out,
                  size_t out_size)
{
    size_t size = out_size;

    if (vfu_client_device_feature(c, VFIO_DEVICE_FEATURE_GET | feature,
                                  NULL, 0, out, &size) < 0) {
        return -1;
    }
    if (size != out_size) {
        errno = EPROTO;
        return -1;
    }
    return 0;
}

int
vfu_client_mig_get_flags(vfu_client_t *c, uint64_t *flags)
{
    struct vfio_user_device_feature_migration m = { 0 };

    if (feature_get_exact(c, VFIO_DEVICE_FEATURE_MIGRATION, &m,
                          sizeof(m)) < 0) {
        return -1;
    }
    *flags = m.flags;
    return 0;
}

int
vfu_client_mig_get_state(vfu_client_t *c, uint32_t *state)
{
    struct vfio_user_device_feature_mig_state s = { 0 };

    if (feature_get_exact(c, VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE, &s,
                          sizeof(s)) < 0) {
        return -1;
    }
    *state = s.device_state;
    return 0;
}

int
vfu_client_mig_set_state(vfu_client_t *c, uint32_t state)
{
    struct vfio_user_device_feature_mig_state s = { .device_state = state };
    struct vfio_user_device_feature_mig_state out;
    size_t size = sizeof(out);

    return vfu_client_device_feature(c, VFIO_DEVICE_FEATURE_SET |
                                     VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE,
                                     &s, sizeof(s), &out, &size);
}

ssize_t
vfu_client_mig_data_read(vfu_client_t *c, void *buf, size_t size)
{
    struct vfio_user_mig_data req, rep = { 0 };
    struct iovec riov[2] = {
        { .iov_base = &rep, .iov_len = sizeof(rep) },
        { .iov_base = buf, .iov_len = size },
    };
    size_t rsize;

    if (size > xfer_chunk(c)) {
        errno = EINVAL;
        return -1;
    }
    req.argsz = (uint32_t)(sizeof(rep) + size);
    req.size = (uint32_t)size;
    /* The data lands in buf straight from the socket. */
    if (callv(c, VFIO_USER_MIG_DATA_READ, &req, sizeof(req), riov, 2,
              &rsize) < 0) {
        return -1;
    }
    if (rsize < sizeof(rep) || rep.size > size ||
        rep.size != rsize - sizeof(rep)) {
        errno = EPROTO;
        return -1;
    }
    return rep.size;
}

int
vfu_client_mig_data_write(vfu_client_t *c, const void *buf, size_t size)
{
    struct vfio_user_mig_data req = {
        .argsz = sizeof(req), .size = (uint32_t)size,
    };
    struct iovec iov[2] = {
        { .iov_base = &req, .iov_len = sizeof(req) },
        { .iov_base = (void *)buf, .iov_len = size },
    };
    char rep[sizeof(req)];
    size_t rsize = sizeof(rep);

    if (size > xfer_chunk(c)) {
        errno = EINVAL;
        return -1;
    }
    return call(c, VFIO_USER_MIG_DATA_WRITE, iov, 2, NULL, 0, rep, &rsize);
}
