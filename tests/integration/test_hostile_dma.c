/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 the vfu authors. */

/*
 * Issue 12, the DMA holes: a client that shrinks the file it mapped, a
 * small map of a huge sparse file, dirty logging of maps added after
 * START, and message DMA that the server could not receive or that a
 * quiesce callback waits for. A raw client speaks over a socketpair to a
 * context served on the test's own thread; a client thread answers the
 * server's DMA_READ/WRITE requests with a known pattern.
 */

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "libvfio-user.h"
#include "private.h"
#include "harness.h"

#define BAR0_SIZE   0x1000u
#define IOVA        0x100000u
#define MAP_SIZE    0x10000u
#define PG          4096u
#define PATTERN     0x77

struct hdr {
    uint16_t id, cmd;
    uint32_t size, flags, err;
};

struct fx {
    char dir[64], path[96];
    vfu_ctx_t *ctx;
    int fd;                     /* the client's end */
    uint16_t next_id;
    uint64_t sg[8];             /* one dma_sg_t, 8-aligned */
    vfu_dma_info_t last_reg;    /* what the last dma_register was told */
    void (*on_quiesce)(struct fx *);
    /* The client thread (serve_start): answers DMA_READ/WRITE, keeps the
     * errno of each reply to our commands. */
    pthread_t client;
    int client_stop;
    unsigned dma_reads;
    unsigned reply_delay_us;    /* before answering a DMA_READ */
    int reply_err[256];         /* by msg id; -1 until it came */
};

/* ---- the device ---- */

static ssize_t
bar0_cb(vfu_ctx_t *ctx, char *buf, size_t count, loff_t off, bool is_write)
{
    (void)ctx;
    (void)off;
    if (!is_write) {
        memset(buf, 0, count);
    }
    return (ssize_t)count;
}

static int
quiesce_cb(vfu_ctx_t *ctx)
{
    struct fx *f = vfu_get_private(ctx);

    if (f->on_quiesce != NULL) {
        f->on_quiesce(f);
    }
    return 0;
}

static void
dma_reg(vfu_ctx_t *ctx, vfu_dma_info_t *info)
{
    struct fx *f = vfu_get_private(ctx);

    f->last_reg = *info;
}

static void
dma_unreg(vfu_ctx_t *ctx, vfu_dma_info_t *info)
{
    (void)ctx;
    (void)info;
}

static void
log_fn(vfu_ctx_t *ctx, int level, const char *msg)
{
    (void)ctx;
    (void)level;
    if (getenv("HARNESS_VERBOSE") != NULL) {
        fprintf(stderr, "vfu: %s\n", msg);
    }
}

/* ---- raw messages ---- */

static int
xread(int fd, void *buf, size_t len)
{
    return harness_raw_read(fd, buf, len, 5000);
}

/* Read one message's header and payload (cap bytes at most). */
static int
xrecv(int fd, struct hdr *h, void *buf, size_t cap)
{
    if (xread(fd, h, sizeof(*h)) < 0 || h->size < sizeof(*h) ||
        h->size - sizeof(*h) > cap) {
        return -1;
    }
    return xread(fd, buf, h->size - sizeof(*h));
}

/* Send a command, let the server handle it, read its reply: its errno. */
static int
command_fds(struct fx *f, uint16_t cmd, const void *payload, size_t len,
            const int *fds, int nfds, void *reply, size_t cap)
{
    static char sink[1 << 16];
    struct hdr h;
    uint16_t id = f->next_id++;

    harness_raw_send(f->fd, id, cmd, VFIO_USER_F_TYPE_COMMAND, payload, len, fds, nfds);
    assert_true(vfu_run_ctx(f->ctx) >= 0);
    assert_int_equal(xrecv(f->fd, &h, reply != NULL ? reply : sink,
                           reply != NULL ? cap : sizeof(sink)), 0);
    assert_int_equal(h.id, id);
    assert_true(h.flags & VFIO_USER_F_TYPE_REPLY);
    return (int)h.err;
}

static void
negotiate(struct fx *f, const char *json)
{
    char buf[512] = { 0 }, rep[1024];
    size_t len = 4;

    if (json != NULL) {
        strcpy(buf + 4, json);
        len += strlen(json) + 1;
    }
    assert_int_equal(command_fds(f, VFIO_USER_VERSION, buf, len, NULL, 0,
                                 rep, sizeof(rep) - 1), 0);
}

static struct vfio_user_dma_map
map_req(uint64_t iova, uint64_t size, uint64_t offset)
{
    return (struct vfio_user_dma_map){
        .argsz = sizeof(struct vfio_user_dma_map),
        .flags = VFIO_USER_F_DMA_REGION_READ | VFIO_USER_F_DMA_REGION_WRITE,
        .offset = offset, .addr = iova, .size = size,
    };
}

static int
dma_map_at(struct fx *f, uint64_t iova, uint64_t size, int fd, uint64_t offset)
{
    struct vfio_user_dma_map m = map_req(iova, size, offset);

    return command_fds(f, VFIO_USER_DMA_MAP, &m, sizeof(m), &fd, fd >= 0,
                       NULL, 0);
}

static int
dma_unmap(struct fx *f, uint64_t iova, uint64_t size)
{
    struct vfio_user_dma_unmap u = {
        .argsz = sizeof(u), .addr = iova, .size = size,
    };

    return command_fds(f, VFIO_USER_DMA_UNMAP, &u, sizeof(u), NULL, 0, NULL, 0);
}

static int ctx_flags = LIBVFIO_USER_FLAG_ATTACH_NB;

static int
setup_raw(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    int sv[2];

    assert_non_null(f);
    f->next_id = 1;
    snprintf(f->dir, sizeof(f->dir), "/tmp/vfu-hdma-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->path, sizeof(f->path), "%s/s", f->dir);
    f->ctx = vfu_create_ctx(VFU_TRANS_SOCK, f->path, ctx_flags, f,
                            VFU_DEV_TYPE_PCI);
    assert_non_null(f->ctx);
    assert_int_equal(vfu_setup_log(f->ctx, log_fn, LOG_DEBUG), 0);
    assert_int_equal(vfu_pci_init(f->ctx, VFU_PCI_TYPE_CONVENTIONAL, 0, 0), 0);
    assert_int_equal(vfu_setup_region(f->ctx, VFU_PCI_DEV_BAR0_REGION_IDX,
                                      BAR0_SIZE, bar0_cb, VFU_REGION_FLAG_RW |
                                      VFU_REGION_FLAG_MEM, NULL, 0, -1, 0), 0);
    vfu_setup_device_quiesce_cb(f->ctx, quiesce_cb);
    assert_int_equal(vfu_setup_device_dma(f->ctx, 0, dma_reg, dma_unreg), 0);
    assert_int_equal(vfu_realize_ctx(f->ctx), 0);
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    assert_int_equal(vfu_attach_fd(f->ctx, sv[0]), 0);
    f->fd = sv[1];
    *state = f;
    return 0;
}

/* A context whose loop blocks (vfu_run_ctx() on a thread of its own). */
static int
setup_blocking(void **state)
{
    ctx_flags = 0;
    setup_raw(state);
    ctx_flags = LIBVFIO_USER_FLAG_ATTACH_NB;
    return 0;
}

static int
setup(void **state)
{
    setup_raw(state);
    negotiate(*state, "{\"capabilities\":{\"max_msg_fds\":16}}");
    return 0;
}

static int
teardown(void **state)
{
    struct fx *f = *state;

    if (f->fd >= 0) {
        close(f->fd);
    }
    vfu_destroy_ctx(f->ctx);
    rmdir(f->dir);
    free(f);
    return 0;
}

/* ---- the client thread ---- */

static void *
client_thread(void *arg)
{
    struct fx *f = arg;
    static char req[(8u << 20) + 64];
    static char rep[(8u << 20) + 64];

    while (!__atomic_load_n(&f->client_stop, __ATOMIC_ACQUIRE)) {
        struct pollfd pf = { .fd = f->fd, .events = POLLIN };
        struct hdr h;

        if (poll(&pf, 1, 20) != 1) {
            continue;
        }
        if (xrecv(f->fd, &h, req, sizeof(req)) < 0) {
            break;
        }
        if (h.flags & VFIO_USER_F_TYPE_REPLY) {
            __atomic_store_n(&f->reply_err[h.id % 256], (int)h.err,
                             __ATOMIC_RELEASE);
            continue;
        }
        uint64_t addr, count;
        memcpy(&addr, req, 8);
        memcpy(&count, req + 8, 8);
        memcpy(rep, req, 16);
        if (h.cmd == VFIO_USER_DMA_READ) {
            /* The spec's layout: header, then count bytes of data. */
            assert_true(count <= sizeof(rep) - 16);
            memset(rep + 16, PATTERN, count);
            if (f->reply_delay_us != 0) {
                usleep(f->reply_delay_us);
            }
            __atomic_add_fetch(&f->dma_reads, 1, __ATOMIC_RELAXED);
            harness_raw_send(f->fd, h.id, h.cmd, VFIO_USER_F_TYPE_REPLY, rep, 16 + count,
                  NULL, 0);
        } else {
            harness_raw_send(f->fd, h.id, h.cmd, VFIO_USER_F_TYPE_REPLY, rep, 16, NULL, 0);
        }
    }
    return NULL;
}

static void
serve_start(struct fx *f)
{
    for (int i = 0; i < 256; i++) {
        f->reply_err[i] = -1;
    }
    f->client_stop = 0;
    assert_int_equal(pthread_create(&f->client, NULL, client_thread, f), 0);
}

static void
serve_stop(struct fx *f)
{
    __atomic_store_n(&f->client_stop, 1, __ATOMIC_RELEASE);
    pthread_join(f->client, NULL);
}

/* Send a command with the client thread reading replies, the loop run
 * here if run (else by a thread of its own): its errno. */
static int
command_replied(struct fx *f, bool run, uint16_t cmd, const void *payload,
                size_t len, const int *fds, int nfds)
{
    uint16_t id = f->next_id++;
    int err;

    harness_raw_send(f->fd, id, cmd, VFIO_USER_F_TYPE_COMMAND, payload, len, fds, nfds);
    if (run) {
        assert_true(vfu_run_ctx(f->ctx) >= 0);
    }
    for (int i = 0; i < 5000; i++) {
        err = __atomic_load_n(&f->reply_err[id % 256], __ATOMIC_ACQUIRE);
        if (err >= 0) {
            return err;
        }
        usleep(1000);
    }
    fail_msg("no reply to command %u", cmd);
    return -1;
}

static int
command_served(struct fx *f, uint16_t cmd, const void *payload, size_t len,
               const int *fds, int nfds)
{
    return command_replied(f, true, cmd, payload, len, fds, nfds);
}

static double
now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* ---- 5: files that shrink, files that are huge ---- */

/* VmSize of this process, in KiB. */
static uint64_t
vm_size_kib(void)
{
    FILE *fp = fopen("/proc/self/status", "r");
    char line[256];
    uint64_t kib = 0;

    assert_non_null(fp);
    while (fgets(line, sizeof(line), fp) != NULL) {
        if (sscanf(line, "VmSize: %lu kB", &kib) == 1) {
            break;
        }
    }
    fclose(fp);
    return kib;
}

/*
 * A memfd not sealed against shrinking is not mapped: the client truncates
 * it after DMA_MAP, and a device read of the map (by message now) must not
 * kill the server with SIGBUS. Run in a child, so that a SIGBUS shows as a
 * failure here rather than as the death of the test.
 */
static void
test_truncated_memfd_no_sigbus(void **state)
{
    struct fx *f = *state;
    int mfd = memfd_create("hdma-unsealed", MFD_CLOEXEC);
    pid_t pid;
    int status;

    assert_true(mfd >= 0);
    assert_int_equal(ftruncate(mfd, MAP_SIZE), 0);
    memset(&f->last_reg, 0, sizeof(f->last_reg));
    assert_int_equal(dma_map_at(f, IOVA, MAP_SIZE, mfd, 0), 0);
    /* Told to the device as a map without a vaddr: by message. */
    assert_null(f->last_reg.vaddr);
    assert_int_equal(ftruncate(mfd, 0), 0);
    assert_int_equal(vfu_addr_to_sgl(f->ctx, (vfu_dma_addr_t)(uintptr_t)IOVA,
                                     64, (dma_sg_t *)f->sg, 1,
                                     PROT_READ | PROT_WRITE), 1);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        char data[64];
        int rc;

        struct iovec iov;

        serve_start(f);
        /* The fastest way a device has: straight from memory if mapped. */
        rc = vfu_sgl_read(f->ctx, (dma_sg_t *)f->sg, 1, data,
                          VFU_SGL_DIRECT_ACCESS);
        /* A device that takes the pointer itself gets none. */
        if (vfu_sgl_get(f->ctx, (dma_sg_t *)f->sg, &iov, 1, 0) == 0) {
            data[0] = *(volatile char *)iov.iov_base;
            rc = -1;
        }
        serve_stop(f);
        _exit(rc == 0 && data[0] == PATTERN && data[63] == PATTERN ? 0 : 1);
    }
    assert_int_equal(waitpid(pid, &status, 0), pid);
    if (WIFSIGNALED(status)) {
        fail_msg("the device's access killed the server: signal %d",
                 WTERMSIG(status));
    }
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    close(mfd);
}

/* What the context logged last, for the tests that look. */
static char last_log[512];

static void
capture_log(vfu_ctx_t *ctx, int level, const char *msg)
{
    (void)ctx;
    (void)level;
    snprintf(last_log, sizeof(last_log), "%s", msg);
}

/* A plain file of MAP_SIZE bytes of PATTERN in f's directory, unlinked. */
static int
plain_file(struct fx *f)
{
    char path[128], page[PG];
    int fd;

    snprintf(path, sizeof(path), "%s/mem", f->dir);
    fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    assert_true(fd >= 0);
    unlink(path);
    memset(page, PATTERN, sizeof(page));
    for (unsigned off = 0; off < MAP_SIZE; off += PG) {
        assert_int_equal(pwrite(fd, page, PG, off), PG);
    }
    return fd;
}

/*
 * A plain file can't be sealed, and clients rely on its maps having a
 * vaddr (libvfio-user maps them): it is mapped, and when the client
 * truncates it the server's accesses read zeros instead of dying of
 * SIGBUS, and the log says what happened, once.
 */
static void
test_truncated_plain_file_no_sigbus(void **state)
{
    struct fx *f = *state;
    int fd = plain_file(f);
    pid_t pid;
    int status;

    memset(&f->last_reg, 0, sizeof(f->last_reg));
    assert_int_equal(dma_map_at(f, IOVA, MAP_SIZE, fd, 0), 0);
    assert_non_null(f->last_reg.vaddr);
    assert_int_equal(ftruncate(fd, PG), 0);     /* keeps the first page */
    assert_int_equal(vfu_addr_to_sgl(f->ctx,
                                     (vfu_dma_addr_t)(uintptr_t)(IOVA + PG),
                                     64, (dma_sg_t *)f->sg, 1,
                                     PROT_READ | PROT_WRITE), 1);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        char data[64], *first = f->last_reg.vaddr;
        struct iovec iov;
        int ok = 1;

        memset(data, 1, sizeof(data));
        vfu_setup_log(f->ctx, capture_log, LOG_ERR);
        ok &= vfu_sgl_read(f->ctx, (dma_sg_t *)f->sg, 1, data,
                           VFU_SGL_DIRECT_ACCESS) == 0;
        ok &= data[0] == 0 && data[63] == 0;
        ok &= vfu_sgl_write(f->ctx, (dma_sg_t *)f->sg, 1, data,
                            VFU_SGL_DIRECT_ACCESS) == 0;
        /* A device holding the pointer itself is covered too. */
        ok &= vfu_sgl_get(f->ctx, (dma_sg_t *)f->sg, &iov, 1, 0) == 0;
        ok &= ((volatile char *)iov.iov_base)[100] == 0;
        /* The page still in the file is the client's, as before. */
        ok &= first[0] == PATTERN;
        /* Reported once, by the loop. */
        ok &= vfu_run_ctx(f->ctx) >= 0 || errno == EAGAIN;
        ok &= strstr(last_log, "shrank a file") != NULL;
        last_log[0] = '\0';
        vfu_run_ctx(f->ctx);
        ok &= last_log[0] == '\0';
        _exit(ok ? 0 : 1);
    }
    assert_int_equal(waitpid(pid, &status, 0), pid);
    if (WIFSIGNALED(status)) {
        fail_msg("the access to the truncated file killed the server: "
                 "signal %d", WTERMSIG(status));
    }
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    /* Unmapped, the guard lets go: the client's file is its own again. */
    assert_int_equal(dma_unmap(f, IOVA, MAP_SIZE), 0);
    close(fd);
}

/*
 * The guard only covers DMA maps: a SIGBUS anywhere else in the process
 * still ends it, as it would without vfu.
 */
static void
test_sigbus_elsewhere_still_kills(void **state)
{
    struct fx *f = *state;
    int fd = plain_file(f);
    pid_t pid;
    int status;

    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int other;
        volatile char *p;

        /* Not cmocka's handler (it would catch the fault), the default;
         * the map after it puts the guard in front. */
        signal(SIGBUS, SIG_DFL);
        if (dma_map_at(f, IOVA, MAP_SIZE, fd, 0) != 0) {
            _exit(3);
        }
        other = open(f->dir, O_TMPFILE | O_RDWR, 0600);
        if (other < 0 || ftruncate(other, MAP_SIZE) < 0) {
            _exit(2);
        }
        p = mmap(NULL, MAP_SIZE, PROT_READ, MAP_SHARED, other, 0);

        if (p == MAP_FAILED || ftruncate(other, 0) < 0) {
            _exit(2);
        }
        (void)p[PG];
        _exit(0);
    }
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status));
    assert_int_equal(WTERMSIG(status), SIGBUS);
    close(fd);
}

/* A memfd sealed against shrinking is mapped, and cannot be shrunk. */
static void
test_sealed_memfd_mapped(void **state)
{
    struct fx *f = *state;
    int mfd = memfd_create("hdma-sealed", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    char data[16];

    assert_true(mfd >= 0);
    assert_int_equal(ftruncate(mfd, MAP_SIZE), 0);
    assert_int_equal(pwrite(mfd, "sealed", 6, 0x100), 6);
    assert_int_equal(fcntl(mfd, F_ADD_SEALS, F_SEAL_SHRINK), 0);
    assert_int_equal(dma_map_at(f, IOVA, MAP_SIZE, mfd, 0), 0);
    assert_non_null(f->last_reg.vaddr);
    assert_int_equal(ftruncate(mfd, 0), -1);
    assert_int_equal(errno, EPERM);
    assert_int_equal(vfu_addr_to_sgl(f->ctx,
                                     (vfu_dma_addr_t)(uintptr_t)(IOVA + 0x100),
                                     16, (dma_sg_t *)f->sg, 1, PROT_READ), 1);
    assert_int_equal(vfu_sgl_read(f->ctx, (dma_sg_t *)f->sg, 1, data,
                                  VFU_SGL_DIRECT_ACCESS), 0);
    assert_memory_equal(data, "sealed", 6);
    close(mfd);
}

/*
 * A 4 KiB map of a 64 TiB sparse memfd maps 4 KiB, not the whole file (64
 * TiB of address space: two such maps and the server has none left).
 */
static void
test_small_map_of_huge_file(void **state)
{
    struct fx *f = *state;
    int mfd = memfd_create("hdma-huge", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    const uint64_t huge = 64ull << 40;
    uint64_t before, after;

    assert_true(mfd >= 0);
    assert_int_equal(ftruncate(mfd, (off_t)huge), 0);
    assert_int_equal(fcntl(mfd, F_ADD_SEALS, F_SEAL_SHRINK), 0);
    assert_int_equal(pwrite(mfd, "far", 3, (off_t)(huge / 2)), 3);
    before = vm_size_kib();
    assert_int_equal(dma_map_at(f, IOVA, PG, mfd, huge / 2), 0);
    after = vm_size_kib();
    assert_non_null(f->last_reg.vaddr);
    assert_memory_equal(f->last_reg.vaddr, "far", 3);
    assert_int_equal(f->last_reg.mapping.iov_len, PG);
    /* 1 GiB of slack for whatever else the process mapped meanwhile. */
    assert_true(after < before + (1u << 20));
    /* A second map far away gets a small mapping of its own. */
    assert_int_equal(dma_map_at(f, IOVA + PG, PG, mfd, huge - PG), 0);
    assert_int_equal(f->last_reg.mapping.iov_len, PG);
    assert_true(vm_size_kib() < before + (1u << 20));
    close(mfd);
}


/* ---- 9: dirty logging of maps added after START ---- */

/* A memfd of size bytes sealed against shrinking: vfu maps it. */
static int
sealed_memfd(uint64_t size)
{
    int fd = memfd_create("hdma", MFD_CLOEXEC | MFD_ALLOW_SEALING);

    assert_true(fd >= 0);
    assert_int_equal(ftruncate(fd, (off_t)size), 0);
    assert_int_equal(fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK), 0);
    return fd;
}

/* DMA_LOGGING_START with no ranges: log all writes. */
static int
start_all(struct fx *f)
{
    struct {
        struct vfio_user_device_feature f;
        struct vfio_user_device_feature_dma_logging_control c;
    } __attribute__((packed)) m = {
        { sizeof(m), VFIO_DEVICE_FEATURE_DMA_LOGGING_START |
                     VFIO_DEVICE_FEATURE_SET },
        { PG, 0, 0 },
    };

    return command_fds(f, VFIO_USER_DEVICE_FEATURE, &m, sizeof(m), NULL, 0,
                       NULL, 0);
}

/* DMA_LOGGING_REPORT of [iova, iova + 64 pages): the first bitmap word. */
static int
report(struct fx *f, uint64_t iova, uint64_t *bits)
{
    struct {
        struct vfio_user_device_feature f;
        struct vfio_user_device_feature_dma_logging_report r;
    } __attribute__((packed)) m = {
        { sizeof(m) + 8, VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT |
                         VFIO_DEVICE_FEATURE_GET },
        { iova, 64 * PG, PG },
    };
    char rep[sizeof(m) + 8];
    int err = command_fds(f, VFIO_USER_DEVICE_FEATURE, &m, sizeof(m), NULL, 0,
                          rep, sizeof(rep));

    if (err == 0) {
        memcpy(bits, rep + sizeof(m), 8);
    }
    return err;
}

/* The device writes one byte at iova (marking its page dirty). */
static void
device_write(struct fx *f, uint64_t iova)
{
    char v = 1;

    assert_int_equal(vfu_addr_to_sgl(f->ctx, (vfu_dma_addr_t)(uintptr_t)iova,
                                     1, (dma_sg_t *)f->sg, 1,
                                     PROT_READ | PROT_WRITE), 1);
    assert_int_equal(vfu_sgl_write(f->ctx, (dma_sg_t *)f->sg, 1, &v,
                                   VFU_SGL_DIRECT_ACCESS), 0);
}

/*
 * START without ranges logs all writes: a map added afterwards (memory
 * hot-added during migration) is logged and reported like those present
 * at START. It used to be outside the log: writes lost, REPORT EINVAL.
 */
static void
test_logging_all_covers_later_maps(void **state)
{
    struct fx *f = *state;
    const uint64_t a = IOVA, b = IOVA + 0x1000000, c = 0;
    int fa = sealed_memfd(64 * PG), fb = sealed_memfd(64 * PG);
    int fc = sealed_memfd(64 * PG);
    uint64_t bits;

    assert_int_equal(dma_map_at(f, a, 64 * PG, fa, 0), 0);
    assert_int_equal(start_all(f), 0);
    device_write(f, a + 3 * PG);
    assert_int_equal(dma_map_at(f, b, 64 * PG, fb, 0), 0);
    device_write(f, b + 5 * PG);
    device_write(f, a + 4 * PG);
    assert_int_equal(report(f, b, &bits), 0);
    assert_int_equal(bits, 1ull << 5);
    /* What was marked before b came is still there. */
    assert_int_equal(report(f, a, &bits), 0);
    assert_int_equal(bits, (1ull << 3) | (1ull << 4));
    /* And one more, below the others. */
    assert_int_equal(dma_map_at(f, c, 64 * PG, fc, 0), 0);
    device_write(f, c + 63 * PG);
    assert_int_equal(report(f, c, &bits), 0);
    assert_int_equal(bits, 1ull << 63);
    close(fa);
    close(fb);
    close(fc);
}

/* START without ranges before any map: maps made later are logged. */
static void
test_logging_all_before_any_map(void **state)
{
    struct fx *f = *state;
    int fa = sealed_memfd(64 * PG);
    uint64_t bits;

    assert_int_equal(start_all(f), 0);
    assert_int_equal(dma_map_at(f, IOVA, 64 * PG, fa, 0), 0);
    device_write(f, IOVA + 7 * PG);
    assert_int_equal(report(f, IOVA, &bits), 0);
    assert_int_equal(bits, 1ull << 7);
    assert_int_equal(report(f, IOVA, &bits), 0);
    assert_int_equal(bits, 0);
    close(fa);
}


/* ---- 10: message DMA that stalled ---- */

/*
 * The client negotiates max_data_xfer_size 4 MiB; the server takes 1 MiB
 * + 32 bytes a message. A 4 MiB read by message must come in pieces whose
 * replies the server can receive: one 4 MiB reply used to be dropped, and
 * the read timed out after 10 s.
 */
static void *
loop_main(void *arg)
{
    struct fx *f = arg;

    while (vfu_run_ctx(f->ctx) >= 0) {
    }
    return NULL;
}

/*
 * The client negotiates max_data_xfer_size 4 MiB; the server takes 1 MiB
 * + 32 bytes a message. A device thread's 4 MiB read by message, while the
 * loop reads the socket (blocking, on its own thread, as servers run it),
 * must come in pieces whose replies the loop can receive: a 4 MiB reply
 * used to be dropped as oversized, and the read timed out after 10 s.
 */
static void
test_big_dma_read_fits_receive_limit(void **state)
{
    struct fx *f = *state;
    const uint64_t len = 4u << 20;
    const char *json = "\0\0\0\0{\"capabilities\":{\"max_msg_fds\":16,"
                       "\"max_data_xfer_size\":4194304}}";
    struct vfio_user_dma_map m = map_req(IOVA, len, 0);
    char *buf = calloc(1, len);
    pthread_t loop;
    double t0;
    int rc, err;

    assert_non_null(buf);
    serve_start(f);
    assert_int_equal(pthread_create(&loop, NULL, loop_main, f), 0);
    assert_int_equal(command_replied(f, false, VFIO_USER_VERSION, json,
                                     4 + strlen(json + 4) + 1, NULL, 0), 0);
    assert_int_equal(command_replied(f, false, VFIO_USER_DMA_MAP, &m,
                                     sizeof(m), NULL, 0), 0);
    assert_int_equal(vfu_addr_to_sgl(f->ctx, (vfu_dma_addr_t)(uintptr_t)IOVA,
                                     len, (dma_sg_t *)f->sg, 1,
                                     PROT_READ | PROT_WRITE), 1);
    t0 = now_s();
    rc = vfu_sgl_read(f->ctx, (dma_sg_t *)f->sg, 1, buf, 0);
    err = errno;
    serve_stop(f);
    close(f->fd);
    f->fd = -1;
    pthread_join(loop, NULL);
    if (rc != 0) {
        fail_msg("the read failed with %s after %.1f s", strerror(err),
                 now_s() - t0);
    }
    assert_true(now_s() - t0 < 5.0);
    for (uint64_t i = 0; i < len; i += 4096) {
        assert_int_equal((uint8_t)buf[i], PATTERN);
    }
    assert_int_equal((uint8_t)buf[len - 1], PATTERN);
    free(buf);
}

struct worker {
    struct fx *f;
    pthread_t t;
    int go;
    unsigned long reads, failures;
    int last_errno;
};

static struct worker *the_worker;

/*
 * A device thread that, when the device is asked to quiesce, flushes what
 * it has in flight: a few reads of client memory by message.
 */
static void *
worker_main(void *arg)
{
    struct worker *w = arg;
    uint64_t sg[8];
    char data[16];

    assert_int_equal(vfu_addr_to_sgl(w->f->ctx,
                                     (vfu_dma_addr_t)(uintptr_t)IOVA, 16,
                                     (dma_sg_t *)sg, 1, PROT_READ), 1);
    while (!__atomic_load_n(&w->go, __ATOMIC_ACQUIRE)) {
        usleep(1000);
    }
    for (int i = 0; i < 3; i++) {
        if (vfu_sgl_read(w->f->ctx, (dma_sg_t *)sg, 1, data, 0) < 0) {
            w->failures++;
            w->last_errno = errno;
        }
        w->reads++;
    }
    return NULL;
}

/* Quiesce: let the worker finish its DMA and wait for it. */
static void
join_worker(struct fx *f)
{
    (void)f;
    __atomic_store_n(&the_worker->go, 1, __ATOMIC_RELEASE);
    pthread_join(the_worker->t, NULL);
}

/*
 * A quiesce callback that waits for a device thread doing DMA by message:
 * the loop is in the callback, so it reads nothing; the thread must read
 * its own replies. It used to wait for the loop: 10 s, then ETIMEDOUT.
 */
static void
test_quiesce_waits_for_msg_dma_worker(void **state)
{
    struct fx *f = *state;
    struct worker w = { .f = f };
    struct vfio_user_dma_map m = map_req(IOVA + 0x100000, PG, 0);
    double t0, took;

    assert_int_equal(dma_map_at(f, IOVA, PG, -1, 0), 0);
    serve_start(f);
    the_worker = &w;
    assert_int_equal(pthread_create(&w.t, NULL, worker_main, &w), 0);
    f->on_quiesce = join_worker;
    t0 = now_s();
    assert_int_equal(command_served(f, VFIO_USER_DMA_MAP, &m, sizeof(m),
                                    NULL, 0), 0);
    took = now_s() - t0;
    f->on_quiesce = NULL;
    serve_stop(f);
    the_worker = NULL;
    if (w.failures != 0) {
        fail_msg("%lu of %lu reads failed, the last with %s (%.1f s)",
                 w.failures, w.reads, strerror(w.last_errno), took);
    }
    assert_int_equal(w.reads, 3);
    assert_true(took < 3.0);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_truncated_memfd_no_sigbus, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_sealed_memfd_mapped, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_truncated_plain_file_no_sigbus,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_sigbus_elsewhere_still_kills,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_small_map_of_huge_file, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_logging_all_covers_later_maps,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_logging_all_before_any_map,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_big_dma_read_fits_receive_limit,
                                        setup_blocking, teardown),
        cmocka_unit_test_setup_teardown(test_quiesce_waits_for_msg_dma_worker,
                                        setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
