/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 the vfu authors. */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "fuzz_device.h"

#define BAR_SIZE 0x1000

struct fuzz_state {
    char bar0[BAR_SIZE];
    char bar2[256];
    char migr[64];
    size_t migr_pos;
};

static ssize_t
bar_access(char *mem, size_t size, char *buf, size_t count, loff_t off,
           bool is_write)
{
    if ((size_t)off > size || count > size - (size_t)off) {
        return -1;
    }
    if (is_write) {
        memcpy(mem + off, buf, count);
    } else {
        memcpy(buf, mem + off, count);
    }
    return (ssize_t)count;
}

static ssize_t
bar0_cb(vfu_ctx_t *ctx, char *buf, size_t count, loff_t off, bool is_write)
{
    struct fuzz_state *s = vfu_get_private(ctx);
    return bar_access(s->bar0, sizeof(s->bar0), buf, count, off, is_write);
}

static ssize_t
bar2_cb(vfu_ctx_t *ctx, char *buf, size_t count, loff_t off, bool is_write)
{
    struct fuzz_state *s = vfu_get_private(ctx);
    if (is_write && off == 0 && count >= 1 && buf[0] == 0x7f) {
        vfu_irq_trigger(ctx, 0);
    }
    return bar_access(s->bar2, sizeof(s->bar2), buf, count, off, is_write);
}

static int
reset_cb(vfu_ctx_t *ctx, vfu_reset_type_t type)
{
    return 0;
}

static void
dma_register(vfu_ctx_t *ctx, vfu_dma_info_t *info)
{
}

static void
dma_unregister(vfu_ctx_t *ctx, vfu_dma_info_t *info)
{
}

static int
migr_transition(vfu_ctx_t *ctx, vfu_migr_state_t state)
{
    struct fuzz_state *s = vfu_get_private(ctx);
    s->migr_pos = 0;
    return 0;
}

static ssize_t
migr_read(vfu_ctx_t *ctx, void *buf, uint64_t count)
{
    struct fuzz_state *s = vfu_get_private(ctx);
    size_t left = sizeof(s->migr) - s->migr_pos;
    size_t n = count < left ? count : left;
    memcpy(buf, s->migr + s->migr_pos, n);
    s->migr_pos += n;
    return (ssize_t)n;
}

static ssize_t
migr_write(vfu_ctx_t *ctx, void *buf, uint64_t count)
{
    struct fuzz_state *s = vfu_get_private(ctx);
    size_t left = sizeof(s->migr) - s->migr_pos;
    if (count > left) {
        return -1;
    }
    memcpy(s->migr + s->migr_pos, buf, count);
    s->migr_pos += count;
    return (ssize_t)count;
}

static const vfu_migration_callbacks_t migr_cbs = {
    .version = VFU_MIGR_CALLBACKS_VERS,
    .transition = migr_transition,
    .read_data = migr_read,
    .write_data = migr_write,
};

static void
must(int ok, const char *what)
{
    if (!ok) {
        perror(what);
        abort();
    }
}

vfu_ctx_t *
fuzz_device(void)
{
    static vfu_ctx_t *ctx;

    if (ctx != NULL) {
        return ctx;
    }
    struct fuzz_state *s = calloc(1, sizeof(*s));
    /* An abstract socket: the context lives as long as the process and
     * leaves no file behind. Clients come through vfu_attach_fd(). */
    ctx = vfu_create_ctx(VFU_TRANS_SOCK, "", LIBVFIO_USER_FLAG_ATTACH_NB, s,
                         VFU_DEV_TYPE_PCI);
    must(ctx != NULL, "vfu_create_ctx");
    must(vfu_pci_init(ctx, VFU_PCI_TYPE_EXPRESS, PCI_HEADER_TYPE_NORMAL, 0) == 0,
         "vfu_pci_init");
    vfu_pci_set_id(ctx, 0x1af4, 0x10f0, 0x1af4, 0x0001);
    vfu_pci_set_class(ctx, 0xff, 0x00, 0x00);

    int fd = memfd_create("fuzz-bar1", MFD_CLOEXEC);
    must(fd >= 0 && ftruncate(fd, 2 * BAR_SIZE) == 0, "memfd");
    struct iovec sparse = { .iov_base = (void *)(uintptr_t)BAR_SIZE,
                            .iov_len = BAR_SIZE };
    must(vfu_setup_region(ctx, VFU_PCI_DEV_BAR0_REGION_IDX, BAR_SIZE, bar0_cb,
                          VFU_REGION_FLAG_RW | VFU_REGION_FLAG_MEM, NULL, 0,
                          -1, 0) == 0, "bar0");
    must(vfu_setup_region(ctx, VFU_PCI_DEV_BAR1_REGION_IDX, 2 * BAR_SIZE, NULL,
                          VFU_REGION_FLAG_RW | VFU_REGION_FLAG_MEM, &sparse, 1,
                          fd, 0) == 0, "bar1");
    must(vfu_setup_region(ctx, VFU_PCI_DEV_BAR2_REGION_IDX, 256, bar2_cb,
                          VFU_REGION_FLAG_RW, NULL, 0, -1, 0) == 0, "bar2");

    struct pmcap pm = { .hdr.id = PCI_CAP_ID_PM, .pc.vs = 3 };
    struct msicap msi = { .hdr.id = PCI_CAP_ID_MSI };
    struct msixcap msix = { .hdr.id = PCI_CAP_ID_MSIX, .mxc.ts = 7,
                            .mtab.tbir = 0, .mpba.pbir = 0,
                            .mpba.pbao = 0x800 >> 3 };
    struct pxcap px = { .hdr.id = PCI_CAP_ID_EXP, .pxcaps.ver = 2 };
    struct { struct vsc h; uint8_t data[5]; } vsc = {
        .h.hdr.id = PCI_CAP_ID_VNDR, .h.size = 8 };
    struct dsncap dsn = { .hdr.id = PCI_EXT_CAP_ID_DSN, .hdr.version = 1,
                          .sn_lo = 0x12345678, .sn_hi = 0x9abcdef0 };
    struct { struct pcie_ext_cap_vsc_hdr h; uint8_t data[8]; } evsc = {
        .h.hdr.id = PCI_EXT_CAP_ID_VNDR, .h.hdr.version = 1, .h.id = 0x42,
        .h.len = 16 };
    must(vfu_pci_add_capability(ctx, 0, 0, &pm) > 0, "pm");
    must(vfu_pci_add_capability(ctx, 0, 0, &msi) > 0, "msi");
    must(vfu_pci_add_capability(ctx, 0, 0, &msix) > 0, "msix");
    must(vfu_pci_add_capability(ctx, 0, 0, &px) > 0, "px");
    must(vfu_pci_add_capability(ctx, 0, 0, &vsc) > 0, "vsc");
    must(vfu_pci_add_capability(ctx, 0, VFU_CAP_FLAG_EXTENDED, &dsn) > 0, "dsn");
    must(vfu_pci_add_capability(ctx, 0, VFU_CAP_FLAG_EXTENDED, &evsc) > 0, "evsc");

    must(vfu_setup_device_nr_irqs(ctx, VFU_DEV_INTX_IRQ, 1) == 0, "intx");
    must(vfu_setup_device_nr_irqs(ctx, VFU_DEV_MSI_IRQ, 1) == 0, "msi irqs");
    must(vfu_setup_device_nr_irqs(ctx, VFU_DEV_MSIX_IRQ, 8) == 0, "msix irqs");
    must(vfu_setup_device_reset_cb(ctx, reset_cb) == 0, "reset");
    must(vfu_setup_device_dma(ctx, 0, dma_register, dma_unregister) == 0, "dma");
    must(vfu_setup_device_migration_callbacks(ctx, &migr_cbs) == 0, "migration");
    must(vfu_realize_ctx(ctx) == 0, "realize");
    return ctx;
}
