/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 the vfu authors. */

/* MSI-X capability. */

#ifndef LIB_VFIO_USER_PCI_CAPS_MSIX_H
#define LIB_VFIO_USER_PCI_CAPS_MSIX_H

#include <stdint.h>

#include <linux/pci_regs.h>

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Message Control register. */
struct mxc {
    uint16_t ts:11;         /* table size minus one (read-only) */
    uint16_t reserved:3;    /* always reads zero */
    uint16_t fm:1;          /* function mask (guest writable) */
    uint16_t mxe:1;         /* MSI-X enable (guest writable) */
} __attribute__ ((packed));
VFU_STATIC_ASSERT(sizeof(struct mxc) == PCI_MSIX_FLAGS, "mxc must be 2 bytes");

/* Table offset and BAR indicator. */
struct mtab {
    uint32_t tbir:3;        /* BAR holding the vector table */
    uint32_t to:29;         /* table offset within that BAR, in dwords */
} __attribute__ ((packed));
VFU_STATIC_ASSERT(sizeof(struct mtab) == PCI_MSIX_TABLE, "mtab must be 4 bytes");

/* Pending bit array offset and BAR indicator. */
struct mpba {
    uint32_t pbir:3;        /* BAR holding the PBA */
    uint32_t pbao:29;       /* PBA offset within that BAR, in dwords */
} __attribute__ ((packed));
VFU_STATIC_ASSERT(sizeof(struct mpba) == PCI_MSIX_PBA - PCI_MSIX_TABLE,
                  "mpba must be 4 bytes");

struct msixcap {
    struct cap_hdr hdr;
    struct mxc mxc;
    struct mtab mtab;
    struct mpba mpba;
} __attribute__ ((packed)) __attribute__ ((aligned(4)));
VFU_STATIC_ASSERT(sizeof(struct msixcap) == PCI_CAP_MSIX_SIZEOF,
                  "msixcap must be 12 bytes");
VFU_STATIC_ASSERT(offsetof(struct msixcap, hdr) == 0, "msixcap.hdr offset");

#ifdef __cplusplus
}
#endif

#endif /* LIB_VFIO_USER_PCI_CAPS_MSIX_H */
