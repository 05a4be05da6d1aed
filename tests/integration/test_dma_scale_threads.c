/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 the vfu authors. */

/*
 * DMA at vIOMMU scale, end to end over a real socket: the client maps
 * 65,535 regions (4 KiB maps of one memfd in groups of four with a gap after
 * each group, a few multi-page maps, one of them read-only, and a few
 * message-only maps of the client's own memory), starts dirty logging over
 * the whole IOVA range, and device worker threads write and read through
 * scatter/gather while the client keeps asking for dirty reports and now
 * and then unmaps and remaps a region. The device quiesces by parking its
 * workers (the quiesce callback answers EBUSY, the device reports
 * vfu_device_quiesced() once every worker is parked, and the workers resume
 * when that returns). At the end every page is checked: reported dirty
 * exactly when written, holding what was last written.
 */

#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"

#define PG              4096u
#define RW              (VFIO_USER_F_DMA_REGION_READ | VFIO_USER_F_DMA_REGION_WRITE)
#define NW              4u          /* device worker threads */
#define MAP_THREADS     4u          /* client threads issuing DMA_MAP */

#define NR_MAPS         65535u
#define NR_MULTI        4u
#define MULTI_PAGES     16u
#define RO_MULTI        3u          /* this multi-page map is read-only */
#define NR_MSG          4u
#define MSG_PAGES       4u
#define NR_SINGLE       (NR_MAPS - NR_MULTI - NR_MSG)
#define GROUP           4u          /* adjacent single maps, then a gap */
#define NR_SGROUPS      ((NR_SINGLE + GROUP - 1) / GROUP)
#define NR_GROUPS       (NR_SGROUPS + NR_MULTI + NR_MSG)

/* Page numbers inside the logged IOVA range [BASE, BASE + LOG_PAGES * PG). */
#define BASE            (1ull << 30)
#define MULTI_FIRST     ((GROUP + 1) * NR_SGROUPS + 1)
#define MSG_FIRST       (MULTI_FIRST + NR_MULTI * (MULTI_PAGES + 1))
#define LOG_PAGES       ((MSG_FIRST + NR_MSG * (MSG_PAGES + 1) + 63) / 64 * 64)
#define LOG_WORDS       (LOG_PAGES / 64)
#define FILE_PAGES      (NR_SINGLE + NR_MULTI * MULTI_PAGES)

/* The maps unmapped and remapped while the workers run. */
#define CYC_SINGLE      (GROUP * 777u + 1u)
#define CYC_MSG         0u
#define NR_CYCLES       3u

#define RUN_MS          1500
#define STAMP_INIT      1u          /* what every page holds before the run */

enum kind { K_SINGLE, K_MULTI, K_MSG };
enum op { OP_WRITE, OP_GETPUT, OP_HELD, OP_READ, OP_MSG_WRITE, OP_MSG_READ,
          NR_OPS };

struct group {
    uint32_t first;             /* page number of its first page */
    uint32_t pages;
    enum kind kind;
    bool ro;
    bool cycles;                /* holds a map that is unmapped and remapped */
};

struct worker {
    struct scale *st;
    unsigned id;
    pthread_t thread;
    uint64_t rng;
    uint32_t seq;
    uint32_t *fd_groups, nr_fd;     /* groups this worker owns */
    uint32_t *msg_groups, nr_msg;
    char *sgl;                      /* 4 dma_sg_t */
    char *held_sgl;                 /* entries got and kept for a while */
    struct iovec held_iov[4];
    int held_cnt;
    unsigned held_age;
    char *buf;                      /* 4 pages */
    char *cmp;
    unsigned parks;
};

struct scale {
    struct harness_server *srv;
    vfu_ctx_t *ctx;
    vfu_client_t *c;

    int mfd;
    size_t fsize;
    char *fmem;                     /* the client's mmap of the memfd */
    char *msgmem[NR_MSG];
    struct group groups[NR_GROUPS];
    char **backing;                 /* page number -> client memory, or NULL */
    uint32_t *stamp;                /* last stamp written, by page (owner only) */
    _Atomic uint64_t *written;      /* pages the workers wrote */
    uint64_t *reported;             /* OR of every dirty report */

    /* quiesce hand-shake between the loop, the workers and the quiescer */
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool active;                    /* workers running: maps need a quiesce */
    atomic_bool pause_req;
    unsigned parked;
    bool stop_quiescer;
    unsigned quiesce_requests, quiesces_done, quiesced_callbacks;
    atomic_uint violations;         /* map changes while a worker was busy */
    atomic_int held;                /* vfu_sgl_get() references outstanding */
    atomic_bool cycle_gone;
    atomic_bool stop;
    atomic_int running;

    atomic_uint errors;
    char first_error[256];
    atomic_uint ops[NW][NR_OPS];

    struct worker w[NW];
};

#define SG(base, i) ((dma_sg_t *)((base) + (size_t)(i) * dma_sg_size()))

static uint64_t
now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static uint64_t
rnd(struct worker *w)
{
    w->rng ^= w->rng << 13;
    w->rng ^= w->rng >> 7;
    w->rng ^= w->rng << 17;
    return w->rng;
}

/* Worker failures are collected: cmocka's asserts are for the main thread. */
static void
fail_at(struct scale *st, const char *fmt, ...)
{
    if (atomic_fetch_add(&st->errors, 1) == 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(st->first_error, sizeof(st->first_error), fmt, ap);
        va_end(ap);
    }
}

/* A page's content is a function of its number and the stamp written. */
static void
page_fill(char *p, uint32_t page, uint32_t stamp)
{
    uint64_t *q = (uint64_t *)p;

    for (unsigned k = 0; k < PG / 8; k++) {
        q[k] = ((uint64_t)stamp << 32) ^ (page * 0x9E3779B97F4A7C15ull) ^ k;
    }
}

static bool
page_ok(const char *p, uint32_t page, uint32_t stamp)
{
    const uint64_t *q = (const uint64_t *)p;

    for (unsigned k = 0; k < PG / 8; k++) {
        if (q[k] != (((uint64_t)stamp << 32) ^ (page * 0x9E3779B97F4A7C15ull) ^ k)) {
            return false;
        }
    }
    return true;
}

static uint64_t
page_iova(uint32_t page)
{
    return BASE + (uint64_t)page * PG;
}

/* ---- the device ---- */

static void
check_quiesced(struct scale *st, bool unmap)
{
    pthread_mutex_lock(&st->lock);
    if (st->active) {
        st->quiesced_callbacks++;
        if (!atomic_load(&st->pause_req) || st->parked != NW) {
            atomic_fetch_add(&st->violations, 1);
        }
        if (unmap && atomic_load(&st->held) != 0) {
            atomic_fetch_add(&st->violations, 1);
        }
    }
    pthread_mutex_unlock(&st->lock);
}

static void
dma_register(vfu_ctx_t *ctx, vfu_dma_info_t *info)
{
    (void)info;
    check_quiesced(vfu_get_private(ctx), false);
}

static void
dma_unregister(vfu_ctx_t *ctx, vfu_dma_info_t *info)
{
    (void)info;
    check_quiesced(vfu_get_private(ctx), true);
}

/* Before maps change: park the workers; the quiescer finishes the job. */
static int
quiesce_cb(vfu_ctx_t *ctx)
{
    struct scale *st = vfu_get_private(ctx);

    pthread_mutex_lock(&st->lock);
    if (!st->active) {
        pthread_mutex_unlock(&st->lock);
        return 0;
    }
    st->quiesce_requests++;
    atomic_store(&st->pause_req, true);
    pthread_cond_broadcast(&st->cond);
    pthread_mutex_unlock(&st->lock);
    errno = EBUSY;
    return -1;
}

static int
scale_setup(vfu_ctx_t *ctx, void *arg)
{
    (void)arg;
    if (vfu_pci_init(ctx, VFU_PCI_TYPE_CONVENTIONAL, 0, 0) < 0 ||
        vfu_setup_device_dma(ctx, 65535, dma_register, dma_unregister) < 0) {
        return -1;
    }
    vfu_setup_device_quiesce_cb(ctx, quiesce_cb);
    return 0;
}

/* On the loop thread, once every worker is parked. */
static void
finish_quiesce(vfu_ctx_t *ctx, void *arg)
{
    struct scale *st = arg;

    if (vfu_device_quiesced(ctx, 0) < 0) {
        fail_at(st, "vfu_device_quiesced: %s", strerror(errno));
    }
    pthread_mutex_lock(&st->lock);
    st->quiesces_done++;
    atomic_store(&st->pause_req, false);
    pthread_cond_broadcast(&st->cond);
    pthread_mutex_unlock(&st->lock);
}

static void *
quiescer(void *arg)
{
    struct scale *st = arg;

    pthread_mutex_lock(&st->lock);
    for (;;) {
        while (!st->stop_quiescer &&
               !(atomic_load(&st->pause_req) && st->parked == NW)) {
            pthread_cond_wait(&st->cond, &st->lock);
        }
        if (st->stop_quiescer) {
            break;
        }
        pthread_mutex_unlock(&st->lock);
        if (harness_server_exec(st->srv, finish_quiesce, st) < 0) {
            fail_at(st, "harness_server_exec: %s", strerror(errno));
        }
        pthread_mutex_lock(&st->lock);
    }
    pthread_mutex_unlock(&st->lock);
    return NULL;
}

/* ---- the workers ---- */

static void
mark_written(struct scale *st, uint32_t first, uint32_t pages, struct worker *w)
{
    for (uint32_t p = first; p < first + pages; p++) {
        atomic_fetch_or(&st->written[p / 64], 1ull << (p % 64));
        st->stamp[p] = w->seq;
    }
}

static void
release_held(struct worker *w)
{
    if (w->held_cnt > 0) {
        vfu_sgl_put(w->st->ctx, (dma_sg_t *)w->held_sgl, w->held_iov,
                    (size_t)w->held_cnt);
        atomic_fetch_sub(&w->st->held, 1);
        w->held_cnt = 0;
    }
}

static void
maybe_park(struct worker *w)
{
    struct scale *st = w->st;

    if (!atomic_load(&st->pause_req)) {
        return;
    }
    release_held(w);
    pthread_mutex_lock(&st->lock);
    st->parked++;
    pthread_cond_broadcast(&st->cond);
    while (atomic_load(&st->pause_req)) {
        pthread_cond_wait(&st->cond, &st->lock);
    }
    st->parked--;
    pthread_mutex_unlock(&st->lock);
    w->parks++;
}

/* A random stretch of one of the worker's groups; false to skip the turn. */
static bool
pick(struct worker *w, bool msg, uint32_t *first, uint32_t *pages,
     const struct group **gp)
{
    struct scale *st = w->st;
    uint32_t n = msg ? w->nr_msg : w->nr_fd;
    const struct group *g;
    uint32_t off, max;

    if (n == 0) {
        return false;
    }
    g = &st->groups[(msg ? w->msg_groups : w->fd_groups)[rnd(w) % n]];
    /* The flag is set before the unmap is sent, so a parked worker sees it. */
    if (g->cycles && atomic_load(&st->cycle_gone)) {
        return false;
    }
    off = (uint32_t)(rnd(w) % g->pages);
    max = g->pages - off < 4 ? g->pages - off : 4;
    if (g->kind != K_MULTI && max > 2) {
        max = 2;
    }
    *first = g->first + off;
    *pages = 1 + (uint32_t)(rnd(w) % max);
    *gp = g;
    return true;
}

static int
to_sgl(struct worker *w, char *sgl, uint32_t first, uint32_t pages,
       const struct group *g, int prot)
{
    int want = g->kind == K_SINGLE ? (int)pages : 1;
    int n = vfu_addr_to_sgl(w->st->ctx, (vfu_dma_addr_t)(uintptr_t)page_iova(first),
                            (size_t)pages * PG, (dma_sg_t *)sgl, 4, prot);

    if (n != want) {
        fail_at(w->st, "vfu_addr_to_sgl page %u+%u: %d (want %d), errno %d",
                first, pages, n, want, errno);
        return -1;
    }
    return n;
}

/* Write stamped pages through vfu_sgl_write, then read them back. */
static void
op_write(struct worker *w, bool msg)
{
    struct scale *st = w->st;
    const struct group *g;
    uint32_t first, pages;
    int n;

    if (!pick(w, msg, &first, &pages, &g) ||
        (n = to_sgl(w, w->sgl, first, pages, g, PROT_READ | PROT_WRITE)) < 0) {
        return;
    }
    w->seq += NW;
    for (uint32_t i = 0; i < pages; i++) {
        page_fill(w->buf + (size_t)i * PG, first + i, w->seq);
    }
    /* One entry per single map; multi-page and message maps take one. */
    for (int i = 0; i < n; i++) {
        size_t off = g->kind == K_SINGLE ? (size_t)i * PG : 0;
        if (vfu_sgl_write(st->ctx, SG(w->sgl, i), 1, w->buf + off, VFU_SGL_DIRECT_ACCESS) < 0) {
            fail_at(st, "vfu_sgl_write page %u: %s", first, strerror(errno));
            return;
        }
    }
    mark_written(st, first, pages, w);
    memset(w->cmp, 0, (size_t)pages * PG);
    for (int i = 0; i < n; i++) {
        size_t off = g->kind == K_SINGLE ? (size_t)i * PG : 0;
        if (vfu_sgl_read(st->ctx, SG(w->sgl, i), 1, w->cmp + off, VFU_SGL_DIRECT_ACCESS) < 0) {
            fail_at(st, "vfu_sgl_read page %u: %s", first, strerror(errno));
            return;
        }
    }
    if (memcmp(w->buf, w->cmp, (size_t)pages * PG) != 0) {
        fail_at(st, "read back of page %u+%u differs", first, pages);
    }
    atomic_fetch_add(&st->ops[w->id][msg ? OP_MSG_WRITE : OP_WRITE], 1);
}

/* Copy bytes into or out of the iovecs of a get. */
static size_t
iov_copy(struct iovec *iov, int n, char *buf, bool to_iov)
{
    size_t done = 0;

    for (int i = 0; i < n; i++) {
        if (to_iov) {
            memcpy(iov[i].iov_base, buf + done, iov[i].iov_len);
        } else {
            memcpy(buf + done, iov[i].iov_base, iov[i].iov_len);
        }
        done += iov[i].iov_len;
    }
    return done;
}

/* vfu_sgl_get + memcpy + vfu_sgl_put, or keep the entries held (marked). */
static void
op_get(struct worker *w, bool hold)
{
    struct scale *st = w->st;
    char *sgl = hold ? w->held_sgl : w->sgl;
    struct iovec iov[4], *v = hold ? w->held_iov : iov;
    const struct group *g;
    uint32_t first, pages;
    int n;

    if (hold && w->held_cnt > 0) {
        return;
    }
    if (!pick(w, false, &first, &pages, &g) ||
        (n = to_sgl(w, sgl, first, pages, g, PROT_READ | PROT_WRITE)) < 0) {
        return;
    }
    if (vfu_sgl_get(st->ctx, (dma_sg_t *)sgl, v, (size_t)n, 0) < 0) {
        fail_at(st, "vfu_sgl_get page %u: %s", first, strerror(errno));
        return;
    }
    w->seq += NW;
    for (uint32_t i = 0; i < pages; i++) {
        page_fill(w->buf + (size_t)i * PG, first + i, w->seq);
    }
    if (iov_copy(v, n, w->buf, true) != (size_t)pages * PG) {
        fail_at(st, "vfu_sgl_get page %u+%u: short iovecs", first, pages);
    }
    mark_written(st, first, pages, w);
    if (hold) {
        vfu_sgl_mark_dirty(st->ctx, (dma_sg_t *)sgl, (size_t)n);
        atomic_fetch_add(&st->held, 1);
        w->held_cnt = n;
        w->held_age = 0;
        atomic_fetch_add(&st->ops[w->id][OP_HELD], 1);
        return;
    }
    vfu_sgl_put(st->ctx, (dma_sg_t *)sgl, v, (size_t)n);
    atomic_fetch_add(&st->ops[w->id][OP_GETPUT], 1);
}

/* Check pages the worker owns (or the read-only map) hold what they should. */
static void
op_read(struct worker *w, bool msg)
{
    struct scale *st = w->st;
    const struct group *g, *ro = &st->groups[NR_SGROUPS + RO_MULTI];
    uint32_t first, pages;
    struct iovec iov[4];
    int n;

    if (!msg && rnd(w) % 8 == 0) {
        g = ro;
        first = ro->first + (uint32_t)(rnd(w) % ro->pages);
        pages = 1;
    } else if (!pick(w, msg, &first, &pages, &g)) {
        return;
    }
    /* Read-only entries: a put must not mark them dirty. */
    if ((n = to_sgl(w, w->sgl, first, pages, g, PROT_READ)) < 0) {
        return;
    }
    if (!msg && rnd(w) % 2 == 0) {
        if (vfu_sgl_get(st->ctx, (dma_sg_t *)w->sgl, iov, (size_t)n, 0) < 0) {
            fail_at(st, "vfu_sgl_get (read) page %u: %s", first, strerror(errno));
            return;
        }
        iov_copy(iov, n, w->cmp, false);
        vfu_sgl_put(st->ctx, (dma_sg_t *)w->sgl, iov, (size_t)n);
    } else {
        for (int i = 0; i < n; i++) {
            size_t off = g->kind == K_SINGLE ? (size_t)i * PG : 0;
            if (vfu_sgl_read(st->ctx, SG(w->sgl, i), 1, w->cmp + off, VFU_SGL_DIRECT_ACCESS) < 0) {
                fail_at(st, "vfu_sgl_read page %u: %s", first, strerror(errno));
                return;
            }
        }
    }
    for (uint32_t i = 0; i < pages; i++) {
        if (!page_ok(w->cmp + (size_t)i * PG, first + i, st->stamp[first + i])) {
            fail_at(st, "page %u does not hold stamp %u", first + i,
                    st->stamp[first + i]);
        }
    }
    atomic_fetch_add(&st->ops[w->id][msg ? OP_MSG_READ : OP_READ], 1);
}

static void *
worker_main(void *arg)
{
    struct worker *w = arg;
    struct scale *st = w->st;

    while (!atomic_load(&st->stop)) {
        unsigned r = (unsigned)(rnd(w) % 16);

        maybe_park(w);
        if (w->held_cnt > 0 && ++w->held_age > 8) {
            release_held(w);
        }
        if (r < 3) {
            op_write(w, false);
        } else if (r < 5) {
            op_write(w, true);
        } else if (r < 8) {
            op_get(w, false);
        } else if (r < 10) {
            op_get(w, true);
        } else if (r < 14) {
            op_read(w, false);
        } else {
            op_read(w, true);
        }
    }
    release_held(w);
    atomic_fetch_sub(&st->running, 1);
    return NULL;
}

/* ---- set-up ---- */

struct mapper {
    struct scale *st;
    unsigned id;
    unsigned failures;
    int first_errno;
};

static uint64_t
single_iova(uint32_t i)
{
    return page_iova(i + i / GROUP);
}

static void *
map_singles(void *arg)
{
    struct mapper *m = arg;

    for (uint32_t i = m->id; i < NR_SINGLE; i += MAP_THREADS) {
        if (vfu_client_dma_map(m->st->c, single_iova(i), PG, RW, m->st->mfd,
                               (uint64_t)i * PG, NULL) < 0) {
            if (m->failures++ == 0) {
                m->first_errno = errno;
            }
        }
    }
    return NULL;
}

static void
layout(struct scale *st)
{
    uint32_t g = 0;

    for (uint32_t i = 0; i < NR_SINGLE; i++) {
        uint32_t p = i + i / GROUP;
        st->backing[p] = st->fmem + (size_t)i * PG;
        if (i % GROUP == 0) {
            st->groups[g++] = (struct group) { .first = p, .pages = 0,
                                               .kind = K_SINGLE };
        }
        st->groups[g - 1].pages++;
        if (i == CYC_SINGLE) {
            st->groups[g - 1].cycles = true;
        }
    }
    for (uint32_t m = 0; m < NR_MULTI; m++) {
        uint32_t p = MULTI_FIRST + m * (MULTI_PAGES + 1);
        for (uint32_t k = 0; k < MULTI_PAGES; k++) {
            st->backing[p + k] = st->fmem +
                ((size_t)NR_SINGLE + m * MULTI_PAGES + k) * PG;
        }
        st->groups[g++] = (struct group) { .first = p, .pages = MULTI_PAGES,
                                           .kind = K_MULTI, .ro = m == RO_MULTI };
    }
    for (uint32_t m = 0; m < NR_MSG; m++) {
        uint32_t p = MSG_FIRST + m * (MSG_PAGES + 1);
        for (uint32_t k = 0; k < MSG_PAGES; k++) {
            st->backing[p + k] = st->msgmem[m] + (size_t)k * PG;
        }
        st->groups[g++] = (struct group) { .first = p, .pages = MSG_PAGES,
                                           .kind = K_MSG, .cycles = m == CYC_MSG };
    }
    assert_int_equal(g, NR_GROUPS);
    /* Every page starts stamped, so a read of a page never written checks. */
    for (uint32_t p = 0; p < LOG_PAGES; p++) {
        if (st->backing[p] != NULL) {
            page_fill(st->backing[p], p, STAMP_INIT);
            st->stamp[p] = STAMP_INIT;
        }
    }
}

static void
assign(struct scale *st, struct worker *w)
{
    w->fd_groups = calloc(NR_GROUPS, sizeof(uint32_t));
    w->msg_groups = calloc(NR_GROUPS, sizeof(uint32_t));
    assert_non_null(w->fd_groups);
    assert_non_null(w->msg_groups);
    for (uint32_t g = w->id; g < NR_GROUPS; g += NW) {
        if (st->groups[g].ro) {
            continue;
        }
        if (st->groups[g].kind == K_MSG) {
            w->msg_groups[w->nr_msg++] = g;
        } else {
            w->fd_groups[w->nr_fd++] = g;
        }
    }
    w->sgl = calloc(4, dma_sg_size());
    w->held_sgl = calloc(4, dma_sg_size());
    w->buf = aligned_alloc(PG, 4 * PG);
    w->cmp = aligned_alloc(PG, 4 * PG);
    assert_non_null(w->sgl);
    assert_non_null(w->held_sgl);
    assert_non_null(w->buf);
    assert_non_null(w->cmp);
    w->st = st;
    w->rng = 0x9E3779B97F4A7C15ull * (w->id + 1);
    w->seq = STAMP_INIT + 1 + w->id;    /* unique per write, never STAMP_INIT */
}

static void
report(struct scale *st, uint64_t *bits)
{
    assert_int_equal(vfu_client_dma_logging_report(st->c, BASE,
                                                   (uint64_t)LOG_PAGES * PG, PG,
                                                   bits, LOG_WORDS * 8), 0);
    for (uint32_t i = 0; i < LOG_WORDS; i++) {
        st->reported[i] |= bits[i];
    }
}

/* Unmap and remap one fd-backed and one message-only map. */
static void
cycle_maps(struct scale *st)
{
    uint64_t msg_iova = page_iova(MSG_FIRST + CYC_MSG * (MSG_PAGES + 1));

    atomic_store(&st->cycle_gone, true);
    assert_int_equal(vfu_client_dma_unmap(st->c, single_iova(CYC_SINGLE), PG, 0), 0);
    assert_int_equal(vfu_client_dma_map(st->c, single_iova(CYC_SINGLE), PG, RW,
                                        st->mfd, (uint64_t)CYC_SINGLE * PG,
                                        NULL), 0);
    assert_int_equal(vfu_client_dma_unmap(st->c, msg_iova, MSG_PAGES * PG, 0), 0);
    assert_int_equal(vfu_client_dma_map(st->c, msg_iova, MSG_PAGES * PG, RW, -1, 0,
                                        st->msgmem[CYC_MSG]), 0);
    atomic_store(&st->cycle_gone, false);
}

static void
error_paths(struct scale *st)
{
    char *sgl = calloc(4, dma_sg_size());
    const struct group *ro = &st->groups[NR_SGROUPS + RO_MULTI];
    uint64_t gap = page_iova(GROUP);        /* the page after group 0 */
    struct vfio_user_device_info info;
    struct iovec iov[4];
    char page[PG];

    assert_non_null(sgl);
    /* A gap, a range running from a map into a gap, past the last map. */
    errno = 0;
    assert_int_equal(vfu_addr_to_sgl(st->ctx, (vfu_dma_addr_t)(uintptr_t)gap, 8,
                                     (dma_sg_t *)sgl, 4, PROT_READ), -1);
    assert_int_equal(errno, ENOENT);
    errno = 0;
    assert_int_equal(vfu_addr_to_sgl(st->ctx,
                                     (vfu_dma_addr_t)(uintptr_t)(gap - 16), 32,
                                     (dma_sg_t *)sgl, 4, PROT_READ), -1);
    assert_int_equal(errno, ENOENT);
    errno = 0;
    assert_int_equal(vfu_addr_to_sgl(st->ctx,
                                     (vfu_dma_addr_t)(uintptr_t)page_iova(LOG_PAGES),
                                     PG, (dma_sg_t *)sgl, 4, PROT_READ), -1);
    assert_int_equal(errno, ENOENT);
    /* Four adjacent maps need four entries: -(4 + 1) with room for one. */
    errno = 1;
    assert_int_equal(vfu_addr_to_sgl(st->ctx, (vfu_dma_addr_t)(uintptr_t)BASE,
                                     4 * PG, (dma_sg_t *)sgl, 1, PROT_READ), -5);
    assert_int_equal(errno, 0);
    /* Writing through the read-only map. */
    errno = 0;
    assert_int_equal(vfu_addr_to_sgl(st->ctx,
                                     (vfu_dma_addr_t)(uintptr_t)page_iova(ro->first),
                                     PG, (dma_sg_t *)sgl, 4,
                                     PROT_READ | PROT_WRITE), -1);
    assert_int_equal(errno, EACCES);
    assert_int_equal(vfu_addr_to_sgl(st->ctx,
                                     (vfu_dma_addr_t)(uintptr_t)page_iova(ro->first),
                                     PG, (dma_sg_t *)sgl, 4, PROT_READ), 1);
    memset(page, 0x5a, sizeof(page));
    errno = 0;
    assert_int_equal(vfu_sgl_write(st->ctx, (dma_sg_t *)sgl, 1, page, VFU_SGL_DIRECT_ACCESS), -1);
    assert_int_equal(errno, EPERM);
    assert_int_equal(vfu_sgl_read(st->ctx, (dma_sg_t *)sgl, 1, page, VFU_SGL_DIRECT_ACCESS), 0);
    assert_true(page_ok(page, ro->first, STAMP_INIT));
    /* Message-only memory cannot be mapped into the device. */
    assert_int_equal(vfu_addr_to_sgl(st->ctx,
                                     (vfu_dma_addr_t)(uintptr_t)page_iova(MSG_FIRST),
                                     PG, (dma_sg_t *)sgl, 4, PROT_READ), 1);
    assert_false(vfu_sg_is_mappable(st->ctx, (dma_sg_t *)sgl));
    errno = 0;
    assert_int_equal(vfu_sgl_get(st->ctx, (dma_sg_t *)sgl, iov, 1, 0), -1);
    assert_int_equal(errno, EFAULT);
    /* The 65,536th map is refused, and the server serves on. */
    errno = 0;
    assert_int_equal(vfu_client_dma_map(st->c, page_iova(LOG_PAGES + 16), PG, RW,
                                        -1, 0, NULL), -1);
    assert_int_equal(errno, EINVAL);
    assert_int_equal(vfu_client_device_get_info(st->c, &info), 0);
    free(sgl);
}

static void
run_workers(struct scale *st)
{
    uint64_t *bits = calloc(LOG_WORDS, sizeof(uint64_t));
    pthread_t q;
    uint64_t start, end;
    unsigned cycles = 0, reports = 0;

    assert_non_null(bits);
    pthread_mutex_lock(&st->lock);
    st->active = true;
    pthread_mutex_unlock(&st->lock);
    atomic_store(&st->running, (int)NW);
    assert_int_equal(pthread_create(&q, NULL, quiescer, st), 0);
    for (unsigned i = 0; i < NW; i++) {
        assert_int_equal(pthread_create(&st->w[i].thread, NULL, worker_main,
                                        &st->w[i]), 0);
    }
    /* Reports all along; a map cycle in each third of the run. */
    start = now_ms();
    end = start + RUN_MS;
    while (now_ms() < end) {
        report(st, bits);
        reports++;
        if (vfu_client_poll(st->c, 2) < 0) {
            fail_at(st, "vfu_client_poll: %s", strerror(errno));
        }
        if (cycles < NR_CYCLES &&
            now_ms() >= start + (cycles + 1) * (RUN_MS / (NR_CYCLES + 1))) {
            cycle_maps(st);
            cycles++;
        }
    }
    while (cycles < NR_CYCLES) {
        cycle_maps(st);
        cycles++;
    }
    atomic_store(&st->stop, true);
    /* Message-based accesses still in flight need the client to answer. */
    while (atomic_load(&st->running) > 0) {
        if (vfu_client_poll(st->c, 5) < 0) {
            fail_at(st, "vfu_client_poll: %s", strerror(errno));
            break;
        }
    }
    for (unsigned i = 0; i < NW; i++) {
        assert_int_equal(pthread_join(st->w[i].thread, NULL), 0);
    }
    pthread_mutex_lock(&st->lock);
    st->active = false;
    st->stop_quiescer = true;
    pthread_cond_broadcast(&st->cond);
    pthread_mutex_unlock(&st->lock);
    assert_int_equal(pthread_join(q, NULL), 0);
    /* Whatever the last reports missed. */
    report(st, bits);
    print_message("dma scale: %u reports, %u quiesces\n", reports + 1,
                  st->quiesces_done);
    free(bits);
}

static void
check_results(struct scale *st)
{
    unsigned written = 0, mismatched = 0, wrong = 0;

    if (atomic_load(&st->errors) != 0) {
        fail_msg("%u worker errors, the first: %s", atomic_load(&st->errors),
                 st->first_error);
    }
    /* Every unmap and remap went through a quiesce with the workers parked. */
    assert_int_equal(st->quiesce_requests, 4 * NR_CYCLES);
    assert_int_equal(st->quiesces_done, 4 * NR_CYCLES);
    assert_int_equal(st->quiesced_callbacks, 4 * NR_CYCLES);
    assert_int_equal(atomic_load(&st->violations), 0);
    for (unsigned i = 0; i < NW; i++) {
        assert_true(st->w[i].parks > 0);
        for (unsigned k = 0; k < NR_OPS; k++) {
            assert_true(atomic_load(&st->ops[i][k]) > 0);
        }
    }
    for (uint32_t p = 0; p < LOG_PAGES; p++) {
        bool w = (atomic_load(&st->written[p / 64]) >> (p % 64)) & 1;
        bool r = (st->reported[p / 64] >> (p % 64)) & 1;

        written += w;
        if (w != r) {
            if (mismatched++ < 8) {
                print_error("page %u (iova %#llx): written %d, reported %d\n", p,
                            (unsigned long long)page_iova(p), w, r);
            }
        }
        if (st->backing[p] == NULL) {
            if (w) {
                wrong++;
            }
            continue;
        }
        if (w != (st->stamp[p] != STAMP_INIT) ||
            !page_ok(st->backing[p], p, st->stamp[p])) {
            if (wrong++ < 8) {
                print_error("page %u holds the wrong data (stamp %u)\n", p,
                            st->stamp[p]);
            }
        }
    }
    print_message("dma scale: %u pages written\n", written);
    assert_true(written > 100);
    assert_int_equal(mismatched, 0);
    assert_int_equal(wrong, 0);
}

static void
test_dma_scale(void **state)
{
    struct scale *st = calloc(1, sizeof(*st));
    struct mapper mappers[MAP_THREADS];
    pthread_t mt[MAP_THREADS];
    struct vfio_user_device_feature_dma_logging_range range = {
        .iova = BASE, .length = (uint64_t)LOG_PAGES * PG,
    };
    uint64_t t0;

    (void)state;
    assert_non_null(st);
    pthread_mutex_init(&st->lock, NULL);
    pthread_cond_init(&st->cond, NULL);
    st->fsize = (size_t)FILE_PAGES * PG;
    st->mfd = harness_memfd(st->fsize);
    assert_true(st->mfd >= 0);
    st->fmem = mmap(NULL, st->fsize, PROT_READ | PROT_WRITE, MAP_SHARED, st->mfd, 0);
    assert_true(st->fmem != MAP_FAILED);
    for (unsigned m = 0; m < NR_MSG; m++) {
        st->msgmem[m] = aligned_alloc(PG, MSG_PAGES * PG);
        assert_non_null(st->msgmem[m]);
    }
    st->backing = calloc(LOG_PAGES, sizeof(char *));
    st->stamp = calloc(LOG_PAGES, sizeof(uint32_t));
    st->written = calloc(LOG_WORDS, sizeof(uint64_t));
    st->reported = calloc(LOG_WORDS, sizeof(uint64_t));
    assert_non_null(st->backing);
    assert_non_null(st->stamp);
    assert_non_null(st->written);
    assert_non_null(st->reported);
    layout(st);
    for (unsigned i = 0; i < NW; i++) {
        st->w[i].id = i;
        assign(st, &st->w[i]);
    }

    st->srv = harness_server_start(scale_setup, st);
    assert_non_null(st->srv);
    st->ctx = harness_server_ctx(st->srv);
    st->c = harness_connect(st->srv);

    /* 65,535 maps: the singles from several threads, pipelined. */
    t0 = now_ms();
    for (unsigned i = 0; i < MAP_THREADS; i++) {
        mappers[i] = (struct mapper) { .st = st, .id = i };
        assert_int_equal(pthread_create(&mt[i], NULL, map_singles, &mappers[i]), 0);
    }
    for (unsigned i = 0; i < MAP_THREADS; i++) {
        assert_int_equal(pthread_join(mt[i], NULL), 0);
        if (mappers[i].failures != 0) {
            fail_msg("mapper %u: %u maps failed, first: %s", i,
                     mappers[i].failures, strerror(mappers[i].first_errno));
        }
    }
    for (unsigned m = 0; m < NR_MULTI; m++) {
        assert_int_equal(vfu_client_dma_map(st->c,
                             page_iova(MULTI_FIRST + m * (MULTI_PAGES + 1)),
                             MULTI_PAGES * PG,
                             m == RO_MULTI ? VFIO_USER_F_DMA_REGION_READ : RW,
                             st->mfd, ((uint64_t)NR_SINGLE + m * MULTI_PAGES) * PG,
                             NULL), 0);
    }
    for (unsigned m = 0; m < NR_MSG; m++) {
        assert_int_equal(vfu_client_dma_map(st->c,
                             page_iova(MSG_FIRST + m * (MSG_PAGES + 1)),
                             MSG_PAGES * PG, RW, -1, 0, st->msgmem[m]), 0);
    }
    print_message("dma scale: %u maps in %llu ms\n", NR_MAPS,
                  (unsigned long long)(now_ms() - t0));

    assert_int_equal(vfu_client_dma_logging_start(st->c, PG, &range, 1), 0);
    run_workers(st);
    check_results(st);
    error_paths(st);
    assert_int_equal(vfu_client_dma_logging_stop(st->c), 0);
    assert_int_equal(vfu_client_dma_unmap(st->c, 0, 0, VFIO_DMA_UNMAP_FLAG_ALL), 0);
    vfu_client_close(st->c);
    assert_int_equal(harness_server_last_error(st->srv), 0);
    assert_int_equal(harness_server_stop(st->srv), 0);

    for (unsigned i = 0; i < NW; i++) {
        free(st->w[i].fd_groups);
        free(st->w[i].msg_groups);
        free(st->w[i].sgl);
        free(st->w[i].held_sgl);
        free(st->w[i].buf);
        free(st->w[i].cmp);
    }
    for (unsigned m = 0; m < NR_MSG; m++) {
        free(st->msgmem[m]);
    }
    munmap(st->fmem, st->fsize);
    close(st->mfd);
    free(st->backing);
    free(st->stamp);
    free((void *)st->written);
    free(st->reported);
    pthread_cond_destroy(&st->cond);
    pthread_mutex_destroy(&st->lock);
    free(st);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dma_scale),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
