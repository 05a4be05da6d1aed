/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 the vfu authors. */

/* Headers shared by the PCI capability layouts. */

#ifndef LIB_VFIO_USER_PCI_CAPS_COMMON_H
#define LIB_VFIO_USER_PCI_CAPS_COMMON_H

#include <linux/pci_regs.h>
#include <stddef.h>
#include <stdint.h>

#include "../compiler.h"

#ifdef __cplusplus
extern "C" {
#endif

/* First two bytes of every standard capability. */
struct cap_hdr {
    uint8_t id;     /* PCI_CAP_ID_* */
    uint8_t next;   /* config offset of the next capability, 0 ends the list */
} __attribute__((packed));
VFU_STATIC_ASSERT(sizeof(struct cap_hdr) == 0x2, "cap_hdr must be 2 bytes");
VFU_STATIC_ASSERT(offsetof(struct cap_hdr, id) == PCI_CAP_LIST_ID,
                  "cap_hdr.id offset");
VFU_STATIC_ASSERT(offsetof(struct cap_hdr, next) == PCI_CAP_LIST_NEXT,
                  "cap_hdr.next offset");

/* Vendor-specific standard capability; size counts the whole capability. */
struct vsc {
    struct cap_hdr  hdr;
    uint8_t         size;
    uint8_t         data[];
} __attribute__ ((packed));
VFU_STATIC_ASSERT(sizeof(struct vsc) == 0x3, "vsc must be 3 bytes");

/* 32-bit header of a PCIe extended capability (offset 0x100 and up). */
struct pcie_ext_cap_hdr {
    uint32_t id:16;         /* PCI_EXT_CAP_ID_* */
    uint32_t version:4;
    uint32_t next:12;       /* offset of the next extended capability */
} __attribute__((packed));
VFU_STATIC_ASSERT(sizeof(struct pcie_ext_cap_hdr) == 0x4,
                  "pcie_ext_cap_hdr must be 4 bytes");

/* Vendor-specific extended capability: generic header plus VSEC header. */
struct pcie_ext_cap_vsc_hdr {
    struct pcie_ext_cap_hdr hdr;
    uint32_t id:16;         /* vendor-defined VSEC ID */
    uint32_t rev:4;
    uint32_t len:12;        /* bytes in the capability, headers included */
    uint8_t      data[];
} __attribute__((packed));
VFU_STATIC_ASSERT(sizeof(struct pcie_ext_cap_vsc_hdr) == 0x8,
                  "pcie_ext_cap_vsc_hdr must be 8 bytes");

#ifdef __cplusplus
}
#endif

#endif /* LIB_VFIO_USER_PCI_CAPS_COMMON_H */
