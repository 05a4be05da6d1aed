/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 the vfu authors. */

/*
 * client SOCKET [SERVER_BINARY]
 *
 * Drives the demo device of examples/server.c the way a VMM would: every
 * vfio-user command once, checked, and then a live migration to a
 * destination server that this program starts itself (SERVER_BINARY, by
 * default the "server" next to this program) on SOCKET.dst:
 *
 *  - a second thread plays the guest: it writes BAR1 in a tight loop, by
 *    message and through the mmap()ed sparse areas, and rings the DMA
 *    doorbell so the device writes guest memory;
 *  - the device state goes over in pre-copy rounds and a stop-and-copy,
 *    the guest memory the device dirtied goes with it, page by page, from
 *    the DMA dirty log (the client's own copy stands in for the
 *    destination host's memory);
 *  - a timer interrupt armed on the source must be delivered by the
 *    destination, and BAR1 and guest memory there must hold exactly what
 *    was written.
 *
 * Prints every step and PASS or FAIL; exits 0 only if every check passed.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "libvfio-user.h"
#include "vfu-client-migration.h"
#include "vfu-client.h"

/* The device, as examples/server.c describes it. */
#define BAR0            VFU_PCI_DEV_BAR0_REGION_IDX
#define BAR1            VFU_PCI_DEV_BAR1_REGION_IDX
#define BAR0_SIZE       0x1000u
#define BAR1_SIZE       (1u << 20)
#define REG_TIMER       0x00
#define REG_DMA_ADDR    0x08
#define REG_DOORBELL    0x10
#define REG_DMA_COUNT   0x18
#define REG_DMA_ERRORS  0x20
#define REG_IRQ_COUNT   0x28
#define DMA_SLOTS       64u
#define PAGE            4096u
#define NR_SPARSE       2

/* Guest memory: one memfd-backed range the server maps, and one it can
 * only reach by DMA_READ/DMA_WRITE messages. */
#define MEM_IOVA        0x100000ull
#define MEM_SIZE        ((uint64_t)DMA_SLOTS * PAGE)
#define NOFD_IOVA       0x400000ull

struct sparse {
    uint8_t *map;
    uint64_t offset, size;
};

struct demo {
    const char *sock;
    char server_bin[PATH_MAX];
    char dst_sock[PATH_MAX];
    pid_t dst_pid;
    vfu_client_t *src, *dst;
    int failures;

    int mem_fd, dst_mem_fd;
    uint8_t *mem, *dst_mem;     /* guest memory at the source, destination */
    uint8_t *nofd;              /* the fd-less range */
    int efd[2];                 /* MSI vectors 0 and 1 */
    struct sparse src_bar1[NR_SPARSE], dst_bar1[NR_SPARSE];
    uint8_t *shadow;            /* what BAR1 must hold */

    /* the guest thread */
    pthread_t guest;
    bool guest_running;
    atomic_bool stop;
    uint64_t guest_writes, guest_errors;
    uint64_t dirty_pages;       /* guest pages copied from the dirty log */
};

static void
step(const char *fmt, ...)
{
    va_list ap;

    printf("client: ");
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
}

/* Records a failed check; the run goes on so one report shows them all. */
static bool
check(struct demo *d, bool ok, const char *fmt, ...)
{
    va_list ap;

    if (ok) {
        return true;
    }
    d->failures++;
    printf("client: CHECK FAILED: ");
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf(" (errno %d: %s)\n", errno, strerror(errno));
    return false;
}

static uint64_t
now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int
reg_write(vfu_client_t *c, uint64_t reg, uint64_t v)
{
    return vfu_client_region_write(c, BAR0, reg, &v, sizeof(v));
}

static uint64_t
reg_read(vfu_client_t *c, uint64_t reg)
{
    uint64_t v = UINT64_MAX;

    if (vfu_client_region_read(c, BAR0, reg, &v, sizeof(v)) < 0) {
        return UINT64_MAX;
    }
    return v;
}

static uint64_t
slot_value(const uint8_t *mem, uint64_t slot)
{
    uint64_t v;

    memcpy(&v, mem + slot * PAGE, sizeof(v));
    return v;
}

/* Wait for an eventfd; true if it fired within timeout_ms. */
static bool
irq_wait(int fd, int timeout_ms)
{
    struct pollfd p = { .fd = fd, .events = POLLIN };
    uint64_t n;

    if (poll(&p, 1, timeout_ms) != 1) {
        return false;
    }
    return read(fd, &n, sizeof(n)) == sizeof(n) && n > 0;
}

static int
memfd(const char *name, uint64_t size, uint8_t **map)
{
    int fd = memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING);

    if (fd < 0) {
        return -1;
    }
    /* Sealed against shrinking (as QEMU seals guest RAM), or a vfu server
     * reaches the memory by message instead of mapping it. */
    if (ftruncate(fd, (off_t)size) < 0 ||
        fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) < 0) {
        close(fd);
        return -1;
    }
    *map = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (*map == MAP_FAILED) {
        *map = NULL;
        close(fd);
        return -1;
    }
    return fd;
}

/* Connect, retrying for wait_ms while the server starts; gives up early if
 * the process *pid (when non-NULL) exits, and then clears *pid. */
static vfu_client_t *
connect_to(const char *path, int wait_ms, pid_t *pid)
{
    for (int waited = 0;; waited += 10) {
        vfu_client_t *c = vfu_client_connect(path);

        if (c != NULL) {
            if (vfu_client_negotiate(c, NULL, NULL) == 0) {
                return c;
            }
            vfu_client_close(c);
        }
        if (pid != NULL && *pid > 0 && waitpid(*pid, NULL, WNOHANG) == *pid) {
            fprintf(stderr, "client: server %d exited\n", (int)*pid);
            *pid = 0;
            return NULL;
        }
        if (waited >= wait_ms) {
            return NULL;
        }
        usleep(10000);
    }
}

/* ---- the command tour ---- */

static void
tour_info(struct demo *d, vfu_client_t *c, struct sparse *bar1)
{
    const struct vfu_client_caps *caps = vfu_client_caps(c);
    struct vfio_user_device_info info = { 0 };

    step("VERSION: %u.%u, max_data_xfer_size %" PRIu64 ", migration %s "
         "(pgsize %" PRIu64 "), write_multiple %s", caps->major, caps->minor,
         caps->max_data_xfer_size, caps->has_migration ? "yes" : "no",
         caps->migr_pgsize, caps->write_multiple ? "yes" : "no");
    check(d, caps->has_migration, "server offers migration");

    check(d, vfu_client_device_get_info(c, &info) == 0, "DEVICE_GET_INFO");
    step("GET_INFO: flags %#x, %u regions, %u IRQ types", info.flags,
         info.num_regions, info.num_irqs);
    check(d, info.num_regions > VFU_PCI_DEV_CFG_REGION_IDX &&
          info.num_irqs == VFU_DEV_NUM_IRQS, "GET_INFO counts");

    for (uint32_t i = 0; i < info.num_regions; i++) {
        struct vfu_client_region_info ri;

        if (!check(d, vfu_client_get_region_info(c, i, &ri) == 0,
                   "REGION_INFO %u", i)) {
            continue;
        }
        step("REGION_INFO %u: size %#" PRIx64 ", flags %#x, fd %s, "
             "%u sparse areas", i, (uint64_t)ri.info.size, ri.info.flags,
             ri.fd >= 0 ? "yes" : "no", ri.nr_sparse);
        if (i == BAR0) {
            check(d, ri.info.size == BAR0_SIZE && ri.fd < 0, "BAR0 info");
        }
        if (i == BAR1 && check(d, ri.info.size == BAR1_SIZE && ri.fd >= 0 &&
                               ri.nr_sparse == NR_SPARSE &&
                               (ri.info.flags & VFIO_REGION_INFO_FLAG_MMAP),
                               "BAR1 info")) {
            for (uint32_t k = 0; k < NR_SPARSE; k++) {
                void *m = mmap(NULL, ri.sparse[k].size,
                               PROT_READ | PROT_WRITE, MAP_SHARED, ri.fd,
                               (off_t)(ri.info.offset + ri.sparse[k].offset));

                if (check(d, m != MAP_FAILED, "mmap BAR1 area %u", k)) {
                    bar1[k].map = m;
                    bar1[k].offset = ri.sparse[k].offset;
                    bar1[k].size = ri.sparse[k].size;
                    step("  mapped BAR1 [%#" PRIx64 ", +%#" PRIx64 ")",
                         bar1[k].offset, bar1[k].size);
                }
            }
        }
        if (i == VFU_PCI_DEV_CFG_REGION_IDX) {
            check(d, ri.info.size >= 256, "config space size");
        }
        vfu_client_region_info_free(&ri);
    }

    for (uint32_t i = 0; i < VFU_DEV_NUM_IRQS; i++) {
        struct vfio_irq_info irq = { 0 };

        if (check(d, vfu_client_get_irq_info(c, i, &irq) == 0,
                  "IRQ_INFO %u", i)) {
            step("IRQ_INFO %u: %u vectors, flags %#x", i, irq.count,
                 irq.flags);
        }
        if (i == VFU_DEV_MSI_IRQ) {
            check(d, irq.count == 2, "2 MSI vectors");
        }
    }
}

static int
set_msi(vfu_client_t *c, const int efd[2])
{
    return vfu_client_set_irqs(c, VFIO_IRQ_SET_DATA_EVENTFD |
                               VFIO_IRQ_SET_ACTION_TRIGGER, VFU_DEV_MSI_IRQ,
                               0, 2, efd, 2, NULL, 0);
}

static void
tour_irqs(struct demo *d, vfu_client_t *c)
{
    int intx = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    uint8_t one = 1;

    check(d, intx >= 0, "eventfd");
    check(d, vfu_client_set_irqs(c, VFIO_IRQ_SET_DATA_EVENTFD |
                                 VFIO_IRQ_SET_ACTION_TRIGGER,
                                 VFU_DEV_INTX_IRQ, 0, 1, &intx, 1, NULL, 0)
          == 0, "SET_IRQS INTx eventfd");
    /* The client may fire a vector itself (DATA_BOOL): a loopback test. */
    check(d, vfu_client_set_irqs(c, VFIO_IRQ_SET_DATA_BOOL |
                                 VFIO_IRQ_SET_ACTION_TRIGGER,
                                 VFU_DEV_INTX_IRQ, 0, 1, NULL, 0, &one, 1)
          == 0 && irq_wait(intx, 1000), "SET_IRQS INTx trigger by bool");
    check(d, vfu_client_set_irqs(c, VFIO_IRQ_SET_DATA_NONE |
                                 VFIO_IRQ_SET_ACTION_TRIGGER,
                                 VFU_DEV_INTX_IRQ, 0, 0, NULL, 0, NULL, 0)
          == 0, "SET_IRQS INTx off");
    close(intx);
    errno = 0;
    check(d, vfu_client_set_irqs(c, VFIO_IRQ_SET_DATA_EVENTFD |
                                 VFIO_IRQ_SET_ACTION_TRIGGER,
                                 VFU_DEV_MSI_IRQ, 1, 2, d->efd, 2, NULL, 0)
          == -1 && errno == EINVAL, "SET_IRQS past the last vector refused");
    check(d, set_msi(c, d->efd) == 0, "SET_IRQS MSI 2 eventfds");
    step("SET_IRQS: INTx set, fired and cleared; MSI vectors 0-1 on eventfds");
}

static void
tour_access(struct demo *d, vfu_client_t *c, const struct sparse *bar1)
{
    uint8_t *buf = malloc(BAR1_SIZE), *back = malloc(BAR1_SIZE);
    struct vfio_user_write_multi_one wr[3];
    uint64_t v;

    if (!check(d, buf != NULL && back != NULL, "memory")) {
        goto out;
    }
    for (uint32_t i = 0; i < BAR1_SIZE; i++) {
        buf[i] = (uint8_t)(i * 7 + (i >> 12));
    }
    check(d, vfu_client_region_write(c, BAR1, 0, buf, BAR1_SIZE) == 0 &&
          vfu_client_region_read(c, BAR1, 0, back, BAR1_SIZE) == 0 &&
          memcmp(buf, back, BAR1_SIZE) == 0,
          "REGION_WRITE/READ of all of BAR1");
    for (int k = 0; k < NR_SPARSE; k++) {
        if (bar1[k].map != NULL) {
            check(d, memcmp(bar1[k].map, buf + bar1[k].offset,
                            bar1[k].size) == 0,
                  "BAR1 area %d seen through mmap", k);
        }
    }
    if (bar1[1].map != NULL) {
        memcpy(bar1[1].map + 16, "through-mmap", 12);
        check(d, vfu_client_region_read(c, BAR1, bar1[1].offset + 16, back,
                                        12) == 0 &&
              memcmp(back, "through-mmap", 12) == 0,
              "mmap store read back by message");
    }
    step("REGION_WRITE/READ: 1 MiB of BAR1 round trip, mmap view agrees");

    v = 0x1122334455667788ull;
    check(d, vfu_client_region_write_posted(c, BAR1, 0x800, &v, 8) == 0 &&
          vfu_client_region_read(c, BAR1, 0x800, back, 8) == 0 &&
          memcmp(back, &v, 8) == 0, "posted REGION_WRITE");
    step("REGION_WRITE posted (no reply), then read back");

    for (uint32_t i = 0; i < 3; i++) {
        memset(&wr[i], 0, sizeof(wr[i]));
        wr[i].region = BAR1;
        wr[i].offset = 0x1000 + i * 0x10;
        wr[i].count = 8;
        memset(wr[i].data, 0xa0 + (int)i, 8);
    }
    check(d, vfu_client_region_write_multi(c, wr, 3) == 3,
          "WRITE_MULTI of 3");
    for (uint32_t i = 0; i < 3; i++) {
        check(d, vfu_client_region_read(c, BAR1, wr[i].offset, back, 8) == 0 &&
              memcmp(back, wr[i].data, 8) == 0, "WRITE_MULTI entry %u", i);
    }
    step("REGION_WRITE_MULTI: 3 writes in one message");

    errno = 0;
    check(d, vfu_client_region_read(c, BAR0, 3, &v, 8) == -1 &&
          errno == EINVAL, "misaligned BAR0 access refused");
out:
    free(buf);
    free(back);
}

static void
tour_dma(struct demo *d, vfu_client_t *c)
{
    const uint32_t rw = VFIO_USER_F_DMA_REGION_READ |
                        VFIO_USER_F_DMA_REGION_WRITE;
    const struct vfio_user_device_feature_dma_logging_range range = {
        .iova = MEM_IOVA, .length = MEM_SIZE,
    };
    uint64_t bitmap[DMA_SLOTS / 64] = { 0 };
    uint64_t flags = 0;

    check(d, vfu_client_dma_map(c, MEM_IOVA, MEM_SIZE, rw, d->mem_fd, 0,
                                d->mem) == 0, "DMA_MAP memfd");
    check(d, vfu_client_dma_map(c, NOFD_IOVA, MEM_SIZE, rw, -1, 0,
                                d->nofd) == 0, "DMA_MAP without fd");
    step("DMA_MAP: memfd at %#llx, fd-less at %#llx",
         (unsigned long long)MEM_IOVA, (unsigned long long)NOFD_IOVA);

    reg_write(c, REG_DMA_ADDR, MEM_IOVA);
    check(d, reg_write(c, REG_DOORBELL, 5) == 0 &&
          slot_value(d->mem, 5) == 5, "device DMA into the memfd range");
    /* The device reaches this range with DMA_WRITE/READ messages, which
     * this client answers while it waits for its REGION_WRITE. */
    reg_write(c, REG_DMA_ADDR, NOFD_IOVA);
    check(d, reg_write(c, REG_DOORBELL, 7) == 0 &&
          slot_value(d->nofd, 7) == 7, "device DMA by message");
    check(d, reg_read(c, REG_DMA_COUNT) == 2 &&
          reg_read(c, REG_DMA_ERRORS) == 0, "DMA counters");
    step("DMA: the device wrote and read back both ranges");

    check(d, vfu_client_dma_unmap(c, NOFD_IOVA, MEM_SIZE, 0) == 0,
          "DMA_UNMAP");
    reg_write(c, REG_DOORBELL, 8);
    check(d, reg_read(c, REG_DMA_ERRORS) == 1, "DMA after unmap fails");
    errno = 0;
    check(d, vfu_client_dma_unmap(c, NOFD_IOVA, MEM_SIZE, 0) == -1,
          "second DMA_UNMAP refused");
    step("DMA_UNMAP: fd-less range gone, the device's DMA to it fails");

    reg_write(c, REG_DMA_ADDR, MEM_IOVA);
    check(d, vfu_client_dma_logging_start(c, PAGE, &range, 1) == 0,
          "DMA_LOGGING_START");
    reg_write(c, REG_DOORBELL, 9);
    check(d, vfu_client_dma_logging_report(c, MEM_IOVA, MEM_SIZE, PAGE,
                                           bitmap, sizeof(bitmap)) == 0,
          "DMA_LOGGING_REPORT");
    check(d, bitmap[0] == 1ull << 9, "exactly page 9 dirty (%#" PRIx64 ")",
          bitmap[0]);
    check(d, vfu_client_dma_logging_stop(c) == 0, "DMA_LOGGING_STOP");
    check(d, vfu_client_mig_get_flags(c, &flags) == 0 &&
          (flags & VFIO_MIGRATION_STOP_COPY), "DEVICE_FEATURE MIGRATION");
    step("DEVICE_FEATURE: dirty logging saw page 9; migration flags %#" PRIx64,
         flags);
}

static void
tour_timer_and_reset(struct demo *d, vfu_client_t *c)
{
    uint64_t now = (uint64_t)time(NULL);
    uint8_t b = 0;

    check(d, reg_write(c, REG_TIMER, now + 1) == 0, "arm the timer");
    check(d, irq_wait(d->efd[0], 4000), "timer: MSI vector 0");
    check(d, irq_wait(d->efd[1], 1000), "timer: MSI vector 1");
    check(d, reg_read(c, REG_IRQ_COUNT) == 1, "IRQ_COUNT 1");
    step("timer: both interrupts delivered");

    check(d, vfu_client_device_reset(c) == 0, "DEVICE_RESET");
    check(d, reg_read(c, REG_IRQ_COUNT) == 0 &&
          reg_read(c, REG_DMA_ADDR) == 0, "registers cleared by reset");
    check(d, vfu_client_region_read(c, BAR1, 0x1000, &b, 1) == 0 &&
          b == 0xa0, "BAR1 storage kept across reset");
    /* Put back what the VMM would program again after a reset. */
    check(d, set_msi(c, d->efd) == 0, "SET_IRQS after reset");
    check(d, reg_write(c, REG_DMA_ADDR, MEM_IOVA) == 0, "DMA_ADDR");
    step("DEVICE_RESET: registers cleared, storage kept");
}

/* ---- the guest ---- */

static void *
guest_main(void *arg)
{
    struct demo *d = arg;
    uint64_t i = 0;

    while (!atomic_load(&d->stop)) {
        uint64_t v = 0x6000000000000000ull | ++i;
        uint64_t off = (i * 8 * 4099) % BAR1_SIZE;

        if (i % 4 == 0 && d->src_bar1[i % 8 == 0].map != NULL) {
            /* A store through the mapping: the device cannot see it. */
            const struct sparse *s = &d->src_bar1[i % 8 == 0];
            off = s->offset + (i * 8 * 31) % s->size;
            memcpy(s->map + (off - s->offset), &v, 8);
        } else if (vfu_client_region_write(d->src, BAR1, off, &v, 8) < 0) {
            d->guest_errors++;
            continue;
        }
        memcpy(d->shadow + off, &v, 8);
        if (i % 16 == 0 && reg_write(d->src, REG_DOORBELL, i) < 0) {
            d->guest_errors++;
        }
        /* read by the migrating thread for its progress lines */
        __atomic_add_fetch(&d->guest_writes, 1, __ATOMIC_RELAXED);
    }
    return NULL;
}

/* ---- migration ---- */

static int
to_dst(void *opaque, const void *buf, size_t len)
{
    struct demo *d = opaque;

    return vfu_client_mig_write_all(d->dst, buf, len);
}

/* Copy the guest pages the source device dirtied to the destination. */
static int
copy_dirty(void *opaque, uint64_t iova, uint64_t length, uint64_t page_size,
           const uint64_t *bitmap)
{
    struct demo *d = opaque;
    uint64_t pages = length / page_size;

    for (uint64_t p = 0; p < pages; p++) {
        if (bitmap[p / 64] & (1ull << (p % 64))) {
            uint64_t off = iova - MEM_IOVA + p * page_size;
            memcpy(d->dst_mem + off, d->mem + off, page_size);
            d->dirty_pages++;
        }
    }
    return 0;
}

static int
spawn_destination(struct demo *d)
{
    d->dst_pid = fork();
    if (d->dst_pid < 0) {
        return -1;
    }
    if (d->dst_pid == 0) {
        execl(d->server_bin, d->server_bin, d->dst_sock, (char *)NULL);
        fprintf(stderr, "client: exec %s: %s\n", d->server_bin,
                strerror(errno));
        _exit(127);
    }
    d->dst = connect_to(d->dst_sock, 10000, &d->dst_pid);
    return d->dst != NULL ? 0 : -1;
}

static bool
migrate(struct demo *d)
{
    const struct vfio_user_device_feature_dma_logging_range range = {
        .iova = MEM_IOVA, .length = MEM_SIZE,
    };
    uint64_t total = 0, t0, downtime;
    ssize_t n;
    uint32_t round;

    if (!check(d, vfu_client_mig_set_state(d->dst,
                   VFIO_USER_DEVICE_STATE_RESUMING) == 0, "dst RESUMING") ||
        !check(d, vfu_client_dma_logging_start(d->src, PAGE, &range, 1) == 0,
               "src dirty logging") ||
        !check(d, vfu_client_mig_set_state(d->src,
                   VFIO_USER_DEVICE_STATE_PRE_COPY) == 0, "src PRE_COPY")) {
        return false;
    }
    /* All of guest memory first, then what the log says changed. */
    memcpy(d->dst_mem, d->mem, MEM_SIZE);
    for (round = 1; round <= 5; round++) {
        n = vfu_client_mig_read_all(d->src, to_dst, d);
        if (!check(d, n >= 0, "pre-copy round %u", round) ||
            !check(d, vfu_client_mig_dirty_report(d->src, &range, 1, PAGE,
                                                  copy_dirty, d) == 0,
                   "dirty report")) {
            return false;
        }
        total += (uint64_t)n;
        step("pre-copy round %u: %zd bytes of device state, %" PRIu64
             " guest pages copied so far, guest wrote %" PRIu64 " times",
             round, n, d->dirty_pages,
             __atomic_load_n(&d->guest_writes, __ATOMIC_RELAXED));
        if (round >= 2 && n < 64 * 1024) {
            break;
        }
    }

    /* The VMM pauses the vCPUs before stopping the device. */
    atomic_store(&d->stop, true);
    pthread_join(d->guest, NULL);
    d->guest_running = false;
    step("guest paused after %" PRIu64 " writes (%" PRIu64 " failed)",
         d->guest_writes, d->guest_errors);
    check(d, d->guest_errors == 0, "guest writes during pre-copy");

    t0 = now_ns();
    if (!check(d, vfu_client_mig_set_state(d->src,
                   VFIO_USER_DEVICE_STATE_STOP_COPY) == 0, "src STOP_COPY")) {
        return false;
    }
    n = vfu_client_mig_read_all(d->src, to_dst, d);
    if (!check(d, n > 0, "stop-and-copy data") ||
        !check(d, vfu_client_mig_dirty_report(d->src, &range, 1, PAGE,
                                              copy_dirty, d) == 0,
               "last dirty report") ||
        !check(d, vfu_client_dma_logging_stop(d->src) == 0, "logging off") ||
        !check(d, vfu_client_mig_set_state(d->src,
                   VFIO_USER_DEVICE_STATE_STOP) == 0, "src STOP") ||
        !check(d, vfu_client_mig_set_state(d->dst,
                   VFIO_USER_DEVICE_STATE_RUNNING) == 0, "dst RUNNING")) {
        return false;
    }
    downtime = now_ns() - t0;
    step("stop-and-copy: %zd bytes; device state total %" PRIu64 " bytes, "
         "%" PRIu64 " guest pages; downtime %.2f ms", n, total + (uint64_t)n,
         d->dirty_pages, downtime / 1e6);
    return true;
}

static void
check_destination(struct demo *d, uint64_t src_dma_count, int timer_ms)
{
    uint8_t *bar1 = malloc(BAR1_SIZE);
    uint64_t v = DMA_SLOTS * 1000 + 3;

    if (check(d, bar1 != NULL, "memory")) {
        check(d, vfu_client_region_read(d->dst, BAR1, 0, bar1,
                                        BAR1_SIZE) == 0 &&
              memcmp(bar1, d->shadow, BAR1_SIZE) == 0,
              "destination BAR1 holds what the guest wrote");
    }
    free(bar1);
    for (int k = 0; k < NR_SPARSE; k++) {
        if (d->dst_bar1[k].map != NULL) {
            check(d, memcmp(d->dst_bar1[k].map,
                            d->shadow + d->dst_bar1[k].offset,
                            d->dst_bar1[k].size) == 0,
                  "destination BAR1 area %d through mmap", k);
        }
    }
    step("destination BAR1 matches, by message and through mmap");

    check(d, memcmp(d->dst_mem, d->mem, MEM_SIZE) == 0,
          "guest memory copied from the dirty log matches the source's");
    check(d, reg_read(d->dst, REG_DMA_COUNT) == src_dma_count,
          "DMA_COUNT migrated (%" PRIu64 ")", src_dma_count);
    check(d, reg_write(d->dst, REG_DOORBELL, v) == 0 &&
          slot_value(d->dst_mem, 3) == v && slot_value(d->mem, 3) != v,
          "the destination device writes the destination's memory");
    step("guest memory matches; destination DMA works (%" PRIu64
         " dirty pages copied)", d->dirty_pages);

    check(d, irq_wait(d->efd[0], timer_ms), "vector 0 from the destination");
    check(d, irq_wait(d->efd[1], 1000), "vector 1 from the destination");
    check(d, reg_read(d->dst, REG_IRQ_COUNT) == 1 &&
          reg_read(d->dst, REG_TIMER) == 0,
          "the destination's timer fired once");
    step("the timer armed on the source fired on the destination");
}

static void
stop_destination(struct demo *d)
{
    int status = 0;
    struct stat st;

    vfu_client_close(d->dst);
    d->dst = NULL;
    if (d->dst_pid <= 0) {
        return;
    }
    kill(d->dst_pid, SIGTERM);
    check(d, waitpid(d->dst_pid, &status, 0) == d->dst_pid &&
          WIFEXITED(status) && WEXITSTATUS(status) == 0,
          "destination server exits cleanly (status %#x)", status);
    d->dst_pid = 0;
    check(d, stat(d->dst_sock, &st) < 0 && errno == ENOENT,
          "destination socket removed");
}

static void
unmap_sparse(struct sparse *s)
{
    for (int k = 0; k < NR_SPARSE; k++) {
        if (s[k].map != NULL) {
            munmap(s[k].map, s[k].size);
        }
    }
}

static int
find_server(struct demo *d, const char *arg)
{
    char self[PATH_MAX];
    ssize_t n;

    if (arg != NULL) {
        snprintf(d->server_bin, sizeof(d->server_bin), "%s", arg);
        return 0;
    }
    n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    if (n < 0) {
        return -1;
    }
    self[n] = '\0';
    snprintf(d->server_bin, sizeof(d->server_bin), "%s/server", dirname(self));
    return 0;
}

static void
run(struct demo *d)
{
    uint64_t src_dma_count, when;
    int timer_ms;

    d->src = connect_to(d->sock, 0, NULL);
    if (!check(d, d->src != NULL, "connect to %s", d->sock)) {
        return;
    }
    tour_info(d, d->src, d->src_bar1);
    tour_irqs(d, d->src);
    tour_access(d, d->src, d->src_bar1);
    tour_dma(d, d->src);
    tour_timer_and_reset(d, d->src);
    if (d->failures > 0) {
        return;     /* no point migrating a device that misbehaves */
    }

    step("starting the destination: %s %s", d->server_bin, d->dst_sock);
    if (!check(d, spawn_destination(d) == 0, "destination server")) {
        return;
    }
    tour_info(d, d->dst, d->dst_bar1);
    check(d, vfu_client_dma_map(d->dst, MEM_IOVA, MEM_SIZE,
                                VFIO_USER_F_DMA_REGION_READ |
                                VFIO_USER_F_DMA_REGION_WRITE,
                                d->dst_mem_fd, 0, d->dst_mem) == 0,
          "destination DMA_MAP");
    check(d, set_msi(d->dst, d->efd) == 0, "destination SET_IRQS");

    check(d, vfu_client_region_read(d->src, BAR1, 0, d->shadow,
                                    BAR1_SIZE) == 0, "read BAR1");
    when = (uint64_t)time(NULL) + 4;
    check(d, reg_write(d->src, REG_TIMER, when) == 0, "arm the timer");
    step("source timer armed for %" PRIu64 "; guest starts writing", when);
    if (!check(d, pthread_create(&d->guest, NULL, guest_main, d) == 0,
               "guest thread")) {
        return;
    }
    d->guest_running = true;
    usleep(200 * 1000);
    if (!migrate(d)) {
        return;
    }
    /* The IRQ must come from the destination, not before the switch. */
    check(d, !irq_wait(d->efd[0], 0), "no interrupt before the switch");
    src_dma_count = reg_read(d->src, REG_DMA_COUNT);
    step("switching to the destination");
    unmap_sparse(d->src_bar1);
    memset(d->src_bar1, 0, sizeof(d->src_bar1));
    vfu_client_close(d->src);
    d->src = NULL;

    timer_ms = (int)(((int64_t)when - (int64_t)time(NULL) + 3) * 1000);
    check_destination(d, src_dma_count, timer_ms > 1000 ? timer_ms : 1000);
}

int
main(int argc, char *argv[])
{
    struct demo *d;
    int ok;

    if (argc < 2 || argc > 3) {
        fprintf(stderr, "usage: %s SOCKET [SERVER_BINARY]\n", argv[0]);
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    d = calloc(1, sizeof(*d));
    if (d == NULL) {
        perror("client");
        return 1;
    }
    d->sock = argv[1];
    snprintf(d->dst_sock, sizeof(d->dst_sock), "%s.dst", d->sock);
    d->efd[0] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    d->efd[1] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    d->mem_fd = memfd("guest-src", MEM_SIZE, &d->mem);
    d->dst_mem_fd = memfd("guest-dst", MEM_SIZE, &d->dst_mem);
    d->nofd = calloc(1, MEM_SIZE);
    d->shadow = calloc(1, BAR1_SIZE);
    if (check(d, d->efd[0] >= 0 && d->efd[1] >= 0 && d->mem_fd >= 0 &&
              d->dst_mem_fd >= 0 && d->nofd != NULL && d->shadow != NULL &&
              find_server(d, argv[2]) == 0, "set-up")) {
        run(d);
    }
    if (d->guest_running) {
        atomic_store(&d->stop, true);
        pthread_join(d->guest, NULL);
    }
    vfu_client_close(d->src);
    if (d->dst_pid > 0 || d->dst != NULL) {
        stop_destination(d);
    }
    unmap_sparse(d->src_bar1);
    unmap_sparse(d->dst_bar1);
    ok = d->failures == 0;
    printf("client: %s (%d failed checks)\n", ok ? "PASS" : "FAIL",
           d->failures);
    for (int i = 0; i < 2; i++) {
        if (d->efd[i] >= 0) {
            close(d->efd[i]);
        }
    }
    if (d->mem != NULL) {
        munmap(d->mem, MEM_SIZE);
        close(d->mem_fd);
    }
    if (d->dst_mem != NULL) {
        munmap(d->dst_mem, MEM_SIZE);
        close(d->dst_mem_fd);
    }
    free(d->nofd);
    free(d->shadow);
    free(d);
    return ok ? 0 : 1;
}
