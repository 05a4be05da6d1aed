/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 the vfu authors. */

/* MSI capability (64-bit address, per-vector masking variant). */

#ifndef LIB_VFIO_USER_PCI_CAPS_MSI_H
#define LIB_VFIO_USER_PCI_CAPS_MSI_H

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Message Control register. */
struct mc {
    unsigned int msie:1;    /* MSI enable (guest writable) */
    unsigned int mmc:3;     /* vectors requested, log2 (read-only) */
    unsigned int mme:3;     /* vectors granted, log2 (guest writable) */
    unsigned int c64:1;     /* 64-bit address capable (read-only) */
    unsigned int pvm:1;     /* per-vector masking capable (read-only) */
    unsigned int res1:7;    /* extended message data bits, unused here */
} __attribute__ ((packed));
VFU_STATIC_ASSERT(sizeof(struct mc) == 0x2, "mc must be 2 bytes");

/* Message Address register (low dword, dword aligned). */
struct ma {
    unsigned int res1:2;    /* always reads zero */
    unsigned int addr:30;
} __attribute__ ((packed));
VFU_STATIC_ASSERT(sizeof(struct ma) == 0x4, "ma must be 4 bytes");

#define VFIO_USER_PCI_CAP_MSI_SIZEOF (0x18)

struct msicap {
    struct cap_hdr hdr;
    struct mc mc;
    struct ma ma;
    uint32_t mua;           /* message upper address */
    uint16_t md;            /* message data */
    uint16_t padding;       /* extended message data, unused here */
    uint32_t mmask;         /* per-vector mask bits */
    uint32_t mpend;         /* per-vector pending bits (read-only) */
}  __attribute__ ((packed));
VFU_STATIC_ASSERT(sizeof(struct msicap) == VFIO_USER_PCI_CAP_MSI_SIZEOF,
                  "msicap must be 24 bytes");
VFU_STATIC_ASSERT(offsetof(struct msicap, hdr) == 0, "msicap.hdr offset");

#ifdef __cplusplus
}
#endif

#endif /* LIB_VFIO_USER_PCI_CAPS_MSI_H */
