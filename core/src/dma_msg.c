/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 the vfu authors. */

/*
 * Client memory reached by message: VFIO_USER_DMA_READ and DMA_WRITE, in
 * pieces of at most max_data_xfer_size and of what a reply may bring
 * (piece_size()), on the twin socket when there is one, else on the main
 * socket.
 *
 * Two layouts are in use for these messages. The spec's puts an 8-byte
 * address and an 8-byte count before the data, and the client's reply to a
 * write echoes them. QEMU 10.2 (hw/vfio-user) reads and writes the count in
 * 4 bytes, so its data starts at byte 12 (a read reply is still 16 + count
 * bytes long, ending in 4 bytes of padding), and it answers a write with an
 * empty reply. Sent to QEMU in the spec's layout, a write lands 4 bytes
 * off; read in the spec's layout, QEMU's reply comes back shifted.
 *
 * So the layout is learnt per client, from what its replies show:
 *  - a write reply without payload: QEMU's;
 *  - a write reply with the address and count: the spec's;
 *  - a read reply whose bytes 12-15 are not zero: QEMU's (they are the
 *    high half of a count below 4 GiB in the spec's);
 *  - a read reply whose last 4 bytes are not zero: the spec's (QEMU's
 *    padding is zero).
 * Until one of these is seen, a write goes out in the spec's layout and is
 * sent again in QEMU's if the reply says so (the bytes end right either
 * way), and a read whose reply fits both layouts is read again 4 bytes at
 * a time: for 4 bytes or fewer both layouts give the same answer.
 */

#include <stdlib.h>
#include <string.h>

#include "dma_internal.h"
#include "tran_sock.h"

enum { LAYOUT_UNKNOWN, LAYOUT_SPEC, LAYOUT_COUNT32 };

/* The header of a request or reply, in both layouts. */
#define SPEC_HDR    16u
#define COUNT32_HDR 12u

/*
 * Unless the client is known to follow the spec, a message moves no more
 * than one 4 KiB page: QEMU 10.2 aborts on some big DMA replies (seen at
 * 256 KiB, more than its socket takes at once), and a page never spans two
 * of its memory regions.
 */
#define QEMU_PIECE  4096u

struct dma_msg {
    vfu_ctx_t *ctx;
    struct vfu_conn *via;
    vfu_conn_request_fn_t *on_req;
    char *buf;                      /* a reply: SPEC_HDR + one piece */
};

static int
layout(const vfu_ctx_t *ctx)
{
    return __atomic_load_n(&ctx->dma_msg_layout, __ATOMIC_RELAXED);
}

static void
learn(vfu_ctx_t *ctx, int l)
{
    int unknown = LAYOUT_UNKNOWN;

    if (__atomic_compare_exchange_n(&ctx->dma_msg_layout, &unknown, l, false,
                                    __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
        vfu_log(ctx, LOG_INFO, "client's DMA_READ/WRITE layout: %s",
                l == LAYOUT_SPEC ? "the spec's" : "QEMU 10.2's (4-byte count)");
    }
}

static uint64_t
get_u64(const char *p)
{
    uint64_t v;

    memcpy(&v, p, sizeof(v));
    return v;
}

static uint32_t
get_u32(const char *p)
{
    uint32_t v;

    memcpy(&v, p, sizeof(v));
    return v;
}

static int
malformed(struct dma_msg *d, bool is_write, uint64_t addr, uint64_t n)
{
    vfu_log(d->ctx, LOG_ERR, "DMA_%s %#lx+%#lx: malformed reply",
            is_write ? "WRITE" : "READ", (unsigned long)addr, (unsigned long)n);
    errno = EINVAL;
    return -1;
}

static int
call(struct dma_msg *d, uint16_t cmd, const struct iovec *iov, int iovcnt,
     size_t *rsize)
{
    return vfu_conn_call(d->via, cmd, iov, iovcnt, NULL, 0, d->buf, rsize,
                         d->on_req, d->ctx);
}

/* Read n bytes at addr into dst, n at most a piece. */
static int
read_piece(struct dma_msg *d, uint64_t addr, uint64_t n, char *dst)
{
    struct vfio_user_dma_region_access req = { .addr = addr, .count = n };
    struct iovec iov = { &req, sizeof(req) };
    size_t rsize = SPEC_HDR + n;
    const char *p = d->buf;
    int l = layout(d->ctx);

    if (call(d, VFIO_USER_DMA_READ, &iov, 1, &rsize) < 0) {
        return -1;
    }
    if (rsize < COUNT32_HDR || get_u64(p) != addr || get_u32(p + 8) != n) {
        return malformed(d, false, addr, n);
    }
    if (l == LAYOUT_UNKNOWN && rsize == COUNT32_HDR + n) {
        l = LAYOUT_COUNT32;         /* no room for the spec's header */
        learn(d->ctx, l);
    } else if (rsize != SPEC_HDR + n) {
        return malformed(d, false, addr, n);
    }
    if (l == LAYOUT_UNKNOWN) {
        if (get_u32(p + 12) != 0) {
            l = LAYOUT_COUNT32;
        } else if (n >= 4 && get_u32(p + SPEC_HDR + n - 4) != 0) {
            l = LAYOUT_SPEC;
        } else if (n <= 4) {
            /* One of the two spans holds the data, the other zeros. */
            for (uint64_t i = 0; i < n; i++) {
                dst[i] = p[COUNT32_HDR + i] | p[SPEC_HDR + i];
            }
            return 0;
        } else {
            for (uint64_t off = 0; off < n; off += 4) {
                uint64_t k = n - off < 4 ? n - off : 4;
                if (layout(d->ctx) != LAYOUT_UNKNOWN) {
                    return read_piece(d, addr + off, n - off, dst + off);
                }
                if (read_piece(d, addr + off, k, dst + off) < 0) {
                    return -1;
                }
            }
            return 0;
        }
        learn(d->ctx, l);
    } else if (l == LAYOUT_SPEC && get_u32(p + 12) != 0) {
        return malformed(d, false, addr, n);
    }
    memcpy(dst, p + (l == LAYOUT_SPEC ? SPEC_HDR : COUNT32_HDR), n);
    return 0;
}

/* Write n bytes of src at addr, n at most a piece. */
static int
write_piece(struct dma_msg *d, uint64_t addr, uint64_t n, char *src)
{
    struct vfio_user_dma_region_access req = { .addr = addr, .count = n };
    static const char pad[4];
    /* QEMU's takes its data at byte 12 but wants 16 + count bytes. */
    struct iovec spec[2] = { { &req, SPEC_HDR }, { src, n } };
    struct iovec count32[3] = { { &req, COUNT32_HDR }, { src, n },
                                { (void *)pad, sizeof(pad) } };
    size_t rsize = SPEC_HDR;
    int l = layout(d->ctx);

    if (call(d, VFIO_USER_DMA_WRITE, l == LAYOUT_COUNT32 ? count32 : spec,
             l == LAYOUT_COUNT32 ? 3 : 2, &rsize) < 0) {
        return -1;
    }
    if (rsize == 0) {
        if (l == LAYOUT_UNKNOWN) {
            /* QEMU's: it took our count's high half for data; again. */
            learn(d->ctx, LAYOUT_COUNT32);
            return write_piece(d, addr, n, src);
        }
        return 0;
    }
    if (rsize < sizeof(req.addr) || get_u64(d->buf) != addr) {
        return malformed(d, true, addr, n);
    }
    if (l == LAYOUT_UNKNOWN) {
        learn(d->ctx, LAYOUT_SPEC);
    }
    return 0;
}

/*
 * The most data one message may carry: the client's max_data_xfer_size
 * bounds what we send it, and what we can receive on via bounds the
 * replies: a DMA_READ reply is the header, the 16-byte access header and
 * the data. The client may negotiate up to 64 MiB while the main socket
 * takes 1 MiB + 32 bytes: a reply bigger than that would never be read,
 * and the call would time out.
 */
static uint64_t
piece_size(const vfu_ctx_t *ctx, const struct vfu_conn *via)
{
    uint64_t n = ctx->caps.max_data_xfer_size;
    uint64_t rx = via->max_msg_size > VFU_HDR_SIZE + SPEC_HDR
                  ? via->max_msg_size - VFU_HDR_SIZE - SPEC_HDR : 4;

    if (n == 0 || n > VFU_MAX_DATA_XFER_LIMIT) {
        n = VFU_DEFAULT_MAX_DATA_XFER;
    }
    return n < rx ? n : rx;
}

int
dma_by_message(vfu_ctx_t *ctx, uint64_t addr, uint64_t len, char *data,
               bool is_write)
{
    struct dma_msg d = { .ctx = ctx };
    uint64_t piece;
    int ret = 0, saved;

    /* Held for the whole exchange: a lost client waits for us to leave. */
    pthread_rwlock_rdlock(&ctx->conn_lock);
    if (ctx->conn == NULL) {
        pthread_rwlock_unlock(&ctx->conn_lock);
        errno = ENOTCONN;
        return -1;
    }
    /* With a twin socket our requests go there, apart from the client's. */
    d.via = ctx->twin != NULL ? ctx->twin : ctx->conn;
    d.on_req = d.via != ctx->conn ? vfu_twin_on_request : NULL;
    piece = piece_size(ctx, d.via);
    d.buf = malloc(SPEC_HDR + (is_write ? 0 : piece));
    if (d.buf == NULL) {
        pthread_rwlock_unlock(&ctx->conn_lock);
        errno = ENOMEM;
        return -1;
    }
    for (uint64_t done = 0; done < len && ret == 0;) {
        uint64_t n = len - done < piece ? len - done : piece;
        if (layout(ctx) != LAYOUT_SPEC) {
            uint64_t in_page = QEMU_PIECE - ((addr + done) & (QEMU_PIECE - 1));
            n = n < in_page ? n : in_page;
        }
        ret = is_write ? write_piece(&d, addr + done, n, data + done)
                       : read_piece(&d, addr + done, n, data + done);
        done += n;
    }
    saved = errno;
    pthread_rwlock_unlock(&ctx->conn_lock);
    free(d.buf);
    errno = saved;
    return ret;
}
