/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 the vfu authors. */

/*
 * Region access round trips through vfu against the floor: a bare UNIX
 * socket ping-pong between two processes with the same message sizes,
 * measured in short blocks alternating with vfu's (bench_interleave).
 * Prints median/min/max per round trip over several runs, and the median
 * over all blocks of each vfu block's ratio to the floor around it.
 *
 *   bench_region [--pin] [--runs N]
 *
 * --pin puts both processes on CPU 0, as a VMM thread and a device sharing
 * a core would be; figures are far more stable that way.
 */

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench_util.h"

#define BIG (64 * 1024)

static char bar0[BIG];

/* ---- vfu ---- */

static ssize_t
bar0_access(vfu_ctx_t *ctx, char *buf, size_t count, loff_t off, bool is_write)
{
    if (is_write) {
        memcpy(bar0 + off, buf, count);
    } else {
        memcpy(buf, bar0 + off, count);
    }
    return (ssize_t)count;
}

static pid_t
start_server(const char *path, bool pin)
{
    pid_t pid = fork();
    if (pid != 0) {
        return pid;
    }
    bench_child_init(pin);
    vfu_ctx_t *ctx = vfu_create_ctx(VFU_TRANS_SOCK, path, 0, NULL, VFU_DEV_TYPE_PCI);
    if (ctx == NULL || vfu_pci_init(ctx, VFU_PCI_TYPE_CONVENTIONAL, 0, 0) < 0 ||
        vfu_setup_region(ctx, 0, BIG, bar0_access,
                         VFU_REGION_FLAG_RW | VFU_REGION_FLAG_MEM, NULL, 0, -1, 0) < 0 ||
        vfu_realize_ctx(ctx) < 0) {
        perror("server");
        _exit(1);
    }
    bench_serve_forever(ctx);
}

enum op { OP_RW4, OP_RW64K, OP_POSTED };

struct vfu_block {
    vfu_client_t *c;
    enum op op;
};

/* ns per operation over a block of iters. */
static double
vfu_block(void *arg, int iters)
{
    struct vfu_block *b = arg;
    static char buf[BIG];
    double t0 = bench_now_ns();

    for (int i = 0; i < iters; i++) {
        switch (b->op) {
        case OP_RW4:
            vfu_client_region_write(b->c, 0, 0, buf, 4);
            vfu_client_region_read(b->c, 0, 0, buf, 4);
            break;
        case OP_RW64K:
            vfu_client_region_write(b->c, 0, 0, buf, BIG);
            vfu_client_region_read(b->c, 0, 0, buf, BIG);
            break;
        case OP_POSTED:
            vfu_client_region_write_posted(b->c, 0, 0, buf, 4);
            break;
        }
    }
    if (b->op == OP_POSTED) {
        vfu_client_region_read(b->c, 0, 0, buf, 4);  /* wait until all landed */
    }
    return (bench_now_ns() - t0) / iters;
}

/* Blocks a run, and round trips a block: a few ms each. */
#define BLOCKS 32
#define N4 300
#define N64K 100
#define NPOSTED 100000

int
main(int argc, char **argv)
{
    bool pin = false;
    int runs;
    char path[64];
    /* Sizes on the wire: header 16 + access 16 (+ data); write, then read. */
    const size_t hdr = 32;
    const size_t req4[2] = { hdr + 4, hdr }, rep4[2] = { hdr, hdr + 4 };
    const size_t req64[2] = { hdr + BIG, hdr }, rep64[2] = { hdr, hdr + BIG };
    struct bench_floor fl4, fl64;
    static struct bench_arm f4, v4, f64, v64;
    struct bench_arm *a4 = &v4, *a64 = &v64;
    struct vfu_block b4, b64, bposted;
    double s[5][BENCH_MAX_RUNS];

    if (bench_parse_args(argc, argv, &pin, &runs, 5) < 0) {
        return 2;
    }
    if (pin) {
        bench_pin_cpu0();
    }
    if (bench_floor_start(&fl4, 2, req4, rep4, pin) < 0 ||
        bench_floor_start(&fl64, 2, req64, rep64, pin) < 0) {
        perror("floor");
        return 1;
    }
    snprintf(path, sizeof(path), "/tmp/vfu-bench-%d.sock", getpid());
    pid_t srv = start_server(path, pin);
    vfu_client_t *c = bench_connect(path, NULL, 500);
    if (c == NULL) {
        fprintf(stderr, "cannot reach the server\n");
        kill(srv, SIGTERM);
        return 1;
    }
    b4 = (struct vfu_block){ c, OP_RW4 };
    b64 = (struct vfu_block){ c, OP_RW64K };
    bposted = (struct vfu_block){ c, OP_POSTED };
    f4.fn = f64.fn = bench_floor_block;
    v4.fn = v64.fn = vfu_block;
    f4.arg = &fl4;
    f64.arg = &fl64;
    v4.arg = &b4;
    v64.arg = &b64;
    f4.iters = v4.iters = N4;
    f64.iters = v64.iters = N64K;

    for (int r = 0; r < runs; r++) {
        bench_interleave(&f4, &a4, 1, r * BLOCKS, BLOCKS);
        bench_interleave(&f64, &a64, 1, r * BLOCKS, BLOCKS);
        s[0][r] = bench_blocks_mean(f4.blk, r * BLOCKS, BLOCKS);
        s[1][r] = bench_blocks_mean(v4.blk, r * BLOCKS, BLOCKS);
        s[2][r] = bench_blocks_mean(f64.blk, r * BLOCKS, BLOCKS);
        s[3][r] = bench_blocks_mean(v64.blk, r * BLOCKS, BLOCKS);
        s[4][r] = vfu_block(&bposted, NPOSTED);
    }

    printf("# bench_region: %d runs of %d blocks (%d / %d round trips), %s\n",
           runs, BLOCKS, N4, N64K, pin ? "pinned to CPU 0" : "not pinned");
    bench_print_header(46, " us");
    printf(" %8s %7s\n", "x floor", "target");
    {
        static const char *const names[5] = {
            "floor: ping-pong, 4-byte write+read sizes",
            "vfu: REGION_WRITE+READ 4 B, C handler",
            "floor: ping-pong, 64 KiB write+read sizes",
            "vfu: REGION_WRITE+READ 64 KiB, C handler",
            "vfu: posted REGION_WRITE 4 B (per write)",
        };
        struct bench_stats st[5];

        for (int i = 0; i < 5; i++) {
            st[i] = bench_summarize(s[i], runs);
            bench_print_stats(46, names[i], &st[i], 1e3);
            if (i == 1) {
                bench_print_ratio(bench_median(v4.ratio, runs * BLOCKS), "<1.08x", 1.08);
            } else if (i == 3) {
                bench_print_ratio(bench_median(v64.ratio, runs * BLOCKS), NULL, 0);
            } else {
                printf("\n");
            }
        }
        printf("%-46s %10.0f\n", "vfu: posted writes per second", 1e9 / st[4].median);
    }

    vfu_client_close(c);
    kill(srv, SIGTERM);
    waitpid(srv, NULL, 0);
    unlink(path);
    bench_floor_stop(&fl4);
    bench_floor_stop(&fl64);
    return 0;
}
