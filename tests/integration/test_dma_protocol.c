/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 the vfu authors. */

/* DMA_MAP/UNMAP, scatter/gather and dirty logging over a real socket, with
 * the test thread acting as a device thread of the server. */

#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"
#include "dma_internal.h"

#define PG 4096u
#define RW (VFIO_USER_F_DMA_REGION_READ | VFIO_USER_F_DMA_REGION_WRITE)

struct fixture {
    struct harness_dev dev;
    struct harness_server *s;
    vfu_client_t *c;
    vfu_ctx_t *ctx;
};

static int
setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));

    assert_non_null(f);
    assert_int_equal(harness_dev_init(&f->dev), 0);
    f->s = harness_server_start(harness_dev_setup, &f->dev);
    assert_non_null(f->s);
    f->c = harness_connect(f->s);
    f->ctx = harness_server_ctx(f->s);
    *state = f;
    return 0;
}

static int
teardown(void **state)
{
    struct fixture *f = *state;

    vfu_client_close(f->c);
    assert_int_equal(harness_server_stop(f->s), 0);
    harness_dev_fini(&f->dev);
    free(f);
    return 0;
}

static unsigned
regs(struct fixture *f)
{
    return __atomic_load_n(&f->dev.dma_registers, __ATOMIC_SEQ_CST);
}

static unsigned
unregs(struct fixture *f)
{
    return __atomic_load_n(&f->dev.dma_unregisters, __ATOMIC_SEQ_CST);
}

/* The server still answers. */
static void
assert_alive(struct fixture *f)
{
    assert_int_equal(vfu_client_dma_map(f->c, 0xfff00000, PG, RW, -1, 0, NULL), 0);
    assert_int_equal(vfu_client_dma_unmap(f->c, 0xfff00000, PG, 0), 0);
}

static int
map_raw(struct fixture *f, const struct vfio_user_dma_map *m, size_t size,
        const int *fds, uint32_t nr)
{
    return vfu_client_call(f->c, VFIO_USER_DMA_MAP, m, size, fds, nr,
                           NULL, NULL, NULL, NULL);
}

static void
test_map_errors(void **state)
{
    struct fixture *f = *state;
    int fd = harness_memfd(16 * PG), p[2], before;
    struct vfio_user_dma_map m = { sizeof(m), RW, 0, 0x100000, PG };
    struct vfio_user_dma_unmap u = { sizeof(u), 0, 0, 0 };
    int two[2];

    assert_true(fd >= 0);
    assert_int_equal(pipe(p), 0);
    before = harness_fd_count(0);
    assert_int_equal(vfu_client_dma_map(f->c, 0x100000, 4 * PG, RW, fd, 0, NULL), 0);
    assert_int_equal(regs(f), 1);
    /* The same memfd again, elsewhere; overlap; partial and missing unmaps. */
    assert_int_equal(vfu_client_dma_map(f->c, 0x200000, 4 * PG, RW, fd, 8 * PG, NULL), 0);
    assert_int_equal(vfu_client_dma_map(f->c, 0x103000, 4 * PG, RW, fd, 0, NULL), -1);
    assert_int_equal(errno, EEXIST);
    assert_int_equal(vfu_client_dma_unmap(f->c, 0x100000, PG, 0), -1);
    assert_int_equal(errno, EINVAL);
    assert_int_equal(vfu_client_dma_unmap(f->c, 0x700000, PG, 0), -1);
    assert_int_equal(errno, ENOENT);
    /* Wrap-around, a file offset past 2^63, a pipe, bad flags, two fds,
     * short. */
    assert_int_equal(vfu_client_dma_map(f->c, UINT64_MAX - PG + 1, 2 * PG, RW, -1, 0, NULL), -1);
    assert_int_equal(errno, EINVAL);
    assert_int_equal(vfu_client_dma_map(f->c, 0x300000, 4 * PG, RW, fd, 1ull << 63, NULL), -1);
    assert_int_equal(errno, EINVAL);
    assert_int_equal(vfu_client_dma_map(f->c, 0x300000, PG, RW, p[0], 0, NULL), -1);
    assert_int_equal(errno, EINVAL);
    m.flags = 4;
    assert_int_equal(map_raw(f, &m, sizeof(m), NULL, 0), -1);
    assert_int_equal(errno, EINVAL);
    m.flags = 0;
    assert_int_equal(map_raw(f, &m, sizeof(m), NULL, 0), -1);
    assert_int_equal(errno, EINVAL);
    m.flags = RW;
    two[0] = fd;
    two[1] = fd;
    assert_int_equal(map_raw(f, &m, sizeof(m), two, 2), -1);
    assert_int_equal(errno, EINVAL);
    assert_int_equal(map_raw(f, &m, sizeof(m) - 1, NULL, 0), -1);
    assert_int_equal(errno, EINVAL);
    /* Old-protocol unmap with a bitmap; ALL with a range. */
    u.flags = VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP;
    u.addr = 0x100000;
    u.size = 4 * PG;
    assert_int_equal(vfu_client_call(f->c, VFIO_USER_DMA_UNMAP, &u, sizeof(u),
                                     NULL, 0, NULL, NULL, NULL, NULL), -1);
    assert_int_equal(errno, EINVAL);
    assert_int_equal(vfu_client_dma_unmap(f->c, 0x100000, 4 * PG,
                                          VFIO_DMA_UNMAP_FLAG_ALL), -1);
    assert_int_equal(errno, EINVAL);
    /* Exact unmap echoes the request. */
    {
        struct vfio_user_dma_unmap rep;
        size_t rsize = sizeof(rep);
        u.flags = 0;
        assert_int_equal(vfu_client_call(f->c, VFIO_USER_DMA_UNMAP, &u, sizeof(u),
                                         NULL, 0, &rep, &rsize, NULL, NULL), 0);
        assert_int_equal(rsize, sizeof(rep));
        assert_memory_equal(&rep, &u, sizeof(u));
    }
    assert_int_equal(unregs(f), 1);
    assert_int_equal(vfu_client_dma_unmap(f->c, 0, 0, VFIO_DMA_UNMAP_FLAG_ALL), 0);
    assert_int_equal(unregs(f), 2);
    assert_int_equal(f->ctx->dma->nr_maps, 0);
    assert_int_equal(f->ctx->dma->nr_files, 0);
    /* No fd stays open on the server side. */
    assert_int_equal(harness_fd_count_settle(0, before, 2000), before);
    assert_alive(f);
    close(fd);
    close(p[0]);
    close(p[1]);
}

static void
set_max_maps(vfu_ctx_t *ctx, void *arg)
{
    ctx->max_dma_maps = *(uint32_t *)arg;
}

static void
test_too_many_maps(void **state)
{
    struct fixture *f = *state;
    uint32_t max = 8, dflt = VFU_DEFAULT_MAX_DMA_MAPS;

    assert_int_equal(harness_server_exec(f->s, set_max_maps, &max), 0);
    for (uint32_t i = 0; i < max; i++) {
        assert_int_equal(vfu_client_dma_map(f->c, (uint64_t)i << 20, PG, RW, -1, 0, NULL), 0);
    }
    assert_int_equal(vfu_client_dma_map(f->c, 100ull << 20, PG, RW, -1, 0, NULL), -1);
    assert_int_equal(errno, EINVAL);     /* past max_regions, as libvfio-user */
    assert_int_equal(vfu_client_dma_unmap(f->c, 0, PG, 0), 0);
    assert_int_equal(vfu_client_dma_map(f->c, 100ull << 20, PG, RW, -1, 0, NULL), 0);
    assert_int_equal(harness_server_exec(f->s, set_max_maps, &dflt), 0);
    assert_int_equal(vfu_client_dma_unmap(f->c, 0, 0, VFIO_DMA_UNMAP_FLAG_ALL), 0);
    assert_alive(f);
}

static void
test_sgl_mapped(void **state)
{
    struct fixture *f = *state;
    int fd = harness_memfd(64 * PG);
    char *mem = mmap(NULL, 64 * PG, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    char *sgbuf = calloc(4, dma_sg_size());
    dma_sg_t *sg = (dma_sg_t *)sgbuf;
    struct iovec iov[4];
    char buf[64];
    int n;

    assert_true(mem != MAP_FAILED);
    /* Two adjacent maps of the same file, one read-only and one RW. */
    assert_int_equal(vfu_client_dma_map(f->c, 0x10000, 4 * PG,
                                        VFIO_USER_F_DMA_REGION_READ, fd, 0, NULL), 0);
    assert_int_equal(vfu_client_dma_map(f->c, 0x14000, 4 * PG, RW, fd, 4 * PG, NULL), 0);
    memcpy(mem + 3 * PG + PG - 3, "abcdef", 6);
    n = vfu_addr_to_sgl(f->ctx, (vfu_dma_addr_t)(0x14000 - 3), 6, sg, 4, PROT_READ);
    assert_int_equal(n, 2);
    /* Too small an array: -(needed + 1). */
    assert_int_equal(vfu_addr_to_sgl(f->ctx, (vfu_dma_addr_t)(0x14000 - 3), 6, sg, 1,
                                     PROT_READ), -3);
    assert_int_equal(vfu_sgl_get(f->ctx, sg, iov, 2, 0), 0);
    assert_int_equal(iov[0].iov_len, 3);
    assert_memory_equal(iov[0].iov_base, "abc", 3);
    assert_memory_equal(iov[1].iov_base, "def", 3);
    vfu_sgl_put(f->ctx, sg, iov, 2);
    assert_int_equal(vfu_sgl_get(f->ctx, sg, iov, 2, 1), -1);
    assert_int_equal(errno, EINVAL);
    /* Write access to the read-only map; unmapped; beyond a map. */
    assert_int_equal(vfu_addr_to_sgl(f->ctx, (vfu_dma_addr_t)0x10000, 8, sg, 4, PROT_WRITE), -1);
    assert_int_equal(errno, EACCES);
    assert_int_equal(vfu_addr_to_sgl(f->ctx, (vfu_dma_addr_t)0x20000, 8, sg, 4, PROT_READ), -1);
    assert_int_equal(errno, ENOENT);
    assert_int_equal(vfu_addr_to_sgl(f->ctx, (vfu_dma_addr_t)0x17ff0, 0x20, sg, 4, PROT_READ), -1);
    assert_int_equal(errno, ENOENT);
    /* Write and read through the API; the client's memory sees it. */
    n = vfu_addr_to_sgl(f->ctx, (vfu_dma_addr_t)0x15000, 5, sg, 1, PROT_READ | PROT_WRITE);
    assert_int_equal(n, 1);
    assert_true(vfu_sg_is_mappable(f->ctx, sg));
    assert_int_equal(vfu_sgl_write(f->ctx, sg, 1, "hello", VFU_SGL_DIRECT_ACCESS), 0);
    assert_memory_equal(mem + 5 * PG, "hello", 5);
    assert_int_equal(vfu_sgl_read(f->ctx, sg, 1, buf, VFU_SGL_DIRECT_ACCESS), 0);
    assert_memory_equal(buf, "hello", 5);
    assert_int_equal(vfu_sgl_read(f->ctx, sg, 2, buf, VFU_SGL_DIRECT_ACCESS), -1);
    assert_int_equal(errno, ENOTSUP);
    n = vfu_addr_to_sgl(f->ctx, (vfu_dma_addr_t)0x10000, 5, sg, 1, PROT_READ);
    assert_int_equal(vfu_sgl_write(f->ctx, sg, 1, "hello", VFU_SGL_DIRECT_ACCESS), -1);
    assert_int_equal(errno, EPERM);
    assert_int_equal(vfu_client_dma_unmap(f->c, 0, 0, VFIO_DMA_UNMAP_FLAG_ALL), 0);
    /* A stale entry is refused, not followed. */
    assert_false(vfu_sg_is_mappable(f->ctx, sg));
    assert_int_equal(vfu_sgl_read(f->ctx, sg, 1, buf, VFU_SGL_DIRECT_ACCESS), -1);
    assert_int_equal(errno, EINVAL);
    munmap(mem, 64 * PG);
    close(fd);
    free(sgbuf);
}

struct poller {
    vfu_client_t *c;
    int stop;
    pthread_t thr;
};

static void *
poll_thread(void *arg)
{
    struct poller *p = arg;

    while (!__atomic_load_n(&p->stop, __ATOMIC_SEQ_CST)) {
        if (vfu_client_poll(p->c, 20) < 0 && errno == ENOTCONN) {
            break;
        }
    }
    return NULL;
}

static void
test_message_only(void **state)
{
    struct fixture *f = *state;
    const size_t size = (3u << 20) + 5;     /* several max_data_xfer chunks */
    char *local = malloc(size), *back = malloc(size), *src = malloc(size);
    dma_sg_t *sg = calloc(1, dma_sg_size());
    struct iovec iov;
    struct poller p = { .c = f->c };

    assert_non_null(local);
    for (size_t i = 0; i < size; i++) {
        local[i] = (char)(i * 7);
        src[i] = (char)(i * 13 + 1);
    }
    assert_int_equal(vfu_client_dma_map(f->c, 0x40000000, size, RW, -1, 0, local), 0);
    assert_int_equal(vfu_addr_to_sgl(f->ctx, (vfu_dma_addr_t)0x40000000, size, sg, 1,
                                     PROT_READ | PROT_WRITE), 1);
    assert_false(vfu_sg_is_mappable(f->ctx, sg));
    assert_int_equal(vfu_sgl_get(f->ctx, sg, &iov, 1, 0), -1);
    assert_int_equal(errno, EFAULT);
    assert_int_equal(pthread_create(&p.thr, NULL, poll_thread, &p), 0);
    assert_int_equal(vfu_sgl_read(f->ctx, sg, 1, back, VFU_SGL_DIRECT_ACCESS), 0);
    assert_memory_equal(back, local, size);
    assert_int_equal(vfu_sgl_write(f->ctx, sg, 1, src, VFU_SGL_DIRECT_ACCESS), 0);
    __atomic_store_n(&p.stop, 1, __ATOMIC_SEQ_CST);
    pthread_join(p.thr, NULL);
    assert_memory_equal(local, src, size);
    assert_int_equal(vfu_client_dma_unmap(f->c, 0x40000000, size, 0), 0);
    assert_alive(f);
    free(local);
    free(back);
    free(src);
    free(sg);
}

/*
 * DMA_MAP's access modes: MMAP is what a map with an fd gets anyway;
 * FILE_IO maps are reached with pread()/pwrite() on the file, never mapped,
 * and only with VFU_SGL_DIRECT_ACCESS; without it, by messages.
 */
static void
test_access_modes(void **state)
{
    struct fixture *f = *state;
    const uint32_t mmap_mode = VFIO_USER_F_DMA_REGION_MMAP;
    const uint32_t file_io = VFIO_USER_F_DMA_REGION_FILE_IO;
    int fd = harness_memfd(4 * PG);
    char *local = mmap(NULL, 4 * PG, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    dma_sg_t *sg = calloc(1, dma_sg_size());
    struct poller p = { .c = f->c };
    char buf[64], back[64];
    vfu_dma_info_t info;
    struct dma_map *m;
    struct iovec iov;

    assert_true(local != MAP_FAILED);
    assert_non_null(sg);
    for (size_t i = 0; i < sizeof(buf); i++) {
        buf[i] = (char)(i * 3 + 1);
    }
    /* Both modes, a mode without an fd, an unknown flag. */
    assert_int_equal(vfu_client_dma_map(f->c, 0x1000000, PG, RW | mmap_mode | file_io,
                                        fd, 0, NULL), -1);
    assert_int_equal(errno, EINVAL);
    assert_int_equal(vfu_client_dma_map(f->c, 0x1000000, PG, RW | file_io, -1, 0,
                                        local), -1);
    assert_int_equal(errno, EINVAL);
    assert_int_equal(vfu_client_dma_map(f->c, 0x1000000, PG, RW | mmap_mode, -1, 0,
                                        local), -1);
    assert_int_equal(errno, EINVAL);
    assert_int_equal(vfu_client_dma_map(f->c, 0x1000000, PG, RW | (1u << 4), fd, 0,
                                        NULL), -1);
    assert_int_equal(errno, EINVAL);

    /* MMAP: mapped into the server. */
    assert_int_equal(vfu_client_dma_map(f->c, 0x1000000, 2 * PG, RW | mmap_mode, fd,
                                        0, local), 0);
    assert_int_equal(vfu_addr_to_sgl(f->ctx, (vfu_dma_addr_t)0x1000010, 64, sg, 1,
                                     PROT_READ | PROT_WRITE), 1);
    assert_true(vfu_sg_is_mappable(f->ctx, sg));
    assert_int_equal(vfu_sgl_get(f->ctx, sg, &iov, 1, 0), 0);
    memcpy(iov.iov_base, buf, sizeof(buf));
    vfu_sgl_put(f->ctx, sg, &iov, 1);
    assert_memory_equal(local + 0x10, buf, sizeof(buf));
    assert_int_equal(vfu_client_dma_unmap(f->c, 0x1000000, 2 * PG, 0), 0);

    /* FILE_IO, at an offset into the file. */
    assert_int_equal(vfu_client_dma_map(f->c, 0x2000000, 2 * PG, RW | file_io, fd,
                                        PG, local + PG), 0);
    m = dma_table_lookup(f->ctx->dma, 0x2000000);
    assert_non_null(m);
    dma_map_info(m, &info);
    assert_null(info.vaddr);
    assert_null(info.mapping.iov_base);
    assert_int_equal(info.mapping.iov_len, 0);
    assert_int_equal(info.page_size, PG);
    assert_int_equal(info.iova.iov_len, 2 * PG);
    assert_int_equal(vfu_addr_to_sgl(f->ctx, (vfu_dma_addr_t)0x2000100, 64, sg, 1,
                                     PROT_READ | PROT_WRITE), 1);
    assert_false(vfu_sg_is_mappable(f->ctx, sg));
    assert_int_equal(vfu_sgl_get(f->ctx, sg, &iov, 1, 0), -1);
    assert_int_equal(errno, EFAULT);
    /* Direct: pwrite()/pread() on the file, no message (nobody serves one). */
    assert_int_equal(vfu_sgl_write(f->ctx, sg, 1, buf, VFU_SGL_DIRECT_ACCESS), 0);
    assert_memory_equal(local + PG + 0x100, buf, sizeof(buf));
    local[PG + 0x100] = 'x';
    assert_int_equal(vfu_sgl_read(f->ctx, sg, 1, back, VFU_SGL_DIRECT_ACCESS), 0);
    assert_int_equal(back[0], 'x');
    assert_memory_equal(back + 1, buf + 1, sizeof(buf) - 1);
    /* Without the flag: DMA_READ/WRITE messages, served by the client. */
    assert_int_equal(pthread_create(&p.thr, NULL, poll_thread, &p), 0);
    buf[0] = 'y';
    assert_int_equal(vfu_sgl_write(f->ctx, sg, 1, buf, 0), 0);
    memset(back, 0, sizeof(back));
    assert_int_equal(vfu_sgl_read(f->ctx, sg, 1, back, 0), 0);
    __atomic_store_n(&p.stop, 1, __ATOMIC_SEQ_CST);
    pthread_join(p.thr, NULL);
    assert_memory_equal(back, buf, sizeof(buf));
    assert_memory_equal(local + PG + 0x100, buf, sizeof(buf));
    /*
     * Beyond the end of the file: accepted; direct access works inside the
     * file and fails with EFAULT past its end, which never grows.
     */
    assert_int_equal(vfu_client_dma_map(f->c, 0x4000000, 2 * PG, RW | file_io, fd,
                                        3 * PG, NULL), 0);
    assert_int_equal(dma_map_past_eof(dma_table_lookup(f->ctx->dma, 0x4000000)), PG);
    assert_int_equal(vfu_addr_to_sgl(f->ctx, (vfu_dma_addr_t)0x4000ff0, 16, sg, 1,
                                     PROT_READ | PROT_WRITE), 1);
    assert_int_equal(vfu_sgl_write(f->ctx, sg, 1, buf, VFU_SGL_DIRECT_ACCESS), 0);
    assert_memory_equal(local + 4 * PG - 16, buf, 16);
    assert_int_equal(vfu_sgl_read(f->ctx, sg, 1, back, VFU_SGL_DIRECT_ACCESS), 0);
    assert_memory_equal(back, buf, 16);
    assert_int_equal(vfu_addr_to_sgl(f->ctx, (vfu_dma_addr_t)0x4000ff8, 16, sg, 1,
                                     PROT_READ | PROT_WRITE), 1);
    assert_int_equal(vfu_sgl_write(f->ctx, sg, 1, buf, VFU_SGL_DIRECT_ACCESS), -1);
    assert_int_equal(errno, EFAULT);
    assert_int_equal(vfu_sgl_read(f->ctx, sg, 1, back, VFU_SGL_DIRECT_ACCESS), -1);
    assert_int_equal(errno, EFAULT);
    assert_int_equal(lseek(fd, 0, SEEK_END), 4 * PG);
    assert_int_equal(vfu_client_dma_unmap(f->c, 0x4000000, 2 * PG, 0), 0);
    /* Two FILE_IO maps of one file share one dup of its fd. */
    assert_int_equal(vfu_client_dma_map(f->c, 0x3000000, PG, RW | file_io, fd,
                                        0, NULL), 0);
    assert_ptr_equal(dma_table_lookup(f->ctx->dma, 0x3000000)->file,
                     dma_table_lookup(f->ctx->dma, 0x2000000)->file);
    assert_int_equal(vfu_client_dma_unmap(f->c, 0, 0, VFIO_DMA_UNMAP_FLAG_ALL), 0);
    assert_alive(f);
    munmap(local, 4 * PG);
    close(fd);
    free(sg);
}

/*
 * A map longer than its file (libvfio-user's dirty page test does this):
 * the server maps the file's pages from the file and private memory past
 * them, contiguously, so the device may touch the whole map. What lands
 * in the file reaches the client; what lands past it does not.
 */
static void
test_map_past_eof(void **state)
{
    struct fixture *f = *state;
    const uint64_t iova = 0x6000000;
    int fd = harness_memfd(2 * PG);
    dma_sg_t *sg = calloc(2, dma_sg_size());
    char *file = malloc(4 * PG), back[16];
    vfu_dma_info_t info;
    struct dma_map *m;
    struct iovec iov;

    assert_non_null(sg);
    assert_non_null(file);
    memset(file, 'A', 2 * PG);
    assert_int_equal(pwrite(fd, file, 2 * PG, 0), 2 * PG);
    /* Four pages of a two-page file, and one page wholly past the end. */
    assert_int_equal(vfu_client_dma_map(f->c, iova, 4 * PG, RW, fd, 0, NULL), 0);
    assert_int_equal(vfu_client_dma_map(f->c, iova + 4 * PG, PG, RW, fd, 8 * PG,
                                        NULL), 0);
    assert_int_equal(regs(f), 2);
    m = dma_table_lookup(f->ctx->dma, iova);
    assert_non_null(m);
    assert_int_equal(dma_map_past_eof(m), 2 * PG);
    assert_int_equal(f->ctx->dma->anon_bytes, 3 * PG);
    assert_int_equal(f->ctx->dma->nr_files, 0);    /* own mappings, unshared */
    dma_map_info(m, &info);
    assert_non_null(info.vaddr);
    assert_ptr_equal(info.mapping.iov_base, info.vaddr);
    assert_int_equal(info.mapping.iov_len, 4 * PG);
    assert_int_equal(info.page_size, PG);

    /* get/put across the whole map: the file's data, then zeros. */
    assert_int_equal(vfu_addr_to_sgl(f->ctx, (vfu_dma_addr_t)iova, 4 * PG, sg, 2,
                                     PROT_READ | PROT_WRITE), 1);
    assert_true(vfu_sg_is_mappable(f->ctx, sg));
    assert_int_equal(vfu_sgl_get(f->ctx, sg, &iov, 1, 0), 0);
    assert_ptr_equal(iov.iov_base, info.vaddr);
    assert_int_equal(iov.iov_len, 4 * PG);
    assert_memory_equal(iov.iov_base, file, 2 * PG);
    for (size_t i = 2 * PG; i < 4 * PG; i++) {
        assert_int_equal(((char *)iov.iov_base)[i], 0);
    }
    memset(iov.iov_base, 'B', 4 * PG);
    vfu_sgl_put(f->ctx, sg, &iov, 1);
    memset(file, 0, 4 * PG);
    assert_int_equal(pread(fd, file, 4 * PG, 0), 2 * PG);  /* it did not grow */
    for (size_t i = 0; i < 2 * PG; i++) {
        assert_int_equal(file[i], 'B');
    }

    /* sgl read/write straddling the end of the file. */
    assert_int_equal(vfu_addr_to_sgl(f->ctx, (vfu_dma_addr_t)(iova + 2 * PG - 8), 16,
                                     sg, 1, PROT_READ | PROT_WRITE), 1);
    assert_int_equal(vfu_sgl_write(f->ctx, sg, 1, "0123456789abcdef",
                                   VFU_SGL_DIRECT_ACCESS), 0);
    assert_int_equal(vfu_sgl_read(f->ctx, sg, 1, back, VFU_SGL_DIRECT_ACCESS), 0);
    assert_memory_equal(back, "0123456789abcdef", 16);
    assert_int_equal(pread(fd, file, 16, 2 * PG - 8), 8);
    assert_memory_equal(file, "01234567", 8);
    assert_int_equal(lseek(fd, 0, SEEK_END), 2 * PG);

    /* The map with no byte in the file: private memory only. */
    assert_int_equal(vfu_addr_to_sgl(f->ctx, (vfu_dma_addr_t)(iova + 4 * PG + 100), 16,
                                     sg, 1, PROT_READ | PROT_WRITE), 1);
    assert_int_equal(vfu_sgl_get(f->ctx, sg, &iov, 1, 0), 0);
    memcpy(iov.iov_base, "past the end", 12);
    vfu_sgl_put(f->ctx, sg, &iov, 1);
    assert_int_equal(vfu_sgl_read(f->ctx, sg, 1, back, VFU_SGL_DIRECT_ACCESS), 0);
    assert_memory_equal(back, "past the end", 12);
    assert_int_equal(lseek(fd, 0, SEEK_END), 2 * PG);

    /* Gone with the maps. */
    assert_int_equal(vfu_client_dma_unmap(f->c, 0, 0, VFIO_DMA_UNMAP_FLAG_ALL), 0);
    assert_int_equal(unregs(f), 2);
    assert_int_equal(f->ctx->dma->anon_bytes, 0);
    assert_alive(f);
    close(fd);
    free(file);
    free(sg);
}

static void
test_dirty_logging(void **state)
{
    struct fixture *f = *state;
    int fd = harness_memfd(1 << 20);
    struct vfio_user_device_feature_dma_logging_range r[2] = {
        { 0x100000, 0x40000 }, { 0x200000, 0x10000 },
    };
    dma_sg_t *sg = calloc(4, dma_sg_size());
    uint64_t bm[8];
    struct iovec iov[4];
    int n;

    assert_int_equal(vfu_client_dma_map(f->c, 0x100000, 0x40000, RW, fd, 0, NULL), 0);
    assert_int_equal(vfu_client_dma_map(f->c, 0x140000, 0x40000, RW, fd, 0x40000, NULL), 0);
    /* Probe, unknown feature, report before start. */
    assert_int_equal(vfu_client_device_feature(f->c, VFIO_DEVICE_FEATURE_PROBE |
                     VFIO_DEVICE_FEATURE_SET | VFIO_DEVICE_FEATURE_DMA_LOGGING_START,
                     NULL, 0, NULL, NULL), 0);
    assert_int_equal(vfu_client_device_feature(f->c, VFIO_DEVICE_FEATURE_PROBE |
                     VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_DMA_LOGGING_START,
                     NULL, 0, NULL, NULL), -1);
    assert_int_equal(errno, EINVAL);
    assert_int_equal(vfu_client_device_feature(f->c, VFIO_DEVICE_FEATURE_GET | 40,
                     NULL, 0, NULL, NULL), -1);
    assert_int_equal(errno, ENOTSUP);
    assert_int_equal(vfu_client_dma_logging_report(f->c, 0x100000, 0x40000, PG, bm,
                                                   sizeof(bm)), -1);
    assert_int_equal(errno, EINVAL);
    assert_int_equal(vfu_client_dma_logging_start(f->c, PG, r, 2), 0);
    /* Again at the same page size: a no-op; at another one: refused. */
    assert_int_equal(vfu_client_dma_logging_start(f->c, PG, r, 2), 0);
    assert_int_equal(vfu_client_dma_logging_start(f->c, 2 * PG, r, 2), -1);
    assert_int_equal(errno, EINVAL);
    /* A write through vfu_sgl_write, one through get/put, one marked. */
    n = vfu_addr_to_sgl(f->ctx, (vfu_dma_addr_t)0x101ffe, 4, sg, 4, PROT_WRITE);
    assert_int_equal(n, 1);
    assert_int_equal(vfu_sgl_write(f->ctx, sg, 1, "wxyz", VFU_SGL_DIRECT_ACCESS), 0);      /* pages 1, 2 */
    n = vfu_addr_to_sgl(f->ctx, (vfu_dma_addr_t)0x13f000, 0x2000, sg, 4, PROT_WRITE);
    assert_int_equal(n, 2);                                         /* spans maps */
    assert_int_equal(vfu_sgl_get(f->ctx, sg, iov, 2, 0), 0);
    memset(iov[0].iov_base, 1, iov[0].iov_len);
    vfu_sgl_put(f->ctx, sg, iov, 2);                                /* 63, 64 */
    n = vfu_addr_to_sgl(f->ctx, (vfu_dma_addr_t)0x105000, 1, sg, 4, PROT_WRITE);
    assert_int_equal(vfu_sgl_get(f->ctx, sg, iov, 1, 0), 0);
    vfu_sgl_mark_dirty(f->ctx, sg, 1);                              /* 5 */
    /* Read-only access marks nothing. */
    n = vfu_addr_to_sgl(f->ctx, (vfu_dma_addr_t)0x108000, 1, sg + 1, 1, PROT_READ);
    assert_int_equal(vfu_sgl_get(f->ctx, (dma_sg_t *)((char *)sg + dma_sg_size()),
                                 iov + 1, 1, 0), 0);
    vfu_sgl_put(f->ctx, (dma_sg_t *)((char *)sg + dma_sg_size()), iov + 1, 1);
    memset(bm, 0xff, sizeof(bm));
    assert_int_equal(vfu_client_dma_logging_report(f->c, 0x100000, 0x40000, PG, bm,
                                                   sizeof(bm)), 0);
    /* 0x140000 (page 64) is mapped but not logged. */
    assert_int_equal(bm[0], (1ull << 1) | (1ull << 2) | (1ull << 5) | (1ull << 63));
    assert_int_equal(bm[1], 0);
    assert_int_equal(vfu_client_dma_logging_report(f->c, 0x100000, 0x40000, PG, bm,
                                                   sizeof(bm)), 0);
    assert_int_equal(bm[0], 0);     /* read and cleared */
    vfu_sgl_put(f->ctx, sg, iov, 1);
    /* Bigger report pages: one bit per 128 KiB. */
    assert_int_equal(vfu_client_dma_logging_report(f->c, 0x100000, 0x40000, 0x20000,
                                                   bm, 8), 0);
    assert_int_equal(bm[0], 1);     /* page 5 again, from the put */
    /* A report page bigger than the range: refused, as libvfio-user does. */
    assert_int_equal(vfu_client_dma_logging_report(f->c, 0x100000, 0x40000, 2u << 20,
                                                   bm, 8), -1);
    assert_int_equal(errno, EINVAL);
    /* Outside the logged ranges, across the gap. */
    assert_int_equal(vfu_client_dma_logging_report(f->c, 0x140000, PG, PG, bm, 8), -1);
    assert_int_equal(errno, EINVAL);
    assert_int_equal(vfu_client_dma_logging_stop(f->c), 0);
    assert_int_equal(vfu_client_dma_logging_report(f->c, 0x100000, PG, PG, bm, 8), -1);
    assert_int_equal(errno, EINVAL);
    assert_int_equal(vfu_client_dma_unmap(f->c, 0, 0, VFIO_DMA_UNMAP_FLAG_ALL), 0);
    assert_alive(f);
    close(fd);
    free(sg);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_map_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_too_many_maps, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sgl_mapped, setup, teardown),
        cmocka_unit_test_setup_teardown(test_message_only, setup, teardown),
        cmocka_unit_test_setup_teardown(test_access_modes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_map_past_eof, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dirty_logging, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
