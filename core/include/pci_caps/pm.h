/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 the vfu authors. */

/* PCI Power Management capability. */

#ifndef LIB_VFIO_USER_PCI_CAPS_PM_H
#define LIB_VFIO_USER_PCI_CAPS_PM_H

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* PMC: power management capabilities (read-only). */
struct pc {
    unsigned int vs:3;      /* spec version */
    unsigned int pmec:1;    /* PME clock needed */
    unsigned int res:1;
    unsigned int dsi:1;     /* device-specific init needed */
    unsigned int auxc:3;    /* aux current */
    unsigned int d1s:1;     /* D1 supported */
    unsigned int d2s:1;     /* D2 supported */
    unsigned int psup:5;    /* states PME# can be asserted from */
} __attribute__((packed));
VFU_STATIC_ASSERT(sizeof(struct pc) == 0x2, "pc must be 2 bytes");

/* PMCSR: power management control and status. */
struct pmcs {
    union {
        uint16_t raw;
        struct {
            unsigned short ps:2;        /* current D state */
            unsigned short res1:1;
            unsigned short nsfrst:1;    /* no soft reset on D3hot->D0 */
            unsigned short res2:4;
            unsigned short pmee:1;      /* PME enable */
            unsigned short dse:4;       /* data select */
            unsigned short dsc:2;       /* data scale */
            unsigned short pmes:1;      /* PME status */
        };
    };
} __attribute__((packed));
VFU_STATIC_ASSERT(sizeof(struct pmcs) == 0x2, "pmcs must be 2 bytes");

struct pmcap {
    struct cap_hdr hdr;
    struct pc pc;
    struct pmcs pmcs;
    uint8_t pmcsr_bse;      /* bridge support extensions */
    uint8_t data;
} __attribute__((packed));
VFU_STATIC_ASSERT(sizeof(struct pmcap) == PCI_PM_SIZEOF, "pmcap must be 8 bytes");
VFU_STATIC_ASSERT(offsetof(struct pmcap, hdr) == 0, "pmcap.hdr offset");

#ifdef __cplusplus
}
#endif

#endif /* LIB_VFIO_USER_PCI_CAPS_PM_H */
