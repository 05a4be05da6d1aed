/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 the vfu authors. */

/*
 * The C examples (examples/gpio-pci-idio-16 and examples/server), each run
 * as its own process, against a hostile client: random accesses of every
 * size to every region, headers too short and too long, commands nobody
 * defined, SET_IRQS with a pipe and with a saturated blocking eventfd
 * (then an interrupt raised into them), DMA maps of an unsealed memfd that
 * is then truncated (then device DMA into it), a DMA_MAP carrying more fds
 * than negotiated, and clients that leave in the middle of a migration.
 * After each attack the server must still run and a fresh client must read
 * the right vendor and device id; at the end SIGTERM stops it cleanly.
 */

#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
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

#include <cmocka.h>

#include "libvfio-user.h"
#include "vfu-client.h"
#include "harness.h"

#if !defined(GPIO_SERVER) || !defined(DEMO_SERVER)
#error "GPIO_SERVER and DEMO_SERVER must name the example binaries"
#endif

struct example {
    const char *bin;
    uint16_t vendor, device;
    bool dma, migration;
    char dir[64], sock[96], log[96];
    pid_t pid;
};

static struct example gpio_ex = {
    .bin = GPIO_SERVER, .vendor = 0x494f, .device = 0x0dc8,
};
static struct example demo_ex = {
    .bin = DEMO_SERVER, .vendor = 0x1234, .device = 0x0001,
    .dma = true, .migration = true,
};

/* ---- the server process ---- */

static int
start(void **state)
{
    struct example *ex = *state;

    snprintf(ex->dir, sizeof(ex->dir), "/tmp/vfu-hex-XXXXXX");
    assert_non_null(mkdtemp(ex->dir));
    snprintf(ex->sock, sizeof(ex->sock), "%s/dev.sock", ex->dir);
    snprintf(ex->log, sizeof(ex->log), "%s/dev.log", ex->dir);
    ex->pid = fork();
    assert_true(ex->pid >= 0);
    if (ex->pid == 0) {
        int log = open(ex->log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        dup2(log, 1);
        dup2(log, 2);
        execl(ex->bin, ex->bin, ex->sock, (char *)NULL);
        _exit(127);
    }
    for (int i = 0; i < 250; i++) {
        struct stat st;
        if (stat(ex->sock, &st) == 0) {
            return 0;
        }
        harness_sleep_ms(20);
    }
    fail_msg("%s did not come up", ex->bin);
    return -1;
}

static void
dump_log(const struct example *ex)
{
    char buf[16384];
    int fd = open(ex->log, O_RDONLY);
    ssize_t n;

    if (fd < 0) {
        return;
    }
    /* the tail, which says what went wrong */
    off_t end = lseek(fd, 0, SEEK_END);
    lseek(fd, end > (off_t)sizeof(buf) - 1 ? end - (off_t)sizeof(buf) + 1 : 0,
          SEEK_SET);
    n = read(fd, buf, sizeof(buf) - 1);
    if (n > 0) {
        buf[n] = '\0';
        fprintf(stderr, "--- %s log ---\n%s\n", ex->bin, buf);
    }
    close(fd);
}

static void
assert_alive(const struct example *ex)
{
    int st;
    pid_t r = waitpid(ex->pid, &st, WNOHANG);

    if (r != 0) {
        dump_log(ex);
        fail_msg("%s died (%s %d)", ex->bin,
                 WIFSIGNALED(st) ? "signal" : "exit",
                 WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st));
    }
}

static int
stop(void **state)
{
    struct example *ex = *state;
    struct stat st;
    int status = 0;

    if (ex->pid > 0) {
        kill(ex->pid, SIGTERM);
        for (int i = 0; i < 250 && waitpid(ex->pid, &status, WNOHANG) == 0; i++) {
            harness_sleep_ms(20);
        }
        if (waitpid(ex->pid, &status, WNOHANG) == 0) {
            kill(ex->pid, SIGKILL);
            waitpid(ex->pid, &status, 0);
            dump_log(ex);
            fail_msg("%s did not stop on SIGTERM", ex->bin);
        }
        ex->pid = 0;
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 0);
        assert_int_not_equal(stat(ex->sock, &st), 0);   /* socket removed */
    }
    if (getenv("VFU_HEX_LOG") != NULL) {    /* to see what each attack did */
        dump_log(ex);
    }
    unlink(ex->log);
    rmdir(ex->dir);
    return 0;
}

/* ---- clients ---- */

static vfu_client_t *
client(const struct example *ex)
{
    vfu_client_t *c = vfu_client_connect(ex->sock);

    if (c == NULL || vfu_client_negotiate(c, NULL, NULL) < 0) {
        dump_log(ex);
        fail_msg("cannot connect to %s: %s", ex->bin, strerror(errno));
    }
    return c;
}

static uint64_t
bar0_read(vfu_client_t *c, uint64_t off)
{
    uint64_t v = ~0ull;

    assert_int_equal(vfu_client_region_read(c, VFU_PCI_DEV_BAR0_REGION_IDX,
                                            off, &v, sizeof(v)), 0);
    return v;
}

static void
bar0_write(vfu_client_t *c, uint64_t off, uint64_t v)
{
    assert_int_equal(vfu_client_region_write(c, VFU_PCI_DEV_BAR0_REGION_IDX,
                                             off, &v, sizeof(v)), 0);
}

/*
 * Not just alive: the device does its job for the new client. gpio loops
 * an output back to its input; the demo does a DMA round trip into a map
 * of this client and raises its interrupt when the timer expires (which a
 * device left paused by an abandoned migration would not).
 */
static void
device_works(const struct example *ex, vfu_client_t *c)
{
    if (!ex->dma) {
        uint8_t out = (uint8_t)(0x3c ^ (uint8_t)random()), in = 0;
        assert_int_equal(vfu_client_region_write(c, VFU_PCI_DEV_BAR2_REGION_IDX,
                                                 0, &out, 1), 0);
        assert_int_equal(vfu_client_region_read(c, VFU_PCI_DEV_BAR2_REGION_IDX,
                                                1, &in, 1), 0);
        assert_int_equal(in, out);
        return;
    }
    const size_t size = 64 * 4096;
    int fd = harness_memfd(size);
    assert_true(fd >= 0);
    void *mem = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    assert_true(mem != MAP_FAILED);
    assert_int_equal(vfu_client_dma_map(c, 0x10000000, size,
                                        VFIO_USER_F_DMA_REGION_READ |
                                        VFIO_USER_F_DMA_REGION_WRITE, fd, 0,
                                        mem), 0);
    int e = harness_eventfd();
    assert_int_equal(vfu_client_set_irqs(c, VFIO_IRQ_SET_DATA_EVENTFD |
                                         VFIO_IRQ_SET_ACTION_TRIGGER,
                                         VFU_DEV_INTX_IRQ, 0, 1, &e, 1,
                                         NULL, 0), 0);
    uint64_t count = bar0_read(c, 0x18), errors = bar0_read(c, 0x20);
    bar0_write(c, 0x08, 0x10000000);
    bar0_write(c, 0x10, 0x1234567 * 64 + 5);
    assert_int_equal(bar0_read(c, 0x18), count + 1);
    assert_int_equal(bar0_read(c, 0x20), errors);
    uint64_t got;
    memcpy(&got, (uint8_t *)mem + 5 * 4096, sizeof(got));
    assert_int_equal(got, 0x1234567 * 64 + 5);
    uint64_t irqs = bar0_read(c, 0x28);
    bar0_write(c, 0x00, (uint64_t)time(NULL) - 1);
    assert_int_equal(harness_eventfd_wait(e, 2000), 1);
    assert_int_equal(bar0_read(c, 0x28), irqs + 1);
    bar0_write(c, 0x08, 0);
    assert_int_equal(vfu_client_dma_unmap(c, 0x10000000, size, 0), 0);
    munmap(mem, size);
    close(fd);
    close(e);
}

/* What every attack ends with: the server runs and serves the next client. */
static void
next_client_served(const struct example *ex)
{
    uint16_t id[2] = { 0, 0 };
    vfu_client_t *c;

    assert_alive(ex);
    c = client(ex);
    assert_int_equal(vfu_client_region_read(c, VFU_PCI_DEV_CFG_REGION_IDX, 0,
                                            id, sizeof(id)), 0);
    assert_int_equal(id[0], ex->vendor);
    assert_int_equal(id[1], ex->device);
    device_works(ex, c);
    vfu_client_close(c);
    assert_alive(ex);
}

static uint64_t
region_size(vfu_client_t *c, uint32_t index)
{
    struct vfu_client_region_info ri;
    uint64_t size = 0;

    if (vfu_client_get_region_info(c, index, &ri) == 0) {
        size = ri.info.size;
        vfu_client_region_info_free(&ri);
    }
    return size;
}

/*
 * The example's way to make the device raise its interrupt (vector 0 of
 * INTx or MSI) at once: gpio, enable the IRQ and change an output; the
 * demo, arm the timer for a second already past.
 */
static void
raise_irq(const struct example *ex, vfu_client_t *c)
{
    if (ex->dma) {
        uint64_t when = (uint64_t)time(NULL) - 1;
        (void)vfu_client_region_write(c, VFU_PCI_DEV_BAR0_REGION_IDX, 0,
                                      &when, sizeof(when));
        harness_sleep_ms(100);              /* the timer fires in the loop */
        (void)vfu_client_region_read(c, VFU_PCI_DEV_BAR0_REGION_IDX, 0x28,
                                     &when, sizeof(when));
    } else {
        uint8_t v;
        (void)vfu_client_region_read(c, VFU_PCI_DEV_BAR2_REGION_IDX, 2, &v, 1);
        for (int i = 0; i < 4; i++) {
            v = (uint8_t)(0x55 + i);
            (void)vfu_client_region_write(c, VFU_PCI_DEV_BAR2_REGION_IDX, 0,
                                          &v, 1);
            (void)vfu_client_region_write(c, VFU_PCI_DEV_BAR2_REGION_IDX, 1,
                                          &v, 1);
        }
    }
}

/* ---- the attacks ---- */

static void
test_random_region_access(void **state)
{
    struct example *ex = *state;
    static const size_t sizes[] = { 1, 2, 3, 4, 5, 6, 7, 8, 16, 64, 4096,
                                    65536 };
    static uint8_t buf[65536];
    vfu_client_t *c = client(ex);
    uint64_t size[VFU_PCI_DEV_NUM_REGIONS + 2];

    srandom(12);
    for (uint32_t r = 0; r < VFU_PCI_DEV_NUM_REGIONS + 2; r++) {
        size[r] = region_size(c, r);
    }
    for (int i = 0; i < 4000; i++) {
        uint32_t r = (uint32_t)random() % (VFU_PCI_DEV_NUM_REGIONS + 2);
        size_t n = sizes[(size_t)random() % (sizeof(sizes) / sizeof(sizes[0]))];
        uint64_t off;

        switch (random() % 4) {
        case 0:  off = (uint64_t)random() % (size[r] + 16); break;
        case 1:  off = size[r] > n ? size[r] - n + (uint64_t)random() % 3 : 0;
                 break;
        case 2:  off = ((uint64_t)random() << 32) | (uint64_t)random(); break;
        default: off = ((uint64_t)random() % (size[r] / 8 + 2)) * 8; break;
        }
        for (size_t k = 0; k < n; k++) {
            buf[k] = (uint8_t)random();
        }
        if (random() % 2) {
            (void)vfu_client_region_read(c, r, off, buf, n);
        } else {
            (void)vfu_client_region_write(c, r, off, buf, n);
        }
    }
    vfu_client_close(c);
    next_client_served(ex);
}

static void
test_bad_headers_and_commands(void **state)
{
    struct example *ex = *state;
    uint8_t msg[256];
    struct vfio_user_header *h = (struct vfio_user_header *)msg;

    /* garbage commands, unknown flags, replies nobody asked for */
    vfu_client_t *c = client(ex);
    srandom(13);
    for (int i = 0; i < 300; i++) {
        size_t len = 16 + (size_t)random() % 200;
        for (size_t k = 0; k < len; k++) {
            msg[k] = (uint8_t)random();
        }
        harness_msg(msg, vfu_client_next_msg_id(c),
                    (uint16_t)(i < 100 ? i : random() % 0x10000), NULL,
                    len - 16);
        h->flags = i % 3 == 0 ? 0 : (uint32_t)random();
        if (vfu_client_send_raw(c, msg, len, NULL, 0) < 0) {
            break;
        }
        struct vfio_user_header rh;
        size_t rsize = 0;
        if (vfu_client_recv_raw(c, &rh, NULL, &rsize, NULL, NULL, 50) < 0 &&
            errno == ENOTCONN) {
            break;      /* dropped: fine, the next client is what counts */
        }
    }
    vfu_client_close(c);
    next_client_served(ex);

    /* a header shorter than a header, one claiming 4 GiB, one cut off */
    static const uint32_t bad_sizes[] = { 0, 1, 15, 0xffffffffu, 0x7fffffff,
                                          64 << 20 };
    for (size_t i = 0; i < sizeof(bad_sizes) / sizeof(bad_sizes[0]); i++) {
        c = client(ex);
        harness_msg(msg, vfu_client_next_msg_id(c), VFIO_USER_REGION_WRITE,
                    NULL, 32);
        memset(msg + 16, 0xab, 32);
        h->msg_size = bad_sizes[i];
        (void)vfu_client_send_raw(c, msg, 48, NULL, 0);
        harness_sleep_ms(20);
        vfu_client_close(c);
        next_client_served(ex);
    }
    c = client(ex);
    harness_msg(msg, vfu_client_next_msg_id(c), VFIO_USER_DEVICE_GET_INFO,
                NULL, 16);
    (void)vfu_client_send_raw(c, msg, 7, NULL, 0);     /* half a header */
    vfu_client_close(c);
    next_client_served(ex);
}

/* SET_IRQS for index/vector 0 with the fd @fd; returns the call's errno. */
static int
set_irq_fd(vfu_client_t *c, uint32_t index, int fd)
{
    errno = 0;
    return vfu_client_set_irqs(c, VFIO_IRQ_SET_DATA_EVENTFD |
                               VFIO_IRQ_SET_ACTION_TRIGGER, index, 0, 1,
                               &fd, 1, NULL, 0) < 0 ? errno : 0;
}

static void
test_irq_fds(void **state)
{
    struct example *ex = *state;
    uint32_t indexes[] = { VFU_DEV_INTX_IRQ, VFU_DEV_MSI_IRQ };
    size_t n_index = ex->dma ? 2 : 1;

    for (size_t i = 0; i < n_index; i++) {
        /* a pipe with its read end closed: a write would raise SIGPIPE */
        vfu_client_t *c = client(ex);
        int p[2];
        assert_int_equal(pipe(p), 0);
        close(p[0]);
        assert_int_not_equal(set_irq_fd(c, indexes[i], p[1]), 0);
        close(p[1]);
        raise_irq(ex, c);
        vfu_client_close(c);
        next_client_served(ex);

        /* a blocking eventfd one short of saturation */
        c = client(ex);
        int e = eventfd(0, EFD_CLOEXEC);
        uint64_t full = 0xfffffffffffffffeull;
        assert_int_equal(write(e, &full, sizeof(full)), sizeof(full));
        assert_int_equal(set_irq_fd(c, indexes[i], e), 0);
        raise_irq(ex, c);
        raise_irq(ex, c);
        /* the loop still answers that client (one client at a time) */
        uint16_t vendor = 0;
        assert_int_equal(vfu_client_region_read(c, VFU_PCI_DEV_CFG_REGION_IDX,
                                                0, &vendor, 2), 0);
        assert_int_equal(vendor, ex->vendor);
        vfu_client_close(c);
        raise_irq(ex, c = client(ex));      /* and after it left */
        vfu_client_close(c);
        close(e);
        next_client_served(ex);
    }
}

static void
test_dma_truncated_memfd(void **state)
{
    struct example *ex = *state;
    const uint64_t iova = 0x100000, size = 16 * 4096;
    vfu_client_t *c = client(ex);
    int fd = memfd_create("hostile", MFD_CLOEXEC);     /* never sealed */
    uint64_t v;

    assert_true(fd >= 0);
    assert_int_equal(ftruncate(fd, (off_t)size), 0);
    /* whether it is taken (for message DMA) or refused is the library's
     * choice; the device must live with either */
    (void)vfu_client_dma_map(c, iova, size, VFIO_USER_F_DMA_REGION_READ |
                             VFIO_USER_F_DMA_REGION_WRITE, fd, 0, NULL);
    assert_int_equal(ftruncate(fd, 0), 0);
    if (ex->dma) {
        /* DMA_ADDR, then doorbells: the device writes and reads pages */
        v = iova;
        (void)vfu_client_region_write(c, VFU_PCI_DEV_BAR0_REGION_IDX, 0x08,
                                      &v, sizeof(v));
        for (v = 1; v < 20; v++) {
            (void)vfu_client_region_write(c, VFU_PCI_DEV_BAR0_REGION_IDX, 0x10,
                                          &v, sizeof(v));
        }
        assert_alive(ex);
        /* and a map of a huge sparse file, of which 4 KiB are meant */
        int big = harness_memfd(4096);
        assert_true(big >= 0);
        assert_int_equal(ftruncate(big, (off_t)1 << 46), 0);
        (void)vfu_client_dma_map(c, 0x400000, 4096,
                                 VFIO_USER_F_DMA_REGION_READ |
                                 VFIO_USER_F_DMA_REGION_WRITE, big, 0, NULL);
        v = 0x400000;
        (void)vfu_client_region_write(c, VFU_PCI_DEV_BAR0_REGION_IDX, 0x08,
                                      &v, sizeof(v));
        close(big);
    }
    close(fd);
    vfu_client_close(c);
    next_client_served(ex);
}

static void
test_dma_map_too_many_fds(void **state)
{
    struct example *ex = *state;
    vfu_client_t *c = client(ex);
    struct vfio_user_dma_map m = {
        .argsz = sizeof(m),
        .flags = VFIO_USER_F_DMA_REGION_READ | VFIO_USER_F_DMA_REGION_WRITE,
        .addr = 0x800000, .size = 4096,
    };
    int fds[40];
    uint32_t max = vfu_client_caps(c)->max_msg_fds;

    assert_true(max < 40);
    for (int i = 0; i < 40; i++) {
        fds[i] = harness_memfd(4096);
        assert_true(fds[i] >= 0);
    }
    /* one more than allowed, and many more */
    assert_int_not_equal(harness_call_errno(c, VFIO_USER_DMA_MAP, &m,
                                            sizeof(m), fds, max + 1), 0);
    vfu_client_close(c);
    next_client_served(ex);
    c = client(ex);
    (void)harness_call_errno(c, VFIO_USER_DMA_MAP, &m, sizeof(m), fds, 40);
    vfu_client_close(c);
    harness_close_fds(fds, 40);
    next_client_served(ex);
}

static void
test_disconnect_mid_migration(void **state)
{
    struct example *ex = *state;
    static uint8_t buf[1 << 16];
    vfu_client_t *c;
    uint64_t flags;

    if (!ex->migration) {
        /* no migration: the feature must be refused, not crash anything */
        c = client(ex);
        assert_int_not_equal(vfu_client_mig_get_flags(c, &flags), 0);
        assert_int_not_equal(vfu_client_mig_set_state(c,
                             VFIO_USER_DEVICE_STATE_STOP), 0);
        vfu_client_close(c);
        next_client_served(ex);
        return;
    }

    /* leave while the source is in pre-copy, half read */
    c = client(ex);
    assert_int_equal(vfu_client_mig_get_flags(c, &flags), 0);
    if (flags & VFIO_MIGRATION_PRE_COPY) {
        assert_int_equal(vfu_client_mig_set_state(c,
                         VFIO_USER_DEVICE_STATE_PRE_COPY), 0);
        (void)vfu_client_mig_data_read(c, buf, 100);
    }
    vfu_client_close(c);
    next_client_served(ex);

    /* leave in stop-copy, half read */
    c = client(ex);
    assert_int_equal(vfu_client_mig_set_state(c, VFIO_USER_DEVICE_STATE_STOP),
                     0);
    assert_int_equal(vfu_client_mig_set_state(c,
                     VFIO_USER_DEVICE_STATE_STOP_COPY), 0);
    (void)vfu_client_mig_data_read(c, buf, 4097);
    vfu_client_close(c);
    next_client_served(ex);

    /* leave while resuming, in the middle of a record */
    c = client(ex);
    assert_int_equal(vfu_client_mig_set_state(c, VFIO_USER_DEVICE_STATE_STOP),
                     0);
    assert_int_equal(vfu_client_mig_set_state(c,
                     VFIO_USER_DEVICE_STATE_RESUMING), 0);
    struct { uint32_t magic, type; uint64_t offset, len; } rec = {
        0x7666756du, 1, 0, 4096 };
    memcpy(buf, &rec, sizeof(rec));
    memset(buf + sizeof(rec), 0x5a, 1000);
    (void)vfu_client_mig_data_write(c, buf, sizeof(rec) + 1000);
    vfu_client_close(c);
    next_client_served(ex);

    /* a complete record but no end: BAR1 must not take it */
    uint8_t page[4096], back[4096];
    memset(page, 0x11, sizeof(page));
    c = client(ex);
    assert_int_equal(vfu_client_region_write(c, VFU_PCI_DEV_BAR1_REGION_IDX,
                                             0, page, sizeof(page)), 0);
    assert_int_equal(vfu_client_mig_set_state(c, VFIO_USER_DEVICE_STATE_STOP),
                     0);
    assert_int_equal(vfu_client_mig_set_state(c,
                     VFIO_USER_DEVICE_STATE_RESUMING), 0);
    memcpy(buf, &rec, sizeof(rec));
    memset(buf + sizeof(rec), 0x5a, 4096);
    assert_int_equal(vfu_client_mig_data_write(c, buf, sizeof(rec) + 4096), 0);
    vfu_client_close(c);
    next_client_served(ex);
    c = client(ex);
    assert_int_equal(vfu_client_region_read(c, VFU_PCI_DEV_BAR1_REGION_IDX,
                                            0, back, sizeof(back)), 0);
    assert_memory_equal(back, page, sizeof(page));
    /* the same with its end and RESUMING -> STOP: now it is loaded */
    assert_int_equal(vfu_client_mig_set_state(c, VFIO_USER_DEVICE_STATE_STOP),
                     0);
    assert_int_equal(vfu_client_mig_set_state(c,
                     VFIO_USER_DEVICE_STATE_RESUMING), 0);
    struct { uint32_t magic, type; uint64_t offset, len; } end = {
        0x7666756du, 3, 0, 0 };
    memcpy(buf + sizeof(rec) + 4096, &end, sizeof(end));
    assert_int_equal(vfu_client_mig_data_write(c, buf, 2 * sizeof(rec) + 4096),
                     0);
    assert_int_equal(vfu_client_mig_set_state(c, VFIO_USER_DEVICE_STATE_STOP),
                     0);
    assert_int_equal(vfu_client_mig_set_state(c,
                     VFIO_USER_DEVICE_STATE_RUNNING), 0);
    assert_int_equal(vfu_client_region_read(c, VFU_PCI_DEV_BAR1_REGION_IDX,
                                            0, back, sizeof(back)), 0);
    assert_memory_equal(back, buf + sizeof(rec), sizeof(back));
    vfu_client_close(c);
    next_client_served(ex);

    /* garbage streams: bad records, huge lengths, data after the end */
    c = client(ex);
    assert_int_equal(vfu_client_mig_set_state(c, VFIO_USER_DEVICE_STATE_STOP),
                     0);
    assert_int_equal(vfu_client_mig_set_state(c,
                     VFIO_USER_DEVICE_STATE_RESUMING), 0);
    srandom(14);
    for (int i = 0; i < 50; i++) {
        size_t n = 1 + (size_t)random() % 8192;
        for (size_t k = 0; k < n; k++) {
            buf[k] = (uint8_t)random();
        }
        if (i % 5 == 0) {
            rec.type = (uint32_t)random() % 4;
            rec.len = i % 10 == 0 ? UINT64_MAX : (uint64_t)random();
            memcpy(buf, &rec, sizeof(rec));
        }
        (void)vfu_client_mig_data_write(c, buf, n);
    }
    (void)vfu_client_mig_set_state(c, VFIO_USER_DEVICE_STATE_STOP);
    (void)vfu_client_mig_set_state(c, VFIO_USER_DEVICE_STATE_RUNNING);
    vfu_client_close(c);
    next_client_served(ex);
}

/* All of it again from one client, which then vanishes mid-request. */
static void
test_everything_then_vanish(void **state)
{
    struct example *ex = *state;
    vfu_client_t *c = client(ex);
    int e = harness_eventfd(), fd = harness_memfd(8192);
    uint8_t msg[64];
    uint64_t v = 0x100000;

    (void)set_irq_fd(c, VFU_DEV_INTX_IRQ, e);
    (void)vfu_client_dma_map(c, 0x100000, 8192, VFIO_USER_F_DMA_REGION_READ |
                             VFIO_USER_F_DMA_REGION_WRITE, fd, 0, NULL);
    if (ex->dma) {
        (void)vfu_client_region_write(c, VFU_PCI_DEV_BAR0_REGION_IDX, 0x08,
                                      &v, sizeof(v));
        (void)vfu_client_mig_set_state(c, VFIO_USER_DEVICE_STATE_STOP);
        (void)vfu_client_mig_set_state(c, VFIO_USER_DEVICE_STATE_RESUMING);
    }
    raise_irq(ex, c);
    /* a request whose payload never comes */
    harness_msg(msg, vfu_client_next_msg_id(c), VFIO_USER_REGION_WRITE, NULL,
                1000);
    (void)vfu_client_send_raw(c, msg, 24, NULL, 0);
    vfu_client_close(c);
    close(e);
    close(fd);
    next_client_served(ex);
}

#define EX_TESTS(ex) \
    cmocka_unit_test_prestate_setup_teardown(test_random_region_access, \
                                             start, stop, &ex), \
    cmocka_unit_test_prestate_setup_teardown(test_bad_headers_and_commands, \
                                             start, stop, &ex), \
    cmocka_unit_test_prestate_setup_teardown(test_irq_fds, start, stop, &ex), \
    cmocka_unit_test_prestate_setup_teardown(test_dma_truncated_memfd, \
                                             start, stop, &ex), \
    cmocka_unit_test_prestate_setup_teardown(test_dma_map_too_many_fds, \
                                             start, stop, &ex), \
    cmocka_unit_test_prestate_setup_teardown(test_disconnect_mid_migration, \
                                             start, stop, &ex), \
    cmocka_unit_test_prestate_setup_teardown(test_everything_then_vanish, \
                                             start, stop, &ex)

int
main(void)
{
    const struct CMUnitTest gpio_tests[] = { EX_TESTS(gpio_ex) };
    const struct CMUnitTest demo_tests[] = { EX_TESTS(demo_ex) };

    /* our end of a pipe the server closed must not kill the test */
    signal(SIGPIPE, SIG_IGN);
    alarm(240);         /* a hung server fails the test, not ctest */
    return cmocka_run_group_tests_name("gpio-pci-idio-16", gpio_tests,
                                       NULL, NULL) |
           cmocka_run_group_tests_name("server", demo_tests, NULL, NULL);
}
