/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 the vfu authors. */

/*
 * PCI config space: the type 0 header, BAR sizing, and the routing of
 * client accesses between the header, the capabilities (pci_caps.c), the
 * device's config region callback and plain memory.
 *
 * Registers are emulated the way hardware does it: each byte has a mask of
 * writable bits and a mask of write-1-to-clear bits, and a write to a
 * read-only bit is silently dropped. A BAR's writable bits are the address
 * bits above its size, so writing all-ones and reading back yields the
 * size mask with the type bits, without any special case.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "pci_internal.h"

/* Header fields the client may change. */
#define CMD_WMASK (PCI_COMMAND_IO | PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER | \
                   PCI_COMMAND_SPECIAL | PCI_COMMAND_INVALIDATE |           \
                   PCI_COMMAND_VGA_PALETTE | PCI_COMMAND_PARITY |           \
                   PCI_COMMAND_SERR | PCI_COMMAND_FAST_BACK |               \
                   PCI_COMMAND_INTX_DISABLE)
#define STATUS_W1C (PCI_STATUS_PARITY | PCI_STATUS_SIG_TARGET_ABORT |      \
                    PCI_STATUS_REC_TARGET_ABORT |                           \
                    PCI_STATUS_REC_MASTER_ABORT |                           \
                    PCI_STATUS_SIG_SYSTEM_ERROR |                           \
                    PCI_STATUS_DETECTED_PARITY)

/* Smallest decoders the PCI spec allows. */
#define BAR_IO_MIN   4u
#define BAR_MEM_MIN  16u
#define ROM_MIN      2048u

static const struct vfu_region *
region_get(const vfu_ctx_t *ctx, uint32_t idx)
{
    if (ctx->regions == NULL || idx >= ctx->nr_regions) {
        return NULL;
    }
    return &ctx->regions[idx];
}

static uint64_t
region_size(const vfu_ctx_t *ctx, uint32_t idx)
{
    const struct vfu_region *r = region_get(ctx, idx);

    return r != NULL ? r->size : 0;
}

/* Round up to a power of two; 0 when that does not fit in 64 bits. */
static uint64_t
pow2_ceil(uint64_t v)
{
    uint64_t p = 1;

    while (p < v) {
        if (p > UINT64_MAX / 2) {
            return 0;
        }
        p <<= 1;
    }
    return p;
}

static int
pci_alloc(vfu_ctx_t *ctx, vfu_pci_type_t type)
{
    struct vfu_pci *pci = calloc(1, sizeof(*pci));

    if (pci == NULL) {
        return -1;
    }
    pci->type = type;
    pci->size = (type == VFU_PCI_TYPE_PCI_X_2 || type == VFU_PCI_TYPE_EXPRESS)
                ? PCI_CFG_SPACE_EXP_SIZE : PCI_CFG_SPACE_SIZE;
    pci->cfg = calloc(1, pci->size);
    if (pci->cfg == NULL) {
        free(pci);
        return -1;
    }
    pci->cfg->hdr.htype.raw = PCI_HEADER_TYPE_NORMAL;
    ctx->pci = pci;
    return 0;
}

int
vfu_pci_init(vfu_ctx_t *ctx, vfu_pci_type_t pci_type, int hdr_type,
             int revision VFU_UNUSED)
{
    if (ctx == NULL) {
        errno = EINVAL;
        return -1;
    }
    if (ctx->pci != NULL) {
        errno = EEXIST;
        return -1;
    }
    if (ctx->realized || ctx->dev_type != VFU_DEV_TYPE_PCI) {
        vfu_log(ctx, LOG_ERR, "vfu_pci_init: context realized or not PCI");
        errno = EINVAL;
        return -1;
    }
    switch (pci_type) {
    case VFU_PCI_TYPE_CONVENTIONAL:
    case VFU_PCI_TYPE_PCI_X_1:
    case VFU_PCI_TYPE_PCI_X_2:
    case VFU_PCI_TYPE_EXPRESS:
        break;
    default:
        vfu_log(ctx, LOG_ERR, "vfu_pci_init: bad PCI type %d", (int)pci_type);
        errno = EINVAL;
        return -1;
    }
    if (hdr_type != PCI_HEADER_TYPE_NORMAL) {
        vfu_log(ctx, LOG_ERR, "vfu_pci_init: header type %d unsupported",
                hdr_type);
        errno = EINVAL;
        return -1;
    }
    return pci_alloc(ctx, pci_type);
}

void
vfu_pci_set_id(vfu_ctx_t *ctx, uint16_t vid, uint16_t did, uint16_t ssvid,
               uint16_t ssid)
{
    if (ctx == NULL || ctx->pci == NULL) {
        return;
    }
    ctx->pci->cfg->hdr.id.vid = vid;
    ctx->pci->cfg->hdr.id.did = did;
    ctx->pci->cfg->hdr.ss.vid = ssvid;
    ctx->pci->cfg->hdr.ss.sid = ssid;
}

void
vfu_pci_set_class(vfu_ctx_t *ctx, uint8_t base, uint8_t sub, uint8_t pi)
{
    if (ctx == NULL || ctx->pci == NULL) {
        return;
    }
    ctx->pci->cfg->hdr.cc.bcc = base;
    ctx->pci->cfg->hdr.cc.scc = sub;
    ctx->pci->cfg->hdr.cc.pi = pi;
}

vfu_pci_config_space_t *
vfu_pci_get_config_space(vfu_ctx_t *ctx)
{
    if (ctx == NULL || ctx->pci == NULL) {
        errno = EINVAL;
        return NULL;
    }
    return ctx->pci->cfg;
}

size_t
vfu_pci_config_size(const vfu_ctx_t *ctx)
{
    return ctx->pci != NULL ? ctx->pci->size : PCI_CFG_SPACE_SIZE;
}

void
vfu_pci_free(vfu_ctx_t *ctx)
{
    struct vfu_pci *pci = ctx->pci;

    if (pci == NULL) {
        return;
    }
    free(pci->caps);
    free(pci->power_on);
    free(pci->cfg);
    free(pci);
    ctx->pci = NULL;
}

/*
 * Give each BAR its type bits and writable mask from the regions. A memory
 * BAR is 64-bit when its region says VFU_REGION_FLAG_64_BITS, when the
 * device marked it so in config space, or when it is too big for 32 bits;
 * its upper half takes the next slot, which must then have no region of its
 * own. Prefetchable likewise comes from the region flag or the device's
 * config space.
 */
static int
bars_realize(vfu_ctx_t *ctx)
{
    struct vfu_pci *pci = ctx->pci;
    vfu_bar_t *bars = pci->cfg->hdr.bars;
    uint64_t size, p;

    for (int i = 0; i < PCI_BARS_NR; i++) {
        const struct vfu_region *r = region_get(ctx, (uint32_t)i);

        size = region_size(ctx, (uint32_t)i);
        pci->bar_wmask[i] = 0;
        if (size == 0) {
            bars[i].raw = 0;
            continue;
        }
        if (!(r->flags & VFU_REGION_FLAG_MEM)) {
            p = pow2_ceil(size < BAR_IO_MIN ? BAR_IO_MIN : size);
            if (p == 0 || p > (1ull << 32)) {
                goto too_big;
            }
            bars[i].raw = PCI_BASE_ADDRESS_SPACE_IO;
            pci->bar_wmask[i] = (uint32_t)~(p - 1) & PCI_BASE_ADDRESS_IO_MASK;
            continue;
        }

        uint32_t keep = bars[i].raw & (PCI_BASE_ADDRESS_MEM_TYPE_MASK |
                                       PCI_BASE_ADDRESS_MEM_PREFETCH);
        if (r->flags & VFU_REGION_FLAG_PREFETCH) {
            keep |= PCI_BASE_ADDRESS_MEM_PREFETCH;
        }
        p = pow2_ceil(size < BAR_MEM_MIN ? BAR_MEM_MIN : size);
        if (p == 0) {
            goto too_big;
        }
        bool is64 = (r->flags & VFU_REGION_FLAG_64_BITS) ||
                    (keep & PCI_BASE_ADDRESS_MEM_TYPE_MASK) ==
                    PCI_BASE_ADDRESS_MEM_TYPE_64 || p > (1ull << 31);
        if (!is64) {
            bars[i].raw = keep;
            pci->bar_wmask[i] = (uint32_t)~(p - 1) & PCI_BASE_ADDRESS_MEM_MASK;
            continue;
        }
        if (i == PCI_BARS_NR - 1 || region_size(ctx, (uint32_t)i + 1) != 0) {
            vfu_log(ctx, LOG_ERR, "BAR%d is 64-bit but BAR%d is taken or "
                    "missing", i, i + 1);
            errno = EINVAL;
            return -1;
        }
        keep &= ~PCI_BASE_ADDRESS_MEM_TYPE_MASK;
        bars[i].raw = keep | PCI_BASE_ADDRESS_MEM_TYPE_64;
        pci->bar_wmask[i] = (uint32_t)~(p - 1) & PCI_BASE_ADDRESS_MEM_MASK;
        /* The upper half: all address bits, writable above the size. */
        bars[i + 1].raw = 0;
        pci->bar_wmask[i + 1] = (uint32_t)(~(p - 1) >> 32);
        i++;
    }

    pci->rom_wmask = 0;
    pci->cfg->hdr.erom = 0;
    size = region_size(ctx, VFU_PCI_DEV_ROM_REGION_IDX);
    if (size != 0) {
        p = pow2_ceil(size < ROM_MIN ? ROM_MIN : size);
        if (p == 0 || p > (1ull << 31)) {
            vfu_log(ctx, LOG_ERR, "ROM region too big");
            errno = EINVAL;
            return -1;
        }
        pci->rom_wmask = ((uint32_t)~(p - 1) & PCI_ROM_ADDRESS_MASK) |
                         PCI_ROM_ADDRESS_ENABLE;
    }
    return 0;

too_big:
    vfu_log(ctx, LOG_ERR, "BAR region too big for its type");
    errno = EINVAL;
    return -1;
}

int
vfu_pci_realize(vfu_ctx_t *ctx)
{
    struct vfu_pci *pci;

    /* A device that never called vfu_pci_init() gets a conventional one. */
    if (ctx->pci == NULL && pci_alloc(ctx, VFU_PCI_TYPE_CONVENTIONAL) < 0) {
        return -1;
    }
    pci = ctx->pci;
    if (bars_realize(ctx) < 0) {
        return -1;
    }

    uint8_t *pin = &pci->cfg->hdr.intr.ipin;
    if (ctx->irqs[VFU_DEV_INTX_IRQ].count == 0) {
        *pin = 0;
    } else if (*pin < 1 || *pin > 4) {
        *pin = 1;   /* INTA# unless the device chose another pin */
    }

    free(pci->power_on);
    pci->power_on = malloc(pci->size);
    if (pci->power_on == NULL) {
        return -1;
    }
    memcpy(pci->power_on, pci->cfg, pci->size);
    return 0;
}

static struct pci_byte_mask
hdr_byte_mask(const struct vfu_pci *pci, size_t off)
{
    struct pci_byte_mask m = { 0, 0 };
    unsigned int shift = (off & 3) * 8;

    switch (off) {
    case PCI_COMMAND:
    case PCI_COMMAND + 1:
        m.wmask = (uint8_t)(CMD_WMASK >> ((off - PCI_COMMAND) * 8));
        break;
    case PCI_STATUS:
    case PCI_STATUS + 1:
        m.w1c = (uint8_t)(STATUS_W1C >> ((off - PCI_STATUS) * 8));
        break;
    case PCI_CACHE_LINE_SIZE:
    case PCI_LATENCY_TIMER:
    case PCI_INTERRUPT_LINE:
        m.wmask = 0xff;
        break;
    default:
        if (off >= PCI_BASE_ADDRESS_0 && off < PCI_CARDBUS_CIS) {
            size_t bar = (off - PCI_BASE_ADDRESS_0) / 4;
            m.wmask = (uint8_t)(pci->bar_wmask[bar] >> shift);
        } else if (off >= PCI_ROM_ADDRESS && off < PCI_ROM_ADDRESS + 4) {
            m.wmask = (uint8_t)(pci->rom_wmask >> shift);
        }
        break;
    }
    return m;
}

static void
apply_byte(uint8_t *reg, uint8_t val, struct pci_byte_mask m)
{
    *reg = (uint8_t)((*reg & ~m.wmask) | (val & m.wmask));
    *reg &= (uint8_t)~(val & m.w1c);
}

/* Back to the values the device had at realize, in writable bits only. */
static void
restore_bits(struct vfu_pci *pci, size_t off, struct pci_byte_mask m)
{
    uint8_t bits = m.wmask | m.w1c;
    uint8_t *raw = (uint8_t *)pci->cfg;
    uint8_t init = pci->power_on != NULL ? pci->power_on[off] : 0;

    raw[off] = (uint8_t)((raw[off] & ~bits) | (init & bits));
}

void
vfu_pci_reset(vfu_ctx_t *ctx)
{
    struct vfu_pci *pci = ctx->pci;

    if (pci == NULL) {
        return;
    }
    for (size_t off = 0; off < PCI_STD_HEADER_SIZEOF; off++) {
        restore_bits(pci, off, hdr_byte_mask(pci, off));
    }
    /* Whatever the device preset, a reset function decodes nothing. */
    pci->cfg->hdr.cmd.raw = 0;
    for (size_t i = 0; i < pci->nr_caps; i++) {
        const struct pci_cap *cap = &pci->caps[i];

        if (!pci_cap_emulated(cap)) {
            continue;
        }
        for (size_t b = 0; b < cap->size; b++) {
            restore_bits(pci, cap->off + b, pci_cap_byte_mask(pci, cap, b));
        }
    }
}

enum seg_kind { SEG_HDR, SEG_CAP, SEG_FREE };

/* Where the owner of byte pos stops, capped at end; says who owns it. */
static size_t
seg_end(const struct vfu_pci *pci, size_t pos, size_t end,
        enum seg_kind *kind, const struct pci_cap **cap)
{
    size_t stop;

    *cap = NULL;
    if (pos < PCI_STD_HEADER_SIZEOF) {
        *kind = SEG_HDR;
        stop = PCI_STD_HEADER_SIZEOF;
    } else if ((*cap = pci_cap_at(pci, pos)) != NULL) {
        *kind = SEG_CAP;
        stop = (size_t)(*cap)->off + (*cap)->size;
    } else {
        const struct pci_cap *next = pci_cap_after(pci, pos);

        *kind = SEG_FREE;
        stop = next != NULL ? next->off : pci->size;
    }
    return stop < end ? stop : end;
}

static int
call_cb(vfu_ctx_t *ctx, vfu_region_access_cb_t *cb, char *buf, size_t len,
        size_t off, bool is_write)
{
    errno = 0;
    ssize_t ret = cb(ctx, buf, len, (loff_t)off, is_write);

    if (ret < 0) {
        if (errno == 0) {
            errno = EIO;
        }
        return -1;
    }
    if ((size_t)ret != len) {
        vfu_log(ctx, LOG_ERR, "config callback moved %zd of %zu bytes at %#zx",
                ret, len, off);
        errno = EIO;
        return -1;
    }
    return 0;
}

/* Refuse a write that touches a byte nobody may write, before any lands. */
static int
check_write(vfu_ctx_t *ctx, const uint8_t *buf, size_t offset, size_t end,
            vfu_region_access_cb_t *cb)
{
    const struct vfu_pci *pci = ctx->pci;
    const struct pci_cap *cap;
    enum seg_kind kind;

    for (size_t pos = offset; pos < end; ) {
        size_t stop = seg_end(pci, pos, end, &kind, &cap);

        if (kind == SEG_FREE && cb == NULL) {
            vfu_log(ctx, LOG_ERR, "config write at %#zx: no handler", pos);
            errno = EINVAL;
            return -1;
        }
        if (kind == SEG_CAP &&
            pci_cap_check_write(ctx, cap, buf + (pos - offset),
                                pos - cap->off, stop - pos) < 0) {
            return -1;
        }
        pos = stop;
    }
    return 0;
}

ssize_t
vfu_pci_config_access(vfu_ctx_t *ctx, char *buf, size_t count,
                      uint64_t offset, bool is_write)
{
    struct vfu_pci *pci = ctx->pci;
    const struct vfu_region *r = region_get(ctx, VFU_PCI_DEV_CFG_REGION_IDX);
    vfu_region_access_cb_t *cb = r != NULL ? r->cb : NULL;
    uint8_t *raw;

    if (pci == NULL) {
        errno = EINVAL;
        return -1;
    }
    if (offset >= pci->size || count > pci->size - offset) {
        vfu_log(ctx, LOG_ERR, "config access %#" PRIx64 "+%zu out of range",
                offset, count);
        errno = EINVAL;
        return -1;
    }
    if (count == 0) {
        return 0;
    }
    if (cb != NULL && (r->flags & VFU_REGION_FLAG_ALWAYS_CB)) {
        return cb(ctx, buf, count, (loff_t)offset, is_write);
    }

    size_t end = (size_t)offset + count;
    if (is_write &&
        check_write(ctx, (const uint8_t *)buf, (size_t)offset, end, cb) < 0) {
        return -1;
    }

    raw = (uint8_t *)pci->cfg;
    for (size_t pos = (size_t)offset; pos < end; ) {
        const struct pci_cap *cap;
        enum seg_kind kind;
        size_t stop = seg_end(pci, pos, end, &kind, &cap);
        size_t len = stop - pos;
        char *p = buf + (pos - offset);
        bool use_cb = cb != NULL && (kind == SEG_FREE ||
                      (kind == SEG_CAP && (cap->flags & VFU_CAP_FLAG_CALLBACK)));

        if (use_cb) {
            if (call_cb(ctx, cb, p, len, pos, is_write) < 0) {
                return -1;
            }
        } else if (!is_write) {
            memcpy(p, raw + pos, len);
        } else if (kind == SEG_HDR) {
            for (size_t i = 0; i < len; i++) {
                apply_byte(&raw[pos + i], (uint8_t)p[i],
                           hdr_byte_mask(pci, pos + i));
            }
        } else {
            for (size_t i = 0; i < len; i++) {
                apply_byte(&raw[pos + i], (uint8_t)p[i],
                           pci_cap_byte_mask(pci, cap, pos + i - cap->off));
            }
            if (pci_cap_written(ctx, cap, (const uint8_t *)p,
                                pos - cap->off, len) < 0) {
                return -1;
            }
        }
        pos = stop;
    }
    return (ssize_t)count;
}
