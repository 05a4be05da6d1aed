/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 the vfu authors. */

/*
 * The public interface of libvfio-user at commit efd091b, stated here as
 * facts and checked against vfu's public headers.  Any drift breaks the
 * build of this file: a function's type, a constant's value, an enum value,
 * a struct's size, a member's offset or width.  The expected types are
 * spelled out with plain C types (struct vfu_ctx rather than vfu_ctx_t, the
 * function types rather than the callback typedefs), so a typedef that
 * changed under us is caught too.
 *
 * Sources of the facts: the ctypes prototypes, constants and struct layouts
 * of libvfio-user's own test library at efd091b, and libvfio-user's headers
 * where that commit did not change them.
 *
 * Bit-field positions cannot be checked at compile time; main() checks
 * them, and the size of a dma_sg_t, at run time.  Layouts that depend on
 * pointer size are checked for LP64 only.
 *
 * The PCI Express capability (pci_caps/px.h) is the current layout, not
 * efd091b's ctypes: the whole v2 capability up to Slot Status 2 with every
 * register named, and Device Capabilities with FLR capable at bit 28, as
 * libvfio-user's own lspci test expects ("FLReset+ SlotPowerLimit 0W" for
 * its lspci sample, which sets only pxdcap.flrc) and as its Python suite's
 * setup_flrc() writes it.
 *
 * Left out on purpose: vfu's own additions (vfu.h, vfu-client.h, VFIO_USER_REGION_WRITE_MULTI's
 * payload), which are no part of libvfio-user's interface.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "libvfio-user.h"

/* fn has exactly the function type given (possibly with commas in it). */
#define FN(fn, ...) \
    _Static_assert(__builtin_types_compatible_p(__typeof__(&fn), __VA_ARGS__), \
                   #fn " has changed type")

/* type is the same type as the one given. */
#define TYPE(t, ...) \
    _Static_assert(__builtin_types_compatible_p(t, __VA_ARGS__), \
                   #t " has changed type")

#define EQ(x, v) _Static_assert((x) == (v), #x " is not " #v)

#define SIZE(t, n) _Static_assert(sizeof(t) == (n), "sizeof(" #t ") is not " #n)

/* Member m of t lies at offset off and is sz bytes wide. */
#define AT(t, m, off, sz) \
    _Static_assert(offsetof(t, m) == (off) && sizeof(((t *)0)->m) == (sz), \
                   #t "." #m " is not at " #off " (" #sz " bytes)")

/* A flexible array member: offset only. */
#define TAIL(t, m, off) \
    _Static_assert(offsetof(t, m) == (off), #t "." #m " is not at " #off)

/* Member m of t has the type given. */
#define MTYPE(t, m, ...) \
    _Static_assert(__builtin_types_compatible_p(__typeof__(((t *)0)->m), \
                                                __VA_ARGS__), \
                   #t "." #m " has changed type")

/* ------------------------------------------------------------------ */
/* libvfio-user.h: types                                               */
/* ------------------------------------------------------------------ */

TYPE(vfu_ctx_t, struct vfu_ctx);
TYPE(dma_sg_t, struct dma_sg);          /* opaque: sized by dma_sg_size() */
TYPE(vfu_dma_addr_t, void *);
TYPE(vfu_dma_info_t, struct vfu_dma_info);
TYPE(vfu_reset_type_t, enum vfu_reset_type);

TYPE(vfu_log_fn_t, void (struct vfu_ctx *, int, const char *));
TYPE(vfu_region_access_cb_t,
     ssize_t (struct vfu_ctx *, char *, size_t, loff_t, bool));
TYPE(vfu_device_quiesce_cb_t, int (struct vfu_ctx *));
TYPE(vfu_reset_cb_t, int (struct vfu_ctx *, enum vfu_reset_type));
TYPE(vfu_dma_register_cb_t, void (struct vfu_ctx *, struct vfu_dma_info *));
TYPE(vfu_dma_unregister_cb_t, void (struct vfu_ctx *, struct vfu_dma_info *));
TYPE(vfu_dev_irq_state_cb_t, void (struct vfu_ctx *, uint32_t, uint32_t, bool));

/* The enums are int-sized, as the ctypes prototypes pass them as c_int. */
SIZE(vfu_trans_t, 4);
SIZE(vfu_dev_type_t, 4);
SIZE(vfu_reset_type_t, 4);
SIZE(enum vfu_dev_irq_type, 4);
SIZE(vfu_migr_state_t, 4);
SIZE(vfu_pci_type_t, 4);

/* ------------------------------------------------------------------ */
/* libvfio-user.h: every function                                      */
/* ------------------------------------------------------------------ */

FN(dma_sg_size, size_t (*)(void));
FN(vfu_create_ctx, struct vfu_ctx *(*)(vfu_trans_t, const char *, int, void *,
                                       vfu_dev_type_t));
FN(vfu_realize_ctx, int (*)(struct vfu_ctx *));
FN(vfu_attach_ctx, int (*)(struct vfu_ctx *));
FN(vfu_get_poll_fd, int (*)(struct vfu_ctx *));
FN(vfu_run_ctx, int (*)(struct vfu_ctx *));
FN(vfu_destroy_ctx, void (*)(struct vfu_ctx *));
FN(vfu_get_private, void *(*)(struct vfu_ctx *));
FN(vfu_log, void (*)(struct vfu_ctx *, int, const char *, ...));
FN(vfu_setup_log, int (*)(struct vfu_ctx *,
                          void (*)(struct vfu_ctx *, int, const char *), int));
FN(vfu_setup_region,
   int (*)(struct vfu_ctx *, int, size_t,
           ssize_t (*)(struct vfu_ctx *, char *, size_t, loff_t, bool),
           int, struct iovec *, uint32_t, int, uint64_t));
FN(vfu_setup_device_quiesce_cb,
   void (*)(struct vfu_ctx *, int (*)(struct vfu_ctx *)));
FN(vfu_device_quiesced, int (*)(struct vfu_ctx *, int));
FN(vfu_setup_device_reset_cb,
   int (*)(struct vfu_ctx *, int (*)(struct vfu_ctx *, enum vfu_reset_type)));
FN(vfu_setup_device_dma,
   int (*)(struct vfu_ctx *, size_t,
           void (*)(struct vfu_ctx *, struct vfu_dma_info *),
           void (*)(struct vfu_ctx *, struct vfu_dma_info *)));
FN(vfu_setup_device_nr_irqs,
   int (*)(struct vfu_ctx *, enum vfu_dev_irq_type, uint32_t));
FN(vfu_setup_irq_state_callback,
   int (*)(struct vfu_ctx *, enum vfu_dev_irq_type,
           void (*)(struct vfu_ctx *, uint32_t, uint32_t, bool)));
FN(vfu_setup_device_migration_callbacks,
   int (*)(struct vfu_ctx *, const vfu_migration_callbacks_t *));
FN(vfu_irq_trigger, int (*)(struct vfu_ctx *, uint32_t));
FN(vfu_addr_to_sgl,
   int (*)(struct vfu_ctx *, void *, size_t, struct dma_sg *, size_t, int));
FN(vfu_sgl_get,
   int (*)(struct vfu_ctx *, struct dma_sg *, struct iovec *, size_t, int));
FN(vfu_sgl_mark_dirty, void (*)(struct vfu_ctx *, struct dma_sg *, size_t));
FN(vfu_sgl_put,
   void (*)(struct vfu_ctx *, struct dma_sg *, struct iovec *, size_t));
FN(vfu_sgl_read,
   int (*)(struct vfu_ctx *, struct dma_sg *, size_t, void *, int));
FN(vfu_sgl_write,
   int (*)(struct vfu_ctx *, struct dma_sg *, size_t, void *, int));
FN(vfu_pci_init, int (*)(struct vfu_ctx *, vfu_pci_type_t, int, int));
FN(vfu_pci_set_id,
   void (*)(struct vfu_ctx *, uint16_t, uint16_t, uint16_t, uint16_t));
FN(vfu_pci_set_class, void (*)(struct vfu_ctx *, uint8_t, uint8_t, uint8_t));
FN(vfu_pci_get_config_space, vfu_pci_config_space_t *(*)(struct vfu_ctx *));
FN(vfu_pci_add_capability, ssize_t (*)(struct vfu_ctx *, size_t, int, void *));
FN(vfu_pci_find_capability, size_t (*)(struct vfu_ctx *, bool, int));
FN(vfu_pci_find_next_capability,
   size_t (*)(struct vfu_ctx *, bool, size_t, int));
FN(vfu_sg_is_mappable, bool (*)(struct vfu_ctx *, struct dma_sg *));
FN(vfu_create_ioeventfd,
   int (*)(struct vfu_ctx *, uint32_t, int, size_t, uint32_t, uint32_t,
           uint64_t, int, size_t));

/* ------------------------------------------------------------------ */
/* libvfio-user.h: constants and enum values                          */
/* ------------------------------------------------------------------ */

EQ(LIB_VFIO_USER_MAJOR, 0);
EQ(LIB_VFIO_USER_MINOR, 1);
EQ(LIBVFIO_USER_FLAG_ATTACH_NB, 1 << 0);
EQ(LIBVFIO_USER_MAX_DMA_REGIONS, 1000000);

EQ(VFU_TRANS_SOCK, 0);
EQ(VFU_TRANS_PIPE, 1);
EQ(VFU_TRANS_MAX, 2);
EQ(VFU_DEV_TYPE_PCI, 0);

EQ(VFU_REGION_FLAG_READ, 1 << 0);
EQ(VFU_REGION_FLAG_WRITE, 1 << 1);
EQ(VFU_REGION_FLAG_RW, (1 << 0) | (1 << 1));
EQ(VFU_REGION_FLAG_MEM, 1 << 2);
EQ(VFU_REGION_FLAG_ALWAYS_CB, 1 << 3);
EQ(VFU_REGION_FLAG_64_BITS, 1 << 4);
EQ(VFU_REGION_FLAG_PREFETCH, 1 << 5);
EQ(VFU_REGION_FLAG_MASK, 0x3f);

EQ(VFU_RESET_DEVICE, 0);
EQ(VFU_RESET_LOST_CONN, 1);
EQ(VFU_RESET_PCI_FLR, 2);

EQ(VFU_DEV_INTX_IRQ, 0);
EQ(VFU_DEV_MSI_IRQ, 1);
EQ(VFU_DEV_MSIX_IRQ, 2);
EQ(VFU_DEV_ERR_IRQ, 3);
EQ(VFU_DEV_REQ_IRQ, 4);
EQ(VFU_DEV_NUM_IRQS, 5);

EQ(VFU_MIGR_STATE_STOP, 0);
EQ(VFU_MIGR_STATE_RUNNING, 1);
EQ(VFU_MIGR_STATE_STOP_AND_COPY, 2);
EQ(VFU_MIGR_STATE_PRE_COPY, 3);
EQ(VFU_MIGR_STATE_RESUME, 4);
EQ(VFU_MIGR_CALLBACKS_VERS, 2);

EQ(VFU_SGL_DIRECT_ACCESS, 1 << 0);

EQ(VFU_PCI_DEV_BAR0_REGION_IDX, 0);
EQ(VFU_PCI_DEV_BAR1_REGION_IDX, 1);
EQ(VFU_PCI_DEV_BAR2_REGION_IDX, 2);
EQ(VFU_PCI_DEV_BAR3_REGION_IDX, 3);
EQ(VFU_PCI_DEV_BAR4_REGION_IDX, 4);
EQ(VFU_PCI_DEV_BAR5_REGION_IDX, 5);
EQ(VFU_PCI_DEV_ROM_REGION_IDX, 6);
EQ(VFU_PCI_DEV_CFG_REGION_IDX, 7);
EQ(VFU_PCI_DEV_VGA_REGION_IDX, 8);
EQ(VFU_PCI_DEV_NUM_REGIONS, 9);
EQ(VFU_GENERIC_DEV_MIGR_REGION_IDX, 0);
EQ(VFU_GENERIC_DEV_NUM_REGIONS, 1);

EQ(VFU_PCI_TYPE_CONVENTIONAL, 0);
EQ(VFU_PCI_TYPE_PCI_X_1, 1);
EQ(VFU_PCI_TYPE_PCI_X_2, 2);
EQ(VFU_PCI_TYPE_EXPRESS, 3);

EQ(VFU_CAP_FLAG_EXTENDED, 1 << 0);
EQ(VFU_CAP_FLAG_CALLBACK, 1 << 1);
EQ(VFU_CAP_FLAG_READONLY, 1 << 2);

/* ------------------------------------------------------------------ */
/* libvfio-user.h: structs                                             */
/* ------------------------------------------------------------------ */

MTYPE(vfu_dma_info_t, iova, struct iovec);
MTYPE(vfu_dma_info_t, vaddr, void *);
MTYPE(vfu_dma_info_t, mapping, struct iovec);
MTYPE(vfu_dma_info_t, page_size, size_t);
MTYPE(vfu_dma_info_t, prot, uint32_t);

MTYPE(vfu_migration_callbacks_t, version, int);
MTYPE(vfu_migration_callbacks_t, transition,
      int (*)(struct vfu_ctx *, vfu_migr_state_t));
MTYPE(vfu_migration_callbacks_t, read_data,
      ssize_t (*)(struct vfu_ctx *, void *, uint64_t));
MTYPE(vfu_migration_callbacks_t, write_data,
      ssize_t (*)(struct vfu_ctx *, void *, uint64_t));

#if defined(__LP64__)
SIZE(vfu_dma_info_t, 56);
AT(vfu_dma_info_t, iova, 0, 16);
AT(vfu_dma_info_t, vaddr, 16, 8);
AT(vfu_dma_info_t, mapping, 24, 16);
AT(vfu_dma_info_t, page_size, 40, 8);
AT(vfu_dma_info_t, prot, 48, 4);

SIZE(vfu_migration_callbacks_t, 32);
AT(vfu_migration_callbacks_t, version, 0, 4);
AT(vfu_migration_callbacks_t, transition, 8, 8);
AT(vfu_migration_callbacks_t, read_data, 16, 8);
AT(vfu_migration_callbacks_t, write_data, 24, 8);
#endif

/* ------------------------------------------------------------------ */
/* vfio-user.h: constants                                              */
/* ------------------------------------------------------------------ */

EQ(VFIO_USER_DEFAULT_MAX_DATA_XFER_SIZE, 1024 * 1024);

EQ(VFIO_USER_VERSION, 1);
EQ(VFIO_USER_DMA_MAP, 2);
EQ(VFIO_USER_DMA_UNMAP, 3);
EQ(VFIO_USER_DEVICE_GET_INFO, 4);
EQ(VFIO_USER_DEVICE_GET_REGION_INFO, 5);
EQ(VFIO_USER_DEVICE_GET_REGION_IO_FDS, 6);
EQ(VFIO_USER_DEVICE_GET_IRQ_INFO, 7);
EQ(VFIO_USER_DEVICE_SET_IRQS, 8);
EQ(VFIO_USER_REGION_READ, 9);
EQ(VFIO_USER_REGION_WRITE, 10);
EQ(VFIO_USER_DMA_READ, 11);
EQ(VFIO_USER_DMA_WRITE, 12);
EQ(VFIO_USER_DEVICE_RESET, 13);
EQ(VFIO_USER_REGION_WRITE_MULTI, 15);
EQ(VFIO_USER_DEVICE_FEATURE, 16);
EQ(VFIO_USER_MIG_DATA_READ, 17);
EQ(VFIO_USER_MIG_DATA_WRITE, 18);
EQ(VFIO_USER_MAX, 19);

EQ(VFIO_USER_MESSAGE_COMMAND, 0);
EQ(VFIO_USER_MESSAGE_REPLY, 1);
EQ(VFIO_USER_FLAGS_NO_REPLY, 0x1);

EQ(VFIO_USER_F_TYPE_MASK, 0xf);
EQ(VFIO_USER_F_TYPE_COMMAND, 0);
EQ(VFIO_USER_F_TYPE_REPLY, 1);
EQ(VFIO_USER_F_NO_REPLY, 0x10);
EQ(VFIO_USER_F_ERROR, 0x20);

EQ(VFIO_USER_F_DMA_REGION_READ, 1 << 0);
EQ(VFIO_USER_F_DMA_REGION_WRITE, 1 << 1);
EQ(VFIO_USER_F_DMA_REGION_MMAP, 1 << 2);
EQ(VFIO_USER_F_DMA_REGION_FILE_IO, 1 << 3);
EQ(VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP, 1 << 0);
EQ(VFIO_DMA_UNMAP_FLAG_ALL, 1 << 1);

EQ(VFIO_USER_IO_FD_TYPE_IOEVENTFD, 0);
EQ(VFIO_USER_IO_FD_TYPE_IOREGIONFD, 1);
EQ(VFIO_USER_IO_FD_TYPE_IOEVENTFD_SHADOW, 2);

EQ(VFIO_DEVICE_FEATURE_MASK, 0xffff);
EQ(VFIO_DEVICE_FEATURE_GET, 1 << 16);
EQ(VFIO_DEVICE_FEATURE_SET, 1 << 17);
EQ(VFIO_DEVICE_FEATURE_PROBE, 1 << 18);
EQ(VFIO_DEVICE_FEATURE_MIGRATION, 1);
EQ(VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE, 2);
EQ(VFIO_DEVICE_FEATURE_DMA_LOGGING_START, 6);
EQ(VFIO_DEVICE_FEATURE_DMA_LOGGING_STOP, 7);
EQ(VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT, 8);
EQ(VFIO_MIGRATION_STOP_COPY, 1 << 0);
EQ(VFIO_MIGRATION_P2P, 1 << 1);
EQ(VFIO_MIGRATION_PRE_COPY, 1 << 2);

EQ(VFIO_USER_DEVICE_STATE_ERROR, 0);
EQ(VFIO_USER_DEVICE_STATE_STOP, 1);
EQ(VFIO_USER_DEVICE_STATE_RUNNING, 2);
EQ(VFIO_USER_DEVICE_STATE_STOP_COPY, 3);
EQ(VFIO_USER_DEVICE_STATE_RESUMING, 4);
EQ(VFIO_USER_DEVICE_STATE_RUNNING_P2P, 5);
EQ(VFIO_USER_DEVICE_STATE_PRE_COPY, 6);
EQ(VFIO_USER_DEVICE_STATE_PRE_COPY_P2P, 7);
EQ(VFIO_USER_DEVICE_NUM_STATES, 8);

/* ------------------------------------------------------------------ */
/* vfio-user.h: wire structs                                           */
/* ------------------------------------------------------------------ */

SIZE(struct vfio_user_header, 16);
AT(struct vfio_user_header, msg_id, 0, 2);
AT(struct vfio_user_header, cmd, 2, 2);
AT(struct vfio_user_header, msg_size, 4, 4);
AT(struct vfio_user_header, flags, 8, 4);
AT(struct vfio_user_header, error_no, 12, 4);

SIZE(struct vfio_user_version, 4);
AT(struct vfio_user_version, major, 0, 2);
AT(struct vfio_user_version, minor, 2, 2);
TAIL(struct vfio_user_version, data, 4);

SIZE(struct vfio_user_device_info, 16);
AT(struct vfio_user_device_info, argsz, 0, 4);
AT(struct vfio_user_device_info, flags, 4, 4);
AT(struct vfio_user_device_info, num_regions, 8, 4);
AT(struct vfio_user_device_info, num_irqs, 12, 4);

SIZE(struct vfio_user_bitmap, 16);
AT(struct vfio_user_bitmap, pgsize, 0, 8);
AT(struct vfio_user_bitmap, size, 8, 8);
TAIL(struct vfio_user_bitmap, data, 16);

SIZE(struct vfio_user_dma_map, 32);
AT(struct vfio_user_dma_map, argsz, 0, 4);
AT(struct vfio_user_dma_map, flags, 4, 4);
AT(struct vfio_user_dma_map, offset, 8, 8);
AT(struct vfio_user_dma_map, addr, 16, 8);
AT(struct vfio_user_dma_map, size, 24, 8);

SIZE(struct vfio_user_dma_unmap, 24);
AT(struct vfio_user_dma_unmap, argsz, 0, 4);
AT(struct vfio_user_dma_unmap, flags, 4, 4);
AT(struct vfio_user_dma_unmap, addr, 8, 8);
AT(struct vfio_user_dma_unmap, size, 16, 8);
TAIL(struct vfio_user_dma_unmap, bitmap, 24);

SIZE(struct vfio_user_region_access, 16);
AT(struct vfio_user_region_access, offset, 0, 8);
AT(struct vfio_user_region_access, region, 8, 4);
AT(struct vfio_user_region_access, count, 12, 4);
TAIL(struct vfio_user_region_access, data, 16);

SIZE(struct vfio_user_dma_region_access, 16);
AT(struct vfio_user_dma_region_access, addr, 0, 8);
AT(struct vfio_user_dma_region_access, count, 8, 8);
TAIL(struct vfio_user_dma_region_access, data, 16);

SIZE(struct vfio_user_irq_info, 4);
AT(struct vfio_user_irq_info, subindex, 0, 4);

TYPE(vfio_user_region_io_fds_request_t,
     struct vfio_user_region_io_fds_request);
SIZE(struct vfio_user_region_io_fds_request, 16);
AT(struct vfio_user_region_io_fds_request, argsz, 0, 4);
AT(struct vfio_user_region_io_fds_request, flags, 4, 4);
AT(struct vfio_user_region_io_fds_request, index, 8, 4);
AT(struct vfio_user_region_io_fds_request, count, 12, 4);

TYPE(vfio_user_sub_region_ioeventfd_t, struct vfio_user_sub_region_ioeventfd);
SIZE(struct vfio_user_sub_region_ioeventfd, 48);
AT(struct vfio_user_sub_region_ioeventfd, gpa_offset, 0, 8);
AT(struct vfio_user_sub_region_ioeventfd, size, 8, 8);
AT(struct vfio_user_sub_region_ioeventfd, fd_index, 16, 4);
AT(struct vfio_user_sub_region_ioeventfd, type, 20, 4);
AT(struct vfio_user_sub_region_ioeventfd, flags, 24, 4);
AT(struct vfio_user_sub_region_ioeventfd, shadow_mem_fd_index, 28, 4);
AT(struct vfio_user_sub_region_ioeventfd, shadow_offset, 32, 8);
AT(struct vfio_user_sub_region_ioeventfd, datamatch, 40, 8);

TYPE(vfio_user_sub_region_ioregionfd_t,
     struct vfio_user_sub_region_ioregionfd);
SIZE(struct vfio_user_sub_region_ioregionfd, 40);
AT(struct vfio_user_sub_region_ioregionfd, offset, 0, 8);
AT(struct vfio_user_sub_region_ioregionfd, size, 8, 8);
AT(struct vfio_user_sub_region_ioregionfd, fd_index, 16, 4);
AT(struct vfio_user_sub_region_ioregionfd, type, 20, 4);
AT(struct vfio_user_sub_region_ioregionfd, flags, 24, 4);
AT(struct vfio_user_sub_region_ioregionfd, padding, 28, 4);
AT(struct vfio_user_sub_region_ioregionfd, user_data, 32, 8);

TYPE(vfio_user_region_io_fds_reply_t, struct vfio_user_region_io_fds_reply);
SIZE(struct vfio_user_region_io_fds_reply, 16);
AT(struct vfio_user_region_io_fds_reply, argsz, 0, 4);
AT(struct vfio_user_region_io_fds_reply, flags, 4, 4);
AT(struct vfio_user_region_io_fds_reply, index, 8, 4);
AT(struct vfio_user_region_io_fds_reply, count, 12, 4);
TAIL(struct vfio_user_region_io_fds_reply, sub_regions, 16);
SIZE(union sub_region, 48);
AT(union sub_region, ioeventfd, 0, 48);
AT(union sub_region, ioregionfd, 0, 40);

SIZE(struct vfio_user_device_feature_dma_logging_range, 16);
AT(struct vfio_user_device_feature_dma_logging_range, iova, 0, 8);
AT(struct vfio_user_device_feature_dma_logging_range, length, 8, 8);

SIZE(struct vfio_user_device_feature_dma_logging_control, 16);
AT(struct vfio_user_device_feature_dma_logging_control, page_size, 0, 8);
AT(struct vfio_user_device_feature_dma_logging_control, num_ranges, 8, 4);
AT(struct vfio_user_device_feature_dma_logging_control, reserved, 12, 4);
TAIL(struct vfio_user_device_feature_dma_logging_control, ranges, 16);

SIZE(struct vfio_user_device_feature_dma_logging_report, 24);
AT(struct vfio_user_device_feature_dma_logging_report, iova, 0, 8);
AT(struct vfio_user_device_feature_dma_logging_report, length, 8, 8);
AT(struct vfio_user_device_feature_dma_logging_report, page_size, 16, 8);
TAIL(struct vfio_user_device_feature_dma_logging_report, bitmap, 24);

SIZE(struct vfio_user_device_feature, 8);
AT(struct vfio_user_device_feature, argsz, 0, 4);
AT(struct vfio_user_device_feature, flags, 4, 4);
TAIL(struct vfio_user_device_feature, data, 8);

SIZE(struct vfio_user_device_feature_migration, 8);
AT(struct vfio_user_device_feature_migration, flags, 0, 8);

SIZE(struct vfio_user_device_feature_mig_state, 8);
AT(struct vfio_user_device_feature_mig_state, device_state, 0, 4);
AT(struct vfio_user_device_feature_mig_state, data_fd, 4, 4);

SIZE(struct vfio_user_mig_data, 8);
AT(struct vfio_user_mig_data, argsz, 0, 4);
AT(struct vfio_user_mig_data, size, 4, 4);
TAIL(struct vfio_user_mig_data, data, 8);

/* ------------------------------------------------------------------ */
/* pci_defs.h                                                          */
/* ------------------------------------------------------------------ */

EQ(PCI_BASE_ADDRESS_MEM_TYPE_LOCATABLE_32, 0);
EQ(PCI_BASE_ADDRESS_MEM_TYPE_LOCATABLE_1M, 1);
EQ(PCI_BASE_ADDRESS_MEM_TYPE_LOCATABLE_64, 2);
EQ(PCI_BARS_NR, 6);

SIZE(vfu_pci_hdr_ss_t, 4);
AT(vfu_pci_hdr_ss_t, raw, 0, 4);
AT(vfu_pci_hdr_ss_t, vid, 0, 2);
AT(vfu_pci_hdr_ss_t, sid, 2, 2);
SIZE(vfu_pci_hdr_bist_t, 1);
SIZE(vfu_bar_t, 4);
AT(vfu_bar_t, raw, 0, 4);
AT(vfu_bar_t, mem, 0, 4);
AT(vfu_bar_t, io, 0, 4);
SIZE(vfu_pci_hdr_htype_t, 1);
SIZE(vfu_pci_hdr_cc_t, 3);
AT(vfu_pci_hdr_cc_t, pi, 0, 1);
AT(vfu_pci_hdr_cc_t, scc, 1, 1);
AT(vfu_pci_hdr_cc_t, bcc, 2, 1);
SIZE(vfu_pci_hdr_sts_t, 2);
AT(vfu_pci_hdr_sts_t, raw, 0, 2);
SIZE(vfu_pci_hdr_cmd_t, 2);
AT(vfu_pci_hdr_cmd_t, raw, 0, 2);
SIZE(vfu_pci_hdr_id_t, 4);
AT(vfu_pci_hdr_id_t, raw, 0, 4);
AT(vfu_pci_hdr_id_t, vid, 0, 2);
AT(vfu_pci_hdr_id_t, did, 2, 2);
SIZE(vfu_pci_hdr_intr_t, 2);
AT(vfu_pci_hdr_intr_t, iline, 0, 1);
AT(vfu_pci_hdr_intr_t, ipin, 1, 1);

SIZE(vfu_pci_hdr_t, 64);
AT(vfu_pci_hdr_t, raw, 0, 64);
AT(vfu_pci_hdr_t, id, 0x00, 4);
AT(vfu_pci_hdr_t, cmd, 0x04, 2);
AT(vfu_pci_hdr_t, sts, 0x06, 2);
AT(vfu_pci_hdr_t, rid, 0x08, 1);
AT(vfu_pci_hdr_t, cc, 0x09, 3);
AT(vfu_pci_hdr_t, cls, 0x0c, 1);
AT(vfu_pci_hdr_t, mlt, 0x0d, 1);
AT(vfu_pci_hdr_t, htype, 0x0e, 1);
AT(vfu_pci_hdr_t, bist, 0x0f, 1);
AT(vfu_pci_hdr_t, bars, 0x10, 24);
AT(vfu_pci_hdr_t, ccptr, 0x28, 4);
AT(vfu_pci_hdr_t, ss, 0x2c, 4);
AT(vfu_pci_hdr_t, erom, 0x30, 4);
AT(vfu_pci_hdr_t, cap, 0x34, 1);
AT(vfu_pci_hdr_t, res1, 0x35, 7);
AT(vfu_pci_hdr_t, intr, 0x3c, 2);
AT(vfu_pci_hdr_t, mgnt, 0x3e, 1);
AT(vfu_pci_hdr_t, mlat, 0x3f, 1);

SIZE(vfu_pci_config_space_t, 256);
AT(vfu_pci_config_space_t, raw, 0, 256);
AT(vfu_pci_config_space_t, hdr, 0, 64);
TAIL(vfu_pci_config_space_t, extended, 256);

/* ------------------------------------------------------------------ */
/* pci_caps/common.h, pm.h, msi.h, msix.h, px.h, dsn.h                 */
/* ------------------------------------------------------------------ */

SIZE(struct cap_hdr, 2);
AT(struct cap_hdr, id, 0, 1);
AT(struct cap_hdr, next, 1, 1);

SIZE(struct vsc, 3);
AT(struct vsc, hdr, 0, 2);
AT(struct vsc, size, 2, 1);
TAIL(struct vsc, data, 3);

SIZE(struct pcie_ext_cap_hdr, 4);
SIZE(struct pcie_ext_cap_vsc_hdr, 8);
AT(struct pcie_ext_cap_vsc_hdr, hdr, 0, 4);
TAIL(struct pcie_ext_cap_vsc_hdr, data, 8);

SIZE(struct pc, 2);
SIZE(struct pmcs, 2);
AT(struct pmcs, raw, 0, 2);
SIZE(struct pmcap, 8);
AT(struct pmcap, hdr, 0, 2);
AT(struct pmcap, pc, 2, 2);
AT(struct pmcap, pmcs, 4, 2);
AT(struct pmcap, pmcsr_bse, 6, 1);
AT(struct pmcap, data, 7, 1);

SIZE(struct mc, 2);
SIZE(struct ma, 4);
SIZE(struct msicap, 24);
EQ(VFIO_USER_PCI_CAP_MSI_SIZEOF, 24);
AT(struct msicap, hdr, 0, 2);
AT(struct msicap, mc, 2, 2);
AT(struct msicap, ma, 4, 4);
AT(struct msicap, mua, 8, 4);
AT(struct msicap, md, 12, 2);
AT(struct msicap, padding, 14, 2);
AT(struct msicap, mmask, 16, 4);
AT(struct msicap, mpend, 20, 4);

SIZE(struct mxc, 2);
SIZE(struct mtab, 4);
SIZE(struct mpba, 4);
SIZE(struct msixcap, 12);
_Static_assert(_Alignof(struct msixcap) == 4, "struct msixcap alignment");
AT(struct msixcap, hdr, 0, 2);
AT(struct msixcap, mxc, 2, 2);
AT(struct msixcap, mtab, 4, 4);
AT(struct msixcap, mpba, 8, 4);

SIZE(struct pxcaps, 2);
SIZE(struct pxdcap, 4);
SIZE(union pxdc, 2);
AT(union pxdc, raw, 0, 2);
SIZE(struct pxds, 2);
SIZE(struct pxlcap, 4);
SIZE(union pxlc, 2);
AT(union pxlc, raw, 0, 2);
SIZE(struct pxls, 2);
SIZE(struct pxscap, 4);
SIZE(struct pxsc, 2);
SIZE(struct pxss, 2);
SIZE(struct pxrc, 2);
SIZE(struct pxrcap, 2);
SIZE(struct pxrs, 4);
SIZE(struct pxdcap2, 4);
SIZE(union pxdc2, 2);
AT(union pxdc2, raw, 0, 2);
SIZE(struct pxds2, 2);
SIZE(struct pxlcap2, 4);
SIZE(struct pxlc2, 2);
SIZE(struct pxls2, 2);
SIZE(struct pxscap2, 4);
SIZE(struct pxsc2, 2);
SIZE(struct pxss2, 2);
EQ(VFIO_USER_PCI_CAP_EXP_SIZEOF, 0x3c);
SIZE(struct pxcap, 0x3c);
AT(struct pxcap, hdr, 0x00, 2);
AT(struct pxcap, pxcaps, 0x02, 2);
AT(struct pxcap, pxdcap, 0x04, 4);
AT(struct pxcap, pxdc, 0x08, 2);
AT(struct pxcap, pxds, 0x0a, 2);
AT(struct pxcap, pxlcap, 0x0c, 4);
AT(struct pxcap, pxlc, 0x10, 2);
AT(struct pxcap, pxls, 0x12, 2);
AT(struct pxcap, pxscap, 0x14, 4);
AT(struct pxcap, pxsc, 0x18, 2);
AT(struct pxcap, pxss, 0x1a, 2);
AT(struct pxcap, pxrc, 0x1c, 2);
AT(struct pxcap, pxrcap, 0x1e, 2);
AT(struct pxcap, pxrs, 0x20, 4);
AT(struct pxcap, pxdcap2, 0x24, 4);
AT(struct pxcap, pxdc2, 0x28, 2);
AT(struct pxcap, pxds2, 0x2a, 2);
AT(struct pxcap, pxlcap2, 0x2c, 4);
AT(struct pxcap, pxlc2, 0x30, 2);
AT(struct pxcap, pxls2, 0x32, 2);
AT(struct pxcap, pxscap2, 0x34, 4);
AT(struct pxcap, pxsc2, 0x38, 2);
AT(struct pxcap, pxss2, 0x3a, 2);

SIZE(struct dsncap, 12);
AT(struct dsncap, hdr, 0, 4);
AT(struct dsncap, sn_lo, 4, 4);
AT(struct dsncap, sn_hi, 8, 4);

/* ------------------------------------------------------------------ */
/* Run time: bit-field positions, dma_sg_t's size                      */
/* ------------------------------------------------------------------ */

static int failures;

static void
expect_bits(const char *what, uint64_t got, unsigned lo, unsigned width)
{
    uint64_t want = (width == 64 ? ~0ULL : ((1ULL << width) - 1)) << lo;

    if (got != want) {
        fprintf(stderr, "%s: bits %#llx, expected %#llx (bit %u, %u wide)\n",
                what, (unsigned long long)got, (unsigned long long)want,
                lo, width);
        failures++;
    }
}

/*
 * Set only member m of a zeroed t to all ones and see which bits of the
 * object's bytes, read as a little-endian integer, that touched.  The
 * all-ones value comes through a volatile so that the truncation to the
 * field's width is not a constant overflow the compiler warns about.
 */
#define BITS(t, m, lo, width) do { \
        t v_; \
        uint64_t got_ = 0; \
        volatile uint64_t ones_ = ~0ULL; \
        _Static_assert(sizeof(t) <= sizeof(got_), #t " fits"); \
        memset(&v_, 0, sizeof(v_)); \
        v_.m = ones_; \
        memcpy(&got_, &v_, sizeof(v_)); \
        expect_bits(#t "." #m, got_, lo, width); \
    } while (0)

static void
check_bitfields(void)
{
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    BITS(vfu_bar_t, mem.region_type, 0, 1);
    BITS(vfu_bar_t, mem.locatable, 1, 2);
    BITS(vfu_bar_t, mem.prefetchable, 3, 1);
    BITS(vfu_bar_t, mem.base_address, 4, 28);
    BITS(vfu_bar_t, io.region_type, 0, 1);
    BITS(vfu_bar_t, io.reserved, 1, 1);
    BITS(vfu_bar_t, io.base_address, 2, 30);

    BITS(vfu_pci_hdr_sts_t, res1, 0, 3);
    BITS(vfu_pci_hdr_sts_t, is, 3, 1);
    BITS(vfu_pci_hdr_sts_t, cl, 4, 1);
    BITS(vfu_pci_hdr_sts_t, c66, 5, 1);
    BITS(vfu_pci_hdr_sts_t, res2, 6, 1);
    BITS(vfu_pci_hdr_sts_t, fbc, 7, 1);
    BITS(vfu_pci_hdr_sts_t, dpd, 8, 1);
    BITS(vfu_pci_hdr_sts_t, devt, 9, 2);
    BITS(vfu_pci_hdr_sts_t, sta, 11, 1);
    BITS(vfu_pci_hdr_sts_t, rta, 12, 1);
    BITS(vfu_pci_hdr_sts_t, rma, 13, 1);
    BITS(vfu_pci_hdr_sts_t, sse, 14, 1);
    BITS(vfu_pci_hdr_sts_t, dpe, 15, 1);

    BITS(vfu_pci_hdr_cmd_t, iose, 0, 1);
    BITS(vfu_pci_hdr_cmd_t, mse, 1, 1);
    BITS(vfu_pci_hdr_cmd_t, bme, 2, 1);
    BITS(vfu_pci_hdr_cmd_t, sce, 3, 1);
    BITS(vfu_pci_hdr_cmd_t, mwie, 4, 1);
    BITS(vfu_pci_hdr_cmd_t, vga, 5, 1);
    BITS(vfu_pci_hdr_cmd_t, pee, 6, 1);
    BITS(vfu_pci_hdr_cmd_t, zero, 7, 1);
    BITS(vfu_pci_hdr_cmd_t, see, 8, 1);
    BITS(vfu_pci_hdr_cmd_t, fbe, 9, 1);
    BITS(vfu_pci_hdr_cmd_t, id, 10, 1);
    BITS(vfu_pci_hdr_cmd_t, res1, 11, 5);

    BITS(struct pcie_ext_cap_hdr, id, 0, 16);
    BITS(struct pcie_ext_cap_hdr, version, 16, 4);
    BITS(struct pcie_ext_cap_hdr, next, 20, 12);
    BITS(struct pcie_ext_cap_vsc_hdr, id, 32, 16);
    BITS(struct pcie_ext_cap_vsc_hdr, rev, 48, 4);
    BITS(struct pcie_ext_cap_vsc_hdr, len, 52, 12);

    BITS(struct pc, vs, 0, 3);
    BITS(struct pc, pmec, 3, 1);
    BITS(struct pc, res, 4, 1);
    BITS(struct pc, dsi, 5, 1);
    BITS(struct pc, auxc, 6, 3);
    BITS(struct pc, d1s, 9, 1);
    BITS(struct pc, d2s, 10, 1);
    BITS(struct pc, psup, 11, 5);

    BITS(struct pmcs, ps, 0, 2);
    BITS(struct pmcs, res1, 2, 1);
    BITS(struct pmcs, nsfrst, 3, 1);
    BITS(struct pmcs, res2, 4, 4);
    BITS(struct pmcs, pmee, 8, 1);
    BITS(struct pmcs, dse, 9, 4);
    BITS(struct pmcs, dsc, 13, 2);
    BITS(struct pmcs, pmes, 15, 1);

    BITS(struct mc, msie, 0, 1);
    BITS(struct mc, mmc, 1, 3);
    BITS(struct mc, mme, 4, 3);
    BITS(struct mc, c64, 7, 1);
    BITS(struct mc, pvm, 8, 1);
    BITS(struct mc, res1, 9, 7);
    BITS(struct ma, res1, 0, 2);
    BITS(struct ma, addr, 2, 30);

    BITS(struct mxc, ts, 0, 11);
    BITS(struct mxc, reserved, 11, 3);
    BITS(struct mxc, fm, 14, 1);
    BITS(struct mxc, mxe, 15, 1);
    BITS(struct mtab, tbir, 0, 3);
    BITS(struct mtab, to, 3, 29);
    BITS(struct mpba, pbir, 0, 3);
    BITS(struct mpba, pbao, 3, 29);

    BITS(struct pxcaps, ver, 0, 4);
    BITS(struct pxcaps, dpt, 4, 4);
    BITS(struct pxcaps, si, 8, 1);
    BITS(struct pxcaps, imn, 9, 5);
    BITS(struct pxcaps, res1, 14, 2);

    BITS(struct pxdcap, mps, 0, 3);
    BITS(struct pxdcap, pfs, 3, 2);
    BITS(struct pxdcap, etfs, 5, 1);
    BITS(struct pxdcap, l0sl, 6, 3);
    BITS(struct pxdcap, l1l, 9, 3);
    BITS(struct pxdcap, res1, 12, 3);
    BITS(struct pxdcap, rer, 15, 1);
    BITS(struct pxdcap, res2, 16, 2);
    BITS(struct pxdcap, csplv, 18, 8);
    BITS(struct pxdcap, cspls, 26, 2);
    BITS(struct pxdcap, flrc, 28, 1);
    BITS(struct pxdcap, res3, 29, 3);

    BITS(union pxdc, cere, 0, 1);
    BITS(union pxdc, nfere, 1, 1);
    BITS(union pxdc, fere, 2, 1);
    BITS(union pxdc, urre, 3, 1);
    BITS(union pxdc, ero, 4, 1);
    BITS(union pxdc, mps, 5, 3);
    BITS(union pxdc, ete, 8, 1);
    BITS(union pxdc, pfe, 9, 1);
    BITS(union pxdc, appme, 10, 1);
    BITS(union pxdc, ens, 11, 1);
    BITS(union pxdc, mrrs, 12, 3);
    BITS(union pxdc, iflr, 15, 1);

    BITS(struct pxds, stuff, 0, 16);
    BITS(struct pxlcap, stuff, 0, 32);
    BITS(union pxlc, aspmc, 0, 2);
    BITS(union pxlc, rsvdp1, 2, 1);
    BITS(union pxlc, rcb, 3, 1);
    BITS(union pxlc, ld, 4, 1);
    BITS(union pxlc, rl, 5, 1);
    BITS(union pxlc, ccc, 6, 1);
    BITS(union pxlc, es, 7, 1);
    BITS(union pxlc, clkreq_en, 8, 1);
    BITS(union pxlc, hawd, 9, 1);
    BITS(union pxlc, lbmie, 10, 1);
    BITS(union pxlc, labie, 11, 1);
    BITS(union pxlc, rsvdp2, 12, 4);
    BITS(struct pxls, stuff, 0, 16);
    BITS(struct pxscap, stuff, 0, 32);
    BITS(struct pxsc, stuff, 0, 16);
    BITS(struct pxss, stuff, 0, 16);
    BITS(struct pxrc, stuff, 0, 16);
    BITS(struct pxrcap, stuff, 0, 16);
    BITS(struct pxrs, stuff, 0, 32);
    BITS(union pxdc2, comp_timeout, 0, 4);
    BITS(union pxdc2, comp_timout_dis, 4, 1);
    BITS(union pxdc2, ari, 5, 1);
    BITS(union pxdc2, atomic_req, 6, 1);
    BITS(union pxdc2, atomic_egress_block, 7, 1);
    BITS(union pxdc2, ido_req_en, 8, 1);
    BITS(union pxdc2, ido_cmp_en, 9, 1);
    BITS(union pxdc2, ltr_en, 10, 1);
    BITS(union pxdc2, obff_en, 11, 2);
    BITS(union pxdc2, end_end_tlp_prefix_block, 13, 1);
    BITS(struct pxds2, stuff, 0, 16);
    BITS(struct pxlcap2, stuff, 0, 32);
    BITS(struct pxlc2, stuff, 0, 16);
    BITS(struct pxls2, stuff, 0, 16);
    BITS(struct pxscap2, stuff, 0, 32);
    BITS(struct pxsc2, stuff, 0, 16);
    BITS(struct pxss2, stuff, 0, 16);

    BITS(struct pxdcap2, ctrs, 0, 4);
    BITS(struct pxdcap2, ctds, 4, 1);
    BITS(struct pxdcap2, arifs, 5, 1);
    BITS(struct pxdcap2, aors, 6, 1);
    BITS(struct pxdcap2, aocs32, 7, 1);
    BITS(struct pxdcap2, aocs64, 8, 1);
    BITS(struct pxdcap2, ccs128, 9, 1);
    BITS(struct pxdcap2, nprpr, 10, 1);
    BITS(struct pxdcap2, ltrs, 11, 1);
    BITS(struct pxdcap2, tphcs, 12, 2);
    BITS(struct pxdcap2, obffs, 14, 2);
    BITS(struct pxdcap2, effs, 16, 1);
    BITS(struct pxdcap2, eetps, 17, 1);
    BITS(struct pxdcap2, meetp, 18, 2);
    BITS(struct pxdcap2, res1, 20, 8);
#endif
}

int
main(void)
{
    check_bitfields();

#if defined(__LP64__)
    /*
     * libvfio-user's suite sizes its own dma_sg_t mirror (an address, an
     * int, two 64-bit values and a bool: 40 bytes on LP64) and requires
     * dma_sg_size() to agree with it.
     */
    if (dma_sg_size() != 40) {
        fprintf(stderr, "dma_sg_size() is %zu, expected 40\n", dma_sg_size());
        failures++;
    }
#endif

    if (failures == 0) {
        printf("public interface matches libvfio-user efd091b\n");
    }
    return failures == 0 ? 0 : 1;
}
