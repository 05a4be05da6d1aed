/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 the vfu authors. */

/*
 * Device regions: their description (REGION_INFO with the sparse-mmap cap
 * and the fd), accesses (REGION_READ, REGION_WRITE, REGION_WRITE_MULTI) and
 * ioeventfds (REGION_IO_FDS).
 */

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <linux/vfio.h>

#include "private.h"

_Static_assert(sizeof(struct vfio_user_region_access) == 16, "region access");
_Static_assert(sizeof(struct vfio_region_info) == 32, "region info");
_Static_assert(sizeof(struct vfio_user_write_multi_one) == 24, "write multi");

static bool
is_bar(int idx)
{
    return idx >= VFU_PCI_DEV_BAR0_REGION_IDX &&
           idx <= VFU_PCI_DEV_BAR5_REGION_IDX;
}

static bool
is_64bit_bar(const vfu_ctx_t *ctx, int idx)
{
    const struct vfu_region *r = &ctx->regions[idx];

    return is_bar(idx) && r->size != 0 && (r->flags & VFU_REGION_FLAG_64_BITS);
}

/*
 * The flags that only make sense for a PCI region of a given kind, and the
 * BAR slots a 64-bit BAR shares with its upper half. Returns 0, or -1 with
 * errno EINVAL.
 */
static int
check_pci_flags(vfu_ctx_t *ctx, int idx, size_t size, vfu_region_access_cb_t *cb,
                int flags)
{
    const int bar_only = VFU_REGION_FLAG_64_BITS | VFU_REGION_FLAG_PREFETCH;

    if (idx == VFU_PCI_DEV_CFG_REGION_IDX) {
        if ((flags & (VFU_REGION_FLAG_MEM | bar_only)) ||
            ((flags & VFU_REGION_FLAG_ALWAYS_CB) && cb == NULL)) {
            vfu_log(ctx, LOG_ERR, "config region: bad flags %#x or no "
                    "callback", flags);
            errno = EINVAL;
            return -1;
        }
        return 0;
    }
    if (size == 0) {
        return 0;   /* clearing a region is always allowed */
    }
    if ((flags & bar_only) &&
        (!is_bar(idx) || !(flags & VFU_REGION_FLAG_MEM))) {
        vfu_log(ctx, LOG_ERR, "region %d: 64-bit and prefetchable are for "
                "memory BARs", idx);
        errno = EINVAL;
        return -1;
    }
    if (!is_bar(idx)) {
        return 0;
    }
    if (flags & VFU_REGION_FLAG_64_BITS) {
        /* BAR0, 2 or 4, with the next slot free for the upper half. */
        if ((idx - VFU_PCI_DEV_BAR0_REGION_IDX) % 2 != 0 ||
            ctx->regions[idx + 1].size != 0) {
            vfu_log(ctx, LOG_ERR, "BAR%d cannot be 64-bit: odd, or BAR%d is "
                    "set up", idx, idx + 1);
            errno = EINVAL;
            return -1;
        }
    } else if (idx > VFU_PCI_DEV_BAR0_REGION_IDX && is_64bit_bar(ctx, idx - 1)) {
        vfu_log(ctx, LOG_ERR, "BAR%d is the upper half of 64-bit BAR%d", idx,
                idx - 1);
        errno = EINVAL;
        return -1;
    }
    return 0;
}

int
vfu_setup_region(vfu_ctx_t *ctx, int idx, size_t size,
                 vfu_region_access_cb_t *cb, int flags,
                 struct iovec *mmap_areas, uint32_t nr_mmap_areas,
                 int fd, uint64_t offset)
{
    struct vfu_region *r;
    struct iovec *areas = NULL;

    if (ctx == NULL || idx < 0 || (uint32_t)idx >= ctx->nr_regions ||
        (flags & ~VFU_REGION_FLAG_MASK) != 0 || !(flags & VFU_REGION_FLAG_RW) ||
        (nr_mmap_areas > 0 && (mmap_areas == NULL || fd < 0)) ||
        (mmap_areas != NULL && nr_mmap_areas == 0) ||
        (idx == VFU_PCI_DEV_CFG_REGION_IDX && fd >= 0) ||
        (fd >= 0 && offset > UINT64_MAX - size)) {
        errno = EINVAL;
        return -1;
    }
    if (ctx->dev_type == VFU_DEV_TYPE_PCI &&
        check_pci_flags(ctx, idx, size, cb, flags) < 0) {
        return -1;
    }
    for (uint32_t i = 0; i < nr_mmap_areas; i++) {
        uintptr_t start = (uintptr_t)mmap_areas[i].iov_base;
        if (mmap_areas[i].iov_len == 0 || start > size ||
            mmap_areas[i].iov_len > size - start) {
            errno = EINVAL;
            return -1;
        }
    }
    if (idx != VFU_PCI_DEV_CFG_REGION_IDX && size == 0 && fd >= 0) {
        errno = EINVAL;     /* nothing to map */
        return -1;
    }
    if (nr_mmap_areas > 0) {
        areas = malloc(nr_mmap_areas * sizeof(*areas));
        if (areas == NULL) {
            return -1;
        }
        memcpy(areas, mmap_areas, nr_mmap_areas * sizeof(*areas));
    }
    r = &ctx->regions[idx];
    free(r->mmap_areas);
    r->size = size;
    r->flags = flags;
    r->cb = cb;
    r->mmap_areas = areas;
    r->nr_mmap_areas = nr_mmap_areas;
    r->fd = fd;
    r->fd_offset = offset;
    return 0;
}

static size_t
region_size(const vfu_ctx_t *ctx, uint32_t idx)
{
    if (idx == VFU_PCI_DEV_CFG_REGION_IDX) {
        return vfu_pci_config_size(ctx);
    }
    return ctx->regions[idx].size;
}

void
vfu_regions_free(vfu_ctx_t *ctx)
{
    if (ctx->regions == NULL) {
        return;
    }
    for (uint32_t i = 0; i < ctx->nr_regions; i++) {
        struct vfu_region *r = &ctx->regions[i];
        while (r->ioeventfds != NULL) {
            struct vfu_ioeventfd *e = r->ioeventfds;
            r->ioeventfds = e->next;
            free(e);
        }
        free(r->mmap_areas);
    }
    free(ctx->regions);
    ctx->regions = NULL;
}

/* Reply storage that lives in the context and grows as needed, until the
 * client goes (vfu_scratch_release). */
void *
vfu_scratch(vfu_ctx_t *ctx, size_t size)
{
    if (size > ctx->scratch_size) {
        void *p = realloc(ctx->scratch, size);
        if (p == NULL) {
            errno = ENOMEM;
            return NULL;
        }
        ctx->scratch = p;
        ctx->scratch_size = size;
    }
    return ctx->scratch;
}

void
vfu_scratch_release(vfu_ctx_t *ctx)
{
    free(ctx->scratch);
    ctx->scratch = NULL;
    ctx->scratch_size = 0;
}

/* ---- REGION_INFO ---- */

int
vfu_handle_region_info(vfu_ctx_t *ctx, struct vfu_msg *msg)
{
    const struct vfio_region_info *in = msg->in;
    struct vfio_region_info *out;
    struct vfu_region *r;
    size_t need, caps = 0;
    bool mappable;

    if (msg->in_size < sizeof(*in) || in->argsz < sizeof(*in) ||
        in->index >= ctx->nr_regions) {
        errno = EINVAL;
        return -1;
    }
    r = &ctx->regions[in->index];
    /*
     * The fd goes with the reply only if the client takes fds (max_msg_fds
     * 0 says it takes none). Without it the region is described as not
     * mappable, with no sparse areas: the client uses REGION_READ/WRITE.
     */
    mappable = r->fd >= 0 && ctx->caps.max_msg_fds > 0;
    if (mappable && r->nr_mmap_areas > 0) {
        caps = sizeof(struct vfio_region_info_cap_sparse_mmap) +
               r->nr_mmap_areas * sizeof(struct vfio_region_sparse_mmap_area);
    }
    need = sizeof(*out) + caps;
    out = vfu_scratch(ctx, need);
    if (out == NULL) {
        return -1;
    }
    memset(out, 0, need);
    out->argsz = (uint32_t)need;
    out->index = in->index;
    out->size = region_size(ctx, in->index);
    if (out->size > 0) {
        if (r->flags & VFU_REGION_FLAG_READ || in->index == VFU_PCI_DEV_CFG_REGION_IDX) {
            out->flags |= VFIO_REGION_INFO_FLAG_READ;
        }
        if (r->flags & VFU_REGION_FLAG_WRITE || in->index == VFU_PCI_DEV_CFG_REGION_IDX) {
            out->flags |= VFIO_REGION_INFO_FLAG_WRITE;
        }
    }
    if (mappable) {
        out->flags |= VFIO_REGION_INFO_FLAG_MMAP;
        out->offset = r->fd_offset;
    }
    if (caps > 0 && in->argsz < need) {
        /* Too small for the cap chain: say how much is needed and send the
         * bare info, without the fd, which comes with the full reply. */
        return vfu_msg_reply_add(msg, out, sizeof(*out));
    }
    if (caps > 0) {
        struct vfio_region_info_cap_sparse_mmap *sp = (void *)(out + 1);

        out->flags |= VFIO_REGION_INFO_FLAG_CAPS;
        out->cap_offset = sizeof(*out);
        sp->header.id = VFIO_REGION_INFO_CAP_SPARSE_MMAP;
        sp->header.version = 1;
        sp->header.next = 0;
        sp->nr_areas = r->nr_mmap_areas;
        for (uint32_t i = 0; i < r->nr_mmap_areas; i++) {
            sp->areas[i].offset = (uintptr_t)r->mmap_areas[i].iov_base;
            sp->areas[i].size = r->mmap_areas[i].iov_len;
        }
    }
    if (mappable) {
        msg->out_fds = &r->fd;
        msg->nr_out_fds = 1;
    }
    return vfu_msg_reply_add(msg, out, need);
}

/* ---- accesses ---- */

ssize_t
vfu_region_access(vfu_ctx_t *ctx, uint32_t idx, char *buf, size_t count,
                  uint64_t offset, bool is_write)
{
    struct vfu_region *r = &ctx->regions[idx];
    ssize_t n;

    if (idx == VFU_PCI_DEV_CFG_REGION_IDX) {
        n = vfu_pci_config_access(ctx, buf, count, offset, is_write);
    } else if (r->cb != NULL) {
        errno = 0;
        n = r->cb(ctx, buf, count, (loff_t)offset, is_write);
        if (n < 0 && errno == 0) {
            errno = EIO;
        }
    } else if (r->fd >= 0) {
        /* No callback: the backing file is the region. */
        return is_write ? pwrite(r->fd, buf, count, (off_t)(r->fd_offset + offset))
                        : pread(r->fd, buf, count, (off_t)(r->fd_offset + offset));
    } else {
        errno = EINVAL;
        return -1;
    }
    if (n > 0 && (size_t)n > count) {
        /* A device claiming more than asked must not make us send bytes
         * past the buffer. */
        vfu_log(ctx, LOG_ERR, "region %u: callback returned %zd for %zu bytes",
                idx, n, count);
        errno = EIO;
        return -1;
    }
    return n;
}

/* Is [offset, offset + count) a legal access of region idx? */
static int
check_access(vfu_ctx_t *ctx, uint32_t idx, uint64_t offset, uint64_t count,
             bool is_write)
{
    const struct vfu_region *r;
    size_t size;

    if (idx >= ctx->nr_regions || count > VFU_DEFAULT_MAX_DATA_XFER) {
        errno = EINVAL;
        return -1;
    }
    r = &ctx->regions[idx];
    size = region_size(ctx, idx);
    if (offset > size || count > size - offset) {
        errno = EINVAL;
        return -1;
    }
    if (idx != VFU_PCI_DEV_CFG_REGION_IDX &&
        !(r->flags & (is_write ? VFU_REGION_FLAG_WRITE : VFU_REGION_FLAG_READ))) {
        errno = EPERM;
        return -1;
    }
    return 0;
}

int
vfu_handle_region_read(vfu_ctx_t *ctx, struct vfu_msg *msg)
{
    const struct vfio_user_region_access *in = msg->in;
    struct vfio_user_region_access *out;
    ssize_t n;

    if (msg->in_size != sizeof(*in)) {
        errno = EINVAL;
        return -1;
    }
    if (check_access(ctx, in->region, in->offset, in->count, false) < 0) {
        return -1;
    }
    out = vfu_scratch(ctx, sizeof(*out) + in->count);
    if (out == NULL) {
        return -1;
    }
    *out = *in;
    /*
     * The scratch buffer holds earlier replies; a callback that reports
     * bytes it did not write must send zeroes, not those.
     */
    memset(out->data, 0, in->count);
    /* An empty access succeeds without troubling the device. */
    n = in->count == 0 ? 0 :
        vfu_region_access(ctx, in->region, (char *)out->data, in->count,
                          in->offset, false);
    if (n < 0) {
        return -1;
    }
    out->count = (uint32_t)n;
    return vfu_msg_reply_add(msg, out, sizeof(*out) + (size_t)n);
}

int
vfu_handle_region_write(vfu_ctx_t *ctx, struct vfu_msg *msg)
{
    struct vfio_user_region_access *in = msg->in;
    struct vfio_user_region_access *out;
    ssize_t n;

    if (msg->in_size < sizeof(*in) || msg->in_size - sizeof(*in) != in->count) {
        errno = EINVAL;
        return -1;
    }
    if (check_access(ctx, in->region, in->offset, in->count, true) < 0) {
        return -1;
    }
    n = in->count == 0 ? 0 :
        vfu_region_access(ctx, in->region, (char *)in->data, in->count,
                          in->offset, true);
    if (n < 0 || (out = vfu_scratch(ctx, sizeof(*out))) == NULL) {
        return -1;
    }
    *out = *in;
    out->count = (uint32_t)n;
    return vfu_msg_reply_add(msg, out, sizeof(*out));
}

int
vfu_handle_region_write_multi(vfu_ctx_t *ctx, struct vfu_msg *msg)
{
    struct vfio_user_write_multi *in = msg->in;
    struct vfio_user_write_multi *out = vfu_scratch(ctx, sizeof(*out));

    if (out == NULL) {
        return -1;
    }
    if (msg->in_size < sizeof(*in) || in->wr_cnt == 0 ||
        in->wr_cnt > VFIO_USER_MULTI_MAX ||
        msg->in_size != sizeof(*in) + in->wr_cnt * sizeof(in->wrs[0])) {
        errno = EINVAL;
        return -1;
    }
    /*
     * Check every entry first (size, region, bounds, permission): a bad
     * one refuses the batch before anything is written. Once writing, only
     * the device can fail an entry: those before it stay applied (writes
     * cannot be taken back), the rest are not made, and the error reply
     * carries the device's errno; the log says which entry it was.
     */
    for (uint64_t i = 0; i < in->wr_cnt; i++) {
        struct vfio_user_write_multi_one *w = &in->wrs[i];
        if (w->count == 0 || w->count > VFIO_USER_MULTI_DATA ||
            check_access(ctx, w->region, w->offset, w->count, true) < 0) {
            errno = EINVAL;
            return -1;
        }
    }
    out->wr_cnt = 0;
    for (uint64_t i = 0; i < in->wr_cnt; i++) {
        struct vfio_user_write_multi_one *w = &in->wrs[i];
        if (vfu_region_access(ctx, w->region, (char *)w->data, w->count,
                              w->offset, true) < 0) {
            vfu_log_errno(ctx, LOG_ERR, errno, "REGION_WRITE_MULTI: entry %"
                          PRIu64 " of %" PRIu64 " failed, the %" PRIu64
                          " before it were applied", i, (uint64_t)in->wr_cnt, i);
            return -1;
        }
        out->wr_cnt++;
    }
    return vfu_msg_reply_add(msg, out, sizeof(*out));
}

/* ---- ioeventfds ---- */

int
vfu_create_ioeventfd(vfu_ctx_t *ctx, uint32_t idx, int fd, size_t gpa_offset,
                     uint32_t size, uint32_t flags, uint64_t datamatch,
                     int shadow_fd, size_t shadow_offset)
{
    struct vfu_ioeventfd *e;
    struct vfu_region *r;

    if (ctx == NULL || idx >= ctx->nr_regions || fd < -1 || shadow_fd >= 0 ||
        (size != 1 && size != 2 && size != 4 && size != 8)) {
        errno = EINVAL;
        return -1;
    }
    r = &ctx->regions[idx];
    if (gpa_offset > r->size || size > r->size - gpa_offset) {
        errno = EINVAL;
        return -1;
    }
    e = calloc(1, sizeof(*e));
    if (e == NULL) {
        return -1;
    }
    e->fd = fd;
    e->offset = gpa_offset;
    e->size = size;
    e->flags = flags;
    e->datamatch = datamatch;
    e->shadow_fd = shadow_fd;
    e->shadow_offset = shadow_offset;
    e->next = r->ioeventfds;
    r->ioeventfds = e;
    r->nr_ioeventfds++;
    return 0;
}

/*
 * Where fd sits in fds[0..*n), appending it if new: the reply sends each
 * distinct fd once, however many ioeventfds share it.
 */
static uint32_t
fd_slot(int *fds, uint32_t *n, int fd)
{
    for (uint32_t i = 0; i < *n; i++) {
        if (fds[i] == fd) {
            return i;
        }
    }
    fds[*n] = fd;
    return (*n)++;
}

int
vfu_handle_region_io_fds(vfu_ctx_t *ctx, struct vfu_msg *msg)
{
    const struct vfio_user_region_io_fds_request *in = msg->in;
    struct vfio_user_region_io_fds_reply *out;
    struct vfu_region *r;
    size_t need, sub = sizeof(out->sub_regions[0]);
    uint32_t n = 0, nr_fds = 0;

    if (msg->in_size != sizeof(*in) || in->argsz < sizeof(*out) ||
        in->index >= ctx->nr_regions || in->flags != 0 || in->count != 0) {
        errno = EINVAL;
        return -1;
    }
    r = &ctx->regions[in->index];
    if (region_size(ctx, in->index) == 0) {
        vfu_log(ctx, LOG_ERR, "REGION_IO_FDS: region %u is not set up",
                in->index);
        errno = EINVAL;
        return -1;
    }
    need = sizeof(*out) + r->nr_ioeventfds * sub;
    out = vfu_scratch(ctx, need + r->nr_ioeventfds * sizeof(int));
    if (out == NULL) {
        return -1;
    }
    memset(out, 0, need);
    out->argsz = (uint32_t)need;
    out->index = in->index;
    out->count = r->nr_ioeventfds;
    if (in->argsz < need) {
        return vfu_msg_reply_add(msg, out, sizeof(*out));
    }
    int *fds = (int *)((char *)out + need);
    for (struct vfu_ioeventfd *e = r->ioeventfds; e != NULL; e = e->next, n++) {
        struct vfio_user_sub_region_ioeventfd *s = &out->sub_regions[n].ioeventfd;
        s->gpa_offset = e->offset;
        s->size = e->size;
        /* An ioeventfd without an fd is still described; it has none. */
        s->fd_index = e->fd >= 0 ? fd_slot(fds, &nr_fds, e->fd) : UINT32_MAX;
        s->type = VFIO_USER_IO_FD_TYPE_IOEVENTFD;
        s->flags = e->flags;
        s->datamatch = e->datamatch;
    }
    if (nr_fds > VFU_DEFAULT_MAX_FDS || nr_fds > ctx->caps.max_msg_fds) {
        vfu_log(ctx, LOG_ERR, "REGION_IO_FDS: %u fds are more than a message "
                "carries", nr_fds);
        errno = ENOSPC;
        return -1;
    }
    msg->out_fds = fds;
    msg->nr_out_fds = nr_fds;
    return vfu_msg_reply_add(msg, out, need);
}
