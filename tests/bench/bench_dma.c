/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 the vfu authors. */

/*
 * DMA benchmarks against their floors, in one run:
 *  - DMA_MAP / DMA_UNMAP per op over a real socket to a server process,
 *    1,000 and 65,535 maps of one memfd (sent with every map, as QEMU
 *    does), against a bare ping-pong of the same message sizes; the maps
 *    go in blocks alternating with blocks of a ping-pong that passes an
 *    fd too (bench_interleave), and their "x floor" is the median of
 *    each block's ratio to the floor around it;
 *  - the same at 1,000,000 maps (LIBVFIO_USER_MAX_DMA_REGIONS): the
 *    server starts with 934,464 maps put straight into its table, and the
 *    client maps and unmaps the last 65,536 over the socket, so the
 *    figure is the cost of a map with the table (nearly) full, without a
 *    million round trips a run;
 *  - vfu_addr_to_sgl + vfu_sgl_get + vfu_sgl_put per op, in process, with
 *    1,000, 65,535 and 1,000,000 maps, one map or a random map each time;
 *  - the table's own map and unmap (no socket, no file) among 1,000,000
 *    maps, at the front and at the end of the IOVA space: the worst case
 *    of the index, which must not cost more at the front;
 *  - DMA_LOGGING_REPORT of 64 GiB logged at 4 KiB pages over the socket
 *    (one 2 MiB bitmap), and the in-process report alone;
 *  - the heap a context uses with 65,535 and 1,000,000 maps and with
 *    1 TiB logged.
 * Each figure is the median of --runs runs, with min and max; the socket
 * figures at 1,000,000 maps take at most RUNS_1M runs, as each run costs
 * as much as one at 65,535.
 *
 *   bench_dma [--pin] [--runs N]
 *
 * --pin puts both processes on CPU 0.
 */

#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench_util.h"
#include "dma_internal.h"

#define PG 4096ull
#define RW (VFIO_USER_F_DMA_REGION_READ | VFIO_USER_F_DMA_REGION_WRITE)
#define LOG_SPAN (64ull << 30)
#define LOG_BASE (1ull << 40)
/* Pages in the memfd every map is made from; map i uses page i % this. */
#define MEMFD_PAGES 65535u
/* The 1,000,000-map case: maps the client makes, on top of the prefill. */
#define N1M 1000000u
#define TAIL_1M 65536u
#define PREFILL_1M (N1M - TAIL_1M)
#define RUNS_1M 3

static void
die(const char *what)
{
    perror(what);
    exit(1);
}

/* One line of the table: samples in ns, shown in unit. */
struct figure {
    const char *name;
    const char *unit;           /* "us", "ns" or "ms" */
    double s[BENCH_MAX_RUNS];
    struct bench_stats st;
    int floor;                  /* index of the floor figure, or -1 */
    double ratio;               /* to the floor measured alongside, or 0 */
    const char *target;         /* what the issue asks, or NULL */
    double limit;               /* ratio (if floor) or ns the target allows */
    int runs;                   /* samples taken, if fewer than --runs */
};

enum {
    F_FLOOR_MAP, F_FLOOR_MAP_FD, F_MAP_1K, F_MAP_64K, F_MAP_1M, F_FLOOR_UNMAP,
    F_UNMAP_1K, F_UNMAP_64K, F_UNMAP_1M, F_SGL_1K, F_SGL_64K_SAME,
    F_SGL_64K_RAND, F_SGL_1M_SAME, F_SGL_1M_RAND, F_TABLE_1M_FRONT,
    F_TABLE_1M_END, F_REPORT_SOCK,
    F_REPORT_LOCAL, F_COUNT,
};

static struct figure fig[F_COUNT] = {
    [F_FLOOR_MAP] = { "floor: ping-pong, DMA_MAP sizes", "us", .floor = -1 },
    [F_FLOOR_MAP_FD] = { "floor: same, one fd passed each time", "us", .floor = -1 },
    [F_MAP_1K] = { "DMA_MAP, 1,000 maps (per map)", "us", .floor = F_FLOOR_MAP_FD,
                   .target = "<1.5x", .limit = 1.5 },
    [F_MAP_64K] = { "DMA_MAP, 65,535 maps (per map)", "us", .floor = F_FLOOR_MAP_FD,
                    .target = "<1.5x", .limit = 1.5 },
    [F_MAP_1M] = { "DMA_MAP, last 65,536 of 1,000,000 (per map)", "us",
                   .floor = F_FLOOR_MAP_FD },
    [F_FLOOR_UNMAP] = { "floor: ping-pong, DMA_UNMAP sizes", "us", .floor = -1 },
    [F_UNMAP_1K] = { "DMA_UNMAP, 1,000 maps (per unmap)", "us", .floor = F_FLOOR_UNMAP },
    [F_UNMAP_64K] = { "DMA_UNMAP, 65,535 maps (per unmap)", "us",
                      .floor = F_FLOOR_UNMAP },
    [F_UNMAP_1M] = { "DMA_UNMAP, last 65,536 of 1,000,000", "us",
                     .floor = F_FLOOR_UNMAP },
    [F_SGL_1K] = { "addr_to_sgl+get+put, 1,000 maps, random", "ns", .floor = -1 },
    [F_SGL_64K_SAME] = { "addr_to_sgl+get+put, 65,535 maps, one", "ns",
                         .floor = -1 },
    [F_SGL_64K_RAND] = { "addr_to_sgl+get+put, 65,535 maps, random", "ns",
                         .floor = -1, .target = "<40 ns", .limit = 40 },
    [F_SGL_1M_SAME] = { "addr_to_sgl+get+put, 1,000,000 maps, one", "ns",
                        .floor = -1 },
    [F_SGL_1M_RAND] = { "addr_to_sgl+get+put, 1,000,000 maps, random", "ns",
                        .floor = -1 },
    [F_TABLE_1M_FRONT] = { "table map+unmap, 1,000,000 maps, front", "ns",
                           .floor = -1 },
    [F_TABLE_1M_END] = { "table map+unmap, 1,000,000 maps, end", "ns",
                         .floor = -1 },
    [F_REPORT_SOCK] = { "DMA_LOGGING_REPORT 64 GiB at 4 KiB, socket", "ms",
                        .floor = -1, .target = "<2 ms", .limit = 2e6 },
    [F_REPORT_LOCAL] = { "  of which the bitmap itself (in process)", "ms",
                         .floor = -1 },
};

static double
unit_div(const char *unit)
{
    return unit[0] == 'm' ? 1e6 : unit[0] == 'u' ? 1e3 : 1;
}

/* ---- the floor: a bare ping-pong, optionally passing an fd ---- */

static int
send_all(int fd, const char *buf, size_t len, int pass_fd)
{
    char cbuf[CMSG_SPACE(sizeof(int))];
    struct iovec iov = { (void *)buf, len };
    struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };

    if (pass_fd >= 0) {
        struct cmsghdr *cm;

        memset(cbuf, 0, sizeof(cbuf));
        mh.msg_control = cbuf;
        mh.msg_controllen = sizeof(cbuf);
        cm = CMSG_FIRSTHDR(&mh);
        cm->cmsg_level = SOL_SOCKET;
        cm->cmsg_type = SCM_RIGHTS;
        cm->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(cm), &pass_fd, sizeof(int));
    }
    return sendmsg(fd, &mh, 0) == (ssize_t)len ? 0 : -1;
}

/* Read len bytes; close any fd that came along, as the server would. */
static int
recv_all(int fd, char *buf, size_t len)
{
    while (len > 0) {
        char cbuf[CMSG_SPACE(sizeof(int) * 4)];
        struct iovec iov = { buf, len };
        struct msghdr mh = {
            .msg_iov = &iov, .msg_iovlen = 1,
            .msg_control = cbuf, .msg_controllen = sizeof(cbuf),
        };
        ssize_t n = recvmsg(fd, &mh, 0);

        if (n <= 0) {
            return -1;
        }
        for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); cm != NULL;
             cm = CMSG_NXTHDR(&mh, cm)) {
            if (cm->cmsg_type == SCM_RIGHTS) {
                int got;
                memcpy(&got, CMSG_DATA(cm), sizeof(got));
                close(got);
            }
        }
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

/* ns per round trip of req bytes out and rep back, with a fresh pong. */
static double
floor_run(size_t req, size_t rep, int iters, bool pin)
{
    char buf[256] = { 0 };
    int sv[2];
    double t0, t;
    pid_t pid;

    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0) {
        die("socketpair");
    }
    pid = fork();
    if (pid == 0) {
        close(sv[0]);
        bench_child_init(pin);
        while (recv_all(sv[1], buf, req) == 0 && send_all(sv[1], buf, rep, -1) == 0) {
        }
        _exit(0);
    }
    close(sv[1]);
    t0 = bench_now_ns();
    for (int i = 0; i < iters; i++) {
        if (send_all(sv[0], buf, req, -1) < 0 || recv_all(sv[0], buf, rep) < 0) {
            die("ping-pong");
        }
    }
    t = (bench_now_ns() - t0) / iters;
    close(sv[0]);
    waitpid(pid, NULL, 0);
    return t;
}

/*
 * The same with an fd, kept alive for the whole run so that its blocks
 * can alternate with DMA_MAP's: a pong reading req bytes (closing the fd)
 * and answering rep bytes.
 */
struct fd_floor {
    int sock, memfd;
    pid_t pid;
    size_t req, rep;
};

static void
fd_floor_start(struct fd_floor *f, size_t req, size_t rep, bool pin)
{
    char buf[256] = { 0 };
    int sv[2];

    f->req = req;
    f->rep = rep;
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0) {
        die("socketpair");
    }
    f->pid = fork();
    if (f->pid < 0) {
        die("fork");
    }
    if (f->pid == 0) {
        close(sv[0]);
        bench_child_init(pin);
        while (recv_all(sv[1], buf, req) == 0 && send_all(sv[1], buf, rep, -1) == 0) {
        }
        _exit(0);
    }
    close(sv[1]);
    f->sock = sv[0];
    if ((f->memfd = memfd_create("floor", 0)) < 0) {
        die("memfd_create");
    }
}

/* Killed rather than sent EOF: the server forked later holds our end too. */
static void
fd_floor_stop(struct fd_floor *f)
{
    close(f->sock);
    close(f->memfd);
    kill(f->pid, SIGTERM);
    waitpid(f->pid, NULL, 0);
}

/* ns per round trip over a block of iters. */
static double
fd_floor_block(void *arg, int iters)
{
    struct fd_floor *f = arg;
    char buf[256] = { 0 };
    double t0 = bench_now_ns();

    for (int i = 0; i < iters; i++) {
        if (send_all(f->sock, buf, f->req, f->memfd) < 0 ||
            recv_all(f->sock, buf, f->rep) < 0) {
            die("ping-pong");
        }
    }
    return (bench_now_ns() - t0) / iters;
}

/* ---- DMA_MAP / DMA_UNMAP over the socket ---- */

static void
dma_register(vfu_ctx_t *ctx, vfu_dma_info_t *info)
{
}

static void
dma_unregister(vfu_ctx_t *ctx, vfu_dma_info_t *info)
{
}

static void
log_stderr(vfu_ctx_t *ctx, int level, const char *msg)
{
    fprintf(stderr, "server: %s\n", msg);
}

/*
 * A server allowing the default number of maps (0: 1,000,000), its table
 * holding prefill maps of fd already, at the IOVAs map_block gives maps
 * 0 to prefill - 1: as if a client had made them, without the round trips.
 */
static pid_t
start_server(const char *path, bool pin, int fd, uint32_t prefill)
{
    pid_t pid = fork();
    vfu_ctx_t *ctx;

    if (pid != 0) {
        return pid;
    }
    bench_child_init(pin);
    ctx = vfu_create_ctx(VFU_TRANS_SOCK, path, 0, NULL, VFU_DEV_TYPE_PCI);
    if (ctx == NULL || vfu_pci_init(ctx, VFU_PCI_TYPE_CONVENTIONAL, 0, 0) < 0 ||
        vfu_setup_device_dma(ctx, 0, dma_register, dma_unregister) < 0 ||
        vfu_setup_log(ctx, log_stderr, LOG_ERR) < 0 || vfu_realize_ctx(ctx) < 0) {
        perror("server set-up");
        _exit(1);
    }
    for (uint32_t i = 0; i < prefill; i++) {
        if (dma_table_add(ctx->dma, i * 2 * PG, PG, fd, (i % MEMFD_PAGES) * PG,
                          PROT_READ | PROT_WRITE, ctx->max_dma_maps) == NULL) {
            perror("server prefill");
            _exit(1);
        }
    }
    bench_serve_forever(ctx);
}

/*
 * Maps next to nmaps - 1, one page of fd each, at every other page of
 * IOVA, a block at a time: each block maps the next iters (fewer at the
 * end).
 */
struct map_state {
    vfu_client_t *c;
    int fd;
    uint32_t next, nmaps;
};

/* ns per map over a block. */
static double
map_block(void *arg, int iters)
{
    struct map_state *m = arg;
    uint32_t end = m->next + (uint32_t)iters;
    uint32_t first = m->next;
    double t0 = bench_now_ns();

    if (end > m->nmaps) {
        end = m->nmaps;
    }
    for (uint32_t i = first; i < end; i++) {
        if (vfu_client_dma_map(m->c, i * 2 * PG, PG, RW, m->fd,
                               (i % MEMFD_PAGES) * PG, NULL) < 0) {
            fprintf(stderr, "map %u of %u: ", i, m->nmaps);
            die("vfu_client_dma_map");
        }
    }
    m->next = end;
    return end > first ? (bench_now_ns() - t0) / (end - first) : 0;
}

/* Unmaps maps first to nmaps - 1 made by map_block; ns per unmap. */
static double
unmap_run(vfu_client_t *c, uint32_t first, uint32_t nmaps)
{
    double t0 = bench_now_ns();

    for (uint32_t i = first; i < nmaps; i++) {
        if (vfu_client_dma_unmap(c, i * 2 * PG, PG, 0) < 0) {
            die("vfu_client_dma_unmap");
        }
    }
    return (bench_now_ns() - t0) / (nmaps - first);
}

/*
 * One run of maps first to nmaps - 1 in blocks of a->iters maps between
 * blocks of the fd floor (the warm-up floor block is the only one thrown
 * away: a map block cannot be), into blocks r * nblocks on of a and
 * floor; then their unmaps.
 */
static void
map_unmap_run(struct bench_arm *floor, struct bench_arm *a, struct map_state *m,
              uint32_t first, uint32_t nmaps, int r, double *tmap, double *tunmap)
{
    uint32_t n = nmaps - first;
    int nblocks = (int)((n + (uint32_t)a->iters - 1) / (uint32_t)a->iters);

    m->next = first;
    m->nmaps = nmaps;
    bench_interleave(floor, &a, 1, r * nblocks, nblocks);
    *tmap = bench_blocks_mean(a->blk, r * nblocks, nblocks);
    *tunmap = unmap_run(m->c, first, nmaps);
}

/* ns per DMA_LOGGING_REPORT of the whole 64 GiB, all clean. */
static double
report_run(vfu_client_t *c, uint64_t *bm, size_t bytes)
{
    const int reps = 20;
    double t0 = bench_now_ns();

    for (int i = 0; i < reps; i++) {
        if (vfu_client_dma_logging_report(c, LOG_BASE, LOG_SPAN, PG, bm, bytes) < 0) {
            die("DMA_LOGGING_REPORT");
        }
    }
    return (bench_now_ns() - t0) / reps;
}

/* ---- in process: scatter/gather and the scale figures ---- */

static uint64_t
rnd(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* ns per translate + get + put of a 512-byte piece of one map. */
static double
sgl_run(vfu_ctx_t *ctx, uint32_t nmaps, bool random, int n)
{
    dma_sg_t *sg = calloc(1, dma_sg_size());
    uint64_t s = 88172645463325252ull;
    struct iovec iov;
    double t0 = bench_now_ns();

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
    return (bench_now_ns() - t0) / n;
}

/*
 * ns per map or unmap of the table alone: TABLE_OPS maps of a page into
 * the free pages between maps first to first + TABLE_OPS - 1 made by
 * local_ctx(), in descending order (so that each goes in at the front of
 * what is left), then their unmaps in ascending order.
 */
#define TABLE_OPS 16384u

static double
table_run(struct dma_table *t, uint32_t first)
{
    double t0 = bench_now_ns();

    for (uint32_t i = TABLE_OPS; i-- > 0;) {
        if (dma_table_add(t, (first + i) * 2 * PG + PG, PG, -1, 0,
                          PROT_READ | PROT_WRITE, UINT32_MAX) == NULL) {
            die("dma_table_add");
        }
    }
    for (uint32_t i = 0; i < TABLE_OPS; i++) {
        dma_table_del(t, dma_table_find(t, (first + i) * 2 * PG + PG, PG));
    }
    return (bench_now_ns() - t0) / (2 * TABLE_OPS);
}

static size_t
heap_used(void)
{
    struct mallinfo2 mi = mallinfo2();

    return mi.uordblks + mi.hblkhd;
}

/*
 * A context with maps added straight to its table, as DMA_MAP would; the
 * heap they took, and the ns an add took.
 */
static vfu_ctx_t *
local_ctx(uint32_t nmaps, int fd, size_t *heap, double *add_ns)
{
    vfu_ctx_t *ctx = vfu_create_ctx(VFU_TRANS_SOCK, "/tmp/vfu-bench-dma-local.sock", 0, NULL,
                                    VFU_DEV_TYPE_PCI);
    size_t before;
    double t0;

    if (ctx == NULL || vfu_setup_device_dma(ctx, 0, dma_register, dma_unregister) < 0) {
        die("local context");
    }
    before = heap_used();
    t0 = bench_now_ns();
    for (uint32_t i = 0; i < nmaps; i++) {
        if (dma_table_add(ctx->dma, i * 2 * PG, PG, fd, (i % MEMFD_PAGES) * PG,
                          PROT_READ | PROT_WRITE, ctx->max_dma_maps) == NULL) {
            die("dma_table_add");
        }
    }
    *add_ns = (bench_now_ns() - t0) / nmaps;
    *heap = heap_used() - before;
    return ctx;
}

static void
print_table(int runs, bool pin)
{
    printf("# bench_dma: %d runs (socket figures at 1,000,000 maps: %d), %s\n",
           runs, runs < RUNS_1M ? runs : RUNS_1M,
           pin ? "pinned to CPU 0" : "not pinned");
    printf("%-44s %4s %9s %9s %9s %7s %7s\n", "figure", "unit", "median", "min",
           "max", "x floor", "target");
    for (int i = 0; i < F_COUNT; i++) {
        struct figure *f = &fig[i];
        double d = unit_div(f->unit);
        bool met;

        printf("%-44s %4s %9.2f %9.2f %9.2f", f->name, f->unit, f->st.median / d,
               f->st.min / d, f->st.max / d);
        if (f->floor >= 0) {
            double ratio = f->ratio > 0 ? f->ratio : f->st.median / fig[f->floor].st.median;
            printf(" %7.2f", ratio);
            met = ratio < f->limit;
        } else {
            printf(" %7s", "");
            met = f->st.median < f->limit;
        }
        if (f->target != NULL) {
            printf(" %7s %s", f->target, met ? "ok" : "MISSED");
        }
        printf("\n");
    }
}

/* Starts a server and connects to it, with dirty logging on as a VMM's. */
static vfu_client_t *
server_up(char *path, size_t pathlen, const char *tag, bool pin, int memfd,
          uint32_t prefill, pid_t *srv)
{
    struct vfio_user_device_feature_dma_logging_range r = { LOG_BASE, LOG_SPAN };
    vfu_client_t *c;

    snprintf(path, pathlen, "/tmp/vfu-bench-dma-%s-%d.sock", tag, (int)getpid());
    *srv = start_server(path, pin, memfd, prefill);
    /* every 10 ms for up to a minute: a prefill comes before the listen */
    c = bench_connect(path, NULL, 6000);
    if (c == NULL) {
        fprintf(stderr, "cannot reach the server\n");
        kill(*srv, SIGTERM);
        exit(1);
    }
    if (vfu_client_dma_logging_start(c, PG, &r, 1) < 0) {
        die("DMA_LOGGING_START");
    }
    return c;
}

static void
server_down(vfu_client_t *c, const char *path, pid_t srv)
{
    vfu_client_dma_logging_stop(c);
    vfu_client_close(c);
    kill(srv, SIGTERM);
    waitpid(srv, NULL, 0);
    unlink(path);
}

int
main(int argc, char **argv)
{
    size_t bytes = LOG_SPAN / PG / 8, heap_maps, heap_maps_1m, heap_log;
    uint64_t *bm = malloc(bytes);
    bool pin = false;
    int runs, runs_1m, memfd;
    double add_ns, add_ns_1m;
    char path[64];
    vfu_client_t *c;
    vfu_ctx_t *lctx;
    pid_t srv;
    struct fd_floor ff;
    struct map_state ms;
    /* Maps a block: 1,000 maps in 4 blocks, 65,535 (and 65,536) in 32. */
    enum { B1K = 250, B64K = 2048, NB1K = 4, NB64K = 32 };
    static struct bench_arm f1k, f64k, f1m, a1k, a64k, a1m;

    if (bench_parse_args(argc, argv, &pin, &runs, 5) < 0) {
        return 2;
    }
    runs_1m = runs < RUNS_1M ? runs : RUNS_1M;
    if (bm == NULL) {
        die("malloc");
    }
    if (pin) {
        bench_pin_cpu0();
    }
    memfd = memfd_create("bench-dma", MFD_ALLOW_SEALING);
    if (memfd < 0 || ftruncate(memfd, (off_t)(MEMFD_PAGES * PG)) < 0 ||
        fcntl(memfd, F_ADD_SEALS, F_SEAL_SHRINK) < 0) {
        die("memfd");
    }
    /* Header 16 + vfio_user_dma_map 32, reply 16. */
    fd_floor_start(&ff, 48, 16, pin);
    c = server_up(path, sizeof(path), "small", pin, memfd, 0, &srv);
    /* A report is of memory the server maps: one page of the logged span. */
    if (vfu_client_dma_map(c, LOG_BASE, PG, VFIO_USER_F_DMA_REGION_READ |
                           VFIO_USER_F_DMA_REGION_WRITE, memfd, 0, NULL) < 0) {
        die("DMA_MAP of the logged span");
    }

    ms = (struct map_state){ .c = c, .fd = memfd };
    f1k = (struct bench_arm){ .fn = fd_floor_block, .arg = &ff, .iters = B1K };
    f64k = (struct bench_arm){ .fn = fd_floor_block, .arg = &ff, .iters = B64K };
    f1m = f64k;
    a1k = (struct bench_arm){ .fn = map_block, .arg = &ms, .iters = B1K, .no_warmup = true };
    a64k = (struct bench_arm){ .fn = map_block, .arg = &ms, .iters = B64K, .no_warmup = true };
    a1m = a64k;

    /* DMA_MAP sizes as above; unmap 16 + 24 both ways. */
    for (int r = 0; r < runs; r++) {
        fig[F_FLOOR_MAP].s[r] = floor_run(48, 16, 20000, pin);
        fig[F_FLOOR_UNMAP].s[r] = floor_run(40, 40, 20000, pin);
        map_unmap_run(&f1k, &a1k, &ms, 0, 1000, r, &fig[F_MAP_1K].s[r],
                      &fig[F_UNMAP_1K].s[r]);
        map_unmap_run(&f64k, &a64k, &ms, 0, 65535, r, &fig[F_MAP_64K].s[r],
                      &fig[F_UNMAP_64K].s[r]);
        /* the floor's blocks of both, weighted by their round trips */
        fig[F_FLOOR_MAP_FD].s[r] =
            (bench_blocks_mean(f1k.blk, r * NB1K, NB1K) * 1000 +
             bench_blocks_mean(f64k.blk, r * NB64K, NB64K) * NB64K * B64K) /
            (1000 + NB64K * B64K);
        fig[F_REPORT_SOCK].s[r] = report_run(c, bm, bytes);
    }
    fig[F_MAP_1K].ratio = bench_median(a1k.ratio, runs * NB1K);
    fig[F_MAP_64K].ratio = bench_median(a64k.ratio, runs * NB64K);
    server_down(c, path, srv);

    /*
     * 1,000,000 maps: the server starts with all but the last TAIL_1M, and
     * each run maps those and unmaps them again, leaving the prefill.
     */
    c = server_up(path, sizeof(path), "1m", pin, memfd, PREFILL_1M, &srv);
    ms.c = c;
    for (int r = 0; r < runs_1m; r++) {
        map_unmap_run(&f1m, &a1m, &ms, PREFILL_1M, N1M, r, &fig[F_MAP_1M].s[r],
                      &fig[F_UNMAP_1M].s[r]);
    }
    fig[F_MAP_1M].ratio = bench_median(a1m.ratio, runs_1m * NB64K);
    fig[F_MAP_1M].runs = fig[F_UNMAP_1M].runs = runs_1m;
    server_down(c, path, srv);
    fd_floor_stop(&ff);

    /* In process: the lookups, and what the state costs in memory. */
    lctx = local_ctx(1000, memfd, &heap_maps, &add_ns);
    for (int r = 0; r < runs; r++) {
        fig[F_SGL_1K].s[r] = sgl_run(lctx, 1000, true, 2000000);
    }
    vfu_destroy_ctx(lctx);
    lctx = local_ctx(65535, memfd, &heap_maps, &add_ns);
    for (int r = 0; r < runs; r++) {
        fig[F_SGL_64K_SAME].s[r] = sgl_run(lctx, 65535, false, 2000000);
        fig[F_SGL_64K_RAND].s[r] = sgl_run(lctx, 65535, true, 2000000);
    }
    vfu_destroy_ctx(lctx);
    /* fewer lookups: a random one misses every cache at this size */
    lctx = local_ctx(N1M, memfd, &heap_maps_1m, &add_ns_1m);
    for (int r = 0; r < runs; r++) {
        fig[F_SGL_1M_SAME].s[r] = sgl_run(lctx, N1M, false, 200000);
        fig[F_SGL_1M_RAND].s[r] = sgl_run(lctx, N1M, true, 200000);
    }
    for (int r = 0; r < runs; r++) {
        fig[F_TABLE_1M_FRONT].s[r] = table_run(lctx->dma, 0);
        fig[F_TABLE_1M_END].s[r] = table_run(lctx->dma, N1M - TABLE_OPS);
    }
    vfu_destroy_ctx(lctx);
    {
        struct dirty_range_req req = { LOG_BASE, LOG_SPAN };
        struct dirty_bits *log = dirty_bits_new(PG, &req, 1, 256u << 20);
        size_t before;

        if (log == NULL) {
            die("dirty_bits_new");
        }
        for (int r = 0; r < runs; r++) {
            double t0 = bench_now_ns();
            dirty_bits_report(log, LOG_BASE, LOG_SPAN, PG, bm);
            fig[F_REPORT_LOCAL].s[r] = bench_now_ns() - t0;
        }
        dirty_bits_free(log);
        req.length = 1ull << 40;
        before = heap_used();
        log = dirty_bits_new(PG, &req, 1, 256u << 20);
        heap_log = heap_used() - before;
        if (log == NULL) {
            die("dirty_bits_new 1 TiB");
        }
        dirty_bits_free(log);
    }
    close(memfd);

    for (int i = 0; i < F_COUNT; i++) {
        fig[i].st = bench_summarize(fig[i].s, fig[i].runs > 0 ? fig[i].runs : runs);
    }
    print_table(runs, pin);
    printf("heap for 65,535 maps: %.1f MiB (%.0f bytes a map, %.0f ns an add); "
           "for 1,000,000 maps: %.1f MiB (%.0f bytes a map, %.0f ns an add); "
           "for a 1 TiB dirty log at 4 KiB: %.1f MiB\n",
           heap_maps / 1048576.0, (double)heap_maps / 65535, add_ns,
           heap_maps_1m / 1048576.0, (double)heap_maps_1m / N1M, add_ns_1m,
           heap_log / 1048576.0);
    free(bm);
    return 0;
}
