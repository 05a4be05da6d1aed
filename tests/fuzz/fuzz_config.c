/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 the vfu authors. */

/*
 * Config-space accesses against a device with every capability type. Each
 * 4-byte record is: offset (2 bytes, little endian), size (1..8 from the low
 * bits), and whether it writes; written bytes come from the record itself.
 */

#include <stdint.h>
#include <string.h>

#include "fuzz_device.h"
#include "private.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    vfu_ctx_t *ctx = fuzz_device();
    size_t space = vfu_pci_config_size(ctx);

    for (; size >= 4; data += 4, size -= 4) {
        uint64_t off = (uint64_t)data[0] | (uint64_t)data[1] << 8;
        size_t count = 1 + (data[2] & 7);
        bool is_write = data[2] & 0x80;
        char buf[8];

        /* The dispatcher bounds-checks before this point; do the same. */
        if (off >= space || count > space - off) {
            continue;
        }
        memset(buf, data[3], sizeof(buf));
        vfu_pci_config_access(ctx, buf, count, off, is_write);
    }
    return 0;
}
