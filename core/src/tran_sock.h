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

#endif
