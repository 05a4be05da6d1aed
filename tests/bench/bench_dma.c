/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 the vfu authors. */

/*
 * DMA benchmarks: DMA_MAP/DMA_UNMAP over a real socket, address translation
 * with vfu_addr_to_sgl + vfu_sgl_get/put in process, and dirty bitmap
 * reports over 64 GiB of logged memory.
 */

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "libvfio-user.h"
#include "vfu-client.h"
#include "dma_internal.h"

#define PG 4096ull
#define RW (VFIO_USER_F_DMA_REGION_READ | VFIO_USER_F_DMA_REGION_WRITE)

static double
now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void
dma_unregister(vfu_ctx_t *ctx, vfu_dma_info_t *info)
{
}

static void *
serve(void *arg)
{
    vfu_ctx_t *ctx = arg;

    if (vfu_attach_ctx(ctx) < 0) {
        perror("vfu_attach_ctx");
        return NULL;
    }
    while (vfu_run_ctx(ctx) >= 0) {
    }
    return NULL;
}

static void
die(const char *what)
{
    perror(what);
    exit(1);
}

static uint64_t
rnd(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* Translate and get/put one page-sized piece, n times. */
static double
bench_sgl(vfu_ctx_t *ctx, uint32_t nmaps, bool random, int n)
{
    dma_sg_t *sg = calloc(1, dma_sg_size());
    uint64_t s = 88172645463325252ull;
    struct iovec iov;
    double t0 = now();

    for (int i = 0; i < n; i++) {
        uint64_t k = random ? rnd(&s) % nmaps : 7 % nmaps;
        if (vfu_addr_to_sgl(ctx, (vfu_dma_addr_t)(uintptr_t)(k * 2 * PG + 64), 512,
                            sg, 1, PROT_READ | PROT_WRITE) != 1 ||
            vfu_sgl_get(ctx, sg, &iov, 1, 0) < 0) {
            die("vfu_addr_to_sgl/vfu_sgl_get");
        }
        vfu_sgl_put(ctx, sg, &iov, 1);
    }
    free(sg);
    return (now() - t0) / n;
}

static void
bench_maps(vfu_client_t *c, vfu_ctx_t *ctx, uint32_t nmaps)
{
    int fd = memfd_create("bench-dma", 0);
    double t0, tmap, tunmap;

    if (fd < 0 || ftruncate(fd, (off_t)(nmaps * PG)) < 0) {
        die("memfd");
    }
    /* Every map sends the same memfd, as QEMU does. */
    t0 = now();
    for (uint32_t i = 0; i < nmaps; i++) {
        if (vfu_client_dma_map(c, i * 2 * PG, PG, RW, fd, i * PG, NULL) < 0) {
            die("vfu_client_dma_map");
        }
    }
    tmap = (now() - t0) / nmaps;
    printf("DMA_MAP   %6u maps: %8.2f us/op\n", nmaps, tmap * 1e6);
    printf("sgl get/put %6u maps, repeated: %8.1f ns/op\n", nmaps,
           bench_sgl(ctx, nmaps, false, 2000000) * 1e9);
    printf("sgl get/put %6u maps, random:   %8.1f ns/op\n", nmaps,
           bench_sgl(ctx, nmaps, true, 2000000) * 1e9);
    t0 = now();
    for (uint32_t i = 0; i < nmaps; i++) {
        if (vfu_client_dma_unmap(c, i * 2 * PG, PG, 0) < 0) {
            die("vfu_client_dma_unmap");
        }
    }
    tunmap = (now() - t0) / nmaps;
    printf("DMA_UNMAP %6u maps: %8.2f us/op\n", nmaps, tunmap * 1e6);
    close(fd);
}

static void
bench_report(vfu_client_t *c)
{
    const uint64_t span = 64ull << 30;
    struct vfio_user_device_feature_dma_logging_range r = { 1ull << 40, span };
    size_t bytes = span / PG / 8;
    uint64_t *bm = malloc(bytes);
    struct dirty_bits *log;
    int reps = 10;
    double t0;

    /* Through the socket: START, then REPORT of the whole 64 GiB. */
    if (vfu_client_dma_logging_start(c, PG, &r, 1) < 0) {
        die("DMA_LOGGING_START");
    }
    /* In four 16 GiB pieces: a 512 KiB bitmap fits a default message. */
    t0 = now();
    for (int i = 0; i < reps; i++) {
        for (uint64_t q = 0; q < 4; q++) {
            if (vfu_client_dma_logging_report(c, r.iova + q * (span / 4), span / 4,
                                              PG, bm, bytes / 4) < 0) {
                die("DMA_LOGGING_REPORT");
            }
        }
    }
    printf("DMA_LOGGING_REPORT 64 GiB at 4 KiB (socket, 4 x 16 GiB, clean): "
           "%8.2f ms/op\n", (now() - t0) / reps * 1e3);
    vfu_client_dma_logging_stop(c);

    /* In process, with one page in 16 dirty before each report. */
    log = dirty_bits_new(PG, &(struct dirty_range_req){ r.iova, r.length }, 1,
                         256u << 20);
    if (log == NULL) {
        die("dirty_bits_new");
    }
    {
        double tmark = 0, trep = 0;
        for (int i = 0; i < reps; i++) {
            double t1 = now();
            for (uint64_t a = 0; a < span; a += 16 * PG) {
                dirty_bits_mark(log, r.iova + a, 1);
            }
            tmark += now() - t1;
            t1 = now();
            dirty_bits_report(log, r.iova, span, PG, bm);
            trep += now() - t1;
        }
        printf("dirty report 64 GiB at 4 KiB (in process, 1/16 dirty): %8.2f ms/op "
               "(marking: %.1f ns/page)\n", trep / reps * 1e3,
               tmark / reps / (span / PG / 16) * 1e9);
        t0 = now();
        dirty_bits_report(log, r.iova, span, 2u << 20, bm);
        printf("dirty report 64 GiB at 2 MiB pages (in process, clean):  %8.2f ms/op\n",
               (now() - t0) * 1e3);
    }
    dirty_bits_free(log);
    free(bm);
}

int
main(void)
{
    char path[64];
    vfu_ctx_t *ctx;
    vfu_client_t *c;
    pthread_t thr;

    snprintf(path, sizeof(path), "/tmp/bench-dma-%d.sock", (int)getpid());
    ctx = vfu_create_ctx(VFU_TRANS_SOCK, path, 0, NULL, VFU_DEV_TYPE_PCI);
    if (ctx == NULL || vfu_pci_init(ctx, VFU_PCI_TYPE_CONVENTIONAL, 0, 0) < 0 ||
        vfu_setup_device_dma(ctx, NULL, dma_unregister) < 0 ||
        vfu_realize_ctx(ctx) < 0) {
        die("server set-up");
    }
    pthread_create(&thr, NULL, serve, ctx);
    c = vfu_client_connect(path);
    if (c == NULL || vfu_client_negotiate(c, NULL, NULL) < 0) {
        die("client");
    }
    printf("# bench_dma\n");
    bench_maps(c, ctx, 1000);
    bench_maps(c, ctx, 65535);
    bench_report(c);
    vfu_client_close(c);
    pthread_join(thr, NULL);
    vfu_destroy_ctx(ctx);
    unlink(path);
    return 0;
}
