/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 the vfu authors. */

/*
 * A client written from the protocol specification alone: raw sockets, its
 * own message layouts (only <linux/vfio.h> for the VFIO structs), nothing
 * of vfu's client or framing code. It talks to examples/gpio-pci-idio-16
 * in a child process the way QEMU 10.1 does and checks what the spec
 * promises: negotiation, regions, IRQs, config space, BAR2, INTx, errors,
 * and a next client being served.
 */

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <linux/vfio.h>

#include <cmocka.h>

#ifndef GPIO_SERVER
#error "GPIO_SERVER must name the gpio-pci-idio-16 example binary"
#endif

/* The spec's header: message id, command, size, flags, error. */
struct hdr {
    uint16_t id, cmd;
    uint32_t size, flags, error;
};
_Static_assert(sizeof(struct hdr) == 16, "spec header");

enum { VERSION = 1, GET_INFO = 4, GET_REGION_INFO = 5, GET_IRQ_INFO = 7,
       SET_IRQS = 8, REGION_READ = 9, REGION_WRITE = 10 };
#define F_REPLY 0x1
#define F_ERROR 0x20

static const char qemu_hello[] =
    "{\"capabilities\":{\"max_msg_fds\":16,\"max_data_xfer_size\":1048576,"
    "\"pgsizes\":4096,\"max_dma_maps\":65535,\"migration\":"
    "{\"max_bitmap_size\":268435456,\"pgsize\":4096},\"write_multiple\":true}}";

struct server {
    char dir[64], path[96];
    pid_t pid;
};

static int
dial(const char *path)
{
    struct sockaddr_un a = { .sun_family = AF_UNIX };
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

    snprintf(a.sun_path, sizeof(a.sun_path), "%s", path);
    for (int i = 0; i < 200; i++) {
        if (connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0) {
            return fd;
        }
        usleep(20000);
    }
    close(fd);
    return -1;
}

static void
send_msg(int fd, uint16_t id, uint16_t cmd, const void *p, size_t len,
         const int *fds, int nfds)
{
    struct hdr h = { .id = id, .cmd = cmd, .size = (uint32_t)(sizeof(h) + len) };
    struct iovec iov[2] = { { &h, sizeof(h) }, { (void *)p, len } };
    char cbuf[CMSG_SPACE(sizeof(int) * 4)] = { 0 };
    struct msghdr mh = { .msg_iov = iov, .msg_iovlen = len ? 2 : 1 };

    if (nfds > 0) {
        mh.msg_control = cbuf;
        mh.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
        struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
        cm->cmsg_level = SOL_SOCKET;
        cm->cmsg_type = SCM_RIGHTS;
        cm->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
        memcpy(CMSG_DATA(cm), fds, sizeof(int) * nfds);
    }
    assert_int_equal(sendmsg(fd, &mh, MSG_NOSIGNAL), (ssize_t)(sizeof(h) + len));
}

static void
read_exact(int fd, void *buf, size_t len)
{
    char *p = buf;
    while (len > 0) {
        struct pollfd pf = { .fd = fd, .events = POLLIN };
        assert_int_equal(poll(&pf, 1, 5000), 1);   /* QEMU's reply timeout */
        ssize_t n = read(fd, p, len);
        assert_true(n > 0);
        p += n;
        len -= (size_t)n;
    }
}

/* Read one reply to id; returns its payload size (payload into buf). */
static size_t
recv_reply(int fd, uint16_t id, uint16_t cmd, void *buf, size_t cap, int *err)
{
    struct hdr h;

    read_exact(fd, &h, sizeof(h));
    assert_int_equal(h.id, id);
    assert_int_equal(h.cmd, cmd);
    assert_true(h.flags & F_REPLY);
    assert_true(h.size >= sizeof(h) && h.size - sizeof(h) <= cap);
    read_exact(fd, buf, h.size - sizeof(h));
    *err = (h.flags & F_ERROR) ? (int)h.error : 0;
    return h.size - sizeof(h);
}

static size_t
call(int fd, uint16_t id, uint16_t cmd, const void *p, size_t len,
     void *out, size_t cap, int *err)
{
    send_msg(fd, id, cmd, p, len, NULL, 0);
    return recv_reply(fd, id, cmd, out, cap, err);
}

static void
negotiate(int fd)
{
    char req[512], rep[4096];
    uint16_t ver[2] = { 0, 0 };
    int err;

    memcpy(req, ver, sizeof(ver));
    memcpy(req + 4, qemu_hello, sizeof(qemu_hello));   /* with its NUL */
    size_t n = call(fd, 1, VERSION, req, 4 + sizeof(qemu_hello), rep,
                    sizeof(rep), &err);
    assert_int_equal(err, 0);
    assert_true(n > 4);
    uint16_t major, minor;
    memcpy(&major, rep, 2);
    memcpy(&minor, rep + 2, 2);
    assert_int_equal(major, 0);
    assert_int_equal(minor, 0);
    assert_int_equal(rep[n - 1], '\0');   /* a NUL-terminated JSON object */
    assert_non_null(strstr(rep + 4, "\"capabilities\""));
    assert_non_null(strstr(rep + 4, "\"max_msg_fds\""));
}

static uint32_t
region_rw(int fd, uint16_t id, uint32_t region, uint64_t off, uint32_t count,
          uint32_t value, bool write, int *err)
{
    struct {
        uint64_t offset;
        uint32_t region, count;
        uint8_t data[8];
    } req = { .offset = off, .region = region, .count = count }, rep;

    memcpy(req.data, &value, count);
    size_t n = call(fd, id, write ? REGION_WRITE : REGION_READ, &req,
                    16 + (write ? count : 0), &rep, sizeof(rep), err);
    if (*err != 0) {
        return 0;
    }
    assert_int_equal(n, 16 + (write ? 0 : count));
    uint32_t v = 0;
    if (!write) {
        memcpy(&v, rep.data, count);
    }
    return v;
}

static int
setup(void **state)
{
    struct server *s = calloc(1, sizeof(*s));

    snprintf(s->dir, sizeof(s->dir), "/tmp/vfu-spec-XXXXXX");
    assert_non_null(mkdtemp(s->dir));
    snprintf(s->path, sizeof(s->path), "%s/gpio.sock", s->dir);
    s->pid = fork();
    if (s->pid == 0) {
        int null = open("/dev/null", O_WRONLY);
        dup2(null, 2);
        execl(GPIO_SERVER, GPIO_SERVER, s->path, (char *)NULL);
        _exit(127);
    }
    *state = s;
    return 0;
}

static int
teardown(void **state)
{
    struct server *s = *state;
    int status;

    kill(s->pid, SIGTERM);
    waitpid(s->pid, &status, 0);
    rmdir(s->dir);
    free(s);
    return 0;
}

static void
test_qemu_like_session(void **state)
{
    struct server *s = *state;
    int fd = dial(s->path), err;
    uint16_t id = 2;

    assert_true(fd >= 0);
    negotiate(fd);

    /* The spec's 16-byte device info (the kernel's struct grew since). */
    struct { uint32_t argsz, flags, num_regions, num_irqs; } di = { .argsz = 16 };
    assert_int_equal(call(fd, id++, GET_INFO, &di, sizeof(di), &di, sizeof(di),
                          &err), sizeof(di));
    assert_int_equal(err, 0);
    assert_true(di.flags & VFIO_DEVICE_FLAGS_PCI);
    assert_true(di.num_regions >= VFIO_PCI_CONFIG_REGION_INDEX + 1);
    assert_true(di.num_irqs >= VFIO_PCI_INTX_IRQ_INDEX + 1);

    /* Regions 0-5 and 7, as QEMU asks: BAR2 is 256 bytes, config 256+. */
    for (uint32_t i = 0; i <= VFIO_PCI_CONFIG_REGION_INDEX; i++) {
        char buf[256];
        struct vfio_region_info ri = { .argsz = sizeof(buf), .index = i };
        if (i == VFIO_PCI_ROM_REGION_INDEX) {
            continue;
        }
        call(fd, id++, GET_REGION_INFO, &ri, sizeof(ri), buf, sizeof(buf), &err);
        assert_int_equal(err, 0);
        memcpy(&ri, buf, sizeof(ri));
        assert_int_equal(ri.index, i);
        if (i == VFIO_PCI_BAR2_REGION_INDEX) {
            assert_int_equal(ri.size, 256);
            assert_true(ri.flags & VFIO_REGION_INFO_FLAG_READ);
            assert_true(ri.flags & VFIO_REGION_INFO_FLAG_WRITE);
        } else if (i == VFIO_PCI_CONFIG_REGION_INDEX) {
            assert_true(ri.size >= 256);
        } else {
            assert_int_equal(ri.size, 0);
        }
    }

    struct vfio_irq_info ii = { .argsz = sizeof(ii), .index = VFIO_PCI_INTX_IRQ_INDEX };
    call(fd, id++, GET_IRQ_INFO, &ii, sizeof(ii), &ii, sizeof(ii), &err);
    assert_int_equal(err, 0);
    assert_int_equal(ii.count, 1);
    assert_true(ii.flags & VFIO_IRQ_INFO_EVENTFD);

    /* Config header: ids, and BAR2 an I/O BAR that sizes to 256 bytes. */
    uint32_t cfg = VFIO_PCI_CONFIG_REGION_INDEX;
    assert_int_equal(region_rw(fd, id++, cfg, 0, 4, 0, false, &err), 0x0dc8494f);
    assert_int_equal(region_rw(fd, id++, cfg, 0x18, 4, 0, false, &err) & 1, 1);
    region_rw(fd, id++, cfg, 0x18, 4, 0xffffffff, true, &err);
    assert_int_equal(err, 0);
    assert_int_equal(region_rw(fd, id++, cfg, 0x18, 4, 0, false, &err), 0xffffff01);

    /* INTx on an eventfd (flags 0x24: DATA_EVENTFD | ACTION_TRIGGER). */
    int efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    struct vfio_irq_set set = {
        .argsz = sizeof(set), .index = VFIO_PCI_INTX_IRQ_INDEX, .count = 1,
        .flags = VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER,
    };
    send_msg(fd, id, SET_IRQS, &set, sizeof(set), &efd, 1);
    recv_reply(fd, id++, SET_IRQS, &set, sizeof(set), &err);
    assert_int_equal(err, 0);

    /* BAR2: outputs read back, inputs follow, INTx fires when enabled. */
    uint32_t bar2 = VFIO_PCI_BAR2_REGION_INDEX;
    /* The card's commands: write in0_7 clears, read irq_ctl enables. */
    region_rw(fd, id++, bar2, 0x1, 1, 0, true, &err);            /* clear */
    assert_int_equal(err, 0);
    assert_int_equal(region_rw(fd, id++, bar2, 0x2, 1, 0, false, &err), 0);
    assert_int_equal(err, 0);
    region_rw(fd, id++, bar2, 0x0, 1, 0xa5, true, &err);
    assert_int_equal(err, 0);
    assert_int_equal(region_rw(fd, id++, bar2, 0x0, 1, 0, false, &err), 0xa5);
    assert_int_equal(region_rw(fd, id++, bar2, 0x1, 1, 0, false, &err), 0xa5);
    struct pollfd pf = { .fd = efd, .events = POLLIN };
    assert_int_equal(poll(&pf, 1, 2000), 1);
    uint64_t fired;
    assert_int_equal(read(efd, &fired, sizeof(fired)), sizeof(fired));
    assert_true(fired >= 1);
    /* Pending (bit 2) for inputs 0-7 (bit 0) until in0_7 is written. */
    assert_int_equal(region_rw(fd, id++, bar2, 0x6, 1, 0, false, &err), 0x05);
    region_rw(fd, id++, bar2, 0x1, 1, 0x05, true, &err);
    assert_int_equal(err, 0);
    assert_int_equal(region_rw(fd, id++, bar2, 0x6, 1, 0, false, &err), 0);
    assert_int_equal(region_rw(fd, id++, bar2, 0x1, 1, 0, false, &err), 0xa5);

    /* Bad input: an error reply with an errno, then the session goes on. */
    region_rw(fd, id++, 99, 0, 4, 0, false, &err);
    assert_int_equal(err, EINVAL);
    region_rw(fd, id++, bar2, 0xfe, 4, 0, false, &err);
    assert_int_equal(err, EINVAL);
    char junk[8] = { 0 };
    call(fd, id++, 0x7777, junk, sizeof(junk), junk, sizeof(junk), &err);
    assert_true(err != 0);
    assert_int_equal(region_rw(fd, id++, bar2, 0x0, 1, 0, false, &err), 0xa5);
    close(fd);
    close(efd);

    /* The next client is served, with the device's state kept. */
    fd = dial(s->path);
    assert_true(fd >= 0);
    negotiate(fd);
    assert_int_equal(region_rw(fd, 2, bar2, 0x4, 1, 0x3c, true, &err), 0);
    assert_int_equal(region_rw(fd, 3, bar2, 0x0, 1, 0, false, &err), 0xa5);
    assert_int_equal(region_rw(fd, 4, bar2, 0x5, 1, 0, false, &err), 0x3c);
    close(fd);
}

static void
test_garbage_version_then_next_client(void **state)
{
    struct server *s = *state;
    int fd = dial(s->path), err;
    char buf[64] = { 0, 0, 0, 0, '{', 'x' };

    assert_true(fd >= 0);
    call(fd, 1, VERSION, buf, 6, buf, sizeof(buf), &err);   /* no NUL, bad JSON */
    assert_int_equal(err, EINVAL);
    close(fd);
    fd = dial(s->path);
    negotiate(fd);
    close(fd);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_qemu_like_session, setup, teardown),
        cmocka_unit_test_setup_teardown(test_garbage_version_then_next_client,
                                        setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
