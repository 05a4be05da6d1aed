/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 the vfu authors. */

/*
 * Type 0 PCI configuration header layout (first 64 bytes of config space)
 * and the 256-byte config space container.
 */

#ifndef LIBVFIO_USER_PCI_DEFS_H
#define LIBVFIO_USER_PCI_DEFS_H

#include <stdint.h>
#include <stdbool.h>
#include <linux/pci_regs.h>

#include "compiler.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Memory BAR "type" field values, shifted to fit the 2-bit locatable field. */
#define PCI_BASE_ADDRESS_MEM_TYPE_LOCATABLE_32 (PCI_BASE_ADDRESS_MEM_TYPE_32 >> 1)
#define PCI_BASE_ADDRESS_MEM_TYPE_LOCATABLE_1M (PCI_BASE_ADDRESS_MEM_TYPE_1M >> 1)
#define PCI_BASE_ADDRESS_MEM_TYPE_LOCATABLE_64 (PCI_BASE_ADDRESS_MEM_TYPE_64 >> 1)

/* Subsystem vendor / subsystem ID, offset 0x2c. */
typedef union {
    uint32_t raw;
    struct {
        uint16_t vid;
        uint16_t sid;
    } __attribute__ ((packed));
} __attribute__ ((packed)) vfu_pci_hdr_ss_t;
VFU_STATIC_ASSERT(sizeof(vfu_pci_hdr_ss_t) == 0x4, "SS must be 4 bytes");

/* Built-in self test register, offset 0x0f. */
typedef union {
    uint8_t raw;
} __attribute__ ((packed)) vfu_pci_hdr_bist_t;
VFU_STATIC_ASSERT(sizeof(vfu_pci_hdr_bist_t) == 0x1, "BIST must be 1 byte");

/* One base address register, decoded as memory or I/O. */
typedef union {
    uint32_t raw;
    union {
        struct {
            unsigned int region_type:1;     /* 0 for memory */
            unsigned int locatable:2;       /* 32-bit, below 1M, or 64-bit */
            unsigned int prefetchable:1;
            unsigned int base_address:28;
        } __attribute__ ((packed)) mem;
        struct {
            unsigned int region_type:1;     /* 1 for I/O */
            unsigned int reserved:1;
            unsigned int base_address:30;
        } __attribute__ ((packed)) io;
    } __attribute__ ((packed));
} __attribute__ ((packed)) vfu_bar_t;
VFU_STATIC_ASSERT(sizeof(vfu_bar_t) == 0x4, "BAR must be 4 bytes");

/* Header type register, offset 0x0e. */
typedef union {
    uint8_t raw;
} __attribute__ ((packed)) vfu_pci_hdr_htype_t;
VFU_STATIC_ASSERT(sizeof(vfu_pci_hdr_htype_t) == 0x1, "HTYPE must be 1 byte");

/* Class code: programming interface, sub-class, base class (0x09-0x0b). */
typedef union {
    uint8_t raw[3];
    struct {
        uint8_t pi;
        uint8_t scc;
        uint8_t bcc;
    } __attribute__ ((packed));
} __attribute__ ((packed)) vfu_pci_hdr_cc_t;
VFU_STATIC_ASSERT(sizeof(vfu_pci_hdr_cc_t) == 0x3, "CC must be 3 bytes");

/* Status register, offset 0x06. */
typedef union {
    uint16_t raw;
    struct {
        unsigned int res1:3;
        unsigned int is:1;      /* interrupt pending */
        unsigned int cl:1;      /* capability list present */
        unsigned int c66:1;     /* 66 MHz capable */
        unsigned int res2:1;
        unsigned int fbc:1;     /* fast back-to-back capable */
        unsigned int dpd:1;     /* master data parity error */
        unsigned int devt:2;    /* DEVSEL timing */
        unsigned int sta:1;     /* signaled target abort */
        unsigned int rta:1;     /* received target abort */
        unsigned int rma:1;     /* received master abort */
        unsigned int sse:1;     /* signaled system error */
        unsigned int dpe:1;     /* detected parity error */
    } __attribute__ ((packed));
} __attribute__ ((packed)) vfu_pci_hdr_sts_t;
VFU_STATIC_ASSERT(sizeof(vfu_pci_hdr_sts_t) == 0x2, "STS must be 2 bytes");

/* Command register, offset 0x04. */
typedef union {
    uint16_t raw;
    struct {
        uint8_t iose:1;     /* I/O space decode */
        uint8_t mse:1;      /* memory space decode */
        uint8_t bme:1;      /* bus mastering */
        uint8_t sce:1;      /* special cycles */
        uint8_t mwie:1;     /* memory write and invalidate */
        uint8_t vga:1;      /* VGA palette snoop */
        uint8_t pee:1;      /* parity error response */
        uint8_t zero:1;
        uint8_t see:1;      /* SERR# enable */
        uint8_t fbe:1;      /* fast back-to-back enable */
        uint8_t id:1;       /* INTx disable */
        uint8_t res1:5;
    } __attribute__ ((packed));
} __attribute__ ((packed)) vfu_pci_hdr_cmd_t;
VFU_STATIC_ASSERT(sizeof(vfu_pci_hdr_cmd_t) == 0x2, "CMD must be 2 bytes");

/* Vendor and device ID, offset 0x00. */
typedef union {
    uint32_t raw;
    struct {
        uint16_t vid;
        uint16_t did;
    } __attribute__ ((packed));
} __attribute__ ((packed)) vfu_pci_hdr_id_t;
VFU_STATIC_ASSERT(sizeof(vfu_pci_hdr_id_t) == 0x4, "ID must be 4 bytes");

/* Interrupt line and pin, offset 0x3c. */
typedef union {
    uint16_t raw;
    struct {
        uint8_t iline;
        uint8_t ipin;
    } __attribute__ ((packed));
} __attribute__ ((packed)) vfu_pci_hdr_intr_t;
VFU_STATIC_ASSERT(sizeof(vfu_pci_hdr_intr_t) == 0x2, "INTR must be 2 bytes");

/* The whole type 0 header. */
typedef union {
    uint8_t raw[PCI_STD_HEADER_SIZEOF];
    struct {
        vfu_pci_hdr_id_t id;            /* 0x00 */
        vfu_pci_hdr_cmd_t cmd;          /* 0x04 */
        vfu_pci_hdr_sts_t sts;          /* 0x06 */
        uint8_t rid;                    /* 0x08 revision ID */
        vfu_pci_hdr_cc_t cc;            /* 0x09 */
        uint8_t cls;                    /* 0x0c cache line size */
        uint8_t mlt;                    /* 0x0d latency timer */
        vfu_pci_hdr_htype_t htype;      /* 0x0e */
        vfu_pci_hdr_bist_t bist;        /* 0x0f */
#define PCI_BARS_NR 6
        vfu_bar_t bars[PCI_BARS_NR];    /* 0x10 */
        uint32_t ccptr;                 /* 0x28 CardBus CIS pointer */
        vfu_pci_hdr_ss_t ss;            /* 0x2c */
        uint32_t erom;                  /* 0x30 expansion ROM base */
        uint8_t cap;                    /* 0x34 first capability offset */
        uint8_t res1[7];
        vfu_pci_hdr_intr_t intr;        /* 0x3c */
        uint8_t mgnt;                   /* 0x3e min grant */
        uint8_t mlat;                   /* 0x3f max latency */
    } __attribute__ ((packed));
} __attribute__ ((packed)) vfu_pci_hdr_t;
VFU_STATIC_ASSERT(sizeof(vfu_pci_hdr_t) == 0x40, "PCI header must be 64 bytes");

/* Standard 256-byte config space; PCIe extended space (to 4 KiB) follows. */
typedef struct {
    union {
        uint8_t raw[PCI_CFG_SPACE_SIZE];
        vfu_pci_hdr_t hdr;
    } __attribute__ ((packed));
    uint8_t extended[];
} __attribute__ ((packed)) vfu_pci_config_space_t;
VFU_STATIC_ASSERT(sizeof(vfu_pci_config_space_t) == 0x100,
                  "PCI config space must be 256 bytes");

#ifdef __cplusplus
}
#endif

#endif /* LIBVFIO_USER_PCI_DEFS_H */
