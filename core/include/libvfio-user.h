/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 the vfu authors. */

/*
 * libvfio-user.h - vfu public server API.
 *
 * This header is the complete public interface of vfu, a library for writing
 * vfio-user device servers (emulated devices that a VMM such as QEMU drives
 * over a UNIX socket).  It is source-compatible with libvfio-user: every
 * function, type, constant and struct layout declared here matches the
 * libvfio-user server API, so programs written against libvfio-user build and
 * link against vfu without modification.  Wire-protocol definitions live in
 * "vfio-user.h"; PCI register and capability layouts live in "pci_defs.h" and
 * "pci_caps/".
 *
 * Unless stated otherwise, functions returning int report success with 0 and
 * failure with -1 and errno set; functions returning a pointer report failure
 * with NULL and errno set.
 *
 * Threading
 * ---------
 * A context (vfu_ctx_t) is owned by the thread that runs vfu_run_ctx() on it.
 * While that thread is inside vfu_run_ctx(), other threads may call only
 * vfu_addr_to_sgl(), vfu_sgl_get(), vfu_sgl_put(), vfu_sgl_read(),
 * vfu_sgl_write(), vfu_sgl_mark_dirty() and vfu_irq_trigger().  A client DMA
 * unmap is not processed until the device has been quiesced (see
 * vfu_device_quiesce_cb_t), so once a device reports itself quiesced it must
 * no longer touch scatter/gather entries or mappings of any DMA region
 * outside of the device callbacks that vfu invokes.  Every other call must be
 * made from the thread that owns the context.
 */

#ifndef LIB_VFIO_USER_H
#define LIB_VFIO_USER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>
#include <syslog.h>
#include <sys/queue.h>

#include "pci_caps/dsn.h"
#include "pci_caps/msi.h"
#include "pci_caps/msix.h"
#include "pci_caps/pm.h"
#include "pci_caps/px.h"
#include "pci_defs.h"
#include "vfio-user.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Compile-time layout checks usable from both C and C++ translation units. */
#if defined(__cplusplus) && __cplusplus >= 201103L
#define VFU_HDR_STATIC_ASSERT_(cond, msg) static_assert(cond, msg)
#elif defined(__cplusplus)
#define VFU_HDR_STATIC_ASSERT_(cond, msg) \
    typedef char vfu_hdr_static_assert_[(cond) ? 1 : -1]
#else
#define VFU_HDR_STATIC_ASSERT_(cond, msg) _Static_assert(cond, msg)
#endif

/* API version implemented by this header. */
#define LIB_VFIO_USER_MAJOR 0
#define LIB_VFIO_USER_MINOR 1

/*
 * A client (guest) DMA address.  It lives in the client's IOVA space and must
 * never be dereferenced directly; translate it with vfu_addr_to_sgl().
 */
typedef void *vfu_dma_addr_t;

/*
 * One scatter/gather entry describing a piece of client memory.  The layout
 * is private to the library: allocate arrays of dma_sg_size() bytes per entry
 * and address entry i as (dma_sg_t *)((char *)base + i * dma_sg_size()).
 */
struct dma_sg;
typedef struct dma_sg dma_sg_t;

/* Opaque server context; one per emulated device. */
typedef struct vfu_ctx vfu_ctx_t;

/*
 * dma_sg_size() - size of one dma_sg_t.
 *
 * Returns the number of bytes a single scatter/gather entry occupies.  Never
 * fails.
 */
size_t
dma_sg_size(void);

/*
 * Context flag for vfu_create_ctx(): make vfu_attach_ctx() non-blocking.
 * Without a connected client it fails with EAGAIN/EWOULDBLOCK instead of
 * waiting, and vfu_run_ctx() handles at most the requests already pending
 * instead of looping until disconnect.
 */
#define LIBVFIO_USER_FLAG_ATTACH_NB  (1 << 0)

/* Transport used to talk to the client. */
typedef enum {
    VFU_TRANS_SOCK,     /* UNIX domain socket at a filesystem path */
    VFU_TRANS_PIPE,     /* for the library's own tests only */
    VFU_TRANS_MAX
} vfu_trans_t;

/* Kind of device being emulated. */
typedef enum {
    VFU_DEV_TYPE_PCI
} vfu_dev_type_t;

/*
 * vfu_create_ctx() - allocate a new device context.
 *
 * @trans:    transport, currently VFU_TRANS_SOCK.
 * @path:     socket path the server will listen on.
 * @flags:    zero or more LIBVFIO_USER_FLAG_* values.
 * @pvt:      opaque pointer, retrievable later with vfu_get_private().
 * @dev_type: device type, currently VFU_DEV_TYPE_PCI.
 *
 * The new context has one ERR and one REQ interrupt configured; change the
 * counts with vfu_setup_device_nr_irqs().
 *
 * Returns the context, or NULL with errno set: ENOTSUP for an unsupported
 * transport or device type, EINVAL for bad flags or path, ENOMEM, or an error
 * from creating the listening socket.
 */
vfu_ctx_t *
vfu_create_ctx(vfu_trans_t trans, const char *path,
               int flags, void *pvt, vfu_dev_type_t dev_type);

/*
 * vfu_realize_ctx() - finish device set-up.
 *
 * @vfu_ctx: the context.
 *
 * Freezes the configuration (regions, IRQs, capabilities) and fills in
 * defaults for anything not configured.  Must succeed before the first
 * vfu_attach_ctx().
 *
 * Returns 0, or -1 with errno set (ENOMEM, EINVAL for an inconsistent
 * configuration).
 */
int
vfu_realize_ctx(vfu_ctx_t *vfu_ctx);

/*
 * vfu_attach_ctx() - accept a client connection.
 *
 * @vfu_ctx: a realized context.
 *
 * Waits for a client and negotiates the protocol version with it.  With
 * LIBVFIO_USER_FLAG_ATTACH_NB the call does not block.
 *
 * Returns 0 once a client is attached, or -1 with errno set: EAGAIN or
 * EWOULDBLOCK when no client is waiting yet (non-blocking mode; call again
 * later), EINVAL if the context was not realized, or an error from version
 * negotiation or the socket layer.
 */
int
vfu_attach_ctx(vfu_ctx_t *vfu_ctx);

/*
 * vfu_get_poll_fd() - descriptor to wait on.
 *
 * @vfu_ctx: the context.
 *
 * Returns a file descriptor that becomes readable when vfu_attach_ctx() or
 * vfu_run_ctx() has work to do, suitable for poll(2)/epoll(7).  The
 * descriptor changes after a successful vfu_attach_ctx() and after
 * vfu_run_ctx() fails with ENOTCONN; fetch it again in both cases.  (vfu's
 * is an epoll set that stays the same; asking for it adds the connection
 * to the set, which costs every message a little: a blocking loop needs
 * none of it, and vfu.h's vfu_get_poll_fds() gives the fds themselves.)
 */
int
vfu_get_poll_fd(vfu_ctx_t *vfu_ctx);

/*
 * vfu_run_ctx() - process client requests.
 *
 * @vfu_ctx: an attached context.
 *
 * In blocking mode, serves requests until an error occurs or the client goes
 * away.  In non-blocking mode (LIBVFIO_USER_FLAG_ATTACH_NB), serves whatever
 * is ready and returns immediately; the caller polls vfu_get_poll_fd() and
 * calls again.
 *
 * Returns the number of requests handled (possibly 0), or -1 with errno set:
 * EINVAL if the context is not realized,
 * ENOTCONN when the client disconnected (call vfu_attach_ctx() again),
 * EBUSY while a quiesce requested from the device is still in progress
 * (see vfu_device_quiesce_cb_t) or while another thread is handling requests
 * of this context (vfu_device_quiesced(), say),
 * EDEADLK when called from a device callback that this context's
 * vfu_run_ctx(), vfu_attach_ctx() or vfu_device_quiesced() is running (a
 * nested loop would reuse the buffers of the request being handled; the
 * call is refused and logged, and nothing is read),
 * or another error from request handling.  vfu_attach_ctx() refuses the
 * same way.
 */
int
vfu_run_ctx(vfu_ctx_t *vfu_ctx);

/*
 * vfu_destroy_ctx() - free a context.
 *
 * @vfu_ctx: the context, or NULL (no-op).
 *
 * Closes the client connection and releases all resources.  The device must
 * already be quiescent: the quiesce callback is not invoked (as in
 * libvfio-user), although other device callbacks (reset with
 * VFU_RESET_LOST_CONN, DMA unregister) may run during the call.  If a
 * quiesce is still pending (vfu_run_ctx() failed with EBUSY, for a request
 * or a lost client), destroy waits for the device's vfu_device_quiesced(),
 * which another thread must then call, for up to 10 seconds; a device that
 * has not answered by then is released all the same (logged) and must no
 * longer call into the context.
 *
 * Called from a device callback (while vfu_run_ctx(), vfu_attach_ctx() or
 * vfu_device_quiesced() of this context is handling a request, on any
 * thread), it does nothing but log an error and set errno to EBUSY: the
 * caller of that function still uses the context. Destroy it once the
 * function has returned.
 */
void
vfu_destroy_ctx(vfu_ctx_t *vfu_ctx);

/*
 * vfu_get_private() - retrieve the pointer passed as @pvt to
 * vfu_create_ctx().
 */
void *
vfu_get_private(vfu_ctx_t *vfu_ctx);

/*
 * Log sink signature.
 *
 * @vfu_ctx: context the message belongs to.
 * @level:   syslog(3) priority (LOG_ERR, LOG_DEBUG, ...).
 * @msg:     the formatted message, without a trailing newline.
 */
typedef void (vfu_log_fn_t)(vfu_ctx_t *vfu_ctx, int level, const char *msg);

/*
 * vfu_log() - emit a message through the context's log sink.
 *
 * @vfu_ctx: the context.
 * @level:   syslog(3) priority; dropped if above the configured level.
 * @fmt:     printf(3)-style format; do not end it with a newline.
 *
 * Preserves errno.
 */
void
vfu_log(vfu_ctx_t *vfu_ctx, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/*
 * vfu_setup_log() - install a log sink.
 *
 * @vfu_ctx: the context.
 * @log:     sink function; it is responsible for appending a newline.
 * @level:   most verbose syslog(3) priority to deliver.
 *
 * Returns 0, or -1 with errno EINVAL for an invalid level.
 */
int
vfu_setup_log(vfu_ctx_t *vfu_ctx, vfu_log_fn_t *log, int level);

/*
 * Region access callback signature.
 *
 * @vfu_ctx:  the context.
 * @buf:      source of the data on a write, destination on a read.
 * @count:    number of bytes to transfer.
 * @offset:   byte offset inside the region.
 * @is_write: true for a client write, false for a read.
 *
 * Returns the number of bytes transferred, or -1 with errno set; the errno is
 * reported back to the client.
 */
typedef ssize_t (vfu_region_access_cb_t)(vfu_ctx_t *vfu_ctx, char *buf,
                                         size_t count, loff_t offset,
                                         bool is_write);

/* Region flags for vfu_setup_region(). */
#define VFU_REGION_FLAG_READ      (1 << 0)
#define VFU_REGION_FLAG_WRITE     (1 << 1)
#define VFU_REGION_FLAG_RW        (VFU_REGION_FLAG_READ | VFU_REGION_FLAG_WRITE)
/* Memory space region; when clear the region is I/O space. */
#define VFU_REGION_FLAG_MEM       (1 << 2)
/* Config space only: route every access to the callback. */
#define VFU_REGION_FLAG_ALWAYS_CB (1 << 3)
/* BAR only: a 64-bit memory BAR; it takes the next BAR's slot too. */
#define VFU_REGION_FLAG_64_BITS   (1 << 4)
/* BAR only: a prefetchable memory BAR. */
#define VFU_REGION_FLAG_PREFETCH  (1 << 5)
#define VFU_REGION_FLAG_MASK      (VFU_REGION_FLAG_RW | VFU_REGION_FLAG_MEM | \
                                   VFU_REGION_FLAG_ALWAYS_CB | \
                                   VFU_REGION_FLAG_64_BITS | \
                                   VFU_REGION_FLAG_PREFETCH)

/*
 * vfu_setup_region() - describe a device region.
 *
 * @vfu_ctx:       the context.
 * @region_idx:    region index (VFU_PCI_DEV_*_REGION_IDX for PCI devices).
 * @size:          region size in bytes; ignored for the config space region,
 *                 whose size follows from the PCI type.  0 removes the
 *                 region (it then takes no fd).
 * @region_access: callback serving VFIO_USER_REGION_READ/WRITE, or NULL.
 * @flags:         VFU_REGION_FLAG_* bits.
 * @mmap_areas:    parts of the region the client may mmap, as offset/length
 *                 pairs (iov_base holds the offset); NULL with a valid @fd
 *                 makes the whole region mappable.
 * @nr_mmap_areas: number of entries in @mmap_areas, 0 if it is NULL.
 * @fd:            file backing the region for client mmap, or -1.
 * @offset:        offset of the region inside @fd.
 *
 * Accesses through a client mapping never reach @region_access; message-based
 * accesses always do, even in mappable areas.  A client holding @fd can map
 * any part of it, so @mmap_areas is advisory only.
 *
 * VFU_PCI_DEV_CFG_REGION_IDX is special: the library itself serves the
 * standard 64-byte header and all capabilities added with
 * vfu_pci_add_capability().  Other config space bytes go to @region_access,
 * or, when it is NULL, reads are answered from the config space buffer and
 * writes are rejected.  VFU_REGION_FLAG_ALWAYS_CB sends every config access
 * to @region_access, which it then needs; VFU_REGION_FLAG_MEM,
 * VFU_REGION_FLAG_64_BITS and VFU_REGION_FLAG_PREFETCH do not apply to it.
 *
 * VFU_REGION_FLAG_64_BITS and VFU_REGION_FLAG_PREFETCH are for memory BARs
 * and set the BAR's type bits at vfu_realize_ctx().  A 64-bit BAR is BAR0,
 * 2 or 4, and its upper half takes the next BAR's slot, which must then stay
 * without a region (in either order of setting up).  A BAR too big for
 * 32 bits becomes 64-bit by itself.  Setting up a region again replaces it.
 *
 * Returns 0, or -1 with errno set: EINVAL for a bad index, flags, size or
 * mmap area list, or a BAR slot a 64-bit BAR conflicts with; ENOMEM.
 */
int
vfu_setup_region(vfu_ctx_t *vfu_ctx, int region_idx, size_t size,
                 vfu_region_access_cb_t *region_access, int flags,
                 struct iovec *mmap_areas, uint32_t nr_mmap_areas,
                 int fd, uint64_t offset);

/* Why the reset callback is being invoked. */
typedef enum vfu_reset_type {
    /*
     * The client asked for a device reset.  The context stays connected; the
     * device must finish or abandon outstanding work and return to its
     * power-on state, PCI registers included.
     */
    VFU_RESET_DEVICE,

    /*
     * The client connection was lost.  After the callback returns the
     * connection state is torn down and vfu_attach_ctx() is needed to serve
     * a new client.
     */
    VFU_RESET_LOST_CONN,

    /* The client triggered a PCI function level reset. */
    VFU_RESET_PCI_FLR
} vfu_reset_type_t;

/*
 * Quiesce callback signature.
 *
 * @vfu_ctx: the context.
 *
 * Called from vfu_run_ctx() before an operation that needs the device idle
 * (DMA map/unmap, reset or FLR, migration state change).  A quiesced device
 * must not call vfu_addr_to_sgl() or vfu_sgl_*() except from within a device
 * callback.
 *
 * Return 0 if the device is now quiesced; vfu treats it as quiesced until
 * that one operation is done, and calls the callback again before the next
 * operation that needs it (so it must cope with being asked while already
 * idle).  Resuming after vfu_run_ctx() returns is always safe; a blocking
 * loop's device may instead resume at the end of the DMA register/unregister,
 * reset or transition callback the operation runs.  Return -1 with errno
 * EBUSY if quiescing will finish later: the
 * device keeps running normally meanwhile, vfu_run_ctx() fails with EBUSY,
 * and the device later calls vfu_device_quiesced() once idle.  The pending
 * operation, and any resulting DMA register/unregister, reset or migration
 * transition callbacks, run inside that call; the device is unquiesced when
 * it returns.
 */
typedef int (vfu_device_quiesce_cb_t)(vfu_ctx_t *vfu_ctx);

/*
 * vfu_setup_device_quiesce_cb() - install the quiesce callback.
 *
 * @vfu_ctx:    the context.
 * @quiesce_cb: the callback; without one the device is treated as always
 *              quiesced when needed.
 */
void
vfu_setup_device_quiesce_cb(vfu_ctx_t *vfu_ctx,
                            vfu_device_quiesce_cb_t *quiesce_cb);

/*
 * vfu_device_quiesced() - report completion of a deferred quiesce.
 *
 * @vfu_ctx:       the context.
 * @quiesce_errno: 0 if the device is now quiesced; otherwise the errno with
 *                 which the pending operation is failed (the device is then
 *                 reset).
 *
 * Runs the operation that was waiting for the quiesce and replies to the
 * client, then unquiesces the device. If the quiesce was for a lost client
 * (vfu_run_ctx() failed with EBUSY after the client went away), the client
 * is dropped here instead (the reset callback runs with VFU_RESET_LOST_CONN)
 * and vfu_run_ctx() then fails with ENOTCONN.
 *
 * Returns 0 once the pending operation is done, whatever its outcome (the
 * client gets that in its reply), or -1 with errno EINVAL if no quiesce was
 * pending or no quiesce callback is installed.
 */
int
vfu_device_quiesced(vfu_ctx_t *vfu_ctx, int quiesce_errno);

/*
 * Reset callback signature.
 *
 * @vfu_ctx: the context.
 * @type:    reason for the reset.
 *
 * Returns 0, or -1 with errno set.
 */
typedef int (vfu_reset_cb_t)(vfu_ctx_t *vfu_ctx, vfu_reset_type_t type);

/*
 * vfu_setup_device_reset_cb() - install the reset callback.
 *
 * @vfu_ctx: the context.
 * @reset:   the callback.  Before it returns, all in-flight use of
 *           interrupts and client memory must be finished or cancelled.
 *
 * Returns 0, or -1 with errno set.
 */
int
vfu_setup_device_reset_cb(vfu_ctx_t *vfu_ctx, vfu_reset_cb_t *reset);

/*
 * Description of one client DMA region, passed to the DMA callbacks.
 *
 * @iova:      client address range; the address space vfu_addr_to_sgl()
 *             works in.  Always valid.
 * @vaddr:     where the start of @iova is mapped in this process, or NULL
 *             when the region is not mappable.  The remaining fields are
 *             meaningful only when @vaddr is non-NULL.
 * @mapping:   the whole range actually mmap()ed by the library; may be larger
 *             than @iova because it is rounded to the backing page size.
 * @page_size: page size of that mapping (e.g. 2 MiB for huge pages).
 * @prot:      PROT_* flags of the mapping, as in mmap(2).
 *
 * A region whose file ends before the region does (a file of size 0, or an
 * offset past its end, included) is accepted, with a warning in the log.
 * Its @mapping is then its own (not shared with other regions of the file):
 * the file's pages, followed contiguously by private anonymous memory of
 * this process up to the end of the region, rounded to @page_size, the
 * file's page size.  @vaddr and vfu_sgl_get() pointers reach the whole
 * region, and no access faults, but what the device writes past the file's
 * end stays in this process: the client never sees it, and it reads back
 * as zeros until written.  That memory is charged to this process like any
 * allocation of its own.  The file's extent is taken when the region is
 * mapped: growing the file later does not change the region.  For a
 * VFIO_USER_F_DMA_REGION_FILE_IO region, direct access past the end of the
 * file instead fails with EFAULT (see vfu_sgl_read()).
 */
typedef struct vfu_dma_info {
    struct iovec iova;
    void *vaddr;
    struct iovec mapping;
    size_t page_size;
    uint32_t prot;
} vfu_dma_info_t;

#if defined(__LP64__) || defined(__x86_64__)
VFU_HDR_STATIC_ASSERT_(sizeof(vfu_dma_info_t) == 56,
                       "vfu_dma_info_t must be 56 bytes on LP64");
VFU_HDR_STATIC_ASSERT_(offsetof(vfu_dma_info_t, iova) == 0 &&
                       offsetof(vfu_dma_info_t, vaddr) == 16 &&
                       offsetof(vfu_dma_info_t, mapping) == 24 &&
                       offsetof(vfu_dma_info_t, page_size) == 40 &&
                       offsetof(vfu_dma_info_t, prot) == 48,
                       "vfu_dma_info_t member offsets changed");
#endif

/*
 * DMA register callback signature: the client added the region described by
 * @info (VFIO_USER_DMA_MAP).
 */
typedef void (vfu_dma_register_cb_t)(vfu_ctx_t *vfu_ctx, vfu_dma_info_t *info);

/*
 * DMA unregister callback signature: the client is removing the region
 * described by @info.  Before returning the device must drop every reference
 * into it, including iovecs obtained from vfu_sgl_get().
 */
typedef void (vfu_dma_unregister_cb_t)(vfu_ctx_t *vfu_ctx, vfu_dma_info_t *info);

/*
 * The largest number of DMA regions a device may ask for in
 * vfu_setup_device_dma(), and the number it gets for 0.
 */
#define LIBVFIO_USER_MAX_DMA_REGIONS 1000000

/*
 * vfu_setup_device_dma() - enable client DMA and install its callbacks.
 *
 * @vfu_ctx:        the context.
 * @max_regions:    how many DMA regions the client may have mapped at once,
 *                  at most LIBVFIO_USER_MAX_DMA_REGIONS; 0 means that many.
 *                  A DMA_MAP beyond it fails with EINVAL.
 * @dma_register:   called after a region is added, or NULL.
 * @dma_unregister: called before a region is removed, or NULL.  Required for
 *                  direct access through vfu_sgl_get().
 *
 * Until this is called, client memory cannot be translated with
 * vfu_addr_to_sgl().
 *
 * Returns 0, or -1 with errno set: EINVAL for a @max_regions above the
 * limit, ENOMEM.
 */
int
vfu_setup_device_dma(vfu_ctx_t *vfu_ctx, size_t max_regions,
                     vfu_dma_register_cb_t *dma_register,
                     vfu_dma_unregister_cb_t *dma_unregister);

/* Interrupt types; the values double as VFIO IRQ indexes. */
enum vfu_dev_irq_type {
    VFU_DEV_INTX_IRQ,
    VFU_DEV_MSI_IRQ,
    VFU_DEV_MSIX_IRQ,
    VFU_DEV_ERR_IRQ,
    VFU_DEV_REQ_IRQ,
    VFU_DEV_NUM_IRQS
};

/*
 * vfu_setup_device_nr_irqs() - set the number of vectors of one IRQ type.
 *
 * @vfu_ctx: the context.
 * @type:    VFU_DEV_INTX_IRQ .. VFU_DEV_REQ_IRQ.
 * @count:   number of vectors.
 *
 * Returns 0, or -1 with errno EINVAL for an invalid type.
 */
int
vfu_setup_device_nr_irqs(vfu_ctx_t *vfu_ctx, enum vfu_dev_irq_type type,
                         uint32_t count);

/*
 * IRQ mask state callback signature.
 *
 * @vfu_ctx: the context.
 * @start:   first vector affected.
 * @count:   number of vectors affected.
 * @mask:    true if the vectors were masked, false if unmasked.
 */
typedef void (vfu_dev_irq_state_cb_t)(vfu_ctx_t *vfu_ctx, uint32_t start,
                                      uint32_t count, bool mask);

/*
 * vfu_setup_irq_state_callback() - be told when the client masks or unmasks
 * vectors of one IRQ type.
 *
 * @vfu_ctx: the context.
 * @type:    IRQ type, e.g. VFU_DEV_MSIX_IRQ.
 * @cb:      the callback.
 *
 * Returns 0, or -1 with errno EINVAL for an invalid type.
 */
int
vfu_setup_irq_state_callback(vfu_ctx_t *vfu_ctx, enum vfu_dev_irq_type type,
                             vfu_dev_irq_state_cb_t *cb);

/* Device migration states passed to vfu_migration_callbacks_t.transition. */
typedef enum {
    VFU_MIGR_STATE_STOP,
    VFU_MIGR_STATE_RUNNING,
    VFU_MIGR_STATE_STOP_AND_COPY,
    VFU_MIGR_STATE_PRE_COPY,
    VFU_MIGR_STATE_RESUME
} vfu_migr_state_t;

/* Value to store in vfu_migration_callbacks_t.version. */
#define VFU_MIGR_CALLBACKS_VERS 2

/*
 * Migration callbacks, installed with vfu_setup_device_migration_callbacks().
 *
 * The client drives the device through the VFIO migration v2 state machine
 * (VFIO_USER_DEVICE_FEATURE) and moves device state over the socket with
 * VFIO_USER_MIG_DATA_READ/WRITE; the library maps those requests onto these
 * callbacks.  The device starts in VFU_MIGR_STATE_RUNNING.
 */
typedef struct {

    /* Must be VFU_MIGR_CALLBACKS_VERS. */
    int version;

    /*
     * Move the device to @state.  Called only while the device is quiesced.
     * Returns 0, or -1 with errno set to refuse the transition; the errno is
     * reported to the client and the device stays in the state it was in
     * (for a request that takes several steps, the last step that worked).
     */
    int (*transition)(vfu_ctx_t *vfu_ctx, vfu_migr_state_t state);

    /*
     * Saving side, called in VFU_MIGR_STATE_PRE_COPY and
     * VFU_MIGR_STATE_STOP_AND_COPY.  Copy up to @count bytes of the next
     * piece of the device's migration stream into @buf.  Returns the number
     * of bytes produced; a result smaller than @count (including 0) means no
     * further data is available in the current state, and in stop-and-copy
     * it marks the end of the stream.  Returns -1 with errno set on failure.
     */
    ssize_t (*read_data)(vfu_ctx_t *vfu_ctx, void *buf, uint64_t count);

    /*
     * Resuming side, called in VFU_MIGR_STATE_RESUME.  Consume the next
     * @count bytes of the migration stream from @buf.  Returns the number of
     * bytes consumed, or -1 with errno set on failure.
     */
    ssize_t (*write_data)(vfu_ctx_t *vfu_ctx, void *buf, uint64_t count);

} vfu_migration_callbacks_t;

#if defined(__LP64__) || defined(__x86_64__)
VFU_HDR_STATIC_ASSERT_(sizeof(vfu_migration_callbacks_t) == 32 &&
                       offsetof(vfu_migration_callbacks_t, transition) == 8 &&
                       offsetof(vfu_migration_callbacks_t, read_data) == 16 &&
                       offsetof(vfu_migration_callbacks_t, write_data) == 24,
                       "vfu_migration_callbacks_t layout changed");
#endif

/*
 * vfu_setup_device_migration_callbacks() - make the device migratable.
 *
 * @vfu_ctx:   the context.
 * @callbacks: callback table whose version is VFU_MIGR_CALLBACKS_VERS and
 *             whose transition, read_data and write_data members are set.
 *             The table is copied.
 *
 * Afterwards the device answers VFIO_USER_DEVICE_FEATURE migration requests
 * and VFIO_USER_MIG_DATA_READ/WRITE through @callbacks.  Best called before
 * vfu_realize_ctx(): the VERSION reply offers migration only to clients that
 * negotiate after this call.  Calling it again replaces the callbacks.
 *
 * Returns 0, or -1 with errno set: EINVAL if the version is wrong or the
 * table is unusable, EBUSY if a migration is under way (the device is not in
 * VFU_MIGR_STATE_RUNNING), ENOMEM.
 */
int
vfu_setup_device_migration_callbacks(vfu_ctx_t *vfu_ctx,
                                     const vfu_migration_callbacks_t *callbacks);

/*
 * vfu_irq_trigger() - raise an interrupt.
 *
 * @vfu_ctx:  the context.
 * @subindex: vector number within whichever of INTx, MSI or MSI-X the
 *            client has enabled; the library picks the type.
 *
 * Returns 0, or -1 with errno set: EINVAL if @subindex is beyond every
 * INTx, MSI and MSI-X count of the device, ENOENT if the client has not
 * attached an eventfd to the vector (or enabled no type with that many
 * vectors), or the error from writing the eventfd.  May be called from any
 * thread.
 *
 * It never blocks: vfu takes only eventfds from the client (SET_IRQS with
 * anything else is refused with EINVAL) and sets O_NONBLOCK on them, which
 * the client sees too, as the open file is shared; an eventfd whose counter
 * is full is left alone (the interrupt is pending anyway).  No lock is held
 * while the eventfd is written.  INTx is maskable but not automasked: each
 * trigger signals once unless the client masked the vector, and what fires
 * while masked is signalled on the unmask.
 */
int
vfu_irq_trigger(vfu_ctx_t *vfu_ctx, uint32_t subindex);

/*
 * vfu_addr_to_sgl() - translate a client address range.
 *
 * @vfu_ctx:    the context; vfu_setup_device_dma() must have been called.
 * @dma_addr:   start of the range in client IOVA space.
 * @len:        length of the range in bytes.
 * @sgl:        output array of @max_nr_sgs entries, each dma_sg_size() bytes.
 * @max_nr_sgs: capacity of @sgl.
 * @prot:       required access, PROT_READ and/or PROT_WRITE (sys/mman.h).
 *
 * A contiguous client range may span several DMA regions and so need more
 * than one entry.
 *
 * Returns the number of entries written (>= 1) on success.  On failure
 * returns -1 with errno ENOENT if part of the range is not mapped, EACCES if
 * a region lacks the requested protection, or EINVAL if DMA was never set
 * up.  If @sgl is too small, returns -(n + 1), where n is the number of
 * entries needed, and sets errno to 0.
 */
int
vfu_addr_to_sgl(vfu_ctx_t *vfu_ctx, vfu_dma_addr_t dma_addr, size_t len,
                dma_sg_t *sgl, size_t max_nr_sgs, int prot);

/*
 * vfu_sgl_get() - obtain local pointers for scatter/gather entries.
 *
 * @vfu_ctx: the context; a DMA unregister callback must be installed.
 * @sgl:     entries from vfu_addr_to_sgl(); leave them unmodified and
 *           allocated until vfu_sgl_put().
 * @iov:     output array of @cnt iovecs, one per entry.
 * @cnt:     number of entries.
 * @flags:   must be 0.
 *
 * Release the iovecs with vfu_sgl_put().
 *
 * Returns 0, or -1 with errno set: EINVAL if @flags is non-zero or no DMA
 * unregister callback exists, EFAULT if an entry's region is not mapped into
 * this process (check with vfu_sg_is_mappable()).
 */
int
vfu_sgl_get(vfu_ctx_t *vfu_ctx, dma_sg_t *sgl, struct iovec *iov, size_t cnt,
            int flags);

/*
 * vfu_sgl_mark_dirty() - record writes to client memory.
 *
 * @vfu_ctx: the context.
 * @sgl:     entries previously passed to vfu_sgl_get().
 * @cnt:     number of entries.
 *
 * Marks the pages covered by writable entries dirty in the client's DMA
 * dirty log (used during migration; a no-op while the client has logging
 * disabled).  Needed only for data written while the entries remain held;
 * vfu_sgl_put() marks them itself.
 */
void
vfu_sgl_mark_dirty(vfu_ctx_t *vfu_ctx, dma_sg_t *sgl, size_t cnt);

/*
 * vfu_sgl_put() - release iovecs from vfu_sgl_get().
 *
 * @vfu_ctx: the context.
 * @sgl:     the entries passed to vfu_sgl_get().
 * @iov:     the iovecs it filled in.
 * @cnt:     number of entries.
 *
 * Writable entries are marked dirty as needed.
 */
void
vfu_sgl_put(vfu_ctx_t *vfu_ctx, dma_sg_t *sgl, struct iovec *iov, size_t cnt);

/*
 * Flag for vfu_sgl_read() and vfu_sgl_write(): access the memory directly
 * (through the region's mapping, or read/write on its file for
 * VFIO_USER_F_DMA_REGION_FILE_IO regions) where the client allows it,
 * instead of sending VFIO_USER_DMA_READ/WRITE messages.
 */
#define VFU_SGL_DIRECT_ACCESS (1 << 0)

/*
 * Message-based DMA and the twin socket. A client that proposes
 * "twin_socket" in its VERSION (and takes fds: max_msg_fds of at least 1)
 * is given a second socket with the VERSION reply: the client's end of a
 * new socket pair, at the reply's fd index that the answer's
 * "twin_socket": {"supported": true, "fd_index": n} names. The
 * library's VFIO_USER_DMA_READ/WRITE requests and the client's replies
 * then travel on it, and the main socket carries only the client's
 * requests and the library's replies: a device thread's DMA never waits
 * for vfu_run_ctx() to hand it a reply. A client that does not propose it
 * (QEMU does not) gets none, and message-based DMA shares the main socket.
 * Either way a request that gets no reply within 10 s fails with
 * ETIMEDOUT, a peer that hangs up or answers garbage makes it fail with
 * ENOTCONN, EPROTO or EINVAL, and the twin socket goes with the client.
 */

/*
 * vfu_sgl_read() - copy client memory into a local buffer.
 *
 * @vfu_ctx: the context.
 * @sg:      entries from vfu_addr_to_sgl().
 * @cnt:     number of entries; only 1 is currently accepted.
 * @data:    destination, at least as large as the entry.
 * @flags:   0 or VFU_SGL_DIRECT_ACCESS.
 *
 * Without VFU_SGL_DIRECT_ACCESS, or for a region the client gave no file
 * for, the data comes in VFIO_USER_DMA_READ messages (on the twin socket
 * when one was negotiated), so it works for any region.
 *
 * Returns 0, or -1 with errno set: ENOTSUP if @cnt is not 1, EINVAL for
 * unknown @flags or a bad entry, ENOMEM, ENOTCONN if the client went away,
 * the client's errno for an error reply, EINVAL for a malformed reply;
 * with VFU_SGL_DIRECT_ACCESS on a VFIO_USER_F_DMA_REGION_FILE_IO region,
 * pread()'s error, or EFAULT (nothing moved) if the entry runs past the end
 * the file had when last mapped, or if the file ends inside it since.
 */
int
vfu_sgl_read(vfu_ctx_t *vfu_ctx, dma_sg_t *sg, size_t cnt, void *data,
             int flags);

/*
 * vfu_sgl_write() - copy a local buffer into client memory.
 *
 * @vfu_ctx: the context.
 * @sg:      entries from vfu_addr_to_sgl(), obtained with PROT_WRITE.
 * @cnt:     number of entries; only 1 is currently accepted.
 * @data:    source, at least as large as the entry.
 * @flags:   0 or VFU_SGL_DIRECT_ACCESS, as for vfu_sgl_read().
 *
 * Pages written are marked dirty while dirty logging runs.
 *
 * Returns 0, or -1 with errno set: ENOTSUP if @cnt is not 1, EINVAL for
 * unknown @flags, EPERM if the entry is not writable, ENOMEM, ENOTCONN if
 * the client went away, the client's errno for an error reply, EINVAL for a
 * malformed reply; pwrite()'s error as for vfu_sgl_read().
 */
int
vfu_sgl_write(vfu_ctx_t *vfu_ctx, dma_sg_t *sg, size_t cnt, void *data,
              int flags);

/*
 * Region indexes of a PCI device, numbered as in VFIO.  In vfio-user an index
 * is only a name: mmap offsets come from each region's file descriptor, not
 * from the index.
 */
enum {
    VFU_PCI_DEV_BAR0_REGION_IDX,
    VFU_PCI_DEV_BAR1_REGION_IDX,
    VFU_PCI_DEV_BAR2_REGION_IDX,
    VFU_PCI_DEV_BAR3_REGION_IDX,
    VFU_PCI_DEV_BAR4_REGION_IDX,
    VFU_PCI_DEV_BAR5_REGION_IDX,
    VFU_PCI_DEV_ROM_REGION_IDX,
    VFU_PCI_DEV_CFG_REGION_IDX,
    VFU_PCI_DEV_VGA_REGION_IDX,
    VFU_PCI_DEV_NUM_REGIONS,
};

/* PCI flavour, which determines the config space size and capabilities. */
typedef enum {
    VFU_PCI_TYPE_CONVENTIONAL,
    VFU_PCI_TYPE_PCI_X_1,
    VFU_PCI_TYPE_PCI_X_2,
    VFU_PCI_TYPE_EXPRESS
} vfu_pci_type_t;

/*
 * Region indexes of a non-PCI (generic) device.  Retained for source
 * compatibility only: migration no longer uses a region, and no generic
 * device type exists.
 */
enum {
    VFU_GENERIC_DEV_MIGR_REGION_IDX,
    VFU_GENERIC_DEV_NUM_REGIONS
};

/*
 * vfu_pci_init() - make the context a PCI device.
 *
 * @vfu_ctx:  the context; call at most once.
 * @pci_type: conventional, PCI-X mode 1, PCI-X mode 2 or PCI Express.
 * @hdr_type: config header type; only PCI_HEADER_TYPE_NORMAL is supported.
 * @revision: PCI/PCI-X/PCIe revision.
 *
 * Allocates the config space buffer (see vfu_pci_get_config_space()): 256
 * bytes for conventional and PCI-X mode 1, 4096 bytes for PCI-X mode 2 and
 * PCI Express.
 *
 * Returns 0, or -1 with errno set: EINVAL for an unsupported type or header
 * type, EEXIST if already initialized, ENOMEM.
 */
int
vfu_pci_init(vfu_ctx_t *vfu_ctx, vfu_pci_type_t pci_type,
             int hdr_type, int revision);

/*
 * vfu_pci_set_id() - fill in the identification registers.
 *
 * @vfu_ctx: the context, after vfu_pci_init().
 * @vid:     Vendor ID.
 * @did:     Device ID.
 * @ssvid:   Subsystem Vendor ID.
 * @ssid:    Subsystem ID.
 *
 * Every PCI device must call this.
 */
void
vfu_pci_set_id(vfu_ctx_t *vfu_ctx, uint16_t vid, uint16_t did,
               uint16_t ssvid, uint16_t ssid);

/*
 * vfu_pci_set_class() - fill in the Class Code register.
 *
 * @vfu_ctx: the context, after vfu_pci_init().
 * @base:    base class.
 * @sub:     sub-class.
 * @pi:      programming interface.
 *
 * The class code is zero unless set.
 */
void
vfu_pci_set_class(vfu_ctx_t *vfu_ctx, uint8_t base, uint8_t sub, uint8_t pi);

/*
 * vfu_pci_get_config_space() - direct access to config space.
 *
 * @vfu_ctx: the context, after vfu_pci_init().
 *
 * Returns the library's config space buffer: the 64-byte standard header
 * followed by capability and device-specific space, PCI_CFG_SPACE_SIZE or
 * PCI_CFG_SPACE_EXP_SIZE bytes in total.  The device may read and update it
 * in place.
 */
vfu_pci_config_space_t *
vfu_pci_get_config_space(vfu_ctx_t *vfu_ctx);

/* Flags for vfu_pci_add_capability(). */
/* PCIe extended capability (needs PCI-X mode 2 or PCI Express). */
#define VFU_CAP_FLAG_EXTENDED (1 << 0)
/* Forward all accesses to the config space region callback. */
#define VFU_CAP_FLAG_CALLBACK (1 << 1)
/* Reject client writes to the capability. */
#define VFU_CAP_FLAG_READONLY (1 << 2)

/*
 * vfu_pci_add_capability() - insert a capability into config space.
 *
 * @vfu_ctx: the context, after vfu_pci_init().
 * @pos:     config space offset to place it at, or 0 to pick a free spot.
 *           An explicit position must not overlap the standard header or
 *           another capability; the list is linked in insertion order, not
 *           by offset.
 * @flags:   VFU_CAP_FLAG_* bits.
 * @data:    capability contents beginning with a standard or extended
 *           capability header with the ID set (the next pointer is ignored).
 *           Variable-size capabilities, such as vendor-specific ones, must
 *           carry their length.  The bytes are copied.
 *
 * The library implements the behaviour of the PCI Express, MSI, MSI-X and
 * Power Management capabilities itself, but they still have to be added
 * here; the PCI Express one takes VFIO_USER_PCI_CAP_EXP_SIZEOF bytes and MSI
 * VFIO_USER_PCI_CAP_MSI_SIZEOF, whatever its flags.  With
 * VFU_CAP_FLAG_CALLBACK all accesses go to the config region callback, which
 * must not let the header (ID and next pointer) be rewritten.  Otherwise a
 * client write to the header (for vendor-specific capabilities, the length
 * too), to a VFU_CAP_FLAG_READONLY capability or to the Device Serial Number
 * fails with EPERM; Power Management registers take whole-register writes,
 * of which only the control/status register is writable (others: ENOTSUP,
 * partial ones: EINVAL), and an MSI Multiple Message Enable beyond Multiple
 * Message Capable fails with EINVAL.
 *
 * Returns the capability's config space offset, or -1 with errno set: EINVAL
 * for a bad position, flags or capability, ENOTSUP for an unsupported
 * capability ID, ENOSPC if config space is full, ENOMEM.
 */
ssize_t
vfu_pci_add_capability(vfu_ctx_t *vfu_ctx, size_t pos, int flags, void *data);

/*
 * vfu_pci_find_capability() - locate the first capability with an ID.
 *
 * @vfu_ctx:  the context.
 * @extended: search the extended list instead of the standard one.
 * @cap_id:   PCI_CAP_ID_* or PCI_EXT_CAP_ID_* value.
 *
 * Returns its config space offset, or 0 with errno ENOENT if none exists
 * (EINVAL if @extended is not valid for the device type).
 */
size_t
vfu_pci_find_capability(vfu_ctx_t *vfu_ctx, bool extended, int cap_id);

/*
 * vfu_pci_find_next_capability() - continue a capability search.
 *
 * @vfu_ctx:  the context.
 * @extended: search the extended list instead of the standard one.
 * @pos:      offset of an existing capability where the search resumes
 *            (that capability itself is skipped), or 0 to search from the
 *            start of the list like vfu_pci_find_capability().
 * @cap_id:   PCI_CAP_ID_* or PCI_EXT_CAP_ID_* value.
 *
 * Returns the offset of the next capability with @cap_id, or 0 with errno
 * set: ENOENT if there are no more or no capability starts at @pos, EINVAL
 * if @pos lies outside the list's part of config space.
 */
size_t
vfu_pci_find_next_capability(vfu_ctx_t *vfu_ctx, bool extended,
                             size_t pos, int cap_id);

/*
 * vfu_sg_is_mappable() - whether vfu_sgl_get() can map an entry.
 *
 * @vfu_ctx: the context.
 * @sg:      an entry from vfu_addr_to_sgl().
 *
 * Returns true if the entry's region is mapped into this process, false if
 * it must be accessed with vfu_sgl_read()/vfu_sgl_write().  Does not set
 * errno.
 */
bool
vfu_sg_is_mappable(vfu_ctx_t *vfu_ctx, dma_sg_t *sg);

/*
 * vfu_create_ioeventfd() - let the client signal an eventfd on region writes.
 *
 * @vfu_ctx:       the context.
 * @region_idx:    region the ioeventfd watches; it must already be set up.
 * @fd:            eventfd to signal, or -1: the client is then told of the
 *                 location with fd_index UINT32_MAX and no descriptor.
 * @gpa_offset:    offset inside the region of the watched location.
 * @size:          access width in bytes.
 * @flags:         ioeventfd flags, e.g. whether @datamatch applies.
 * @datamatch:     value a write must carry to fire when data matching is on.
 * @shadow_fd:     -1 for a plain ioeventfd.  Otherwise an mmap()able file into
 *                 which a supporting kernel stores the written value; this
 *                 experimental mode needs vfu built with SHADOW_IOEVENTFD,
 *                 and clients may ignore it.
 * @shadow_offset: where inside @shadow_fd the value is stored; ignored when
 *                 @shadow_fd is -1.
 *
 * The descriptors are handed to the client through
 * VFIO_USER_DEVICE_GET_REGION_IO_FDS, each distinct one once, however many
 * ioeventfds share it.
 *
 * Returns 0, or -1 with errno set: EINVAL for a bad region index, a range
 * outside the region, or @shadow_fd without shadow ioeventfd support; ENOMEM.
 */
int
vfu_create_ioeventfd(vfu_ctx_t *vfu_ctx, uint32_t region_idx, int fd,
                     size_t gpa_offset, uint32_t size, uint32_t flags,
                     uint64_t datamatch, int shadow_fd, size_t shadow_offset);

#undef VFU_HDR_STATIC_ASSERT_

#ifdef __cplusplus
}
#endif

#endif /* LIB_VFIO_USER_H */
