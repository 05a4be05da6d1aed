/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 the vfu authors. */

/* PCIe Device Serial Number extended capability. */

#ifndef LIB_VFIO_USER_PCI_CAPS_DSN_H
#define LIB_VFIO_USER_PCI_CAPS_DSN_H

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

struct dsncap {
    struct pcie_ext_cap_hdr hdr;
    uint32_t sn_lo;     /* low dword of the 64-bit serial number */
    uint32_t sn_hi;     /* high dword */
} __attribute__((packed));
VFU_STATIC_ASSERT(sizeof (struct dsncap) == PCI_EXT_CAP_DSN_SIZEOF,
                  "dsncap must be 12 bytes");

#ifdef __cplusplus
}
#endif

#endif /* LIB_VFIO_USER_PCI_CAPS_DSN_H */
