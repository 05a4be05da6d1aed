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
 * where the time goes: what one command costs in messages and interrupts
 * (counted by the host), the CPU time of the host's thread and of the
 * device per command (schedstat), and a QD1 read whose CQ head doorbell
 * is rung every 16 completions only (what that doorbell costs).
 *
 *   bench_nvme [--pin] [--runs N] [--callgrind]
 *
 * --pin puts every process on CPU 0. --callgrind instead runs the device
 * under valgrind's callgrind a few times with and without a number of
 * commands, and prints the instructions the device process executes per
 * command (the difference between runs), split by where they run: the
 * Lua VM and API (liblua), vfu (core, bindings and runner: vfu-lua), libc;
 * and the Lua VM instructions per command. $VFU_NVME_SCRIPT names another
 * device script.
 */

#include <errno.h>
#include <fcntl.h>
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
    int sched_self, sched_dev;  /* /proc/.../schedstat of us and the device */
};

/*
 * Time a thread has run, in ns: the first field of its schedstat (the
 * host's main thread, the device's only one). 0 if it cannot be read.
 */
static uint64_t
cpu_ns(int fd)
{
    char buf[128];
    ssize_t n = fd >= 0 ? pread(fd, buf, sizeof(buf) - 1, 0) : -1;

    if (n <= 0) {
        return 0;
    }
    buf[n] = '\0';
    return strtoull(buf, NULL, 10);
}

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
    uint16_t cq_batch;              /* completions a CQ head doorbell */
    struct nvme_host_counts n;      /* summed over its blocks */
    double wall_ns, host_ns, dev_ns;    /* the same */
};

static double
io_block(void *arg, int iters)
{
    struct io_arm *a = arg;
    struct nvme_host_counts before = a->b->h->n, *now = &a->b->h->n;
    uint64_t host0 = cpu_ns(a->b->sched_self), dev0 = cpu_ns(a->b->sched_dev);
    double ns;

    a->b->q->cq_batch = a->cq_batch;
    ns = run_io(a->b, a->op, a->qd, iters);
    a->b->q->cq_batch = 1;
    a->host_ns += (double)(cpu_ns(a->b->sched_self) - host0);
    a->dev_ns += (double)(cpu_ns(a->b->sched_dev) - dev0);
    a->wall_ns += ns * iters;

    a->n.doorbells += now->doorbells - before.doorbells;
    a->n.interrupts += now->interrupts - before.interrupts;
    a->n.wakeups += now->wakeups - before.wakeups;
    a->n.commands += now->commands - before.commands;
    a->n.reg_reads += now->reg_reads - before.reg_reads;
    a->n.reg_writes += now->reg_writes - before.reg_writes;
    a->n.server_reqs += now->server_reqs - before.server_reqs;
    return ns;
}

/* ---- the device and the host ---- */

static char sock_path[64], log_path[64];

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
    argv[n++] = (char *)nvme_device_script(NVME_SCRIPT);
    argv[n++] = sock_path;
    argv[n] = NULL;
    pid = nvme_device_spawn(argv, sock_path, log_path, pin);
    if (pid < 0) {
        nvme_device_print_log(log_path);
        die("starting the device");
    }
    return pid;
}

static void
host_up(struct bench_nvme *b, unsigned flags)
{
    b->h = nvme_host_open(sock_path, HOST_MEM, IO_SIZE, flags);
    if (b->h == NULL) {
        nvme_device_print_log(log_path);
        die("connecting to the device");
    }
    b->h->timeout_ms = REAP_TIMEOUT_MS;
    if (nvme_host_enable(b->h, 32) < 0) {
        nvme_device_print_log(log_path);
        die("enabling the controller");
    }
    b->q = nvme_host_create_ioq(b->h, 1, IOQ_SIZE);
    if (b->q == NULL) {
        nvme_device_print_log(log_path);
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

/*
 * Where the device's instructions run, by ELF object: liblua (the Lua VM
 * and C API), vfu-lua (vfu's core, the bindings, the runner), libc.
 *
 * Lua VM instructions are counted too: the runner's time budget is a
 * count hook, and with any hook set Lua 5.4's interpreter calls its trace
 * function (luaG_traceexec) before every VM instruction. Which function of
 * liblua that is (Debian's is stripped) is found by calibration: the one
 * called once per instruction of a loop of known length.
 */
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

#define CG_IDS 65536

struct cg_profile {
    double cost[OBJ_N];     /* exclusive Ir by object */
    double step_calls;      /* calls of the per-instruction trace function */
    double step_cost;       /* its own Ir */
};

/* What the parse of one file keeps, by compressed id. */
struct cg_names {
    signed char ob_kind[CG_IDS];
    char *fn_name[CG_IDS];
    double fn_calls[CG_IDS];    /* calls into liblua functions */
};

/*
 * "ob=(n) name" / "cfn=(n)" ...: the id, and the name if the line defines
 * it (compressed names are defined once, reused by id).
 */
static long
cg_id(char *line, char **name)
{
    char *p = strchr(line, '=') + 1;
    long id = -1;

    line[strcspn(line, "\n")] = '\0';
    *name = NULL;
    if (*p == '(') {
        id = strtol(p + 1, &p, 10);
        p = strchr(p, ')');
        p = p != NULL ? p + 1 : line + strlen(line);
        while (*p == ' ') {
            p++;
        }
    }
    if (*p != '\0') {
        *name = p;
    }
    return id >= 0 && id < CG_IDS ? id : -1;
}

static int
cg_ob(char *line, struct cg_names *nm)
{
    char *name;
    long id = cg_id(line, &name);

    if (id < 0) {
        return name != NULL ? obj_kind(name) : OBJ_OTHER;
    }
    if (name != NULL) {
        nm->ob_kind[id] = (signed char)obj_kind(name);
    }
    return nm->ob_kind[id] >= 0 ? nm->ob_kind[id] : OBJ_OTHER;
}

static long
cg_fn(char *line, struct cg_names *nm)
{
    char *name;
    long id = cg_id(line, &name);

    if (id >= 0 && name != NULL && nm->fn_name[id] == NULL) {
        nm->fn_name[id] = strdup(name);
    }
    return id;
}

/*
 * Reads a callgrind output file: exclusive costs (cost lines count for the
 * current ob= and fn=, but not the line after calls=, a call's inclusive
 * cost) and calls into liblua by function. With step (a function name)
 * given, fills p->step_*; without, returns in *step the name of the
 * liblua function called closest to want times (calibration).
 */
static int
cg_parse(const char *path, const char *step, double want, struct cg_profile *p,
         char *found, size_t found_size)
{
    struct cg_names *nm = calloc(1, sizeof(*nm));
    char line[4096];
    int ob = OBJ_OTHER, call_ob = -1;
    long fn = -1, call_fn = -1;
    bool skip_next = false;
    FILE *f = fopen(path, "r");

    if (f == NULL || nm == NULL) {
        free(nm);
        if (f != NULL) {
            fclose(f);
        }
        return -1;
    }
    memset(nm->ob_kind, -1, sizeof(nm->ob_kind));
    memset(p, 0, sizeof(*p));
    while (fgets(line, sizeof(line), f) != NULL) {
        if (strncmp(line, "ob=", 3) == 0) {
            ob = cg_ob(line, nm);
        } else if (strncmp(line, "cob=", 4) == 0) {
            call_ob = cg_ob(line, nm);
        } else if (strncmp(line, "fn=", 3) == 0) {
            fn = cg_fn(line, nm);
            call_ob = -1;
        } else if (strncmp(line, "cfn=", 4) == 0) {
            call_fn = cg_fn(line, nm);
        } else if (strncmp(line, "calls=", 6) == 0) {
            if ((call_ob >= 0 ? call_ob : ob) == OBJ_LUA && call_fn >= 0) {
                nm->fn_calls[call_fn] += strtod(line + 6, NULL);
            }
            skip_next = true;
        } else if ((line[0] >= '0' && line[0] <= '9') || line[0] == '+' ||
                   line[0] == '-' || line[0] == '*') {
            char *sp = strchr(line, ' ');

            if (skip_next) {
                skip_next = false;
                call_ob = -1;
            } else if (sp != NULL) {
                double c = strtod(sp, NULL);    /* "position cost" */

                p->cost[ob] += c;
                if (step != NULL && ob == OBJ_LUA && fn >= 0 &&
                    nm->fn_name[fn] != NULL && strcmp(nm->fn_name[fn], step) == 0) {
                    p->step_cost += c;
                }
            }
        }
    }
    fclose(f);
    for (long id = 0; id < CG_IDS; id++) {
        if (nm->fn_name[id] == NULL) {
            continue;
        }
        if (step != NULL && strcmp(nm->fn_name[id], step) == 0) {
            p->step_calls += nm->fn_calls[id];
        } else if (step == NULL && found != NULL && nm->fn_calls[id] >= want &&
                   nm->fn_calls[id] < want * 1.001) {
            snprintf(found, found_size, "%s", nm->fn_name[id]);
        }
        free(nm->fn_name[id]);
    }
    free(nm);
    return 0;
}

static char cg_out[96];

static char cg_opt[128];
static char *cg_wrap[] = { "valgrind", "--tool=callgrind", "-q", cg_opt };

static void
cg_wrap_init(void)
{
    snprintf(cg_out, sizeof(cg_out), "/tmp/vfu-bench-nvme-%d.callgrind", getpid());
    snprintf(cg_opt, sizeof(cg_opt), "--callgrind-out-file=%s", cg_out);
}

/*
 * The trace function's name: vfu-lua runs a loop of 1,000,000 iterations
 * of 2 VM instructions (an add and the loop's own step) under callgrind.
 */
static int
cg_calibrate(char *name, size_t size)
{
    char script[96], cmd[512];
    struct cg_profile p;
    FILE *f;
    int rc;

    snprintf(script, sizeof(script), "/tmp/vfu-bench-nvme-%d-loop.lua", getpid());
    f = fopen(script, "w");
    if (f == NULL) {
        return -1;
    }
    fprintf(f, "local x = 0\nfor i = 1, 1000000 do x = x + i end\n");
    fclose(f);
    snprintf(cmd, sizeof(cmd), "%s %s %s %s %s %s", cg_wrap[0], cg_wrap[1],
             cg_wrap[2], cg_wrap[3], VFU_LUA, script);
    rc = system(cmd);
    name[0] = '\0';
    if (rc == 0) {
        rc = cg_parse(cg_out, NULL, 2e6, &p, name, size);
    }
    unlink(script);
    unlink(cg_out);
    return rc == 0 && name[0] != '\0' ? 0 : -1;
}

/* One device life under callgrind: connect, bring up, commands, down. */
static int
cg_run(uint8_t op, int qd, int iters, const char *step, struct cg_profile *p)
{
    struct bench_nvme b = { 0 };
    pid_t pid = start_device(cg_wrap, 4, false);
    int status;

    host_up(&b, 0);
    if (iters > 0) {
        run_io(&b, op, qd, iters);
    }
    host_down(&b);
    status = nvme_device_stop(pid);
    if (!WIFEXITED(status) || cg_parse(cg_out, step, 0, p, NULL, 0) < 0) {
        fprintf(stderr, "bench_nvme: callgrind run failed (status 0x%x)\n", status);
        unlink(cg_out);
        return -1;
    }
    unlink(cg_out);
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
        { "QD32 4 KiB random write", NVME_CMD_WRITE, 32 },
    };
    struct cg_profile base, with;
    char step[256];

    if (system("valgrind --version >/dev/null 2>&1") != 0) {
        printf("# bench_nvme --callgrind: skipped, no valgrind\n");
        return 0;
    }
    cg_wrap_init();
    if (cg_calibrate(step, sizeof(step)) < 0) {
        fprintf(stderr, "bench_nvme: calibration found no per-instruction function "
                "in liblua; Lua VM instructions are not counted\n");
        snprintf(step, sizeof(step), "(none)");
    }
    printf("# bench_nvme --callgrind: per command, (a run with %d commands - a run "
           "with none) / %d, of the device process:\n"
           "# machine instructions by object (liblua: the Lua VM and C API; vfu-lua: "
           "vfu's core, the bindings, the runner; libc: memcpy, syscall wrappers);\n"
           "# Lua VM instructions (calls of liblua's %s, run before each one while "
           "the budget's count hook is set), and that function's own machine "
           "instructions\n", n, n, step);
    printf("%-26s %8s", "workload", "total");
    for (int k = 0; k < OBJ_N; k++) {
        printf(" %8s", obj_names[k]);
    }
    printf(" %8s %8s\n", "Lua ops", "hook");
    if (cg_run(NVME_CMD_READ, 1, 0, step, &base) < 0) {
        return 1;
    }
    for (size_t i = 0; i < sizeof(w) / sizeof(w[0]); i++) {
        double total = 0;

        if (cg_run(w[i].op, w[i].qd, n, step, &with) < 0) {
            return 1;
        }
        for (int k = 0; k < OBJ_N; k++) {
            total += (with.cost[k] - base.cost[k]) / n;
        }
        printf("%-26s %8.0f", w[i].name, total);
        for (int k = 0; k < OBJ_N; k++) {
            printf(" %8.0f", (with.cost[k] - base.cost[k]) / n);
        }
        printf(" %8.0f %8.0f\n", (with.step_calls - base.step_calls) / n,
               (with.step_cost - base.step_cost) / n);
    }
    return 0;
}

/* ---- the benchmark ---- */

/* What one arm runs. */
struct kind {
    const char *name;
    uint8_t op;
    int qd;
    int iters;
    uint16_t cq_batch;      /* completions a CQ head doorbell: 1 as Linux */
    bool target;            /* the row the targets are about */
};

#define MAX_ARMS 8

/*
 * One table: the arms of kinds[] interleaved with the floor for runs runs
 * of BLOCKS blocks, then latency, IOPS, messages and CPU time per command.
 */
static void
phase(const char *title, struct bench_nvme *b, struct bench_floor *fl,
      const struct kind *kinds, int narms, int runs)
{
    static struct bench_arm af, arm[MAX_ARMS];
    static struct io_arm io[MAX_ARMS];
    static double s[MAX_ARMS + 1][BENCH_MAX_RUNS];
    struct bench_arm *arms[MAX_ARMS];
    int nb = runs * BLOCKS;

    af = (struct bench_arm){ .fn = bench_floor_block, .arg = fl, .iters = 300 };
    for (int k = 0; k < narms; k++) {
        io[k] = (struct io_arm){ .b = b, .op = kinds[k].op, .qd = kinds[k].qd,
                                 .cq_batch = kinds[k].cq_batch };
        arm[k] = (struct bench_arm){ .fn = io_block, .arg = &io[k],
                                     .iters = kinds[k].iters };
        arms[k] = &arm[k];
        /* The Lua side's tables grown before anything counts. */
        run_io(b, kinds[k].op, kinds[k].qd, kinds[k].iters);
    }
    for (int k = 0; k < narms; k++) {
        io[k].n = (struct nvme_host_counts){ 0 };
        io[k].wall_ns = io[k].host_ns = io[k].dev_ns = 0;
    }
    for (int r = 0; r < runs; r++) {
        bench_interleave(&af, arms, narms, r * BLOCKS, BLOCKS);
        s[0][r] = bench_blocks_mean(af.blk, r * BLOCKS, BLOCKS);
        for (int k = 0; k < narms; k++) {
            s[k + 1][r] = bench_blocks_mean(arm[k].blk, r * BLOCKS, BLOCKS);
        }
    }

    printf("%s\n", title);
    bench_print_header(44, "");
    printf(" %5s %8s %7s\n", "unit", "x floor", "target");
    {
        struct bench_stats fs = bench_summarize(s[0], runs);

        bench_print_stats(44, "floor: ping-pong, 4-byte write+read sizes", &fs, 1e3);
        printf(" %5s\n", "us");
    }
    for (int k = 0; k < narms; k++) {
        char name[64];
        struct bench_stats ls = bench_summarize(s[k + 1], runs);
        /* IOPS from ns per command: the slowest run is the min. */
        struct bench_stats is = { 1e9 / ls.median, 1e9 / ls.max, 1e9 / ls.min };
        bool target = kinds[k].target;

        if (kinds[k].qd == 1) {
            snprintf(name, sizeof(name), "%s, latency", kinds[k].name);
            bench_print_stats(44, name, &ls, 1e3);
            printf(" %5s", "us");
            bench_print_ratio(bench_median(arm[k].ratio, nb), target ? "<=2x" : NULL,
                              2.0001);
        }
        if (kinds[k].cq_batch != 1) {
            continue;
        }
        snprintf(name, sizeof(name), "%s, IOPS", kinds[k].name);
        printf("%-44s %10.0f %10.0f %10.0f %5s", name, is.median, is.min, is.max, "");
        if (kinds[k].qd == 32 && target) {
            printf(" %8s %7s %s\n", "", ">=100k", is.median >= 100000 ? "ok" : "MISSED");
        } else {
            printf("\n");
        }
    }
    printf("# per command, counted by the host: messages to the device (posted "
           "REGION_WRITEs: doorbells; other requests), messages from it (DMA "
           "requests), interrupts (eventfd signals), host wake-ups\n");
    printf("%-26s %9s %9s %9s %9s %9s\n", "workload", "doorbells", "requests",
           "from dev", "irqs", "wake-ups");
    for (int k = 0; k < narms; k++) {
        const struct nvme_host_counts *n = &io[k].n;
        double c = (double)n->commands;

        printf("%-26s %9.3f %9.3f %9.3f %9.3f %9.3f\n", kinds[k].name,
               n->doorbells / c, (n->reg_reads + n->reg_writes) / c,
               n->server_reqs / c, n->interrupts / c, n->wakeups / c);
    }
    printf("# per command, us: wall clock; CPU time of the host's thread and of "
           "the device's (schedstat; kernel time included); the rest\n");
    printf("%-26s %9s %9s %9s %9s\n", "workload", "wall", "host", "device", "rest");
    for (int k = 0; k < narms; k++) {
        double c = (double)io[k].n.commands * 1e3;

        printf("%-26s %9.2f %9.2f %9.2f %9.2f\n", kinds[k].name, io[k].wall_ns / c,
               io[k].host_ns / c, io[k].dev_ns / c,
               (io[k].wall_ns - io[k].host_ns - io[k].dev_ns) / c);
    }
}

int
main(int argc, char **argv)
{
    /* The last: what the CQ head doorbell costs at QD1, rung every 16. */
    static const struct kind mapped[] = {
        { "QD1 4 KiB random read", NVME_CMD_READ, 1, ITERS_QD1, 1, true },
        { "QD1 4 KiB random write", NVME_CMD_WRITE, 1, ITERS_QD1, 1, false },
        { "QD32 4 KiB random read", NVME_CMD_READ, 32, ITERS_QD32, 1, true },
        { "QD32 4 KiB random write", NVME_CMD_WRITE, 32, ITERS_QD32, 1, false },
        { "QD1 read, CQ doorbell / 16", NVME_CMD_READ, 1, ITERS_QD1, 16, false },
    };
    /* Host memory mapped without its fd: every access a message. */
    static const struct kind by_msg[] = {
        { "QD1 4 KiB random read", NVME_CMD_READ, 1, ITERS_QD1 / 4, 1, false },
        { "QD32 4 KiB random read", NVME_CMD_READ, 32, ITERS_QD32 / 4, 1, false },
    };
    const size_t hdr = 32;
    const size_t req[2] = { hdr + 4, hdr }, rep[2] = { hdr, hdr + 4 };
    char *args[8], title[256], path[64];
    int nargs = 0, runs;
    bool pin = false, callgrind = false;
    struct bench_floor fl;
    struct bench_nvme b = { 0 };
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
    if (VFU_LUA[0] == '\0' || stat(VFU_LUA, &st) < 0 || stat(nvme_device_script(NVME_SCRIPT), &st) < 0) {
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
    snprintf(path, sizeof(path), "/proc/%d/schedstat", (int)dev);
    b.sched_dev = open(path, O_RDONLY | O_CLOEXEC);
    b.sched_self = open("/proc/thread-self/schedstat", O_RDONLY | O_CLOEXEC);

    host_up(&b, 0);
    /* Every slot of the namespace written once: the device's memory
     * touched before anything is measured. */
    for (uint64_t done = 0; done < b.slots; done += QD_MAX) {
        run_io(&b, NVME_CMD_WRITE, QD_MAX, QD_MAX);
    }
    snprintf(title, sizeof(title),
             "# bench_nvme: devices/nvme.lua, %" PRIu64 " MiB namespace of %u-byte "
             "blocks, one I/O queue pair of %d, %d runs of %d blocks (%d / %d "
             "commands), %s", b.h->nsze * b.h->lba_size >> 20, b.h->lba_size,
             IOQ_SIZE, runs, BLOCKS, ITERS_QD1, ITERS_QD32,
             pin ? "pinned to CPU 0" : "not pinned");
    phase(title, &b, &fl, mapped, sizeof(mapped) / sizeof(mapped[0]), runs);
    host_down(&b);

    host_up(&b, NVME_HOST_NO_FD);
    snprintf(title, sizeof(title),
             "\n# the same, host memory mapped without its fd (as QEMU's RAM that "
             "is not shared): queues, PRP lists and data by DMA_READ/DMA_WRITE "
             "messages (%d / %d commands a block)", ITERS_QD1 / 4, ITERS_QD32 / 4);
    phase(title, &b, &fl, by_msg, sizeof(by_msg) / sizeof(by_msg[0]), runs);
    host_down(&b);

    nvme_device_stop(dev);
    unlink(sock_path);
    unlink(log_path);
    bench_floor_stop(&fl);
    return 0;
}
