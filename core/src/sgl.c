/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 the vfu authors. */

/*
 * Scatter/gather access to client memory.
 *
 * Threads. vfu_addr_to_sgl(), vfu_sgl_get(), vfu_sgl_put(), vfu_sgl_read(),
 * vfu_sgl_write() and vfu_sgl_mark_dirty() may be called from any thread
 * while another runs vfu_run_ctx(). They take no lock, which is sound
 * because of this contract:
 *  - the map table changes only on DMA_MAP/DMA_UNMAP (and client loss),
 *    which the loop handles only after the device's quiesce callback said
 *    the device no longer uses scatter/gather entries outside callbacks; so
 *    while device threads look maps up, nobody changes them;
 *  - a device drops what it got with vfu_sgl_get() by the time its
 *    unregister callback returns, before the map goes (get and put are
 *    plain reads: nothing is counted, so they cost no atomic operation);
 *  - dirty bits are set with atomic fetch-or and read with atomic
 *    fetch-and (see dirty.c), and logging may start or stop at any time;
 *  - message-based reads and writes go through vfu_conn_call(), which is
 *    thread-safe; on the main socket the loop hands each reply to its
 *    caller, on the twin socket (when negotiated) the callers read their
 *    replies among themselves and the loop is not involved.
 * The only shared memory written on lookups, the translation cache of the
 * map table, is written with relaxed atomics and checked on every read.
 */

#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "dma_internal.h"
#include "tran_sock.h"

size_t
dma_sg_size(void)
{
    return sizeof(struct dma_sg);
}

/*
 * An entry's region is its map's slot plus one, so that no live entry
 * names region 0 (what a zeroed entry holds).
 */
static struct dma_slot *
sg_map(vfu_ctx_t *ctx, const dma_sg_t *sg)
{
    struct dma_table *t = ctx->dma;
    struct dma_slot *m;
    uint64_t span;

    if (sg->region <= 0 || (unsigned)sg->region - 1 >= t->nr_slots) {
        return NULL;
    }
    m = &t->slots[sg->region - 1];
    if (m->prot == 0 || m->iova != (uint64_t)(uintptr_t)sg->dma_addr) {
        return NULL;
    }
    span = m->last - m->iova;       /* size - 1 */
    if (sg->length == 0 || sg->offset > span ||
        sg->length - 1 > span - sg->offset) {
        return NULL;
    }
    return m;
}

/* Fill sg with [cur, cur + len) of slot m, which holds all of it. */
static void
sg_fill(vfu_ctx_t *ctx, dma_sg_t *sg, const struct dma_slot *m, uint64_t cur,
        uint64_t len, int prot)
{
    sg->dma_addr = (vfu_dma_addr_t)(uintptr_t)m->iova;
    sg->region = (int)(m - ctx->dma->slots) + 1;
    sg->offset = cur - m->iova;
    sg->length = len;
    sg->writeable = (prot & PROT_WRITE) != 0;
}

int
vfu_addr_to_sgl(vfu_ctx_t *ctx, vfu_dma_addr_t dma_addr, size_t len,
                dma_sg_t *sgl, size_t max_nr_sgs, int prot)
{
    uint64_t cur = (uint64_t)(uintptr_t)dma_addr, left = len;
    const struct dma_slot *m;
    size_t n = 0;

    if (ctx == NULL || ctx->dma == NULL || len == 0 ||
        (prot & ~(PROT_READ | PROT_WRITE)) != 0 ||
        (sgl == NULL && max_nr_sgs != 0)) {
        errno = EINVAL;
        return -1;
    }
    if (left - 1 > UINT64_MAX - cur) {
        errno = ENOENT;     /* runs past the top of the address space */
        return -1;
    }
    m = dma_table_lookup_slot(ctx->dma, cur);
    /* The usual case first: all of it inside one map. */
    if (m != NULL && max_nr_sgs > 0 && (prot & ~(int)m->prot) == 0 &&
        left - 1 <= m->last - cur) {
        sg_fill(ctx, sgl, m, cur, left, prot);
        return 1;
    }
    for (;;) {
        uint64_t chunk;

        if (m == NULL) {
            errno = ENOENT;
            return -1;
        }
        if ((prot & ~(int)m->prot) != 0) {
            errno = EACCES;
            return -1;
        }
        chunk = left - 1 <= m->last - cur ? left : m->last - cur + 1;
        if (n < max_nr_sgs) {
            sg_fill(ctx, &sgl[n], m, cur, chunk, prot);
        }
        n++;
        cur += chunk;       /* may wrap to 0 exactly when left hits 0 */
        left -= chunk;
        if (left == 0) {
            break;
        }
        m = dma_table_lookup_slot(ctx->dma, cur);
    }
    if (n > (size_t)INT_MAX - 1) {
        errno = EINVAL;
        return -1;
    }
    if (n > max_nr_sgs) {
        errno = 0;
        return -(int)(n + 1);
    }
    return (int)n;
}

int
vfu_sgl_get(vfu_ctx_t *ctx, dma_sg_t *sgl, struct iovec *iov, size_t cnt,
            int flags)
{
    if (ctx == NULL || ctx->dma == NULL || ctx->dma_unregister_cb == NULL ||
        flags != 0 || (cnt > 0 && (sgl == NULL || iov == NULL))) {
        errno = EINVAL;
        return -1;
    }
    for (size_t i = 0; i < cnt; i++) {
        const struct dma_slot *m = sg_map(ctx, &sgl[i]);

        if (m == NULL) {
            errno = EINVAL;
            return -1;
        }
        if (m->vaddr == NULL) {
            errno = EFAULT;
            return -1;
        }
        if (sgl[i].writeable && !(m->prot & PROT_WRITE)) {
            errno = EACCES;
            return -1;
        }
        iov[i].iov_base = m->vaddr + sgl[i].offset;
        iov[i].iov_len = sgl[i].length;
    }
    return 0;
}

static void
mark_sg(vfu_ctx_t *ctx, const dma_sg_t *sg)
{
    if (sg->writeable) {
        dirty_mark(ctx, (uint64_t)(uintptr_t)sg->dma_addr + sg->offset,
                   sg->length);
    }
}

void
vfu_sgl_mark_dirty(vfu_ctx_t *ctx, dma_sg_t *sgl, size_t cnt)
{
    if (ctx == NULL || ctx->dma == NULL || sgl == NULL) {
        return;
    }
    for (size_t i = 0; i < cnt; i++) {
        if (sg_map(ctx, &sgl[i]) != NULL) {
            mark_sg(ctx, &sgl[i]);
        }
    }
}

void
vfu_sgl_put(vfu_ctx_t *ctx, dma_sg_t *sgl, struct iovec *iov, size_t cnt)
{
    if (ctx == NULL || ctx->dma == NULL || sgl == NULL) {
        return;
    }
    for (size_t i = 0; i < cnt; i++) {
        struct dma_slot *m = sg_map(ctx, &sgl[i]);

        if (m == NULL) {
            vfu_log(ctx, LOG_ERR, "vfu_sgl_put: entry %zu is not mapped", i);
            continue;
        }
        mark_sg(ctx, &sgl[i]);
    }
}

bool
vfu_sg_is_mappable(vfu_ctx_t *ctx, dma_sg_t *sg)
{
    int saved = errno;
    struct dma_slot *m;

    if (ctx == NULL || ctx->dma == NULL || sg == NULL) {
        return false;
    }
    m = sg_map(ctx, sg);
    errno = saved;
    return m != NULL && m->vaddr != NULL;
}

/*
 * pread()/pwrite() all of [off, off + len) of f, for FILE_IO maps. Bytes
 * past the end the file had at its latest map are refused (EFAULT) before
 * any is moved: a write there would grow the client's file.
 */
static int
dma_by_file(const struct dma_file *f, uint64_t off, uint64_t len, char *data,
            bool is_write)
{
    int fd = f->fd;

    if (off > f->file_end || len > f->file_end - off) {
        errno = EFAULT;
        return -1;
    }
    while (len > 0) {
        size_t n = len < (uint64_t)SSIZE_MAX ? (size_t)len : SSIZE_MAX;
        ssize_t r = is_write ? pwrite(fd, data, n, (off_t)off)
                             : pread(fd, data, n, (off_t)off);

        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r < 0) {
            return -1;
        }
        if (r == 0) {
            errno = EFAULT;     /* the file ends inside the map */
            return -1;
        }
        data += r;
        off += (uint64_t)r;
        len -= (uint64_t)r;
    }
    return 0;
}

static int
sgl_rw(vfu_ctx_t *ctx, dma_sg_t *sg, size_t cnt, void *data, int flags,
       bool is_write)
{
    const struct dma_map *map;
    struct dma_slot *m;

    if (cnt != 1) {
        errno = ENOTSUP;
        return -1;
    }
    if (ctx == NULL || ctx->dma == NULL || sg == NULL || data == NULL ||
        (flags & ~VFU_SGL_DIRECT_ACCESS) != 0 ||
        (m = sg_map(ctx, sg)) == NULL) {
        errno = EINVAL;
        return -1;
    }
    if (is_write && (!sg->writeable || !(m->prot & PROT_WRITE))) {
        errno = EPERM;
        return -1;
    }
    map = (flags & VFU_SGL_DIRECT_ACCESS) && m->vaddr == NULL
          ? ctx->dma->maps[sg->region - 1] : NULL;
    if (m->vaddr != NULL && (flags & VFU_SGL_DIRECT_ACCESS)) {
        char *p = m->vaddr + sg->offset;
        if (is_write) {
            memcpy(p, data, sg->length);
        } else {
            memcpy(data, p, sg->length);
        }
    } else if (map != NULL && map->file != NULL && map->file->fd >= 0) {
        if (dma_by_file(map->file, map->file_off + sg->offset, sg->length,
                        data, is_write) < 0) {
            return -1;
        }
    } else if (dma_by_message(ctx, (uint64_t)(uintptr_t)sg->dma_addr + sg->offset,
                              sg->length, data, is_write) < 0) {
        return -1;
    }
    if (is_write) {
        mark_sg(ctx, sg);
    }
    return 0;
}

int
vfu_sgl_read(vfu_ctx_t *ctx, dma_sg_t *sg, size_t cnt, void *data, int flags)
{
    return sgl_rw(ctx, sg, cnt, data, flags, false);
}

int
vfu_sgl_write(vfu_ctx_t *ctx, dma_sg_t *sgl, size_t cnt, void *data, int flags)
{
    return sgl_rw(ctx, sgl, cnt, data, flags, true);
}
