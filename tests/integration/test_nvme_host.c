/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 the vfu authors. */

/*
 * devices/nvme.lua, run by vfu-lua as a child process with its memory
 * namespace, driven by the tests' NVMe host driver (tests/nvme_host.c)
 * as Linux's nvme driver would drive it: bring-up and Identify; random
 * data written and read back at queue depth 1 and 32 through PRP1 only,
 * PRP2 as a page and PRP lists (from buffers that start inside a page,
 * and lists chained to a second list page); Flush, Write Zeroes, and
 * commands that must fail (bad fields, bad addresses); the admin set
 * (features, logs, refused queue creations, an AER); a CQ smaller than
 * its SQ filling up; INTx instead of MSI-X; a controller reset through
 * CC.EN with the data still there after it; a second client (the first
 * one gone) that finds the data too; a normal shutdown. Any byte read
 * back wrong fails the test.
 *
 * Exits 77 (ctest SKIP_RETURN_CODE) when vfu-lua or the script is missing.
 */

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"
#include "nvme_host.h"

#ifndef VFU_LUA
#define VFU_LUA ""
#endif
#ifndef NVME_SCRIPT
#define NVME_SCRIPT ""
#endif


#define HOST_MEM (24u << 20)
#define MAX_XFER (4u << 20)
#define TIMEOUT_MS 10000

static struct {
    char dir[64], sock[96], log[96];
    pid_t pid;
    struct nvme_host *h;
    struct nvme_queue *q;
    uint64_t rng;
    /* What the namespace must hold: the blocks this test wrote. */
    uint8_t *shadow;
    size_t shadow_size;     /* the first bytes of the namespace covered */
} t;

static uint64_t
rnd(void)
{
    t.rng ^= t.rng >> 12;
    t.rng ^= t.rng << 25;
    t.rng ^= t.rng >> 27;
    return t.rng * 2685821657736338717ull;
}

static void
fill_random(uint8_t *p, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        p[i] = (uint8_t)(rnd() >> 56);
    }
}

/* Fails the test at the first byte that differs. */
static void
assert_same(const uint8_t *got, const uint8_t *want, size_t len, const char *what)
{
    for (size_t i = 0; i < len; i++) {
        if (got[i] != want[i]) {
            fail_msg("%s: byte %zu of %zu is 0x%02x, wrote 0x%02x", what, i, len,
                     got[i], want[i]);
        }
    }
}

static void
assert_alive(void)
{
    int st;

    if (waitpid(t.pid, &st, WNOHANG) == t.pid) {
        t.pid = -1;
        nvme_device_print_log(t.log);
        fail_msg("the device died (%s %d)", WIFSIGNALED(st) ? "signal" : "exit",
                 WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st));
    }
}

/* ---- the device process ---- */

static int
group_setup(void **state)
{
    char *argv[] = { VFU_LUA, (char *)nvme_device_script(NVME_SCRIPT), t.sock, NULL };

    snprintf(t.dir, sizeof(t.dir), "/tmp/vfu-nvme-XXXXXX");
    if (mkdtemp(t.dir) == NULL) {
        return -1;
    }
    snprintf(t.sock, sizeof(t.sock), "%s/nvme.sock", t.dir);
    snprintf(t.log, sizeof(t.log), "%s/nvme.log", t.dir);
    t.pid = nvme_device_spawn(argv, t.sock, t.log, false);
    if (t.pid < 0) {
        nvme_device_print_log(t.log);
        return -1;
    }
    t.rng = 0x2545f4914f6cdd1dull ^ (uint64_t)getpid();
    return 0;
}

static int
group_teardown(void **state)
{
    nvme_host_close(t.h);
    if (t.pid > 0) {
        int st = nvme_device_stop(t.pid);

        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
            nvme_device_print_log(t.log);
            fprintf(stderr, "the device did not stop cleanly (status 0x%x)\n", st);
            return -1;
        }
    }
    free(t.shadow);
    unlink(t.sock);
    unlink(t.log);
    rmdir(t.dir);
    return 0;
}

/*
 * A host with the controller enabled and I/O queue pair 1 of 64 entries;
 * @flags as nvme_host_open()'s.
 */
static void
host_up_flags(unsigned flags)
{
    t.h = nvme_host_open(t.sock, HOST_MEM, MAX_XFER, flags);
    if (t.h == NULL) {
        assert_alive();
        fail_msg("connecting: %s", strerror(errno));
    }
    t.h->timeout_ms = TIMEOUT_MS;
    if (nvme_host_enable(t.h, 32) < 0) {
        nvme_device_print_log(t.log);
        fail_msg("enable: %s", strerror(errno));
    }
    t.q = nvme_host_create_ioq(t.h, 1, 64);
    if (t.q == NULL) {
        nvme_device_print_log(t.log);
        fail_msg("create I/O queues: %s", strerror(errno));
    }
}

/* The largest transfer to submit: MDTS, or what the host has room for. */
static size_t
max_io(void)
{
    return t.h->mdts_bytes != 0 && t.h->mdts_bytes < MAX_XFER ? t.h->mdts_bytes
                                                                : MAX_XFER;
}

/* A test after one that left no host fails rather than crashes. */
static void
need_host(void)
{
    if (t.h == NULL || t.q == NULL || t.shadow == NULL) {
        fail_msg("no controller to test (an earlier test failed)");
    }
}

static void
host_up(void)
{
    host_up_flags(0);
}

/* ---- I/O helpers ---- */

/* One command, rung and reaped; returns its status field. */
static uint16_t
io_one(struct nvme_sqe *sqe)
{
    struct nvme_cqe cqe;

    assert_int_equal(nvme_host_push(t.h, t.q, sqe), 0);
    assert_int_equal(nvme_host_ring(t.h, t.q), 0);
    if (nvme_host_reap(t.h, t.q, &cqe, 1, TIMEOUT_MS) != 1) {
        assert_alive();
        fail_msg("no completion: %s", strerror(errno));
    }
    assert_int_equal(cqe.cid, sqe->cid);
    assert_int_equal(cqe.sq_id, t.q->qid);
    return NVME_CQE_STATUS(&cqe);
}

static void
rw_one(uint8_t op, uint64_t slba, uint32_t nlb, uint64_t iova)
{
    uint16_t st;
    struct nvme_cqe cqe;

    assert_int_equal(nvme_host_rw(t.h, t.q, op, 7, slba, nlb, iova), 0);
    assert_int_equal(nvme_host_ring(t.h, t.q), 0);
    if (nvme_host_reap(t.h, t.q, &cqe, 1, TIMEOUT_MS) != 1) {
        assert_alive();
        fail_msg("no completion: %s", strerror(errno));
    }
    st = NVME_CQE_STATUS(&cqe);
    if (st != 0) {
        fail_msg("%s of %u blocks at %llu: status 0x%x", op == NVME_CMD_READ ?
                 "read" : "write", nlb, (unsigned long long)slba, st);
    }
}

/* Record a write in the shadow copy of the namespace. */
static void
shadow_put(uint64_t slba, const uint8_t *data, size_t len)
{
    size_t off = (size_t)slba * t.h->lba_size;

    assert_true(off + len <= t.shadow_size);
    memcpy(t.shadow + off, data, len);
}

/* Read the whole shadowed part back and compare (QD1, 1 MiB at a time). */
static void
check_shadow(const char *when)
{
    uint64_t iova;
    const size_t chunk = max_io() < (1u << 20) ? max_io() : 1u << 20;
    uint8_t *buf = nvme_host_alloc(t.h, chunk, &iova);
    char what[96];

    assert_non_null(buf);
    for (size_t off = 0; off < t.shadow_size; off += chunk) {
        size_t len = t.shadow_size - off < chunk ? t.shadow_size - off : chunk;

        memset(buf, 0xee, len);
        rw_one(NVME_CMD_READ, off / t.h->lba_size, (uint32_t)(len / t.h->lba_size),
               iova);
        snprintf(what, sizeof(what), "%s, namespace bytes from %zu", when, off);
        assert_same(buf, t.shadow + off, len, what);
    }
}

/* ---- the tests ---- */

static void
test_identify(void **state)
{
    uint32_t vs;

    host_up();
    assert_int_equal(nvme_host_reg_read32(t.h, NVME_REG_VS, &vs), 0);
    assert_int_equal(vs >> 16, 1);      /* NVMe 1.x */
    assert_true(t.h->mn[0] != '\0');
    assert_true(t.h->nn >= 1);
    assert_true(t.h->lba_size == 512 || t.h->lba_size == 4096);
    /* The default memory namespace: 64 MiB. */
    assert_int_equal(t.h->nsze * t.h->lba_size, 64u << 20);
    assert_true(NVME_CAP_MQES(t.h->cap) + 1 >= 64);
    t.shadow_size = 12u << 20;
    t.shadow = calloc(1, t.shadow_size);
    assert_non_null(t.shadow);
    /* What a fresh memory namespace holds: zeros. */
    check_shadow("fresh namespace");
}

/*
 * Buffers of every PRP shape: one page, two pages (PRP2 a page), many
 * pages (a list), starting at a page boundary or 4-byte aligned inside
 * one (so that the list has one entry more).
 */
static const struct { size_t len, off; } shapes[] = {
    { 512, 0 }, { 4096, 0 }, { 4096, 1024 }, { 8192, 0 }, { 8192, 516 },
    { 12288, 0 }, { 65536, 0 }, { 65536, 2048 }, { 131072, 4092 },
    { 1u << 20, 512 },
};

static void
test_qd1(void **state)
{
    need_host();
    uint64_t wiova, riova, slba = 0;
    uint8_t *w = nvme_host_alloc(t.h, (1u << 20) + 8192, &wiova);
    uint8_t *r = nvme_host_alloc(t.h, (1u << 20) + 8192, &riova);

    assert_non_null(w);
    assert_non_null(r);
    for (size_t i = 0; i < sizeof(shapes) / sizeof(shapes[0]); i++) {
        size_t len = shapes[i].len, off = shapes[i].off;
        uint32_t nlb = (uint32_t)(len / t.h->lba_size);
        char what[64];

        if (nlb == 0 || len > max_io()) {
            continue;   /* 512 bytes on a 4 KiB-block namespace; above MDTS */
        }
        len = (size_t)nlb * t.h->lba_size;
        fill_random(w + off, len);
        rw_one(NVME_CMD_WRITE, slba, nlb, wiova + off);
        shadow_put(slba, w + off, len);
        memset(r, 0xee, len + off + 8);
        rw_one(NVME_CMD_READ, slba, nlb, riova + off);
        snprintf(what, sizeof(what), "QD1 %zu bytes at page offset %zu", len, off);
        assert_same(r + off, w + off, len, what);
        /* Nothing written around the buffer. */
        for (size_t k = 0; k < off; k++) {
            assert_int_equal(r[k], 0xee);
        }
        for (size_t k = 0; k < 8; k++) {
            assert_int_equal(r[off + len + k], 0xee);
        }
        slba += nlb;
    }
    assert_true(slba * t.h->lba_size <= (4u << 20));
}

/*
 * 32 writes in flight at once, each 16 KiB at a random place of the
 * second 4 MiB (slots that do not overlap) from a buffer starting inside
 * a page; then 32 reads of them in flight, compared.
 */
static void
test_qd32(void **state)
{
    need_host();
    enum { QD = 32, LEN = 16384 };
    const size_t base = 4u << 20, slots = (4u << 20) / LEN;
    uint8_t *w[QD], *r[QD];
    uint64_t wiova[QD], riova[QD], slot[QD];
    struct nvme_cqe cqe[QD];
    uint32_t nlb = LEN / t.h->lba_size;
    bool used[256] = { false };
    int done;

    assert_true(slots <= 256);
    for (int i = 0; i < QD; i++) {
        size_t off = (size_t)(i % 8) * 4 * 129 % 4096;    /* 4-byte aligned */

        w[i] = nvme_host_alloc(t.h, LEN + 4096, &wiova[i]);
        r[i] = nvme_host_alloc(t.h, LEN + 4096, &riova[i]);
        assert_non_null(w[i]);
        assert_non_null(r[i]);
        w[i] += off;
        wiova[i] += off;
        r[i] += off;
        riova[i] += off;
        do {
            slot[i] = rnd() % slots;
        } while (used[slot[i]]);
        used[slot[i]] = true;
        fill_random(w[i], LEN);
    }
    for (int pass = 0; pass < 2; pass++) {
        uint8_t op = pass == 0 ? NVME_CMD_WRITE : NVME_CMD_READ;

        for (int i = 0; i < QD; i++) {
            uint64_t slba = (base + slot[i] * LEN) / t.h->lba_size;

            assert_int_equal(nvme_host_rw(t.h, t.q, op, (uint16_t)i, slba, nlb,
                                          pass == 0 ? wiova[i] : riova[i]), 0);
        }
        /* All 32 with one doorbell. */
        assert_int_equal(nvme_host_ring(t.h, t.q), 0);
        for (done = 0; done < QD;) {
            int n = nvme_host_reap(t.h, t.q, cqe, QD, TIMEOUT_MS);

            if (n < 0) {
                assert_alive();
                fail_msg("%d of %d completions: %s", done, QD, strerror(errno));
            }
            for (int k = 0; k < n; k++) {
                assert_true(cqe[k].cid < QD);
                assert_int_equal(NVME_CQE_STATUS(&cqe[k]), 0);
            }
            done += n;
        }
    }
    for (int i = 0; i < QD; i++) {
        char what[64];

        snprintf(what, sizeof(what), "QD32 command %d", i);
        assert_same(r[i], w[i], LEN, what);
        shadow_put((base + slot[i] * LEN) / t.h->lba_size, w[i], LEN);
    }
}

/*
 * PRP lists that cross a page: a 64 KiB transfer whose list starts six
 * entries before the end of its page (five entries, then the pointer to
 * the next list page, then the other ten), as a list taken from a small
 * pool can; and, where MDTS allows, a transfer of more than 512 pages.
 */
static uint16_t
io_chained(uint8_t op, uint64_t slba, uint64_t data_iova, size_t len,
           uint64_t *list, uint64_t list_iova)
{
    const int before_end = 6;
    uint64_t *p = list + 512 - before_end;
    size_t pages = len / 4096;
    struct nvme_sqe sqe = {
        .opcode = op, .cid = 20, .nsid = 1,
        .prp1 = data_iova, .prp2 = list_iova + (512 - before_end) * 8,
        .cdw10 = (uint32_t)slba, .cdw11 = (uint32_t)(slba >> 32),
        .cdw12 = (uint32_t)(len / t.h->lba_size - 1),
    };

    for (size_t i = 1; i < pages; i++) {
        if (p == list + 511) {
            *p = list_iova + 4096;      /* the chain */
            p = list + 512;
        }
        *p++ = data_iova + i * 4096;
    }
    return io_one(&sqe);
}

static void
test_chained_prp_list(void **state)
{
    const size_t len = 65536, big = (2u << 20) + 8192;
    const uint64_t slba = (6u << 20) / t.h->lba_size;
    uint64_t wiova, riova, liova;
    uint8_t *w, *r;
    uint64_t *list;

    need_host();
    w = nvme_host_alloc(t.h, big + 4096, &wiova);
    r = nvme_host_alloc(t.h, big + 4096, &riova);
    list = nvme_host_alloc(t.h, 2 * 4096, &liova);
    assert_non_null(w);
    assert_non_null(r);
    assert_non_null(list);
    fill_random(w, len);
    assert_int_equal(io_chained(NVME_CMD_WRITE, slba, wiova, len, list, liova), 0);
    shadow_put(slba, w, len);
    rw_one(NVME_CMD_READ, slba, (uint32_t)(len / t.h->lba_size), riova);
    assert_same(r, w, len, "written through a list chained mid-transfer");
    memset(r, 0xee, len);
    assert_int_equal(io_chained(NVME_CMD_READ, slba, riova, len, list, liova), 0);
    assert_same(r, w, len, "read through a list chained mid-transfer");

    if (t.h->mdts_bytes != 0 && t.h->mdts_bytes < big + 4096) {
        print_message("MDTS %u bytes: no transfer of more than 512 pages\n",
                      t.h->mdts_bytes);
        return;
    }
    fill_random(w + 8, big);
    rw_one(NVME_CMD_WRITE, slba, (uint32_t)(big / t.h->lba_size), wiova + 8);
    shadow_put(slba, w + 8, big);
    rw_one(NVME_CMD_READ, slba, (uint32_t)(big / t.h->lba_size), riova + 8);
    assert_same(r + 8, w + 8, big, "a transfer of 514 pages");
}

static void
test_flush_zeroes_errors(void **state)
{
    need_host();
    struct nvme_sqe sqe = { .opcode = NVME_CMD_FLUSH, .cid = 9, .nsid = 1 };
    uint64_t iova;
    uint8_t *buf = nvme_host_alloc(t.h, 8192, &iova);
    uint16_t st;

    assert_non_null(buf);
    assert_int_equal(io_one(&sqe), 0);
    if (t.h->oncs & (1u << 3)) {
        /* Write Zeroes over the first 8 KiB written by test_qd1. */
        sqe = (struct nvme_sqe){
            .opcode = NVME_CMD_WRITE_ZEROES, .cid = 10, .nsid = 1,
            .cdw12 = 8192 / t.h->lba_size - 1,
        };
        assert_int_equal(io_one(&sqe), 0);
        memset(t.shadow, 0, 8192);
    }
    /* Past the end of the namespace: LBA Out of Range (generic 0x80). */
    assert_int_equal(nvme_host_rw(t.h, t.q, NVME_CMD_READ, 11, t.h->nsze - 1, 2,
                                  iova), 0);
    assert_int_equal(nvme_host_ring(t.h, t.q), 0);
    {
        struct nvme_cqe cqe;

        assert_int_equal(nvme_host_reap(t.h, t.q, &cqe, 1, TIMEOUT_MS), 1);
        st = NVME_CQE_STATUS(&cqe);
        assert_int_equal(st & 0x7ff, 0x80);
    }
    /* An opcode nobody defined: Invalid Command Opcode (generic 0x01). */
    sqe = (struct nvme_sqe){ .opcode = 0x7e, .cid = 12, .nsid = 1 };
    assert_int_equal(io_one(&sqe) & 0x7ff, 0x01);
    /* A namespace that does not exist: Invalid Namespace or Format (0x0b). */
    sqe = (struct nvme_sqe){ .opcode = NVME_CMD_FLUSH, .cid = 13, .nsid = 99 };
    assert_int_equal(io_one(&sqe) & 0x7ff, 0x0b);
    /* An admin command with a bad CNS fails too, and the admin queue lives on. */
    sqe = (struct nvme_sqe){ .opcode = NVME_ADM_IDENTIFY, .prp1 = iova, .cdw10 = 0xfe };
    assert_int_equal(nvme_host_admin(t.h, &sqe, NULL), -1);
    assert_int_equal(errno, EIO);
    check_shadow("after the error cases");
}

/* An admin command's status field (SC and SCT); fails on no answer. */
static uint16_t
admin_status(struct nvme_sqe *sqe, struct nvme_cqe *cqe)
{
    struct nvme_cqe got = { 0 };

    if (nvme_host_admin(t.h, sqe, &got) < 0 && errno != EIO) {
        assert_alive();
        fail_msg("admin opcode 0x%02x: %s", sqe->opcode, strerror(errno));
    }
    if (cqe != NULL) {
        *cqe = got;
    }
    return NVME_CQE_STATUS(&got) & 0x7ff;
}

static void
drain(int efd)
{
    uint64_t v;

    while (read(efd, &v, sizeof(v)) == (ssize_t)sizeof(v)) {
    }
}

static bool
signalled(int efd, int timeout_ms)
{
    struct pollfd p = { .fd = efd, .events = POLLIN };

    return poll(&p, 1, timeout_ms) == 1;
}

/*
 * The rest of the admin set: features, a log page, queue creation refused
 * for each reason, a second I/O queue pair whose completions come on its
 * own vector, and an asynchronous event (an invalid doorbell) delivered to
 * an outstanding Asynchronous Event Request.
 */
static void
test_admin(void **state)
{
    struct nvme_sqe sqe;
    struct nvme_cqe cqe;
    struct nvme_queue *q2;
    uint64_t iova, w_iova;
    uint8_t *buf, *w;

    need_host();
    buf = nvme_host_alloc(t.h, 4096, &iova);
    w = nvme_host_alloc(t.h, 8192, &w_iova);
    assert_non_null(buf);
    assert_non_null(w);

    /* Number of Queues: what Set Features granted. */
    sqe = (struct nvme_sqe){ .opcode = NVME_ADM_GET_FEAT, .cdw10 = NVME_FEAT_NUM_QUEUES };
    assert_int_equal(admin_status(&sqe, &cqe), 0);
    assert_true((cqe.result & 0xffff) + 1 >= t.h->max_ioq);
    assert_true((cqe.result >> 16) + 1 >= t.h->max_ioq);

    /* SMART / health (log 2, 512 bytes): some data has been read by now. */
    sqe = (struct nvme_sqe){
        .opcode = NVME_ADM_GET_LOG, .nsid = 0xffffffff, .prp1 = iova,
        .cdw10 = 0x02 | (512 / 4 - 1) << 16,
    };
    memset(buf, 0xee, 4096);
    assert_int_equal(admin_status(&sqe, NULL), 0);
    assert_int_equal(buf[0], 0);                    /* no critical warning */
    assert_true(buf[32] != 0 || buf[33] != 0);      /* data units read */
    assert_int_equal(buf[512], 0xee);               /* 512 bytes, no more */

    /* Queue creation refused, each for its reason. */
    sqe = (struct nvme_sqe){ .opcode = NVME_ADM_CREATE_CQ, .prp1 = iova,
                             .cdw10 = 15u << 16 | 2, .cdw11 = 200u << 16 | 3 };
    assert_int_equal(admin_status(&sqe, NULL), 0x108);     /* invalid vector */
    sqe = (struct nvme_sqe){ .opcode = NVME_ADM_CREATE_CQ, .prp1 = iova,
                             .cdw10 = 4096u << 16 | 2, .cdw11 = 2u << 16 | 3 };
    assert_int_equal(admin_status(&sqe, NULL), 0x102);     /* above MQES */
    sqe = (struct nvme_sqe){ .opcode = NVME_ADM_CREATE_CQ, .prp1 = iova,
                             .cdw10 = 15u << 16 | 1, .cdw11 = 1u << 16 | 3 };
    assert_int_equal(admin_status(&sqe, NULL), 0x101);     /* CQ 1 exists */
    sqe = (struct nvme_sqe){ .opcode = NVME_ADM_CREATE_SQ, .prp1 = iova,
                             .cdw10 = 15u << 16 | 2, .cdw11 = 7u << 16 | 1 };
    assert_int_equal(admin_status(&sqe, NULL), 0x100);     /* no CQ 7 */
    sqe = (struct nvme_sqe){ .opcode = NVME_ADM_DELETE_CQ, .cdw10 = 1 };
    assert_int_equal(admin_status(&sqe, NULL), 0x10c);     /* SQ 1 uses it */
    sqe = (struct nvme_sqe){ .opcode = 0x7f };
    assert_int_equal(admin_status(&sqe, NULL), 0x01);      /* no such opcode */

    /* Queue pair 2: its completions signal vector 2, not vector 1. */
    assert_true(t.h->max_ioq >= 2 && t.h->nr_vectors >= 3);
    q2 = nvme_host_create_ioq(t.h, 2, 16);
    assert_non_null(q2);
    drain(t.h->efds[1]);
    drain(t.h->efds[2]);
    fill_random(w, 8192);
    assert_int_equal(nvme_host_rw(t.h, q2, NVME_CMD_WRITE, 3, 0, 8192 / t.h->lba_size,
                                  w_iova), 0);
    assert_int_equal(nvme_host_ring(t.h, q2), 0);
    assert_true(signalled(t.h->efds[2], TIMEOUT_MS));
    assert_false(signalled(t.h->efds[1], 0));
    assert_int_equal(nvme_host_reap(t.h, q2, &cqe, 1, TIMEOUT_MS), 1);
    assert_int_equal(cqe.cid, 3);
    assert_int_equal(cqe.sq_id, 2);
    assert_int_equal(NVME_CQE_STATUS(&cqe), 0);
    shadow_put(0, w, 8192);
    assert_int_equal(nvme_host_delete_ioq(t.h, 2), 0);

    /*
     * An Asynchronous Event Request waits; a write to the doorbell of a
     * queue that does not exist completes it: error status (type 0),
     * invalid doorbell register (info 0), Error Information log (1).
     */
    sqe = (struct nvme_sqe){ .opcode = NVME_ADM_AER, .cid = 0xfff0 };
    assert_int_equal(nvme_host_push(t.h, &t.h->admin, &sqe), 0);
    assert_int_equal(nvme_host_ring(t.h, &t.h->admin), 0);
    assert_int_equal(nvme_host_reap(t.h, &t.h->admin, &cqe, 1, 200), -1);
    assert_int_equal(errno, ETIMEDOUT);                    /* it waits */
    assert_int_equal(nvme_host_reg_write32(t.h, NVME_REG_DBS + 2 * 9 * t.h->dstrd, 1), 0);
    assert_int_equal(nvme_host_reap(t.h, &t.h->admin, &cqe, 1, TIMEOUT_MS), 1);
    assert_int_equal(cqe.cid, 0xfff0);
    assert_int_equal(NVME_CQE_STATUS(&cqe), 0);
    assert_int_equal(cqe.result & 0xffffff, 0x010000);
    /* Reading the log page clears the event; the queues still work. */
    sqe = (struct nvme_sqe){
        .opcode = NVME_ADM_GET_LOG, .nsid = 0xffffffff, .prp1 = iova,
        .cdw10 = 0x01 | (64 / 4 - 1) << 16,
    };
    assert_int_equal(admin_status(&sqe, NULL), 0);
    check_shadow("after the admin tests");
}

/*
 * Addresses a host gets wrong: a PRP1 that is not dword aligned, data and
 * PRP list entries outside any DMA map, a CQ placed in unmapped memory.
 * Each command fails with its status, and the controller goes on. Also
 * the Identify lists and an Abort of a command not in flight.
 */
static void
test_bad_addresses(void **state)
{
    const uint64_t nowhere = 0x1000;    /* below NVME_HOST_IOVA: unmapped */
    /* Past the shadowed part: a failed write may leave its blocks half
     * written (the spec lets it), so they are not compared after. */
    const uint32_t slba = (uint32_t)((32u << 20) / t.h->lba_size);
    uint64_t iova, liova;
    uint8_t *buf;
    uint64_t *list;
    struct nvme_sqe sqe;
    struct nvme_cqe cqe;

    need_host();
    buf = nvme_host_alloc(t.h, 4 * 4096, &iova);
    list = nvme_host_alloc(t.h, 4096, &liova);
    assert_non_null(buf);
    assert_non_null(list);

    sqe = (struct nvme_sqe){ .opcode = NVME_CMD_READ, .cid = 30, .nsid = 1,
                             .cdw10 = slba, .prp1 = iova + 2, .cdw12 = 0 };
    assert_int_equal(io_one(&sqe) & 0x7ff, 0x13);          /* PRP offset invalid */
    sqe = (struct nvme_sqe){ .opcode = NVME_CMD_READ, .cid = 31, .nsid = 1,
                             .cdw10 = slba, .prp1 = nowhere,
                             .cdw12 = 4096 / t.h->lba_size - 1 };
    assert_int_equal(io_one(&sqe) & 0x7ff, 0x04);          /* data transfer error */
    list[0] = iova + 4096;
    list[1] = nowhere;
    sqe = (struct nvme_sqe){ .opcode = NVME_CMD_WRITE, .cid = 32, .nsid = 1,
                             .cdw10 = slba, .prp1 = iova, .prp2 = liova,
                             .cdw12 = 3 * 4096 / t.h->lba_size - 1 };
    assert_int_equal(io_one(&sqe) & 0x7ff, 0x04);
    /* The list itself nowhere. */
    sqe = (struct nvme_sqe){ .opcode = NVME_CMD_READ, .cid = 33, .nsid = 1,
                             .cdw10 = slba, .prp1 = iova, .prp2 = nowhere,
                             .cdw12 = 3 * 4096 / t.h->lba_size - 1 };
    assert_int_equal(io_one(&sqe) & 0x7ff, 0x04);

    sqe = (struct nvme_sqe){ .opcode = NVME_ADM_CREATE_CQ, .prp1 = nowhere,
                             .cdw10 = 15u << 16 | 2, .cdw11 = 2u << 16 | 3 };
    assert_int_equal(admin_status(&sqe, NULL), 0x04);

    /* Identify: the active namespace list is {1}. */
    sqe = (struct nvme_sqe){ .opcode = NVME_ADM_IDENTIFY, .prp1 = iova,
                             .cdw10 = NVME_CNS_NS_LIST };
    memset(buf, 0xee, 4096);
    assert_int_equal(admin_status(&sqe, NULL), 0);
    assert_int_equal(buf[0] | buf[1] << 8 | buf[2] << 16 | (uint32_t)buf[3] << 24, 1);
    for (int i = 4; i < 4096; i++) {
        assert_int_equal(buf[i], 0);
    }
    /* Abort of a command id nothing uses: completes, "not aborted". */
    sqe = (struct nvme_sqe){ .opcode = NVME_ADM_ABORT, .cdw10 = 1 | 0x4242u << 16 };
    assert_int_equal(admin_status(&sqe, &cqe), 0);
    assert_int_equal(cqe.result & 1, 1);
    check_shadow("after the bad addresses");
}

/*
 * A CQ smaller than its SQ: ten writes rung at once onto a CQ of four
 * entries, which holds three; the controller stops there until the host
 * frees entries (CQ head doorbell), then goes on. Then the data is read.
 */
static void
test_cq_full(void **state)
{
    enum { N = 10, LEN = 4096 };
    const uint64_t off = 9u << 20;     /* where in the namespace */
    struct nvme_queue *q;
    struct nvme_cqe cqe[N];
    uint64_t iova;
    uint8_t *w;
    int got = 0, posted = 0;
    bool seen[N] = { false };

    need_host();
    w = nvme_host_alloc(t.h, N * LEN, &iova);
    assert_non_null(w);
    q = nvme_host_create_ioq_sized(t.h, 2, 16, 4);
    assert_non_null(q);
    fill_random(w, N * LEN);
    drain(t.h->efds[2]);
    for (int i = 0; i < N; i++) {
        assert_int_equal(nvme_host_rw(t.h, q, NVME_CMD_WRITE, (uint16_t)i,
                                      (off + (uint64_t)i * LEN) / t.h->lba_size,
                                      LEN / t.h->lba_size, iova + (uint64_t)i * LEN), 0);
    }
    assert_int_equal(nvme_host_ring(t.h, q), 0);
    assert_true(signalled(t.h->efds[2], TIMEOUT_MS));
    harness_sleep_ms(50);
    for (int i = 0; i < 4; i++) {
        posted += (__atomic_load_n(&q->cq[i].status, __ATOMIC_ACQUIRE) & 1) == 1;
    }
    assert_int_equal(posted, 3);            /* full: one entry stays free */
    while (got < N) {
        int n = nvme_host_reap(t.h, q, cqe, N, TIMEOUT_MS);

        if (n < 0) {
            assert_alive();
            fail_msg("%d of %d completions, then: %s", got, N, strerror(errno));
        }
        for (int k = 0; k < n; k++) {
            assert_true(cqe[k].cid < N && !seen[cqe[k].cid]);
            seen[cqe[k].cid] = true;
            assert_int_equal(NVME_CQE_STATUS(&cqe[k]), 0);
        }
        got += n;
    }
    assert_int_equal(nvme_host_delete_ioq(t.h, 2), 0);
    shadow_put(off / t.h->lba_size, w, N * LEN);
    check_shadow("after writes through a full CQ");
}

/*
 * INTx instead of MSI-X (a guest without MSI-X): completions raise the
 * line; INTMS holds it back and INTMC lets what is pending through; then
 * MSI-X again.
 */
static void
test_intx(void **state)
{
    uint64_t iova;
    uint8_t *buf;
    struct nvme_cqe cqe;

    need_host();
    buf = nvme_host_alloc(t.h, 8192, &iova);
    assert_non_null(buf);
    assert_int_equal(nvme_host_irq_mode(t.h, true), 0);
    drain(t.h->efds[0]);
    drain(t.h->efds[1]);
    rw_one(NVME_CMD_READ, 0, 8192 / t.h->lba_size, iova);
    assert_same(buf, t.shadow, 8192, "read with INTx");
    assert_false(signalled(t.h->efds[1], 0));               /* not on MSI-X */

    /* Masked: the completion is posted, the line stays quiet... */
    assert_int_equal(nvme_host_reg_write32(t.h, NVME_REG_INTMS, 1), 0);
    drain(t.h->efds[0]);
    assert_int_equal(nvme_host_rw(t.h, t.q, NVME_CMD_READ, 5, 0, 1, iova), 0);
    assert_int_equal(nvme_host_ring(t.h, t.q), 0);
    assert_false(signalled(t.h->efds[0], 200));
    /* ...until unmasked, with the entry still unconsumed. */
    assert_int_equal(nvme_host_reg_write32(t.h, NVME_REG_INTMC, 1), 0);
    assert_true(signalled(t.h->efds[0], TIMEOUT_MS));
    assert_int_equal(nvme_host_reap(t.h, t.q, &cqe, 1, TIMEOUT_MS), 1);
    assert_int_equal(cqe.cid, 5);
    assert_int_equal(NVME_CQE_STATUS(&cqe), 0);

    assert_int_equal(nvme_host_irq_mode(t.h, false), 0);
    drain(t.h->efds[0]);
    drain(t.h->efds[1]);
    assert_int_equal(nvme_host_rw(t.h, t.q, NVME_CMD_READ, 6, 0, 1, iova), 0);
    assert_int_equal(nvme_host_ring(t.h, t.q), 0);
    assert_true(signalled(t.h->efds[1], TIMEOUT_MS));       /* MSI-X again */
    assert_int_equal(nvme_host_reap(t.h, t.q, &cqe, 1, TIMEOUT_MS), 1);
    assert_int_equal(cqe.cid, 6);
}

/* CC.EN = 0 drops every queue; after a new bring-up the data is there. */
static void
test_controller_reset(void **state)
{
    need_host();
    uint32_t csts;

    assert_int_equal(nvme_host_disable(t.h), 0);
    assert_int_equal(nvme_host_reg_read32(t.h, NVME_REG_CSTS, &csts), 0);
    assert_int_equal(csts & NVME_CSTS_RDY, 0);
    assert_int_equal(nvme_host_enable(t.h, 32), 0);
    t.q = nvme_host_create_ioq(t.h, 1, 64);
    assert_non_null(t.q);
    check_shadow("after a controller reset");
}

/*
 * A client whose memory the device cannot map (no fd with the DMA map, as
 * QEMU's RAM that is not shared): queues, PRP lists and data all move by
 * DMA_READ/DMA_WRITE messages, which the host serves while it waits.
 */
static void
test_dma_by_messages(void **state)
{
    need_host();
    nvme_host_close(t.h);
    t.h = NULL;
    assert_alive();
    host_up_flags(NVME_HOST_NO_FD);
    check_shadow("by DMA messages");
    test_qd1(state);
    test_qd32(state);
    check_shadow("by DMA messages, after writing");
    assert_true(t.h->n.server_reqs > 1000);
    nvme_host_close(t.h);
    t.h = NULL;
    host_up();
}

/*
 * The same with a host slow to serve each DMA message (2 ms: a busy host):
 * 32 commands at one doorbell are ~100 messages, longer than a handler's
 * budget (100 ms), so the device must go on from a timer, not lose the
 * batch to the budget.
 */
static void
test_dma_by_slow_messages(void **state)
{
    need_host();
    nvme_host_close(t.h);
    t.h = NULL;
    assert_alive();
    host_up_flags(NVME_HOST_NO_FD);
    t.h->dma_delay_ms = 2;
    test_qd32(state);
    t.h->dma_delay_ms = 0;
    check_shadow("by slow DMA messages");
    nvme_host_close(t.h);
    t.h = NULL;
    host_up();
}

/* The client leaves without a word; the next one finds the data. */
static void
test_new_client(void **state)
{
    nvme_host_close(t.h);
    t.h = NULL;
    assert_alive();
    host_up();
    check_shadow("with a new client");
    /* And it can write too. */
    test_qd32(state);
    check_shadow("with a new client, after writing");
}

/* What a driver does at the end: delete the I/O queues, shut down. */
static void
test_shutdown(void **state)
{
    need_host();
    uint32_t csts;

    assert_int_equal(nvme_host_delete_ioq(t.h, 1), 0);
    assert_int_equal(nvme_host_shutdown(t.h), 0);
    assert_int_equal(nvme_host_reg_read32(t.h, NVME_REG_CSTS, &csts), 0);
    assert_int_equal(csts & NVME_CSTS_SHST_MASK, NVME_CSTS_SHST_DONE);
    /* A shut-down controller comes back after a reset. */
    assert_int_equal(nvme_host_enable(t.h, 32), 0);
    t.q = nvme_host_create_ioq(t.h, 1, 64);
    assert_non_null(t.q);
    check_shadow("after shutdown and a new bring-up");
    assert_alive();
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_identify),
        cmocka_unit_test(test_qd1),
        cmocka_unit_test(test_qd32),
        cmocka_unit_test(test_chained_prp_list),
        cmocka_unit_test(test_flush_zeroes_errors),
        cmocka_unit_test(test_admin),
        cmocka_unit_test(test_bad_addresses),
        cmocka_unit_test(test_cq_full),
        cmocka_unit_test(test_intx),
        cmocka_unit_test(test_controller_reset),
        cmocka_unit_test(test_dma_by_messages),
        cmocka_unit_test(test_dma_by_slow_messages),
        cmocka_unit_test(test_new_client),
        cmocka_unit_test(test_shutdown),
    };
    struct stat st;

    if (VFU_LUA[0] == '\0' || stat(VFU_LUA, &st) < 0 || stat(nvme_device_script(NVME_SCRIPT), &st) < 0) {
        printf("SKIP: test_nvme_host: no vfu-lua (%s) or no %s\n", VFU_LUA,
               nvme_device_script(NVME_SCRIPT));
        return 77;
    }
    signal(SIGPIPE, SIG_IGN);
    return cmocka_run_group_tests_name("nvme", tests, group_setup, group_teardown);
}
