/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 the vfu authors. */

/*
 * Test harness shared by every test executable: a device server running in
 * a thread or a child process on a fresh socket, and small fd helpers.
 */
#ifndef VFU_TEST_HARNESS_H
#define VFU_TEST_HARNESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "libvfio-user.h"
#include "vfu-client.h"

/*
 * Device set-up, called on the server's thread after vfu_create_ctx() and
 * before vfu_realize_ctx(). Returns 0, or -1 with errno to fail the start.
 */
typedef int (harness_setup_fn)(vfu_ctx_t *ctx, void *arg);

/* Code run on the server's thread between requests (harness_server_exec). */
typedef void (harness_exec_fn)(vfu_ctx_t *ctx, void *arg);

struct harness_server;

/*
 * harness_server_start() - create a PCI device context on a new socket path
 * (non-blocking attach mode), let @setup configure it, realize it, and serve
 * clients one after another on a new thread until harness_server_stop().
 * @arg is passed to @setup and is also the context's private pointer.
 * Returns the server, or NULL with errno (the set-up's or realize's error).
 */
struct harness_server *
harness_server_start(harness_setup_fn *setup, void *arg);

/*
 * harness_server_start_process() - the same in a forked child process, so
 * that its fds can be counted apart (harness_fd_count(pid)). The child's
 * memory is its own: @setup's effects are not visible to the test.
 */
struct harness_server *
harness_server_start_process(harness_setup_fn *setup, void *arg);

/*
 * harness_server_stop() - stop serving, destroy the context (thread mode),
 * or end the child (process mode), remove the socket and free @s. Returns 0
 * if the server ended cleanly, -1 otherwise (e.g. the child crashed).
 */
int
harness_server_stop(struct harness_server *s);

/* The socket path clients connect to. */
const char *
harness_server_path(const struct harness_server *s);

/* The device context (thread mode only; NULL for a process). */
vfu_ctx_t *
harness_server_ctx(const struct harness_server *s);

/* The server's pid: the child's, or getpid() in thread mode. */
pid_t
harness_server_pid(const struct harness_server *s);

/*
 * harness_server_exec() - run @fn on the server thread between requests
 * and wait for it (thread mode only; -1/ENOTSUP otherwise). Use it for
 * device-side calls that must not race the loop, e.g.
 * vfu_device_quiesced().
 */
int
harness_server_exec(struct harness_server *s, harness_exec_fn *fn, void *arg);

/*
 * How many times vfu_run_ctx() failed with EBUSY, and the last errno of a
 * vfu_run_ctx() failure other than ENOTCONN/EBUSY (0 if none). Thread mode.
 */
unsigned
harness_server_busy_count(struct harness_server *s);
int
harness_server_last_error(struct harness_server *s);

/*
 * harness_connect() - connect to @s and negotiate the default capabilities;
 * fails the current test on error.
 */
vfu_client_t *
harness_connect(const struct harness_server *s);

/* Open fds of process @pid (0: this process), or -1. */
int
harness_fd_count(pid_t pid);

/*
 * harness_fd_count_settle() - wait up to @timeout_ms for the fd count of
 * @pid to drop to @want or below (the server closes fds asynchronously);
 * returns the last count seen.
 */
int
harness_fd_count_settle(pid_t pid, int want, int timeout_ms);

/*
 * harness_assert_fd_count() - harness_fd_count_settle(), then fail the
 * current test unless the count came down to exactly @want.
 */
void
harness_assert_fd_count(pid_t pid, int want, int timeout_ms);

/* A memfd of @size bytes (zero filled), or -1. */
int
harness_memfd(size_t size);

/* A non-blocking eventfd, or -1. */
int
harness_eventfd(void);

/*
 * harness_eventfds() - fill @fds with @n eventfds (harness_eventfd()).
 * Returns 0, or -1 with every one opened so far closed again.
 */
int
harness_eventfds(int *fds, int n);

/* harness_close_fds() - close the @n fds of @fds. */
void
harness_close_fds(const int *fds, int n);

/*
 * harness_eventfd_wait() - wait up to @timeout_ms for @fd to be signalled
 * and read it. Returns the counter read, or 0 on timeout.
 */
uint64_t
harness_eventfd_wait(int fd, int timeout_ms);

/* harness_sleep_ms() - nanosleep for @ms milliseconds. */
void
harness_sleep_ms(int ms);

/*
 * Raw messages, for requests vfu_client's own calls would never send.
 *
 * harness_msg() - write a request header to @buf: @id, @cmd, msg_size
 * sizeof(header) + @len, no flags; then the @len bytes of @payload after it,
 * unless @payload is NULL (the caller fills in, or deliberately leaves out,
 * the rest). Returns sizeof(header) + @len, the message's whole size.
 */
size_t
harness_msg(void *buf, uint16_t id, uint16_t cmd, const void *payload,
            size_t len);

/*
 * harness_raw_send() - send one message on the socket @fd as it is: a
 * header with @id, @cmd, @flags and msg_size sizeof(header) + @len, then
 * @payload, with @nfds (at most 16) fds on its first byte; what the kernel
 * leaves of a big message is sent after. Fails the test if the send does.
 */
void
harness_raw_send(int fd, uint16_t id, uint16_t cmd, uint32_t flags,
                 const void *payload, size_t len, const int *fds, int nfds);

/*
 * harness_raw_read() - read exactly @len bytes from @fd into @buf, waiting
 * at most @timeout_ms for each piece. Returns 0, or -1 (errno ETIMEDOUT,
 * EPIPE at end of stream, or read()'s) without failing the test.
 */
int
harness_raw_read(int fd, void *buf, size_t len, int timeout_ms);

/*
 * harness_log_verbose() - have @ctx log to stderr, at LOG_DEBUG, when
 * HARNESS_VERBOSE is set in the environment (as harness servers do).
 */
void
harness_log_verbose(vfu_ctx_t *ctx);

/*
 * harness_call_errno() - vfu_client_call() of @cmd with @payload and @fds,
 * the reply read into a buffer and dropped. Returns 0 if the call
 * succeeded, else the errno it failed with (the reply's error_no, or the
 * client's own error).
 */
int
harness_call_errno(vfu_client_t *c, uint16_t cmd, const void *payload,
                   size_t len, const int *fds, uint32_t nr_fds);

/*
 * A ready-made PCI device for tests (harness_dev_setup as the set-up
 * function, a struct harness_dev as its argument):
 *   vendor 0x1234 device 0x5678, subsystem 0x1234:0x0001, class 02/00/00;
 *   BAR0: 4 KiB memory served by a callback from bar0[];
 *   BAR1: 16 KiB backed by a memfd (bar1_fd), mappable in two sparse areas
 *         [0x1000, 0x2000) and [0x3000, 0x4000), accesses by callback too;
 *   BAR2: 2 MiB memory served by a callback from bar2[] (large transfers);
 *   IRQs: INTx 1, MSI-X 4; reset and quiesce callbacks; DMA enabled.
 * Counters are updated on the server thread; read them with __atomic loads
 * after a synchronous request.
 */
#define HARNESS_BAR0_SIZE 0x1000u
#define HARNESS_BAR1_SIZE 0x4000u
#define HARNESS_BAR2_SIZE (2u << 20)
#define HARNESS_NR_MSIX   4u
/* The harness device's DMA region limit (vfu_setup_device_dma's
 * max_regions); set it before a fixture starts its server. 0: the default. */
extern size_t harness_max_dma_maps;

struct harness_dev {
    uint8_t bar0[HARNESS_BAR0_SIZE];
    uint8_t *bar1;                  /* mmap of bar1_fd */
    int bar1_fd;
    uint8_t *bar2;
    int quiesce_busy;               /* quiesce callback answers EBUSY */
    int reset_errno;                /* reset callback fails with this */
    unsigned quiesce_calls;
    unsigned reset_calls;
    unsigned quiesce_calls_at_reset;    /* quiesce_calls when reset ran */
    int last_reset_type;
    unsigned bar0_writes;
    unsigned dma_registers, dma_unregisters;
};

/* Initialise dev (allocations included); harness_dev_fini() frees. */
int
harness_dev_init(struct harness_dev *dev);
void
harness_dev_fini(struct harness_dev *dev);

/* Set-up function for harness_server_start(..., dev). */
int
harness_dev_setup(vfu_ctx_t *ctx, void *dev);
/* The same device as PCI Express, with a PCIe capability (FLR capable)
 * at 0x40. */
int
harness_dev_setup_express(vfu_ctx_t *ctx, void *dev);

/*
 * cmocka fixtures (*state points to a struct harness_fixture), all undone
 * by harness_fixture_teardown():
 *   harness_fixture_setup: a harness_dev served in a thread, and a
 *     negotiated client;
 *   harness_fixture_setup_process: the same in a child process, so the
 *     server's fds can be counted (base_fds, counted before the client
 *     connected);
 *   harness_fixture_setup_process_noclient: the child process alone, for
 *     tests that make their own clients (c is NULL).
 */
struct harness_fixture {
    struct harness_dev dev;
    struct harness_server *srv;
    vfu_client_t *c;            /* NULL, or closed by the teardown */
    pid_t pid;                  /* harness_server_pid(srv) */
    int base_fds;               /* process: the server's fds, no client */
};

int
harness_fixture_setup(void **state);
int
harness_fixture_setup_process(void **state);
int
harness_fixture_setup_process_noclient(void **state);
int
harness_fixture_teardown(void **state);

#endif /* VFU_TEST_HARNESS_H */
