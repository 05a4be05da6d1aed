/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 the vfu authors. */
#ifndef VFU_FUZZ_INPUT_H
#define VFU_FUZZ_INPUT_H

#include <stddef.h>
#include <stdint.h>

/* A fuzz input read as a stream of little-endian numbers. */
struct in {
    const uint8_t *p;
    size_t left;
};

/* The next n bytes as a number; an exhausted input reads as zeros. */
static inline uint64_t
take(struct in *in, size_t n)
{
    uint64_t v = 0;

    for (size_t i = 0; i < n; i++) {
        if (in->left > 0) {
            v |= (uint64_t)*in->p << (8 * i);
            in->p++;
            in->left--;
        }
    }
    return v;
}

#endif
