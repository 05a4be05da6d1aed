/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 the vfu authors. */

/*
 * PCI capabilities: placement, list linking, find/find-next, extended
 * capabilities, error cases, and the emulated register behaviour of each
 * capability type (PM, MSI, MSI-X, PCIe incl. FLR, vendor-specific, DSN),
 * plus the READONLY and CALLBACK flags.
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

struct fix {
    char dir[64];
    char path[96];
    vfu_ctx_t *ctx;
    int cb_calls;
    loff_t cb_offset;
    size_t cb_count;
    bool cb_write;
    int resets;
    vfu_reset_type_t reset_type;
};

static int
setup(void **state)
{
    struct fix *f = calloc(1, sizeof(*f));

    assert_non_null(f);
    snprintf(f->dir, sizeof(f->dir), "/tmp/vfu-test-caps-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->path, sizeof(f->path), "%s/sock", f->dir);
    f->ctx = vfu_create_ctx(VFU_TRANS_SOCK, f->path,
                            LIBVFIO_USER_FLAG_ATTACH_NB, f, VFU_DEV_TYPE_PCI);
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

static void
init(struct fix *f, vfu_pci_type_t type)
{
    assert_int_equal(vfu_pci_init(f->ctx, type, PCI_HEADER_TYPE_NORMAL, 0), 0);
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

static ssize_t
cfg_cb(vfu_ctx_t *ctx, char *buf, size_t count, loff_t offset, bool is_write)
{
    struct fix *f = vfu_get_private(ctx);

    f->cb_calls++;
    f->cb_offset = offset;
    f->cb_count = count;
    f->cb_write = is_write;
    if (!is_write) {
        memset(buf, 0x3c, count);
    }
    return (ssize_t)count;
}

static int
reset_cb(vfu_ctx_t *ctx, vfu_reset_type_t type)
{
    struct fix *f = vfu_get_private(ctx);

    f->resets++;
    f->reset_type = type;
    return 0;
}

static ssize_t
add_vsc(vfu_ctx_t *ctx, size_t pos, int flags, uint8_t size)
{
    uint8_t buf[256] = { PCI_CAP_ID_VNDR, 0xee, size };

    for (size_t i = 3; i < size; i++) {
        buf[i] = (uint8_t)i;
    }
    return vfu_pci_add_capability(ctx, pos, flags, buf);
}

static void
test_all_standard_caps(void **state)
{
    struct fix *f = *state;
    struct pmcap pm = { .hdr.id = PCI_CAP_ID_PM, .hdr.next = 0x99 };
    struct msicap msi = { .hdr.id = PCI_CAP_ID_MSI,
                          .mc = { .c64 = 1, .pvm = 1, .mmc = 2 } };
    struct msixcap msix = { .hdr.id = PCI_CAP_ID_MSIX, .mxc.ts = 7,
                            .mtab.tbir = 4, .mpba = { .pbir = 4, .pbao = 0x100 } };
    struct pxcap px = { .hdr.id = PCI_CAP_ID_EXP, .pxcaps.ver = 2,
                        .pxdcap.flrc = 1 };
    vfu_pci_config_space_t *cs;

    init(f, VFU_PCI_TYPE_EXPRESS);
    assert_int_equal(vfu_pci_add_capability(f->ctx, 0, 0, &pm), 0x40);
    assert_int_equal(vfu_pci_add_capability(f->ctx, 0, 0, &msi), 0x48);
    assert_int_equal(vfu_pci_add_capability(f->ctx, 0, 0, &msix), 0x60);
    assert_int_equal(vfu_pci_add_capability(f->ctx, 0, 0, &px), 0x6c);
    /* the PCIe capability takes VFIO_USER_PCI_CAP_EXP_SIZEOF bytes */
    assert_int_equal(add_vsc(f->ctx, 0, 0, 10),
                     0x6c + VFIO_USER_PCI_CAP_EXP_SIZEOF);
    assert_int_equal(vfu_realize_ctx(f->ctx), 0);

    cs = vfu_pci_get_config_space(f->ctx);
    assert_int_equal(cs->hdr.cap, 0x40);
    assert_true(rd(f->ctx, PCI_STATUS, 2) & PCI_STATUS_CAP_LIST);
    /* the list, as the client walks it */
    assert_int_equal(rd(f->ctx, 0x41, 1), 0x48);
    assert_int_equal(rd(f->ctx, 0x49, 1), 0x60);
    assert_int_equal(rd(f->ctx, 0x61, 1), 0x6c);
    assert_int_equal(rd(f->ctx, 0x6d, 1), 0xa8);
    assert_int_equal(rd(f->ctx, 0xa9, 1), 0);
    assert_int_equal(rd(f->ctx, 0xaa, 1), 10);

    assert_int_equal(vfu_pci_find_capability(f->ctx, false, PCI_CAP_ID_PM),
                     0x40);
    assert_int_equal(vfu_pci_find_capability(f->ctx, false, PCI_CAP_ID_MSI),
                     0x48);
    assert_int_equal(vfu_pci_find_capability(f->ctx, false, PCI_CAP_ID_MSIX),
                     0x60);
    assert_int_equal(vfu_pci_find_capability(f->ctx, false, PCI_CAP_ID_EXP),
                     0x6c);
    assert_int_equal(vfu_pci_find_capability(f->ctx, false, PCI_CAP_ID_VNDR),
                     0xa8);
    errno = 0;
    assert_int_equal(vfu_pci_find_capability(f->ctx, false, PCI_CAP_ID_SATA),
                     0);
    assert_int_equal(errno, ENOENT);
    errno = 0;
    assert_int_equal(vfu_pci_find_capability(f->ctx, true, PCI_EXT_CAP_ID_DSN),
                     0);
    assert_int_equal(errno, ENOENT);
}

static void
test_find_next(void **state)
{
    struct fix *f = *state;
    struct pmcap pm = { .hdr.id = PCI_CAP_ID_PM };

    init(f, VFU_PCI_TYPE_CONVENTIONAL);
    assert_int_equal(add_vsc(f->ctx, 0, 0, 8), 0x40);
    assert_int_equal(vfu_pci_add_capability(f->ctx, 0, 0, &pm), 0x48);
    assert_int_equal(add_vsc(f->ctx, 0, 0, 5), 0x50);
    assert_int_equal(add_vsc(f->ctx, 0, 0, 4), 0x58);

    assert_int_equal(vfu_pci_find_next_capability(f->ctx, false, 0x40,
                                                   PCI_CAP_ID_VNDR), 0x50);
    assert_int_equal(vfu_pci_find_next_capability(f->ctx, false, 0x50,
                                                   PCI_CAP_ID_VNDR), 0x58);
    errno = 0;
    assert_int_equal(vfu_pci_find_next_capability(f->ctx, false, 0x58,
                                                   PCI_CAP_ID_VNDR), 0);
    assert_int_equal(errno, ENOENT);
    /* no capability starts at 0x44 */
    errno = 0;
    assert_int_equal(vfu_pci_find_next_capability(f->ctx, false, 0x44,
                                                   PCI_CAP_ID_VNDR), 0);
    assert_int_equal(errno, ENOENT);
    /* 0 searches from the start of the list */
    assert_int_equal(vfu_pci_find_next_capability(f->ctx, false, 0,
                                                   PCI_CAP_ID_VNDR), 0x40);
    assert_int_equal(vfu_pci_find_next_capability(f->ctx, false, 0,
                                                   PCI_CAP_ID_PM), 0x48);
    /* outside standard capability space */
    for (size_t pos = 0x3c; pos <= 0x2000; pos += 0x2000 - 0x3c) {
        errno = 0;
        assert_int_equal(vfu_pci_find_next_capability(f->ctx, false, pos,
                                                       PCI_CAP_ID_VNDR), 0);
        assert_int_equal(errno, EINVAL);
    }
    errno = 0;
    assert_int_equal(vfu_pci_find_next_capability(f->ctx, false, 0xff,
                                                   PCI_CAP_ID_VNDR), 0);
    assert_int_equal(errno, EINVAL);
    /* no extended space on conventional PCI */
    errno = 0;
    assert_int_equal(vfu_pci_find_capability(f->ctx, true, PCI_EXT_CAP_ID_DSN),
                     0);
    assert_int_equal(errno, EINVAL);
    errno = 0;
    assert_int_equal(vfu_pci_find_next_capability(f->ctx, true, 0x100,
                                                   PCI_EXT_CAP_ID_DSN), 0);
    assert_int_equal(errno, EINVAL);
}

static void
test_insertion_order(void **state)
{
    struct fix *f = *state;

    init(f, VFU_PCI_TYPE_CONVENTIONAL);
    assert_int_equal(add_vsc(f->ctx, 0x80, 0, 8), 0x80);
    assert_int_equal(add_vsc(f->ctx, 0, 0, 8), 0x40);
    assert_int_equal(add_vsc(f->ctx, 0x7c, 0, 4), 0x7c);
    assert_int_equal(rd(f->ctx, PCI_CAPABILITY_LIST, 1), 0x80);
    assert_int_equal(rd(f->ctx, 0x81, 1), 0x40);
    assert_int_equal(rd(f->ctx, 0x41, 1), 0x7c);
    assert_int_equal(rd(f->ctx, 0x7d, 1), 0);
    assert_int_equal(vfu_pci_find_next_capability(f->ctx, false, 0x80,
                                                   PCI_CAP_ID_VNDR), 0x40);
}

static void
test_extended_caps(void **state)
{
    struct fix *f = *state;
    struct dsncap dsn = { .hdr = { .id = PCI_EXT_CAP_ID_DSN, .version = 1 },
                          .sn_lo = 0x01020304, .sn_hi = 0x05060708 };
    uint8_t vsec[32] = { 0 };
    struct pcie_ext_cap_vsc_hdr *vh = (void *)vsec;

    vh->hdr.id = PCI_EXT_CAP_ID_VNDR;
    vh->hdr.version = 1;
    vh->id = 0xabc;
    vh->len = sizeof(vsec);

    init(f, VFU_PCI_TYPE_EXPRESS);
    /* the extended list must start at 0x100 */
    assert_int_equal(vfu_pci_add_capability(f->ctx, 0x200,
                                            VFU_CAP_FLAG_EXTENDED, &dsn), -1);
    assert_int_equal(errno, EINVAL);
    assert_int_equal(vfu_pci_add_capability(f->ctx, 0, VFU_CAP_FLAG_EXTENDED,
                                            &dsn), 0x100);
    assert_int_equal(vfu_pci_add_capability(f->ctx, 0x400,
                                            VFU_CAP_FLAG_EXTENDED, vsec), 0x400);
    assert_int_equal(vfu_pci_add_capability(f->ctx, 0, VFU_CAP_FLAG_EXTENDED,
                                            vsec), 0x10c);
    assert_int_equal(vfu_realize_ctx(f->ctx), 0);

    /* id 3, version 1, next 0x400 */
    assert_int_equal(rd(f->ctx, 0x100, 4), 0x40010003);
    assert_int_equal(rd(f->ctx, 0x104, 4), 0x01020304);
    assert_int_equal(rd(f->ctx, 0x400, 4), (0x10cu << 20) | 0x1000b);
    assert_int_equal(rd(f->ctx, 0x10c, 4) >> 20, 0);

    assert_int_equal(vfu_pci_find_capability(f->ctx, true, PCI_EXT_CAP_ID_DSN),
                     0x100);
    assert_int_equal(vfu_pci_find_capability(f->ctx, true,
                                             PCI_EXT_CAP_ID_VNDR), 0x400);
    assert_int_equal(vfu_pci_find_next_capability(f->ctx, true, 0x400,
                                                   PCI_EXT_CAP_ID_VNDR), 0x10c);
    errno = 0;
    assert_int_equal(vfu_pci_find_next_capability(f->ctx, true, 0x10c,
                                                   PCI_EXT_CAP_ID_VNDR), 0);
    assert_int_equal(errno, ENOENT);

    /* outside extended capability space, and not a capability */
    errno = 0;
    assert_int_equal(vfu_pci_find_next_capability(f->ctx, true, 0xffd,
                                                   PCI_EXT_CAP_ID_VNDR), 0);
    assert_int_equal(errno, EINVAL);
    errno = 0;
    assert_int_equal(vfu_pci_find_next_capability(f->ctx, true, 0x104,
                                                   PCI_EXT_CAP_ID_VNDR), 0);
    assert_int_equal(errno, ENOENT);
    assert_int_equal(vfu_pci_find_next_capability(f->ctx, true, 0,
                                                   PCI_EXT_CAP_ID_VNDR), 0x400);

    /* DSN is read-only, and so are VSEC headers: writes fail, and leave
     * nothing behind */
    uint32_t v = 0xffffffff;
    assert_int_equal(vfu_pci_config_access(f->ctx, (char *)&v, 4, 0x104,
                                           true), -1);
    assert_int_equal(errno, EPERM);
    assert_int_equal(rd(f->ctx, 0x104, 4), 0x01020304);
    for (uint64_t off = 0x400; off < 0x408; off += 4) {
        v = 0;
        assert_int_equal(vfu_pci_config_access(f->ctx, (char *)&v, 4, off,
                                               true), -1);
        assert_int_equal(errno, EPERM);
    }
    assert_int_equal(rd(f->ctx, 0x400, 4), (0x10cu << 20) | 0x1000b);
    assert_int_equal(rd(f->ctx, 0x404, 4), (32u << 20) | 0xabc);
    /* the VSEC body is the device's to expose writable */
    wr(f->ctx, 0x408, 0xcafef00d, 4);
    assert_int_equal(rd(f->ctx, 0x408, 4), 0xcafef00d);
    /* a write that covers two capabilities is refused if one refuses */
    uint64_t q = 0;
    assert_int_equal(vfu_pci_config_access(f->ctx, (char *)&q, 8, 0x108, true),
                     -1);
    assert_int_equal(errno, EPERM);
    assert_int_equal(rd(f->ctx, 0x108, 4), 0x05060708);
    assert_int_equal(rd(f->ctx, 0x10c, 4), 0x1000b);
}

static void
test_extended_needs_pcie(void **state)
{
    struct fix *f = *state;
    struct dsncap dsn = { .hdr = { .id = PCI_EXT_CAP_ID_DSN } };

    init(f, VFU_PCI_TYPE_PCI_X_1);
    assert_int_equal(vfu_pci_add_capability(f->ctx, 0, VFU_CAP_FLAG_EXTENDED,
                                            &dsn), -1);
    assert_int_equal(errno, EINVAL);

    vfu_pci_free(f->ctx);
    init(f, VFU_PCI_TYPE_PCI_X_2);
    assert_int_equal(vfu_pci_add_capability(f->ctx, 0, VFU_CAP_FLAG_EXTENDED,
                                            &dsn), 0x100);
}

static void
test_add_errors(void **state)
{
    struct fix *f = *state;
    struct pmcap pm = { .hdr.id = PCI_CAP_ID_PM };
    uint8_t unknown[16] = { PCI_CAP_ID_AGP };
    uint8_t unknown_ext[16] = { PCI_EXT_CAP_ID_ERR };
    uint8_t short_vsec[16] = { PCI_EXT_CAP_ID_VNDR, 0, 0, 0, 0, 0, 0x40, 0 };

    /* before vfu_pci_init() */
    assert_int_equal(vfu_pci_add_capability(f->ctx, 0, 0, &pm), -1);
    assert_int_equal(errno, EINVAL);

    init(f, VFU_PCI_TYPE_EXPRESS);
    assert_int_equal(vfu_pci_add_capability(f->ctx, 0, 0, NULL), -1);
    assert_int_equal(errno, EINVAL);
    assert_int_equal(vfu_pci_add_capability(f->ctx, 0, 1 << 5, &pm), -1);
    assert_int_equal(errno, EINVAL);
    assert_int_equal(vfu_pci_add_capability(f->ctx, 0, 0, unknown), -1);
    assert_int_equal(errno, ENOTSUP);
    assert_int_equal(vfu_pci_add_capability(f->ctx, 0, VFU_CAP_FLAG_EXTENDED,
                                            unknown_ext), -1);
    assert_int_equal(errno, ENOTSUP);
    assert_int_equal(vfu_pci_add_capability(f->ctx, 0, VFU_CAP_FLAG_EXTENDED,
                                            short_vsec), -1);
    assert_int_equal(errno, EINVAL);
    assert_int_equal(add_vsc(f->ctx, 0, 0, 2), -1);
    assert_int_equal(errno, EINVAL);
    /* in the header, unaligned, past the end of standard space */
    assert_int_equal(vfu_pci_add_capability(f->ctx, 0x20, 0, &pm), -1);
    assert_int_equal(errno, EINVAL);
    assert_int_equal(vfu_pci_add_capability(f->ctx, 0x42, 0, &pm), -1);
    assert_int_equal(errno, EINVAL);
    assert_int_equal(vfu_pci_add_capability(f->ctx, 0xfc, 0, &pm), -1);
    assert_int_equal(errno, EINVAL);
    assert_int_equal(vfu_pci_add_capability(f->ctx, 0x100, 0, &pm), -1);
    assert_int_equal(errno, EINVAL);
    assert_int_equal(vfu_pci_add_capability(f->ctx, (size_t)-4, 0, &pm), -1);
    assert_int_equal(errno, EINVAL);
    /* overlap */
    assert_int_equal(vfu_pci_add_capability(f->ctx, 0x80, 0, &pm), 0x80);
    assert_int_equal(vfu_pci_add_capability(f->ctx, 0x84, 0, &pm), -1);
    assert_int_equal(errno, EINVAL);
    assert_int_equal(vfu_pci_add_capability(f->ctx, 0x7c, 0, &pm), -1);
    assert_int_equal(errno, EINVAL);
    /* a callback capability needs a config region callback */
    assert_int_equal(vfu_pci_add_capability(f->ctx, 0, VFU_CAP_FLAG_CALLBACK,
                                            &pm), -1);
    assert_int_equal(errno, EINVAL);
    /* nothing of the failed attempts is visible */
    assert_int_equal(rd(f->ctx, PCI_CAPABILITY_LIST, 1), 0x80);
    assert_int_equal(rd(f->ctx, 0x81, 1), 0);
}

static void
test_enospc(void **state)
{
    struct fix *f = *state;
    int n = 0;
    ssize_t r;

    init(f, VFU_PCI_TYPE_CONVENTIONAL);
    /* 192 bytes of standard space hold 3 caps of 64 bytes */
    while ((r = add_vsc(f->ctx, 0, 0, 64)) > 0) {
        n++;
    }
    assert_int_equal(r, -1);
    assert_int_equal(errno, ENOSPC);
    assert_int_equal(n, 3);
    /* a small one still fits nowhere: space is full */
    assert_int_equal(add_vsc(f->ctx, 0, 0, 4), -1);
    assert_int_equal(errno, ENOSPC);
    /* a too-big vendor cap can never fit */
    vfu_pci_free(f->ctx);
    init(f, VFU_PCI_TYPE_CONVENTIONAL);
    assert_int_equal(add_vsc(f->ctx, 0, 0, 255), -1);
    assert_int_equal(errno, ENOSPC);
    assert_int_equal(add_vsc(f->ctx, 0, 0, 192), 0x40);
}

static void
test_pm_registers(void **state)
{
    struct fix *f = *state;
    struct pmcap pm = { .hdr.id = PCI_CAP_ID_PM, .pc = { .vs = 3, .d1s = 1 } };

    init(f, VFU_PCI_TYPE_CONVENTIONAL);
    assert_int_equal(vfu_pci_add_capability(f->ctx, 0, 0, &pm), 0x40);
    assert_int_equal(vfu_realize_ctx(f->ctx), 0);
    uint16_t pc = (uint16_t)rd(f->ctx, 0x42, 2);

    /* the header may not be written, PMC is not implemented as writable,
     * and each register takes whole-register writes only */
    uint32_t v = 0xffffffff;
    assert_int_equal(vfu_pci_config_access(f->ctx, (char *)&v, 4, 0x40, true),
                     -1);
    assert_int_equal(errno, EPERM);
    assert_int_equal(vfu_pci_config_access(f->ctx, (char *)&v, 2, 0x42, true),
                     -1);
    assert_int_equal(errno, ENOTSUP);
    assert_int_equal(vfu_pci_config_access(f->ctx, (char *)&v, 1, 0x42, true),
                     -1);
    assert_int_equal(errno, EINVAL);
    assert_int_equal(vfu_pci_config_access(f->ctx, (char *)&v, 4, 0x44, true),
                     -1);
    assert_int_equal(errno, EINVAL);
    assert_int_equal(vfu_pci_config_access(f->ctx, (char *)&v, 1, 0x44, true),
                     -1);
    assert_int_equal(errno, EINVAL);
    assert_int_equal(vfu_pci_config_access(f->ctx, (char *)&v, 1, 0x46, true),
                     -1);
    assert_int_equal(errno, ENOTSUP);
    assert_int_equal(vfu_pci_config_access(f->ctx, (char *)&v, 1, 0x47, true),
                     -1);
    assert_int_equal(errno, ENOTSUP);
    assert_int_equal(rd(f->ctx, 0x40, 2), PCI_CAP_ID_PM);
    assert_int_equal(rd(f->ctx, 0x42, 2), pc);
    assert_int_equal(rd(f->ctx, 0x44, 4), 0);
    /* power state and PME enable stick; PME status is write-1-to-clear */
    wr(f->ctx, 0x44, 0x0103, 2);
    assert_int_equal(rd(f->ctx, 0x44, 2), 0x0103);
    vfu_pci_get_config_space(f->ctx)->raw[0x45] |= 0x80;
    wr(f->ctx, 0x44, 0x8000, 2);
    assert_int_equal(rd(f->ctx, 0x44, 2), 0);
    wr(f->ctx, 0x44, 0x0003, 2);
    vfu_pci_reset(f->ctx);
    assert_int_equal(rd(f->ctx, 0x44, 2), 0);
}

static void
test_msi_registers(void **state)
{
    struct fix *f = *state;
    struct msicap msi = { .hdr.id = PCI_CAP_ID_MSI,
                          .mc = { .c64 = 1, .pvm = 1, .mmc = 3 } };
    struct msicap msi32 = { .hdr.id = PCI_CAP_ID_MSI, .mc.mmc = 1 };

    init(f, VFU_PCI_TYPE_CONVENTIONAL);
    assert_int_equal(vfu_pci_add_capability(f->ctx, 0, 0, &msi), 0x40);
    /* 32-bit, no masking: still VFIO_USER_PCI_CAP_MSI_SIZEOF bytes */
    assert_int_equal(vfu_pci_add_capability(f->ctx, 0, 0, &msi32), 0x58);
    assert_int_equal(add_vsc(f->ctx, 0, 0, 4),
                     0x58 + VFIO_USER_PCI_CAP_MSI_SIZEOF);
    assert_int_equal(vfu_realize_ctx(f->ctx), 0);

    /* Multiple Message Enable: at most 5 (32 vectors), at most MMC */
    uint16_t ro = (uint16_t)rd(f->ctx, 0x42, 2);
    uint16_t v = 0xffff;
    assert_int_equal(vfu_pci_config_access(f->ctx, (char *)&v, 2, 0x42, true),
                     -1);
    assert_int_equal(errno, EINVAL);
    v = 0x0041;
    assert_int_equal(vfu_pci_config_access(f->ctx, (char *)&v, 2, 0x42, true),
                     -1);
    assert_int_equal(errno, EINVAL);
    assert_int_equal(rd(f->ctx, 0x42, 2), ro);
    wr(f->ctx, 0x42, 0xffbf, 2);
    assert_int_equal(rd(f->ctx, 0x42, 2), ro | 0x31);
    wr(f->ctx, 0x44, 0xffffffff, 4);
    assert_int_equal(rd(f->ctx, 0x44, 4), 0xfffffffc);
    wr(f->ctx, 0x48, 0x12345678, 4);
    assert_int_equal(rd(f->ctx, 0x48, 4), 0x12345678);
    wr(f->ctx, 0x4c, 0xffffabcd, 4);
    assert_int_equal(rd(f->ctx, 0x4c, 4), 0x0000abcd);    /* ext data RO */
    wr(f->ctx, 0x50, 0x0000000f, 4);
    assert_int_equal(rd(f->ctx, 0x50, 4), 0xf);
    wr(f->ctx, 0x54, 0xffffffff, 4);
    assert_int_equal(rd(f->ctx, 0x54, 4), 0);             /* pending RO */

    /* the 32-bit layout puts data right after the address */
    wr(f->ctx, 0x5c, 0xfee00000, 4);
    wr(f->ctx, 0x60, 0x4321, 2);
    assert_int_equal(rd(f->ctx, 0x5c, 4), 0xfee00000);
    assert_int_equal(rd(f->ctx, 0x60, 2), 0x4321);

    vfu_pci_reset(f->ctx);
    assert_int_equal(rd(f->ctx, 0x42, 2), ro);
    assert_int_equal(vfu_pci_get_config_space(f->ctx)->raw[0x42] & 1, 0);
}

static void
test_msix_registers(void **state)
{
    struct fix *f = *state;
    struct msixcap msix = { .hdr.id = PCI_CAP_ID_MSIX, .mxc.ts = 31,
                            .mtab = { .tbir = 1, .to = 0x10 },
                            .mpba = { .pbir = 1, .pbao = 0x200 } };

    init(f, VFU_PCI_TYPE_CONVENTIONAL);
    assert_int_equal(vfu_pci_add_capability(f->ctx, 0x50, 0, &msix), 0x50);
    assert_int_equal(vfu_realize_ctx(f->ctx), 0);
    uint32_t tab = rd(f->ctx, 0x54, 4), pba = rd(f->ctx, 0x58, 4);

    wr(f->ctx, 0x52, 0xffff, 2);
    assert_int_equal(rd(f->ctx, 0x52, 2), 0xc000 | 31);
    wr(f->ctx, 0x52, 0x8000, 2);
    assert_int_equal(rd(f->ctx, 0x52, 2), 0x8000 | 31);
    wr(f->ctx, 0x54, 0, 4);
    wr(f->ctx, 0x58, 0, 4);
    assert_int_equal(rd(f->ctx, 0x54, 4), tab);
    assert_int_equal(rd(f->ctx, 0x58, 4), pba);
    vfu_pci_reset(f->ctx);
    assert_int_equal(rd(f->ctx, 0x52, 2), 31);
}

static void
test_px_and_flr(void **state)
{
    struct fix *f = *state;
    struct pxcap px = { .hdr.id = PCI_CAP_ID_EXP, .pxcaps.ver = 2,
                        .pxdcap.flrc = 1 };

    init(f, VFU_PCI_TYPE_EXPRESS);
    assert_int_equal(vfu_setup_device_reset_cb(f->ctx, reset_cb), 0);
    assert_int_equal(vfu_pci_add_capability(f->ctx, 0, 0, &px), 0x40);
    assert_int_equal(vfu_realize_ctx(f->ctx), 0);

    /* pxdcap.flrc is Device Capabilities' FLR bit, as a client reads it */
    uint32_t devcap = rd(f->ctx, 0x44, 4);
    assert_int_equal(devcap, PCI_EXP_DEVCAP_FLR);
    wr(f->ctx, 0x44, 0, 4);
    assert_int_equal(rd(f->ctx, 0x44, 4), devcap);
    wr(f->ctx, 0x48, 0x00002010, 2);
    assert_int_equal(rd(f->ctx, 0x48, 2), 0x2010);
    assert_int_equal(f->resets, 0);

    /* device status error bits are write-1-to-clear */
    vfu_pci_get_config_space(f->ctx)->raw[0x4a] = 0x0f;
    wr(f->ctx, 0x4a, 0x05, 1);
    assert_int_equal(rd(f->ctx, 0x4a, 1), 0x0a);

    wr(f->ctx, PCI_COMMAND, PCI_COMMAND_MEMORY, 2);
    wr(f->ctx, 0x48, 0x8010, 2);
    assert_int_equal(f->resets, 1);
    assert_int_equal(f->reset_type, VFU_RESET_PCI_FLR);
    /* initiate-FLR reads 0, and the function is back at power-on */
    assert_int_equal(rd(f->ctx, 0x48, 2), 0);
    assert_int_equal(rd(f->ctx, PCI_COMMAND, 2), 0);
    /* FLR set through a single-byte write of the high byte */
    wr(f->ctx, 0x49, 0x80, 1);
    assert_int_equal(f->resets, 2);
    /* device control 2 is writable, the reserved tail is not */
    wr(f->ctx, 0x68, 0x0404, 2);
    assert_int_equal(rd(f->ctx, 0x68, 2), 0x0404);
    wr(f->ctx, 0x6c, 0xffffffff, 4);
    assert_int_equal(rd(f->ctx, 0x6c, 4), 0);
}

/* The PCIe capability is the whole v2 layout, as the caller's struct pxcap. */
static void
test_px_size(void **state)
{
    struct fix *f = *state;
    struct pxcap px = { .hdr.id = PCI_CAP_ID_EXP, .pxcaps.ver = 2 };
    uint8_t *raw = (uint8_t *)&px;

    _Static_assert(sizeof(struct pxcap) == VFIO_USER_PCI_CAP_EXP_SIZEOF,
                   "pxcap size");
    _Static_assert(VFIO_USER_PCI_CAP_EXP_SIZEOF == PCI_EXP_SLTSTA2 + 2,
                   "the capability ends with Slot Status 2");
    _Static_assert(offsetof(struct pxcap, pxlc2) == PCI_EXP_LNKCTL2,
                   "pxlc2 offset");
    /* read-only registers the device fills in, past the old 42 bytes */
    raw[PCI_EXP_LNKCAP2] = 0x0e;        /* 2.5, 5 and 8 GT/s */
    raw[PCI_EXP_LNKSTA2] = 0x01;

    init(f, VFU_PCI_TYPE_EXPRESS);
    assert_int_equal(vfu_pci_add_capability(f->ctx, 0, 0, &px), 0x40);
    assert_int_equal(add_vsc(f->ctx, 0, 0, 4),
                     0x40 + VFIO_USER_PCI_CAP_EXP_SIZEOF);
    assert_int_equal(vfu_realize_ctx(f->ctx), 0);

    assert_int_equal(rd(f->ctx, 0x40 + PCI_EXP_LNKCAP2, 4), 0x0e);
    assert_int_equal(rd(f->ctx, 0x40 + PCI_EXP_LNKSTA2, 2), 0x01);
    /* Link Control 2 is writable, Link Capabilities 2 is not */
    wr(f->ctx, 0x40 + PCI_EXP_LNKCTL2, 0xbeef, 2);
    assert_int_equal(rd(f->ctx, 0x40 + PCI_EXP_LNKCTL2, 2), 0xbeef);
    wr(f->ctx, 0x40 + PCI_EXP_LNKCAP2, 0, 4);
    assert_int_equal(rd(f->ctx, 0x40 + PCI_EXP_LNKCAP2, 4), 0x0e);
    /* the last bytes belong to the capability, not to free space */
    wr(f->ctx, 0x40 + PCI_EXP_SLTSTA2, 0xffff, 2);
    assert_int_equal(rd(f->ctx, 0x40 + PCI_EXP_SLTSTA2, 2), 0);
    vfu_pci_reset(f->ctx);
    assert_int_equal(rd(f->ctx, 0x40 + PCI_EXP_LNKCTL2, 2), 0);
}

static void
test_readonly_cap(void **state)
{
    struct fix *f = *state;

    init(f, VFU_PCI_TYPE_CONVENTIONAL);
    assert_int_equal(add_vsc(f->ctx, 0, VFU_CAP_FLAG_READONLY, 8), 0x40);
    assert_int_equal(add_vsc(f->ctx, 0, 0, 8), 0x48);
    assert_int_equal(vfu_realize_ctx(f->ctx), 0);

    uint32_t v = 0;
    assert_int_equal(vfu_pci_config_access(f->ctx, (char *)&v, 4, 0x44, true),
                     -1);
    assert_int_equal(errno, EPERM);
    assert_int_equal(rd(f->ctx, 0x44, 4), 0x07060504);
    /* a write spanning both caps is refused before anything lands */
    uint64_t q = 0;
    assert_int_equal(vfu_pci_config_access(f->ctx, (char *)&q, 8, 0x44, true),
                     -1);
    assert_int_equal(errno, EPERM);
    assert_int_equal(rd(f->ctx, 0x4c, 4), 0x07060504);
    /* the writable vendor cap: its header (with the length) refuses
     * writes, its body takes them */
    for (uint64_t off = 0x48; off < 0x4b; off++) {
        assert_int_equal(vfu_pci_config_access(f->ctx, (char *)&v, 1, off,
                                               true), -1);
        assert_int_equal(errno, EPERM);
    }
    wr(f->ctx, 0x4b, 0xff, 1);
    assert_int_equal(rd(f->ctx, 0x48, 4), 0xff080009);
}

static void
test_callback_cap(void **state)
{
    struct fix *f = *state;
    struct pmcap pm = { .hdr.id = PCI_CAP_ID_PM };

    init(f, VFU_PCI_TYPE_CONVENTIONAL);
    assert_int_equal(vfu_setup_region(f->ctx, VFU_PCI_DEV_CFG_REGION_IDX, 0,
                                      cfg_cb, VFU_REGION_FLAG_RW, NULL, 0, -1,
                                      0), 0);
    assert_int_equal(vfu_pci_add_capability(f->ctx, 0, 0, &pm), 0x40);
    assert_int_equal(add_vsc(f->ctx, 0, VFU_CAP_FLAG_CALLBACK, 16), 0x48);
    assert_int_equal(vfu_realize_ctx(f->ctx), 0);

    /* the emulated PM cap does not reach the callback */
    wr(f->ctx, 0x44, 3, 2);
    assert_int_equal(rd(f->ctx, 0x44, 2), 3);
    assert_int_equal(f->cb_calls, 0);

    assert_int_equal(rd(f->ctx, 0x4a, 4), 0x3c3c3c3c);
    assert_int_equal(f->cb_calls, 1);
    assert_int_equal(f->cb_offset, 0x4a);
    assert_int_equal(f->cb_count, 4);
    wr(f->ctx, 0x48, 0, 4);
    assert_int_equal(f->cb_calls, 2);
    assert_true(f->cb_write);
    /* the library's copy is left to the callback */
    assert_int_equal(vfu_pci_get_config_space(f->ctx)->raw[0x48],
                     PCI_CAP_ID_VNDR);

    /* a read covering PM's tail, the callback cap, and free space after */
    uint8_t buf[32];
    assert_int_equal(vfu_pci_config_access(f->ctx, (char *)buf, sizeof(buf),
                                           0x44, false), 32);
    assert_int_equal(buf[0], 3);
    assert_int_equal(buf[4], 0x3c);
    assert_int_equal(f->cb_calls, 4);
    assert_int_equal(f->cb_offset, 0x58);
    assert_int_equal(f->cb_count, 0x64 - 0x58);
}

/* READONLY wins over CALLBACK: the write is refused before the device. */
static void
test_readonly_callback_cap(void **state)
{
    struct fix *f = *state;
    uint32_t v = 0;

    init(f, VFU_PCI_TYPE_CONVENTIONAL);
    assert_int_equal(vfu_setup_region(f->ctx, VFU_PCI_DEV_CFG_REGION_IDX, 0,
                                      cfg_cb, VFU_REGION_FLAG_RW, NULL, 0, -1,
                                      0), 0);
    assert_int_equal(add_vsc(f->ctx, 0, VFU_CAP_FLAG_CALLBACK |
                             VFU_CAP_FLAG_READONLY, 8), 0x40);
    assert_int_equal(vfu_realize_ctx(f->ctx), 0);
    assert_int_equal(vfu_pci_config_access(f->ctx, (char *)&v, 4, 0x44, true),
                     -1);
    assert_int_equal(errno, EPERM);
    assert_int_equal(f->cb_calls, 0);
    assert_int_equal(rd(f->ctx, 0x44, 4), 0x3c3c3c3c);
    assert_int_equal(f->cb_calls, 1);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_all_standard_caps, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_find_next, setup, teardown),
        cmocka_unit_test_setup_teardown(test_insertion_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_extended_caps, setup, teardown),
        cmocka_unit_test_setup_teardown(test_extended_needs_pcie, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_add_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_enospc, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pm_registers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_msi_registers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_msix_registers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_px_and_flr, setup, teardown),
        cmocka_unit_test_setup_teardown(test_px_size, setup, teardown),
        cmocka_unit_test_setup_teardown(test_readonly_cap, setup, teardown),
        cmocka_unit_test_setup_teardown(test_callback_cap, setup, teardown),
        cmocka_unit_test_setup_teardown(test_readonly_callback_cap, setup,
                                        teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
