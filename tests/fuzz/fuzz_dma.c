/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 the vfu authors. */

/*
 * DMA map/unmap/dirty-logging sequences against the handlers themselves, no
 * socket: each input is a list of operations, each an opcode byte followed
 * by the fields it needs (missing bytes read as zero). Maps come with a
 * memfd of a fuzzed size, an fd of the wrong type, an fd already closed, or
 * none. Between operations the device side looks the client memory up and
 * touches it through vfu_addr_to_sgl/vfu_sgl_get, so a table entry that
 * outlives or overstates its mapping shows up as a crash. The table is
 * emptied after every input so that inputs replay alike.
 */

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include "dma_internal.h"
#include "fuzz_device.h"
#include "fuzz_input.h"
#include "private.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Addresses mostly in a small window so that operations meet each other,
 * sometimes anywhere (wrap and edge cases). */
static uint64_t
take_addr(struct in *in)
{
    uint8_t mode = (uint8_t)take(in, 1);

    if (mode < 200) {
        return (uint64_t)(mode & 0x3f) << 12;
    }
    return take(in, 8);
}

static uint64_t
take_len(struct in *in)
{
    uint8_t mode = (uint8_t)take(in, 1);

    if (mode < 200) {
        return (uint64_t)(mode & 0x1f) << 12;
    }
    return take(in, 8);
}

/* Call a handler on a private copy of the payload (so reads past its end
 * are caught), then close whatever fds it left. */
static int
call(vfu_ctx_t *ctx, vfu_cmd_handler_t *h, uint16_t cmd, const void *p,
     size_t len, int fd)
{
    struct vfu_msg msg;
    void *copy = malloc(len > 0 ? len : 1);
    int rc;

    memset(&msg, 0, sizeof(msg));
    memcpy(copy, p, len);
    msg.hdr.cmd = cmd;
    msg.hdr.msg_size = (uint32_t)(VFU_HDR_SIZE + len);
    msg.in = copy;
    msg.in_size = len;
    if (fd >= 0) {
        msg.fds[0] = fd;
        msg.nr_fds = 1;
    }
    if (vfu_migration_check_cmd(ctx, cmd) < 0) {
        rc = -1;
    } else {
        rc = h(ctx, &msg);
    }
    vfu_msg_close_fds(&msg);
    free(copy);
    return rc;
}

static int
make_fd(struct in *in)
{
    uint8_t kind = (uint8_t)take(in, 1);
    int fd;

    switch (kind % 5) {
    case 0:
        return -1;
    case 1:
        return eventfd(0, EFD_CLOEXEC);
    case 2:
        /* A closed fd: a number nothing is open on. */
        fd = eventfd(0, EFD_CLOEXEC);
        if (fd >= 0) {
            close(fd);
        }
        return fd;
    default:
        fd = memfd_create("fuzz-dma", MFD_CLOEXEC);
        if (fd >= 0 && ftruncate(fd, (off_t)((take(in, 1) & 0x7f) << 12)) < 0) {
            close(fd);
            return -1;
        }
        return fd;
    }
}

static void
op_map(vfu_ctx_t *ctx, struct in *in)
{
    struct vfio_user_dma_map req = {
        .argsz = sizeof(req),
    };
    uint8_t f = (uint8_t)take(in, 1);

    req.flags = f & 0x80 ? (uint32_t)take(in, 4) : (uint32_t)(f & 3);
    req.addr = take_addr(in);
    req.size = take_len(in);
    req.offset = f & 0x40 ? take(in, 8) : (take(in, 1) & 3) << 12;
    if (f & 0x20) {
        req.argsz = (uint32_t)take(in, 4);
    }
    call(ctx, vfu_handle_dma_map, VFIO_USER_DMA_MAP, &req,
         f & 0x10 ? take(in, 1) % (sizeof(req) + 1) : sizeof(req),
         make_fd(in));
}

static void
op_unmap(vfu_ctx_t *ctx, struct in *in)
{
    struct vfio_user_dma_unmap u;
    struct vfio_user_bitmap b;
    uint8_t buf[sizeof(u) + sizeof(b)];
    uint8_t f = (uint8_t)take(in, 1);
    size_t len = sizeof(u);

    memset(&u, 0, sizeof(u));
    memset(&b, 0, sizeof(b));
    u.argsz = sizeof(u);
    u.flags = f & 3;
    u.addr = take_addr(in);
    u.size = take_len(in);
    if (u.flags & VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP) {
        b.pgsize = 4096ull << (take(in, 1) & 3);
        b.size = f & 0x80 ? take(in, 8) : take(in, 2);
        u.argsz = (uint32_t)(sizeof(buf) + b.size);
        len = sizeof(buf);
    }
    if (f & 0x40) {
        u.argsz = (uint32_t)take(in, 4);
    }
    if (f & 0x20) {
        len = take(in, 1) % (sizeof(buf) + 1);
    }
    memcpy(buf, &u, sizeof(u));
    memcpy(buf + sizeof(u), &b, sizeof(b));
    call(ctx, vfu_handle_dma_unmap, VFIO_USER_DMA_UNMAP, buf, len, -1);
}

/* DEVICE_FEATURE for DMA logging: start with ranges, stop, or report. */
static void
op_logging(vfu_ctx_t *ctx, struct in *in)
{
    uint8_t buf[16 + 16 + 8 * 16];
    uint8_t f = (uint8_t)take(in, 1);
    struct vfio_user_device_feature h;
    size_t len = sizeof(h);
    uint32_t index = 6 + f % 3;             /* START, STOP, REPORT */

    h.flags = index | (index == 8 ? VFIO_DEVICE_FEATURE_GET
                                  : VFIO_DEVICE_FEATURE_SET);
    if (f & 0x80) {
        h.flags ^= (uint32_t)take(in, 4);
    }
    if (index == 6) {
        uint64_t pgsize = 4096ull << (take(in, 1) & 7);
        uint32_t nr = (uint32_t)take(in, 1) % 9, zero = 0;

        memcpy(buf + len, &pgsize, 8);
        memcpy(buf + len + 8, &nr, 4);
        memcpy(buf + len + 12, &zero, 4);
        len += 16;
        for (uint32_t i = 0; i < nr; i++) {
            uint64_t r[2] = { take_addr(in), take_len(in) };
            memcpy(buf + len, r, sizeof(r));
            len += sizeof(r);
        }
    } else if (index == 8) {
        uint64_t r[3] = { take_addr(in), take_len(in),
                          4096ull << (take(in, 1) & 7) };
        memcpy(buf + len, r, sizeof(r));
        len += sizeof(r);
    }
    h.argsz = (uint32_t)(len + (f & 0x40 ? take(in, 4) : 4096));
    memcpy(buf, &h, sizeof(h));
    if (f & 0x20) {
        len = take(in, 1) % (len + 1);
    }
    call(ctx, vfu_handle_device_feature, VFIO_USER_DEVICE_FEATURE, buf, len,
         -1);
}

/* The device's view: look a range up and touch every byte it maps. */
static void
op_sgl(vfu_ctx_t *ctx, struct in *in)
{
    enum { MAX_SG = 4 };
    char sgbuf[MAX_SG * 64];
    struct iovec iov[MAX_SG];
    dma_sg_t *sg = (dma_sg_t *)sgbuf;
    uint64_t addr = take_addr(in);
    size_t len = (size_t)(take(in, 2) & 0x3fff);
    int prot = (take(in, 1) & 1) ? PROT_READ | PROT_WRITE : PROT_READ;
    int n;

    if (dma_sg_size() > 64) {
        abort();
    }
    n = vfu_addr_to_sgl(ctx, (vfu_dma_addr_t)(uintptr_t)addr, len, sg, MAX_SG, prot);
    if (n <= 0 || n > MAX_SG) {
        return;
    }
    if (vfu_sgl_get(ctx, sg, iov, (size_t)n, 0) < 0) {
        return;
    }
    for (int i = 0; i < n; i++) {
        volatile char *b = iov[i].iov_base;
        for (size_t j = 0; j < iov[i].iov_len; j += 512) {
            char c = b[j];
            if (prot & PROT_WRITE) {
                b[j] = c;
            }
        }
        if (iov[i].iov_len > 0) {
            (void)b[iov[i].iov_len - 1];
        }
    }
    if (prot & PROT_WRITE) {
        vfu_sgl_mark_dirty(ctx, sg, (size_t)n);
    }
    vfu_sgl_put(ctx, sg, iov, (size_t)n);
}

/* Raw payload to one of the handlers. */
static void
op_raw(vfu_ctx_t *ctx, struct in *in)
{
    uint8_t which = (uint8_t)take(in, 1);
    uint8_t buf[256];
    size_t len = (size_t)take(in, 1);

    for (size_t i = 0; i < len; i++) {
        buf[i] = (uint8_t)take(in, 1);
    }
    switch (which % 3) {
    case 0:
        call(ctx, vfu_handle_dma_map, VFIO_USER_DMA_MAP, buf, len,
             make_fd(in));
        break;
    case 1:
        call(ctx, vfu_handle_dma_unmap, VFIO_USER_DMA_UNMAP, buf, len, -1);
        break;
    default:
        call(ctx, vfu_handle_device_feature, VFIO_USER_DEVICE_FEATURE, buf,
             len, -1);
        break;
    }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    vfu_ctx_t *ctx = fuzz_device();
    struct in in = { data, size };

    while (in.left > 0) {
        switch (take(&in, 1) % 6) {
        case 0:
        case 1:
            op_map(ctx, &in);
            break;
        case 2:
            op_unmap(ctx, &in);
            break;
        case 3:
            op_logging(ctx, &in);
            break;
        case 4:
            op_sgl(ctx, &in);
            break;
        default:
            op_raw(ctx, &in);
            break;
        }
    }
    dirty_stop(ctx);
    vfu_dma_release(ctx);
    return 0;
}
