/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 the vfu authors. */

/*
 * vfu client API: the VMM side of vfio-user, for tools, tests and bindings.
 *
 * A client is one connection to one device server. Every call returns 0 (or
 * a byte count) on success, or -1 with errno set: the server's error_no when
 * the server answered with an error, otherwise a local error (ENOTCONN when
 * the server went away, ETIMEDOUT when it did not answer, EPROTO/EMSGSIZE for
 * a malformed reply, EINVAL for bad arguments).
 *
 * Threads: any number of threads may issue requests on one client at once
 * (requests are pipelined; replies are matched by message id). While a call
 * waits, the client serves the server's DMA_READ/DMA_WRITE requests from its
 * DMA table (see vfu_client_dma_map()). vfu_client_close() must not race
 * with other calls.
 *
 * The twin socket: a client that proposes twin_socket in VERSION (see
 * struct vfu_client_caps) and whose server agrees gets a second socket,
 * on which the server sends its DMA_READ/DMA_WRITE requests and the client
 * answers them. A thread of the client's own serves it from the same DMA
 * table, at any time: the server's requests then wait neither for a call
 * of the client's nor for vfu_client_poll(), and none arrive on the main
 * socket. Without it (the default, and what QEMU does) they come on the
 * main socket and are served as above.
 */
#ifndef VFU_CLIENT_H
#define VFU_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "vfio-user.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct vfu_client vfu_client_t;

/*
 * Session capabilities, as proposed in VERSION and as the server answered.
 * Sizes are in bytes.
 */
struct vfu_client_caps {
    uint16_t major, minor;
    uint32_t max_msg_fds;
    uint64_t max_data_xfer_size;
    uint64_t max_dma_maps;
    uint64_t pgsizes;
    uint64_t migr_pgsize;
    uint64_t migr_max_bitmap_size;
    bool has_migration;         /* a "migration" object is present */
    /*
     * "twin_socket": proposed, the client asks for a second socket that
     * carries the server's own requests (DMA_READ/DMA_WRITE) and their
     * replies, so that they never queue behind the client's requests and
     * replies on the main socket. A server that agrees passes the
     * client's end of a new socket pair with its VERSION reply, as fd
     * number twin_fd_index of that reply. vfu's server agrees when the
     * client proposes it and its max_msg_fds is at least 1.
     */
    bool twin_socket;
    bool write_multiple;
    int32_t twin_fd_index;      /* in a server's answer; -1: none */
};

/* ---- connection ---- */

/*
 * vfu_client_connect() - connect to the server listening at @path.
 *
 * Nothing is sent: call vfu_client_negotiate() (or _raw) next.
 *
 * Every call waits at most 10 s for its reply. A server that stays silent
 * longer is given up on: the call fails with ETIMEDOUT, the connection is
 * shut down and later calls fail with ENOTCONN. (A watchdog thread per
 * client, waking once a second, keeps that time; blocking reads then need
 * no kernel timer each.)
 *
 * Returns the client, or NULL with errno set (from socket(2)/connect(2),
 * pthread_create(3), ENAMETOOLONG, ENOMEM).
 */
vfu_client_t *
vfu_client_connect(const char *path);

/*
 * vfu_client_close() - disconnect and free the client; closes the socket and
 * any fds the client still holds. NULL is a no-op.
 */
void
vfu_client_close(vfu_client_t *client);

/* vfu_client_fd() - the socket, e.g. to poll(2) for server requests (the
 * main socket: with a twin socket the server's requests come on that). */
int
vfu_client_fd(vfu_client_t *client);

/*
 * vfu_client_default_caps() - fill @caps with what QEMU 10.1 proposes:
 * version 0.0, max_msg_fds 16, pgsizes 4096, max_dma_maps 65535,
 * max_data_xfer_size 1 MiB, migration {pgsize 4096, max_bitmap_size 256 MiB},
 * write_multiple true.
 */
void
vfu_client_default_caps(struct vfu_client_caps *caps);

/*
 * vfu_client_negotiate() - send VERSION and take the server's answer.
 *
 * @client:  a fresh connection.
 * @caps:    what to propose, or NULL for vfu_client_default_caps().
 * @server:  if non-NULL, receives the server's version and capabilities
 *           (fields the server left out keep the spec defaults).
 *
 * The session then uses the server's values (see vfu_client_caps()).
 * With @caps->twin_socket set, the twin socket is proposed; if the server
 * agrees, its fd is taken from the reply and served from then on (a
 * server agreeing to a twin not proposed, or passing no fd for it, is a
 * malformed reply).
 * Returns 0, or -1 with errno (the server's, e.g. EINVAL; ENOTCONN if it
 * closed the connection; EPROTO for a reply that is not a valid VERSION).
 */
int
vfu_client_negotiate(vfu_client_t *client, const struct vfu_client_caps *caps,
                     struct vfu_client_caps *server);

/*
 * vfu_client_negotiate_raw() - send VERSION with arbitrary trailing bytes.
 *
 * @data, @len: bytes sent after major/minor, as is (a JSON string must
 *              include its NUL to be valid); @len may be 0.
 * @server:     as for vfu_client_negotiate().
 *
 * For error tests. A document proposing twin_socket gets the twin as
 * vfu_client_negotiate() does. Returns as vfu_client_negotiate().
 */
int
vfu_client_negotiate_raw(vfu_client_t *client, uint16_t major, uint16_t minor,
                         const void *data, size_t len,
                         struct vfu_client_caps *server);

/*
 * vfu_client_caps() - the session's capabilities after negotiation (the
 * server's answer), or the spec defaults before it.
 */
const struct vfu_client_caps *
vfu_client_caps(vfu_client_t *client);

/* ---- device, regions, interrupts ---- */

/* vfu_client_device_get_info() - VFIO_USER_DEVICE_GET_INFO. */
int
vfu_client_device_get_info(vfu_client_t *client,
                           struct vfio_user_device_info *info);

/*
 * A region's description: the fixed reply, its decoded capability chain and
 * the fd the server passed for mapping.
 */
struct vfu_client_region_info {
    struct vfio_region_info info;   /* as replied; argsz is the full size */
    int fd;                         /* -1 if none; closed by _free() */
    uint32_t nr_sparse;             /* VFIO_REGION_INFO_CAP_SPARSE_MMAP */
    struct vfio_region_sparse_mmap_area *sparse;
    bool has_type;                  /* VFIO_REGION_INFO_CAP_TYPE */
    uint32_t type, subtype;
    void *caps;                     /* raw chain; cap_offset is relative */
    size_t caps_size;               /* to the start of info, caps begin at */
};                                  /* sizeof(info) */

/*
 * vfu_client_get_region_info() - VFIO_USER_DEVICE_GET_REGION_INFO.
 *
 * Asks with a small argsz first and again with the argsz the server needs,
 * so the whole capability chain is returned. Take ownership of @ri->fd by
 * setting it to -1; release the rest with vfu_client_region_info_free().
 * Returns 0, or -1 with errno (EPROTO for a malformed capability chain).
 */
int
vfu_client_get_region_info(vfu_client_t *client, uint32_t index,
                           struct vfu_client_region_info *ri);

void
vfu_client_region_info_free(struct vfu_client_region_info *ri);

/* vfu_client_get_irq_info() - VFIO_USER_DEVICE_GET_IRQ_INFO. */
int
vfu_client_get_irq_info(vfu_client_t *client, uint32_t index,
                        struct vfio_irq_info *info);

/*
 * vfu_client_set_irqs() - VFIO_USER_DEVICE_SET_IRQS.
 *
 * @flags:      VFIO_IRQ_SET_DATA_* | VFIO_IRQ_SET_ACTION_*.
 * @fds:        with DATA_EVENTFD, the @nr_fds eventfds sent along (the
 *              caller keeps its copies); an entry of -1 is sent as no fd.
 *              One eventfd a vector (@nr_fds == @count, none -1) beyond
 *              the server's max_msg_fds goes in several requests of at
 *              most that many, as QEMU sends them; a failing one ends the
 *              call, the vectors before it set.
 * @data:       payload after the fixed part (DATA_BOOL: @count bytes).
 */
int
vfu_client_set_irqs(vfu_client_t *client, uint32_t flags, uint32_t index,
                    uint32_t start, uint32_t count,
                    const int *fds, uint32_t nr_fds,
                    const void *data, size_t data_size);

/*
 * vfu_client_region_read()/_write() - VFIO_USER_REGION_READ/WRITE.
 *
 * @count may be anything; accesses longer than the negotiated
 * max_data_xfer_size are split into several messages.
 */
int
vfu_client_region_read(vfu_client_t *client, uint32_t index, uint64_t offset,
                       void *buf, size_t count);
int
vfu_client_region_write(vfu_client_t *client, uint32_t index, uint64_t offset,
                        const void *buf, size_t count);

/*
 * vfu_client_region_write_posted() - REGION_WRITE with VFIO_USER_F_NO_REPLY:
 * returns once sent; the server processes it before any later request.
 * @count must not exceed max_data_xfer_size (EINVAL).
 */
int
vfu_client_region_write_posted(vfu_client_t *client, uint32_t index,
                               uint64_t offset, const void *buf, size_t count);

/*
 * vfu_client_region_write_multi() - VFIO_USER_REGION_WRITE_MULTI with @nr
 * entries (1..VFIO_USER_MULTI_MAX). Returns the server's count of writes
 * performed (>= 0), or -1 with errno.
 */
int
vfu_client_region_write_multi(vfu_client_t *client,
                              const struct vfio_user_write_multi_one *wrs,
                              uint32_t nr);

/* vfu_client_device_reset() - VFIO_USER_DEVICE_RESET. */
int
vfu_client_device_reset(vfu_client_t *client);

/*
 * vfu_client_get_region_io_fds() - VFIO_USER_DEVICE_GET_REGION_IO_FDS.
 *
 * @reply, @reply_size: buffer for the reply (header and sub-regions); on
 *                      return *@reply_size holds the bytes stored. The
 *                      request's argsz is the buffer size.
 * @fds, @nr_fds:       room for the fds (capacity in, count out; surplus
 *                      fds are closed); the caller owns those returned.
 */
int
vfu_client_get_region_io_fds(vfu_client_t *client, uint32_t index,
                             struct vfio_user_region_io_fds_reply *reply,
                             size_t *reply_size, int *fds, uint32_t *nr_fds);

/* ---- client memory ---- */

/*
 * vfu_client_dma_map() - VFIO_USER_DMA_MAP.
 *
 * @iova, @size: the client address range.
 * @flags:       VFIO_USER_F_DMA_REGION_READ/WRITE.
 * @fd:          file backing the range, sent to the server, or -1 for a
 *               range the server can only reach with DMA_READ/WRITE. A
 *               vfu server maps a memfd only if it is sealed against
 *               shrinking (F_SEAL_SHRINK, as QEMU's memory-backend-memfd
 *               seals); an unsealed one is reached by DMA_READ/WRITE too,
 *               so give @vaddr as well. Other files are mapped.
 * @fd_offset:   offset of the range inside @fd (0 without an fd).
 * @vaddr:       where the range lives in this process, or NULL. If given,
 *               the client answers the server's DMA_READ/DMA_WRITE on the
 *               range from this memory (it must stay valid until unmapped).
 *
 * Returns 0, or -1 with errno (the server's, or ENOMEM).
 */
int
vfu_client_dma_map(vfu_client_t *client, uint64_t iova, uint64_t size,
                   uint32_t flags, int fd, uint64_t fd_offset, void *vaddr);

/*
 * vfu_client_dma_unmap() - VFIO_USER_DMA_UNMAP. @flags 0 or
 * VFIO_DMA_UNMAP_FLAG_ALL (then @iova and @size must be 0). Local entries
 * inside the range are dropped once the server agreed.
 */
int
vfu_client_dma_unmap(vfu_client_t *client, uint64_t iova, uint64_t size,
                     uint32_t flags);

/*
 * vfu_client_poll() - serve requests from the server (DMA_READ/WRITE) for
 * up to @timeout_ms (0: only what is ready, -1: until one arrives), on the
 * main socket (with a twin socket, its thread serves them unasked).
 * Returns the number of requests served (>= 0), or -1 with errno
 * (ENOTCONN when the server closed the connection).
 */
int
vfu_client_poll(vfu_client_t *client, int timeout_ms);

/*
 * vfu_client_defer_requests() - with @defer true, the server's requests
 * (DMA_READ/WRITE) that arrive on the main socket while a call waits for
 * its reply are kept and served only once that call is over, as QEMU 10.2
 * does (its vCPU, waiting for a region access, holds the lock its main
 * loop needs to serve DMA). Lets a device be tried against that client
 * without QEMU; vfu_client_poll() still serves at once. With @defer false
 * (the default) they are served while the call waits; what was kept is
 * served now. Returns 0, or -1 with errno EINVAL.
 */
int
vfu_client_defer_requests(vfu_client_t *client, bool defer);

/* ---- device features, dirty page logging, migration ---- */

/*
 * vfu_client_device_feature() - VFIO_USER_DEVICE_FEATURE.
 *
 * @flags:        feature index | VFIO_DEVICE_FEATURE_GET/SET/PROBE.
 * @in, @in_size: feature data sent after the 8-byte fixed part.
 * @out:          receives the feature data of the reply (after the fixed
 *                part), or NULL; *@out_size is its capacity (argsz is
 *                8 + capacity) and on return the bytes stored.
 */
int
vfu_client_device_feature(vfu_client_t *client, uint32_t flags,
                          const void *in, size_t in_size,
                          void *out, size_t *out_size);

/* DMA_LOGGING_START with @nr ranges (0: everything) at @page_size. */
int
vfu_client_dma_logging_start(vfu_client_t *client, uint64_t page_size,
    const struct vfio_user_device_feature_dma_logging_range *ranges,
    uint32_t nr);

/* DMA_LOGGING_STOP. */
int
vfu_client_dma_logging_stop(vfu_client_t *client);

/*
 * DMA_LOGGING_REPORT for [iova, iova + length) at @page_size: the dirty
 * bitmap (one bit a page) is stored in @bitmap, @bitmap_size bytes.
 */
int
vfu_client_dma_logging_report(vfu_client_t *client, uint64_t iova,
                              uint64_t length, uint64_t page_size,
                              void *bitmap, size_t bitmap_size);

/* VFIO_DEVICE_FEATURE_MIGRATION GET: VFIO_MIGRATION_* flags. */
int
vfu_client_mig_get_flags(vfu_client_t *client, uint64_t *flags);

/* VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE GET/SET (VFIO_USER_DEVICE_STATE_*). */
int
vfu_client_mig_get_state(vfu_client_t *client, uint32_t *state);
int
vfu_client_mig_set_state(vfu_client_t *client, uint32_t state);

/*
 * vfu_client_mig_data_read() - VFIO_USER_MIG_DATA_READ of up to @size bytes
 * (at most max_data_xfer_size). Returns the bytes received (0: no more data
 * in this state), or -1 with errno.
 */
ssize_t
vfu_client_mig_data_read(vfu_client_t *client, void *buf, size_t size);

/* vfu_client_mig_data_write() - VFIO_USER_MIG_DATA_WRITE of @size bytes. */
int
vfu_client_mig_data_write(vfu_client_t *client, const void *buf, size_t size);

/* ---- raw access, for robustness tests ---- */

/*
 * vfu_client_call() - send any command and wait for its reply.
 *
 * @req, @req_size:  payload after the header.
 * @fds, @nr_fds:    fds to pass along.
 * @reply:           receives the reply payload; *@reply_size is its
 *                   capacity in and the payload size out (EMSGSIZE if the
 *                   payload does not fit). Both may be NULL.
 * @reply_fds:       receives fds passed with the reply; *@nr_reply_fds is
 *                   the capacity in and the count out (surplus closed). The
 *                   caller owns them. Both may be NULL.
 *
 * Returns 0, or -1 with errno: the reply's error_no (EIO if it is 0 in an
 * error reply), or a local error.
 */
int
vfu_client_call(vfu_client_t *client, uint16_t cmd,
                const void *req, size_t req_size,
                const int *fds, uint32_t nr_fds,
                void *reply, size_t *reply_size,
                int *reply_fds, uint32_t *nr_reply_fds);

/*
 * vfu_client_send_raw() - write @len bytes (which should start with a
 * header, but need not be consistent) to the socket in one send, with
 * @nr_fds fds. Nothing is waited for.
 */
int
vfu_client_send_raw(vfu_client_t *client, const void *buf, size_t len,
                    const int *fds, uint32_t nr_fds);

/*
 * vfu_client_next_msg_id() - a message id no other call of this client will
 * use, for raw messages.
 */
uint16_t
vfu_client_next_msg_id(vfu_client_t *client);

/*
 * vfu_client_recv_raw() - take the next message from the server, whatever
 * it is, waiting up to @timeout_ms (-1: forever).
 *
 * @hdr:              receives its header.
 * @payload:          receives its payload, truncated to *@size (capacity
 *                    in, full payload size out). May be NULL.
 * @fds, @nr_fds:     as for vfu_client_call()'s reply fds; may be NULL.
 *
 * Returns 0, or -1 with errno: ETIMEDOUT when nothing came, ENOTCONN when
 * the server closed the connection, EPROTO for a broken stream.
 */
int
vfu_client_recv_raw(vfu_client_t *client, struct vfio_user_header *hdr,
                    void *payload, size_t *size, int *fds, uint32_t *nr_fds,
                    int timeout_ms);

#ifdef __cplusplus
}
#endif

#endif /* VFU_CLIENT_H */
