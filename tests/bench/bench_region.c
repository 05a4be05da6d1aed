/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 the vfu authors. */

/*
 * Region access round trips through vfu against the floor: a bare UNIX
 * socket ping-pong between two processes with the same message sizes.
 * Prints median/min/max per operation over several runs and the ratio of
 * each median to its floor.
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
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench_util.h"

#define BIG (64 * 1024)

static char bar0[BIG];

struct figure {
    const char *name;
    struct bench_stats st;
    double floor;  /* median of the matching floor, or 0 */
};

/* ---- the floor: a raw ping-pong ---- */

static int
full_io(int fd, void *buf, size_t len, bool wr)
{
    char *p = buf;
    while (len > 0) {
        ssize_t n = wr ? write(fd, p, len) : read(fd, p, len);
        if (n <= 0) {
            return -1;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Echo server: read req bytes, answer rep bytes, until EOF. */
static void
pong(int fd, size_t req, size_t rep)
{
    char *buf = calloc(1, req > rep ? req : rep);
    while (full_io(fd, buf, req, false) == 0 && full_io(fd, buf, rep, true) == 0) {
    }
    free(buf);
    _exit(0);
}

static double
floor_run(size_t req, size_t rep, int iters, bool pin)
{
    int sv[2];
    socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
    pid_t pid = fork();
    if (pid == 0) {
        close(sv[0]);
        if (pin) {
            bench_pin_cpu0();
        }
        pong(sv[1], req, rep);
    }
    close(sv[1]);
    char *buf = calloc(1, req > rep ? req : rep);
    double t0 = bench_now_ns();
    for (int i = 0; i < iters; i++) {
        if (full_io(sv[0], buf, req, true) < 0 || full_io(sv[0], buf, rep, false) < 0) {
            break;
        }
    }
    double t = (bench_now_ns() - t0) / iters;
    close(sv[0]);
    waitpid(pid, NULL, 0);
    free(buf);
    return t;
}

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
    if (pin) {
        bench_pin_cpu0();
    }
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

static double
vfu_run(vfu_client_t *c, enum op op, int iters)
{
    static char buf[BIG];
    double t0 = bench_now_ns();

    for (int i = 0; i < iters; i++) {
        switch (op) {
        case OP_RW4:
            vfu_client_region_write(c, 0, 0, buf, 4);
            vfu_client_region_read(c, 0, 0, buf, 4);
            break;
        case OP_RW64K:
            vfu_client_region_write(c, 0, 0, buf, BIG);
            vfu_client_region_read(c, 0, 0, buf, BIG);
            break;
        case OP_POSTED:
            vfu_client_region_write_posted(c, 0, 0, buf, 4);
            break;
        }
    }
    if (op == OP_POSTED) {
        vfu_client_region_read(c, 0, 0, buf, 4);  /* wait until all landed */
    }
    return (bench_now_ns() - t0) / iters;
}

int
main(int argc, char **argv)
{
    bool pin = false;
    int runs;
    char path[64];

    if (bench_parse_args(argc, argv, &pin, &runs, 5) < 0) {
        return 2;
    }
    if (pin) {
        bench_pin_cpu0();
    }
    snprintf(path, sizeof(path), "/tmp/vfu-bench-%d.sock", getpid());
    pid_t srv = start_server(path, pin);
    vfu_client_t *c = bench_connect(path, NULL, 500);
    if (c == NULL) {
        fprintf(stderr, "cannot reach the server\n");
        kill(srv, SIGTERM);
        return 1;
    }

    /* Sizes on the wire: header 16 + access 16 (+ data). */
    const size_t hdr = 32;
    const int n4 = 20000, n64 = 2000;
    double s[7][BENCH_MAX_RUNS];
    for (int r = 0; r < runs; r++) {
        s[0][r] = floor_run(hdr + 4, hdr, n4, pin) +
                  floor_run(hdr, hdr + 4, n4, pin);
        s[1][r] = vfu_run(c, OP_RW4, n4);
        s[2][r] = floor_run(hdr + BIG, hdr, n64, pin) +
                  floor_run(hdr, hdr + BIG, n64, pin);
        s[3][r] = vfu_run(c, OP_RW64K, n64);
        s[4][r] = vfu_run(c, OP_POSTED, n4 * 5);
    }
    struct figure f[5] = {
        { .name = "floor: ping-pong, 4-byte write+read sizes" },
        { .name = "vfu: REGION_WRITE+READ 4 B, C handler" },
        { .name = "floor: ping-pong, 64 KiB write+read sizes" },
        { .name = "vfu: REGION_WRITE+READ 64 KiB, C handler" },
        { .name = "vfu: posted REGION_WRITE 4 B (per write)" },
    };
    for (int i = 0; i < 5; i++) {
        f[i].st = bench_summarize(s[i], runs);
    }
    f[1].floor = f[0].st.median;
    f[3].floor = f[2].st.median;

    printf("# bench_region: %d runs, %s\n", runs, pin ? "pinned to CPU 0" : "not pinned");
    bench_print_header(46, " us");
    printf(" %8s\n", "x floor");
    for (int i = 0; i < 5; i++) {
        bench_print_stats(46, f[i].name, &f[i].st, 1e3);
        if (f[i].floor > 0) {
            printf(" %8.2f", f[i].st.median / f[i].floor);
        }
        printf("\n");
    }
    printf("%-46s %10.0f\n", "vfu: posted writes per second", 1e9 / f[4].st.median);

    vfu_client_close(c);
    kill(srv, SIGTERM);
    waitpid(srv, NULL, 0);
    unlink(path);
    return 0;
}
