/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 the vfu authors. */

/*
 * server [-v] SOCKET
 *
 * The live-migration demo device (examples/client.c drives it). A made-up
 * PCI device, vendor 0x1234 device 0x0001:
 *
 * BAR0, 4 KiB of 64-bit registers (8-byte aligned accesses only):
 *   0x00 TIMER      seconds since the epoch. Writing arms a timer for that
 *                   time (0 disarms); reading returns the armed time, or 0.
 *                   When it expires the device raises vector 0 and then
 *                   vector 1 of the active interrupt type. vfio-user has no
 *                   message-based interrupt any more, so the second one is
 *                   a second vector: enable MSI (2 vectors) to get both;
 *                   with INTx (1 vector) only the first is raised.
 *   0x08 DMA_ADDR   guest address (IOVA) of the device's DMA window,
 *                   DMA_SLOTS pages long; 0 turns DMA off.
 *   0x10 DOORBELL   writing V (like writing TIMER) makes the device DMA-write
 *                   V to DMA_ADDR + (V % DMA_SLOTS) * 4096 and read it back
 *                   with vfu_addr_to_sgl() + vfu_sgl_write()/vfu_sgl_read(),
 *                   so the page is logged dirty during migration.
 *   0x18 DMA_COUNT  DMA writes done and read back correctly (read-only)
 *   0x20 DMA_ERRORS DMA writes that failed (read-only)
 *   0x28 IRQ_COUNT  timer expiries (read-only)
 *
 * BAR1, 1 MiB of storage backed by a memfd: read and write it with
 *   messages anywhere, or mmap the two sparse areas [0, 256 KiB) and
 *   [512 KiB, 768 KiB) from the region's fd.
 *
 * Migration (VFIO v2 callbacks): BAR1 goes in pre-copy, all of it in the
 * first round and then the pages written by messages since; stop-and-copy
 * sends the pages still dirty plus every mappable page (client stores
 * through a mapping are invisible to the device), then the registers and
 * the time the armed timer still had to run. The timer is paused while the
 * device is stopped and restarts with that remaining time on the
 * destination once it runs.
 *
 * The stream is a sequence of records, a struct rec_hdr and its payload:
 * REC_PAGE (a BAR1 page at hdr.offset), REC_REGS (struct regs_rec), and
 * REC_END, which closes it. The destination holds the records back until
 * the stream is complete and the client moves it from RESUMING to STOP: a
 * stream with a bad record, or cut off by the client leaving, changes
 * nothing.
 *
 * One client at a time; the server waits for the next one when a client
 * goes away and serves until killed. SIGTERM or SIGINT removes the socket.
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "libvfio-user.h"

#define BAR0_SIZE       0x1000u
#define BAR1_SIZE       (1u << 20)
#define PAGE            4096u
#define BAR1_PAGES      (BAR1_SIZE / PAGE)
#define DMA_SLOTS       64u

enum {
    REG_TIMER = 0x00,
    REG_DMA_ADDR = 0x08,
    REG_DOORBELL = 0x10,
    REG_DMA_COUNT = 0x18,
    REG_DMA_ERRORS = 0x20,
    REG_IRQ_COUNT = 0x28,
};

/* The sparse mmap areas of BAR1 (offset, length). */
static const uint64_t mmap_area[2][2] = {
    { 0, 256u << 10 },
    { 512u << 10, 256u << 10 },
};

#define REC_MAGIC 0x7666756du   /* "vfum" */
enum { REC_PAGE = 1, REC_REGS = 2, REC_END = 3 };

struct rec_hdr {
    uint32_t magic;
    uint32_t type;
    uint64_t offset;
    uint64_t len;
};

struct regs_rec {
    uint64_t timer;             /* the TIMER register */
    uint64_t remaining_ns;      /* 0: not armed */
    uint64_t dma_addr;
    uint64_t dma_count;
    uint64_t dma_errors;
    uint64_t irq_count;
};

#define REC_MAX (sizeof(struct rec_hdr) + PAGE)

struct demo {
    vfu_ctx_t *ctx;
    const char *name;           /* for log lines: "server[pid]" */
    char name_buf[32];

    /* registers */
    uint64_t timer, dma_addr, dma_count, dma_errors, irq_count;

    /* the timer: counting down in timer_fd while the device runs, else
     * what is left of it is in remaining_ns */
    int timer_fd;
    bool armed;
    bool counting;
    uint64_t remaining_ns;

    uint8_t *bar1;
    int bar1_fd;
    uint64_t dirty[BAR1_PAGES / 64];    /* BAR1 pages to send */
    dma_sg_t *sg;                       /* one dma_sg_size() entry */

    vfu_migr_state_t state;
    /* saving: a record being handed out, and where the scan is */
    uint8_t out[REC_MAX];
    size_t out_len, out_pos;
    uint32_t scan;
    bool regs_sent, end_sent;
    /* resuming: a record being gathered, and the records so far, held
     * back until the stream is complete (RESUMING -> STOP): a stream cut
     * off, by the client leaving or by a bad record, changes nothing */
    uint8_t in[REC_MAX];
    size_t in_len;
    bool got_end;
    bool in_bad;                        /* a bad record was refused */
    uint8_t *stage;                     /* BAR1_SIZE bytes */
    uint64_t staged[BAR1_PAGES / 64];   /* pages of stage received */
    struct regs_rec stage_regs;
    bool regs_staged;
};

static void
log_stderr(vfu_ctx_t *ctx, int level, const char *msg)
{
    struct demo *d = vfu_get_private(ctx);

    fprintf(stderr, "%s: %s\n", d->name, msg);
}

static uint64_t
now_ns(clockid_t clk)
{
    struct timespec ts;

    clock_gettime(clk, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* ---- the timer ---- */

static void
timer_set(struct demo *d, const struct itimerspec *its, int flags)
{
    if (timerfd_settime(d->timer_fd, flags, its, NULL) < 0) {
        vfu_log(d->ctx, LOG_ERR, "timerfd_settime: %s", strerror(errno));
    }
}

static void
timer_disarm(struct demo *d)
{
    static const struct itimerspec off;

    timer_set(d, &off, 0);
    d->counting = false;
}

/* Start counting down remaining_ns (a running device only). */
static void
timer_run(struct demo *d)
{
    struct itimerspec its = { 0 };
    uint64_t ns = d->remaining_ns != 0 ? d->remaining_ns : 1;

    if (!d->armed) {
        return;
    }
    its.it_value.tv_sec = (time_t)(ns / 1000000000ull);
    its.it_value.tv_nsec = (long)(ns % 1000000000ull);
    timer_set(d, &its, 0);
    d->counting = true;
}

/* Stop the countdown, keeping what is left of it. */
static void
timer_pause(struct demo *d)
{
    struct itimerspec cur;

    if (!d->counting || timerfd_gettime(d->timer_fd, &cur) < 0) {
        return;
    }
    d->remaining_ns = (uint64_t)cur.it_value.tv_sec * 1000000000ull +
                      (uint64_t)cur.it_value.tv_nsec;
    timer_disarm(d);
}

static void
timer_write(struct demo *d, uint64_t when)
{
    uint64_t now = now_ns(CLOCK_REALTIME);
    uint64_t at;

    d->timer = when;
    d->armed = when != 0;
    if (!d->armed) {
        timer_disarm(d);
        return;
    }
    at = when > UINT64_MAX / 1000000000ull ? UINT64_MAX
                                           : when * 1000000000ull;
    /* A time already past fires at once. */
    d->remaining_ns = at > now ? at - now : 1;
    if (d->state == VFU_MIGR_STATE_RUNNING ||
        d->state == VFU_MIGR_STATE_PRE_COPY) {
        timer_run(d);
    }
    vfu_log(d->ctx, LOG_INFO, "timer armed for %" PRIu64 " (in %" PRIu64
            " ms)", when, d->remaining_ns / 1000000);
}

static void
timer_expired(struct demo *d)
{
    uint64_t ticks;

    if (read(d->timer_fd, &ticks, sizeof(ticks)) != sizeof(ticks)) {
        return;     /* disarmed meanwhile */
    }
    d->armed = d->counting = false;
    d->timer = 0;
    d->irq_count++;
    vfu_log(d->ctx, LOG_INFO, "timer expired: raising vectors 0 and 1");
    for (uint32_t v = 0; v < 2; v++) {
        /* ENOENT: the client listens on no eventfd for it. */
        if (vfu_irq_trigger(d->ctx, v) < 0) {
            vfu_log(d->ctx, LOG_WARNING, "vector %u not raised: %s", v,
                    strerror(errno));
        }
    }
}

/* ---- DMA ---- */

/* Write value into guest memory and read it back, as a real device would
 * write a completion record. */
static void
dma_demo(struct demo *d, uint64_t value)
{
    uint64_t iova, back = ~value;

    if (d->dma_addr == 0) {
        return;
    }
    iova = d->dma_addr + (value % DMA_SLOTS) * PAGE;
    if (vfu_addr_to_sgl(d->ctx, (vfu_dma_addr_t)(uintptr_t)iova,
                        sizeof(value), d->sg, 1, PROT_READ | PROT_WRITE) != 1 ||
        vfu_sgl_write(d->ctx, d->sg, 1, &value, VFU_SGL_DIRECT_ACCESS) < 0 ||
        vfu_sgl_read(d->ctx, d->sg, 1, &back, VFU_SGL_DIRECT_ACCESS) < 0) {
        vfu_log(d->ctx, LOG_ERR, "DMA to %#" PRIx64 " failed: %s", iova,
                strerror(errno));
        d->dma_errors++;
        return;
    }
    if (back != value) {
        vfu_log(d->ctx, LOG_ERR, "DMA at %#" PRIx64 " read back %#" PRIx64
                " instead of %#" PRIx64, iova, back, value);
        d->dma_errors++;
        return;
    }
    d->dma_count++;
}

static void
dma_register(vfu_ctx_t *ctx, vfu_dma_info_t *info)
{
    vfu_log(ctx, LOG_INFO, "DMA region [%p, +%#zx) added, %s",
            info->iova.iov_base, info->iova.iov_len,
            info->vaddr != NULL ? "mapped" : "by message");
}

/* Nothing is held across calls (no vfu_sgl_get), so there is nothing to
 * drop; the callback still has to exist for the library's bookkeeping. */
static void
dma_unregister(vfu_ctx_t *ctx, vfu_dma_info_t *info)
{
    vfu_log(ctx, LOG_INFO, "DMA region [%p, +%#zx) removed",
            info->iova.iov_base, info->iova.iov_len);
}

/* ---- regions ---- */

static ssize_t
bar0_access(vfu_ctx_t *ctx, char *buf, size_t count, loff_t offset,
            bool is_write)
{
    struct demo *d = vfu_get_private(ctx);
    uint64_t v = 0;

    if (count != sizeof(v) || offset < 0 || offset % 8 != 0 ||
        (uint64_t)offset > BAR0_SIZE - sizeof(v)) {
        errno = EINVAL;
        return -1;
    }
    if (is_write) {
        memcpy(&v, buf, sizeof(v));
        switch (offset) {
        case REG_TIMER:
            timer_write(d, v);
            dma_demo(d, v);
            break;
        case REG_DMA_ADDR:
            d->dma_addr = v;
            break;
        case REG_DOORBELL:
            dma_demo(d, v);
            break;
        default:
            break;      /* read-only registers and holes ignore writes */
        }
        return (ssize_t)count;
    }
    switch (offset) {
    case REG_TIMER:
        v = d->timer;
        break;
    case REG_DMA_ADDR:
        v = d->dma_addr;
        break;
    case REG_DMA_COUNT:
        v = d->dma_count;
        break;
    case REG_DMA_ERRORS:
        v = d->dma_errors;
        break;
    case REG_IRQ_COUNT:
        v = d->irq_count;
        break;
    default:
        break;
    }
    memcpy(buf, &v, sizeof(v));
    return (ssize_t)count;
}

static void
mark_dirty(struct demo *d, uint64_t offset, uint64_t len)
{
    for (uint64_t p = offset / PAGE; p <= (offset + len - 1) / PAGE; p++) {
        d->dirty[p / 64] |= 1ull << (p % 64);
    }
}

static ssize_t
bar1_access(vfu_ctx_t *ctx, char *buf, size_t count, loff_t offset,
            bool is_write)
{
    struct demo *d = vfu_get_private(ctx);

    if (offset < 0 || (uint64_t)offset > BAR1_SIZE ||
        count > BAR1_SIZE - (uint64_t)offset) {
        errno = EINVAL;
        return -1;
    }
    if (count == 0) {
        return 0;
    }
    if (is_write) {
        memcpy(d->bar1 + offset, buf, count);
        mark_dirty(d, (uint64_t)offset, count);
    } else {
        memcpy(buf, d->bar1 + offset, count);
    }
    return (ssize_t)count;
}

/* The client asked for a reset or went away: registers and timer back to
 * power-on values. BAR1 is storage and keeps its contents. */
static int
reset_device(vfu_ctx_t *ctx, vfu_reset_type_t type)
{
    struct demo *d = vfu_get_private(ctx);

    vfu_log(ctx, LOG_INFO, "reset (%s)",
            type == VFU_RESET_LOST_CONN ? "client gone" : "client asked");
    timer_disarm(d);
    d->armed = false;
    d->remaining_ns = 0;
    d->timer = d->dma_addr = d->dma_count = d->dma_errors = d->irq_count = 0;
    return 0;
}

/* ---- migration ---- */

static void
mark_mappable(struct demo *d)
{
    for (size_t i = 0; i < 2; i++) {
        mark_dirty(d, mmap_area[i][0], mmap_area[i][1]);
    }
}

static void
save_start(struct demo *d)
{
    d->out_len = d->out_pos = 0;
    d->scan = 0;
    d->regs_sent = d->end_sent = false;
}

static void commit_stream(struct demo *d);

static int
transition(vfu_ctx_t *ctx, vfu_migr_state_t state)
{
    struct demo *d = vfu_get_private(ctx);
    vfu_migr_state_t old = d->state;

    switch (state) {
    case VFU_MIGR_STATE_PRE_COPY:
        /* The first round sends all of BAR1. */
        memset(d->dirty, 0xff, sizeof(d->dirty));
        save_start(d);
        break;
    case VFU_MIGR_STATE_STOP_AND_COPY:
        timer_pause(d);
        if (old != VFU_MIGR_STATE_PRE_COPY) {
            memset(d->dirty, 0xff, sizeof(d->dirty));
        }
        mark_mappable(d);
        save_start(d);
        break;
    case VFU_MIGR_STATE_STOP:
        if (old == VFU_MIGR_STATE_RESUME &&
            (!d->got_end || d->in_len != 0 || d->in_bad)) {
            vfu_log(ctx, LOG_ERR, "migration stream ended early");
            errno = EINVAL;
            return -1;
        }
        if (old == VFU_MIGR_STATE_RESUME) {
            commit_stream(d);
        }
        timer_pause(d);
        break;
    case VFU_MIGR_STATE_RESUME:
        timer_pause(d);
        d->in_len = 0;
        d->got_end = d->in_bad = false;
        memset(d->staged, 0, sizeof(d->staged));
        d->regs_staged = false;
        break;
    case VFU_MIGR_STATE_RUNNING:
        if (old == VFU_MIGR_STATE_RESUME) {
            /* only the library's reset does this (the client left) */
            vfu_log(ctx, LOG_INFO, "migration stream abandoned");
        }
        timer_run(d);
        break;
    default:
        errno = EINVAL;
        return -1;
    }
    vfu_log(ctx, LOG_DEBUG, "migration state %d -> %d", (int)old, (int)state);
    d->state = state;
    return 0;
}

static void
put_record(struct demo *d, uint32_t type, uint64_t offset, const void *data,
           uint64_t len)
{
    struct rec_hdr h = { REC_MAGIC, type, offset, len };

    memcpy(d->out, &h, sizeof(h));
    if (len > 0) {
        memcpy(d->out + sizeof(h), data, len);
    }
    d->out_len = sizeof(h) + len;
    d->out_pos = 0;
}

/* Stage the next record; false when this state has nothing more. */
static bool
next_record(struct demo *d)
{
    while (d->scan < BAR1_PAGES) {
        uint32_t p = d->scan++;

        if (d->dirty[p / 64] & (1ull << (p % 64))) {
            d->dirty[p / 64] &= ~(1ull << (p % 64));
            put_record(d, REC_PAGE, (uint64_t)p * PAGE, d->bar1 + p * PAGE,
                       PAGE);
            return true;
        }
    }
    if (d->state == VFU_MIGR_STATE_PRE_COPY) {
        d->scan = 0;    /* the next round looks at the pages again */
        return false;
    }
    if (!d->regs_sent) {
        struct regs_rec r = {
            .timer = d->timer,
            .remaining_ns = d->armed ? d->remaining_ns : 0,
            .dma_addr = d->dma_addr,
            .dma_count = d->dma_count,
            .dma_errors = d->dma_errors,
            .irq_count = d->irq_count,
        };
        d->regs_sent = true;
        put_record(d, REC_REGS, 0, &r, sizeof(r));
        return true;
    }
    if (!d->end_sent) {
        d->end_sent = true;
        put_record(d, REC_END, 0, NULL, 0);
        return true;
    }
    return false;
}

static ssize_t
read_data(vfu_ctx_t *ctx, void *buf, uint64_t count)
{
    struct demo *d = vfu_get_private(ctx);
    uint64_t done = 0;

    while (done < count) {
        size_t n;

        if (d->out_pos == d->out_len && !next_record(d)) {
            break;
        }
        n = d->out_len - d->out_pos;
        if (n > count - done) {
            n = (size_t)(count - done);
        }
        memcpy((uint8_t *)buf + done, d->out + d->out_pos, n);
        d->out_pos += n;
        done += n;
    }
    return (ssize_t)done;
}

static int
apply_record(struct demo *d, const struct rec_hdr *h, const uint8_t *data)
{
    switch (h->type) {
    case REC_PAGE:
        memcpy(d->stage + h->offset, data, PAGE);
        d->staged[h->offset / PAGE / 64] |= 1ull << (h->offset / PAGE % 64);
        return 0;
    case REC_REGS:
        memcpy(&d->stage_regs, data, sizeof(d->stage_regs));
        d->regs_staged = true;
        return 0;
    default:
        d->got_end = true;
        return 0;
    }
}

/* The whole stream arrived: now it becomes the device's state. */
static void
commit_stream(struct demo *d)
{
    const struct regs_rec r = d->stage_regs;

    for (uint32_t p = 0; p < BAR1_PAGES; p++) {
        if (d->staged[p / 64] & (1ull << (p % 64))) {
            memcpy(d->bar1 + (size_t)p * PAGE, d->stage + (size_t)p * PAGE,
                   PAGE);
        }
    }
    if (d->regs_staged) {
        d->timer = r.timer;
        d->armed = r.remaining_ns != 0;
        d->remaining_ns = r.remaining_ns;
        d->dma_addr = r.dma_addr;
        d->dma_count = r.dma_count;
        d->dma_errors = r.dma_errors;
        d->irq_count = r.irq_count;
        vfu_log(d->ctx, LOG_INFO, "restored registers; timer %s%" PRIu64
                " ms left", d->armed ? "" : "off, ",
                d->remaining_ns / 1000000);
    }
}

/* A header must announce a known record of the right size. */
static bool
header_ok(const struct rec_hdr *h)
{
    if (h->magic != REC_MAGIC) {
        return false;
    }
    switch (h->type) {
    case REC_PAGE:
        return h->len == PAGE && h->offset % PAGE == 0 &&
               h->offset < BAR1_SIZE;
    case REC_REGS:
        return h->len == sizeof(struct regs_rec) && h->offset == 0;
    case REC_END:
        return h->len == 0 && h->offset == 0;
    default:
        return false;
    }
}

static ssize_t
write_data(vfu_ctx_t *ctx, void *buf, uint64_t count)
{
    struct demo *d = vfu_get_private(ctx);
    const uint8_t *p = buf;
    uint64_t left = count;

    while (left > 0) {
        struct rec_hdr h;
        size_t want = sizeof(h), n;

        if (d->got_end) {
            vfu_log(ctx, LOG_ERR, "migration data after the end record");
            errno = EINVAL;
            return -1;
        }
        if (d->in_len >= sizeof(h)) {
            memcpy(&h, d->in, sizeof(h));
            want += (size_t)h.len;
        }
        n = want - d->in_len;
        if (n > left) {
            n = (size_t)left;
        }
        memcpy(d->in + d->in_len, p, n);
        d->in_len += n;
        p += n;
        left -= n;
        if (d->in_len == sizeof(h) && want == sizeof(h)) {
            memcpy(&h, d->in, sizeof(h));
            if (!header_ok(&h)) {
                vfu_log(ctx, LOG_ERR, "bad migration record (type %u, "
                        "len %" PRIu64 ")", h.type, h.len);
                d->in_len = 0;
                d->in_bad = true;
                errno = EINVAL;
                return -1;
            }
            want += (size_t)h.len;
        }
        if (d->in_len == want) {
            memcpy(&h, d->in, sizeof(h));
            d->in_len = 0;
            if (apply_record(d, &h, d->in + sizeof(h)) < 0) {
                return -1;
            }
        }
    }
    return (ssize_t)count;
}

/* ---- set-up and the loop ---- */

static int
setup_bar1(struct demo *d)
{
    d->bar1_fd = memfd_create("vfu-demo-bar1", MFD_CLOEXEC);
    if (d->bar1_fd < 0 || ftruncate(d->bar1_fd, BAR1_SIZE) < 0) {
        return -1;
    }
    d->bar1 = mmap(NULL, BAR1_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED,
                   d->bar1_fd, 0);
    if (d->bar1 == MAP_FAILED) {
        d->bar1 = NULL;
        return -1;
    }
    return 0;
}

static vfu_ctx_t *
create_device(const char *path, struct demo *d, bool verbose)
{
    static const vfu_migration_callbacks_t migr = {
        .version = VFU_MIGR_CALLBACKS_VERS,
        .transition = transition,
        .read_data = read_data,
        .write_data = write_data,
    };
    struct iovec areas[2];
    vfu_ctx_t *ctx;

    for (size_t i = 0; i < 2; i++) {
        areas[i].iov_base = (void *)(uintptr_t)mmap_area[i][0];
        areas[i].iov_len = mmap_area[i][1];
    }
    ctx = vfu_create_ctx(VFU_TRANS_SOCK, path, LIBVFIO_USER_FLAG_ATTACH_NB,
                         d, VFU_DEV_TYPE_PCI);
    if (ctx == NULL) {
        fprintf(stderr, "%s: cannot serve %s: %s\n", d->name, path,
                strerror(errno));
        return NULL;
    }
    d->ctx = ctx;
    if (vfu_setup_log(ctx, log_stderr, verbose ? LOG_DEBUG : LOG_INFO) < 0 ||
        vfu_pci_init(ctx, VFU_PCI_TYPE_CONVENTIONAL,
                     PCI_HEADER_TYPE_NORMAL, 0) < 0) {
        goto fail;
    }
    vfu_pci_set_id(ctx, 0x1234, 0x0001, 0x1234, 0x0001);
    vfu_pci_set_class(ctx, 0xff, 0x00, 0x00);   /* unassigned class */
    if (vfu_setup_region(ctx, VFU_PCI_DEV_BAR0_REGION_IDX, BAR0_SIZE,
                         bar0_access, VFU_REGION_FLAG_RW |
                         VFU_REGION_FLAG_MEM, NULL, 0, -1, 0) < 0 ||
        vfu_setup_region(ctx, VFU_PCI_DEV_BAR1_REGION_IDX, BAR1_SIZE,
                         bar1_access, VFU_REGION_FLAG_RW |
                         VFU_REGION_FLAG_MEM, areas, 2, d->bar1_fd, 0) < 0 ||
        vfu_setup_device_nr_irqs(ctx, VFU_DEV_INTX_IRQ, 1) < 0 ||
        vfu_setup_device_nr_irqs(ctx, VFU_DEV_MSI_IRQ, 2) < 0 ||
        vfu_setup_device_reset_cb(ctx, reset_device) < 0 ||
        vfu_setup_device_dma(ctx, 0, dma_register, dma_unregister) < 0 ||
        vfu_setup_device_migration_callbacks(ctx, &migr) < 0 ||
        vfu_realize_ctx(ctx) < 0) {
        goto fail;
    }
    return ctx;
fail:
    fprintf(stderr, "%s: device setup failed: %s\n", d->name,
            strerror(errno));
    vfu_destroy_ctx(ctx);
    return NULL;
}

/* One thread waits on the client, the timer and the signals together: the
 * timer's interrupt is raised between requests, never inside one. */
static int
serve(struct demo *d, int sig_fd)
{
    vfu_ctx_t *ctx = d->ctx;
    bool attached = false;

    for (;;) {
        struct pollfd pfd[3] = {
            { .fd = vfu_get_poll_fd(ctx), .events = POLLIN },
            { .fd = d->timer_fd, .events = POLLIN },
            { .fd = sig_fd, .events = POLLIN },
        };

        if (poll(pfd, 3, -1) < 0) {
            if (errno == EINTR) {
                continue;
            }
            fprintf(stderr, "%s: poll: %s\n", d->name, strerror(errno));
            return -1;
        }
        if (pfd[2].revents & POLLIN) {
            fprintf(stderr, "%s: terminating\n", d->name);
            return 0;
        }
        if (pfd[1].revents & POLLIN) {
            timer_expired(d);
        }
        if (!(pfd[0].revents & (POLLIN | POLLHUP | POLLERR))) {
            continue;
        }
        if (!attached) {
            if (vfu_attach_ctx(ctx) == 0) {
                attached = true;
            } else if (errno != EAGAIN && errno != EWOULDBLOCK &&
                       errno != EINTR) {
                /* a client that failed to negotiate: wait for the next */
                fprintf(stderr, "%s: attach: %s\n", d->name, strerror(errno));
            }
            continue;
        }
        if (vfu_run_ctx(ctx) < 0) {
            if (errno == ENOTCONN) {
                attached = false;
            } else if (errno != EAGAIN && errno != EWOULDBLOCK &&
                       errno != EINTR && errno != EBUSY) {
                fprintf(stderr, "%s: run: %s\n", d->name, strerror(errno));
                return -1;
            }
        }
    }
}

static void
demo_free(struct demo *d)
{
    if (d->bar1 != NULL) {
        munmap(d->bar1, BAR1_SIZE);
    }
    if (d->bar1_fd >= 0) {
        close(d->bar1_fd);
    }
    if (d->timer_fd >= 0) {
        close(d->timer_fd);
    }
    free(d->sg);
    free(d->stage);
}

int
main(int argc, char *argv[])
{
    struct demo *d;
    bool verbose = false;
    const char *path;
    sigset_t sigs;
    vfu_ctx_t *ctx;
    int opt, sig_fd, ret = 1;

    while ((opt = getopt(argc, argv, "v")) != -1) {
        if (opt != 'v') {
            goto usage;
        }
        verbose = true;
    }
    if (optind != argc - 1) {
        goto usage;
    }
    path = argv[optind];

    d = calloc(1, sizeof(*d));
    if (d == NULL) {
        perror("server");
        return 1;
    }
    snprintf(d->name_buf, sizeof(d->name_buf), "server[%d]", (int)getpid());
    d->name = d->name_buf;
    d->state = VFU_MIGR_STATE_RUNNING;
    d->bar1_fd = -1;
    d->timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
    d->sg = calloc(1, dma_sg_size());
    d->stage = malloc(BAR1_SIZE);
    if (d->timer_fd < 0 || d->sg == NULL || d->stage == NULL ||
        setup_bar1(d) < 0) {
        fprintf(stderr, "%s: %s\n", d->name, strerror(errno));
        goto out;
    }

    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    if (sigprocmask(SIG_BLOCK, &sigs, NULL) < 0 ||
        (sig_fd = signalfd(-1, &sigs, SFD_CLOEXEC)) < 0) {
        fprintf(stderr, "%s: signals: %s\n", d->name, strerror(errno));
        goto out;
    }
    ctx = create_device(path, d, verbose);
    if (ctx != NULL) {
        fprintf(stderr, "%s: serving %s\n", d->name, path);
        ret = serve(d, sig_fd) < 0 ? 1 : 0;
        vfu_destroy_ctx(ctx);   /* removes the socket */
    }
    close(sig_fd);
out:
    demo_free(d);
    free(d);
    return ret;
usage:
    fprintf(stderr, "usage: %s [-v] SOCKET\n", argv[0]);
    return 2;
}
