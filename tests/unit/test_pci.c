/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 the vfu authors. */

/*
 * Config space header emulation: identification, command/status, BAR and
 * ROM sizing, interrupt pin/line, reset, access routing to the config
 * region callback, and bounds checking. Accesses go straight through
 * vfu_pci_config_access(), the function the region code calls.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "libvfio-user.h"
#include "private.h"

/* What the config region callback saw, reached through vfu_get_private(). */
struct cb_log {
    int calls;
    size_t last_count;
    loff_t last_offset;
    bool last_write;
    uint8_t last_data[16];
    ssize_t ret;            /* < 0: fail with errno err; else bytes */
    int err;
    bool use_ret;
};

struct fix {
    char dir[64];
    char path[96];
    vfu_ctx_t *ctx;
    struct cb_log log;
};

static int
setup(void **state)
{
    struct fix *f = calloc(1, sizeof(*f));

    assert_non_null(f);
    snprintf(f->dir, sizeof(f->dir), "/tmp/vfu-test-pci-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->path, sizeof(f->path), "%s/sock", f->dir);
    f->ctx = vfu_create_ctx(VFU_TRANS_SOCK, f->path,
                            LIBVFIO_USER_FLAG_ATTACH_NB, &f->log,
                            VFU_DEV_TYPE_PCI);
    assert_non_null(f->ctx);
    *state = f;
    return 0;
}

static int
teardown(void **state)
{
    struct fix *f = *state;

    vfu_destroy_ctx(f->ctx);
    unlink(f->path);
    rmdir(f->dir);
    free(f);
    return 0;
}

static ssize_t
cfg_cb(vfu_ctx_t *ctx, char *buf, size_t count, loff_t offset, bool is_write)
{
    struct cb_log *log = vfu_get_private(ctx);

    log->calls++;
    log->last_count = count;
    log->last_offset = offset;
    log->last_write = is_write;
    if (is_write) {
        memcpy(log->last_data, buf, count < 16 ? count : 16);
    } else {
        memset(buf, 0xa5, count);
    }
    if (log->use_ret) {
        errno = log->err;
        return log->ret;
    }
    return (ssize_t)count;
}

static uint32_t
rd(vfu_ctx_t *ctx, uint64_t off, size_t n)
{
    uint32_t v = 0;

    assert_int_equal(vfu_pci_config_access(ctx, (char *)&v, n, off, false),
                     (ssize_t)n);
    return v;
}

static void
wr(vfu_ctx_t *ctx, uint64_t off, uint32_t v, size_t n)
{
    assert_int_equal(vfu_pci_config_access(ctx, (char *)&v, n, off, true),
                     (ssize_t)n);
}

static void
test_init_errors_and_sizes(void **state)
{
    struct fix *f = *state;

    assert_null(vfu_pci_get_config_space(f->ctx));
    assert_int_equal(vfu_pci_init(f->ctx, (vfu_pci_type_t)9,
                                  PCI_HEADER_TYPE_NORMAL, 0), -1);
    assert_int_equal(errno, EINVAL);
    assert_int_equal(vfu_pci_init(f->ctx, VFU_PCI_TYPE_CONVENTIONAL,
                                  PCI_HEADER_TYPE_BRIDGE, 0), -1);
    assert_int_equal(errno, EINVAL);
    assert_int_equal(vfu_pci_init(NULL, VFU_PCI_TYPE_CONVENTIONAL,
                                  PCI_HEADER_TYPE_NORMAL, 0), -1);
    assert_int_equal(errno, EINVAL);
    assert_int_equal(vfu_pci_init(f->ctx, VFU_PCI_TYPE_PCI_X_1,
                                  PCI_HEADER_TYPE_NORMAL, 0), 0);
    assert_int_equal(vfu_pci_config_size(f->ctx), PCI_CFG_SPACE_SIZE);
    assert_int_equal(vfu_pci_init(f->ctx, VFU_PCI_TYPE_EXPRESS,
                                  PCI_HEADER_TYPE_NORMAL, 0), -1);
    assert_int_equal(errno, EEXIST);
    assert_non_null(vfu_pci_get_config_space(f->ctx));
}

/* A PCI device over a socket is all vfu_create_ctx() makes; the rest is
 * ENOTSUP, while a mistake of the caller's is EINVAL. */
static void
test_create_ctx_errors(void **state)
{
    struct fix *f = *state;
    char path[128];

    snprintf(path, sizeof(path), "%s/other", f->dir);
    errno = 0;
    assert_null(vfu_create_ctx(VFU_TRANS_MAX, path, 0, NULL,
                               VFU_DEV_TYPE_PCI));
    assert_int_equal(errno, ENOTSUP);
    errno = 0;
    assert_null(vfu_create_ctx(VFU_TRANS_SOCK, path, 0, NULL,
                               (vfu_dev_type_t)(VFU_DEV_TYPE_PCI + 4)));
    assert_int_equal(errno, ENOTSUP);
    errno = 0;
    assert_null(vfu_create_ctx(VFU_TRANS_SOCK, path, 999, NULL,
                               VFU_DEV_TYPE_PCI));
    assert_int_equal(errno, EINVAL);
    errno = 0;
    assert_null(vfu_create_ctx(VFU_TRANS_SOCK, NULL, 0, NULL,
                               VFU_DEV_TYPE_PCI));
    assert_int_equal(errno, EINVAL);
    /* nothing to run before the device is realized */
    errno = 0;
    assert_int_equal(vfu_run_ctx(f->ctx), -1);
    assert_int_equal(errno, EINVAL);
}

static void
test_sizes_by_type(void **state)
{
    static const struct { vfu_pci_type_t t; size_t size; } cases[] = {
        { VFU_PCI_TYPE_CONVENTIONAL, PCI_CFG_SPACE_SIZE },
        { VFU_PCI_TYPE_PCI_X_1, PCI_CFG_SPACE_SIZE },
        { VFU_PCI_TYPE_PCI_X_2, PCI_CFG_SPACE_EXP_SIZE },
        { VFU_PCI_TYPE_EXPRESS, PCI_CFG_SPACE_EXP_SIZE },
    };
    struct fix *f = *state;

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        vfu_pci_free(f->ctx);
        assert_int_equal(vfu_pci_init(f->ctx, cases[i].t,
                                      PCI_HEADER_TYPE_NORMAL, 0), 0);
        assert_int_equal(vfu_pci_config_size(f->ctx), cases[i].size);
        /* the last byte is reachable, one past it is not */
        rd(f->ctx, cases[i].size - 1, 1);
        uint8_t b;
        assert_int_equal(vfu_pci_config_access(f->ctx, (char *)&b, 1,
                                               cases[i].size, false), -1);
        assert_int_equal(errno, EINVAL);
    }
}

static void
test_default_realize_without_init(void **state)
{
    struct fix *f = *state;

    assert_int_equal(vfu_realize_ctx(f->ctx), 0);
    assert_non_null(vfu_pci_get_config_space(f->ctx));
    assert_int_equal(vfu_pci_config_size(f->ctx), PCI_CFG_SPACE_SIZE);
    assert_int_equal(rd(f->ctx, PCI_HEADER_TYPE, 1), PCI_HEADER_TYPE_NORMAL);
}

static void
test_ids_and_class_read_only(void **state)
{
    struct fix *f = *state;
    vfu_pci_config_space_t *cs;

    assert_int_equal(vfu_pci_init(f->ctx, VFU_PCI_TYPE_CONVENTIONAL,
                                  PCI_HEADER_TYPE_NORMAL, 0), 0);
    vfu_pci_set_id(f->ctx, 0x494f, 0x0dc8, 0x1af4, 0x1100);
    vfu_pci_set_class(f->ctx, 0x02, 0x00, 0x01);
    cs = vfu_pci_get_config_space(f->ctx);
    cs->hdr.rid = 0x07;
    assert_int_equal(vfu_realize_ctx(f->ctx), 0);

    assert_int_equal(rd(f->ctx, PCI_VENDOR_ID, 4), 0x0dc8494f);
    assert_int_equal(rd(f->ctx, PCI_SUBSYSTEM_VENDOR_ID, 4), 0x11001af4);
    assert_int_equal(rd(f->ctx, PCI_CLASS_REVISION, 4), 0x02000107);

    /* writes to read-only registers succeed and change nothing */
    wr(f->ctx, PCI_VENDOR_ID, 0xffffffff, 4);
    wr(f->ctx, PCI_CLASS_REVISION, 0, 4);
    wr(f->ctx, PCI_SUBSYSTEM_VENDOR_ID, 0, 4);
    wr(f->ctx, PCI_HEADER_TYPE, 0xff, 1);
    wr(f->ctx, PCI_CAPABILITY_LIST, 0x40, 1);
    assert_int_equal(rd(f->ctx, PCI_VENDOR_ID, 4), 0x0dc8494f);
    assert_int_equal(rd(f->ctx, PCI_CLASS_REVISION, 4), 0x02000107);
    assert_int_equal(rd(f->ctx, PCI_SUBSYSTEM_VENDOR_ID, 4), 0x11001af4);
    assert_int_equal(rd(f->ctx, PCI_HEADER_TYPE, 1), 0);
    assert_int_equal(rd(f->ctx, PCI_CAPABILITY_LIST, 1), 0);
    assert_int_equal(rd(f->ctx, PCI_STATUS, 2) & PCI_STATUS_CAP_LIST, 0);

    /* cache line size and latency timer are plain read/write */
    wr(f->ctx, PCI_CACHE_LINE_SIZE, 0x4010, 2);
    assert_int_equal(rd(f->ctx, PCI_CACHE_LINE_SIZE, 2), 0x4010);
}

static void
test_command_and_status(void **state)
{
    struct fix *f = *state;
    vfu_pci_config_space_t *cs;

    assert_int_equal(vfu_pci_init(f->ctx, VFU_PCI_TYPE_CONVENTIONAL,
                                  PCI_HEADER_TYPE_NORMAL, 0), 0);
    assert_int_equal(vfu_realize_ctx(f->ctx), 0);
    cs = vfu_pci_get_config_space(f->ctx);

    wr(f->ctx, PCI_COMMAND, 0xffff, 2);
    assert_int_equal(rd(f->ctx, PCI_COMMAND, 2), 0x077f);
    assert_int_equal(cs->hdr.cmd.id, 1);
    wr(f->ctx, PCI_COMMAND, PCI_COMMAND_MEMORY, 2);
    assert_int_equal(rd(f->ctx, PCI_COMMAND, 2), PCI_COMMAND_MEMORY);

    /* the device reports errors; the client clears them by writing 1 */
    cs->hdr.sts.raw = 0xf900 | PCI_STATUS_INTERRUPT | PCI_STATUS_66MHZ;
    wr(f->ctx, PCI_STATUS, PCI_STATUS_DETECTED_PARITY |
                           PCI_STATUS_INTERRUPT | PCI_STATUS_66MHZ, 2);
    assert_int_equal(rd(f->ctx, PCI_STATUS, 2),
                     0x7900 | PCI_STATUS_INTERRUPT | PCI_STATUS_66MHZ);
    /* zeros do not clear */
    wr(f->ctx, PCI_STATUS, 0, 2);
    assert_int_equal(rd(f->ctx, PCI_STATUS, 2),
                     0x7900 | PCI_STATUS_INTERRUPT | PCI_STATUS_66MHZ);
    /* the high byte alone, as a single-byte write */
    wr(f->ctx, PCI_STATUS + 1, 0xff, 1);
    assert_int_equal(rd(f->ctx, PCI_STATUS, 2),
                     PCI_STATUS_INTERRUPT | PCI_STATUS_66MHZ);

    /* a dword write at 0x04 sets command and clears status together */
    cs->hdr.sts.raw = PCI_STATUS_REC_MASTER_ABORT;
    wr(f->ctx, PCI_COMMAND, ((uint32_t)PCI_STATUS_REC_MASTER_ABORT << 16) |
                            PCI_COMMAND_MASTER, 4);
    assert_int_equal(rd(f->ctx, PCI_COMMAND, 4), PCI_COMMAND_MASTER);
}

static void
setup_bars(vfu_ctx_t *ctx)
{
    vfu_pci_config_space_t *cs;

    assert_int_equal(vfu_pci_init(ctx, VFU_PCI_TYPE_CONVENTIONAL,
                                  PCI_HEADER_TYPE_NORMAL, 0), 0);
    assert_int_equal(vfu_setup_region(ctx, VFU_PCI_DEV_BAR0_REGION_IDX, 0x100,
                                      NULL, VFU_REGION_FLAG_RW, NULL, 0, -1,
                                      0), 0);
    assert_int_equal(vfu_setup_region(ctx, VFU_PCI_DEV_BAR1_REGION_IDX, 0x1800,
                                      NULL, VFU_REGION_FLAG_RW |
                                      VFU_REGION_FLAG_MEM, NULL, 0, -1, 0), 0);
    assert_int_equal(vfu_setup_region(ctx, VFU_PCI_DEV_BAR2_REGION_IDX,
                                      (size_t)8 << 30, NULL,
                                      VFU_REGION_FLAG_RW | VFU_REGION_FLAG_MEM,
                                      NULL, 0, -1, 0), 0);
    /* BAR4: small, but the device asks for a 64-bit prefetchable BAR */
    assert_int_equal(vfu_setup_region(ctx, VFU_PCI_DEV_BAR4_REGION_IDX, 0x4000,
                                      NULL, VFU_REGION_FLAG_RW |
                                      VFU_REGION_FLAG_MEM, NULL, 0, -1, 0), 0);
    assert_int_equal(vfu_setup_region(ctx, VFU_PCI_DEV_ROM_REGION_IDX, 0x9000,
                                      NULL, VFU_REGION_FLAG_READ, NULL, 0, -1,
                                      0), 0);
    cs = vfu_pci_get_config_space(ctx);
    cs->hdr.bars[4].raw = PCI_BASE_ADDRESS_MEM_TYPE_64 |
                          PCI_BASE_ADDRESS_MEM_PREFETCH;
    /* junk in an unused BAR is not exposed */
    cs->hdr.bars[3].raw = 0x1234;
    assert_int_equal(vfu_realize_ctx(ctx), 0);
}

static void
test_bar_sizing(void **state)
{
    struct fix *f = *state;

    setup_bars(f->ctx);

    /* type bits before sizing */
    assert_int_equal(rd(f->ctx, PCI_BASE_ADDRESS_0, 4), 0x1);
    assert_int_equal(rd(f->ctx, PCI_BASE_ADDRESS_1, 4), 0x0);
    assert_int_equal(rd(f->ctx, PCI_BASE_ADDRESS_2, 4), 0x4);
    assert_int_equal(rd(f->ctx, PCI_BASE_ADDRESS_3, 4), 0x0);
    assert_int_equal(rd(f->ctx, PCI_BASE_ADDRESS_4, 4), 0xc);

    for (uint64_t off = PCI_BASE_ADDRESS_0; off <= PCI_BASE_ADDRESS_5;
         off += 4) {
        wr(f->ctx, off, 0xffffffff, 4);
    }
    assert_int_equal(rd(f->ctx, PCI_BASE_ADDRESS_0, 4), 0xffffff01);
    /* 0x1800 rounds up to an 8 KiB decoder */
    assert_int_equal(rd(f->ctx, PCI_BASE_ADDRESS_1, 4), 0xffffe000);
    /* 8 GiB: no low address bits, upper half holds the rest of the mask */
    assert_int_equal(rd(f->ctx, PCI_BASE_ADDRESS_2, 4), 0x00000004);
    assert_int_equal(rd(f->ctx, PCI_BASE_ADDRESS_3, 4), 0xfffffffe);
    assert_int_equal(rd(f->ctx, PCI_BASE_ADDRESS_4, 4), 0xffffc00c);
    assert_int_equal(rd(f->ctx, PCI_BASE_ADDRESS_5, 4), 0xffffffff);

    /* programming addresses keeps only the decodable bits */
    wr(f->ctx, PCI_BASE_ADDRESS_0, 0x0000c0ff, 4);
    assert_int_equal(rd(f->ctx, PCI_BASE_ADDRESS_0, 4), 0x0000c001);
    wr(f->ctx, PCI_BASE_ADDRESS_1, 0x12345678, 4);
    assert_int_equal(rd(f->ctx, PCI_BASE_ADDRESS_1, 4), 0x12344000);
    wr(f->ctx, PCI_BASE_ADDRESS_3, 0x00000003, 4);
    assert_int_equal(rd(f->ctx, PCI_BASE_ADDRESS_3, 4), 0x00000002);

    /* sizing one byte at a time works too */
    for (int i = 0; i < 4; i++) {
        wr(f->ctx, PCI_BASE_ADDRESS_1 + i, 0xff, 1);
    }
    assert_int_equal(rd(f->ctx, PCI_BASE_ADDRESS_1, 4), 0xffffe000);

    /* a write straddling BAR0 and BAR1 lands in both */
    wr(f->ctx, PCI_BASE_ADDRESS_0 + 2, 0x00000000, 4);
    assert_int_equal(rd(f->ctx, PCI_BASE_ADDRESS_0, 4), 0x0000c001);
    assert_int_equal(rd(f->ctx, PCI_BASE_ADDRESS_1, 4), 0xffff0000);
}

static void
test_rom_bar(void **state)
{
    struct fix *f = *state;

    setup_bars(f->ctx);
    assert_int_equal(rd(f->ctx, PCI_ROM_ADDRESS, 4), 0);
    wr(f->ctx, PCI_ROM_ADDRESS, 0xfffffffe, 4);
    assert_int_equal(rd(f->ctx, PCI_ROM_ADDRESS, 4), 0xffff0000);
    wr(f->ctx, PCI_ROM_ADDRESS, 0xfedc0001, 4);
    assert_int_equal(rd(f->ctx, PCI_ROM_ADDRESS, 4), 0xfedc0001);
}

static void
test_no_rom_no_bars(void **state)
{
    struct fix *f = *state;

    assert_int_equal(vfu_pci_init(f->ctx, VFU_PCI_TYPE_CONVENTIONAL,
                                  PCI_HEADER_TYPE_NORMAL, 0), 0);
    assert_int_equal(vfu_realize_ctx(f->ctx), 0);
    wr(f->ctx, PCI_ROM_ADDRESS, 0xffffffff, 4);
    assert_int_equal(rd(f->ctx, PCI_ROM_ADDRESS, 4), 0);
    wr(f->ctx, PCI_BASE_ADDRESS_0, 0xffffffff, 4);
    assert_int_equal(rd(f->ctx, PCI_BASE_ADDRESS_0, 4), 0);
}

static void
test_bar64_without_room(void **state)
{
    struct fix *f = *state;

    assert_int_equal(vfu_pci_init(f->ctx, VFU_PCI_TYPE_CONVENTIONAL,
                                  PCI_HEADER_TYPE_NORMAL, 0), 0);
    assert_int_equal(vfu_setup_region(f->ctx, VFU_PCI_DEV_BAR0_REGION_IDX,
                                      (size_t)4 << 30, NULL,
                                      VFU_REGION_FLAG_RW | VFU_REGION_FLAG_MEM,
                                      NULL, 0, -1, 0), 0);
    assert_int_equal(vfu_setup_region(f->ctx, VFU_PCI_DEV_BAR1_REGION_IDX,
                                      0x1000, NULL, VFU_REGION_FLAG_RW, NULL, 0,
                                      -1, 0), 0);
    assert_int_equal(vfu_realize_ctx(f->ctx), -1);
    assert_int_equal(errno, EINVAL);
}

static void
test_bar64_in_last_slot(void **state)
{
    struct fix *f = *state;

    assert_int_equal(vfu_pci_init(f->ctx, VFU_PCI_TYPE_CONVENTIONAL,
                                  PCI_HEADER_TYPE_NORMAL, 0), 0);
    assert_int_equal(vfu_setup_region(f->ctx, VFU_PCI_DEV_BAR5_REGION_IDX,
                                      0x1000, NULL, VFU_REGION_FLAG_RW |
                                      VFU_REGION_FLAG_MEM, NULL, 0, -1, 0), 0);
    vfu_pci_get_config_space(f->ctx)->hdr.bars[5].raw =
        PCI_BASE_ADDRESS_MEM_TYPE_64;
    assert_int_equal(vfu_realize_ctx(f->ctx), -1);
    assert_int_equal(errno, EINVAL);
}

static int
bar(vfu_ctx_t *ctx, int idx, size_t size, int flags)
{
    return vfu_setup_region(ctx, idx, size, NULL, VFU_REGION_FLAG_RW | flags,
                            NULL, 0, -1, 0);
}

/* Size a 64-bit BAR pair the way Linux does: all-ones into both halves. */
static uint64_t
bar64_size(vfu_ctx_t *ctx, int i)
{
    uint64_t off = PCI_BASE_ADDRESS_0 + 4 * (uint64_t)i;
    uint64_t mask;

    wr(ctx, off, 0xffffffff, 4);
    wr(ctx, off + 4, 0xffffffff, 4);
    mask = ((uint64_t)rd(ctx, off + 4, 4) << 32) |
           (rd(ctx, off, 4) & PCI_BASE_ADDRESS_MEM_MASK);
    return ~mask + 1;
}

static void
test_bar_region_flags(void **state)
{
    struct fix *f = *state;
    const int mem = VFU_REGION_FLAG_MEM;

    assert_int_equal(vfu_pci_init(f->ctx, VFU_PCI_TYPE_EXPRESS,
                                  PCI_HEADER_TYPE_NORMAL, 0), 0);
    assert_int_equal(bar(f->ctx, VFU_PCI_DEV_BAR0_REGION_IDX, 0x10000,
                         mem | VFU_REGION_FLAG_64_BITS |
                         VFU_REGION_FLAG_PREFETCH), 0);
    assert_int_equal(bar(f->ctx, VFU_PCI_DEV_BAR2_REGION_IDX, 0x1000,
                         mem | VFU_REGION_FLAG_PREFETCH), 0);
    assert_int_equal(bar(f->ctx, VFU_PCI_DEV_BAR3_REGION_IDX, 0x100, 0), 0);
    assert_int_equal(bar(f->ctx, VFU_PCI_DEV_BAR4_REGION_IDX, (size_t)4 << 30,
                         mem | VFU_REGION_FLAG_64_BITS), 0);
    assert_int_equal(vfu_realize_ctx(f->ctx), 0);

    /* the type bits, in config space and as the client reads them */
    vfu_bar_t *bars = vfu_pci_get_config_space(f->ctx)->hdr.bars;
    assert_int_equal(bars[0].raw, PCI_BASE_ADDRESS_SPACE_MEMORY |
                     PCI_BASE_ADDRESS_MEM_TYPE_64 |
                     PCI_BASE_ADDRESS_MEM_PREFETCH);
    assert_int_equal(bars[1].raw, 0);
    assert_int_equal(bars[2].raw, PCI_BASE_ADDRESS_MEM_PREFETCH);
    assert_int_equal(bars[3].raw, PCI_BASE_ADDRESS_SPACE_IO);
    assert_int_equal(bars[4].raw, PCI_BASE_ADDRESS_MEM_TYPE_64);
    assert_int_equal(bars[5].raw, 0);
    assert_int_equal(rd(f->ctx, PCI_BASE_ADDRESS_0, 4), 0xc);
    assert_int_equal(rd(f->ctx, PCI_BASE_ADDRESS_2, 4), 0x8);
    assert_int_equal(rd(f->ctx, PCI_BASE_ADDRESS_4, 4), 0x4);

    /* sizing: each pair reports its size, and keeps its type bits */
    assert_int_equal(bar64_size(f->ctx, 0), 0x10000);
    assert_int_equal(rd(f->ctx, PCI_BASE_ADDRESS_0, 4), 0xffff000c);
    assert_int_equal(rd(f->ctx, PCI_BASE_ADDRESS_1, 4), 0xffffffff);
    assert_int_equal(bar64_size(f->ctx, 4), (uint64_t)4 << 30);
    assert_int_equal(rd(f->ctx, PCI_BASE_ADDRESS_4, 4), 0x4);
    assert_int_equal(rd(f->ctx, PCI_BASE_ADDRESS_5, 4), 0xffffffff);
    wr(f->ctx, PCI_BASE_ADDRESS_2, 0xffffffff, 4);
    assert_int_equal(rd(f->ctx, PCI_BASE_ADDRESS_2, 4), 0xfffff008);

    /* a 64-bit address above 4 GiB: the upper half takes all its bits */
    wr(f->ctx, PCI_BASE_ADDRESS_0, 0x9abc1234, 4);
    wr(f->ctx, PCI_BASE_ADDRESS_1, 0x12345678, 4);
    assert_int_equal(rd(f->ctx, PCI_BASE_ADDRESS_0, 4), 0x9abc000c);
    assert_int_equal(rd(f->ctx, PCI_BASE_ADDRESS_1, 4), 0x12345678);
    wr(f->ctx, PCI_BASE_ADDRESS_4, 0xffff0000, 4);
    wr(f->ctx, PCI_BASE_ADDRESS_5, 0x00000003, 4);
    assert_int_equal(rd(f->ctx, PCI_BASE_ADDRESS_4, 4), 0x4);
    assert_int_equal(rd(f->ctx, PCI_BASE_ADDRESS_5, 4), 0x3);

    /* a reset forgets the addresses, not the types */
    vfu_pci_reset(f->ctx);
    assert_int_equal(rd(f->ctx, PCI_BASE_ADDRESS_0, 4), 0xc);
    assert_int_equal(rd(f->ctx, PCI_BASE_ADDRESS_1, 4), 0);
    assert_int_equal(rd(f->ctx, PCI_BASE_ADDRESS_5, 4), 0);
}

static void
test_bar_region_flag_errors(void **state)
{
    struct fix *f = *state;
    const int mem = VFU_REGION_FLAG_MEM, b64 = VFU_REGION_FLAG_64_BITS;

    /* a 64-bit BAR is BAR0, 2 or 4 */
    for (int i = VFU_PCI_DEV_BAR1_REGION_IDX; i <= VFU_PCI_DEV_BAR5_REGION_IDX;
         i += 2) {
        assert_int_equal(bar(f->ctx, i, 0x1000, mem | b64), -1);
        assert_int_equal(errno, EINVAL);
    }
    /* memory BARs only */
    assert_int_equal(bar(f->ctx, VFU_PCI_DEV_BAR0_REGION_IDX, 0x1000, b64), -1);
    assert_int_equal(errno, EINVAL);
    assert_int_equal(bar(f->ctx, VFU_PCI_DEV_BAR0_REGION_IDX, 0x1000,
                         VFU_REGION_FLAG_PREFETCH), -1);
    assert_int_equal(errno, EINVAL);
    assert_int_equal(bar(f->ctx, VFU_PCI_DEV_ROM_REGION_IDX, 0x1000,
                         mem | VFU_REGION_FLAG_PREFETCH), -1);
    assert_int_equal(errno, EINVAL);
    /* the config region is neither memory nor a BAR, and always-callback
     * needs the callback */
    assert_int_equal(bar(f->ctx, VFU_PCI_DEV_CFG_REGION_IDX, 0, mem), -1);
    assert_int_equal(errno, EINVAL);
    assert_int_equal(bar(f->ctx, VFU_PCI_DEV_CFG_REGION_IDX, 0, b64), -1);
    assert_int_equal(errno, EINVAL);
    assert_int_equal(bar(f->ctx, VFU_PCI_DEV_CFG_REGION_IDX, 0,
                         VFU_REGION_FLAG_ALWAYS_CB), -1);
    assert_int_equal(errno, EINVAL);

    /* the upper half's slot is taken either way round */
    assert_int_equal(bar(f->ctx, VFU_PCI_DEV_BAR0_REGION_IDX, 0x1000, mem | b64),
                     0);
    assert_int_equal(bar(f->ctx, VFU_PCI_DEV_BAR1_REGION_IDX, 0x1000, mem), -1);
    assert_int_equal(errno, EINVAL);
    assert_int_equal(bar(f->ctx, VFU_PCI_DEV_BAR3_REGION_IDX, 0x1000, mem), 0);
    assert_int_equal(bar(f->ctx, VFU_PCI_DEV_BAR2_REGION_IDX, 0x1000, mem | b64),
                     -1);
    assert_int_equal(errno, EINVAL);
    /* size 0 clears a region, which frees the slot */
    assert_int_equal(bar(f->ctx, VFU_PCI_DEV_BAR3_REGION_IDX, 0, 0), 0);
    assert_int_equal(bar(f->ctx, VFU_PCI_DEV_BAR2_REGION_IDX, 0x1000, mem | b64),
                     0);
    assert_int_equal(bar(f->ctx, VFU_PCI_DEV_BAR0_REGION_IDX, 0, 0), 0);
    assert_int_equal(bar(f->ctx, VFU_PCI_DEV_BAR1_REGION_IDX, 0x1000, mem), 0);
    /* a cleared region takes no fd */
    assert_int_equal(vfu_setup_region(f->ctx, VFU_PCI_DEV_BAR5_REGION_IDX, 0,
                                      NULL, VFU_REGION_FLAG_RW, NULL, 0, 0, 0),
                     -1);
    assert_int_equal(errno, EINVAL);

    assert_int_equal(vfu_realize_ctx(f->ctx), 0);
    vfu_bar_t *bars = vfu_pci_get_config_space(f->ctx)->hdr.bars;
    assert_int_equal(bars[0].raw, 0);
    assert_int_equal(bars[1].raw, 0);
    assert_int_equal(bars[2].raw, PCI_BASE_ADDRESS_MEM_TYPE_64);
}

static void
test_interrupt_pin_and_line(void **state)
{
    struct fix *f = *state;

    assert_int_equal(vfu_pci_init(f->ctx, VFU_PCI_TYPE_CONVENTIONAL,
                                  PCI_HEADER_TYPE_NORMAL, 0), 0);
    assert_int_equal(vfu_setup_device_nr_irqs(f->ctx, VFU_DEV_INTX_IRQ, 1), 0);
    assert_int_equal(vfu_realize_ctx(f->ctx), 0);
    assert_int_equal(rd(f->ctx, PCI_INTERRUPT_PIN, 1), 1);
    wr(f->ctx, PCI_INTERRUPT_LINE, 0x0000ff0b, 4);
    assert_int_equal(rd(f->ctx, PCI_INTERRUPT_LINE, 4), 0x0000010b);
}

static void
test_no_intx_no_pin(void **state)
{
    struct fix *f = *state;

    assert_int_equal(vfu_pci_init(f->ctx, VFU_PCI_TYPE_CONVENTIONAL,
                                  PCI_HEADER_TYPE_NORMAL, 0), 0);
    vfu_pci_get_config_space(f->ctx)->hdr.intr.ipin = 2;
    assert_int_equal(vfu_realize_ctx(f->ctx), 0);
    assert_int_equal(rd(f->ctx, PCI_INTERRUPT_PIN, 1), 0);
}

static void
test_reset(void **state)
{
    struct fix *f = *state;

    setup_bars(f->ctx);
    vfu_pci_get_config_space(f->ctx)->hdr.intr.iline = 0;
    wr(f->ctx, PCI_COMMAND, 0x7, 2);
    wr(f->ctx, PCI_BASE_ADDRESS_1, 0xfe000000, 4);
    wr(f->ctx, PCI_BASE_ADDRESS_4, 0xfd000000, 4);
    wr(f->ctx, PCI_ROM_ADDRESS, 0xfc000001, 4);
    wr(f->ctx, PCI_INTERRUPT_LINE, 9, 1);
    vfu_pci_reset(f->ctx);
    assert_int_equal(rd(f->ctx, PCI_COMMAND, 2), 0);
    assert_int_equal(rd(f->ctx, PCI_BASE_ADDRESS_0, 4), 0x1);
    assert_int_equal(rd(f->ctx, PCI_BASE_ADDRESS_1, 4), 0);
    assert_int_equal(rd(f->ctx, PCI_BASE_ADDRESS_4, 4), 0xc);
    assert_int_equal(rd(f->ctx, PCI_ROM_ADDRESS, 4), 0);
    assert_int_equal(rd(f->ctx, PCI_INTERRUPT_LINE, 1), 0);
}

static void
test_bounds(void **state)
{
    struct fix *f = *state;
    char buf[8] = { 0 };

    assert_int_equal(vfu_pci_init(f->ctx, VFU_PCI_TYPE_CONVENTIONAL,
                                  PCI_HEADER_TYPE_NORMAL, 0), 0);
    assert_int_equal(vfu_realize_ctx(f->ctx), 0);

    static const struct { uint64_t off; size_t count; } bad[] = {
        { 0x100, 1 }, { 0xff, 2 }, { 0xf9, 8 }, { UINT64_MAX, 2 },
        { UINT64_MAX - 3, 8 }, { 4, SIZE_MAX }, { 0x1000, 4 },
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        for (int w = 0; w < 2; w++) {
            errno = 0;
            assert_int_equal(vfu_pci_config_access(f->ctx, buf, bad[i].count,
                                                   bad[i].off, w), -1);
            assert_int_equal(errno, EINVAL);
        }
    }
    assert_int_equal(vfu_pci_config_access(f->ctx, buf, 0, 0x10, false), 0);
    /* the whole space in one read */
    char all[PCI_CFG_SPACE_SIZE];
    assert_int_equal(vfu_pci_config_access(f->ctx, all, sizeof(all), 0, false),
                     (ssize_t)sizeof(all));
}

static void
test_no_pci_state(void **state)
{
    struct fix *f = *state;
    char b;

    assert_int_equal(vfu_pci_config_access(f->ctx, &b, 1, 0, false), -1);
    assert_int_equal(errno, EINVAL);
    /* harmless no-ops without vfu_pci_init() */
    vfu_pci_set_id(f->ctx, 1, 2, 3, 4);
    vfu_pci_set_class(f->ctx, 1, 2, 3);
    vfu_pci_reset(f->ctx);
}

static void
test_free_space_without_callback(void **state)
{
    struct fix *f = *state;
    vfu_pci_config_space_t *cs;

    assert_int_equal(vfu_pci_init(f->ctx, VFU_PCI_TYPE_CONVENTIONAL,
                                  PCI_HEADER_TYPE_NORMAL, 0), 0);
    assert_int_equal(vfu_realize_ctx(f->ctx), 0);
    cs = vfu_pci_get_config_space(f->ctx);
    cs->raw[0x80] = 0x5a;
    assert_int_equal(rd(f->ctx, 0x80, 1), 0x5a);

    uint32_t v = 0x11111111;
    assert_int_equal(vfu_pci_config_access(f->ctx, (char *)&v, 4, 0x80, true),
                     -1);
    assert_int_equal(errno, EINVAL);
    assert_int_equal(cs->raw[0x80], 0x5a);

    /* a write that starts in the header but runs past it is refused whole */
    uint64_t q = 0x22222222222222ffull;
    assert_int_equal(vfu_pci_config_access(f->ctx, (char *)&q, 8, 0x3c, true),
                     -1);
    assert_int_equal(errno, EINVAL);
    assert_int_equal(rd(f->ctx, PCI_INTERRUPT_LINE, 1), 0);

    /* a read across the boundary is fine */
    assert_int_equal(vfu_pci_config_access(f->ctx, (char *)&q, 8, 0x3c, false),
                     8);
}

static void
test_callback_outside_header(void **state)
{
    struct fix *f = *state;

    assert_int_equal(vfu_pci_init(f->ctx, VFU_PCI_TYPE_EXPRESS,
                                  PCI_HEADER_TYPE_NORMAL, 0), 0);
    assert_int_equal(vfu_setup_region(f->ctx, VFU_PCI_DEV_CFG_REGION_IDX, 0,
                                      cfg_cb, VFU_REGION_FLAG_RW, NULL, 0, -1,
                                      0), 0);
    assert_int_equal(vfu_realize_ctx(f->ctx), 0);

    /* header accesses do not reach the callback */
    wr(f->ctx, PCI_COMMAND, PCI_COMMAND_MEMORY, 2);
    rd(f->ctx, 0, 4);
    assert_int_equal(f->log.calls, 0);

    wr(f->ctx, 0x800, 0xdeadbeef, 4);
    assert_int_equal(f->log.calls, 1);
    assert_true(f->log.last_write);
    assert_int_equal(f->log.last_offset, 0x800);
    assert_int_equal(f->log.last_count, 4);
    assert_memory_equal(f->log.last_data, "\xef\xbe\xad\xde", 4);

    assert_int_equal(rd(f->ctx, 0xffc, 4), 0xa5a5a5a5);
    assert_int_equal(f->log.calls, 2);
    assert_false(f->log.last_write);

    /* a write across the header end: header part emulated, rest to cb */
    uint64_t q = 0x1122334455667709ull;
    assert_int_equal(vfu_pci_config_access(f->ctx, (char *)&q, 8, 0x3c, true),
                     8);
    assert_int_equal(rd(f->ctx, PCI_INTERRUPT_LINE, 1), 0x09);
    assert_int_equal(f->log.last_offset, 0x40);
    assert_int_equal(f->log.last_count, 4);
    assert_memory_equal(f->log.last_data, "\x44\x33\x22\x11", 4);

    /* callback errors reach the caller */
    f->log.use_ret = true;
    f->log.ret = -1;
    f->log.err = EBADMSG;
    uint32_t v = 0;
    assert_int_equal(vfu_pci_config_access(f->ctx, (char *)&v, 4, 0x200,
                                           false), -1);
    assert_int_equal(errno, EBADMSG);
    f->log.ret = 2;
    assert_int_equal(vfu_pci_config_access(f->ctx, (char *)&v, 4, 0x200,
                                           true), -1);
    assert_int_equal(errno, EIO);
}

static void
test_always_callback(void **state)
{
    struct fix *f = *state;

    assert_int_equal(vfu_pci_init(f->ctx, VFU_PCI_TYPE_CONVENTIONAL,
                                  PCI_HEADER_TYPE_NORMAL, 0), 0);
    vfu_pci_set_id(f->ctx, 0x1234, 0x5678, 0, 0);
    assert_int_equal(vfu_setup_region(f->ctx, VFU_PCI_DEV_CFG_REGION_IDX, 0,
                                      cfg_cb, VFU_REGION_FLAG_RW |
                                      VFU_REGION_FLAG_ALWAYS_CB, NULL, 0, -1,
                                      0), 0);
    assert_int_equal(vfu_realize_ctx(f->ctx), 0);

    assert_int_equal(rd(f->ctx, PCI_VENDOR_ID, 4), 0xa5a5a5a5);
    assert_int_equal(f->log.calls, 1);
    assert_int_equal(f->log.last_offset, 0);
    wr(f->ctx, PCI_COMMAND, 0xffff, 2);
    assert_int_equal(f->log.calls, 2);
    assert_int_equal(f->log.last_offset, PCI_COMMAND);
    /* the library's copy was not touched */
    assert_int_equal(vfu_pci_get_config_space(f->ctx)->hdr.cmd.raw, 0);
    /* bounds are still the library's job */
    char b;
    assert_int_equal(vfu_pci_config_access(f->ctx, &b, 1, 0x100, false), -1);
    assert_int_equal(errno, EINVAL);
    assert_int_equal(f->log.calls, 2);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_init_errors_and_sizes, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_create_ctx_errors, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_sizes_by_type, setup, teardown),
        cmocka_unit_test_setup_teardown(test_default_realize_without_init,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_ids_and_class_read_only, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_command_and_status, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_bar_sizing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rom_bar, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_rom_no_bars, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bar64_without_room, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_bar_region_flags, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_bar_region_flag_errors, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_bar64_in_last_slot, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_interrupt_pin_and_line, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_no_intx_no_pin, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reset, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bounds, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_pci_state, setup, teardown),
        cmocka_unit_test_setup_teardown(test_free_space_without_callback,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_callback_outside_header, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_always_callback, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
