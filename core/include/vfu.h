/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 the vfu authors. */

/*
 * vfu's additions to the libvfio-user API. Everything in libvfio-user.h is
 * source-compatible with libvfio-user; what is here is vfu's own, for
 * programs that want it (the Lua runner uses both).
 */
#ifndef VFU_H
#define VFU_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "libvfio-user.h"

#ifdef __cplusplus
extern "C" {
#endif

/*
 * vfu_trace_fn_t - called for every message the server handles and every
 * reply it sends, after framing and before any checks of the payload.
 *
 * @hdr:      the message header (for a reply: the reply's header).
 * @payload:  bytes after the header; NULL for an oversized request, whose
 *            payload is dropped unseen, and for a header whose msg_size is
 *            below 16 (taken as the bare header).
 * @size:     payload size (for an oversized request, the size it declared;
 *            0 for a header below 16).
 * @is_reply: false for a request from the client, true for our reply.
 * @arg:      what vfu_setup_trace() was given.
 *
 * It runs on the loop's thread and must not call back into the context.
 */
typedef void (vfu_trace_fn_t)(vfu_ctx_t *ctx, const struct vfio_user_header *hdr,
                              const void *payload, size_t size, bool is_reply,
                              void *arg);

/*
 * vfu_setup_trace() - install (or with NULL remove) a message trace.
 *
 * Returns 0, or -1 with errno EINVAL for a NULL context.
 */
int
vfu_setup_trace(vfu_ctx_t *ctx, vfu_trace_fn_t *fn, void *arg);

/*
 * vfu_setup_socket_mode() - set the permission bits of the socket file.
 *
 * The socket is created owner-only (0600) by vfu_create_ctx(); this widens
 * or narrows that, for instance 0660 to let a VMM in the owner's group
 * connect. Only the permission bits (07777 & ~S_IFMT) are used.
 *
 * Returns 0, or -1 with errno: EINVAL for a NULL context, bits outside 0777,
 * or an abstract (empty path) socket, which has no file; errors of chmod(2).
 */
int
vfu_setup_socket_mode(vfu_ctx_t *ctx, mode_t mode);

/*
 * vfu_get_poll_fds() - the descriptors behind vfu_get_poll_fd(), for a loop
 * that polls other things as well (timers, a stop descriptor).
 *
 * @fds: filled with two descriptors to poll for POLLIN: the client's socket
 *       (the listening socket while no client is attached), and an eventfd
 *       that says requests wait in the context's buffer (read from the
 *       socket by a device thread waiting for a DMA reply).
 *
 * When either is readable, call vfu_attach_ctx() (no client yet) or
 * vfu_run_ctx(). Polling these directly costs less per message than polling
 * the epoll set vfu_get_poll_fd() returns: a socket watched by an epoll set
 * pays for a callback on every message. The socket changes when a client
 * comes or goes, so ask again after vfu_attach_ctx() or a lost client.
 *
 * Returns 0, or -1 with errno EINVAL (NULL context or fds).
 */
int
vfu_get_poll_fds(vfu_ctx_t *ctx, int fds[2]);

/*
 * vfu_cmd_name() - the protocol's name of a command ("REGION_READ", ...),
 * or "unknown". The string is static.
 */
const char *
vfu_cmd_name(uint16_t cmd);

#ifdef __cplusplus
}
#endif

#endif /* VFU_H */
