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
    uint16_t ver:4;         /* capability version */
    uint16_t dpt:4;         /* device/port type */
    uint16_t si:1;          /* slot implemented */
    uint16_t imn:5;         /* interrupt message number */
    uint16_t res1:2;
} __attribute__((packed));
VFU_STATIC_ASSERT(sizeof(struct pxcaps) == 0x2, "pxcaps must be 2 bytes");

/*
 * Device Capabilities register, bit for bit as PCI_EXP_DEVCAP_*: bits 12-14
 * (once the attention button/indicator and power indicator bits) are
 * reserved, so role-based error reporting is bit 15 and FLR capable bit 28.
 */
struct pxdcap {
    uint32_t mps:3;         /* max payload supported */
    uint32_t pfs:2;         /* phantom functions */
    uint32_t etfs:1;        /* extended tag field */
    uint32_t l0sl:3;        /* L0s acceptable latency */
    uint32_t l1l:3;         /* L1 acceptable latency */
    uint32_t res1:3;
    uint32_t rer:1;         /* role-based error reporting */
    uint32_t res2:2;
    uint32_t csplv:8;       /* captured slot power limit value */
    uint32_t cspls:2;       /* captured slot power limit scale */
    uint32_t flrc:1;        /* function level reset capable */
    uint32_t res3:3;
} __attribute__((packed));
VFU_STATIC_ASSERT(sizeof(struct pxdcap) == 0x4, "pxdcap must be 4 bytes");

/* Device Control register. */
union pxdc {
    uint16_t raw;
    struct {
        uint16_t cere:1;    /* correctable error reporting */
        uint16_t nfere:1;   /* non-fatal error reporting */
        uint16_t fere:1;    /* fatal error reporting */
        uint16_t urre:1;    /* unsupported request reporting */
        uint16_t ero:1;     /* relaxed ordering */
        uint16_t mps:3;     /* max payload size */
        uint16_t ete:1;     /* extended tag */
        uint16_t pfe:1;     /* phantom functions */
        uint16_t appme:1;   /* aux power PM */
        uint16_t ens:1;     /* no snoop */
        uint16_t mrrs:3;    /* max read request size */
        uint16_t iflr:1;    /* initiate function level reset */
     } __attribute__((packed));
} __attribute__((packed));
VFU_STATIC_ASSERT(sizeof(union pxdc) == 0x2, "pxdc must be 2 bytes");

/* Registers the library keeps as opaque values. */
struct pxds {
    uint16_t stuff:16;
} __attribute__((packed));
VFU_STATIC_ASSERT(sizeof(struct pxds) == 0x2, "pxds must be 2 bytes");

struct pxlcap {
    uint32_t stuff:32;
} __attribute__((packed));
VFU_STATIC_ASSERT(sizeof(struct pxlcap) == 0x4, "pxlcap must be 4 bytes");

/* Link Control register. */
union pxlc {
    uint16_t raw;
    struct {
        uint16_t aspmc:2;       /* ASPM control */
        uint16_t rsvdp1:1;
        uint16_t rcb:1;         /* read completion boundary */
        uint16_t ld:1;          /* link disable */
        uint16_t rl:1;          /* retrain link */
        uint16_t ccc:1;         /* common clock configuration */
        uint16_t es:1;          /* extended synch */
        uint16_t clkreq_en:1;   /* clock power management */
        uint16_t hawd:1;        /* hardware autonomous width disable */
        uint16_t lbmie:1;       /* bandwidth management interrupt enable */
        uint16_t labie:1;       /* autonomous bandwidth interrupt enable */
        uint16_t rsvdp2:4;
    };
} __attribute__((packed));
VFU_STATIC_ASSERT(sizeof(union pxlc) == 0x2, "pxlc must be 2 bytes");

struct pxls {
    uint16_t stuff:16;
} __attribute__((packed));
VFU_STATIC_ASSERT(sizeof(struct pxls) == 0x2, "pxls must be 2 bytes");

/* Slot and Root registers: opaque. */
struct pxscap {
    uint32_t stuff:32;
} __attribute__((packed));
VFU_STATIC_ASSERT(sizeof(struct pxscap) == 0x4, "pxscap must be 4 bytes");

struct pxsc {
    uint16_t stuff:16;
} __attribute__((packed));
VFU_STATIC_ASSERT(sizeof(struct pxsc) == 0x2, "pxsc must be 2 bytes");

struct pxss {
    uint16_t stuff:16;
} __attribute__((packed));
VFU_STATIC_ASSERT(sizeof(struct pxss) == 0x2, "pxss must be 2 bytes");

struct pxrc {
    uint16_t stuff:16;
} __attribute__((packed));
VFU_STATIC_ASSERT(sizeof(struct pxrc) == 0x2, "pxrc must be 2 bytes");

struct pxrcap {
    uint16_t stuff:16;
} __attribute__((packed));
VFU_STATIC_ASSERT(sizeof(struct pxrcap) == 0x2, "pxrcap must be 2 bytes");

struct pxrs {
    uint32_t stuff:32;
} __attribute__((packed));
VFU_STATIC_ASSERT(sizeof(struct pxrs) == 0x4, "pxrs must be 4 bytes");

/* Device Capabilities 2 register. */
struct pxdcap2 {
    uint32_t ctrs:4;        /* completion timeout ranges */
    uint32_t ctds:1;        /* completion timeout disable */
    uint32_t arifs:1;       /* ARI forwarding */
    uint32_t aors:1;        /* AtomicOp routing */
    uint32_t aocs32:1;      /* 32-bit AtomicOp completer */
    uint32_t aocs64:1;      /* 64-bit AtomicOp completer */
    uint32_t ccs128:1;      /* 128-bit CAS completer */
    uint32_t nprpr:1;       /* no RO-enabled PR-PR passing */
    uint32_t ltrs:1;        /* LTR mechanism */
    uint32_t tphcs:2;       /* TPH completer */
    uint32_t obffs:2;       /* OBFF */
    uint32_t effs:1;        /* extended fmt field */
    uint32_t eetps:1;       /* end-end TLP prefix */
    uint32_t meetp:2;       /* max end-end TLP prefixes */
    uint32_t res1:8;
} __attribute__((packed));
VFU_STATIC_ASSERT(sizeof(struct pxdcap2) == 0x4, "pxdcap2 must be 4 bytes");

/* Device Control 2 register (the member names are the interface's). */
union pxdc2 {
    uint16_t raw;
    struct {
        uint32_t comp_timeout:4;
        uint32_t comp_timout_dis:1;
        uint32_t ari:1;
        uint32_t atomic_req:1;
        uint32_t atomic_egress_block:1;
        uint32_t ido_req_en:1;
        uint32_t ido_cmp_en:1;
        uint32_t ltr_en:1;
        uint32_t obff_en:2;
        uint32_t end_end_tlp_prefix_block:1;
    } __attribute__((packed));
} __attribute__((packed));
VFU_STATIC_ASSERT(sizeof(union pxdc2) == 0x2, "pxdc2 must be 2 bytes");

struct pxds2 {
    uint16_t stuff:16;
} __attribute__((packed));
VFU_STATIC_ASSERT(sizeof(struct pxds2) == 0x2, "pxds2 must be 2 bytes");

struct pxlcap2 {
    uint32_t stuff:32;
} __attribute__((packed));
VFU_STATIC_ASSERT(sizeof(struct pxlcap2) == 0x4, "pxlcap2 must be 4 bytes");

struct pxlc2 {
    uint16_t stuff:16;
} __attribute__((packed));
VFU_STATIC_ASSERT(sizeof(struct pxlc2) == 0x2, "pxlc2 must be 2 bytes");

struct pxls2 {
    uint16_t stuff:16;
} __attribute__((packed));
VFU_STATIC_ASSERT(sizeof(struct pxls2) == 0x2, "pxls2 must be 2 bytes");

struct pxscap2 {
    uint32_t stuff:32;
} __attribute__((packed));
VFU_STATIC_ASSERT(sizeof(struct pxscap2) == 0x4, "pxscap2 must be 4 bytes");

struct pxsc2 {
    uint16_t stuff:16;
} __attribute__((packed));
VFU_STATIC_ASSERT(sizeof(struct pxsc2) == 0x2, "pxsc2 must be 2 bytes");

struct pxss2 {
    uint16_t stuff:16;
} __attribute__((packed));
VFU_STATIC_ASSERT(sizeof(struct pxss2) == 0x2, "pxss2 must be 2 bytes");

/*
 * The whole v2 capability, up to Slot Status 2: what the library copies
 * from the caller and how much config space it takes.
 */
#define VFIO_USER_PCI_CAP_EXP_SIZEOF (0x3c)

struct pxcap {
    struct cap_hdr hdr;         /* 0x00 */
    struct pxcaps pxcaps;       /* 0x02 */
    struct pxdcap pxdcap;       /* 0x04 */
    union pxdc pxdc;            /* 0x08 */
    struct pxds pxds;           /* 0x0a */
    struct pxlcap pxlcap;       /* 0x0c */
    union pxlc pxlc;            /* 0x10 */
    struct pxls pxls;           /* 0x12 */
    struct pxscap pxscap;       /* 0x14 */
    struct pxsc pxsc;           /* 0x18 */
    struct pxss pxss;           /* 0x1a */
    struct pxrc pxrc;           /* 0x1c */
    struct pxrcap pxrcap;       /* 0x1e */
    struct pxrs pxrs;           /* 0x20 */
    struct pxdcap2 pxdcap2;     /* 0x24 */
    union pxdc2 pxdc2;          /* 0x28 */
    struct pxds2 pxds2;         /* 0x2a */
    struct pxlcap2 pxlcap2;     /* 0x2c */
    struct pxlc2 pxlc2;         /* 0x30 */
    struct pxls2 pxls2;         /* 0x32 */
    struct pxscap2 pxscap2;     /* 0x34 */
    struct pxsc2 pxsc2;         /* 0x38 */
    struct pxss2 pxss2;         /* 0x3a */
} __attribute__((packed));
VFU_STATIC_ASSERT(sizeof(struct pxcap) == VFIO_USER_PCI_CAP_EXP_SIZEOF,
                  "pxcap must be VFIO_USER_PCI_CAP_EXP_SIZEOF bytes");
VFU_STATIC_ASSERT(offsetof(struct pxcap, hdr) == 0, "pxcap.hdr offset");
VFU_STATIC_ASSERT(offsetof(struct pxcap, pxdc) == PCI_EXP_DEVCTL,
                  "pxcap.pxdc offset");
VFU_STATIC_ASSERT(offsetof(struct pxcap, pxlc) == PCI_EXP_LNKCTL,
                  "pxcap.pxlc offset");
VFU_STATIC_ASSERT(offsetof(struct pxcap, pxscap) == PCI_EXP_SLTCAP,
                  "pxcap.pxscap offset");
VFU_STATIC_ASSERT(offsetof(struct pxcap, pxrc) == PCI_EXP_RTCTL,
                  "pxcap.pxrc offset");
VFU_STATIC_ASSERT(offsetof(struct pxcap, pxrs) == PCI_EXP_RTSTA,
                  "pxcap.pxrs offset");
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
VFU_STATIC_ASSERT(offsetof(struct pxcap, pxscap2) == PCI_EXP_SLTCAP2,
                  "pxcap.pxscap2 offset");

#ifdef __cplusplus
}
#endif

#endif /* LIB_VFIO_USER_PCI_CAPS_PX_H */
