/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 the vfu authors. */

/*
 * vfio-user wire format: command numbers, the message header and the
 * payload layouts that follow it.  All fields are host-endian.
 */

#ifndef VFIO_USER_H
#define VFIO_USER_H

#include <inttypes.h>
#include <linux/vfio.h>
#include <linux/version.h>

#include "compiler.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Data limit per read/write message unless the peers negotiate another. */
#define VFIO_USER_DEFAULT_MAX_DATA_XFER_SIZE (1024 * 1024)

/* Value carried in vfio_user_header.cmd; 14 is no longer assigned. */
enum vfio_user_command {
    VFIO_USER_VERSION                   = 1,
    VFIO_USER_DMA_MAP                   = 2,
    VFIO_USER_DMA_UNMAP                 = 3,
    VFIO_USER_DEVICE_GET_INFO           = 4,
    VFIO_USER_DEVICE_GET_REGION_INFO    = 5,
    VFIO_USER_DEVICE_GET_REGION_IO_FDS  = 6,
    VFIO_USER_DEVICE_GET_IRQ_INFO       = 7,
    VFIO_USER_DEVICE_SET_IRQS           = 8,
    VFIO_USER_REGION_READ               = 9,
    VFIO_USER_REGION_WRITE              = 10,
    VFIO_USER_DMA_READ                  = 11,
    VFIO_USER_DMA_WRITE                 = 12,
    VFIO_USER_DEVICE_RESET              = 13,
    VFIO_USER_REGION_WRITE_MULTI        = 15,
    VFIO_USER_DEVICE_FEATURE            = 16,
    VFIO_USER_MIG_DATA_READ             = 17,
    VFIO_USER_MIG_DATA_WRITE            = 18,
    VFIO_USER_MAX,
};

/* Values of the type bits in the header flags word. */
enum vfio_user_message_type {
    VFIO_USER_MESSAGE_COMMAND   = 0,
    VFIO_USER_MESSAGE_REPLY     = 1,
};

/* Legacy spelling of the "sender wants no reply" request. */
#define VFIO_USER_FLAGS_NO_REPLY    (0x1)

/* Fixed 16-byte prefix of every command and reply. */
struct vfio_user_header {
    uint16_t    msg_id;     /* chosen by the sender, echoed in the reply */
    uint16_t    cmd;        /* enum vfio_user_command */
    uint32_t    msg_size;   /* whole message, header included */
    uint32_t    flags;
#define VFIO_USER_F_TYPE_MASK       (0xf)   /* bits 0-3: message type */
#define VFIO_USER_F_TYPE_COMMAND    (0x0)
#define VFIO_USER_F_TYPE_REPLY      (0x1)
#define VFIO_USER_F_NO_REPLY        (0x10)  /* bit 4: do not acknowledge */
#define VFIO_USER_F_ERROR           (0x20)  /* bit 5: error_no is meaningful */
    uint32_t    error_no;   /* errno on a failed reply, else zero */
} __attribute__((packed));
VFU_STATIC_ASSERT(sizeof(struct vfio_user_header) == 16,
                  "vfio_user_header must be 16 bytes");

/* VFIO_USER_VERSION payload, both directions. */
struct vfio_user_version {
    uint16_t    major;
    uint16_t    minor;
    uint8_t     data[];     /* optional NUL-terminated JSON capabilities */
} __attribute__((packed));
VFU_STATIC_ASSERT(sizeof(struct vfio_user_version) == 4,
                  "vfio_user_version must be 4 bytes");

/* VFIO_USER_DEVICE_GET_INFO payload (no capability chain). */
struct vfio_user_device_info {
    uint32_t    argsz;      /* bytes available for the reply payload */
    uint32_t    flags;      /* VFIO_DEVICE_FLAGS_* */
    uint32_t    num_regions;
    uint32_t    num_irqs;
} __attribute__((packed));
VFU_STATIC_ASSERT(sizeof(struct vfio_user_device_info) == 16,
                  "vfio_user_device_info must be 16 bytes");

/* Dirty bitmap descriptor, one bit per pgsize bytes. */
struct vfio_user_bitmap {
    uint64_t pgsize;        /* bytes covered by one bit */
    uint64_t size;          /* length of data[] in bytes */
    char data[];
} __attribute__((packed));
VFU_STATIC_ASSERT(sizeof(struct vfio_user_bitmap) == 16,
                  "vfio_user_bitmap must be 16 bytes");

/* VFIO_USER_DMA_MAP request; an fd may accompany it for mappable memory. */
struct vfio_user_dma_map {
    uint32_t argsz;
#define VFIO_USER_F_DMA_REGION_READ     (1 << 0)
#define VFIO_USER_F_DMA_REGION_WRITE    (1 << 1)
/* The fd may be mmap()ed by the server (the default for a map with an fd). */
#define VFIO_USER_F_DMA_REGION_MMAP     (1 << 2)
/* The server reaches the memory by pread()/pwrite() on the fd, never mmap. */
#define VFIO_USER_F_DMA_REGION_FILE_IO  (1 << 3)
    uint32_t flags;
    uint64_t offset;        /* offset into the passed fd, else zero */
    uint64_t addr;          /* client DMA (IOVA) base */
    uint64_t size;
} __attribute__((packed));
VFU_STATIC_ASSERT(sizeof(struct vfio_user_dma_map) == 32,
                  "vfio_user_dma_map must be 32 bytes");

/* VFIO_USER_DMA_UNMAP request and reply. */
struct vfio_user_dma_unmap {
    uint32_t argsz;
#ifndef VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP
#define VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP (1 << 0)
#endif
#ifndef VFIO_DMA_UNMAP_FLAG_ALL
#define VFIO_DMA_UNMAP_FLAG_ALL (1 << 1)
#endif
    uint32_t flags;
    uint64_t addr;
    uint64_t size;
    struct vfio_user_bitmap bitmap[];   /* present with GET_DIRTY_BITMAP */
};
VFU_STATIC_ASSERT(sizeof(struct vfio_user_dma_unmap) == 24,
                  "vfio_user_dma_unmap must be 24 bytes");

/* VFIO_USER_REGION_READ / VFIO_USER_REGION_WRITE payload. */
struct vfio_user_region_access {
    uint64_t    offset;     /* byte offset inside the region */
    uint32_t    region;     /* region index */
    uint32_t    count;      /* bytes to transfer */
    uint8_t     data[];
} __attribute__((packed));
VFU_STATIC_ASSERT(sizeof(struct vfio_user_region_access) == 16,
                  "vfio_user_region_access must be 16 bytes");

/* VFIO_USER_DMA_READ / VFIO_USER_DMA_WRITE payload (server to client). */
struct vfio_user_dma_region_access {
    uint64_t    addr;       /* client DMA address */
    uint64_t    count;      /* bytes to transfer */
    uint8_t     data[];
} __attribute__((packed));
VFU_STATIC_ASSERT(sizeof(struct vfio_user_dma_region_access) == 16,
                  "vfio_user_dma_region_access must be 16 bytes");

/* Extra word some IRQ-info exchanges carry. */
struct vfio_user_irq_info {
    uint32_t    subindex;
} __attribute__((packed));
VFU_STATIC_ASSERT(sizeof(struct vfio_user_irq_info) == 4,
                  "vfio_user_irq_info must be 4 bytes");

/* VFIO_USER_DEVICE_GET_REGION_IO_FDS request. */
typedef struct vfio_user_region_io_fds_request {
    uint32_t argsz;         /* room the client has for the reply */
    uint32_t flags;
    uint32_t index;         /* region index */
    uint32_t count;
} __attribute__((packed)) vfio_user_region_io_fds_request_t;
VFU_STATIC_ASSERT(sizeof(struct vfio_user_region_io_fds_request) == 16,
                  "vfio_user_region_io_fds_request must be 16 bytes");

/* Kinds of sub-region fd returned by GET_REGION_IO_FDS. */
#define VFIO_USER_IO_FD_TYPE_IOEVENTFD 0
#define VFIO_USER_IO_FD_TYPE_IOREGIONFD 1
#define VFIO_USER_IO_FD_TYPE_IOEVENTFD_SHADOW 2

/* One ioeventfd (optionally with shadow memory) in the reply. */
typedef struct vfio_user_sub_region_ioeventfd {
    uint64_t gpa_offset;            /* start within the region */
    uint64_t size;                  /* access width that triggers it */
    uint32_t fd_index;              /* index into the passed fd array */
    uint32_t type;                  /* VFIO_USER_IO_FD_TYPE_* */
    uint32_t flags;
    uint32_t shadow_mem_fd_index;   /* shadow memory fd, shadow type only */
    uint64_t shadow_offset;         /* offset into the shadow memory fd */
    uint64_t datamatch;             /* value to match, if requested */
} __attribute__((packed)) vfio_user_sub_region_ioeventfd_t;
VFU_STATIC_ASSERT(sizeof(struct vfio_user_sub_region_ioeventfd) == 48,
                  "vfio_user_sub_region_ioeventfd must be 48 bytes");

/* One ioregionfd in the reply. */
typedef struct vfio_user_sub_region_ioregionfd {
    uint64_t offset;
    uint64_t size;
    uint32_t fd_index;
    uint32_t type;
    uint32_t flags;
    uint32_t padding;
    uint64_t user_data;             /* opaque cookie returned on access */
} __attribute__((packed)) vfio_user_sub_region_ioregionfd_t;
VFU_STATIC_ASSERT(sizeof(struct vfio_user_sub_region_ioregionfd) == 40,
                  "vfio_user_sub_region_ioregionfd must be 40 bytes");

/* VFIO_USER_DEVICE_GET_REGION_IO_FDS reply. */
typedef struct vfio_user_region_io_fds_reply {
    uint32_t argsz;
    uint32_t flags;
    uint32_t index;
    uint32_t count;                 /* entries in sub_regions[] */
    union sub_region {
        struct vfio_user_sub_region_ioeventfd ioeventfd;
        struct vfio_user_sub_region_ioregionfd ioregionfd;
    } sub_regions[];
} __attribute__((packed)) vfio_user_region_io_fds_reply_t;
VFU_STATIC_ASSERT(sizeof(((struct vfio_user_region_io_fds_reply *)0)->sub_regions[0])
                  == 48, "sub_region entries must be 48 bytes");
VFU_STATIC_ASSERT(sizeof(struct vfio_user_region_io_fds_reply) == 16,
                  "vfio_user_region_io_fds_reply must be 16 bytes");

/* One IOVA range to track; mirrors the kernel's DMA logging range. */
struct vfio_user_device_feature_dma_logging_range {
    uint64_t iova;
    uint64_t length;
} __attribute__((packed));
VFU_STATIC_ASSERT(sizeof(struct vfio_user_device_feature_dma_logging_range)
                  == 16, "dma_logging_range must be 16 bytes");

/* DMA_LOGGING_START data; num_ranges of zero means log everything. */
struct vfio_user_device_feature_dma_logging_control {
    uint64_t page_size;     /* requested granularity; reply holds the chosen one */
    uint32_t num_ranges;
    uint32_t reserved;
    struct vfio_user_device_feature_dma_logging_range ranges[];
} __attribute__((packed));
VFU_STATIC_ASSERT(sizeof(struct vfio_user_device_feature_dma_logging_control)
                  == 16, "dma_logging_control must be 16 bytes");

/* DMA_LOGGING_REPORT data; the reply appends the dirty bitmap. */
struct vfio_user_device_feature_dma_logging_report {
    uint64_t iova;
    uint64_t length;
    uint64_t page_size;     /* bytes per bitmap bit, a power of two */
    uint8_t  bitmap[];
} __attribute__((packed));
VFU_STATIC_ASSERT(sizeof(struct vfio_user_device_feature_dma_logging_report)
                  == 24, "dma_logging_report must be 24 bytes");

/* Feature indices, for kernel headers that predate them. */
#ifndef VFIO_DEVICE_FEATURE_DMA_LOGGING_START
#define VFIO_DEVICE_FEATURE_DMA_LOGGING_START  6
#endif
#ifndef VFIO_DEVICE_FEATURE_DMA_LOGGING_STOP
#define VFIO_DEVICE_FEATURE_DMA_LOGGING_STOP   7
#endif
#ifndef VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT
#define VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT 8
#endif

/* VFIO_USER_DEVICE_FEATURE payload; feature-specific bytes follow. */
struct vfio_user_device_feature {
    uint32_t    argsz;      /* room for the reply payload */
    uint32_t    flags;      /* feature index in the low 16 bits, plus op bits */
#ifndef VFIO_DEVICE_FEATURE_MASK
#define VFIO_DEVICE_FEATURE_MASK    (0xffff)
#endif
#ifndef VFIO_DEVICE_FEATURE_GET
#define VFIO_DEVICE_FEATURE_GET     (1 << 16)
#endif
#ifndef VFIO_DEVICE_FEATURE_SET
#define VFIO_DEVICE_FEATURE_SET     (1 << 17)
#endif
#ifndef VFIO_DEVICE_FEATURE_PROBE
#define VFIO_DEVICE_FEATURE_PROBE   (1 << 18)
#endif
    uint8_t     data[];
} __attribute__((packed));
VFU_STATIC_ASSERT(sizeof(struct vfio_user_device_feature) == 8,
                  "vfio_user_device_feature must be 8 bytes");

/* VFIO_DEVICE_FEATURE_MIGRATION data: which optional states exist. */
struct vfio_user_device_feature_migration {
    uint64_t flags;
#ifndef VFIO_MIGRATION_STOP_COPY
#define VFIO_MIGRATION_STOP_COPY    (1 << 0)
#endif
#ifndef VFIO_MIGRATION_P2P
#define VFIO_MIGRATION_P2P          (1 << 1)
#endif
#ifndef VFIO_MIGRATION_PRE_COPY
#define VFIO_MIGRATION_PRE_COPY     (1 << 2)
#endif
} __attribute__((packed));
#ifndef VFIO_DEVICE_FEATURE_MIGRATION
#define VFIO_DEVICE_FEATURE_MIGRATION 1
#endif
VFU_STATIC_ASSERT(sizeof(struct vfio_user_device_feature_migration) == 8,
                  "vfio_user_device_feature_migration must be 8 bytes");

/* VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE data. */
struct vfio_user_device_feature_mig_state {
    uint32_t    device_state;   /* enum vfio_user_device_mig_state */
    uint32_t    data_fd;        /* not used over vfio-user */
} __attribute__((packed));
#ifndef VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE
#define VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE 2
#endif
VFU_STATIC_ASSERT(sizeof(struct vfio_user_device_feature_mig_state) == 8,
                  "vfio_user_device_feature_mig_state must be 8 bytes");

/* Migration FSM states, numbered as in the kernel's v2 interface. */
enum vfio_user_device_mig_state {
    VFIO_USER_DEVICE_STATE_ERROR = 0,
    VFIO_USER_DEVICE_STATE_STOP = 1,
    VFIO_USER_DEVICE_STATE_RUNNING = 2,
    VFIO_USER_DEVICE_STATE_STOP_COPY = 3,
    VFIO_USER_DEVICE_STATE_RESUMING = 4,
    VFIO_USER_DEVICE_STATE_RUNNING_P2P = 5,
    VFIO_USER_DEVICE_STATE_PRE_COPY = 6,
    VFIO_USER_DEVICE_STATE_PRE_COPY_P2P = 7,
    VFIO_USER_DEVICE_NUM_STATES = 8,
};

/* VFIO_USER_MIG_DATA_READ / VFIO_USER_MIG_DATA_WRITE payload. */
struct vfio_user_mig_data {
    uint32_t    argsz;      /* request: reply room; reply: bytes incl. data */
    uint32_t    size;       /* migration bytes asked for or carried */
    uint8_t     data[];
} __attribute__((packed));
VFU_STATIC_ASSERT(sizeof(struct vfio_user_mig_data) == 8,
                  "vfio_user_mig_data must be 8 bytes");

/*
 * vfu addition, not in libvfio-user's header: VFIO_USER_REGION_WRITE_MULTI
 * payload as given by the QEMU vfio-user specification.  vfu needs it to
 * decode coalesced writes.  Each entry holds at most 8 data bytes; the
 * request is a 64-bit entry count followed by the entries, the reply only
 * the count of writes performed.
 */
#define VFIO_USER_MULTI_DATA    8
#define VFIO_USER_MULTI_MAX     200

struct vfio_user_write_multi_one {
    uint64_t    offset;     /* byte offset inside the region */
    uint32_t    region;     /* region index */
    uint32_t    count;      /* bytes used in data[], 1..VFIO_USER_MULTI_DATA */
    uint8_t     data[VFIO_USER_MULTI_DATA];
} __attribute__((packed));
VFU_STATIC_ASSERT(sizeof(struct vfio_user_write_multi_one) == 24,
                  "vfio_user_write_multi_one must be 24 bytes");

struct vfio_user_write_multi {
    uint64_t    wr_cnt;     /* entries that follow (request) or done (reply) */
    struct vfio_user_write_multi_one wrs[];
} __attribute__((packed));
VFU_STATIC_ASSERT(sizeof(struct vfio_user_write_multi) == 8,
                  "vfio_user_write_multi must be 8 bytes");

#ifdef __cplusplus
}
#endif

#endif /* VFIO_USER_H */
