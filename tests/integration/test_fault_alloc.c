/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 the vfu authors. */

/*
 * Allocation failure in the server: this executable defines malloc, calloc
 * and realloc, which the static library's calls resolve to (free is left
 * alone: the memory comes from the usual allocator). Armed on the
 * server's thread only, they fail the Nth allocation from then on; each
 * operation is repeated with N = 1, 2, ... until it runs without reaching
 * a failure, so that every allocation on its path has failed once. Each
 * time the client must get an error reply (or, for an allocation the
 * connection needs, lose the connection), never a crash, and the device
 * must then serve normally with no fd or memory left behind (LSan).
 */

#include <dlfcn.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"

/*
 * The hook's state. It has to be global: malloc has no context argument.
 * Thread-local, so that only the thread that armed it (the server) fails.
 */
static __thread long fail_countdown;    /* 0: disarmed */
static __thread bool fail_hit;

/*
 * The allocator underneath: the sanitizer runtime's when there is one (its
 * interceptors are exported under these names), else glibc's. Weak
 * references, so that no dlsym() runs inside an allocation.
 */
extern void *__interceptor_malloc(size_t) __attribute__((weak));
extern void *__interceptor_calloc(size_t, size_t) __attribute__((weak));
extern void *__interceptor_realloc(void *, size_t) __attribute__((weak));
extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);

/*
 * json-c does not survive allocation failure everywhere (it strlen()s a
 * key strdup() failed to copy), so allocations made for json-c, directly
 * or through a libc function such as strdup(), are not failed; those the
 * library makes itself are. The caller's module tells which.
 */
static bool
spared(void *caller)
{
    Dl_info info;

    return dladdr(caller, &info) != 0 && info.dli_fname != NULL &&
           (strstr(info.dli_fname, "libjson-c") != NULL ||
            strstr(info.dli_fname, "libc.so") != NULL);
}

/*
 * The hooks run before the sanitizer runtime is set up (its own start-up
 * allocates): they must not be instrumented.
 */
#define HOOK __attribute__((no_sanitize_address, no_sanitize_undefined))

static HOOK bool
should_fail(void *caller)
{
    if (fail_countdown > 0 && spared(caller)) {
        return false;
    }
    if (fail_countdown > 0 && --fail_countdown == 0) {
        fail_hit = true;
        return true;
    }
    return false;
}

void *malloc(size_t size);
void *calloc(size_t n, size_t size);
void *realloc(void *p, size_t size);

HOOK void *
malloc(size_t size)
{
    if (should_fail(__builtin_return_address(0))) {
        errno = ENOMEM;
        return NULL;
    }
    return __interceptor_malloc != NULL ? __interceptor_malloc(size)
                                        : __libc_malloc(size);
}

HOOK void *
calloc(size_t n, size_t size)
{
    if (should_fail(__builtin_return_address(0))) {
        errno = ENOMEM;
        return NULL;
    }
    return __interceptor_calloc != NULL ? __interceptor_calloc(n, size)
                                        : __libc_calloc(n, size);
}

HOOK void *
realloc(void *p, size_t size)
{
    if (should_fail(__builtin_return_address(0))) {
        errno = ENOMEM;
        return NULL;
    }
    return __interceptor_realloc != NULL ? __interceptor_realloc(p, size)
                                         : __libc_realloc(p, size);
}

/* ---- on the server thread ---- */

static void
arm(vfu_ctx_t *ctx, void *arg)
{
    fail_countdown = *(long *)arg;
    fail_hit = false;
}

static void
disarm(vfu_ctx_t *ctx, void *arg)
{
    *(bool *)arg = fail_hit;
    fail_countdown = 0;
    fail_hit = false;
}

/* ---- the test ---- */

struct afx {
    struct harness_dev dev;
    struct harness_server *srv;
    vfu_client_t *c;
    int memfd;
    void *mem;
};

typedef int (op_fn)(struct afx *f);

static vfu_client_t *
connect_plain(struct afx *f)
{
    vfu_client_t *c = vfu_client_connect(harness_server_path(f->srv));

    assert_non_null(c);
    return c;
}

static int
op_version(struct afx *f)
{
    vfu_client_t *c;

    /* One client at a time: make way for the new one. */
    vfu_client_close(f->c);
    f->c = NULL;
    c = connect_plain(f);
    int rc = vfu_client_negotiate(c, NULL, NULL);
    int err = errno;

    if (rc == 0) {
        uint32_t v;
        rc = vfu_client_region_read(c, 0, 0, &v, 4);
        err = errno;
    }
    vfu_client_close(c);
    errno = err;
    return rc;
}

static int
op_dma(struct afx *f)
{
    int rc = vfu_client_dma_map(f->c, 0x100000, 0x10000,
                                VFIO_USER_F_DMA_REGION_READ |
                                VFIO_USER_F_DMA_REGION_WRITE,
                                f->memfd, 0, f->mem);
    if (rc == 0) {
        rc = vfu_client_dma_unmap(f->c, 0x100000, 0x10000, 0);
    }
    return rc;
}

static int
op_logging(struct afx *f)
{
    struct vfio_user_device_feature_dma_logging_range r = {
        .iova = 0x100000, .length = 0x10000,
    };
    uint64_t bitmap[1];
    int rc = vfu_client_dma_map(f->c, 0x100000, 0x10000,
                                VFIO_USER_F_DMA_REGION_READ |
                                VFIO_USER_F_DMA_REGION_WRITE,
                                f->memfd, 0, f->mem);
    int err;

    if (rc < 0) {
        return rc;
    }
    rc = vfu_client_dma_logging_start(f->c, 4096, &r, 1);
    if (rc == 0) {
        rc = vfu_client_dma_logging_report(f->c, 0x100000, 0x10000, 4096,
                                           bitmap, sizeof(bitmap));
        err = errno;
        vfu_client_dma_logging_stop(f->c);
        errno = err;
    }
    err = errno;
    vfu_client_dma_unmap(f->c, 0, 0, VFIO_DMA_UNMAP_FLAG_ALL);
    errno = err;
    return rc;
}

static int
op_irqs(struct afx *f)
{
    int efd = harness_eventfd();
    int rc = vfu_client_set_irqs(f->c, VFIO_IRQ_SET_DATA_EVENTFD |
                                 VFIO_IRQ_SET_ACTION_TRIGGER,
                                 VFU_DEV_MSIX_IRQ, 0, 1, &efd, 1, NULL, 0);
    int err = errno;

    vfu_client_set_irqs(f->c, VFIO_IRQ_SET_DATA_NONE |
                        VFIO_IRQ_SET_ACTION_TRIGGER, VFU_DEV_MSIX_IRQ, 0, 0,
                        NULL, 0, NULL, 0);
    close(efd);
    errno = err;
    return rc;
}

static int
op_region_info(struct afx *f)
{
    struct vfu_client_region_info ri;
    int rc = vfu_client_get_region_info(f->c, VFU_PCI_DEV_BAR1_REGION_IDX, &ri);

    if (rc == 0) {
        vfu_client_region_info_free(&ri);
    }
    return rc;
}

static int
op_big_read(struct afx *f)
{
    static char buf[512 << 10];

    return vfu_client_region_read(f->c, VFU_PCI_DEV_BAR2_REGION_IDX, 0, buf,
                                  sizeof(buf));
}

static void
check_device(struct afx *f)
{
    uint32_t v = 0xdeadbeef, back = 0;

    if (f->c == NULL) {
        f->c = harness_connect(f->srv);
    }
    if (vfu_client_region_write(f->c, 0, 16, &v, 4) < 0) {
        /* The failure cost the connection: the next client is served. */
        vfu_client_close(f->c);
        f->c = harness_connect(f->srv);
        assert_int_equal(vfu_client_region_write(f->c, 0, 16, &v, 4), 0);
    }
    assert_int_equal(vfu_client_region_read(f->c, 0, 16, &back, 4), 0);
    assert_int_equal(back, v);
}

static void
run_op(struct afx *f, op_fn *op, const char *name)
{
    int base = harness_fd_count(0);
    long n;

    for (n = 1; n < 500; n++) {
        bool hit = false;
        int rc, err;

        assert_int_equal(harness_server_exec(f->srv, arm, &n), 0);
        errno = 0;
        rc = op(f);
        err = errno;
        assert_int_equal(harness_server_exec(f->srv, disarm, &hit), 0);
        if (!hit) {
            check_device(f);
            assert_int_equal(rc, 0);    /* nothing failed: it must work */
            break;
        }
        if (rc < 0) {
            /* An error reply says why; a lost connection is the other
             * acceptable outcome. Never EIO from a crash-like state. */
            assert_true(err == ENOMEM || err == ENOTCONN || err == EPIPE ||
                        err == ECONNRESET || err == EINVAL || err == EIO);
        }
        check_device(f);
    }
    assert_true(n < 500);
    print_message("%s: %ld allocation points failed\n", name, n - 1);
    assert_int_equal(harness_fd_count_settle(0, base, 2000), base);
}

static int
setup(void **state)
{
    struct afx *f = calloc(1, sizeof(*f));

    if (f == NULL || harness_dev_init(&f->dev) < 0) {
        return -1;
    }
    f->srv = harness_server_start(harness_dev_setup, &f->dev);
    if (f->srv == NULL) {
        return -1;
    }
    f->c = harness_connect(f->srv);
    f->memfd = harness_memfd(0x10000);
    f->mem = mmap(NULL, 0x10000, PROT_READ | PROT_WRITE, MAP_SHARED,
                  f->memfd, 0);
    if (f->mem == MAP_FAILED) {
        return -1;
    }
    *state = f;
    return 0;
}

static int
teardown(void **state)
{
    struct afx *f = *state;
    int rc;

    vfu_client_close(f->c);
    rc = harness_server_stop(f->srv);
    munmap(f->mem, 0x10000);
    close(f->memfd);
    harness_dev_fini(&f->dev);
    free(f);
    return rc;
}

static void test_version(void **s) { run_op(*s, op_version, "VERSION"); }
static void test_dma(void **s) { run_op(*s, op_dma, "DMA map/unmap"); }
static void test_logging(void **s) { run_op(*s, op_logging, "DMA logging"); }
static void test_irqs(void **s) { run_op(*s, op_irqs, "SET_IRQS"); }
static void test_region_info(void **s) { run_op(*s, op_region_info, "REGION_INFO"); }
static void test_big_read(void **s) { run_op(*s, op_big_read, "REGION_READ"); }

int
main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_version), T(test_dma), T(test_logging), T(test_irqs),
        T(test_region_info), T(test_big_read),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
