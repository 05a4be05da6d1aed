/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 the vfu authors. */

/*
 * lspci [-xxxx]
 *
 * Builds a small PCI Express device with the library (IDs, class, three
 * BARs, PM, MSI-X, PCIe and vendor-specific capabilities, a serial number),
 * realizes it without any client, and prints its config space as a hex
 * dump in the format `lspci -x` produces, so that pciutils can decode it:
 *
 *     ./lspci > dump && lspci -vv -F dump
 *
 * By default the first 256 bytes are printed; -xxxx prints all 4096.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "libvfio-user.h"

static int
build_device(vfu_ctx_t *ctx)
{
    struct pmcap pm = { .hdr.id = PCI_CAP_ID_PM, .pc.vs = 3 };
    struct msixcap msix = {
        .hdr.id = PCI_CAP_ID_MSIX,
        .mxc.ts = 7,                            /* 8 vectors */
        .mtab = { .tbir = 0, .to = 0x1000 >> 3 },
        .mpba = { .pbir = 0, .pbao = 0x1800 >> 3 },
    };
    struct pxcap px = {
        .hdr.id = PCI_CAP_ID_EXP,
        .pxcaps = { .ver = 2, .dpt = PCI_EXP_TYPE_ENDPOINT },
    };
    /* set by value: DevCap's bit layout is easier to get right this way */
    uint32_t devcap = PCI_EXP_DEVCAP_FLR | 1;   /* FLR, 256-byte payload */
    uint8_t vsc[8] = { PCI_CAP_ID_VNDR, 0, sizeof(vsc), 'v', 'f', 'u', 0, 1 };
    struct dsncap dsn = {
        .hdr = { .id = PCI_EXT_CAP_ID_DSN, .version = 1 },
        .sn_lo = 0x00c0ffee, .sn_hi = 0x20260000,
    };
    vfu_pci_config_space_t *cs;

    memcpy(&px.pxdcap, &devcap, sizeof(devcap));
    if (vfu_pci_init(ctx, VFU_PCI_TYPE_EXPRESS, PCI_HEADER_TYPE_NORMAL, 0) < 0) {
        return -1;
    }
    /* Red Hat's vendor ID and an unused device ID, for illustration */
    vfu_pci_set_id(ctx, 0x1b36, 0x00ff, 0x1b36, 0x0001);
    vfu_pci_set_class(ctx, 0x01, 0x08, 0x02);  /* storage: NVMe */
    cs = vfu_pci_get_config_space(ctx);
    cs->hdr.rid = 0x01;
    /* BAR2 is a 64-bit prefetchable window; BAR3 is its upper half */
    cs->hdr.bars[2].raw = PCI_BASE_ADDRESS_MEM_TYPE_64 |
                          PCI_BASE_ADDRESS_MEM_PREFETCH;

    if (vfu_setup_region(ctx, VFU_PCI_DEV_BAR0_REGION_IDX, 0x4000, NULL,
                         VFU_REGION_FLAG_RW | VFU_REGION_FLAG_MEM, NULL, 0,
                         -1, 0) < 0 ||
        vfu_setup_region(ctx, VFU_PCI_DEV_BAR1_REGION_IDX, 0x100, NULL,
                         VFU_REGION_FLAG_RW, NULL, 0, -1, 0) < 0 ||
        vfu_setup_region(ctx, VFU_PCI_DEV_BAR2_REGION_IDX, 1 << 20, NULL,
                         VFU_REGION_FLAG_RW | VFU_REGION_FLAG_MEM, NULL, 0,
                         -1, 0) < 0 ||
        vfu_setup_device_nr_irqs(ctx, VFU_DEV_INTX_IRQ, 1) < 0 ||
        vfu_setup_device_nr_irqs(ctx, VFU_DEV_MSIX_IRQ, 8) < 0) {
        return -1;
    }
    if (vfu_pci_add_capability(ctx, 0, 0, &pm) < 0 ||
        vfu_pci_add_capability(ctx, 0, 0, &msix) < 0 ||
        vfu_pci_add_capability(ctx, 0, 0, &px) < 0 ||
        vfu_pci_add_capability(ctx, 0, 0, vsc) < 0 ||
        vfu_pci_add_capability(ctx, 0, VFU_CAP_FLAG_EXTENDED, &dsn) < 0) {
        return -1;
    }
    return vfu_realize_ctx(ctx);
}

/* One "xx: b0 b1 ... b15" line per 16 bytes, as `lspci -x` writes them. */
static void
dump(const uint8_t *raw, size_t size)
{
    printf("00:00.0 Non-Volatile memory controller: vfu example device\n");
    for (size_t off = 0; off < size; off += 16) {
        printf(size > PCI_CFG_SPACE_SIZE ? "%03zx:" : "%02zx:", off);
        for (size_t i = 0; i < 16; i++) {
            printf(" %02x", raw[off + i]);
        }
        printf("\n");
    }
    printf("\n");
}

int
main(int argc, char *argv[])
{
    char dir[] = "/tmp/vfu-lspci-XXXXXX";
    char path[sizeof(dir) + 8];
    size_t size = PCI_CFG_SPACE_SIZE;
    vfu_ctx_t *ctx;
    int ret = 1;

    if (argc == 2 && strcmp(argv[1], "-xxxx") == 0) {
        size = PCI_CFG_SPACE_EXP_SIZE;
    } else if (argc != 1) {
        fprintf(stderr, "usage: %s [-xxxx]\n", argv[0]);
        return 2;
    }
    /* The context wants a socket path even though nobody will connect. */
    if (mkdtemp(dir) == NULL) {
        perror("lspci: mkdtemp");
        return 1;
    }
    snprintf(path, sizeof(path), "%s/sock", dir);
    ctx = vfu_create_ctx(VFU_TRANS_SOCK, path, LIBVFIO_USER_FLAG_ATTACH_NB,
                         NULL, VFU_DEV_TYPE_PCI);
    if (ctx == NULL) {
        perror("lspci: vfu_create_ctx");
    } else if (build_device(ctx) < 0) {
        perror("lspci: building the device");
    } else {
        dump((const uint8_t *)vfu_pci_get_config_space(ctx), size);
        ret = 0;
    }
    vfu_destroy_ctx(ctx);
    unlink(path);
    rmdir(dir);
    return ret;
}
