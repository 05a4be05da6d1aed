/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 the vfu authors. */

/*
 * What a Lua handler costs: 4-byte REGION_WRITE + REGION_READ round trips
 * against the same register file served by a C handler and by a Lua
 * handler (the vfu Lua module, as vfu-lua runs it: sandbox, protected
 * call, time budget), in one run, side by side with the floor (a bare
 * socket ping-pong of the same message sizes): short blocks of floor, C
 * and Lua alternate (bench_interleave). Prints median/min/max per round
 * trip over several runs; the median over all blocks of each block's ratio
 * to the floor around it; and, from the C and Lua blocks of each round,
 * the Lua overhead per access (a round trip is two accesses) in ns and
 * the Lua round trip as a ratio of the C one.
 *
 *   bench_lua [--pin] [--runs N]
 *
 * --pin puts every process on CPU 0, as a VMM thread and a device sharing
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
#include "lvfu.h"

#define REGS 4096

/* The device of both servers: 4 KiB of registers a client writes and
 * reads back. */
static const char lua_device[] =
    "local vfu = require 'vfu'\n"
    "local regs = {}\n"
    "return vfu.device { name = 'bench', vendor = 0x1234, device = 0x0001,\n"
    "  bars = { [0] = { size = 4096,\n"
    "    read = function(off, size) return regs[off] or 0 end,\n"
    "    write = function(off, size, v) regs[off] = v end } } }\n";

/* ---- the C server ---- */

static ssize_t
regs_access(vfu_ctx_t *ctx, char *buf, size_t count, loff_t off, bool is_write)
{
    static char regs[REGS];

    (void)ctx;
    if (is_write) {
        memcpy(regs + off, buf, count);
    } else {
        memcpy(buf, regs + off, count);
    }
    return (ssize_t)count;
}

static void
serve_c(const char *path)
{
    vfu_ctx_t *ctx = vfu_create_ctx(VFU_TRANS_SOCK, path, 0, NULL, VFU_DEV_TYPE_PCI);

    if (ctx == NULL || vfu_pci_init(ctx, VFU_PCI_TYPE_CONVENTIONAL, 0, 0) < 0 ||
        vfu_setup_region(ctx, 0, REGS, regs_access,
                         VFU_REGION_FLAG_RW | VFU_REGION_FLAG_MEM, NULL, 0, -1, 0) < 0 ||
        vfu_realize_ctx(ctx) < 0) {
        perror("C server");
        _exit(1);
    }
    bench_serve_forever(ctx);
}

/* ---- the Lua server ---- */

static void
serve_lua(const char *path)
{
    lua_State *L = lvfu_newstate((size_t)64 << 20);
    struct lvfu_dev *dev;

    if (L == NULL) {
        _exit(1);
    }
    lvfu_open_sandbox(L, false);
    lvfu_rt(L)->budget_ms = 100;
    if (luaL_loadbufferx(L, lua_device, sizeof(lua_device) - 1, "=bench",
                         "t") != LUA_OK ||
        lvfu_pcall_budget(L, 0, 1, 0) < 0) {
        fprintf(stderr, "Lua server: %s\n", lua_tostring(L, -1));
        _exit(1);
    }
    dev = luaL_testudata(L, -1, LVFU_DEVICE_MT);
    if (dev == NULL || lvfu_dev_listen(L, dev, path) < 0) {
        perror("Lua server");
        _exit(1);
    }
    lvfu_loop_run(L, dev, -1);
    _exit(0);
}

static pid_t
start_server(void (*serve)(const char *), const char *path, bool pin)
{
    pid_t pid = fork();

    if (pid != 0) {
        return pid;
    }
    bench_child_init(pin);
    serve(path);
    _exit(0);
}

/* ns per 4-byte write + read over a block; checks the value comes back. */
static double
round_trips(void *arg, int iters)
{
    vfu_client_t *c = arg;
    uint32_t v, back = 0;
    double t0 = bench_now_ns();

    for (int i = 0; i < iters; i++) {
        v = (uint32_t)i;
        if (vfu_client_region_write(c, 0, 8, &v, 4) < 0 ||
            vfu_client_region_read(c, 0, 8, &back, 4) < 0 || back != v) {
            fprintf(stderr, "round trip %d failed: %s\n", i, strerror(errno));
            exit(1);
        }
    }
    return (bench_now_ns() - t0) / iters;
}

/* Blocks a run, and round trips a block: a few ms each. */
#define BLOCKS 32
#define ITERS 300

int
main(int argc, char **argv)
{
    bool pin = false;
    int runs, nb;
    char path_c[64], path_lua[64];
    pid_t srv_c, srv_lua;
    vfu_client_t *cc, *cl;
    /* Sizes on the wire: header 16 + access 16 (+ data); write, then read. */
    const size_t req[2] = { 32 + 4, 32 }, rep[2] = { 32, 32 + 4 };
    struct bench_floor fl;
    static struct bench_arm af, ac, al;
    struct bench_arm *arms[2] = { &ac, &al };
    static double diff[BENCH_MAX_BLOCKS], lua_c[BENCH_MAX_BLOCKS];
    double s[3][BENCH_MAX_RUNS];
    static const char *const names[3] = {
        "floor: ping-pong, 4-byte write+read sizes",
        "REGION_WRITE+READ 4 B, C handler",
        "REGION_WRITE+READ 4 B, Lua handler",
    };

    if (bench_parse_args(argc, argv, &pin, &runs, 5) < 0) {
        return 2;
    }
    if (pin) {
        bench_pin_cpu0();
    }
    if (bench_floor_start(&fl, 2, req, rep, pin) < 0) {
        perror("floor");
        return 1;
    }
    snprintf(path_c, sizeof(path_c), "/tmp/vfu-bench-c-%d.sock", getpid());
    snprintf(path_lua, sizeof(path_lua), "/tmp/vfu-bench-lua-%d.sock", getpid());
    srv_c = start_server(serve_c, path_c, pin);
    srv_lua = start_server(serve_lua, path_lua, pin);
    cc = bench_connect(path_c, NULL, 500);
    cl = bench_connect(path_lua, NULL, 500);
    if (cc == NULL || cl == NULL) {
        fprintf(stderr, "cannot reach the servers\n");
        kill(srv_c, SIGTERM);
        kill(srv_lua, SIGTERM);
        return 1;
    }
    af = (struct bench_arm){ .fn = bench_floor_block, .arg = &fl, .iters = ITERS };
    ac = (struct bench_arm){ .fn = round_trips, .arg = cc, .iters = ITERS };
    al = (struct bench_arm){ .fn = round_trips, .arg = cl, .iters = ITERS };

    /* warm up both servers beyond the first block (Lua's table growth) */
    round_trips(cc, 1000);
    round_trips(cl, 1000);
    for (int r = 0; r < runs; r++) {
        bench_interleave(&af, arms, 2, r * BLOCKS, BLOCKS);
        s[0][r] = bench_blocks_mean(af.blk, r * BLOCKS, BLOCKS);
        s[1][r] = bench_blocks_mean(ac.blk, r * BLOCKS, BLOCKS);
        s[2][r] = bench_blocks_mean(al.blk, r * BLOCKS, BLOCKS);
    }
    nb = runs * BLOCKS;
    for (int j = 0; j < nb; j++) {
        diff[j] = (al.blk[j] - ac.blk[j]) / 2;
        lua_c[j] = al.blk[j] / ac.blk[j];
    }

    printf("# bench_lua: %d runs of %d blocks of %d round trips, %s\n", runs,
           BLOCKS, ITERS, pin ? "pinned to CPU 0" : "not pinned");
    bench_print_header(41, " us");
    printf(" %8s %7s\n", "x floor", "target");
    for (int i = 0; i < 3; i++) {
        struct bench_stats st = bench_summarize(s[i], runs);

        bench_print_stats(41, names[i], &st, 1e3);
        if (i == 0) {
            printf("\n");
        } else if (i == 1) {
            bench_print_ratio(bench_median(ac.ratio, nb), NULL, 0);
        } else {
            bench_print_ratio(bench_median(al.ratio, nb), "<1.15x", 1.15);
        }
    }
    printf("%-41s %10.0f\n", "Lua overhead per access, ns", bench_median(diff, nb));
    printf("%-41s %10.2f\n", "Lua round trip / C round trip", bench_median(lua_c, nb));

    vfu_client_close(cc);
    vfu_client_close(cl);
    kill(srv_c, SIGTERM);
    kill(srv_lua, SIGTERM);
    waitpid(srv_c, NULL, 0);
    waitpid(srv_lua, NULL, 0);
    unlink(path_c);
    unlink(path_lua);
    bench_floor_stop(&fl);
    return 0;
}
