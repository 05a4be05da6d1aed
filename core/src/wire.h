/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 the vfu authors. */

/*
 * Message framing over a UNIX stream socket, shared by the server and the
 * client so that nothing about the protocol is written twice.
 *
 * Receiving: one recvmsg() pulls in as many bytes as are ready into a
 * per-connection buffer, and complete messages are then taken from it
 * without further system calls. SCM_RIGHTS fds belong to the message that
 * holds the last byte of the recvmsg() that brought them: the kernel stops a
 * read right after the first skb carrying fds, and a sender's fds ride on
 * the first skb of its sendmsg().
 *
 * Sending: one sendmsg() per message, under a lock so that replies from the
 * loop and requests from device threads never interleave.
 */
#ifndef VFU_WIRE_H
#define VFU_WIRE_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "vfio-user.h"

#define VFU_HDR_SIZE        sizeof(struct vfio_user_header)
#define VFU_CALL_TIMEOUT_MS 10000   /* a peer silent this long is gone */
/* How long a server loop's own call waits once the peer waits for the loop
 * too (wire_call.c, peer_awaits_reply()). */
#define VFU_PEER_WAIT_MS    500
#define VFU_ABANDONED_CALLS 8   /* late replies recognised (wire_call.c) */
#define VFU_MAX_RX_FDS      64   /* a cmsg buffer bigger than any max_msg_fds */
#define VFU_MSG_MAX_IOV     8
#define VFU_FD_BATCHES      8    /* fd batches there is room for at first */
#define VFU_FD_BATCHES_MAX  1024 /* ... at most: a peer sending more fd-carrying
                                  * messages than this while we wait for a
                                  * reply has its connection failed */

struct vfu_fd_batch {
    uint64_t pos;       /* stream offset of the last byte read with them */
    uint32_t nr;
    bool truncated;     /* MSG_CTRUNC: the kernel dropped (closed) some */
    int fds[VFU_MAX_RX_FDS];
};

/* A message taken from the stream, and the reply being built for it. */
struct vfu_msg {
    struct vfio_user_header hdr;
    void *in;                       /* payload after the header */
    size_t in_size;
    int fds[VFU_MAX_RX_FDS];
    uint32_t nr_fds;
    bool fds_truncated;

    /* reply payload: pieces gathered into one sendmsg() */
    struct iovec out[VFU_MSG_MAX_IOV];
    int out_iovcnt;
    size_t out_size;
    const int *out_fds;
    uint32_t nr_out_fds;
    /* An fd the reply hands over (out_fds may point here): closed by
     * vfu_conn_reply() once sent, or when no reply can carry it; -1 none. */
    int out_owned_fd;
};

/* A server->client request waiting for its reply (see vfu_conn_call). */
struct vfu_call {
    struct vfu_call *next;
    uint16_t msg_id;
    uint64_t started_ms;            /* coarse monotonic, for the watchdog */
    uint64_t peer_waits_ms;         /* since when the peer waits for us; 0 */
    bool done;
    bool replied;                   /* done by a reply, not by giving up */
    int error;                      /* errno from the reply, or ours */
    const struct iovec *reply;      /* payload destination, in pieces */
    int reply_iovcnt;
    size_t reply_cap;               /* sum of the pieces */
    size_t reply_size;              /* bytes stored */
};

typedef int (vfu_conn_request_fn_t)(void *opaque, struct vfu_msg *msg);

struct vfu_conn {
    int fd;
    size_t max_msg_size;            /* header included */
    uint32_t max_fds;               /* fds accepted per message */

    char *rx;                       /* buffered stream bytes [head, tail) */
    char *aligned;                  /* 8-aligned copy of a misaligned payload */
    size_t rx_cap, rx_head, rx_tail;
    uint64_t rx_pos;                /* stream offset of rx[0] */
    size_t pinned;                  /* rx offset that must not move, or SIZE_MAX */
    uint64_t skip;                  /* bytes of an oversized message to drop */
    bool eof;

    /* The fds of messages read but not yet taken, in stream order. A DMA
     * call reads ahead of the loop, so there may be many: grown on demand. */
    struct vfu_fd_batch *batches;
    uint32_t nr_batches, cap_batches;
    bool fds_lost;                  /* some had no room: fail the stream */

    pthread_mutex_t tx_lock;
    pthread_mutex_t rx_lock;        /* recursive; held by whoever reads */
    bool serve_mode;                /* a server loop owns the read side */
    bool loop_reading;              /* the loop holds rx_lock ... */
    pthread_t loop_thread;          /* ... on this thread */
    pthread_mutex_t call_lock;      /* guards calls and next_msg_id */
    pthread_cond_t call_cond;
    uint32_t nr_waiting;            /* threads in call_cond: worth a signal */
    struct vfu_call *calls;         /* requests of ours awaiting a reply */
    uint32_t nr_calls;              /* their number; atomic reads allowed */
    bool closing;                   /* no new calls: the connection is going */
    int close_err;                  /* what waiting calls fail with then */

    /* The call watchdog (call_watchdog.c), guarded by call_lock. */
    bool guarded;                   /* it bounds blocking reads: no poll first */
    bool wd_stop;
    bool timed_out;                 /* it gave up on the connection */
    pthread_t wd_thread;
    pthread_cond_t wd_cond;
    /* Called when a call read requests it left buffered for the loop. */
    void (*kick)(void *arg);
    void *kick_arg;
    uint16_t next_msg_id;
    /* Calls given up before their reply came, guarded by call_lock: a late
     * reply to one is dropped, not taken for an unsolicited one. */
    uint32_t abandoned[VFU_ABANDONED_CALLS];    /* msg_id + 1; 0: none */
    uint32_t nr_abandoned;          /* ever; the last ones are kept */
};

int vfu_conn_init(struct vfu_conn *c, int fd, size_t max_msg_size,
                  uint32_t max_fds);
/*
 * Bound every call by the call timeout with a watchdog thread, for a side
 * that waits for replies on nearly every read (the client): its blocking
 * reads then need neither SO_RCVTIMEO (a kernel timer per read) nor a
 * poll() first. A call unanswered for VFU_CALL_TIMEOUT_MS makes the
 * watchdog shut the socket down: that call fails with ETIMEDOUT, later
 * ones with ENOTCONN. Stopped by vfu_conn_fini(). Returns 0 or -1/errno.
 */
int vfu_conn_watchdog_start(struct vfu_conn *c);
void vfu_conn_watchdog_stop(struct vfu_conn *c);

/* Milliseconds of a coarse monotonic clock (no system call). */
uint64_t vfu_coarse_ms(void);
/* Close the socket and any fds still buffered; the conn can be reused. */
void vfu_conn_fini(struct vfu_conn *c);

/*
 * Read what the socket has (waiting for data if block). Returns bytes read,
 * or -1 with errno: EAGAIN nothing ready, ENOTCONN peer closed, ENOBUFS no
 * room while a message is pinned, others from recvmsg.
 */
ssize_t vfu_conn_fill(struct vfu_conn *c, bool block);

/*
 * Take the next complete message. Returns 1 and fills msg (msg->in points
 * into the buffer, valid until the next vfu_conn_take/fill), 0 when none is
 * complete yet, -1 with errno when the stream is broken (EPROTO: header
 * size below 16, on a client's connection, or fds that could not be kept:
 * more than VFU_FD_BATCHES_MAX fd-carrying messages read ahead). An oversized message is
 * returned with in == NULL and in_size holding its declared payload size:
 * the caller answers it and the payload is discarded as it arrives. In
 * serve_mode a header declaring less than its own 16 bytes is returned the
 * same way, in == NULL and in_size 0, framed as the bare header.
 */
int vfu_conn_take(struct vfu_conn *c, struct vfu_msg *msg);

/* The loop is done with the last message taken: the buffer may move. */
void vfu_conn_unpin(struct vfu_conn *c);

/* Fail every waiting vfu_conn_call with err (connection lost), and any
 * new one. */
void vfu_conn_fail_calls(struct vfu_conn *c, int err);

/* Close fds of msg that no handler claimed. */
void vfu_msg_close_fds(struct vfu_msg *msg);

/* Add a piece to msg's reply. Returns -1/E2BIG when out of slots. */
int vfu_msg_reply_add(struct vfu_msg *msg, const void *data, size_t size);

/*
 * Wait up to timeout_ms (-1: forever) for events (POLLIN, POLLOUT) on fd,
 * retrying EINTR. Returns 0 once poll reports the fd, or -1 with errno
 * (ETIMEDOUT when the time ran out).
 */
int vfu_wait_fd(int fd, short events, int timeout_ms);

/*
 * Send total bytes gathered from v[0..cnt) (which is stepped past what
 * went out) with fds, under the send lock, retrying partial sends and
 * EINTR. Returns 0 or -1 with errno (ENOTCONN for a gone peer).
 */
int vfu_conn_sendv(struct vfu_conn *c, struct iovec *v, int cnt, size_t total,
                   const int *fds, uint32_t nr_fds);

/* Send one message: header fields are taken from hdr except msg_size,
 * which is computed. Retries partial sends and EINTR. */
int vfu_conn_send(struct vfu_conn *c, const struct vfio_user_header *hdr,
                  const struct iovec *iov, int iovcnt,
                  const int *fds, uint32_t nr_fds);

/*
 * The loop's thread is about to call out into code that may wait for
 * another thread's call (a quiesce callback waiting for a device thread
 * doing DMA by message): while it is out, nobody reads for that thread, so
 * it must read its reply itself. Gives up the read side if the loop holds
 * it on this thread; returns whether it did, for vfu_conn_loop_step_in().
 * The message being handled stays pinned in the buffer meanwhile.
 */
bool vfu_conn_loop_step_out(struct vfu_conn *c);
void vfu_conn_loop_step_in(struct vfu_conn *c, bool out);
/* The serving loop takes the read side on this thread, and gives it up
 * (waking callers that waited for it to read their replies). */
void vfu_conn_loop_enter(struct vfu_conn *c);
void vfu_conn_loop_leave(struct vfu_conn *c);

/* Send the reply to req built in req->out, or an error reply if err;
 * req->out_owned_fd is closed either way. */
int vfu_conn_reply(struct vfu_conn *c, const struct vfu_msg *req, int err);

/*
 * Send a request and wait for its reply, from any thread. While waiting,
 * whoever holds the read side hands replies to their callers; requests from
 * the peer stay queued for the loop, or go to on_request if it is non-NULL
 * (the client serves DMA_READ/WRITE that way). Returns 0 or -1 with errno
 * (the peer's error, or EPROTO/ENOTCONN/EMSGSIZE).
 */
int vfu_conn_call(struct vfu_conn *c, uint16_t cmd,
                  const struct iovec *iov, int iovcnt,
                  const int *fds, uint32_t nr_fds,
                  void *reply, size_t *reply_size,
                  vfu_conn_request_fn_t *on_request, void *opaque);

/*
 * The same with the reply payload scattered over reply_iov (a reply header
 * and the caller's data buffer, say). A large reply to this call is read
 * from the socket straight into those pieces, with no copy in between.
 */
int vfu_conn_callv(struct vfu_conn *c, uint16_t cmd,
                   const struct iovec *iov, int iovcnt,
                   const int *fds, uint32_t nr_fds,
                   const struct iovec *reply_iov, int reply_iovcnt,
                   size_t *reply_size,
                   vfu_conn_request_fn_t *on_request, void *opaque);

/* Offer a reply taken by the loop to a waiting vfu_conn_call. Returns true
 * if one was waiting for it. */
bool vfu_conn_deliver_reply(struct vfu_conn *c, struct vfu_msg *msg);

#endif /* VFU_WIRE_H */
