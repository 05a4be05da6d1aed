/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 the vfu authors. */
#ifndef VFU_FUZZ_DEVICE_H
#define VFU_FUZZ_DEVICE_H

#include "libvfio-user.h"

/*
 * A PCIe device with every kind of capability, memory, I/O and mmap-able
 * BARs, every IRQ type, DMA and migration: the widest surface for a fuzzer.
 * Built once per process; its state carries over from input to input, as
 * a device's does from client to client.
 */
vfu_ctx_t *fuzz_device(void);

#endif
