/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 the vfu authors. */

/*
 * The NVMe controller in Lua (devices/nvme.lua, run by vfu-lua as a child
 * process, its 64 MiB memory namespace) driven by the host driver of the
 * tests (tests/nvme_host.c): 4 KiB random reads and writes at queue depth
 * 1 and 32 on one I/O queue pair, queues and data in a memfd the device
 * maps, doorbells as posted REGION_WRITEs, completions on an MSI-X
 * eventfd. Short blocks of each alternate with blocks of the floor (a bare
 * socket ping-pong of a 4-byte REGION_WRITE + READ's sizes, as in
 * bench_region), so that the QD1 latency is measured side by side with it.
 * Prints median/min/max over the runs of QD1 latency and of IOPS, the QD1
 * latency as a ratio of the floor (median of the per-block ratios), and
 * what one command costs in messages and interrupts (counted by the host).
 *
 *   bench_nvme [--pin] [--runs N] [--callgrind]
 *
 * --pin puts every process on CPU 0. --callgrind instead runs the device
 * under valgrind's callgrind a few times with and without a number of
 * commands, and prints the instructions the device process executes per
 * command (the difference between runs), split by where they run: the
 * Lua VM and API (liblua), vfu (core, bindings and runner: vfu-lua), libc.
 */

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench_util.h"
#include "nvme_host.h"

#ifndef VFU_LUA
#define VFU_LUA ""
#endif
#ifndef NVME_SCRIPT
#define NVME_SCRIPT ""
#endif

/* The device script: devices/nvme.lua, or $VFU_NVME_SCRIPT. */
static const char *
nvme_script(void)
{
    const char *s = getenv("VFU_NVME_SCRIPT");

    return s != NULL && s[0] != '\0' ? s : NVME_SCRIPT;
}

#define QD_MAX 32
#define IO_SIZE 4096u
#define IOQ_SIZE 64
#define HOST_MEM (8u << 20)
#define REAP_TIMEOUT_MS 10000

/* Blocks a run; commands a block (a few ms each). */
#define BLOCKS 16
#define ITERS_QD1 200
#define ITERS_QD32 1000

struct bench_nvme {
    struct nvme_host *h;
    struct nvme_queue *q;
    uint8_t *buf[QD_MAX];
    uint64_t buf_iova[QD_MAX];
    uint64_t slots;         /* 4 KiB slots in the namespace */
    uint32_t nlb;           /* blocks per 4 KiB */
    uint64_t rng;
};

/* xorshift64*: a random 4 KiB slot. */
static uint64_t
next_slot(struct bench_nvme *b)
{
    b->rng ^= b->rng >> 12;
    b->rng ^= b->rng << 25;
    b->rng ^= b->rng >> 27;
    return (b->rng * 2685821657736338717ull) % b->slots;
}

static void
die(const char *what)
{
    fprintf(stderr, "bench_nvme: %s: %s\n", what, strerror(errno));
    exit(1);
}

static void
submit(struct bench_nvme *b, uint8_t op, uint16_t cid)
{
    if (nvme_host_rw(b->h, b->q, op, cid, next_slot(b) * b->nlb, b->nlb,
                     b->buf_iova[cid]) < 0) {
        die("submit");
    }
}

/* Reap at least one completion; fails the benchmark on an error status. */
static int
reap(struct bench_nvme *b, struct nvme_cqe *cqe, int max)
{
    int n = nvme_host_reap(b->h, b->q, cqe, max, REAP_TIMEOUT_MS);

    if (n < 0) {
        die("reap");
    }
    for (int i = 0; i < n; i++) {
        if (NVME_CQE_STATUS(&cqe[i]) != 0) {
            fprintf(stderr, "bench_nvme: command %u failed, status 0x%x\n",
                    cqe[i].cid, NVME_CQE_STATUS(&cqe[i]));
            exit(1);
        }
    }
    return n;
}

/*
 * iters commands of op, qd in flight: at qd 1 submit, ring, reap; deeper,
 * every completion is replaced by a new command at once and the batch
 * rung with one doorbell. ns per command.
 */
static double
run_io(struct bench_nvme *b, uint8_t op, int qd, int iters)
{
    struct nvme_cqe cqe[QD_MAX];
    int submitted = 0, done = 0;
    double t0 = bench_now_ns();

    for (int cid = 0; cid < qd && submitted < iters; cid++, submitted++) {
        submit(b, op, (uint16_t)cid);
    }
    if (nvme_host_ring(b->h, b->q) < 0) {
        die("doorbell");
    }
    while (done < iters) {
        int n = reap(b, cqe, QD_MAX), again = 0;

        done += n;
        for (int i = 0; i < n && submitted < iters; i++, submitted++, again++) {
            submit(b, op, cqe[i].cid);
        }
        if (again > 0 && nvme_host_ring(b->h, b->q) < 0) {
            die("doorbell");
        }
    }
    return (bench_now_ns() - t0) / iters;
}

/* One arm of the interleave: an op at a depth, and what it counted. */
struct io_arm {
    struct bench_nvme *b;
    uint8_t op;
    int qd;
    struct nvme_host_counts n;      /* summed over its blocks */
};

static double
io_block(void *arg, int iters)
{
    struct io_arm *a = arg;
    struct nvme_host_counts before = a->b->h->n, *now = &a->b->h->n;
    double ns = run_io(a->b, a->op, a->qd, iters);

    a->n.doorbells += now->doorbells - before.doorbells;
    a->n.interrupts += now->interrupts - before.interrupts;
    a->n.wakeups += now->wakeups - before.wakeups;
    a->n.commands += now->commands - before.commands;
    a->n.reg_reads += now->reg_reads - before.reg_reads;
    a->n.reg_writes += now->reg_writes - before.reg_writes;
    return ns;
}

/* ---- the device and the host ---- */

static char sock_path[64], log_path[64];

static void
print_log(void)
{
    char line[512];
    FILE *f = fopen(log_path, "r");

    if (f == NULL) {
        return;
    }
    fprintf(stderr, "--- device log\n");
    while (fgets(line, sizeof(line), f) != NULL) {
        fputs(line, stderr);
    }
    fclose(f);
}

/* Starts the device (under a wrapper such as valgrind if wrap is not NULL). */
static pid_t
start_device(char *const *wrap, int nwrap, bool pin)
{
    char *argv[16];
    int n = 0;
    pid_t pid;

    for (int i = 0; i < nwrap; i++) {
        argv[n++] = wrap[i];
    }
    argv[n++] = (char *)VFU_LUA;
    argv[n++] = (char *)nvme_script();
    argv[n++] = sock_path;
    argv[n] = NULL;
    pid = nvme_device_spawn(argv, sock_path, log_path, pin);
    if (pid < 0) {
        print_log();
        die("starting the device");
    }
    return pid;
}

static void
host_up(struct bench_nvme *b)
{
    b->h = nvme_host_open(sock_path, HOST_MEM, IO_SIZE);
    if (b->h == NULL) {
        print_log();
        die("connecting to the device");
    }
    b->h->timeout_ms = REAP_TIMEOUT_MS;
    if (nvme_host_enable(b->h, 32) < 0) {
        print_log();
        die("enabling the controller");
    }
    b->q = nvme_host_create_ioq(b->h, 1, IOQ_SIZE);
    if (b->q == NULL) {
        print_log();
        die("creating the I/O queues");
    }
    for (int i = 0; i < QD_MAX; i++) {
        b->buf[i] = nvme_host_alloc(b->h, IO_SIZE, &b->buf_iova[i]);
        if (b->buf[i] == NULL) {
            die("host memory");
        }
        memset(b->buf[i], 0x5a + i, IO_SIZE);
    }
    if (b->h->lba_size > IO_SIZE) {
        errno = ENOTSUP;
        die("block size above 4 KiB");
    }
    b->nlb = IO_SIZE / b->h->lba_size;
    b->slots = b->h->nsze / b->nlb;
    b->rng = 0x9e3779b97f4a7c15ull;
    if (b->slots == 0) {
        errno = ENOSPC;
        die("namespace smaller than 4 KiB");
    }
}

static void
host_down(struct bench_nvme *b)
{
    nvme_host_delete_ioq(b->h, 1);
    nvme_host_shutdown(b->h);
    nvme_host_close(b->h);
    b->h = NULL;
}

/* ---- the side mode: instructions per command under callgrind ---- */

enum { OBJ_LUA, OBJ_VFU, OBJ_LIBC, OBJ_OTHER, OBJ_N };
static const char *const obj_names[OBJ_N] = { "liblua", "vfu-lua", "libc", "other" };

static int
obj_kind(const char *name)
{
    const char *base = strrchr(name, '/');

    base = base != NULL ? base + 1 : name;
    if (strncmp(base, "liblua", 6) == 0) {
        return OBJ_LUA;
    }
    if (strcmp(base, "vfu-lua") == 0) {
        return OBJ_VFU;
    }
    if (strncmp(base, "libc.so", 7) == 0 || strncmp(base, "libc-", 5) == 0) {
        return OBJ_LIBC;
    }
    return OBJ_OTHER;
}

/*
 * Exclusive Ir by object from a callgrind output file: cost lines count
 * for the current ob=, but the line after calls= (a call's inclusive cost)
 * does not. Names are compressed: "ob=(n) name" or "cob=(n) name" defines
 * n, "ob=(n)" reuses it.
 */
#define CG_IDS 4096

static int
cg_object(char *line, signed char kinds[CG_IDS])
{
    char *p = strchr(line, '=') + 1;
    long id = -1;

    line[strcspn(line, "\n")] = '\0';
    if (*p == '(') {
        id = strtol(p + 1, &p, 10);
        p = strchr(p, ')');
        p = p != NULL ? p + 1 : line + strlen(line);
        while (*p == ' ') {
            p++;
        }
    }
    if (id < 0 || id >= CG_IDS) {
        return *p != '\0' ? obj_kind(p) : OBJ_OTHER;
    }
    if (*p != '\0') {
        kinds[id] = (signed char)obj_kind(p);
    }
    return kinds[id] >= 0 ? kinds[id] : OBJ_OTHER;
}

static int
callgrind_costs(const char *path, double cost[OBJ_N])
{
    static signed char kinds[CG_IDS];
    char line[4096];
    int cur = OBJ_OTHER;
    bool skip_next = false;
    FILE *f = fopen(path, "r");

    if (f == NULL) {
        return -1;
    }
    memset(kinds, -1, sizeof(kinds));
    for (int k = 0; k < OBJ_N; k++) {
        cost[k] = 0;
    }
    while (fgets(line, sizeof(line), f) != NULL) {
        if (strncmp(line, "ob=", 3) == 0) {
            cur = cg_object(line, kinds);
        } else if (strncmp(line, "cob=", 4) == 0) {
            cg_object(line, kinds);     /* may define a name */
        } else if (strncmp(line, "calls=", 6) == 0) {
            skip_next = true;
        } else if ((line[0] >= '0' && line[0] <= '9') || line[0] == '+' ||
                   line[0] == '-' || line[0] == '*') {
            char *p = strchr(line, ' ');

            if (skip_next) {
                skip_next = false;
            } else if (p != NULL) {
                /* "position cost" */
                cost[cur] += strtod(p, NULL);
            }
        }
    }
    fclose(f);
    return 0;
}

/* One device life under callgrind: connect, bring up, commands, down. */
static int
callgrind_run(uint8_t op, int qd, int iters, double cost[OBJ_N])
{
    char out[96], opt[128];
    char *wrap[] = { "valgrind", "--tool=callgrind", opt, "-q" };
    struct bench_nvme b = { 0 };
    pid_t pid;
    int status;

    snprintf(out, sizeof(out), "/tmp/vfu-bench-nvme-%d.callgrind", getpid());
    snprintf(opt, sizeof(opt), "--callgrind-out-file=%s", out);
    pid = start_device(wrap, 4, false);
    host_up(&b);
    if (iters > 0) {
        run_io(&b, op, qd, iters);
    }
    host_down(&b);
    status = nvme_device_stop(pid);
    if (!WIFEXITED(status) || callgrind_costs(out, cost) < 0) {
        fprintf(stderr, "bench_nvme: callgrind run failed (status 0x%x)\n", status);
        unlink(out);
        return -1;
    }
    unlink(out);
    return 0;
}

static int
callgrind_mode(void)
{
    const int n = 2000;
    static const struct { const char *name; uint8_t op; int qd; } w[] = {
        { "QD1 4 KiB random read", NVME_CMD_READ, 1 },
        { "QD1 4 KiB random write", NVME_CMD_WRITE, 1 },
        { "QD32 4 KiB random read", NVME_CMD_READ, 32 },
    };
    double base[OBJ_N], with[OBJ_N];

    if (system("valgrind --version >/dev/null 2>&1") != 0) {
        printf("# bench_nvme --callgrind: skipped, no valgrind\n");
        return 0;
    }
    printf("# bench_nvme --callgrind: instructions the device process runs per "
           "command, (a run with %d commands - a run with none) / %d;\n"
           "# liblua: the Lua VM and C API; vfu-lua: vfu's core, the bindings "
           "and the runner; libc: memcpy, syscall wrappers...\n", n, n);
    printf("%-26s %10s", "workload", "total");
    for (int k = 0; k < OBJ_N; k++) {
        printf(" %10s", obj_names[k]);
    }
    printf("\n");
    if (callgrind_run(NVME_CMD_READ, 1, 0, base) < 0) {
        return 1;
    }
    for (size_t i = 0; i < sizeof(w) / sizeof(w[0]); i++) {
        double total = 0;

        if (callgrind_run(w[i].op, w[i].qd, n, with) < 0) {
            return 1;
        }
        for (int k = 0; k < OBJ_N; k++) {
            total += (with[k] - base[k]) / n;
        }
        printf("%-26s %10.0f", w[i].name, total);
        for (int k = 0; k < OBJ_N; k++) {
            printf(" %10.0f", (with[k] - base[k]) / n);
        }
        printf("\n");
    }
    return 0;
}

/* ---- the benchmark ---- */

#define NARMS 4

int
main(int argc, char **argv)
{
    static const struct { const char *name; uint8_t op; int qd; int iters; } kinds[NARMS] = {
        { "QD1 4 KiB random read", NVME_CMD_READ, 1, ITERS_QD1 },
        { "QD1 4 KiB random write", NVME_CMD_WRITE, 1, ITERS_QD1 },
        { "QD32 4 KiB random read", NVME_CMD_READ, 32, ITERS_QD32 },
        { "QD32 4 KiB random write", NVME_CMD_WRITE, 32, ITERS_QD32 },
    };
    const size_t hdr = 32;
    const size_t req[2] = { hdr + 4, hdr }, rep[2] = { hdr, hdr + 4 };
    char *args[8];
    int nargs = 0, runs, nb;
    bool pin = false, callgrind = false;
    struct bench_floor fl;
    static struct bench_arm af, arm[NARMS];
    struct bench_arm *arms[NARMS];
    static struct io_arm io[NARMS];
    struct bench_nvme b = { 0 };
    double s[NARMS + 1][BENCH_MAX_RUNS];
    struct stat st;
    pid_t dev;

    for (int i = 0; i < argc && nargs < 7; i++) {
        if (strcmp(argv[i], "--callgrind") == 0) {
            callgrind = true;
        } else {
            args[nargs++] = argv[i];
        }
    }
    args[nargs] = NULL;
    if (bench_parse_args(nargs, args, &pin, &runs, 5) < 0) {
        return 2;
    }
    if (VFU_LUA[0] == '\0' || stat(VFU_LUA, &st) < 0 || stat(nvme_script(), &st) < 0) {
        printf("# bench_nvme: skipped, no vfu-lua or no devices/nvme.lua\n");
        return 0;
    }
    snprintf(sock_path, sizeof(sock_path), "/tmp/vfu-bench-nvme-%d.sock", getpid());
    snprintf(log_path, sizeof(log_path), "/tmp/vfu-bench-nvme-%d.log", getpid());
    if (callgrind) {
        int rc = callgrind_mode();

        unlink(log_path);
        return rc;
    }
    if (pin) {
        bench_pin_cpu0();
    }
    if (bench_floor_start(&fl, 2, req, rep, pin) < 0) {
        perror("floor");
        return 1;
    }
    dev = start_device(NULL, 0, pin);
    host_up(&b);

    af = (struct bench_arm){ .fn = bench_floor_block, .arg = &fl, .iters = 300 };
    for (int k = 0; k < NARMS; k++) {
        io[k] = (struct io_arm){ .b = &b, .op = kinds[k].op, .qd = kinds[k].qd };
        arm[k] = (struct bench_arm){ .fn = io_block, .arg = &io[k],
                                     .iters = kinds[k].iters };
        arms[k] = &arm[k];
    }
    /* Warm up: every slot of the namespace written once (the device's
     * memory touched), then the Lua side's tables grown. */
    for (uint64_t done = 0; done < b.slots; done += QD_MAX) {
        run_io(&b, NVME_CMD_WRITE, QD_MAX, QD_MAX);
    }
    for (int k = 0; k < NARMS; k++) {
        run_io(&b, kinds[k].op, kinds[k].qd, kinds[k].iters);
        io[k].n = (struct nvme_host_counts){ 0 };
    }
    for (int r = 0; r < runs; r++) {
        bench_interleave(&af, arms, NARMS, r * BLOCKS, BLOCKS);
        s[0][r] = bench_blocks_mean(af.blk, r * BLOCKS, BLOCKS);
        for (int k = 0; k < NARMS; k++) {
            s[k + 1][r] = bench_blocks_mean(arm[k].blk, r * BLOCKS, BLOCKS);
        }
    }
    nb = runs * BLOCKS;

    printf("# bench_nvme: devices/nvme.lua, %" PRIu64 " MiB namespace of %u-byte blocks, "
           "one I/O queue pair of %d, %d runs of %d blocks (%d / %d commands), %s\n",
           b.h->nsze * b.h->lba_size >> 20, b.h->lba_size, IOQ_SIZE, runs, BLOCKS,
           ITERS_QD1, ITERS_QD32, pin ? "pinned to CPU 0" : "not pinned");
    bench_print_header(44, "");
    printf(" %5s %8s %7s\n", "unit", "x floor", "target");
    {
        struct bench_stats fs = bench_summarize(s[0], runs);

        bench_print_stats(44, "floor: ping-pong, 4-byte write+read sizes", &fs, 1e3);
        printf(" %5s\n", "us");
    }
    for (int k = 0; k < NARMS; k++) {
        char name[64];
        struct bench_stats ls = bench_summarize(s[k + 1], runs);
        /* IOPS from ns per command: the slowest run is the min. */
        struct bench_stats is = { 1e9 / ls.median, 1e9 / ls.max, 1e9 / ls.min };

        if (kinds[k].qd == 1) {
            snprintf(name, sizeof(name), "%s, latency", kinds[k].name);
            bench_print_stats(44, name, &ls, 1e3);
            printf(" %5s", "us");
            bench_print_ratio(bench_median(arm[k].ratio, nb),
                              kinds[k].op == NVME_CMD_READ ? "<=2x" : NULL, 2.0001);
        }
        snprintf(name, sizeof(name), "%s, IOPS", kinds[k].name);
        printf("%-44s %10.0f %10.0f %10.0f %5s", name, is.median, is.min, is.max, "");
        if (kinds[k].qd == 32 && kinds[k].op == NVME_CMD_READ) {
            printf(" %8s %7s %s\n", "", ">=100k", is.median >= 100000 ? "ok" : "MISSED");
        } else {
            printf("\n");
        }
    }
    printf("# per command, counted by the host: posted REGION_WRITEs (doorbells), "
           "interrupts (eventfd signals), host wake-ups\n");
    for (int k = 0; k < NARMS; k++) {
        double c = (double)io[k].n.commands;

        printf("%-44s %6.2f doorbells %6.2f interrupts %6.2f wake-ups\n",
               kinds[k].name, io[k].n.doorbells / c, io[k].n.interrupts / c,
               io[k].n.wakeups / c);
    }

    host_down(&b);
    nvme_device_stop(dev);
    unlink(sock_path);
    unlink(log_path);
    bench_floor_stop(&fl);
    return 0;
}
