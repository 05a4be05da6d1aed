/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 the vfu authors. */

/*
 * The NVMe host driver of the tests and benchmark (see nvme_host.h): a
 * controller's bring-up, admin commands, I/O queue pairs, PRPs, and the
 * device process it talks to.
 */

#ifndef _GNU_SOURCE
#define _GNU_SOURCE     /* memfd_create, CPU_SET */
#endif
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <linux/vfio.h>

#include "nvme_host.h"

_Static_assert(sizeof(struct nvme_sqe) == 64, "submission queue entry");
_Static_assert(sizeof(struct nvme_cqe) == 16, "completion queue entry");

/* PCI command register: memory space, bus master. */
#define PCI_CMD_OFF 4
#define PCI_CMD_MEM_MASTER 0x0006

static uint64_t
now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void
sleep_us(long us)
{
    struct timespec ts = { .tv_sec = us / 1000000, .tv_nsec = (us % 1000000) * 1000 };

    nanosleep(&ts, NULL);
}

/* ---- registers ---- */

int
nvme_host_reg_read32(struct nvme_host *h, uint32_t off, uint32_t *val)
{
    h->n.reg_reads++;
    return vfu_client_region_read(h->c, VFIO_PCI_BAR0_REGION_INDEX, off, val, 4);
}

int
nvme_host_reg_write32(struct nvme_host *h, uint32_t off, uint32_t val)
{
    h->n.reg_writes++;
    return vfu_client_region_write(h->c, VFIO_PCI_BAR0_REGION_INDEX, off, &val, 4);
}

/* Low half first, as Linux's lo_hi_readq. */
int
nvme_host_reg_read64(struct nvme_host *h, uint32_t off, uint64_t *val)
{
    uint32_t lo, hi;

    if (nvme_host_reg_read32(h, off, &lo) < 0 ||
        nvme_host_reg_read32(h, off + 4, &hi) < 0) {
        return -1;
    }
    *val = (uint64_t)hi << 32 | lo;
    return 0;
}

static int
reg_write64(struct nvme_host *h, uint32_t off, uint64_t val)
{
    if (nvme_host_reg_write32(h, off, (uint32_t)val) < 0) {
        return -1;
    }
    return nvme_host_reg_write32(h, off + 4, (uint32_t)(val >> 32));
}

static int
doorbell(struct nvme_host *h, uint32_t off, uint16_t val)
{
    uint32_t v = val;

    h->n.doorbells++;
    return vfu_client_region_write_posted(h->c, VFIO_PCI_BAR0_REGION_INDEX,
                                          off, &v, 4);
}

/*
 * Poll CSTS until (CSTS & mask) == want, up to CAP.TO. Polls quickly at
 * first (a vfu device answers at once), then every millisecond.
 */
static int
wait_csts(struct nvme_host *h, uint32_t mask, uint32_t want, bool fatal_cfs)
{
    uint64_t deadline = now_ms() + h->timeout_ms;

    for (int i = 0;; i++) {
        uint32_t csts;

        if (nvme_host_reg_read32(h, NVME_REG_CSTS, &csts) < 0) {
            return -1;
        }
        if (csts == UINT32_MAX || (fatal_cfs && (csts & NVME_CSTS_CFS))) {
            errno = EIO;
            return -1;
        }
        if ((csts & mask) == want) {
            return 0;
        }
        if (now_ms() > deadline) {
            errno = ETIMEDOUT;
            return -1;
        }
        sleep_us(i < 100 ? 10 : 1000);
    }
}

/* ---- memory ---- */

void *
nvme_host_alloc(struct nvme_host *h, size_t size, uint64_t *iova)
{
    size_t sz = (size + NVME_PAGE - 1) & ~(size_t)(NVME_PAGE - 1);
    void *p;

    if (sz == 0 || sz > h->mem_size - h->mem_used) {
        errno = ENOMEM;
        return NULL;
    }
    p = h->mem + h->mem_used;
    h->mem_used += sz;
    memset(p, 0, sz);
    if (iova != NULL) {
        *iova = nvme_host_iova(h, p);
    }
    return p;
}

uint64_t
nvme_host_iova(const struct nvme_host *h, const void *p)
{
    return NVME_HOST_IOVA + (uint64_t)((const uint8_t *)p - h->mem);
}

/* ---- connection ---- */

static vfu_client_t *
connect_retry(const char *path)
{
    for (int i = 0; i < 200; i++) {
        vfu_client_t *c = vfu_client_connect(path);

        if (c != NULL) {
            if (vfu_client_negotiate(c, NULL, NULL) == 0) {
                return c;
            }
            vfu_client_close(c);
        }
        sleep_us(10000);
    }
    return NULL;
}

/* PRP list pages a command of max_xfer bytes may need, the last entry of
 * each full page pointing to the next. */
static uint32_t
prp_pages_for(uint32_t max_xfer)
{
    uint32_t entries = max_xfer / NVME_PAGE + 1;
    const uint32_t per_page = NVME_PAGE / 8;

    return entries <= per_page ? 1 : (entries - 1 + per_page - 2) / (per_page - 1);
}

struct nvme_host *
nvme_host_open(const char *path, size_t mem_size, uint32_t max_xfer,
               unsigned flags)
{
    struct nvme_host *h = calloc(1, sizeof(*h));
    struct vfio_irq_info irq = { .argsz = sizeof(irq) };
    uint16_t cmd;
    int saved;

    if (h == NULL) {
        return NULL;
    }
    h->memfd = -1;
    for (int i = 0; i <= NVME_HOST_MAX_IOQ; i++) {
        h->efds[i] = -1;
    }
    if (mem_size == 0 || mem_size % NVME_PAGE != 0 || max_xfer < NVME_PAGE) {
        errno = EINVAL;
        goto fail;
    }
    h->mem_size = mem_size;
    h->max_xfer = max_xfer;
    h->timeout_ms = 5000;
    h->c = connect_retry(path);
    if (h->c == NULL) {
        goto fail;
    }
    /* Sealed against shrinking, or the server would not map it (a client
     * could truncate it under the device) and DMA would go by messages. */
    h->memfd = memfd_create("nvme-host", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (h->memfd < 0 || ftruncate(h->memfd, (off_t)mem_size) < 0 ||
        fcntl(h->memfd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) < 0) {
        goto fail;
    }
    h->mem = mmap(NULL, mem_size, PROT_READ | PROT_WRITE, MAP_SHARED, h->memfd, 0);
    if (h->mem == MAP_FAILED) {
        h->mem = NULL;
        goto fail;
    }
    if (vfu_client_dma_map(h->c, NVME_HOST_IOVA, mem_size,
                           VFIO_USER_F_DMA_REGION_READ | VFIO_USER_F_DMA_REGION_WRITE,
                           (flags & NVME_HOST_NO_FD) ? -1 : h->memfd, 0,
                           h->mem) < 0) {
        goto fail;
    }
    /* What a guest's PCI core does before the driver touches BAR0. */
    if (vfu_client_region_read(h->c, VFIO_PCI_CONFIG_REGION_INDEX, PCI_CMD_OFF,
                               &cmd, 2) < 0) {
        goto fail;
    }
    cmd |= PCI_CMD_MEM_MASTER;
    if (vfu_client_region_write(h->c, VFIO_PCI_CONFIG_REGION_INDEX, PCI_CMD_OFF,
                                &cmd, 2) < 0) {
        goto fail;
    }
    if (vfu_client_get_irq_info(h->c, VFIO_PCI_MSIX_IRQ_INDEX, &irq) < 0) {
        goto fail;
    }
    h->nr_vectors = irq.count < NVME_HOST_MAX_IOQ + 1 ? irq.count : NVME_HOST_MAX_IOQ + 1;
    if (h->nr_vectors == 0) {
        errno = ENOTSUP;
        goto fail;
    }
    for (uint32_t i = 0; i < h->nr_vectors; i++) {
        h->efds[i] = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        if (h->efds[i] < 0) {
            goto fail;
        }
    }
    if (nvme_host_irq_mode(h, false) < 0) {
        goto fail;
    }
    h->scratch = nvme_host_alloc(h, NVME_PAGE, &h->scratch_iova);
    if (h->scratch == NULL) {
        goto fail;
    }
    return h;
fail:
    saved = errno;
    nvme_host_close(h);
    errno = saved;
    return NULL;
}

int
nvme_host_irq_mode(struct nvme_host *h, bool intx)
{
    const uint32_t trigger_fds = VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER;
    const uint32_t trigger_none = VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_TRIGGER;
    uint32_t max_fds = vfu_client_caps(h->c)->max_msg_fds;

    if (max_fds == 0) {
        errno = ENOTSUP;
        return -1;
    }
    if (intx) {
        /* MSI-X off (every vector), then vector 0's eventfd on INTx. */
        if (vfu_client_set_irqs(h->c, trigger_none, VFIO_PCI_MSIX_IRQ_INDEX, 0, 0,
                                NULL, 0, NULL, 0) < 0 ||
            vfu_client_set_irqs(h->c, trigger_fds, VFIO_PCI_INTX_IRQ_INDEX, 0, 1,
                                h->efds, 1, NULL, 0) < 0) {
            return -1;
        }
    } else {
        if (h->intx && vfu_client_set_irqs(h->c, trigger_none, VFIO_PCI_INTX_IRQ_INDEX,
                                           0, 0, NULL, 0, NULL, 0) < 0) {
            return -1;
        }
        /* As many vectors a message as the server takes fds in one. */
        for (uint32_t i = 0; i < h->nr_vectors; i += max_fds) {
            uint32_t n = h->nr_vectors - i < max_fds ? h->nr_vectors - i : max_fds;

            if (vfu_client_set_irqs(h->c, trigger_fds, VFIO_PCI_MSIX_IRQ_INDEX, i, n,
                                    h->efds + i, n, NULL, 0) < 0) {
                return -1;
            }
        }
    }
    h->intx = intx;
    h->admin.efd = h->efds[0];
    for (int i = 1; i <= NVME_HOST_MAX_IOQ; i++) {
        h->io[i].efd = h->efds[intx ? 0 : i];
    }
    return 0;
}

void
nvme_host_close(struct nvme_host *h)
{
    if (h == NULL) {
        return;
    }
    vfu_client_close(h->c);
    for (int i = 0; i <= NVME_HOST_MAX_IOQ; i++) {
        if (h->efds[i] >= 0) {
            close(h->efds[i]);
        }
    }
    if (h->mem != NULL) {
        munmap(h->mem, h->mem_size);
    }
    if (h->memfd >= 0) {
        close(h->memfd);
    }
    free(h);
}

/* ---- queues ---- */

/*
 * (Re)set queue @q: memory for @sq_size and @cq_size entries (kept from
 * an earlier life of the queue when it is big enough), an empty CQ whose
 * entries all carry phase 0, so that the controller's first pass (phase
 * 1) shows.
 */
static int
queue_init(struct nvme_host *h, struct nvme_queue *q, uint16_t qid,
           uint16_t sq_size, uint16_t cq_size, bool with_prp)
{
    size_t sq_bytes = (size_t)sq_size * sizeof(struct nvme_sqe);
    size_t cq_bytes = (size_t)cq_size * sizeof(struct nvme_cqe);

    if (q->room < sq_size) {
        q->sq = nvme_host_alloc(h, sq_bytes, &q->sq_iova);
        if (q->sq == NULL) {
            return -1;
        }
        if (with_prp) {
            q->prp_pages = prp_pages_for(h->max_xfer);
            q->prp = nvme_host_alloc(h, (size_t)sq_size * q->prp_pages * NVME_PAGE,
                                     &q->prp_iova);
            if (q->prp == NULL) {
                return -1;
            }
        }
        q->room = sq_size;
    }
    if (q->cq_room < cq_size) {
        q->cq = nvme_host_alloc(h, cq_bytes, &q->cq_iova);
        if (q->cq == NULL) {
            return -1;
        }
        q->cq_room = cq_size;
    }
    memset(q->sq, 0, sq_bytes);
    memset((void *)q->cq, 0, cq_bytes);
    q->qid = qid;
    q->size = sq_size;
    q->cq_size = cq_size;
    q->sq_tail = q->sq_head = q->cq_head = 0;
    q->phase = 1;
    q->cq_batch = 1;
    q->cq_unrung = 0;
    q->cq_more = false;
    q->sq_db = NVME_REG_DBS + 2u * qid * h->dstrd;
    q->cq_db = NVME_REG_DBS + (2u * qid + 1) * h->dstrd;
    q->efd = h->efds[h->intx ? 0 : qid];
    q->live = true;
    return 0;
}

int
nvme_host_push(struct nvme_host *h, struct nvme_queue *q,
               const struct nvme_sqe *sqe)
{
    uint16_t next = (uint16_t)((q->sq_tail + 1) % q->size);

    if (!q->live) {
        errno = ENODEV;
        return -1;
    }
    if (next == q->sq_head) {
        errno = EBUSY;
        return -1;
    }
    q->sq[q->sq_tail] = *sqe;
    q->sq_tail = next;
    h->n.commands++;
    return 0;
}

int
nvme_host_ring(struct nvme_host *h, struct nvme_queue *q)
{
    return doorbell(h, q->sq_db, q->sq_tail);
}

/* Completions ready in q, up to max; no doorbell. */
static int
take(struct nvme_queue *q, struct nvme_cqe *out, int max)
{
    int n = 0;

    while (n < max) {
        volatile struct nvme_cqe *e = &q->cq[q->cq_head];
        /* The phase tag first; the rest of the entry is read after it. */
        uint16_t st = __atomic_load_n(&e->status, __ATOMIC_ACQUIRE);

        if ((st & 1) != q->phase) {
            break;
        }
        out[n].result = e->result;
        out[n].rsvd = e->rsvd;
        out[n].sq_head = e->sq_head;
        out[n].sq_id = e->sq_id;
        out[n].cid = e->cid;
        out[n].status = st;
        q->sq_head = out[n].sq_head;
        n++;
        if (++q->cq_head == q->cq_size) {
            q->cq_head = 0;
            q->phase ^= 1;
        }
    }
    return n;
}

/*
 * Wait for q's vector, or for the server to need us (a DMA request, or
 * its end). The eventfd's counter says how many interrupts came. Returns
 * 1 if the vector fired, 0 if only the server's requests were served, -1
 * with errno (ETIMEDOUT, ENOTCONN).
 */
static int
wait_irq(struct nvme_host *h, struct nvme_queue *q, int timeout_ms)
{
    struct pollfd p[2] = {
        { .fd = q->efd, .events = POLLIN },
        { .fd = vfu_client_fd(h->c), .events = POLLIN },
    };
    int n, fired = 0;

    do {
        n = poll(p, 2, timeout_ms);
    } while (n < 0 && errno == EINTR);
    if (n < 0) {
        return -1;
    }
    if (n == 0) {
        errno = ETIMEDOUT;
        return -1;
    }
    if (p[0].revents & POLLIN) {
        uint64_t v;

        if (read(q->efd, &v, sizeof(v)) == (ssize_t)sizeof(v)) {
            h->n.interrupts += v;
            h->n.wakeups++;
            fired = 1;
        }
    }
    if (p[1].revents != 0) {
        int served;

        if (h->dma_delay_ms != 0) {
            struct timespec d = { h->dma_delay_ms / 1000,
                                  (long)(h->dma_delay_ms % 1000) * 1000000L };
            nanosleep(&d, NULL);
        }
        served = vfu_client_poll(h->c, 0);

        if (served < 0) {
            return -1;
        }
        h->n.server_reqs += (uint64_t)served;
    }
    return fired;
}

/*
 * The CQ is looked at when its vector fires, as an interrupt handler
 * would, or when the last reap left entries behind (it took max); not
 * before: with memory the device reaches by messages, entries land while
 * the host serves DMA_WRITEs, and taking them then would ring a doorbell
 * per command and break the device's batches.
 */
int
nvme_host_reap(struct nvme_host *h, struct nvme_queue *q, struct nvme_cqe *out,
               int max, int timeout_ms)
{
    uint64_t deadline = timeout_ms < 0 ? 0 : now_ms() + (uint64_t)timeout_ms;
    bool look = q->cq_more;
    int n = 0;

    for (;;) {
        int left = -1, fired;

        if (look && (n = take(q, out, max)) > 0) {
            break;
        }
        if (timeout_ms >= 0) {
            uint64_t t = now_ms();

            if (t >= deadline) {
                errno = ETIMEDOUT;
                return -1;
            }
            left = (int)(deadline - t);
        }
        fired = wait_irq(h, q, left);
        if (fired < 0) {
            /* A last look: the entry may be there without its interrupt. */
            int saved = errno;

            if ((n = take(q, out, max)) > 0) {
                break;
            }
            errno = saved;
            return -1;
        }
        look = look || fired;
    }
    q->cq_more = n == max;
    q->cq_unrung = (uint16_t)(q->cq_unrung + n);
    if (q->cq_unrung >= q->cq_batch || q->cq_unrung >= q->cq_size / 2) {
        q->cq_unrung = 0;
        if (doorbell(h, q->cq_db, q->cq_head) < 0) {
            return -1;
        }
    }
    return n;
}

/* ---- admin commands ---- */

int
nvme_host_admin(struct nvme_host *h, struct nvme_sqe *sqe, struct nvme_cqe *cqe)
{
    struct nvme_cqe got;

    sqe->cid = h->next_admin_cid++;
    if (h->next_admin_cid == UINT16_MAX) {
        h->next_admin_cid = 0;
    }
    if (nvme_host_push(h, &h->admin, sqe) < 0 || nvme_host_ring(h, &h->admin) < 0) {
        return -1;
    }
    do {
        if (nvme_host_reap(h, &h->admin, &got, 1, (int)h->timeout_ms) < 0) {
            return -1;
        }
    } while (got.cid != sqe->cid);  /* not ours: nothing else is in flight */
    if (cqe != NULL) {
        *cqe = got;
    }
    if (NVME_CQE_STATUS(&got) != 0) {
        errno = EIO;
        return -1;
    }
    return 0;
}

static uint16_t
le16_at(const uint8_t *p)
{
    return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t
le32_at(const uint8_t *p)
{
    return (uint32_t)le16_at(p) | (uint32_t)le16_at(p + 2) << 16;
}

static uint64_t
le64_at(const uint8_t *p)
{
    return (uint64_t)le32_at(p) | (uint64_t)le32_at(p + 4) << 32;
}

/* An ASCII field of Identify, its trailing spaces dropped. */
static void
ascii_field(char *dst, const uint8_t *src, size_t len)
{
    memcpy(dst, src, len);
    dst[len] = '\0';
    while (len > 0 && (dst[len - 1] == ' ' || dst[len - 1] == '\0')) {
        dst[--len] = '\0';
    }
}

static int
identify(struct nvme_host *h, uint32_t cns, uint32_t nsid)
{
    struct nvme_sqe sqe = {
        .opcode = NVME_ADM_IDENTIFY, .nsid = nsid,
        .prp1 = h->scratch_iova, .cdw10 = cns,
    };

    memset(h->scratch, 0, NVME_PAGE);
    return nvme_host_admin(h, &sqe, NULL);
}

/* Identify controller and namespace 1, into h. */
static int
identify_all(struct nvme_host *h)
{
    const uint8_t *id = h->scratch;
    uint8_t mdts, flbas, lbads;

    if (identify(h, NVME_CNS_CTRL, 0) < 0) {
        return -1;
    }
    ascii_field(h->sn, id + 4, 20);
    ascii_field(h->mn, id + 24, 40);
    mdts = id[77];
    h->mdts_bytes = mdts == 0 || mdts > 20 ? 0 : NVME_PAGE << mdts;
    h->nn = le32_at(id + 516);
    h->oncs = le16_at(id + 520);
    /* SQES/CQES: the required (minimum) size in the low nibble. */
    if ((id[512] & 0xf) > 6 || (id[513] & 0xf) > 4) {
        errno = ENOTSUP;
        return -1;
    }
    if (h->nn < 1 || identify(h, NVME_CNS_NS, 1) < 0) {
        return -1;
    }
    h->nsze = le64_at(id + 0);
    flbas = id[26] & 0xf;
    lbads = id[128 + 4 * flbas + 2];
    if (lbads < 9 || lbads > 12) {
        errno = ENOTSUP;
        return -1;
    }
    h->lba_size = 1u << lbads;
    return 0;
}

int
nvme_host_disable(struct nvme_host *h)
{
    uint32_t cc;

    if (nvme_host_reg_read32(h, NVME_REG_CC, &cc) < 0 ||
        nvme_host_reg_write32(h, NVME_REG_CC,
                              cc & ~(NVME_CC_EN | NVME_CC_SHN_MASK)) < 0) {
        return -1;
    }
    h->admin.live = false;
    for (int i = 0; i <= NVME_HOST_MAX_IOQ; i++) {
        h->io[i].live = false;
    }
    h->max_ioq = 0;
    return wait_csts(h, NVME_CSTS_RDY, 0, false);
}

int
nvme_host_enable(struct nvme_host *h, uint16_t admin_size)
{
    uint32_t cc;

    if (nvme_host_reg_read64(h, NVME_REG_CAP, &h->cap) < 0) {
        return -1;
    }
    if (NVME_CAP_MPSMIN(h->cap) != 0 || !NVME_CAP_CSS_NVM(h->cap) ||
        admin_size < 2 || admin_size > 4096) {
        errno = ENOTSUP;
        return -1;
    }
    h->dstrd = 4u << NVME_CAP_DSTRD(h->cap);
    h->timeout_ms = (NVME_CAP_TO(h->cap) ? NVME_CAP_TO(h->cap) : 1) * 500u;
    /* A controller left enabled (or still getting ready) is reset first. */
    if (nvme_host_disable(h) < 0) {
        return -1;
    }
    if (queue_init(h, &h->admin, 0, admin_size, admin_size, false) < 0) {
        return -1;
    }
    h->admin.live = false;
    if (nvme_host_reg_write32(h, NVME_REG_AQA,
                              (uint32_t)(admin_size - 1) << 16 | (admin_size - 1)) < 0 ||
        reg_write64(h, NVME_REG_ASQ, h->admin.sq_iova) < 0 ||
        reg_write64(h, NVME_REG_ACQ, h->admin.cq_iova) < 0) {
        return -1;
    }
    cc = NVME_CC_EN | NVME_CC_IOSQES | NVME_CC_IOCQES;  /* MPS 0: 4 KiB, CSS NVM */
    if (nvme_host_reg_write32(h, NVME_REG_CC, cc) < 0 ||
        wait_csts(h, NVME_CSTS_RDY, NVME_CSTS_RDY, true) < 0) {
        return -1;
    }
    h->admin.live = true;
    return identify_all(h);
}

int
nvme_host_shutdown(struct nvme_host *h)
{
    uint32_t cc;

    if (nvme_host_reg_read32(h, NVME_REG_CC, &cc) < 0 ||
        nvme_host_reg_write32(h, NVME_REG_CC,
                              (cc & ~NVME_CC_SHN_MASK) | NVME_CC_SHN_NORMAL) < 0) {
        return -1;
    }
    return wait_csts(h, NVME_CSTS_SHST_MASK, NVME_CSTS_SHST_DONE, false);
}

/* Ask once for as many I/O queue pairs as this host has room for. */
static int
ask_queues(struct nvme_host *h)
{
    struct nvme_sqe sqe = {
        .opcode = NVME_ADM_SET_FEAT,
        .cdw10 = NVME_FEAT_NUM_QUEUES,
        .cdw11 = (NVME_HOST_MAX_IOQ - 1) << 16 | (NVME_HOST_MAX_IOQ - 1),
    };
    struct nvme_cqe cqe;
    uint32_t nsq, ncq;

    if (nvme_host_admin(h, &sqe, &cqe) < 0) {
        return -1;
    }
    nsq = (cqe.result & 0xffff) + 1;
    ncq = (cqe.result >> 16) + 1;
    h->max_ioq = (uint16_t)(nsq < ncq ? nsq : ncq);
    if (h->max_ioq > NVME_HOST_MAX_IOQ) {
        h->max_ioq = NVME_HOST_MAX_IOQ;
    }
    return 0;
}

struct nvme_queue *
nvme_host_create_ioq(struct nvme_host *h, uint16_t qid, uint16_t size)
{
    return nvme_host_create_ioq_sized(h, qid, size, size);
}

struct nvme_queue *
nvme_host_create_ioq_sized(struct nvme_host *h, uint16_t qid, uint16_t sq_size,
                           uint16_t cq_size)
{
    uint32_t most;
    struct nvme_queue *q;
    struct nvme_sqe sqe;

    if (h->max_ioq == 0 && ask_queues(h) < 0) {
        return NULL;
    }
    most = NVME_CAP_MQES(h->cap) + 1;
    if (qid < 1 || qid > h->max_ioq || qid >= h->nr_vectors || sq_size < 2 ||
        cq_size < 2 || sq_size > most || cq_size > most) {
        errno = EINVAL;
        return NULL;
    }
    q = &h->io[qid];
    if (queue_init(h, q, qid, sq_size, cq_size, true) < 0) {
        return NULL;
    }
    q->live = false;
    sqe = (struct nvme_sqe){
        .opcode = NVME_ADM_CREATE_CQ, .prp1 = q->cq_iova,
        .cdw10 = (uint32_t)(cq_size - 1) << 16 | qid,
        .cdw11 = (uint32_t)qid << 16 | 0x3,     /* vector qid, IEN, PC */
    };
    if (nvme_host_admin(h, &sqe, NULL) < 0) {
        return NULL;
    }
    sqe = (struct nvme_sqe){
        .opcode = NVME_ADM_CREATE_SQ, .prp1 = q->sq_iova,
        .cdw10 = (uint32_t)(sq_size - 1) << 16 | qid,
        .cdw11 = (uint32_t)qid << 16 | 0x1,     /* CQ qid, PC */
    };
    if (nvme_host_admin(h, &sqe, NULL) < 0) {
        return NULL;
    }
    q->live = true;
    return q;
}

int
nvme_host_delete_ioq(struct nvme_host *h, uint16_t qid)
{
    struct nvme_sqe sqe = { .opcode = NVME_ADM_DELETE_SQ, .cdw10 = qid };

    if (qid < 1 || qid > NVME_HOST_MAX_IOQ) {
        errno = EINVAL;
        return -1;
    }
    if (nvme_host_admin(h, &sqe, NULL) < 0) {
        return -1;
    }
    sqe = (struct nvme_sqe){ .opcode = NVME_ADM_DELETE_CQ, .cdw10 = qid };
    h->io[qid].live = false;
    return nvme_host_admin(h, &sqe, NULL);
}

/* ---- I/O ---- */

int
nvme_host_prp(struct nvme_host *h, struct nvme_queue *q, struct nvme_sqe *sqe,
              uint64_t iova, size_t len)
{
    const uint32_t per_page = NVME_PAGE / 8;
    uint64_t first = NVME_PAGE - (iova & (NVME_PAGE - 1));
    uint64_t page, *list;
    size_t left, entries;
    uint64_t list_iova;

    if (len == 0 || len > h->max_xfer || (iova & 3) != 0 || sqe->cid >= q->size) {
        errno = EINVAL;
        return -1;
    }
    sqe->prp1 = iova;
    sqe->prp2 = 0;
    if (len <= first) {
        return 0;
    }
    left = len - first;
    page = (iova & ~(uint64_t)(NVME_PAGE - 1)) + NVME_PAGE;
    entries = (left + NVME_PAGE - 1) / NVME_PAGE;
    if (entries == 1) {
        sqe->prp2 = page;
        return 0;
    }
    list = (uint64_t *)(q->prp + (size_t)sqe->cid * q->prp_pages * NVME_PAGE);
    list_iova = q->prp_iova + (uint64_t)sqe->cid * q->prp_pages * NVME_PAGE;
    sqe->prp2 = list_iova;
    while (entries > 0) {
        /* A page's last slot chains to the next page when more follow. */
        uint32_t here = entries > per_page ? per_page - 1 : (uint32_t)entries;

        for (uint32_t i = 0; i < here; i++, page += NVME_PAGE) {
            list[i] = page;
        }
        entries -= here;
        if (entries > 0) {
            list_iova += NVME_PAGE;
            list[per_page - 1] = list_iova;
            list += per_page;
        }
    }
    return 0;
}

int
nvme_host_rw(struct nvme_host *h, struct nvme_queue *q, uint8_t opcode,
             uint16_t cid, uint64_t slba, uint32_t nlb, uint64_t iova)
{
    struct nvme_sqe sqe = {
        .opcode = opcode, .cid = cid, .nsid = 1,
        .cdw10 = (uint32_t)slba, .cdw11 = (uint32_t)(slba >> 32),
        .cdw12 = nlb - 1,
    };

    if (nlb == 0 || nlb > 65536 ||
        nvme_host_prp(h, q, &sqe, iova, (size_t)nlb * h->lba_size) < 0) {
        errno = EINVAL;
        return -1;
    }
    return nvme_host_push(h, q, &sqe);
}

/* ---- the device process ---- */

pid_t
nvme_device_spawn(char *const argv[], const char *sock, const char *log,
                  bool pin)
{
    struct stat st;
    pid_t pid;

    unlink(sock);
    pid = fork();
    if (pid < 0) {
        return -1;
    }
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        if (pin) {
            cpu_set_t set;

            CPU_ZERO(&set);
            CPU_SET(0, &set);
            sched_setaffinity(0, sizeof(set), &set);
        }
        if (log != NULL) {
            int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

            if (fd >= 0) {
                dup2(fd, 1);
                dup2(fd, 2);
            }
        }
        execvp(argv[0], argv);
        _exit(127);
    }
    for (int i = 0; i < 1000; i++) {
        if (stat(sock, &st) == 0 && S_ISSOCK(st.st_mode)) {
            return pid;
        }
        if (waitpid(pid, NULL, WNOHANG) == pid) {
            errno = ECHILD;
            return -1;
        }
        sleep_us(10000);
    }
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    errno = ETIMEDOUT;
    return -1;
}

int
nvme_device_stop(pid_t pid)
{
    int status = 0;

    kill(pid, SIGTERM);
    for (int i = 0; i < 500; i++) {
        if (waitpid(pid, &status, WNOHANG) == pid) {
            return status;
        }
        sleep_us(10000);
    }
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    return status;
}

const char *
nvme_device_script(const char *built_in)
{
    const char *s = getenv("VFU_NVME_SCRIPT");

    return s != NULL && s[0] != '\0' ? s : built_in;
}

void
nvme_device_print_log(const char *path)
{
    char line[512];
    FILE *f = fopen(path, "r");

    if (f == NULL) {
        return;
    }
    fprintf(stderr, "--- device log\n");
    while (fgets(line, sizeof(line), f) != NULL) {
        fputs(line, stderr);
    }
    fclose(f);
}
