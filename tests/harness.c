/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 the vfu authors. */

/* Test harness: a device server in a thread or child process. */

#ifndef _GNU_SOURCE
#define _GNU_SOURCE     /* memfd_create, pipe2 */
#endif

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"

struct harness_server {
    char dir[64];
    char path[96];
    harness_setup_fn *setup;
    void *arg;
    bool is_process;
    pid_t pid;
    pthread_t thread;
    int ctl;                    /* eventfd: stop or exec request */
    int ready[2];               /* pipe: start-up status (an errno) */

    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool stop;
    harness_exec_fn *exec_fn;
    void *exec_arg;
    bool exec_done;
    unsigned busy_count;
    int last_error;
    vfu_ctx_t *ctx;
};

size_t harness_max_dma_maps;

static void
log_stderr(vfu_ctx_t *ctx, int level, const char *msg)
{
    fprintf(stderr, "vfu[%d]: %s\n", level, msg);
}

static void
report_ready(struct harness_server *s, int err)
{
    ssize_t n;

    do {
        n = write(s->ready[1], &err, sizeof(err));
    } while (n < 0 && errno == EINTR);
}

/* Run a pending exec request; lock not held. */
static void
run_exec(struct harness_server *s, vfu_ctx_t *ctx)
{
    pthread_mutex_lock(&s->lock);
    harness_exec_fn *fn = s->exec_fn;
    void *arg = s->exec_arg;
    pthread_mutex_unlock(&s->lock);
    if (fn == NULL) {
        return;
    }
    fn(ctx, arg);
    pthread_mutex_lock(&s->lock);
    s->exec_fn = NULL;
    s->exec_done = true;
    pthread_cond_broadcast(&s->cond);
    pthread_mutex_unlock(&s->lock);
}

static void
note_run_error(struct harness_server *s, int err)
{
    pthread_mutex_lock(&s->lock);
    if (err == EBUSY) {
        s->busy_count++;
    } else if (err != ENOTCONN) {
        s->last_error = err;
    }
    pthread_mutex_unlock(&s->lock);
}

/* The server loop; returns 0 on a clean stop. */
static int
serve(struct harness_server *s)
{
    vfu_ctx_t *ctx;
    bool attached = false, busy = false;

    ctx = vfu_create_ctx(VFU_TRANS_SOCK, s->path, LIBVFIO_USER_FLAG_ATTACH_NB,
                         s->arg, VFU_DEV_TYPE_PCI);
    if (ctx == NULL) {
        report_ready(s, errno);
        return -1;
    }
    harness_log_verbose(ctx);
    if ((s->setup != NULL && s->setup(ctx, s->arg) < 0) ||
        vfu_realize_ctx(ctx) < 0) {
        int err = errno != 0 ? errno : EINVAL;
        vfu_destroy_ctx(ctx);
        report_ready(s, err);
        return -1;
    }
    pthread_mutex_lock(&s->lock);
    s->ctx = ctx;
    pthread_mutex_unlock(&s->lock);
    report_ready(s, 0);

    for (;;) {
        struct pollfd p[2] = {
            { .fd = s->ctl, .events = POLLIN },
            { .fd = vfu_get_poll_fd(ctx), .events = POLLIN },
        };
        /* While a quiesce is pending only the test can move things on. */
        int n = poll(p, busy ? 1 : 2, -1);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            break;
        }
        if (p[0].revents & POLLIN) {
            uint64_t v;
            if (read(s->ctl, &v, sizeof(v)) < 0 && errno != EAGAIN) {
                break;
            }
            pthread_mutex_lock(&s->lock);
            bool stop = s->stop;
            pthread_mutex_unlock(&s->lock);
            if (stop) {
                break;
            }
            run_exec(s, ctx);
            busy = false;
        } else if (n == 0 || !(p[1].revents & (POLLIN | POLLHUP | POLLERR))) {
            continue;
        }
        if (!attached) {
            if (vfu_attach_ctx(ctx) == 0) {
                attached = true;
            } else {
                continue;
            }
        }
        if (vfu_run_ctx(ctx) < 0) {
            int err = errno;
            note_run_error(s, err);
            if (err == ENOTCONN) {
                attached = false;
            } else if (err == EBUSY) {
                busy = true;
            }
        }
    }
    pthread_mutex_lock(&s->lock);
    s->ctx = NULL;
    pthread_mutex_unlock(&s->lock);
    vfu_destroy_ctx(ctx);
    return 0;
}

static void *
serve_thread(void *opaque)
{
    return (void *)(intptr_t)serve(opaque);
}

static struct harness_server *
server_new(harness_setup_fn *setup, void *arg)
{
    struct harness_server *s = calloc(1, sizeof(*s));

    if (s == NULL) {
        return NULL;
    }
    s->setup = setup;
    s->arg = arg;
    s->ctl = -1;
    s->ready[0] = s->ready[1] = -1;
    pthread_mutex_init(&s->lock, NULL);
    pthread_cond_init(&s->cond, NULL);
    snprintf(s->dir, sizeof(s->dir), "/tmp/vfu-test-XXXXXX");
    if (mkdtemp(s->dir) == NULL) {
        goto fail;
    }
    snprintf(s->path, sizeof(s->path), "%s/sock", s->dir);
    s->ctl = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (s->ctl < 0 || pipe2(s->ready, O_CLOEXEC) < 0) {
        goto fail_dir;
    }
    return s;
fail_dir:
    rmdir(s->dir);
fail:
    if (s->ctl >= 0) {
        close(s->ctl);
    }
    free(s);
    return NULL;
}

static void
server_free(struct harness_server *s)
{
    unlink(s->path);
    rmdir(s->dir);
    close(s->ctl);
    if (s->ready[0] >= 0) {
        close(s->ready[0]);
    }
    if (s->ready[1] >= 0) {
        close(s->ready[1]);
    }
    pthread_mutex_destroy(&s->lock);
    pthread_cond_destroy(&s->cond);
    free(s);
}

/* Wait for the server's start-up status. */
static int
wait_ready(struct harness_server *s)
{
    int err = EIO;
    ssize_t n;

    do {
        n = read(s->ready[0], &err, sizeof(err));
    } while (n < 0 && errno == EINTR);
    if (n != sizeof(err)) {
        err = EIO;
    }
    return err;
}

struct harness_server *
harness_server_start(harness_setup_fn *setup, void *arg)
{
    struct harness_server *s = server_new(setup, arg);
    int err;

    if (s == NULL) {
        return NULL;
    }
    err = pthread_create(&s->thread, NULL, serve_thread, s);
    if (err != 0) {
        server_free(s);
        errno = err;
        return NULL;
    }
    err = wait_ready(s);
    if (err != 0) {
        pthread_join(s->thread, NULL);
        server_free(s);
        errno = err;
        return NULL;
    }
    s->pid = getpid();
    return s;
}

struct harness_server *
harness_server_start_process(harness_setup_fn *setup, void *arg)
{
    struct harness_server *s = server_new(setup, arg);
    int err;

    if (s == NULL) {
        return NULL;
    }
    s->is_process = true;
    s->pid = fork();
    if (s->pid < 0) {
        err = errno;
        server_free(s);
        errno = err;
        return NULL;
    }
    if (s->pid == 0) {
        close(s->ready[0]);
        s->ready[0] = -1;
        _exit(serve(s) == 0 ? 0 : 1);
    }
    close(s->ready[1]);
    s->ready[1] = -1;
    err = wait_ready(s);
    if (err != 0) {
        waitpid(s->pid, NULL, 0);
        server_free(s);
        errno = err;
        return NULL;
    }
    return s;
}

int
harness_server_stop(struct harness_server *s)
{
    uint64_t one = 1;
    int rc = 0;

    pthread_mutex_lock(&s->lock);
    s->stop = true;
    pthread_mutex_unlock(&s->lock);
    if (write(s->ctl, &one, sizeof(one)) < 0) {
        rc = -1;
    }
    if (s->is_process) {
        int status = 0;
        /* The child sees the same eventfd; it cannot see s->stop. */
        if (kill(s->pid, SIGTERM) < 0 ||
            waitpid(s->pid, &status, 0) != s->pid) {
            rc = -1;
        } else if (!(WIFSIGNALED(status) && WTERMSIG(status) == SIGTERM) &&
                   !(WIFEXITED(status) && WEXITSTATUS(status) == 0)) {
            rc = -1;
        }
    } else {
        void *ret;
        pthread_join(s->thread, &ret);
        if (ret != NULL) {
            rc = -1;
        }
    }
    server_free(s);
    return rc;
}

const char *
harness_server_path(const struct harness_server *s)
{
    return s->path;
}

vfu_ctx_t *
harness_server_ctx(const struct harness_server *s)
{
    return s->is_process ? NULL : s->ctx;
}

pid_t
harness_server_pid(const struct harness_server *s)
{
    return s->pid;
}

int
harness_server_exec(struct harness_server *s, harness_exec_fn *fn, void *arg)
{
    uint64_t one = 1;

    if (s->is_process) {
        errno = ENOTSUP;
        return -1;
    }
    pthread_mutex_lock(&s->lock);
    s->exec_fn = fn;
    s->exec_arg = arg;
    s->exec_done = false;
    pthread_mutex_unlock(&s->lock);
    if (write(s->ctl, &one, sizeof(one)) < 0) {
        return -1;
    }
    pthread_mutex_lock(&s->lock);
    while (!s->exec_done) {
        pthread_cond_wait(&s->cond, &s->lock);
    }
    pthread_mutex_unlock(&s->lock);
    return 0;
}

unsigned
harness_server_busy_count(struct harness_server *s)
{
    pthread_mutex_lock(&s->lock);
    unsigned n = s->busy_count;
    pthread_mutex_unlock(&s->lock);
    return n;
}

int
harness_server_last_error(struct harness_server *s)
{
    pthread_mutex_lock(&s->lock);
    int e = s->last_error;
    pthread_mutex_unlock(&s->lock);
    return e;
}

vfu_client_t *
harness_connect(const struct harness_server *s)
{
    vfu_client_t *c = vfu_client_connect(s->path);

    if (c == NULL) {
        fail_msg("connect %s: %s", s->path, strerror(errno));
    }
    if (vfu_client_negotiate(c, NULL, NULL) < 0) {
        int err = errno;
        vfu_client_close(c);
        fail_msg("negotiate: %s", strerror(err));
    }
    return c;
}

int
harness_fd_count(pid_t pid)
{
    char dir[64];
    struct dirent *d;
    DIR *dp;
    int n = 0;

    if (pid == 0) {
        snprintf(dir, sizeof(dir), "/proc/self/fd");
    } else {
        snprintf(dir, sizeof(dir), "/proc/%d/fd", (int)pid);
    }
    dp = opendir(dir);
    if (dp == NULL) {
        return -1;
    }
    while ((d = readdir(dp)) != NULL) {
        if (d->d_name[0] != '.') {
            n++;
        }
    }
    closedir(dp);
    return n;
}

int
harness_fd_count_settle(pid_t pid, int want, int timeout_ms)
{
    int n = harness_fd_count(pid);

    for (int waited = 0; n > want && waited < timeout_ms; waited += 10) {
        harness_sleep_ms(10);
        n = harness_fd_count(pid);
    }
    return n;
}

void
harness_assert_fd_count(pid_t pid, int want, int timeout_ms)
{
    assert_int_equal(harness_fd_count_settle(pid, want, timeout_ms), want);
}

int
harness_memfd(size_t size)
{
    int fd = memfd_create("vfu-test", MFD_CLOEXEC | MFD_ALLOW_SEALING);

    if (fd < 0) {
        return -1;
    }
    /* Sealed against shrinking, as QEMU seals guest RAM: vfu maps it. */
    if (ftruncate(fd, (off_t)size) < 0 ||
        fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

int
harness_eventfd(void)
{
    return eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
}

int
harness_eventfds(int *fds, int n)
{
    for (int i = 0; i < n; i++) {
        fds[i] = harness_eventfd();
        if (fds[i] < 0) {
            harness_close_fds(fds, i);
            return -1;
        }
    }
    return 0;
}

void
harness_close_fds(const int *fds, int n)
{
    for (int i = 0; i < n; i++) {
        close(fds[i]);
    }
}

uint64_t
harness_eventfd_wait(int fd, int timeout_ms)
{
    struct pollfd p = { .fd = fd, .events = POLLIN };
    uint64_t v = 0;

    if (poll(&p, 1, timeout_ms) <= 0) {
        return 0;
    }
    if (read(fd, &v, sizeof(v)) != sizeof(v)) {
        return 0;
    }
    return v;
}

void
harness_sleep_ms(int ms)
{
    struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L };

    while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {
    }
}

/* ---- raw messages ---- */

size_t
harness_msg(void *buf, uint16_t id, uint16_t cmd, const void *payload,
            size_t len)
{
    struct vfio_user_header h = {
        .msg_id = id,
        .cmd = cmd,
        .msg_size = (uint32_t)(sizeof(h) + len),
    };

    memcpy(buf, &h, sizeof(h));
    if (payload != NULL) {
        memcpy((uint8_t *)buf + sizeof(h), payload, len);
    }
    return sizeof(h) + len;
}

int
harness_raw_read(int fd, void *buf, size_t len, int timeout_ms)
{
    char *p = buf;

    while (len > 0) {
        struct pollfd pf = { .fd = fd, .events = POLLIN };
        int rc = poll(&pf, 1, timeout_ms);
        ssize_t n;

        if (rc == 0) {
            errno = ETIMEDOUT;
        }
        if (rc <= 0) {
            return -1;
        }
        n = read(fd, p, len);
        if (n == 0) {
            errno = EPIPE;
        }
        if (n <= 0) {
            return -1;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

void
harness_log_verbose(vfu_ctx_t *ctx)
{
    if (getenv("HARNESS_VERBOSE") != NULL) {
        vfu_setup_log(ctx, log_stderr, LOG_DEBUG);
    }
}

void
harness_raw_send(int fd, uint16_t id, uint16_t cmd, uint32_t flags,
                 const void *payload, size_t len, const int *fds, int nfds)
{
    struct vfio_user_header h = {
        .msg_id = id, .cmd = cmd, .msg_size = (uint32_t)(sizeof(h) + len),
        .flags = flags,
    };
    struct iovec iov[2] = { { &h, sizeof(h) }, { (void *)payload, len } };
    char cbuf[CMSG_SPACE(sizeof(int) * 16)];
    struct msghdr mh = { .msg_iov = iov, .msg_iovlen = len > 0 ? 2 : 1 };
    ssize_t n;

    assert_true(nfds >= 0 && nfds <= 16);
    if (nfds > 0) {
        memset(cbuf, 0, sizeof(cbuf));
        mh.msg_control = cbuf;
        mh.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
        struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
        cm->cmsg_level = SOL_SOCKET;
        cm->cmsg_type = SCM_RIGHTS;
        cm->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
        memcpy(CMSG_DATA(cm), fds, sizeof(int) * nfds);
    }
    n = sendmsg(fd, &mh, MSG_NOSIGNAL);
    assert_true(n > 0);
    /* The fds went with the first part; the rest of a big one follows. */
    size_t sent = (size_t)n;
    for (int i = 0; i < (int)mh.msg_iovlen; i++) {
        const char *p = iov[i].iov_base;
        size_t l = iov[i].iov_len, skip = sent < l ? sent : l;

        sent -= skip;
        for (p += skip, l -= skip; l > 0; p += n, l -= (size_t)n) {
            n = send(fd, p, l, MSG_NOSIGNAL);
            assert_true(n > 0);
        }
    }
}

int
harness_call_errno(vfu_client_t *c, uint16_t cmd, const void *payload,
                   size_t len, const int *fds, uint32_t nr_fds)
{
    char reply[4096];
    size_t size = sizeof(reply);

    errno = 0;
    if (vfu_client_call(c, cmd, payload, len, fds, nr_fds, reply, &size, NULL,
                        NULL) == 0) {
        return 0;
    }
    return errno;
}

/* ---- the ready-made test device ---- */

static struct harness_dev *
dev_of(vfu_ctx_t *ctx)
{
    return vfu_get_private(ctx);
}

static ssize_t
mem_access(uint8_t *mem, size_t size, char *buf, size_t count, loff_t offset,
           bool is_write)
{
    if (offset < 0 || (uint64_t)offset > size || count > size - offset) {
        errno = EINVAL;
        return -1;
    }
    if (is_write) {
        memcpy(mem + offset, buf, count);
    } else {
        memcpy(buf, mem + offset, count);
    }
    return (ssize_t)count;
}

static ssize_t
bar0_cb(vfu_ctx_t *ctx, char *buf, size_t count, loff_t offset, bool is_write)
{
    struct harness_dev *d = dev_of(ctx);

    if (is_write) {
        __atomic_add_fetch(&d->bar0_writes, 1, __ATOMIC_SEQ_CST);
    }
    return mem_access(d->bar0, HARNESS_BAR0_SIZE, buf, count, offset, is_write);
}

static ssize_t
bar1_cb(vfu_ctx_t *ctx, char *buf, size_t count, loff_t offset, bool is_write)
{
    return mem_access(dev_of(ctx)->bar1, HARNESS_BAR1_SIZE, buf, count, offset,
                      is_write);
}

static ssize_t
bar2_cb(vfu_ctx_t *ctx, char *buf, size_t count, loff_t offset, bool is_write)
{
    return mem_access(dev_of(ctx)->bar2, HARNESS_BAR2_SIZE, buf, count, offset,
                      is_write);
}

static int
dev_quiesce(vfu_ctx_t *ctx)
{
    struct harness_dev *d = dev_of(ctx);

    __atomic_add_fetch(&d->quiesce_calls, 1, __ATOMIC_SEQ_CST);
    if (__atomic_load_n(&d->quiesce_busy, __ATOMIC_SEQ_CST)) {
        errno = EBUSY;
        return -1;
    }
    return 0;
}

static int
dev_reset(vfu_ctx_t *ctx, vfu_reset_type_t type)
{
    struct harness_dev *d = dev_of(ctx);

    __atomic_store_n(&d->last_reset_type, (int)type, __ATOMIC_SEQ_CST);
    __atomic_store_n(&d->quiesce_calls_at_reset,
                     __atomic_load_n(&d->quiesce_calls, __ATOMIC_SEQ_CST),
                     __ATOMIC_SEQ_CST);
    __atomic_add_fetch(&d->reset_calls, 1, __ATOMIC_SEQ_CST);
    int err = __atomic_load_n(&d->reset_errno, __ATOMIC_SEQ_CST);
    if (err != 0) {
        errno = err;
        return -1;
    }
    return 0;
}

static void
dev_dma_register(vfu_ctx_t *ctx, vfu_dma_info_t *info)
{
    __atomic_add_fetch(&dev_of(ctx)->dma_registers, 1, __ATOMIC_SEQ_CST);
}

static void
dev_dma_unregister(vfu_ctx_t *ctx, vfu_dma_info_t *info)
{
    __atomic_add_fetch(&dev_of(ctx)->dma_unregisters, 1, __ATOMIC_SEQ_CST);
}

int
harness_dev_init(struct harness_dev *d)
{
    memset(d, 0, sizeof(*d));
    d->bar1_fd = harness_memfd(HARNESS_BAR1_SIZE);
    if (d->bar1_fd < 0) {
        return -1;
    }
    d->bar1 = mmap(NULL, HARNESS_BAR1_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED,
                   d->bar1_fd, 0);
    d->bar2 = calloc(1, HARNESS_BAR2_SIZE);
    if (d->bar1 == MAP_FAILED || d->bar2 == NULL) {
        harness_dev_fini(d);
        return -1;
    }
    return 0;
}

void
harness_dev_fini(struct harness_dev *d)
{
    if (d->bar1 != NULL && d->bar1 != MAP_FAILED) {
        munmap(d->bar1, HARNESS_BAR1_SIZE);
    }
    if (d->bar1_fd >= 0) {
        close(d->bar1_fd);
    }
    free(d->bar2);
    memset(d, 0, sizeof(*d));
    d->bar1_fd = -1;
}

static int
dev_setup(vfu_ctx_t *ctx, struct harness_dev *d, bool express)
{
    struct iovec sparse[2] = {
        { .iov_base = (void *)0x1000, .iov_len = 0x1000 },
        { .iov_base = (void *)0x3000, .iov_len = 0x1000 },
    };

    if (vfu_pci_init(ctx, express ? VFU_PCI_TYPE_EXPRESS
                                  : VFU_PCI_TYPE_CONVENTIONAL, 0, 0) < 0) {
        return -1;
    }
    if (express) {
        struct pxcap px = { .hdr.id = PCI_CAP_ID_EXP, .pxcaps.ver = 2,
                            .pxdcap.flrc = 1 };
        if (vfu_pci_add_capability(ctx, 0, 0, &px) < 0) {
            return -1;
        }
    }
    vfu_pci_set_id(ctx, 0x1234, 0x5678, 0x1234, 0x0001);
    vfu_pci_set_class(ctx, 0x02, 0x00, 0x00);
    if (vfu_setup_region(ctx, VFU_PCI_DEV_BAR0_REGION_IDX, HARNESS_BAR0_SIZE,
                         bar0_cb, VFU_REGION_FLAG_RW | VFU_REGION_FLAG_MEM,
                         NULL, 0, -1, 0) < 0 ||
        vfu_setup_region(ctx, VFU_PCI_DEV_BAR1_REGION_IDX, HARNESS_BAR1_SIZE,
                         bar1_cb, VFU_REGION_FLAG_RW | VFU_REGION_FLAG_MEM,
                         sparse, 2, d->bar1_fd, 0) < 0 ||
        vfu_setup_region(ctx, VFU_PCI_DEV_BAR2_REGION_IDX, HARNESS_BAR2_SIZE,
                         bar2_cb, VFU_REGION_FLAG_RW | VFU_REGION_FLAG_MEM,
                         NULL, 0, -1, 0) < 0) {
        return -1;
    }
    if (vfu_setup_device_nr_irqs(ctx, VFU_DEV_INTX_IRQ, 1) < 0 ||
        vfu_setup_device_nr_irqs(ctx, VFU_DEV_MSIX_IRQ, HARNESS_NR_MSIX) < 0) {
        return -1;
    }
    if (vfu_setup_device_reset_cb(ctx, dev_reset) < 0) {
        return -1;
    }
    vfu_setup_device_quiesce_cb(ctx, dev_quiesce);
    return vfu_setup_device_dma(ctx, harness_max_dma_maps, dev_dma_register,
                                dev_dma_unregister);
}

int
harness_dev_setup(vfu_ctx_t *ctx, void *dev)
{
    return dev_setup(ctx, dev, false);
}

int
harness_dev_setup_express(vfu_ctx_t *ctx, void *dev)
{
    return dev_setup(ctx, dev, true);
}

/* ---- cmocka fixtures ---- */

static int
fixture_start(void **state, bool process, bool client)
{
    struct harness_fixture *f = calloc(1, sizeof(*f));

    if (f == NULL || harness_dev_init(&f->dev) < 0) {
        free(f);
        return -1;
    }
    f->srv = process ? harness_server_start_process(harness_dev_setup, &f->dev)
                     : harness_server_start(harness_dev_setup, &f->dev);
    if (f->srv == NULL) {
        harness_dev_fini(&f->dev);
        free(f);
        return -1;
    }
    f->pid = harness_server_pid(f->srv);
    if (process) {
        /* Only a child's fds are the server's alone. */
        f->base_fds = harness_fd_count(f->pid);
    }
    if (client) {
        f->c = harness_connect(f->srv);
    }
    *state = f;
    return 0;
}

int
harness_fixture_setup(void **state)
{
    return fixture_start(state, false, true);
}

int
harness_fixture_setup_process(void **state)
{
    return fixture_start(state, true, true);
}

int
harness_fixture_setup_process_noclient(void **state)
{
    return fixture_start(state, true, false);
}

int
harness_fixture_teardown(void **state)
{
    struct harness_fixture *f = *state;
    int rc;

    vfu_client_close(f->c);
    rc = harness_server_stop(f->srv);
    harness_dev_fini(&f->dev);
    free(f);
    return rc;
}
