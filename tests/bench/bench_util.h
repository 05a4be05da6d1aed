/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 the vfu authors. */

/*
 * What every benchmark program does the same way: the clock, pinning to
 * CPU 0, the command line, the median/min/max of a set of runs, the
 * columns of the table, the server and client ends of a socket, and the
 * floor (a bare socket ping-pong) measured side by side with vfu.
 * Header-only (static inline) because each benchmark is one executable
 * built from one file.
 */

#ifndef VFU_BENCH_UTIL_H
#define VFU_BENCH_UTIL_H

#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "libvfio-user.h"
#include "vfu-client.h"

/* Room for samples: --runs is clamped to this. */
#define BENCH_MAX_RUNS 100
/* Interleaved blocks a run may have, and so room for all of them. */
#define BENCH_MAX_RUN_BLOCKS 32
#define BENCH_MAX_BLOCKS (BENCH_MAX_RUNS * BENCH_MAX_RUN_BLOCKS)

static inline double
bench_now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e9 + ts.tv_nsec;
}

static inline void
bench_pin_cpu0(void)
{
    cpu_set_t set;

    CPU_ZERO(&set);
    CPU_SET(0, &set);
    sched_setaffinity(0, sizeof(set), &set);
}

/*
 * In a forked child: die with the parent, so that a benchmark that exits
 * on an error leaves no server or pong behind.
 */
static inline void
bench_child_init(bool pin)
{
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (pin) {
        bench_pin_cpu0();
    }
}

/*
 * Reads [--pin] [--runs N]. pin may be NULL for a benchmark that accepts
 * --pin (run.sh passes it to all) but does not use it. A runs count out of
 * 1..BENCH_MAX_RUNS falls back to default_runs. Returns -1 after printing
 * the usage line.
 */
static inline int
bench_parse_args(int argc, char **argv, bool *pin, int *runs, int default_runs)
{
    *runs = default_runs;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--pin") == 0) {
            if (pin != NULL) {
                *pin = true;
            }
        } else if (strcmp(argv[i], "--runs") == 0 && i + 1 < argc) {
            *runs = atoi(argv[++i]);
        } else {
            fprintf(stderr, "usage: %s [--pin] [--runs N]\n", argv[0]);
            return -1;
        }
    }
    if (*runs < 1 || *runs > BENCH_MAX_RUNS) {
        *runs = default_runs;
    }
    return 0;
}

struct bench_stats {
    double median, min, max;
};

static inline int
bench_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return x < y ? -1 : x > y;
}

/* Sorts samples in place. */
static inline struct bench_stats
bench_summarize(double *samples, int runs)
{
    qsort(samples, (size_t)runs, sizeof(double), bench_cmp_double);
    return (struct bench_stats){
        .median = samples[runs / 2],
        .min = samples[0],
        .max = samples[runs - 1],
    };
}

/* Median of n values, which are left as they are. */
static inline double
bench_median(const double *v, int n)
{
    double *tmp = malloc((size_t)n * sizeof(double));
    double m;

    if (tmp == NULL) {
        perror("malloc");
        exit(1);
    }
    memcpy(tmp, v, (size_t)n * sizeof(double));
    m = bench_summarize(tmp, n).median;
    free(tmp);
    return m;
}

/*
 * The first columns of the table, name width wide; each label gets suffix
 * (" us", or "" where a unit column follows). No newline: callers add
 * their own columns.
 */
static inline void
bench_print_header(int width, const char *suffix)
{
    char med[16], min[16], max[16];

    snprintf(med, sizeof(med), "median%s", suffix);
    snprintf(min, sizeof(min), "min%s", suffix);
    snprintf(max, sizeof(max), "max%s", suffix);
    printf("%-*s %10s %10s %10s", width, "figure", med, min, max);
}

/* One row's first columns, each figure divided by div. No newline. */
static inline void
bench_print_stats(int width, const char *name, const struct bench_stats *st,
                  double div)
{
    printf("%-*s %10.2f %10.2f %10.2f", width, name, st->median / div,
           st->min / div, st->max / div);
}

/*
 * The last two columns of a row measured against a floor: the ratio, and
 * where a target applies (label non-NULL) the target and whether the ratio
 * is under limit. Ends the line.
 */
static inline void
bench_print_ratio(double ratio, const char *label, double limit)
{
    printf(" %8.2f", ratio);
    if (label != NULL) {
        printf(" %7s %s", label, ratio < limit ? "ok" : "MISSED");
    }
    printf("\n");
}

/* The server process's loop: one client after another, until killed. */
static inline _Noreturn void
bench_serve_forever(vfu_ctx_t *ctx)
{
    for (;;) {
        if (vfu_attach_ctx(ctx) < 0) {
            _exit(1);
        }
        while (vfu_run_ctx(ctx) >= 0) {
        }
    }
}

/*
 * Connects and negotiates with caps (NULL: the client's defaults), every
 * 10 ms until the forked server listens, at most attempts times.
 */
static inline vfu_client_t *
bench_connect(const char *path, const struct vfu_client_caps *caps, int attempts)
{
    for (int i = 0; i < attempts; i++) {
        vfu_client_t *c = vfu_client_connect(path);

        if (c != NULL) {
            if (vfu_client_negotiate(c, caps, NULL) == 0) {
                return c;
            }
            vfu_client_close(c);
        }
        usleep(10000);
    }
    return NULL;
}

/* ---- the floor: a bare ping-pong, alive for the whole benchmark ---- */

#define BENCH_FLOOR_STEPS 2

/*
 * A pong process with a fixed cycle of steps: step i reads req[i] bytes
 * and writes rep[i] back, so one floor round trip (a pass through the
 * cycle) moves what a vfu round trip does, e.g. a write then a read. The
 * sizes are fixed at fork rather than framed in the message so that each
 * step costs exactly one read and one write on each side, as vfu's do.
 */
struct bench_floor {
    int fd;
    pid_t pid;
    int nsteps;
    size_t req[BENCH_FLOOR_STEPS], rep[BENCH_FLOOR_STEPS];
    char *buf;
};

static inline int
bench_full_io(int fd, void *buf, size_t len, bool wr)
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

/*
 * Forks the pong of nsteps (req, rep) pairs over a SOCK_STREAM socketpair,
 * pinned to CPU 0 if pin.
 */
static inline int
bench_floor_start(struct bench_floor *f, int nsteps, const size_t *req,
                  const size_t *rep, bool pin)
{
    size_t cap = 0;
    int sv[2];

    if (nsteps < 1 || nsteps > BENCH_FLOOR_STEPS) {
        errno = EINVAL;
        return -1;
    }
    f->nsteps = nsteps;
    for (int i = 0; i < nsteps; i++) {
        f->req[i] = req[i];
        f->rep[i] = rep[i];
        cap = req[i] > cap ? req[i] : cap;
        cap = rep[i] > cap ? rep[i] : cap;
    }
    f->buf = calloc(1, cap);
    if (f->buf == NULL || socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0) {
        free(f->buf);
        return -1;
    }
    f->pid = fork();
    if (f->pid < 0) {
        close(sv[0]);
        close(sv[1]);
        free(f->buf);
        return -1;
    }
    if (f->pid == 0) {
        close(sv[0]);
        bench_child_init(pin);
        for (int i = 0;; i = (i + 1) % nsteps) {
            if (bench_full_io(sv[1], f->buf, req[i], false) < 0 ||
                bench_full_io(sv[1], f->buf, rep[i], true) < 0) {
                _exit(0);
            }
        }
    }
    close(sv[1]);
    f->fd = sv[0];
    return 0;
}

/* Killed rather than sent EOF: a server forked later holds the ping end too. */
static inline void
bench_floor_stop(struct bench_floor *f)
{
    close(f->fd);
    kill(f->pid, SIGTERM);
    waitpid(f->pid, NULL, 0);
    free(f->buf);
}

/* A block of iters floor round trips; ns per round trip. */
static inline double
bench_floor_block(void *arg, int iters)
{
    struct bench_floor *f = arg;
    double t0 = bench_now_ns();

    for (int i = 0; i < iters; i++) {
        for (int s = 0; s < f->nsteps; s++) {
            if (bench_full_io(f->fd, f->buf, f->req[s], true) < 0 ||
                bench_full_io(f->fd, f->buf, f->rep[s], false) < 0) {
                perror("floor ping-pong");
                exit(1);
            }
        }
    }
    return (bench_now_ns() - t0) / iters;
}

/* ---- side by side: short blocks of floor and vfu, alternating ---- */

/*
 * One thing measured in blocks: fn runs iters round trips and returns ns
 * per round trip. bench_interleave fills blk with each block's figure and
 * ratio with its ratio to the floor measured around it.
 */
struct bench_arm {
    double (*fn)(void *arg, int iters);
    void *arg;
    int iters;
    bool no_warmup;     /* each block changes what the next measures */
    double blk[BENCH_MAX_BLOCKS];
    double ratio[BENCH_MAX_BLOCKS];
};

/*
 * The machine drifts by more than the differences we look for, over
 * seconds; a few milliseconds apart it hardly moves. So floor and vfu are
 * measured in short alternating blocks: a floor block, one block of each
 * arm, a floor block, and so on, and each arm block is divided by the mean
 * of the floor blocks either side of it. Arms take turns going first so
 * that none is always nearest the earlier floor. A first round is thrown
 * away (page faults, caches, the pong waking up), but for arms marked
 * no_warmup. Fills blocks first to first + n - 1 of every arm; the
 * floor's blk gets the block before each.
 */
static inline void
bench_interleave(struct bench_arm *floor, struct bench_arm **arms, int narms,
                 int first, int n)
{
    double before;

    if (first < 0 || n < 1 || first + n > BENCH_MAX_BLOCKS) {
        fprintf(stderr, "bench_interleave: blocks %d+%d out of range\n", first, n);
        exit(1);
    }
    floor->fn(floor->arg, floor->iters);
    for (int k = 0; k < narms; k++) {
        if (!arms[k]->no_warmup) {
            arms[k]->fn(arms[k]->arg, arms[k]->iters);
        }
    }
    before = floor->fn(floor->arg, floor->iters);
    for (int j = first; j < first + n; j++) {
        double after;

        for (int k = 0; k < narms; k++) {
            struct bench_arm *a = arms[j % 2 ? narms - 1 - k : k];

            a->blk[j] = a->fn(a->arg, a->iters);
        }
        after = floor->fn(floor->arg, floor->iters);
        floor->blk[j] = before;
        for (int k = 0; k < narms; k++) {
            arms[k]->ratio[j] = arms[k]->blk[j] / ((before + after) / 2);
        }
        before = after;
    }
}

/* Mean of blocks first to first + n - 1: one run's figure. */
static inline double
bench_blocks_mean(const double *blk, int first, int n)
{
    double sum = 0;

    for (int j = first; j < first + n; j++) {
        sum += blk[j];
    }
    return sum / n;
}

#endif /* VFU_BENCH_UTIL_H */
