/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 the vfu authors. */
#ifndef VFU_TRAN_SOCK_H
#define VFU_TRAN_SOCK_H

#include "libvfio-user.h"

/* Bind and listen at ctx->sock_path (non-blocking with ATTACH_NB). */
int vfu_sock_listen(vfu_ctx_t *ctx);
/* Accept the next client: its fd, or -1 (EAGAIN with ATTACH_NB). */
int vfu_sock_accept(vfu_ctx_t *ctx);
/* Stop listening and remove the socket file. */
void vfu_sock_close(vfu_ctx_t *ctx);

/*
 * The twin socket: a second connection to the client, on which the
 * server's own requests (DMA_READ/WRITE) and the client's replies travel.
 * vfu_twin_open() makes the socket pair and keeps our end as ctx->twin;
 * it returns the client's end (for the VERSION reply), or -1 with errno.
 * vfu_twin_hangup() fails the calls on it and wakes any thread blocked
 * reading it; vfu_twin_close() then frees it (once no device thread can
 * be using it, as for ctx->conn).
 */
int vfu_twin_open(vfu_ctx_t *ctx);
void vfu_twin_hangup(vfu_ctx_t *ctx);
void vfu_twin_close(vfu_ctx_t *ctx);
/* What the twin does with a command from the client: drops it. */
int vfu_twin_on_request(void *ctx, struct vfu_msg *msg);

#endif
