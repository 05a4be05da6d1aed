/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 the vfu authors. */

/*
 * gpio-pci-idio-16 SOCKET
 *
 * An ACCES PCI-IDIO-16 isolated digital I/O card (vendor 0x494f, device
 * 0x0dc8) served over vfio-user, e.g. to QEMU's vfio-user-pci device, where
 * the guest's gpio-pci-idio-16 driver can bind to it.
 *
 * BAR2 is a 256-byte I/O BAR. Its byte registers follow the real card as
 * Linux's gpio-pci-idio-16 driver uses it; several do one thing on a read
 * and another on a write:
 *
 *   offset  name        read                       write
 *   0x0     out0_7      outputs 0-7                outputs 0-7
 *   0x1     in0_7       inputs 0-7                 clear the interrupt
 *   0x2     irq_ctl     enable the IRQ (reads 0)   disable the IRQ
 *   0x3     filter_ctl  activate input filters     deactivate input filters
 *   0x4     out8_15     outputs 8-15               outputs 8-15
 *   0x5     in8_15      inputs 8-15                ignored
 *   0x6     irq_status  bit 2: interrupt pending;  ignored
 *                       bit 0/1: inputs 0-7/8-15 changed
 *   other offsets read 0 and ignore writes.
 *
 * There are no real wires, so the model loops the outputs back: each input
 * byte always equals the output byte of the same group. Writing an output
 * byte therefore changes an input whenever the value differs; if the IRQ is
 * enabled, the pending bit is latched until in0_7 is written, and INTx (one
 * vector) is raised with vfu_irq_trigger(). The input filters only debounce
 * real contacts, so the model accepts both filter accesses and ignores them.
 *
 * The server handles one client at a time and waits for the next when a
 * client goes away; the pins keep their state across clients. SIGINT or SIGTERM stops it and removes the socket.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "libvfio-user.h"

#define IDIO16_VENDOR   0x494f
#define IDIO16_DEVICE   0x0dc8
#define IDIO16_BAR_SIZE 0x100

enum {
    REG_OUT0_7 = 0x0,
    REG_IN0_7 = 0x1,        /* write: clear the interrupt */
    REG_IRQ_CTL = 0x2,      /* read: enable the IRQ, write: disable it */
    REG_FILTER_CTL = 0x3,   /* read: filters on, write: filters off */
    REG_OUT8_15 = 0x4,
    REG_IN8_15 = 0x5,
    REG_IRQ_STATUS = 0x6,
};

/*
 * Bit 2 is what Linux maps the IRQ of every input line to; bits 0 and 1 say
 * which group changed (Linux before 6.4 wants one of them set as well).
 */
#define IRQ_STATUS_PENDING 0x04

struct idio16 {
    uint8_t out[2];
    bool irq_enabled;
    uint8_t irq_status;
};

static void
log_stderr(vfu_ctx_t *ctx, int level, const char *msg)
{
    fprintf(stderr, "gpio-pci-idio-16: %s\n", msg);
}

/* Inputs mirror outputs: a changed output is a changed input. */
static void
set_output(vfu_ctx_t *ctx, struct idio16 *dev, int group, uint8_t val)
{
    bool changed = dev->out[group] != val;

    dev->out[group] = val;
    if (!changed || !dev->irq_enabled) {
        return;
    }
    dev->irq_status |= IRQ_STATUS_PENDING | (1u << group);
    /* No eventfd yet (ENOENT) just means the guest is not listening. */
    if (vfu_irq_trigger(ctx, 0) < 0 && errno != ENOENT) {
        vfu_log(ctx, LOG_ERR, "INTx trigger failed: %s", strerror(errno));
    }
}

/* Reads of irq_ctl and filter_ctl are commands, as on the card. */
static uint8_t
reg_read(struct idio16 *dev, size_t reg)
{
    switch (reg) {
    case REG_OUT0_7:
    case REG_IN0_7:
        return dev->out[0];
    case REG_OUT8_15:
    case REG_IN8_15:
        return dev->out[1];
    case REG_IRQ_CTL:
        dev->irq_enabled = true;
        return 0;
    case REG_IRQ_STATUS:
        return dev->irq_status;
    case REG_FILTER_CTL:    /* nothing bounces in a loopback */
    default:
        return 0;
    }
}

static void
reg_write(vfu_ctx_t *ctx, struct idio16 *dev, size_t reg, uint8_t val)
{
    switch (reg) {
    case REG_OUT0_7:
        set_output(ctx, dev, 0, val);
        break;
    case REG_OUT8_15:
        set_output(ctx, dev, 1, val);
        break;
    case REG_IN0_7:
        dev->irq_status = 0;
        break;
    case REG_IRQ_CTL:
        dev->irq_enabled = false;
        break;
    case REG_FILTER_CTL:
    default:
        break;          /* in8_15, status and holes ignore writes */
    }
}

/* The bus may use any width; the card's registers are bytes. */
static ssize_t
bar2_access(vfu_ctx_t *ctx, char *buf, size_t count, loff_t offset,
            bool is_write)
{
    struct idio16 *dev = vfu_get_private(ctx);

    if (offset < 0 || (uint64_t)offset >= IDIO16_BAR_SIZE ||
        count > IDIO16_BAR_SIZE - (uint64_t)offset) {
        errno = EINVAL;
        return -1;
    }
    for (size_t i = 0; i < count; i++) {
        size_t reg = (size_t)offset + i;

        if (is_write) {
            reg_write(ctx, dev, reg, (uint8_t)buf[i]);
        } else {
            buf[i] = (char)reg_read(dev, reg);
        }
    }
    return (ssize_t)count;
}

static int
reset_device(vfu_ctx_t *ctx, vfu_reset_type_t type)
{
    struct idio16 *dev = vfu_get_private(ctx);

    /* Outputs drive real loads: a VMM reconnecting must not glitch them. */
    if (type == VFU_RESET_LOST_CONN) {
        return 0;
    }
    memset(dev, 0, sizeof(*dev));
    return 0;
}

static vfu_ctx_t *
create_device(const char *path, struct idio16 *dev)
{
    vfu_ctx_t *ctx = vfu_create_ctx(VFU_TRANS_SOCK, path,
                                    LIBVFIO_USER_FLAG_ATTACH_NB, dev,
                                    VFU_DEV_TYPE_PCI);

    if (ctx == NULL) {
        fprintf(stderr, "gpio-pci-idio-16: cannot serve %s: %s\n", path,
                strerror(errno));
        return NULL;
    }
    if (vfu_setup_log(ctx, log_stderr, LOG_INFO) < 0 ||
        vfu_pci_init(ctx, VFU_PCI_TYPE_CONVENTIONAL,
                     PCI_HEADER_TYPE_NORMAL, 0) < 0) {
        goto fail;
    }
    vfu_pci_set_id(ctx, IDIO16_VENDOR, IDIO16_DEVICE, IDIO16_VENDOR,
                   IDIO16_DEVICE);
    /* "other signal processing controller", as far as the class goes */
    vfu_pci_set_class(ctx, 0x11, 0x80, 0x00);
    if (vfu_setup_region(ctx, VFU_PCI_DEV_BAR2_REGION_IDX, IDIO16_BAR_SIZE,
                         bar2_access, VFU_REGION_FLAG_RW, NULL, 0, -1, 0) < 0 ||
        vfu_setup_device_nr_irqs(ctx, VFU_DEV_INTX_IRQ, 1) < 0 ||
        vfu_setup_device_reset_cb(ctx, reset_device) < 0 ||
        vfu_realize_ctx(ctx) < 0) {
        goto fail;
    }
    return ctx;
fail:
    fprintf(stderr, "gpio-pci-idio-16: device setup failed: %s\n",
            strerror(errno));
    vfu_destroy_ctx(ctx);
    return NULL;
}

/*
 * Wait on the context and on the signals together, so that a signal never
 * interrupts the library half-way through a message.
 */
static int
serve(vfu_ctx_t *ctx, int sig_fd)
{
    bool attached = false;

    for (;;) {
        struct pollfd pfd[2] = {
            { .fd = vfu_get_poll_fd(ctx), .events = POLLIN },
            { .fd = sig_fd, .events = POLLIN },
        };

        if (poll(pfd, 2, -1) < 0) {
            if (errno == EINTR) {
                continue;
            }
            perror("gpio-pci-idio-16: poll");
            return -1;
        }
        if (pfd[1].revents & POLLIN) {
            return 0;
        }
        if (!attached) {
            if (vfu_attach_ctx(ctx) == 0) {
                attached = true;
                fprintf(stderr, "gpio-pci-idio-16: client attached\n");
            } else if (errno != EAGAIN && errno != EWOULDBLOCK &&
                       errno != EINTR) {
                /* a client that failed to negotiate: wait for the next */
                perror("gpio-pci-idio-16: attach");
            }
            continue;
        }
        if (vfu_run_ctx(ctx) < 0) {
            if (errno == ENOTCONN) {
                attached = false;
                fprintf(stderr, "gpio-pci-idio-16: client gone, waiting\n");
            } else if (errno != EAGAIN && errno != EWOULDBLOCK &&
                       errno != EINTR && errno != EBUSY) {
                perror("gpio-pci-idio-16: run");
                return -1;
            }
        }
    }
}

int
main(int argc, char *argv[])
{
    struct idio16 dev = { 0 };
    sigset_t sigs;
    vfu_ctx_t *ctx;
    int sig_fd, ret;

    if (argc != 2) {
        fprintf(stderr, "usage: %s SOCKET\n", argv[0]);
        return 2;
    }
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    if (sigprocmask(SIG_BLOCK, &sigs, NULL) < 0 ||
        (sig_fd = signalfd(-1, &sigs, SFD_CLOEXEC)) < 0) {
        perror("gpio-pci-idio-16: signals");
        return 1;
    }
    ctx = create_device(argv[1], &dev);
    if (ctx == NULL) {
        close(sig_fd);
        return 1;
    }
    ret = serve(ctx, sig_fd);
    vfu_destroy_ctx(ctx);   /* removes the socket file */
    close(sig_fd);
    return ret < 0 ? 1 : 0;
}
