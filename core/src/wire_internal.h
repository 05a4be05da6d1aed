/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 the vfu authors. */

/*
 * What wire_call.c (calls and their replies) takes from wire.c (framing):
 * reading, and surgery on the receive buffer and its fd batches.
 */
#ifndef VFU_WIRE_INTERNAL_H
#define VFU_WIRE_INTERNAL_H

#include "wire.h"

/*
 * A call whose reply may be this big reads the reply header alone first,
 * so that the payload can go straight to the caller: one more system call
 * is cheaper than copying this much.
 */
#define VFU_DIRECT_MIN (32u << 10)

/*
 * vfu_conn_fill(), reading at most limit bytes if limit is not 0. Without
 * fds, a plain recv(): the kernel then closes any fds that came along.
 */
ssize_t vfu_conn_read(struct vfu_conn *c, bool block, size_t limit, bool fds);

/* Move the fds that arrived within stream range [start, end) into m (or
 * close them if m is NULL); any batch before start is stale and closed. */
void vfu_conn_claim_fds(struct vfu_conn *c, uint64_t start, uint64_t end,
                        struct vfu_msg *m);

/* A message with nothing in it yet. */
void vfu_msg_reset(struct vfu_msg *m);

/* Remove buffered bytes [off, off + len), handled out of order. */
void vfu_conn_excise(struct vfu_conn *c, size_t off, size_t len);

/* Drop the handled message at rx offset p; returns where the next starts. */
size_t vfu_conn_consume(struct vfu_conn *c, size_t p, size_t len);

/* Read bytes [off, off + left) of a payload from the socket straight into
 * the pieces iov. Failing half-way ends the stream. Returns 0 or -1. */
int vfu_conn_recv_into(struct vfu_conn *c, const struct iovec *iov,
                       int iovcnt, size_t off, size_t left);

#endif /* VFU_WIRE_INTERNAL_H */
