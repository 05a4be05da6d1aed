/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 the vfu authors. */

/*
 * A small NVMe host driver over vfu's client library, for the NVMe
 * integration test and benchmark: what Linux's nvme driver does to a
 * controller, in the same order, without the block layer.
 *
 * Memory: one memfd, mapped into this process and DMA_MAPped (with its fd)
 * to the device at NVME_HOST_IOVA, holds the queues, PRP lists and
 * whatever the caller takes with nvme_host_alloc(). Registers are region
 * 0 (BAR0) accesses of 4 bytes, as Linux makes them (64-bit registers as
 * low then high half); doorbells are posted writes (no reply waited for,
 * as QEMU sends writes to memory BARs). Each completion queue has its own
 * MSI-X vector (the admin queue 0, I/O queue n vector n), each vector an
 * eventfd of ours.
 *
 * Single-threaded: one caller drives a host. Functions return 0 (or a
 * count) on success, -1 with errno otherwise; a command the controller
 * completed with an error status is EIO, its status kept in the CQE.
 */
#ifndef VFU_TESTS_NVME_HOST_H
#define VFU_TESTS_NVME_HOST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "vfu-client.h"

/* ---- interface facts (NVMe base specification 1.4) ---- */

/* Controller registers in BAR0. */
#define NVME_REG_CAP    0x00    /* 64 */
#define NVME_REG_VS     0x08
#define NVME_REG_INTMS  0x0c
#define NVME_REG_INTMC  0x10
#define NVME_REG_CC     0x14
#define NVME_REG_CSTS   0x1c
#define NVME_REG_AQA    0x24
#define NVME_REG_ASQ    0x28    /* 64 */
#define NVME_REG_ACQ    0x30    /* 64 */
#define NVME_REG_DBS    0x1000

#define NVME_CAP_MQES(cap)   ((uint32_t)((cap) & 0xffff))
#define NVME_CAP_TO(cap)     ((uint32_t)(((cap) >> 24) & 0xff))
#define NVME_CAP_DSTRD(cap)  ((uint32_t)(((cap) >> 32) & 0xf))
#define NVME_CAP_CSS_NVM(cap) (((cap) >> 37) & 1)
#define NVME_CAP_MPSMIN(cap) ((uint32_t)(((cap) >> 48) & 0xf))

#define NVME_CC_EN           (1u << 0)
#define NVME_CC_MPS_SHIFT    7
#define NVME_CC_SHN_NORMAL   (1u << 14)
#define NVME_CC_SHN_MASK     (3u << 14)
#define NVME_CC_IOSQES       (6u << 16)     /* 64-byte entries */
#define NVME_CC_IOCQES       (4u << 20)     /* 16-byte entries */

#define NVME_CSTS_RDY        (1u << 0)
#define NVME_CSTS_CFS        (1u << 1)
#define NVME_CSTS_SHST_MASK  (3u << 2)
#define NVME_CSTS_SHST_DONE  (2u << 2)

/* Admin opcodes. */
#define NVME_ADM_DELETE_SQ   0x00
#define NVME_ADM_CREATE_SQ   0x01
#define NVME_ADM_GET_LOG     0x02
#define NVME_ADM_DELETE_CQ   0x04
#define NVME_ADM_CREATE_CQ   0x05
#define NVME_ADM_IDENTIFY    0x06
#define NVME_ADM_ABORT       0x08
#define NVME_ADM_SET_FEAT    0x09
#define NVME_ADM_GET_FEAT    0x0a
#define NVME_ADM_AER         0x0c

/* NVM command set opcodes. */
#define NVME_CMD_FLUSH       0x00
#define NVME_CMD_WRITE       0x01
#define NVME_CMD_READ        0x02
#define NVME_CMD_WRITE_ZEROES 0x08
#define NVME_CMD_DSM         0x09

/* Identify CNS values, feature ids. */
#define NVME_CNS_NS          0x00
#define NVME_CNS_CTRL        0x01
#define NVME_CNS_NS_LIST     0x02
#define NVME_FEAT_NUM_QUEUES 0x07

#define NVME_PAGE            4096u

struct nvme_sqe {
    uint8_t opcode;
    uint8_t flags;
    uint16_t cid;
    uint32_t nsid;
    uint32_t cdw2, cdw3;
    uint64_t mptr;
    uint64_t prp1, prp2;
    uint32_t cdw10, cdw11, cdw12, cdw13, cdw14, cdw15;
};

struct nvme_cqe {
    uint32_t result;
    uint32_t rsvd;
    uint16_t sq_head;
    uint16_t sq_id;
    uint16_t cid;
    uint16_t status;    /* bit 0 the phase tag, bits 15:1 the status field */
};

/* The status field without the phase tag: SC in 7:0, SCT in 10:8. */
#define NVME_CQE_STATUS(cqe) ((uint16_t)((cqe)->status >> 1))

/* ---- the host ---- */

/* Where the host's memory is in the device's view. */
#define NVME_HOST_IOVA 0x40000000ull

/* Queue ids an I/O queue may have here. */
#define NVME_HOST_MAX_IOQ 8

struct nvme_queue {
    uint16_t qid;
    uint16_t size;          /* SQ entries */
    uint16_t cq_size;       /* CQ entries */
    struct nvme_sqe *sq;
    volatile struct nvme_cqe *cq;
    uint64_t sq_iova, cq_iova;
    uint16_t sq_tail;       /* next entry we write */
    uint16_t sq_head;       /* as the controller last reported it */
    uint16_t cq_head;
    /*
     * Completions taken between CQ head doorbells: 1 (the default, as
     * Linux) rings after every reap; more lets a host trade the doorbell
     * for CQ room. Never more than half the queue goes unrung.
     */
    uint16_t cq_batch;
    uint16_t cq_unrung;
    bool cq_more;           /* the last reap took as many as it could */
    uint8_t phase;          /* the phase tag of a new entry at cq_head */
    bool live;
    int efd;                /* this queue's vector's eventfd */
    uint32_t sq_db, cq_db;  /* doorbell offsets in BAR0 */
    /* One PRP list area per command id, prp_pages pages each. */
    uint8_t *prp;
    uint64_t prp_iova;
    uint32_t prp_pages;
    size_t room, cq_room;   /* entries the memory above was taken for */
};

/* What the host sent and got, for "messages per command". */
struct nvme_host_counts {
    uint64_t doorbells;     /* posted REGION_WRITEs */
    uint64_t reg_reads;     /* REGION_READs */
    uint64_t reg_writes;    /* REGION_WRITEs waited for */
    uint64_t interrupts;    /* eventfd signals (the counters read) */
    uint64_t wakeups;       /* polls that found an eventfd signalled */
    uint64_t commands;      /* submitted */
    uint64_t server_reqs;   /* the server's own requests served (DMA_READ/WRITE) */
};

struct nvme_host {
    vfu_client_t *c;
    int memfd;
    uint8_t *mem;
    size_t mem_size, mem_used;
    uint64_t cap;
    uint32_t dstrd;         /* doorbell stride in bytes */
    uint32_t timeout_ms;    /* CAP.TO */
    uint32_t dma_delay_ms;  /* waited before serving the device's DMA
                             * requests: a slow or busy host (0: none) */
    uint32_t nr_vectors;
    bool intx;              /* INTx (efds[0] for every queue), not MSI-X */
    int efds[NVME_HOST_MAX_IOQ + 1];
    uint32_t max_xfer;      /* bytes one I/O command may move here */
    uint16_t max_ioq;       /* I/O queues granted (Set Features), 0: not asked */
    uint16_t next_admin_cid;
    uint8_t *scratch;       /* one page for Identify */
    uint64_t scratch_iova;
    struct nvme_queue admin;
    struct nvme_queue io[NVME_HOST_MAX_IOQ + 1];    /* by qid */
    struct nvme_host_counts n;
    /* From Identify. */
    uint32_t nn;            /* namespaces */
    uint32_t mdts_bytes;    /* 0: no limit */
    uint64_t nsze;          /* namespace 1, in blocks */
    uint32_t lba_size;
    uint16_t oncs;
    char mn[41], sn[21];
};

/* nvme_host_open() flags */
#define NVME_HOST_NO_FD 0x1     /* map the memory without its fd: the device
                                 * reaches it by DMA_READ/DMA_WRITE messages,
                                 * as QEMU's RAM that is not shared */

/*
 * nvme_host_open() - connect to the device at @path, negotiate, map
 * @mem_size bytes (a multiple of 4 KiB) of host memory to it, set memory
 * space and bus master in the command register and put an eventfd on each
 * MSI-X vector (up to NVME_HOST_MAX_IOQ + 1). Does not touch the
 * controller: nvme_host_enable() next. @max_xfer: the largest I/O this
 * host will submit (PRP list room per command); @flags: NVME_HOST_*.
 * Returns the host or NULL.
 */
struct nvme_host *
nvme_host_open(const char *path, size_t mem_size, uint32_t max_xfer,
               unsigned flags);

/*
 * nvme_host_irq_mode() - interrupts by MSI-X (each queue its vector's
 * eventfd; what nvme_host_open() sets up) or, with @intx, by INTx: MSI-X
 * switched off and efds[0] on the INTx line, which every queue then waits
 * on.
 */
int
nvme_host_irq_mode(struct nvme_host *h, bool intx);

/* nvme_host_close() - disconnect and free everything. NULL is a no-op. */
void
nvme_host_close(struct nvme_host *h);

/*
 * nvme_host_enable() - bring the controller up as Linux does: CC.EN = 0
 * and wait for CSTS.RDY = 0; admin queues of @admin_size entries in AQA,
 * ASQ, ACQ; CC with EN and 4 KiB pages; wait for CSTS.RDY = 1 (up to
 * CAP.TO). Then Identify controller and namespace 1. ETIMEDOUT if the
 * controller never gets ready, EIO if it reports CSTS.CFS.
 */
int
nvme_host_enable(struct nvme_host *h, uint16_t admin_size);

/*
 * nvme_host_disable() - CC.EN = 0 and wait for CSTS.RDY = 0: a controller
 * reset. Every queue is gone afterwards (host side too); memory taken with
 * nvme_host_alloc() stays.
 */
int
nvme_host_disable(struct nvme_host *h);

/* nvme_host_shutdown() - CC.SHN normal; wait for CSTS.SHST complete. */
int
nvme_host_shutdown(struct nvme_host *h);

/*
 * nvme_host_alloc() - @size bytes (rounded up to 4 KiB, page aligned) of
 * the host's device-visible memory, zeroed; *@iova gets their address in
 * the device's view. NULL/ENOMEM when the memfd is used up.
 */
void *
nvme_host_alloc(struct nvme_host *h, size_t size, uint64_t *iova);

/* The device address of a pointer into the host's memory. */
uint64_t
nvme_host_iova(const struct nvme_host *h, const void *p);

/*
 * nvme_host_admin() - submit @sqe on the admin queue (its cid is set
 * here), wait up to the host's timeout for the completion and copy it to
 * @cqe (may be NULL). EIO if the status is not success.
 */
int
nvme_host_admin(struct nvme_host *h, struct nvme_sqe *sqe, struct nvme_cqe *cqe);

/*
 * nvme_host_create_ioq() - Set Features number of queues (first time
 * only), Create I/O CQ @qid of @size entries on MSI-X vector @qid, then
 * the I/O SQ @qid on it. Returns the queue, or NULL.
 */
struct nvme_queue *
nvme_host_create_ioq(struct nvme_host *h, uint16_t qid, uint16_t size);

/* The same with an SQ of @sq_size entries on a CQ of @cq_size. */
struct nvme_queue *
nvme_host_create_ioq_sized(struct nvme_host *h, uint16_t qid, uint16_t sq_size,
                           uint16_t cq_size);

/* nvme_host_delete_ioq() - Delete I/O SQ, then CQ @qid. */
int
nvme_host_delete_ioq(struct nvme_host *h, uint16_t qid);

/*
 * nvme_host_prp() - fill @sqe's PRP1/PRP2 for @len bytes at @iova (in the
 * host's memory; any offset, 4-byte aligned), writing a PRP list (chained
 * across pages when it is long) into @q's area for @sqe->cid. EINVAL if
 * @len is 0 or above max_xfer.
 */
int
nvme_host_prp(struct nvme_host *h, struct nvme_queue *q, struct nvme_sqe *sqe,
              uint64_t iova, size_t len);

/*
 * nvme_host_rw() - a Read or Write (@opcode) of @nlb blocks at @slba of
 * namespace 1, data at @iova, command id @cid (< q->size - 1, not in
 * flight), put in @q's SQ. Not rung: nvme_host_ring() sends the tail.
 */
int
nvme_host_rw(struct nvme_host *h, struct nvme_queue *q, uint8_t opcode,
             uint16_t cid, uint64_t slba, uint32_t nlb, uint64_t iova);

/* nvme_host_push() - put @sqe in @q's SQ as it is (EBUSY when full). */
int
nvme_host_push(struct nvme_host *h, struct nvme_queue *q,
               const struct nvme_sqe *sqe);

/* nvme_host_ring() - write @q's SQ tail doorbell (posted). */
int
nvme_host_ring(struct nvme_host *h, struct nvme_queue *q);

/*
 * nvme_host_reap() - take up to @max completions from @q into @out,
 * once the queue's eventfd says they are there (or the last reap left
 * some), waiting up to @timeout_ms (-1: forever) for it and serving the
 * server's DMA requests meanwhile, should it send any; then write the
 * CQ head doorbell once (posted; with q->cq_batch above 1, only once that
 * many are unrung). Returns the number taken (>= 1), or -1 with
 * ETIMEDOUT/ENOTCONN.
 */
int
nvme_host_reap(struct nvme_host *h, struct nvme_queue *q, struct nvme_cqe *out,
               int max, int timeout_ms);

/* Register access, 4 bytes at a time; counted. */
int
nvme_host_reg_read32(struct nvme_host *h, uint32_t off, uint32_t *val);
int
nvme_host_reg_write32(struct nvme_host *h, uint32_t off, uint32_t val);
int
nvme_host_reg_read64(struct nvme_host *h, uint32_t off, uint64_t *val);

/* ---- the device process ---- */

/*
 * nvme_device_spawn() - run @argv (argv[0] a path; e.g. vfu-lua, the
 * script, @sock, the namespace) as a child, stdout and stderr to @log if
 * not NULL, pinned to CPU 0 if @pin, dying with us; @sock is removed first
 * and waited for (10 s at most). Returns the pid, or -1 (the child's log
 * says why).
 */
pid_t
nvme_device_spawn(char *const argv[], const char *sock, const char *log,
                  bool pin);

/* nvme_device_print_log() - copy the device's log at @path to stderr,
 * under a "--- device log" line (nothing if it can't be read). */
void
nvme_device_print_log(const char *path);

/* nvme_device_script() - $VFU_NVME_SCRIPT if set, else @built_in (the
 * build's devices/nvme.lua). */
const char *
nvme_device_script(const char *built_in);

/* nvme_device_stop() - SIGTERM and reap; returns the child's wait status. */
int
nvme_device_stop(pid_t pid);

#endif /* VFU_TESTS_NVME_HOST_H */
