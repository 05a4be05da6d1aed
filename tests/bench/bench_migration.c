/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 the vfu authors. */

/*
 * Live migration through vfu between two server processes, driven by a
 * client in this process:
 *
 *  - throughput of the migration data path (MIG_DATA_READ from the source,
 *    MIG_DATA_WRITE to the destination, both devices copying to and from
 *    their own memory) for 1 GiB of device state, at the default 1 MiB
 *    transfer size and at 16 MiB;
 *  - downtime, from the source leaving RUNNING to the destination running
 *    again, for a device with 1 GiB of state and 4 GiB of guest memory
 *    under dirty logging with 5% of its pages (every 20th) written by the
 *    device: once with all the state moved while stopped, once after a
 *    pre-copy round moved it while running. The client copies the dirty
 *    guest pages to its stand-in for the destination's memory as part of
 *    the downtime.
 *
 *   bench_migration [--pin] [--runs N]
 *
 * --pin is accepted for run.sh and ignored: three processes pinned to one
 * CPU would measure the scheduler, not the copy.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench_util.h"
#include "vfu-client-migration.h"

#define STATE_SIZE  (1ull << 30)
#define MEM_SIZE    (4ull << 30)
#define MEM_IOVA    (1ull << 32)
#define PAGE        4096ull
#define DIRTY_EVERY 20u         /* one page in 20: 5% */
#define REG_DIRTY   0x0         /* BAR0: any write dirties the pages */

/* ---- the device ---- */

struct bdev {
    uint8_t *state;
    vfu_migr_state_t mstate;
    uint64_t pos;               /* saving: next byte; resuming: bytes in */
    dma_sg_t *sg;
};

static void
dirty_guest_memory(vfu_ctx_t *ctx, struct bdev *b)
{
    struct iovec iov;

    for (uint64_t p = 0; p < MEM_SIZE / PAGE; p += DIRTY_EVERY) {
        uint64_t iova = MEM_IOVA + p * PAGE;

        if (vfu_addr_to_sgl(ctx, (vfu_dma_addr_t)(uintptr_t)iova, 8, b->sg, 1,
                            PROT_READ | PROT_WRITE) != 1 ||
            vfu_sgl_get(ctx, b->sg, &iov, 1, 0) < 0) {
            return;
        }
        memcpy(iov.iov_base, &p, 8);
        vfu_sgl_put(ctx, b->sg, &iov, 1);
    }
}

static ssize_t
bar0_access(vfu_ctx_t *ctx, char *buf, size_t count, loff_t off, bool is_write)
{
    if (is_write) {
        dirty_guest_memory(ctx, vfu_get_private(ctx));
    } else {
        memset(buf, 0, count);
    }
    return (ssize_t)count;
}

static int
b_transition(vfu_ctx_t *ctx, vfu_migr_state_t s)
{
    struct bdev *b = vfu_get_private(ctx);

    /* Pre-copy and stop-and-copy share one pass over the state. */
    if (s == VFU_MIGR_STATE_PRE_COPY || s == VFU_MIGR_STATE_RESUME ||
        (s == VFU_MIGR_STATE_STOP_AND_COPY &&
         b->mstate != VFU_MIGR_STATE_PRE_COPY)) {
        b->pos = 0;
    }
    b->mstate = s;
    return 0;
}

static ssize_t
b_read(vfu_ctx_t *ctx, void *buf, uint64_t count)
{
    struct bdev *b = vfu_get_private(ctx);
    uint64_t n = STATE_SIZE - b->pos;

    if (n > count) {
        n = count;
    }
    memcpy(buf, b->state + b->pos, n);
    b->pos += n;
    return (ssize_t)n;
}

static ssize_t
b_write(vfu_ctx_t *ctx, void *buf, uint64_t count)
{
    struct bdev *b = vfu_get_private(ctx);

    if (count > STATE_SIZE - b->pos) {
        errno = EINVAL;
        return -1;
    }
    memcpy(b->state + b->pos, buf, count);
    b->pos += count;
    return (ssize_t)count;
}

static void
dma_unregister(vfu_ctx_t *ctx, vfu_dma_info_t *info)
{
}

static pid_t
start_server(const char *path)
{
    static const vfu_migration_callbacks_t cbs = {
        .version = VFU_MIGR_CALLBACKS_VERS,
        .transition = b_transition,
        .read_data = b_read,
        .write_data = b_write,
    };
    struct bdev b = { .mstate = VFU_MIGR_STATE_RUNNING };
    pid_t pid = fork();
    vfu_ctx_t *ctx;

    if (pid != 0) {
        return pid;
    }
    b.state = mmap(NULL, STATE_SIZE, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
    b.sg = calloc(1, dma_sg_size());
    if (b.state == MAP_FAILED || b.sg == NULL) {
        perror("bench server");
        _exit(1);
    }
    for (uint64_t i = 0; i < STATE_SIZE; i += PAGE) {
        b.state[i] = (uint8_t)(i >> 12);
    }
    ctx = vfu_create_ctx(VFU_TRANS_SOCK, path, 0, &b, VFU_DEV_TYPE_PCI);
    if (ctx == NULL || vfu_pci_init(ctx, VFU_PCI_TYPE_CONVENTIONAL, 0, 0) < 0 ||
        vfu_setup_region(ctx, 0, 0x1000, bar0_access,
                         VFU_REGION_FLAG_RW | VFU_REGION_FLAG_MEM, NULL, 0,
                         -1, 0) < 0 ||
        vfu_setup_device_dma(ctx, 0, NULL, dma_unregister) < 0 ||
        vfu_setup_device_migration_callbacks(ctx, &cbs) < 0 ||
        vfu_realize_ctx(ctx) < 0) {
        perror("bench server");
        _exit(1);
    }
    bench_serve_forever(ctx);
}

/* ---- the client ---- */

static vfu_client_t *
connect_retry(const char *path, uint64_t xfer)
{
    struct vfu_client_caps caps;

    vfu_client_default_caps(&caps);
    caps.max_data_xfer_size = xfer;
    return bench_connect(path, &caps, 1000);
}

struct guest {
    uint8_t *src, *dst;         /* client views of both memories */
    int src_fd;
    uint64_t pages;
};

static int
to_dst(void *opaque, const void *buf, size_t len)
{
    return vfu_client_mig_write_all(opaque, buf, len);
}

static int
copy_dirty(void *opaque, uint64_t iova, uint64_t length, uint64_t page_size,
           const uint64_t *bitmap)
{
    struct guest *g = opaque;

    for (uint64_t p = 0; p < length / page_size; p++) {
        if (bitmap[p / 64] & (1ull << (p % 64))) {
            uint64_t off = iova - MEM_IOVA + p * page_size;
            memcpy(g->dst + off, g->src + off, page_size);
            g->pages++;
        }
    }
    return 0;
}

#define TRY(x) do { if ((x) < 0) { perror(#x); exit(1); } } while (0)

/* Seconds to move the whole state with no pre-copy. */
static double
throughput_run(vfu_client_t *src, vfu_client_t *dst)
{
    ssize_t n;
    double t0, t;

    TRY(vfu_client_mig_set_state(dst, VFIO_USER_DEVICE_STATE_RESUMING));
    TRY(vfu_client_mig_set_state(src, VFIO_USER_DEVICE_STATE_STOP_COPY));
    t0 = bench_now_ns();
    n = vfu_client_mig_read_all(src, to_dst, dst);
    t = (bench_now_ns() - t0) / 1e9;
    if (n != (ssize_t)STATE_SIZE) {
        fprintf(stderr, "moved %zd bytes instead of %llu\n", n,
                (unsigned long long)STATE_SIZE);
        exit(1);
    }
    TRY(vfu_client_mig_set_state(src, VFIO_USER_DEVICE_STATE_RUNNING));
    TRY(vfu_client_mig_set_state(dst, VFIO_USER_DEVICE_STATE_RUNNING));
    return t;
}

/* Downtime in ns with dirty logging; precopy moves the state first. */
static double
downtime_run(vfu_client_t *src, vfu_client_t *dst, struct guest *g,
             bool precopy, uint64_t *stop_bytes)
{
    const struct vfio_user_device_feature_dma_logging_range range = {
        .iova = MEM_IOVA, .length = MEM_SIZE,
    };
    uint64_t v = 1;
    ssize_t n;
    double t0, t;

    TRY(vfu_client_mig_set_state(dst, VFIO_USER_DEVICE_STATE_RESUMING));
    TRY(vfu_client_dma_logging_start(src, PAGE, &range, 1));
    if (precopy) {
        TRY(vfu_client_mig_set_state(src, VFIO_USER_DEVICE_STATE_PRE_COPY));
        TRY(vfu_client_mig_read_all(src, to_dst, dst));
    }
    /* The device writes 5% of guest memory while it still runs. */
    TRY(vfu_client_region_write(src, 0, REG_DIRTY, &v, sizeof(v)));
    g->pages = 0;

    t0 = bench_now_ns();
    TRY(vfu_client_mig_set_state(src, VFIO_USER_DEVICE_STATE_STOP_COPY));
    n = vfu_client_mig_read_all(src, to_dst, dst);
    TRY(n);
    TRY(vfu_client_mig_dirty_report(src, &range, 1, PAGE, copy_dirty, g));
    TRY(vfu_client_dma_logging_stop(src));
    TRY(vfu_client_mig_set_state(src, VFIO_USER_DEVICE_STATE_STOP));
    TRY(vfu_client_mig_set_state(dst, VFIO_USER_DEVICE_STATE_RUNNING));
    t = bench_now_ns() - t0;

    TRY(vfu_client_mig_set_state(src, VFIO_USER_DEVICE_STATE_RUNNING));
    if (g->pages != (MEM_SIZE / PAGE + DIRTY_EVERY - 1) / DIRTY_EVERY) {
        fprintf(stderr, "copied %llu dirty pages\n",
                (unsigned long long)g->pages);
        exit(1);
    }
    *stop_bytes = (uint64_t)n;
    return t;
}

struct figure {
    const char *name;
    const char *unit;
    double s[BENCH_MAX_RUNS];
    double at_least;    /* target: the median must reach it, or 0 */
};

static void
print_row(struct figure *f, int runs)
{
    struct bench_stats st = bench_summarize(f->s, runs);

    bench_print_stats(52, f->name, &st, 1);
    printf("  %-5s", f->unit);
    if (f->at_least > 0) {
        printf("  >=%.0f %s %s", f->at_least, f->unit,
               st.median >= f->at_least ? "ok" : "MISSED");
    }
    printf("\n");
}

int
main(int argc, char **argv)
{
    int runs;
    char src_path[64], dst_path[64];
    struct guest g = { 0 };
    uint64_t stop_bytes[2] = { 0 };
    vfu_client_t *src, *dst;
    pid_t spid, dpid;
    int dst_fd;
    struct figure f[4] = {
        { "migration data, 1 GiB state, 1 MiB transfers", "GB/s", { 0 }, 2 },
        { "migration data, 1 GiB state, 16 MiB transfers", "GB/s", { 0 }, 0 },
        { "downtime, 1 GiB in stop-copy, 4 GiB 5% dirty", "ms", { 0 }, 0 },
        { "downtime, after pre-copy, 4 GiB 5% dirty", "ms", { 0 }, 0 },
    };

    if (bench_parse_args(argc, argv, NULL, &runs, 3) < 0) {
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    snprintf(src_path, sizeof(src_path), "/tmp/vfu-bench-mig-%d-s.sock",
             getpid());
    snprintf(dst_path, sizeof(dst_path), "/tmp/vfu-bench-mig-%d-d.sock",
             getpid());
    spid = start_server(src_path);
    dpid = start_server(dst_path);

    for (int x = 0; x < 2; x++) {
        uint64_t xfer = x == 0 ? 1ull << 20 : 16ull << 20;

        src = connect_retry(src_path, xfer);
        dst = connect_retry(dst_path, xfer);
        if (src == NULL || dst == NULL) {
            fprintf(stderr, "cannot reach the servers\n");
            goto out;
        }
        for (int r = 0; r < runs; r++) {
            f[x].s[r] = STATE_SIZE / throughput_run(src, dst) / 1e9;
        }
        vfu_client_close(src);
        vfu_client_close(dst);
    }

    /* Guest memory: sparse memfds; only the dirtied pages get backing. */
    g.src_fd = memfd_create("bench-guest-src", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    dst_fd = memfd_create("bench-guest-dst", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    TRY(g.src_fd);
    TRY(dst_fd);
    TRY(ftruncate(g.src_fd, (off_t)MEM_SIZE));
    TRY(ftruncate(dst_fd, (off_t)MEM_SIZE));
    TRY(fcntl(g.src_fd, F_ADD_SEALS, F_SEAL_SHRINK));
    TRY(fcntl(dst_fd, F_ADD_SEALS, F_SEAL_SHRINK));
    g.src = mmap(NULL, MEM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED,
                 g.src_fd, 0);
    g.dst = mmap(NULL, MEM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, dst_fd, 0);
    if (g.src == MAP_FAILED || g.dst == MAP_FAILED) {
        perror("mmap");
        goto out;
    }
    src = connect_retry(src_path, 1ull << 20);
    dst = connect_retry(dst_path, 1ull << 20);
    if (src == NULL || dst == NULL) {
        fprintf(stderr, "cannot reach the servers\n");
        goto out;
    }
    TRY(vfu_client_dma_map(src, MEM_IOVA, MEM_SIZE,
                           VFIO_USER_F_DMA_REGION_READ |
                           VFIO_USER_F_DMA_REGION_WRITE, g.src_fd, 0, g.src));
    for (int r = 0; r < runs; r++) {
        f[2].s[r] = downtime_run(src, dst, &g, false, &stop_bytes[0]) / 1e6;
        f[3].s[r] = downtime_run(src, dst, &g, true, &stop_bytes[1]) / 1e6;
    }
    vfu_client_close(src);
    vfu_client_close(dst);

    printf("# bench_migration: %d runs; dirty pages copied per downtime: "
           "%llu; stop-copy bytes %llu / %llu\n", runs,
           (unsigned long long)g.pages, (unsigned long long)stop_bytes[0],
           (unsigned long long)stop_bytes[1]);
    bench_print_header(52, "");
    printf("  %-5s  %s\n", "unit", "target");
    for (int i = 0; i < 4; i++) {
        print_row(&f[i], runs);
    }
out:
    kill(spid, SIGTERM);
    kill(dpid, SIGTERM);
    waitpid(spid, NULL, 0);
    waitpid(dpid, NULL, 0);
    unlink(src_path);
    unlink(dst_path);
    return 0;
}
