/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 the vfu authors. */

/* PCI Express capability, version 2 layout. */

#ifndef LIB_VFIO_USER_PCI_CAPS_PX_H
#define LIB_VFIO_USER_PCI_CAPS_PX_H

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* PCIe Capabilities register. */
struct pxcaps {
    unsigned int ver:4;     /* capability version */
    unsigned int dpt:4;     /* device/port type */
    unsigned int si:1;      /* slot implemented */
    unsigned int imn:5;     /* interrupt message number */
    unsigned int res1:2;
} __attribute__((packed));
VFU_STATIC_ASSERT(sizeof(struct pxcaps) == 0x2, "pxcaps must be 2 bytes");

/* Device Capabilities register. */
struct pxdcap {
    unsigned int mps:3;     /* max payload supported */
    unsigned int pfs:2;     /* phantom functions */
    unsigned int etfs:1;    /* extended tag field */
    unsigned int l0sl:3;    /* L0s acceptable latency */
    unsigned int l1l:3;     /* L1 acceptable latency */
    unsigned int per:1;     /* role-based error reporting */
    unsigned int res1:2;
    unsigned int csplv:8;   /* captured slot power limit value */
    unsigned int cspls:2;   /* captured slot power limit scale */
    unsigned int flrc:1;    /* function level reset capable */
    unsigned int res2:3;
} __attribute__((packed));
VFU_STATIC_ASSERT(sizeof(struct pxdcap) == 0x4, "pxdcap must be 4 bytes");

/* Device Control register. */
union pxdc {
    uint16_t raw;
    struct {
        unsigned int cere:1;    /* correctable error reporting */
        unsigned int nfere:1;   /* non-fatal error reporting */
        unsigned int fere:1;    /* fatal error reporting */
        unsigned int urre:1;    /* unsupported request reporting */
        unsigned int ero:1;     /* relaxed ordering */
        unsigned int mps:3;     /* max payload size */
        unsigned int ete:1;     /* extended tag */
        unsigned int pfe:1;     /* phantom functions */
        unsigned int appme:1;   /* aux power PM */
        unsigned int ens:1;     /* no snoop */
        unsigned int mrrs:3;    /* max read request size */
        unsigned int iflr:1;    /* initiate function level reset */
     } __attribute__((packed));
} __attribute__((packed));
VFU_STATIC_ASSERT(sizeof(union pxdc) == 0x2, "pxdc must be 2 bytes");

/* Device Status register, kept opaque. */
struct pxds {
    unsigned int stuff:16;
} __attribute__((packed));
VFU_STATIC_ASSERT(sizeof(struct pxds) == 0x2, "pxds must be 2 bytes");

/* Link Capabilities register, kept opaque. */
struct pxlcap {
    unsigned int stuff:32;
} __attribute__((packed));
VFU_STATIC_ASSERT(sizeof(struct pxlcap) == 0x4, "pxlcap must be 4 bytes");

/* Link Control register, kept opaque. */
struct pxlc {
    unsigned int stuff:16;
} __attribute__((packed));
VFU_STATIC_ASSERT(sizeof(struct pxlc) == 0x2, "pxlc must be 2 bytes");

/* Link Status register, kept opaque. */
struct pxls {
    unsigned int stuff:16;
} __attribute__((packed));
VFU_STATIC_ASSERT(sizeof(struct pxls) == 0x2, "pxls must be 2 bytes");

/* Device Capabilities 2 register. */
struct pxdcap2 {
    unsigned int ctrs:4;    /* completion timeout ranges */
    unsigned int ctds:1;    /* completion timeout disable */
    unsigned int arifs:1;   /* ARI forwarding */
    unsigned int aors:1;    /* AtomicOp routing */
    unsigned int aocs32:1;  /* 32-bit AtomicOp completer */
    unsigned int aocs64:1;  /* 64-bit AtomicOp completer */
    unsigned int ccs128:1;  /* 128-bit CAS completer */
    unsigned int nprpr:1;   /* no RO-enabled PR-PR passing */
    unsigned int ltrs:1;    /* LTR mechanism */
    unsigned int tphcs:2;   /* TPH completer */
    unsigned int obffs:2;   /* OBFF */
    unsigned int effs:1;    /* extended fmt field */
    unsigned int eetps:1;   /* end-end TLP prefix */
    unsigned int meetp:2;   /* max end-end TLP prefixes */
    unsigned int res1:8;
} __attribute__((packed));
VFU_STATIC_ASSERT(sizeof(struct pxdcap2) == 0x4, "pxdcap2 must be 4 bytes");

/* Device Control 2 register, kept opaque. */
struct pxdc2 {
    unsigned int stuff:16;
} __attribute__((packed));
VFU_STATIC_ASSERT(sizeof(struct pxdc2) == 0x2, "pxdc2 must be 2 bytes");

/* Device Status 2 register, kept opaque. */
struct pxds2 {
    unsigned int stuff:16;
} __attribute__((packed));
VFU_STATIC_ASSERT(sizeof(struct pxds2) == 0x2, "pxds2 must be 2 bytes");

/* Link Capabilities 2 register, kept opaque. */
struct pxlcap2 {
    unsigned int stuff:32;
} __attribute__((packed));
VFU_STATIC_ASSERT(sizeof(struct pxlcap2) == 0x4, "pxlcap2 must be 4 bytes");

/* Link Control 2 register, kept opaque. */
struct pxlc2 {
    unsigned int stuff:16;
} __attribute__((packed));
VFU_STATIC_ASSERT(sizeof(struct pxlc2) == 0x2, "pxlc2 must be 2 bytes");

/* Link Status 2 register, kept opaque. */
struct pxls2 {
    unsigned int stuff:16;
} __attribute__((packed));
VFU_STATIC_ASSERT(sizeof(struct pxls2) == 0x2, "pxls2 must be 2 bytes");

/* Bytes the library reserves for a PCI Express capability: a version 2
 * capability through the Slot Status 2 register. */
#define VFIO_USER_PCI_CAP_EXP_SIZEOF (0x3c)

/*
 * The whole version 2 capability; the slot and root registers, which an
 * endpoint does not implement, are left as raw padding.
 */
struct pxcap {
    struct cap_hdr hdr;         /* 0x00 */
    struct pxcaps pxcaps;       /* 0x02 */
    struct pxdcap pxdcap;       /* 0x04 */
    union pxdc pxdc;            /* 0x08 */
    struct pxds pxds;           /* 0x0a */
    struct pxlcap pxlcap;       /* 0x0c */
    struct pxlc pxlc;           /* 0x10 */
    struct pxls pxls;           /* 0x12 */
    uint8_t pad[0x10];          /* 0x14 slot/root registers */
    struct pxdcap2 pxdcap2;     /* 0x24 */
    struct pxdc2 pxdc2;         /* 0x28 */
    struct pxds2 pxds2;         /* 0x2a */
    struct pxlcap2 pxlcap2;     /* 0x2c */
    struct pxlc2 pxlc2;         /* 0x30 */
    struct pxls2 pxls2;         /* 0x32 */
    uint8_t pad2[0x8];          /* 0x34 slot 2 registers */
} __attribute__((packed));
VFU_STATIC_ASSERT(sizeof(struct pxcap) == VFIO_USER_PCI_CAP_EXP_SIZEOF,
                  "pxcap must be VFIO_USER_PCI_CAP_EXP_SIZEOF bytes");
VFU_STATIC_ASSERT(offsetof(struct pxcap, hdr) == 0, "pxcap.hdr offset");
VFU_STATIC_ASSERT(offsetof(struct pxcap, pxdc) == PCI_EXP_DEVCTL,
                  "pxcap.pxdc offset");
VFU_STATIC_ASSERT(offsetof(struct pxcap, pxdcap2) == PCI_EXP_DEVCAP2,
                  "pxcap.pxdcap2 offset");
VFU_STATIC_ASSERT(offsetof(struct pxcap, pxdc2) == PCI_EXP_DEVCTL2,
                  "pxcap.pxdc2 offset");
VFU_STATIC_ASSERT(offsetof(struct pxcap, pxds2) == PCI_EXP_DEVSTA2,
                  "pxcap.pxds2 offset");
VFU_STATIC_ASSERT(offsetof(struct pxcap, pxlcap2) == PCI_EXP_LNKCAP2,
                  "pxcap.pxlcap2 offset");
VFU_STATIC_ASSERT(offsetof(struct pxcap, pxlc2) == PCI_EXP_LNKCTL2,
                  "pxcap.pxlc2 offset");
VFU_STATIC_ASSERT(offsetof(struct pxcap, pxls2) == PCI_EXP_LNKSTA2,
                  "pxcap.pxls2 offset");
VFU_STATIC_ASSERT(offsetof(struct pxcap, pad2) == PCI_EXP_SLTCAP2,
                  "pxcap.pad2 offset");

#ifdef __cplusplus
}
#endif

#endif /* LIB_VFIO_USER_PCI_CAPS_PX_H */
