/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 the vfu authors. */

/*
 * PCI capabilities: placing them in config space, linking the standard
 * (0x40..0xff) and extended (0x100..) lists, finding them, and the
 * per-register behaviour of the ones the library emulates.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "pci_internal.h"

#define STD_CAP_START   PCI_STD_HEADER_SIZEOF
#define EXT_CAP_START   PCI_CFG_SPACE_SIZE
#define STD_HDR_SIZE    2u
#define EXT_HDR_SIZE    4u
#define VSEC_HDR_SIZE   8u

/* Bounds on list walks so that a device-corrupted chain cannot loop. */
#define STD_CHAIN_MAX   ((PCI_CFG_SPACE_SIZE - STD_CAP_START) / 4)
#define EXT_CHAIN_MAX   ((PCI_CFG_SPACE_EXP_SIZE - EXT_CAP_START) / 4)

/* The two one-byte Power Management registers after PMCSR. */
#define PM_PMCSR_BSE    (PCI_PM_CTRL + 2)   /* bridge support extensions */
#define PM_DATA         (PCI_PM_CTRL + 3)

/* The largest Multiple Message Enable the MSI encoding allows: 32 vectors. */
#define MSI_MME_MAX     5u

static bool
cap_is_ext(const struct pci_cap *cap)
{
    return cap->off >= EXT_CAP_START;
}

static uint32_t
get32(const uint8_t *p)
{
    uint32_t v;

    memcpy(&v, p, sizeof(v));
    return v;
}

static void
put32(uint8_t *p, uint32_t v)
{
    memcpy(p, &v, sizeof(v));
}

const struct pci_cap *
pci_cap_at(const struct vfu_pci *pci, size_t off)
{
    for (size_t i = 0; i < pci->nr_caps; i++) {
        const struct pci_cap *c = &pci->caps[i];

        if (off >= c->off && off < (size_t)c->off + c->size) {
            return c;
        }
    }
    return NULL;
}

const struct pci_cap *
pci_cap_after(const struct vfu_pci *pci, size_t off)
{
    const struct pci_cap *best = NULL;

    for (size_t i = 0; i < pci->nr_caps; i++) {
        const struct pci_cap *c = &pci->caps[i];

        if (c->off > off && (best == NULL || c->off < best->off)) {
            best = c;
        }
    }
    return best;
}

bool
pci_cap_emulated(const struct pci_cap *cap)
{
    if (cap_is_ext(cap) || (cap->flags & VFU_CAP_FLAG_CALLBACK)) {
        return false;
    }
    return cap->id == PCI_CAP_ID_PM || cap->id == PCI_CAP_ID_MSI ||
           cap->id == PCI_CAP_ID_MSIX || cap->id == PCI_CAP_ID_EXP;
}

static struct pci_byte_mask
bm(uint8_t wmask, uint8_t w1c)
{
    struct pci_byte_mask m = { wmask, w1c };

    return m;
}

static struct pci_byte_mask
pm_mask(size_t i)
{
    switch (i) {
    case PCI_PM_CTRL:
        return bm(PCI_PM_CTRL_STATE_MASK, 0);
    case PCI_PM_CTRL + 1:
        /* PME enable and data select are writable, PME status is W1C */
        return bm((PCI_PM_CTRL_PME_ENABLE | PCI_PM_CTRL_DATA_SEL_MASK) >> 8,
                  PCI_PM_CTRL_PME_STATUS >> 8);
    default:
        return bm(0, 0);
    }
}

/* MSI registers move depending on the 64-bit and per-vector-mask bits. */
static struct pci_byte_mask
msi_mask(const uint8_t *cap, size_t i)
{
    uint16_t flags = (uint16_t)(cap[PCI_MSI_FLAGS] |
                                (cap[PCI_MSI_FLAGS + 1] << 8));
    bool is64 = flags & PCI_MSI_FLAGS_64BIT;
    bool pvm = flags & PCI_MSI_FLAGS_MASKBIT;
    size_t data = is64 ? PCI_MSI_DATA_64 : PCI_MSI_DATA_32;
    size_t mask = is64 ? PCI_MSI_MASK_64 : PCI_MSI_MASK_32;

    if (i == PCI_MSI_FLAGS) {
        return bm(PCI_MSI_FLAGS_ENABLE | PCI_MSI_FLAGS_QSIZE, 0);
    }
    if (i == PCI_MSI_ADDRESS_LO) {
        return bm(0xfc, 0);     /* the address is dword aligned */
    }
    if (i > PCI_MSI_ADDRESS_LO && i < PCI_MSI_ADDRESS_LO + 4) {
        return bm(0xff, 0);
    }
    if (is64 && i >= PCI_MSI_ADDRESS_HI && i < PCI_MSI_ADDRESS_HI + 4) {
        return bm(0xff, 0);
    }
    if (i >= data && i < data + 2) {
        return bm(0xff, 0);
    }
    if (pvm && i >= mask && i < mask + 4) {
        return bm(0xff, 0);
    }
    return bm(0, 0);
}

static struct pci_byte_mask
msix_mask(size_t i)
{
    if (i == PCI_MSIX_FLAGS + 1) {
        return bm((PCI_MSIX_FLAGS_ENABLE | PCI_MSIX_FLAGS_MASKALL) >> 8, 0);
    }
    return bm(0, 0);
}

static struct pci_byte_mask
px_mask(size_t i)
{
    switch (i) {
    case PCI_EXP_DEVCTL:
        return bm(0xff, 0);
    case PCI_EXP_DEVCTL + 1:
        /* Initiate-FLR always reads 0; pci_cap_written acts on it. */
        return bm((uint8_t)~(PCI_EXP_DEVCTL_BCR_FLR >> 8), 0);
    case PCI_EXP_DEVSTA:
        return bm(0, PCI_EXP_DEVSTA_CED | PCI_EXP_DEVSTA_NFED |
                     PCI_EXP_DEVSTA_FED | PCI_EXP_DEVSTA_URD);
    case PCI_EXP_LNKCTL:
    case PCI_EXP_LNKCTL + 1:
    case PCI_EXP_DEVCTL2:
    case PCI_EXP_DEVCTL2 + 1:
    case PCI_EXP_LNKCTL2:
    case PCI_EXP_LNKCTL2 + 1:
        return bm(0xff, 0);
    case PCI_EXP_LNKSTA + 1:
        return bm(0, (PCI_EXP_LNKSTA_LBMS | PCI_EXP_LNKSTA_LABS) >> 8);
    default:
        return bm(0, 0);
    }
}

struct pci_byte_mask
pci_cap_byte_mask(const struct vfu_pci *pci, const struct pci_cap *cap,
                  size_t i)
{
    const uint8_t *raw = (const uint8_t *)pci->cfg + cap->off;

    if (cap->flags & VFU_CAP_FLAG_READONLY) {
        return bm(0, 0);
    }
    if (cap_is_ext(cap)) {
        /* DSN is a read-only serial number; a VSEC body is the device's. */
        if (cap->id == PCI_EXT_CAP_ID_VNDR && i >= VSEC_HDR_SIZE) {
            return bm(0xff, 0);
        }
        return bm(0, 0);
    }
    switch (cap->id) {
    case PCI_CAP_ID_PM:
        return pm_mask(i);
    case PCI_CAP_ID_MSI:
        return msi_mask(raw, i);
    case PCI_CAP_ID_MSIX:
        return msix_mask(i);
    case PCI_CAP_ID_EXP:
        return px_mask(i);
    case PCI_CAP_ID_VNDR:
        /* id, next and length are the header */
        return bm(i >= sizeof(struct vsc) ? 0xff : 0, 0);
    default:
        return bm(0, 0);
    }
}

/* Bytes at the start of a capability that only the library writes. */
static size_t
cap_hdr_size(const struct pci_cap *cap)
{
    if (cap_is_ext(cap)) {
        return cap->id == PCI_EXT_CAP_ID_VNDR ? VSEC_HDR_SIZE : EXT_HDR_SIZE;
    }
    return cap->id == PCI_CAP_ID_VNDR ? sizeof(struct vsc) : STD_HDR_SIZE;
}

/*
 * Power Management registers take whole-register accesses only, and of
 * them only the control/status register is implemented.
 */
static int
pm_check_write(vfu_ctx_t *ctx, size_t start, size_t len)
{
    int err;

    if (start == PCI_PM_PMC && len == 2) {
        err = ENOTSUP;      /* capabilities: read-only */
    } else if (start == PCI_PM_CTRL && len == 2) {
        return 0;
    } else if ((start == PM_PMCSR_BSE || start == PM_DATA) && len == 1) {
        err = ENOTSUP;      /* read-only */
    } else {
        err = EINVAL;       /* not one whole register */
    }
    vfu_log(ctx, LOG_ERR, "power management write of %zu bytes at %#zx "
            "refused", len, start);
    errno = err;
    return -1;
}

/* Refuse a Multiple Message Enable beyond what the device offers. */
static int
msi_check_write(vfu_ctx_t *ctx, const struct vfu_pci *pci,
                const struct pci_cap *cap, const uint8_t *buf, size_t start,
                size_t len)
{
    const uint8_t *raw = (const uint8_t *)pci->cfg + cap->off;
    unsigned int mmc, mme;

    if (start > PCI_MSI_FLAGS || start + len <= PCI_MSI_FLAGS) {
        return 0;
    }
    mmc = (raw[PCI_MSI_FLAGS] & PCI_MSI_FLAGS_QMASK) >> 1;
    mme = (buf[PCI_MSI_FLAGS - start] & PCI_MSI_FLAGS_QSIZE) >> 4;
    if (mme > MSI_MME_MAX || mme > mmc) {
        vfu_log(ctx, LOG_ERR, "MSI: %u enabled vectors (log2) over the "
                "%u offered", mme, mmc);
        errno = EINVAL;
        return -1;
    }
    return 0;
}

int
pci_cap_check_write(vfu_ctx_t *ctx, const struct pci_cap *cap,
                    const uint8_t *buf, size_t start, size_t len)
{
    if (cap->flags & VFU_CAP_FLAG_READONLY) {
        vfu_log(ctx, LOG_ERR, "write to read-only capability %#x", cap->id);
        errno = EPERM;
        return -1;
    }
    if (cap->flags & VFU_CAP_FLAG_CALLBACK) {
        return 0;   /* the device's callback decides */
    }
    if (cap_is_ext(cap) && cap->id == PCI_EXT_CAP_ID_DSN) {
        vfu_log(ctx, LOG_ERR, "write to the device serial number");
        errno = EPERM;
        return -1;
    }
    if (start < cap_hdr_size(cap)) {
        vfu_log(ctx, LOG_ERR, "write to the header of capability %#x",
                cap->id);
        errno = EPERM;
        return -1;
    }
    if (cap_is_ext(cap)) {
        return 0;
    }
    switch (cap->id) {
    case PCI_CAP_ID_PM:
        return pm_check_write(ctx, start, len);
    case PCI_CAP_ID_MSI:
        return msi_check_write(ctx, ctx->pci, cap, buf, start, len);
    default:
        return 0;
    }
}

int
pci_cap_written(vfu_ctx_t *ctx, const struct pci_cap *cap,
                const uint8_t *buf, size_t start, size_t len)
{
    const size_t flr_byte = PCI_EXP_DEVCTL + 1;

    if (cap_is_ext(cap) || cap->id != PCI_CAP_ID_EXP ||
        flr_byte < start || flr_byte >= start + len ||
        !(buf[flr_byte - start] & (PCI_EXP_DEVCTL_BCR_FLR >> 8))) {
        return 0;
    }
    vfu_log(ctx, LOG_DEBUG, "function level reset");
    vfu_pci_reset(ctx);
    if (ctx->reset_cb != NULL && ctx->reset_cb(ctx, VFU_RESET_PCI_FLR) < 0) {
        vfu_log_errno(ctx, LOG_ERR, errno, "FLR reset callback failed");
        return -1;
    }
    return 0;
}

bool
vfu_pci_write_starts_flr(vfu_ctx_t *ctx, uint64_t offset, const uint8_t *data,
                         size_t count)
{
    const struct vfu_region *r = ctx->nr_regions > VFU_PCI_DEV_CFG_REGION_IDX ?
                                 &ctx->regions[VFU_PCI_DEV_CFG_REGION_IDX] : NULL;
    const struct vfu_pci *pci = ctx->pci;

    if (pci == NULL || (r != NULL && r->cb != NULL &&
                        (r->flags & VFU_REGION_FLAG_ALWAYS_CB))) {
        return false;   /* the device handles config space itself */
    }
    for (size_t i = 0; i < pci->nr_caps; i++) {
        const struct pci_cap *cap = &pci->caps[i];
        uint64_t flr = cap->off + PCI_EXP_DEVCTL + 1;

        if (!cap_is_ext(cap) && cap->id == PCI_CAP_ID_EXP &&
            !(cap->flags & VFU_CAP_FLAG_CALLBACK)) {
            return flr >= offset && flr - offset < count &&
                   (data[flr - offset] & (PCI_EXP_DEVCTL_BCR_FLR >> 8));
        }
    }
    return false;
}

/*
 * How many bytes the capability in data occupies, and how many of them the
 * caller supplied. Returns 0, or -1 with errno (EINVAL/ENOTSUP).
 */
static int
cap_size(vfu_ctx_t *ctx, const uint8_t *data, bool ext, uint16_t *id,
         size_t *size)
{
    if (ext) {
        *id = (uint16_t)(data[0] | (data[1] << 8));
        switch (*id) {
        case PCI_EXT_CAP_ID_DSN:
            *size = PCI_EXT_CAP_DSN_SIZEOF;
            break;
        case PCI_EXT_CAP_ID_VNDR:
            *size = get32(data + PCI_VNDR_HEADER) >> 20;
            if (*size < VSEC_HDR_SIZE) {
                vfu_log(ctx, LOG_ERR, "VSEC length %zu too small", *size);
                errno = EINVAL;
                return -1;
            }
            break;
        default:
            vfu_log(ctx, LOG_ERR, "extended capability %#x unsupported", *id);
            errno = ENOTSUP;
            return -1;
        }
        return 0;
    }

    *id = data[PCI_CAP_LIST_ID];
    switch (*id) {
    case PCI_CAP_ID_PM:
        *size = PCI_PM_SIZEOF;
        break;
    case PCI_CAP_ID_MSI:
        /* Room for the largest layout whatever the flags say, as the
         * caller's struct msicap has; unused registers read as given and
         * ignore writes. */
        *size = VFIO_USER_PCI_CAP_MSI_SIZEOF;
        break;
    case PCI_CAP_ID_MSIX:
        *size = PCI_CAP_MSIX_SIZEOF;
        break;
    case PCI_CAP_ID_EXP:
        *size = VFIO_USER_PCI_CAP_EXP_SIZEOF;
        break;
    case PCI_CAP_ID_VNDR:
        *size = data[PCI_CAP_FLAGS];
        if (*size < sizeof(struct vsc)) {
            vfu_log(ctx, LOG_ERR, "vendor capability length %zu too small",
                    *size);
            errno = EINVAL;
            return -1;
        }
        break;
    default:
        vfu_log(ctx, LOG_ERR, "capability %#x unsupported", *id);
        errno = ENOTSUP;
        return -1;
    }
    return 0;
}

static bool
range_free(const struct vfu_pci *pci, size_t pos, size_t size)
{
    for (size_t i = 0; i < pci->nr_caps; i++) {
        const struct pci_cap *c = &pci->caps[i];

        if (pos < (size_t)c->off + c->size && c->off < pos + size) {
            return false;
        }
    }
    return true;
}

static const struct pci_cap *
last_cap(const struct vfu_pci *pci, bool ext)
{
    for (size_t i = pci->nr_caps; i > 0; i--) {
        if (cap_is_ext(&pci->caps[i - 1]) == ext) {
            return &pci->caps[i - 1];
        }
    }
    return NULL;
}

/* Pick or check the offset; returns it, or 0 with errno. */
static size_t
cap_place(vfu_ctx_t *ctx, size_t pos, bool ext, size_t size)
{
    const struct vfu_pci *pci = ctx->pci;
    size_t lo = ext ? EXT_CAP_START : STD_CAP_START;
    size_t hi = ext ? pci->size : PCI_CFG_SPACE_SIZE;
    bool first = last_cap(pci, ext) == NULL;

    if (pos == 0) {
        /* The extended list has to begin at 0x100. */
        size_t last = first && ext ? lo : hi - size;

        for (size_t p = lo; p <= last && size <= hi - p; p += 4) {
            if (range_free(pci, p, size)) {
                return p;
            }
        }
        vfu_log(ctx, LOG_ERR, "no room for a %zu byte capability", size);
        errno = ENOSPC;
        return 0;
    }
    if ((pos & 3) != 0 || pos < lo || pos >= hi || size > hi - pos ||
        (ext && first && pos != EXT_CAP_START)) {
        vfu_log(ctx, LOG_ERR, "capability position %#zx invalid", pos);
        errno = EINVAL;
        return 0;
    }
    if (!range_free(pci, pos, size)) {
        vfu_log(ctx, LOG_ERR, "capability at %#zx overlaps another", pos);
        errno = EINVAL;
        return 0;
    }
    return pos;
}

/* Append the capability at pos to its list, which is kept in add order. */
static void
cap_link(struct vfu_pci *pci, size_t pos, bool ext)
{
    uint8_t *raw = (uint8_t *)pci->cfg;
    const struct pci_cap *prev = last_cap(pci, ext);

    if (ext) {
        put32(raw + pos, get32(raw + pos) & 0x000fffffu);
        if (prev != NULL) {
            put32(raw + prev->off, (get32(raw + prev->off) & 0x000fffffu) |
                                   ((uint32_t)pos << 20));
        }
        return;
    }
    raw[pos + PCI_CAP_LIST_NEXT] = 0;
    if (prev != NULL) {
        raw[prev->off + PCI_CAP_LIST_NEXT] = (uint8_t)pos;
    } else {
        pci->cfg->hdr.cap = (uint8_t)pos;
    }
    pci->cfg->hdr.sts.raw |= PCI_STATUS_CAP_LIST;
}

ssize_t
vfu_pci_add_capability(vfu_ctx_t *ctx, size_t pos, int flags, void *data)
{
    const int known = VFU_CAP_FLAG_EXTENDED | VFU_CAP_FLAG_CALLBACK |
                      VFU_CAP_FLAG_READONLY;
    struct vfu_pci *pci;
    bool ext = flags & VFU_CAP_FLAG_EXTENDED;
    size_t size;
    uint16_t id;

    if (ctx == NULL || data == NULL || ctx->pci == NULL ||
        (flags & ~known) != 0) {
        errno = EINVAL;
        return -1;
    }
    pci = ctx->pci;
    if (ext && pci->size < PCI_CFG_SPACE_EXP_SIZE) {
        vfu_log(ctx, LOG_ERR, "extended capability needs PCIe or PCI-X 2");
        errno = EINVAL;
        return -1;
    }
    if (flags & VFU_CAP_FLAG_CALLBACK) {
        const struct vfu_region *r = ctx->regions != NULL &&
            ctx->nr_regions > VFU_PCI_DEV_CFG_REGION_IDX ?
            &ctx->regions[VFU_PCI_DEV_CFG_REGION_IDX] : NULL;

        if (r == NULL || r->cb == NULL) {
            vfu_log(ctx, LOG_ERR, "callback capability without a config "
                    "region callback");
            errno = EINVAL;
            return -1;
        }
    }
    if (cap_size(ctx, data, ext, &id, &size) < 0) {
        return -1;
    }
    pos = cap_place(ctx, pos, ext, size);
    if (pos == 0) {
        return -1;
    }
    if (pci->nr_caps == pci->caps_cap) {
        size_t n = pci->caps_cap ? pci->caps_cap * 2 : 8;
        struct pci_cap *caps = realloc(pci->caps, n * sizeof(*caps));

        if (caps == NULL) {
            return -1;
        }
        pci->caps = caps;
        pci->caps_cap = n;
    }

    uint8_t *raw = (uint8_t *)pci->cfg;
    memcpy(raw + pos, data, size);
    cap_link(pci, pos, ext);
    pci->caps[pci->nr_caps++] = (struct pci_cap) {
        .off = (uint16_t)pos, .size = (uint16_t)size, .id = id, .flags = flags,
    };
    vfu_log(ctx, LOG_DEBUG, "capability %#x at %#zx, %zu bytes", id, pos, size);
    return (ssize_t)pos;
}

/* The list as it stands in config space, which the device may also edit. */
static size_t
chain_first(const struct vfu_pci *pci, bool ext)
{
    const uint8_t *raw = (const uint8_t *)pci->cfg;

    if (ext) {
        uint32_t h = get32(raw + EXT_CAP_START);
        return h != 0 && h != UINT32_MAX ? EXT_CAP_START : 0;
    }
    if (!(pci->cfg->hdr.sts.raw & PCI_STATUS_CAP_LIST)) {
        return 0;
    }
    size_t p = pci->cfg->hdr.cap & ~3u;
    return p >= STD_CAP_START ? p : 0;
}

static size_t
chain_next(const struct vfu_pci *pci, bool ext, size_t p)
{
    const uint8_t *raw = (const uint8_t *)pci->cfg;
    size_t n;

    if (ext) {
        n = (get32(raw + p) >> 20) & ~3u;
        return n >= EXT_CAP_START && n <= pci->size - EXT_HDR_SIZE ? n : 0;
    }
    n = raw[p + PCI_CAP_LIST_NEXT] & ~3u;
    return n >= STD_CAP_START ? n : 0;
}

static int
chain_id(const struct vfu_pci *pci, bool ext, size_t p)
{
    const uint8_t *raw = (const uint8_t *)pci->cfg;

    return ext ? (int)(get32(raw + p) & 0xffff) : raw[p];
}

static bool
find_ok(vfu_ctx_t *ctx, bool ext)
{
    if (ctx == NULL || ctx->pci == NULL ||
        (ext && ctx->pci->size < PCI_CFG_SPACE_EXP_SIZE)) {
        errno = EINVAL;
        return false;
    }
    return true;
}

/* First capability with cap_id at or after p in the list, or 0/ENOENT. */
static size_t
find_from(const struct vfu_pci *pci, bool ext, size_t p, int cap_id,
          unsigned int budget)
{
    for (; p != 0 && budget > 0; p = chain_next(pci, ext, p), budget--) {
        if (chain_id(pci, ext, p) == cap_id) {
            return p;
        }
    }
    errno = ENOENT;
    return 0;
}

size_t
vfu_pci_find_capability(vfu_ctx_t *ctx, bool extended, int cap_id)
{
    if (!find_ok(ctx, extended)) {
        return 0;
    }
    return find_from(ctx->pci, extended, chain_first(ctx->pci, extended),
                     cap_id, extended ? EXT_CHAIN_MAX : STD_CHAIN_MAX);
}

size_t
vfu_pci_find_next_capability(vfu_ctx_t *ctx, bool extended, size_t pos,
                             int cap_id)
{
    unsigned int budget = extended ? EXT_CHAIN_MAX : STD_CHAIN_MAX;
    const struct vfu_pci *pci;
    size_t p;

    if (!find_ok(ctx, extended)) {
        return 0;
    }
    pci = ctx->pci;
    if (pos == 0) {
        /* No capability lives at 0: start at the head of the list. */
        return vfu_pci_find_capability(ctx, extended, cap_id);
    }
    /* Outside the list's space: not a position at all. */
    if (extended ? (pos < EXT_CAP_START || pos > pci->size - EXT_HDR_SIZE)
                 : (pos < STD_CAP_START ||
                    pos > PCI_CFG_SPACE_SIZE - STD_HDR_SIZE)) {
        errno = EINVAL;
        return 0;
    }
    for (p = chain_first(pci, extended); p != 0 && p != pos && budget > 0;
         p = chain_next(pci, extended, p)) {
        budget--;
    }
    if (p != pos) {
        errno = ENOENT;     /* no capability starts there */
        return 0;
    }
    return find_from(pci, extended, chain_next(pci, extended, p), cap_id,
                     budget);
}
