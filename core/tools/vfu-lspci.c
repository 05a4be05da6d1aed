/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 the vfu authors. */

/*
 * vfu-lspci: dump a vfio-user device's PCI config space in the hex format
 * `lspci -F FILE` reads, e.g.  lspci -vv -F <(vfu-lspci /tmp/sock)
 */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "libvfio-user.h"
#include "vfu-client.h"

#define CFG_SIZE      256u
#define CFG_EXP_SIZE  4096u

static void
usage(FILE *out, const char *prog)
{
    fprintf(out,
            "usage: %s SOCKET\n"
            "Print the PCI config space of the vfio-user device at SOCKET\n"
            "in the format of `lspci -x`, for `lspci -F FILE`:\n"
            "  lspci -vv -F <(%s SOCKET)\n", prog, prog);
}

static int
dump(const char *path)
{
    struct vfu_client_region_info ri;
    uint8_t cfg[CFG_EXP_SIZE];
    vfu_client_t *c;
    size_t size;

    c = vfu_client_connect(path);
    if (c == NULL) {
        fprintf(stderr, "vfu-lspci: cannot connect to %s: %s\n", path,
                strerror(errno));
        return 1;
    }
    if (vfu_client_negotiate(c, NULL, NULL) < 0) {
        fprintf(stderr, "vfu-lspci: %s: version negotiation failed: %s\n",
                path, strerror(errno));
        goto fail;
    }
    if (vfu_client_get_region_info(c, VFU_PCI_DEV_CFG_REGION_IDX, &ri) < 0) {
        fprintf(stderr, "vfu-lspci: %s: no config space region: %s\n", path,
                strerror(errno));
        goto fail;
    }
    size = ri.info.size >= CFG_EXP_SIZE ? CFG_EXP_SIZE : CFG_SIZE;
    vfu_client_region_info_free(&ri);
    if (vfu_client_region_read(c, VFU_PCI_DEV_CFG_REGION_IDX, 0, cfg,
                               size) < 0) {
        fprintf(stderr, "vfu-lspci: %s: reading config space: %s\n", path,
                strerror(errno));
        goto fail;
    }
    vfu_client_close(c);

    /* The header line lspci's dump reader expects, then 16 bytes a line. */
    printf("00:00.0 Class %02x%02x: Device %02x%02x:%02x%02x\n",
           cfg[0x0b], cfg[0x0a], cfg[0x01], cfg[0x00], cfg[0x03], cfg[0x02]);
    for (size_t off = 0; off < size; off += 16) {
        printf("%02zx:", off);
        for (size_t i = 0; i < 16; i++) {
            printf(" %02x", cfg[off + i]);
        }
        printf("\n");
    }
    printf("\n");
    return fflush(stdout) == 0 ? 0 : 1;

fail:
    vfu_client_close(c);
    return 1;
}

int
main(int argc, char **argv)
{
    const char *prog = argc > 0 ? argv[0] : "vfu-lspci";

    if (argc == 2 && (strcmp(argv[1], "-h") == 0 ||
                      strcmp(argv[1], "--help") == 0)) {
        usage(stdout, prog);
        return 0;
    }
    if (argc != 2 || argv[1][0] == '-') {
        usage(stderr, prog);
        return 2;
    }
    return dump(argv[1]);
}
