/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 the vfu authors. */

/* The VERSION capabilities parser, and a round trip through the writer. */

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "private.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct vfu_client_caps caps, again;
    char out[1024];

    vfu_caps_defaults(&caps);
    /* Unterminated input must be refused, not read past. */
    vfu_caps_parse((const char *)data, size, &caps);

    char *doc = malloc(size + 1);
    if (doc == NULL) {
        return 0;
    }
    memcpy(doc, data, size);
    doc[size] = '\0';
    vfu_caps_defaults(&caps);
    if (vfu_caps_parse(doc, strlen(doc) + 1, &caps) == 0) {
        ssize_t n = vfu_caps_format(&caps, out, sizeof(out));
        if (n > 0) {
            vfu_caps_defaults(&again);
            if (vfu_caps_parse(out, (size_t)n, &again) != 0) {
                abort();  /* what we write, we must read */
            }
        }
    }
    free(doc);
    return 0;
}
