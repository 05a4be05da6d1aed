/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 the vfu authors. */

/*
 * What the core's files share: the context, the message being handled, and
 * each concern's entry points. One concern per file:
 *   wire.c      framing, exact reads, fds, one send per message
 *   wire_call.c requests that wait for their reply, from any thread
 *   call_watchdog.c  the client's bound on how long a call waits
 *   tran_sock.c the listening socket, the connection and its twin
 *   version.c   VERSION negotiation (json-c)
 *   ctx.c       context life cycle, attach, run loop, logging
 *   dispatch.c  command table, quiesce, error replies
 *   region.c    regions, REGION_READ/WRITE/WRITE_MULTI, region info, ioeventfds
 *   irq.c       IRQ info, SET_IRQS, vfu_irq_trigger
 *   pci.c       config space header and BARs; pci_caps.c capabilities
 *   dma.c       DMA_MAP/UNMAP; dma_table.c the map table; sgl.c scatter-
 *               gather; dma_msg.c client memory by message; dirty.c dirty
 *               logging
 *   migration.c VFIO migration v2
 *   client.c    the client side of the protocol
 */
#ifndef VFU_PRIVATE_H
#define VFU_PRIVATE_H

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#include <linux/vfio.h>

#include "libvfio-user.h"
#include "vfu-client.h"
#include "vfu.h"
#include "wire.h"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define VFU_UNUSED __attribute__((unused))

/* Defaults and bounds the server announces and enforces. */
#define VFU_DEFAULT_MAX_FDS         8
#define VFU_DEFAULT_MAX_DATA_XFER   (1u << 20)
#define VFU_MAX_DATA_XFER_LIMIT     (64u << 20)
#define VFU_DEFAULT_MAX_DMA_MAPS    65535u
#define VFU_DEFAULT_PGSIZE          4096u
#define VFU_MIGR_MAX_BITMAP_SIZE    (256u << 20)
#define VFU_WRITE_MULTI_MAX         200u

struct vfu_pci;       /* pci.c */
struct dma_table;     /* dma.c */
struct dirty_log;     /* dirty.c */
struct vfu_migration; /* migration.c */

struct vfu_ioeventfd {
    struct vfu_ioeventfd *next;
    int fd;
    uint64_t offset;
    uint32_t size;
    uint32_t flags;
    uint64_t datamatch;
    int shadow_fd;
    size_t shadow_offset;
};

struct vfu_region {
    size_t size;
    int flags;                      /* VFU_REGION_FLAG_* */
    vfu_region_access_cb_t *cb;
    struct iovec *mmap_areas;       /* owned copy; NULL: whole region if fd */
    uint32_t nr_mmap_areas;
    int fd;                         /* borrowed from the device, or -1 */
    uint64_t fd_offset;
    struct vfu_ioeventfd *ioeventfds;
    uint32_t nr_ioeventfds;
};

/* A client's eventfd for one vector (irq.c). */
struct vfu_efd;

struct vfu_irq_type {
    uint32_t count;
    struct vfu_efd **efds;          /* count entries, NULL when unset */
    bool *masked;
    bool *pending;                  /* fired while masked */
    vfu_dev_irq_state_cb_t *state_cb;
};

struct vfu_ctx {
    /* device description, kept across clients */
    vfu_trans_t trans;
    char *sock_path;
    int flags;
    void *pvt;
    vfu_dev_type_t dev_type;
    bool realized;

    vfu_log_fn_t *log_fn;
    int log_level;
    vfu_trace_fn_t *trace_fn;
    void *trace_arg;

    struct vfu_region *regions;
    uint32_t nr_regions;
    struct vfu_irq_type irqs[VFU_DEV_NUM_IRQS];
    uint32_t irq_active;            /* INTx, MSI or MSI-X: what trigger fires */

    vfu_reset_cb_t *reset_cb;
    vfu_device_quiesce_cb_t *quiesce_cb;
    vfu_dma_register_cb_t *dma_register_cb;
    vfu_dma_unregister_cb_t *dma_unregister_cb;

    struct vfu_pci *pci;
    struct dma_table *dma;
    struct dirty_log *dirty;
    struct vfu_migration *migr;
    uint32_t max_dma_maps;          /* from vfu_setup_device_dma */
    unsigned long dma_guard_seen;   /* dma_guard_hits() cursor */

    /* transport */
    int listen_fd;
    int poll_fd;                    /* epoll: listen_fd or the conn, kick_fd */
    int kick_fd;                    /* eventfd: requests wait in our buffer */
    bool poll_used;                 /* vfu_get_poll_fd() was asked: the conn
                                     * is in the set (a socket in an epoll
                                     * set costs every message a callback) */
    bool kicked;
    struct vfu_conn *conn;          /* NULL when no client */
    /* How this client lays out DMA_READ/WRITE (dma_msg.c), learnt from
     * its replies; atomic, as device threads learn it. */
    int dma_msg_layout;
    struct vfu_conn *twin;          /* the twin socket, when negotiated:
                                     * our DMA requests go there */
    /* Device threads doing message-based DMA hold it for reading, so the
     * connection is not freed under them. */
    pthread_rwlock_t conn_lock;
    /* What the client asked for and we agreed to in VERSION (defaults
     * before); the client library's struct, as both ends parse and format
     * the same capabilities. */
    struct vfu_client_caps caps;
    bool negotiated;
    char version_reply[512];

    /* quiesce state */
    bool quiesced;
    /* Atomic, as is lost_pending: vfu_device_quiesced() may come from any
     * thread. */
    bool quiesce_pending;           /* quiesce_cb said EBUSY */
    bool lost_pending;              /* ... for dropping a lost client */
    /* vfu_destroy_ctx() waits on quiesce_cond for a pending quiesce to be
     * finished by vfu_device_quiesced() on another thread. */
    pthread_mutex_t quiesce_lock;
    pthread_cond_t quiesce_cond;
    struct vfu_msg msg;             /* the request being handled */
    struct vfu_msg *pending_msg;    /* request waiting for the device */

    pthread_mutex_t irq_lock;       /* irq efds vs. vfu_irq_trigger */

    /* Requests are being handled (vfu_run_ctx, vfu_attach_ctx or
     * vfu_device_quiesced) on busy_thread: device callbacks may be running,
     * and a nested run or a destroy is refused. Atomic. */
    int busy_depth;
    pthread_t busy_thread;

    /* reply storage, reused: nothing is allocated per message */
    void *scratch;
    size_t scratch_size;
    struct vfio_user_device_info info_reply;
    struct vfio_irq_info irq_info_reply;
};

/* ctx.c */
void vfu_log_errno(vfu_ctx_t *ctx, int level, int err, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
bool vfu_log_enabled(const vfu_ctx_t *ctx, int level);
/* Drop the client now (the device is quiesced, or need not be). */
void vfu_conn_lost(vfu_ctx_t *ctx);
/* Drop a client whose connection broke, quiescing the device first:
 * -1 with errno EBUSY if that finishes in vfu_device_quiesced(). */
int vfu_conn_lost_quiesce(vfu_ctx_t *ctx);
/* Serve an already connected socket (tests and fuzzing); takes the fd. */
int vfu_attach_fd(vfu_ctx_t *ctx, int fd);

/* dispatch.c: handle one complete request; sends the reply. Returns 0, or -1
 * with errno when the connection must be dropped. */
int vfu_dispatch(vfu_ctx_t *ctx, struct vfu_msg *msg);
/* Finish a request parked while the device quiesced. */
int vfu_dispatch_resume(vfu_ctx_t *ctx, int quiesce_errno);

/*
 * A command handler: read msg->in, fill the reply with vfu_msg_reply_*().
 * Returns 0 on success or -1 with errno for an error reply. The handler takes
 * an fd out of msg->fds by setting the slot to -1; the rest are closed after.
 */
typedef int (vfu_cmd_handler_t)(vfu_ctx_t *ctx, struct vfu_msg *msg);

/* version.c */
int vfu_handle_version(vfu_ctx_t *ctx, struct vfu_msg *msg);
/* Parse a capabilities JSON object (NUL terminated, len bytes incl. NUL)
 * into caps; fields absent keep their values. -1/EINVAL if malformed. */
int vfu_caps_parse(const char *json, size_t len, struct vfu_client_caps *caps);
/* Write the JSON for caps into buf (NUL terminated); returns length incl.
 * the NUL, or -1/ENOBUFS. */
ssize_t vfu_caps_format(const struct vfu_client_caps *caps, char *buf, size_t size);
/* The spec's defaults for a peer that says nothing. */
void vfu_caps_defaults(struct vfu_client_caps *caps);

/* region.c */
int vfu_handle_region_info(vfu_ctx_t *ctx, struct vfu_msg *msg);
int vfu_handle_region_read(vfu_ctx_t *ctx, struct vfu_msg *msg);
int vfu_handle_region_write(vfu_ctx_t *ctx, struct vfu_msg *msg);
int vfu_handle_region_write_multi(vfu_ctx_t *ctx, struct vfu_msg *msg);
int vfu_handle_region_io_fds(vfu_ctx_t *ctx, struct vfu_msg *msg);
/* Access a region as the client would (bounds already unchecked). */
ssize_t vfu_region_access(vfu_ctx_t *ctx, uint32_t idx, char *buf,
                          size_t count, uint64_t offset, bool is_write);
void vfu_regions_free(vfu_ctx_t *ctx);
/* Per-context reply buffer of at least size bytes (grows while a client
 * stays; vfu_scratch_release() frees it when the client goes). */
void *vfu_scratch(vfu_ctx_t *ctx, size_t size);
void vfu_scratch_release(vfu_ctx_t *ctx);

/* irq.c */
int vfu_handle_irq_info(vfu_ctx_t *ctx, struct vfu_msg *msg);
int vfu_handle_set_irqs(vfu_ctx_t *ctx, struct vfu_msg *msg);
void vfu_irqs_release(vfu_ctx_t *ctx);   /* close client eventfds */
void vfu_irqs_free(vfu_ctx_t *ctx);

/* pci.c / pci_caps.c */
ssize_t vfu_pci_config_access(vfu_ctx_t *ctx, char *buf, size_t count,
                              uint64_t offset, bool is_write);
int vfu_pci_realize(vfu_ctx_t *ctx);
void vfu_pci_reset(vfu_ctx_t *ctx);
void vfu_pci_free(vfu_ctx_t *ctx);
size_t vfu_pci_config_size(const vfu_ctx_t *ctx);
/* Would this config space write make the library start a function level
 * reset (so that the device must be quiesced first)? */
bool vfu_pci_write_starts_flr(vfu_ctx_t *ctx, uint64_t offset,
                              const uint8_t *data, size_t count);

/* dma.c / dirty.c */
int vfu_handle_dma_map(vfu_ctx_t *ctx, struct vfu_msg *msg);
int vfu_handle_dma_unmap(vfu_ctx_t *ctx, struct vfu_msg *msg);
int vfu_handle_device_feature(vfu_ctx_t *ctx, struct vfu_msg *msg);
void vfu_dma_release(vfu_ctx_t *ctx);     /* unmap all (lost client) */
/* Log, once, pages the SIGBUS guard replaced since the last call. */
void vfu_dma_report_guard(vfu_ctx_t *ctx);
void vfu_dma_free(vfu_ctx_t *ctx);

/* migration.c */
int vfu_handle_mig_data_read(vfu_ctx_t *ctx, struct vfu_msg *msg);
int vfu_handle_mig_data_write(vfu_ctx_t *ctx, struct vfu_msg *msg);
/* DEVICE_FEATURE for MIGRATION and MIG_DEVICE_STATE; ENOTSUP if not ours. */
int vfu_migration_feature(vfu_ctx_t *ctx, struct vfu_msg *msg);
/* Is this command allowed in the current migration state? errno if not. */
int vfu_migration_check_cmd(vfu_ctx_t *ctx, uint16_t cmd);
void vfu_migration_reset(vfu_ctx_t *ctx);
bool vfu_migration_enabled(const vfu_ctx_t *ctx);
void vfu_migration_free(vfu_ctx_t *ctx);

#endif /* VFU_PRIVATE_H */
