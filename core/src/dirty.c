/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 the vfu authors. */

/*
 * Dirty page logging for migration (DEVICE_FEATURE DMA_LOGGING_*). The log
 * covers the IOVA ranges the client names at START, whether or not they are
 * mapped; a START naming none logs every map, those added later included
 * (the log is then rebuilt with each new map: dirty_log_map()). Device threads set bits with atomic fetch-or while the loop thread
 * reports with atomic fetch-and, so no write is ever lost between reports.
 * START and STOP may race with device threads marking pages: the log is
 * published through an atomic pointer and STOP waits for markers to leave
 * before freeing it.
 */

#include <sched.h>
#include <stdlib.h>
#include <string.h>

#include "dma_internal.h"

#define LOG_MIN_PGSIZE 4096u

static bool
is_pow2(uint64_t v)
{
    return v != 0 && (v & (v - 1)) == 0;
}

static uint64_t
words_for(uint64_t bits)
{
    return bits / 64 + (bits % 64 != 0);
}

uint64_t
dirty_bitmap_bytes(uint64_t length, uint64_t pgsize)
{
    uint64_t pages = length / pgsize + (length % pgsize != 0);

    return words_for(pages) * sizeof(uint64_t);
}

void
dirty_bits_free(struct dirty_bits *log)
{
    if (log == NULL) {
        return;
    }
    for (uint32_t i = 0; i < log->nr_ranges; i++) {
        free(log->ranges[i].bits);
    }
    free(log->ranges);
    free(log);
}

static int
req_cmp(const void *a, const void *b)
{
    const struct dirty_range_req *x = a, *y = b;

    return x->iova < y->iova ? -1 : x->iova > y->iova;
}

struct dirty_bits *
dirty_bits_new(uint64_t pgsize, const struct dirty_range_req *req, uint32_t nr,
               uint64_t max_bytes)
{
    struct dirty_range_req *sorted = NULL;
    struct dirty_bits *log = NULL;
    uint64_t bytes = 0, prev_lastpg = 0;
    uint32_t n = 0;

    if (!is_pow2(pgsize) || nr == 0) {
        errno = EINVAL;
        return NULL;
    }
    sorted = malloc(nr * sizeof(*sorted));
    log = calloc(1, sizeof(*log));
    if (sorted == NULL || log == NULL) {
        goto fail_nomem;
    }
    memcpy(sorted, req, nr * sizeof(*sorted));
    qsort(sorted, nr, sizeof(*sorted), req_cmp);
    log->pgsize = pgsize;
    log->ranges = calloc(nr, sizeof(*log->ranges));
    if (log->ranges == NULL) {
        goto fail_nomem;
    }
    /* Round each range out to pages; merge those that touch. */
    for (uint32_t i = 0; i < nr; i++) {
        uint64_t iova = sorted[i].iova, len = sorted[i].length, start, lastpg;

        if (len == 0 || len - 1 > UINT64_MAX - iova ||
            (i > 0 && iova <= sorted[i - 1].iova + (sorted[i - 1].length - 1))) {
            errno = EINVAL;
            goto fail;
        }
        start = iova & ~(pgsize - 1);
        lastpg = (iova + (len - 1)) & ~(pgsize - 1);
        if (n > 0 && (start <= prev_lastpg || start - prev_lastpg <= pgsize)) {
            struct dirty_range *r = &log->ranges[n - 1];
            if (lastpg > prev_lastpg) {
                r->pages = (lastpg - r->start) / pgsize + 1;
                prev_lastpg = lastpg;
            }
            continue;
        }
        log->ranges[n].start = start;
        log->ranges[n].pages = (lastpg - start) / pgsize + 1;
        prev_lastpg = lastpg;
        n++;
    }
    for (uint32_t i = 0; i < n; i++) {
        uint64_t b = words_for(log->ranges[i].pages) * sizeof(uint64_t);
        if (b > max_bytes || bytes > max_bytes - b) {
            errno = E2BIG;
            goto fail;
        }
        bytes += b;
    }
    for (uint32_t i = 0; i < n; i++) {
        log->ranges[i].bits = calloc(words_for(log->ranges[i].pages),
                                     sizeof(uint64_t));
        log->nr_ranges = i + 1;
        if (log->ranges[i].bits == NULL) {
            goto fail_nomem;
        }
    }
    log->nr_ranges = n;
    free(sorted);
    return log;
fail_nomem:
    errno = ENOMEM;
fail:
    {
        int saved = errno;
        free(sorted);
        dirty_bits_free(log);
        errno = saved;
    }
    return NULL;
}

/* Index of the first range whose last page is at or after page addr pg. */
static uint32_t
first_range(const struct dirty_bits *log, uint64_t addr)
{
    uint32_t lo = 0, hi = log->nr_ranges;

    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        const struct dirty_range *r = &log->ranges[mid];
        uint64_t rlast = r->start + (r->pages - 1) * log->pgsize + (log->pgsize - 1);

        if (rlast < addr) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return lo;
}

static void
set_bits_atomic(_Atomic uint64_t *w, uint64_t first, uint64_t last)
{
    for (uint64_t i = first / 64; i <= last / 64; i++) {
        uint64_t lo = i == first / 64 ? first % 64 : 0;
        uint64_t hi = i == last / 64 ? last % 64 : 63;
        uint64_t mask = (hi == 63 ? ~0ull : ((1ull << (hi + 1)) - 1)) &
                        ~((1ull << lo) - 1);

        /* Skip the locked op when already set: the common rewrite case. */
        if ((atomic_load_explicit(&w[i], memory_order_relaxed) & mask) != mask) {
            atomic_fetch_or(&w[i], mask);
        }
    }
}

void
dirty_bits_mark(struct dirty_bits *log, uint64_t iova, uint64_t len)
{
    uint64_t last, pg = log->pgsize;

    if (len == 0) {
        return;
    }
    last = len - 1 > UINT64_MAX - iova ? UINT64_MAX : iova + (len - 1);
    for (uint32_t i = first_range(log, iova); i < log->nr_ranges; i++) {
        struct dirty_range *r = &log->ranges[i];
        uint64_t rlast = r->start + (r->pages - 1) * pg + (pg - 1);
        uint64_t lo, hi;

        if (r->start > last) {
            break;
        }
        lo = iova > r->start ? iova : r->start;
        hi = last < rlast ? last : rlast;
        set_bits_atomic(r->bits, (lo - r->start) / pg, (hi - r->start) / pg);
    }
}

static void
set_bits_plain(uint64_t *w, uint64_t first, uint64_t last)
{
    for (uint64_t i = first / 64; i <= last / 64; i++) {
        uint64_t lo = i == first / 64 ? first % 64 : 0;
        uint64_t hi = i == last / 64 ? last % 64 : 63;

        w[i] |= (hi == 63 ? ~0ull : ((1ull << (hi + 1)) - 1)) & ~((1ull << lo) - 1);
    }
}

/* OR v into out at bit offset pos (pos may be negative: low bits drop). */
static void
or_shifted(uint64_t *out, uint64_t v, int64_t pos)
{
    if (pos < 0) {
        out[0] |= v >> -pos;
        return;
    }
    out[pos / 64] |= v << (pos % 64);
    if (pos % 64 != 0) {
        uint64_t rest = v >> (64 - pos % 64);
        if (rest != 0) {
            out[pos / 64 + 1] |= rest;
        }
    }
}

int
dirty_bits_report(struct dirty_bits *log, uint64_t iova, uint64_t len,
                  uint64_t pgsize, uint64_t *out)
{
    const uint64_t L = log->pgsize;
    struct dirty_range *r;
    uint64_t last, rlast, kfirst, klast;
    bool first_full, last_full, same;
    uint32_t i;

    if (len == 0 || len - 1 > UINT64_MAX - iova || !is_pow2(pgsize)) {
        errno = EINVAL;
        return -1;
    }
    last = iova + (len - 1);
    i = first_range(log, iova);
    if (i >= log->nr_ranges) {
        errno = EINVAL;
        return -1;
    }
    r = &log->ranges[i];
    rlast = r->start + (r->pages - 1) * L + (L - 1);
    if (iova < r->start || last > rlast) {
        errno = EINVAL;
        return -1;
    }
    memset(out, 0, dirty_bitmap_bytes(len, pgsize));
    kfirst = (iova - r->start) / L;
    klast = (last - r->start) / L;
    /* Edge pages partly outside the range are reported but kept. */
    first_full = (iova - r->start) % L == 0;
    last_full = (last - r->start) % L == L - 1;
    same = pgsize == L && first_full;
    for (uint64_t w = kfirst / 64; w <= klast / 64; w++) {
        uint64_t lo = w == kfirst / 64 ? kfirst % 64 : 0;
        uint64_t hi = w == klast / 64 ? klast % 64 : 63;
        uint64_t mask = (hi == 63 ? ~0ull : ((1ull << (hi + 1)) - 1)) &
                        ~((1ull << lo) - 1);
        uint64_t clear = mask, v;

        if (!first_full && w == kfirst / 64) {
            clear &= ~(1ull << (kfirst % 64));
        }
        if (!last_full && w == klast / 64) {
            clear &= ~(1ull << (klast % 64));
        }
        if (atomic_load_explicit(&r->bits[w], memory_order_relaxed) == 0) {
            continue;   /* clean: no need for a locked op */
        }
        v = (clear != 0 ? atomic_fetch_and(&r->bits[w], ~clear)
                        : atomic_load(&r->bits[w])) & mask;
        if (v == 0) {
            continue;
        }
        if (same) {
            or_shifted(out, v, (int64_t)(w * 64) - (int64_t)kfirst);
            continue;
        }
        while (v != 0) {
            uint64_t k = w * 64 + (uint64_t)__builtin_ctzll(v);
            uint64_t plo = r->start + k * L, phi = plo + (L - 1);

            v &= v - 1;
            plo = plo > iova ? plo : iova;
            phi = phi < last ? phi : last;
            set_bits_plain(out, (plo - iova) / pgsize, (phi - iova) / pgsize);
        }
    }
    return 0;
}

/* ---- per context ---- */

void
dirty_mark_logged(struct dirty_log *d, uint64_t iova, uint64_t len)
{
    struct dirty_bits *b;

    atomic_fetch_add(&d->users, 1);
    b = atomic_load(&d->bits);
    if (b != NULL) {
        dirty_bits_mark(b, iova, len);
    }
    atomic_fetch_sub(&d->users, 1);
}

void
dirty_stop(vfu_ctx_t *ctx)
{
    struct dirty_log *d = ctx->dirty;
    struct dirty_bits *b;

    if (d == NULL) {
        return;
    }
    b = atomic_exchange(&d->bits, NULL);
    /* A marker that saw the old log finishes before it is freed. */
    while (atomic_load(&d->users) != 0) {
        sched_yield();
    }
    dirty_bits_free(b);
}

void
dirty_free(vfu_ctx_t *ctx)
{
    if (ctx->dirty == NULL) {
        return;
    }
    dirty_stop(ctx);
    free(ctx->dirty->reply);
    free(ctx->dirty);
    ctx->dirty = NULL;
}

static uint64_t max_bitmap_bytes(const vfu_ctx_t *ctx);

/* Mark in to what old has marked (old no longer marked by anyone). */
static void
copy_marks(struct dirty_bits *to, const struct dirty_bits *old)
{
    for (uint32_t i = 0; i < old->nr_ranges; i++) {
        const struct dirty_range *r = &old->ranges[i];

        for (uint64_t w = 0; w < words_for(r->pages); w++) {
            uint64_t v = atomic_load_explicit(&r->bits[w], memory_order_relaxed);

            while (v != 0) {
                uint64_t k = w * 64 + (uint64_t)__builtin_ctzll(v);
                v &= v - 1;
                dirty_bits_mark(to, r->start + k * old->pgsize, old->pgsize);
            }
        }
    }
}

int
dirty_log_map(vfu_ctx_t *ctx, uint64_t iova, uint64_t len)
{
    struct dirty_log *d = ctx->dirty;
    struct dirty_range_req *req;
    struct dirty_bits *b, *nb;
    uint64_t last = iova + (len - 1);
    uint32_t i, n = 0;
    bool placed;

    b = d != NULL ? atomic_load(&d->bits) : NULL;
    if (b == NULL || !b->all || len == 0) {
        return 0;
    }
    i = first_range(b, iova);
    if (i < b->nr_ranges && b->ranges[i].start <= iova &&
        last - b->ranges[i].start < b->ranges[i].pages * b->pgsize) {
        return 0;               /* already logged (a map there before) */
    }
    /* The ranges logged now and the new one, in order, overlaps merged
     * (dirty_bits_new() merges ranges that only touch). */
    req = malloc(((size_t)b->nr_ranges + 1) * sizeof(*req));
    if (req == NULL) {
        errno = ENOMEM;
        return -1;
    }
    for (i = 0, placed = false; i < b->nr_ranges || !placed;) {
        struct dirty_range_req x;

        if (!placed && (i == b->nr_ranges || iova < b->ranges[i].start)) {
            x = (struct dirty_range_req){ iova, len };
            placed = true;
        } else {
            x = (struct dirty_range_req){ b->ranges[i].start,
                                          b->ranges[i].pages * b->pgsize };
            i++;
        }
        if (n > 0 && x.iova <= req[n - 1].iova + (req[n - 1].length - 1)) {
            uint64_t e1 = req[n - 1].iova + (req[n - 1].length - 1);
            uint64_t e2 = x.iova + (x.length - 1);

            req[n - 1].length = (e1 > e2 ? e1 : e2) - req[n - 1].iova + 1;
        } else {
            req[n++] = x;
        }
    }
    nb = dirty_bits_new(b->pgsize, req, n, max_bitmap_bytes(ctx));
    free(req);
    if (nb == NULL) {
        return -1;
    }
    nb->all = true;
    atomic_store(&d->bits, nb);
    /* Markers still on the old log finish; then nothing it holds is lost. */
    while (atomic_load(&d->users) != 0) {
        sched_yield();
    }
    copy_marks(nb, b);
    dirty_bits_free(b);
    return 0;
}

static uint64_t
max_bitmap_bytes(const vfu_ctx_t *ctx)
{
    if (ctx->caps.migr_max_bitmap_size != 0 &&
        ctx->caps.migr_max_bitmap_size < VFU_MIGR_MAX_BITMAP_SIZE) {
        return ctx->caps.migr_max_bitmap_size;
    }
    return VFU_MIGR_MAX_BITMAP_SIZE;
}

/* Room for the reply, owned by the context until the next one. */
static void *
reply_buf(struct dirty_log *d, size_t size)
{
    if (d->reply_size < size) {
        void *p = realloc(d->reply, size);
        if (p == NULL) {
            errno = ENOMEM;
            return NULL;
        }
        d->reply = p;
        d->reply_size = size;
    }
    return d->reply;
}

/* Ranges for a START without any: every map present now (those added
 * later join through dirty_log_map()). */
static struct dirty_range_req *
ranges_from_maps(vfu_ctx_t *ctx, uint32_t *nr)
{
    struct dma_table *t = ctx->dma;
    struct dirty_range_req *req;
    uint32_t n = 0;

    if (t == NULL || t->nr_maps == 0) {
        errno = EINVAL;
        return NULL;
    }
    req = calloc(t->nr_maps, sizeof(*req));
    if (req == NULL) {
        return NULL;
    }
    for (uint32_t s = 0; s < t->nr_slots && n < t->nr_maps; s++) {
        const struct dma_slot *m = &t->slots[s];
        if (m->prot != 0) {
            req[n].iova = m->iova;
            req[n].length = m->last - m->iova + 1;
            n++;
        }
    }
    *nr = n;
    return req;
}

static int
logging_start(vfu_ctx_t *ctx, struct vfu_msg *msg)
{
    const size_t hdr = sizeof(struct vfio_user_device_feature);
    struct vfio_user_device_feature_dma_logging_control ctl;
    struct dirty_range_req *req;
    struct dirty_bits *b;
    size_t avail;
    uint32_t nr;
    char *out;

    if (msg->in_size < hdr + sizeof(ctl)) {
        vfu_log(ctx, LOG_ERR, "DMA_LOGGING_START: short message");
        errno = EINVAL;
        return -1;
    }
    memcpy(&ctl, (char *)msg->in + hdr, sizeof(ctl));
    avail = msg->in_size - hdr - sizeof(ctl);
    if (avail / sizeof(struct dirty_range_req) < ctl.num_ranges ||
        avail != (size_t)ctl.num_ranges * sizeof(struct dirty_range_req)) {
        vfu_log(ctx, LOG_ERR, "DMA_LOGGING_START: %u ranges in %zu bytes",
                ctl.num_ranges, avail);
        errno = EINVAL;
        return -1;
    }
    if (!is_pow2(ctl.page_size)) {
        vfu_log(ctx, LOG_ERR, "DMA_LOGGING_START: bad page size %#lx",
                (unsigned long)ctl.page_size);
        errno = EINVAL;
        return -1;
    }
    if (ctx->dirty == NULL) {
        /* No DMA set up: no device thread can be marking yet. */
        ctx->dirty = calloc(1, sizeof(*ctx->dirty));
        if (ctx->dirty == NULL) {
            return -1;
        }
    }
    b = atomic_load(&ctx->dirty->bits);
    if (b != NULL) {
        /*
         * START again at the page size asked for (or given) before is a
         * no-op, as in libvfio-user: the log and its ranges stay as they
         * are. Another page size would change what the log means.
         */
        if (ctl.page_size != ctx->dirty->asked_pgsize &&
            ctl.page_size != b->pgsize) {
            vfu_log(ctx, LOG_ERR, "DMA_LOGGING_START: logging already, "
                    "page size %#lx not %#lx", (unsigned long)b->pgsize,
                    (unsigned long)ctl.page_size);
            errno = EINVAL;
            return -1;
        }
        ctl.page_size = b->pgsize;
        out = reply_buf(ctx->dirty, msg->in_size);
        if (out == NULL) {
            return -1;
        }
        memcpy(out, msg->in, msg->in_size);
        memcpy(out + hdr, &ctl, sizeof(ctl));
        return vfu_msg_reply_add(msg, out, msg->in_size);
    }
    ctx->dirty->asked_pgsize = ctl.page_size;
    if (ctl.page_size < LOG_MIN_PGSIZE) {
        ctl.page_size = LOG_MIN_PGSIZE;
    }
    if (ctl.num_ranges == 0 && ctx->dma == NULL) {
        /* No DMA at all (libvfio-user answers EINVAL too). */
        vfu_log(ctx, LOG_ERR, "DMA_LOGGING_START: the device does no DMA");
        errno = EINVAL;
        return -1;
    }
    if (ctl.num_ranges == 0 && ctx->dma->nr_maps == 0) {
        /* All maps, and there are none yet: an empty log that grows. */
        b = calloc(1, sizeof(*b));
        if (b == NULL) {
            errno = ENOMEM;
            return -1;
        }
        b->pgsize = ctl.page_size;
        b->all = true;
        goto started;
    }
    if (ctl.num_ranges == 0) {
        req = ranges_from_maps(ctx, &nr);
    } else {
        nr = ctl.num_ranges;
        req = malloc(avail);
        if (req != NULL) {
            memcpy(req, (char *)msg->in + hdr + sizeof(ctl), avail);
        }
    }
    if (req == NULL) {
        vfu_log_errno(ctx, LOG_ERR, errno, "DMA_LOGGING_START");
        return -1;
    }
    b = dirty_bits_new(ctl.page_size, req, nr, max_bitmap_bytes(ctx));
    free(req);
    if (b == NULL) {
        vfu_log_errno(ctx, LOG_ERR, errno, "DMA_LOGGING_START: page size %#lx",
                      (unsigned long)ctl.page_size);
        return -1;
    }
    /* No ranges means all writes (the spec): maps added later too. */
    b->all = ctl.num_ranges == 0;
started:
    /* The reply is the request with the page size we chose. */
    out = reply_buf(ctx->dirty, msg->in_size);
    if (out == NULL) {
        dirty_bits_free(b);
        return -1;
    }
    memcpy(out, msg->in, msg->in_size);
    memcpy(out + hdr, &ctl, sizeof(ctl));
    atomic_store(&ctx->dirty->bits, b);
    vfu_log(ctx, LOG_DEBUG, "dirty logging started, page size %#lx",
            (unsigned long)ctl.page_size);
    return vfu_msg_reply_add(msg, out, msg->in_size);
}

/*
 * Does [iova, last] hold memory mapped with a file, the only memory the
 * server writes behind the client's back? Nothing mapped there: ENOENT.
 * Only maps without a file: EINVAL; the client itself writes those when
 * it serves our DMA_WRITE messages, so its own tracking sees it all.
 * Gaps and message-only maps beside a file map are fine: the log is of
 * IOVA ranges, and reports what was marked there.
 */
static int
report_range_mapped(vfu_ctx_t *ctx, uint64_t iova, uint64_t last)
{
    const struct dma_map *m;
    bool mapped = false;

    for (uint64_t cur = iova; ctx->dma != NULL;) {
        m = dma_table_next(ctx->dma, cur);
        if (m == NULL || m->iova > last) {
            break;
        }
        if (m->file != NULL) {
            return 0;
        }
        mapped = true;
        if (m->last >= last) {
            break;
        }
        cur = m->last + 1;
    }
    errno = mapped ? EINVAL : ENOENT;
    return -1;
}

static int
logging_report(vfu_ctx_t *ctx, struct vfu_msg *msg)
{
    const size_t hdr = sizeof(struct vfio_user_device_feature);
    struct vfio_user_device_feature_dma_logging_report rep;
    struct vfio_user_device_feature feat;
    struct dirty_bits *b;
    uint64_t bytes;
    char *out;

    if (msg->in_size != hdr + sizeof(rep)) {
        vfu_log(ctx, LOG_ERR, "DMA_LOGGING_REPORT: bad size %zu", msg->in_size);
        errno = EINVAL;
        return -1;
    }
    memcpy(&feat, msg->in, hdr);
    memcpy(&rep, (char *)msg->in + hdr, sizeof(rep));
    b = ctx->dirty != NULL ? atomic_load(&ctx->dirty->bits) : NULL;
    if (b == NULL) {
        vfu_log(ctx, LOG_ERR, "DMA_LOGGING_REPORT: not logging");
        errno = EINVAL;
        return -1;
    }
    /* A page bigger than the range would be reported only in part. */
    if (rep.length == 0 || rep.length - 1 > UINT64_MAX - rep.iova ||
        !is_pow2(rep.page_size) || rep.page_size > rep.length) {
        vfu_log(ctx, LOG_ERR, "DMA_LOGGING_REPORT: bad length %#lx or page "
                "size %#lx", (unsigned long)rep.length,
                (unsigned long)rep.page_size);
        errno = EINVAL;
        return -1;
    }
    bytes = dirty_bitmap_bytes(rep.length, rep.page_size);
    if (bytes > max_bitmap_bytes(ctx) ||
        hdr + sizeof(rep) + bytes > UINT32_MAX) {
        vfu_log(ctx, LOG_ERR, "DMA_LOGGING_REPORT: bitmap of %#lx bytes too big",
                (unsigned long)bytes);
        errno = E2BIG;
        return -1;
    }
    if (feat.argsz < hdr + sizeof(rep) + bytes) {
        /* argsz is the room the client has for the reply. */
        vfu_log(ctx, LOG_ERR, "DMA_LOGGING_REPORT: argsz %u below %zu",
                feat.argsz, (size_t)(hdr + sizeof(rep) + bytes));
        errno = EINVAL;
        return -1;
    }
    if (report_range_mapped(ctx, rep.iova, rep.iova + (rep.length - 1)) < 0) {
        vfu_log_errno(ctx, LOG_ERR, errno, "DMA_LOGGING_REPORT %#lx+%#lx: "
                      "not all mapped with a file", (unsigned long)rep.iova,
                      (unsigned long)rep.length);
        return -1;
    }
    /* Bit 0 stands for a page starting at iova. */
    if (rep.iova % rep.page_size != 0) {
        vfu_log(ctx, LOG_ERR, "DMA_LOGGING_REPORT: iova %#lx not a multiple "
                "of the page size %#lx", (unsigned long)rep.iova,
                (unsigned long)rep.page_size);
        errno = ENOTSUP;
        return -1;
    }
    out = reply_buf(ctx->dirty, hdr + sizeof(rep) + bytes);
    if (out == NULL) {
        return -1;
    }
    if (dirty_bits_report(b, rep.iova, rep.length, rep.page_size,
                          (uint64_t *)(void *)(out + hdr + sizeof(rep))) < 0) {
        vfu_log(ctx, LOG_ERR, "DMA_LOGGING_REPORT %#lx+%#lx: not logged",
                (unsigned long)rep.iova, (unsigned long)rep.length);
        return -1;
    }
    feat.argsz = (uint32_t)(hdr + sizeof(rep) + bytes);
    memcpy(out, &feat, hdr);
    memcpy(out + hdr, &rep, sizeof(rep));
    return vfu_msg_reply_add(msg, out, hdr + sizeof(rep) + bytes);
}

int
vfu_handle_device_feature(vfu_ctx_t *ctx, struct vfu_msg *msg)
{
    const uint32_t ops = VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_SET |
                         VFIO_DEVICE_FEATURE_PROBE;
    struct vfio_user_device_feature feat;
    uint32_t idx, op, allowed;

    if (msg->in_size < sizeof(feat)) {
        vfu_log(ctx, LOG_ERR, "DEVICE_FEATURE: short message");
        errno = EINVAL;
        return -1;
    }
    memcpy(&feat, msg->in, sizeof(feat));
    idx = feat.flags & VFIO_DEVICE_FEATURE_MASK;
    op = feat.flags & ops;
    if ((feat.flags & ~(ops | VFIO_DEVICE_FEATURE_MASK)) != 0) {
        vfu_log(ctx, LOG_ERR, "DEVICE_FEATURE: bad flags %#x", feat.flags);
        errno = EINVAL;
        return -1;
    }
    if (idx == VFIO_DEVICE_FEATURE_MIGRATION ||
        idx == VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE) {
        return vfu_migration_feature(ctx, msg);
    }
    if (idx != VFIO_DEVICE_FEATURE_DMA_LOGGING_START &&
        idx != VFIO_DEVICE_FEATURE_DMA_LOGGING_STOP &&
        idx != VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT) {
        vfu_log(ctx, LOG_DEBUG, "DEVICE_FEATURE: feature %u not supported", idx);
        errno = ENOTSUP;
        return -1;
    }
    allowed = idx == VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT
              ? VFIO_DEVICE_FEATURE_GET : VFIO_DEVICE_FEATURE_SET;
    if ((op & ~VFIO_DEVICE_FEATURE_PROBE & ~allowed) != 0 ||
        (!(op & VFIO_DEVICE_FEATURE_PROBE) && op != allowed)) {
        vfu_log(ctx, LOG_ERR, "DEVICE_FEATURE %u: bad operation %#x", idx, op);
        errno = EINVAL;
        return -1;
    }
    if (op & VFIO_DEVICE_FEATURE_PROBE) {
        return vfu_msg_reply_add(msg, msg->in, msg->in_size);
    }
    switch (idx) {
    case VFIO_DEVICE_FEATURE_DMA_LOGGING_START:
        return logging_start(ctx, msg);
    case VFIO_DEVICE_FEATURE_DMA_LOGGING_STOP:
        /*
         * STOP has no payload of its own, but clients send START's control
         * and ranges with it (libvfio-user's tests do): ignored, as all
         * logging stops.
         */
        dirty_stop(ctx);
        return vfu_msg_reply_add(msg, msg->in, msg->in_size);
    default:
        return logging_report(ctx, msg);
    }
}
