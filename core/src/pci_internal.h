/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 the vfu authors. */

/*
 * What pci.c (header, BARs, access routing) and pci_caps.c (capability list
 * and capability registers) share. The config space buffer is the single
 * source of truth: every emulated register lives in it, so what the device
 * sees through vfu_pci_get_config_space() is what the client reads.
 */
#ifndef VFU_PCI_INTERNAL_H
#define VFU_PCI_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "private.h"

/* One capability added with vfu_pci_add_capability(). */
struct pci_cap {
    uint16_t off;       /* config space offset */
    uint16_t size;      /* bytes it occupies */
    uint16_t id;        /* PCI_CAP_ID_* or PCI_EXT_CAP_ID_* */
    int flags;          /* VFU_CAP_FLAG_* */
};

struct vfu_pci {
    vfu_pci_type_t type;
    size_t size;                    /* PCI_CFG_SPACE_SIZE or _EXP_SIZE */
    vfu_pci_config_space_t *cfg;    /* size bytes */
    uint8_t *power_on;              /* snapshot taken at realize, or NULL */
    uint32_t bar_wmask[PCI_BARS_NR];    /* writable bits, set at realize */
    uint32_t rom_wmask;

    /* Capabilities in insertion order, which is also list order. */
    struct pci_cap *caps;
    size_t nr_caps;
    size_t caps_cap;
};

/*
 * Per-byte register behaviour: bits set in wmask take the written value,
 * bits set in w1c are cleared by writing 1; all other bits ignore writes.
 */
struct pci_byte_mask {
    uint8_t wmask;
    uint8_t w1c;
};

/* pci_caps.c */

/* The capability covering config offset off, or NULL. */
const struct pci_cap *pci_cap_at(const struct vfu_pci *pci, size_t off);

/* The first capability starting after off, or NULL. */
const struct pci_cap *pci_cap_after(const struct vfu_pci *pci, size_t off);

/* Does the library emulate this capability's registers (PM, MSI, MSI-X,
 * PCIe), so that a reset restores them? */
bool pci_cap_emulated(const struct pci_cap *cap);

/* Register behaviour of byte i (0 <= i < cap->size) of a capability. */
struct pci_byte_mask pci_cap_byte_mask(const struct vfu_pci *pci,
                                       const struct pci_cap *cap, size_t i);

/*
 * May a client write bytes [start, start + len) of capability cap with the
 * values in buf? Returns 0, or -1 with errno: EPERM for a read-only
 * capability or its header, EINVAL/ENOTSUP for an access the capability's
 * registers do not take. Nothing has been written yet.
 */
int pci_cap_check_write(vfu_ctx_t *ctx, const struct pci_cap *cap,
                        const uint8_t *buf, size_t start, size_t len);

/*
 * Act on a client write that already landed in capability cap: bytes
 * [start, start + len) of the capability held the values in buf. Returns 0
 * or -1 with errno (a failing reset callback).
 */
int pci_cap_written(vfu_ctx_t *ctx, const struct pci_cap *cap,
                    const uint8_t *buf, size_t start, size_t len);

#endif /* VFU_PCI_INTERNAL_H */
