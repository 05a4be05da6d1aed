/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 the vfu authors. */

/*
 * What every benchmark program does the same way: the clock, pinning to
 * CPU 0, the command line, the median/min/max of a set of runs, the
 * columns of the table, and the server and client ends of a socket.
 * Header-only (static inline) because each benchmark is one executable
 * built from one file.
 */

#ifndef VFU_BENCH_UTIL_H
#define VFU_BENCH_UTIL_H

#include <sched.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "libvfio-user.h"
#include "vfu-client.h"

/* Room for samples: --runs is clamped to this. */
#define BENCH_MAX_RUNS 100

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

#endif /* VFU_BENCH_UTIL_H */
