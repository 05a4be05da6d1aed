/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 the vfu authors. */

/*
 * The VMM's side of a live migration, on top of the raw client calls: the
 * order of state changes, chunking by max_data_xfer_size, and pre-copy
 * rounds with dirty-page reports.
 */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "vfu-client-migration.h"
#include "vfio-user.h"

static size_t
chunk_size(vfu_client_t *c)
{
    const struct vfu_client_caps *caps = vfu_client_caps(c);
    uint64_t n = caps != NULL ? caps->max_data_xfer_size : 0;

    if (n == 0 || n > VFIO_USER_DEFAULT_MAX_DATA_XFER_SIZE * 64ull) {
        n = VFIO_USER_DEFAULT_MAX_DATA_XFER_SIZE;
    }
    return (size_t)n;
}

/*
 * Reading ahead: a thread reads the next chunks from the source while the
 * caller's sink consumes the last one (writing it to the destination, say),
 * so that the two halves of the copy run on two CPUs at once. Chunks reach
 * the sink in order, from the caller's thread; a read is only issued after
 * the previous one came back full, as a plain loop would.
 */
#define READ_AHEAD 3

struct reader {
    vfu_client_t *src;
    size_t chunk;
    uint8_t *buf[READ_AHEAD];
    ssize_t len[READ_AHEAD];        /* bytes in the slot, or -1 */
    int err[READ_AHEAD];            /* errno when len is -1 */
    pthread_mutex_t lock;
    pthread_cond_t cond;
    unsigned filled, taken;         /* slots produced and consumed so far */
    bool stop;                      /* the sink failed: read no more */
};

static void *
read_ahead(void *arg)
{
    struct reader *r = arg;
    bool more = true;

    while (more) {
        pthread_mutex_lock(&r->lock);
        while (!r->stop && r->filled - r->taken == READ_AHEAD) {
            pthread_cond_wait(&r->cond, &r->lock);
        }
        unsigned slot = r->filled % READ_AHEAD;
        bool stop = r->stop;
        pthread_mutex_unlock(&r->lock);
        if (stop) {
            break;
        }
        ssize_t n = vfu_client_mig_data_read(r->src, r->buf[slot], r->chunk);
        int err = errno;
        more = n >= 0 && (size_t)n == r->chunk;
        pthread_mutex_lock(&r->lock);
        r->len[slot] = n;
        r->err[slot] = err;
        r->filled++;
        pthread_cond_signal(&r->cond);
        pthread_mutex_unlock(&r->lock);
    }
    return NULL;
}

/* The same without a thread, when none can be had. */
static ssize_t
read_all_plain(vfu_client_t *src, size_t chunk, uint8_t *buf,
               vfu_client_mig_sink_t *sink, void *opaque)
{
    uint64_t total = 0;
    ssize_t n;

    do {
        n = vfu_client_mig_data_read(src, buf, chunk);
        if (n < 0 || (n > 0 && sink(opaque, buf, (size_t)n) < 0)) {
            return -1;
        }
        total += (uint64_t)n;
    } while ((size_t)n == chunk);   /* a short read ends this part */
    return (ssize_t)total;
}

ssize_t
vfu_client_mig_read_all(vfu_client_t *src, vfu_client_mig_sink_t *sink,
                        void *opaque)
{
    struct reader r = { .src = src, .chunk = chunk_size(src) };
    uint64_t total = 0;
    ssize_t rc = -1;
    pthread_t tid;
    int err = 0, i;

    if (sink == NULL) {
        errno = EINVAL;
        return -1;
    }
    for (i = 0; i < READ_AHEAD; i++) {
        r.buf[i] = malloc(r.chunk);
        if (r.buf[i] == NULL) {
            err = errno;
            goto out;
        }
    }
    pthread_mutex_init(&r.lock, NULL);
    pthread_cond_init(&r.cond, NULL);
    if (pthread_create(&tid, NULL, read_ahead, &r) != 0) {
        rc = read_all_plain(src, r.chunk, r.buf[0], sink, opaque);
        err = errno;
        goto out_sync;
    }
    for (;;) {
        pthread_mutex_lock(&r.lock);
        while (r.filled == r.taken) {
            pthread_cond_wait(&r.cond, &r.lock);
        }
        unsigned slot = r.taken % READ_AHEAD;
        ssize_t n = r.len[slot];
        err = r.err[slot];
        pthread_mutex_unlock(&r.lock);
        if (n < 0) {
            break;
        }
        if (n > 0 && sink(opaque, r.buf[slot], (size_t)n) < 0) {
            err = errno;
            break;
        }
        total += (uint64_t)n;
        pthread_mutex_lock(&r.lock);
        r.taken++;
        pthread_cond_signal(&r.cond);
        pthread_mutex_unlock(&r.lock);
        if ((size_t)n != r.chunk) {     /* a short read ends this part */
            rc = (ssize_t)total;
            break;
        }
    }
    pthread_mutex_lock(&r.lock);
    r.stop = true;
    pthread_cond_signal(&r.cond);
    pthread_mutex_unlock(&r.lock);
    pthread_join(tid, NULL);
out_sync:
    pthread_mutex_destroy(&r.lock);
    pthread_cond_destroy(&r.cond);
out:
    for (i = 0; i < READ_AHEAD; i++) {
        free(r.buf[i]);
    }
    if (rc < 0) {
        errno = err;
    }
    return rc;
}

int
vfu_client_mig_write_all(vfu_client_t *dst, const void *buf, size_t len)
{
    size_t chunk = chunk_size(dst);
    const uint8_t *p = buf;

    while (len > 0) {
        size_t n = len < chunk ? len : chunk;

        if (vfu_client_mig_data_write(dst, p, n) < 0) {
            return -1;
        }
        p += n;
        len -= n;
    }
    return 0;
}

int
vfu_client_mig_dirty_report(vfu_client_t *src,
    const struct vfio_user_device_feature_dma_logging_range *ranges,
    uint32_t nr, uint64_t page_size, vfu_client_mig_dirty_t *cb,
    void *opaque)
{
    for (uint32_t i = 0; i < nr; i++) {
        uint64_t pages, words;
        uint64_t *bitmap;
        int rc;

        if (page_size == 0 || (page_size & (page_size - 1)) != 0 ||
            ranges[i].length == 0 || cb == NULL) {
            errno = EINVAL;
            return -1;
        }
        pages = ranges[i].length / page_size +
                (ranges[i].length % page_size != 0);
        words = pages / 64 + (pages % 64 != 0);
        if (words > SIZE_MAX / 8) {
            errno = ENOMEM;
            return -1;
        }
        bitmap = calloc((size_t)words, 8);
        if (bitmap == NULL) {
            return -1;
        }
        rc = vfu_client_dma_logging_report(src, ranges[i].iova,
                                           ranges[i].length, page_size,
                                           bitmap, (size_t)words * 8);
        if (rc == 0) {
            rc = cb(opaque, ranges[i].iova, ranges[i].length, page_size,
                    bitmap);
        }
        {
            int err = errno;
            free(bitmap);
            errno = err;
        }
        if (rc < 0) {
            return -1;
        }
    }
    return 0;
}

/* The stream goes from the source's reads straight into the destination. */
static int
to_destination(void *opaque, const void *buf, size_t len)
{
    return vfu_client_mig_write_all(opaque, buf, len);
}

static uint64_t
now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

int
vfu_client_migrate(vfu_client_t *src, vfu_client_t *dst,
                   const struct vfu_client_mig_params *params,
                   struct vfu_client_mig_stats *stats)
{
    static const struct vfu_client_mig_params none;
    const struct vfu_client_mig_params *p = params != NULL ? params : &none;
    struct vfu_client_mig_stats st = { 0 };
    bool logging = p->nr_ranges > 0;
    uint64_t t0;
    ssize_t n;

    if (src == NULL || dst == NULL ||
        (logging && (p->ranges == NULL || p->on_dirty == NULL))) {
        errno = EINVAL;
        return -1;
    }
    /* The destination is made ready first so that it can take data as
     * soon as the source produces some. */
    if (vfu_client_mig_set_state(dst, VFIO_USER_DEVICE_STATE_RESUMING) < 0) {
        return -1;
    }
    if (logging && vfu_client_dma_logging_start(src, p->page_size, p->ranges,
                                                p->nr_ranges) < 0) {
        return -1;
    }
    if (p->max_rounds > 0) {
        if (vfu_client_mig_set_state(src, VFIO_USER_DEVICE_STATE_PRE_COPY) < 0) {
            goto fail;
        }
        while (st.rounds < p->max_rounds) {
            n = vfu_client_mig_read_all(src, to_destination, dst);
            if (n < 0) {
                goto fail;
            }
            st.rounds++;
            st.precopy_bytes += (uint64_t)n;
            if (logging && vfu_client_mig_dirty_report(src, p->ranges,
                    p->nr_ranges, p->page_size, p->on_dirty, p->opaque) < 0) {
                goto fail;
            }
            if ((uint64_t)n < p->converge_bytes || n == 0) {
                break;
            }
        }
    }

    t0 = now_ns();
    if (vfu_client_mig_set_state(src, VFIO_USER_DEVICE_STATE_STOP_COPY) < 0) {
        goto fail;
    }
    n = vfu_client_mig_read_all(src, to_destination, dst);
    if (n < 0) {
        goto fail;
    }
    st.stopcopy_bytes = (uint64_t)n;
    if (logging) {
        /* The last dirty pages: the device no longer writes memory. */
        if (vfu_client_mig_dirty_report(src, p->ranges, p->nr_ranges,
                p->page_size, p->on_dirty, p->opaque) < 0) {
            goto fail;
        }
        logging = false;
        if (vfu_client_dma_logging_stop(src) < 0) {
            goto fail;
        }
    }
    if (vfu_client_mig_set_state(src, VFIO_USER_DEVICE_STATE_STOP) < 0 ||
        vfu_client_mig_set_state(dst, VFIO_USER_DEVICE_STATE_RUNNING) < 0) {
        goto fail;
    }
    st.downtime_ns = now_ns() - t0;
    if (stats != NULL) {
        *stats = st;
    }
    return 0;

fail:
    {
        int err = errno;

        if (logging) {
            (void)vfu_client_dma_logging_stop(src);
        }
        if (stats != NULL) {
            *stats = st;
        }
        errno = err;
    }
    return -1;
}
