/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 the vfu authors. */

/*
 * The demo pair, examples/server and examples/client, run as the user
 * would: the server as a process on a socket, the client against it (which
 * migrates to a destination server of its own). Also their usage errors,
 * and the server's refusal of broken migration streams.
 *
 * The programs are found next to this test's build directory
 * (../examples/), or in $VFU_EXAMPLES_DIR.
 */
#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"
#include "libvfio-user.h"
#include "vfu-client-migration.h"
#include "vfu-client.h"

/* The stream record header of examples/server.c. */
struct rec_hdr {
    uint32_t magic;
    uint32_t type;
    uint64_t offset;
    uint64_t len;
};
#define REC_MAGIC 0x7666756du

struct proc {
    pid_t pid;
    int out;            /* memfd holding its stdout and stderr */
};

static void
example_path(char *buf, size_t size, const char *name)
{
    const char *dir = getenv("VFU_EXAMPLES_DIR");
    char self[PATH_MAX];
    ssize_t n;

    if (dir != NULL) {
        snprintf(buf, size, "%s/%s", dir, name);
        return;
    }
    n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    assert_true(n > 0);
    self[n] = '\0';
    snprintf(buf, size, "%s/../examples/%s", dirname(self), name);
}

static struct proc
spawn(char *const argv[])
{
    struct proc p = { .out = memfd_create("demo-out", MFD_CLOEXEC) };

    assert_true(p.out >= 0);
    p.pid = fork();
    assert_true(p.pid >= 0);
    if (p.pid == 0) {
        dup2(p.out, STDOUT_FILENO);
        dup2(p.out, STDERR_FILENO);
        execv(argv[0], argv);
        _exit(127);
    }
    return p;
}

/* The process's output so far, NUL terminated; free() it. */
static char *
output(const struct proc *p)
{
    off_t size = lseek(p->out, 0, SEEK_END);
    char *s;

    assert_true(size >= 0);
    s = calloc(1, (size_t)size + 1);
    assert_non_null(s);
    assert_int_equal(pread(p->out, s, (size_t)size, 0), size);
    return s;
}

/* Wait up to timeout_ms for the process; its wait status, or -1 (killed
 * after the timeout). Prints its output unless it exited with 0. */
static int
finish(struct proc *p, int timeout_ms)
{
    int status = 0;

    for (int waited = 0; waitpid(p->pid, &status, WNOHANG) == 0;
         waited += 10) {
        if (waited >= timeout_ms) {
            kill(p->pid, SIGKILL);
            waitpid(p->pid, &status, 0);
            status = -1;
            break;
        }
        harness_sleep_ms(10);
    }
    if (status != 0) {
        char *s = output(p);
        /* print_message() truncates long text */
        printf("---- output of pid %d ----\n%s----\n", (int)p->pid, s);
        fflush(stdout);
        free(s);
    }
    return status;
}

static bool
is_socket(const char *path)
{
    struct stat st;

    return stat(path, &st) == 0 && S_ISSOCK(st.st_mode);
}

static struct proc
start_server(const char *sock)
{
    static char server[PATH_MAX];
    char *argv[] = { server, (char *)sock, NULL };
    struct proc p;

    example_path(server, sizeof(server), "server");
    unlink(sock);
    p = spawn(argv);
    for (int i = 0; i < 1000 && !is_socket(sock); i++) {
        harness_sleep_ms(10);
    }
    assert_true(is_socket(sock));
    return p;
}

static void
stop_server(struct proc *p, const char *sock)
{
    kill(p->pid, SIGTERM);
    /* A clean exit, and the socket is gone. */
    assert_int_equal(finish(p, 20000), 0);
    close(p->out);
    assert_false(is_socket(sock));
}

static void
sock_path(char *buf, size_t size, const char *tag)
{
    snprintf(buf, size, "/tmp/vfu-demo-%d-%s.sock", (int)getpid(), tag);
}

static vfu_client_t *
connect_sock(const char *sock)
{
    vfu_client_t *c = vfu_client_connect(sock);

    assert_non_null(c);
    assert_int_equal(vfu_client_negotiate(c, NULL, NULL), 0);
    return c;
}

static void
test_pair(void **state)
{
    char sock[128], server[PATH_MAX], client[PATH_MAX];
    struct proc srv, cli;
    char *out;
    int status;

    sock_path(sock, sizeof(sock), "pair");
    example_path(server, sizeof(server), "server");
    example_path(client, sizeof(client), "client");
    srv = start_server(sock);
    {
        char *argv[] = { client, sock, server, NULL };
        cli = spawn(argv);
    }
    /* Exit status 0 and the verdict line, and no sanitizer report. */
    status = finish(&cli, 120000);
    out = output(&cli);
    close(cli.out);
    if (status == 0) {
        fputs(out, stdout);
        fflush(stdout);
    }
    assert_int_equal(status, 0);
    assert_non_null(strstr(out, "client: PASS"));
    assert_null(strstr(out, "CHECK FAILED"));
    assert_null(strstr(out, "Sanitizer"));
    free(out);
    /* The client went away; the source serves on until told to stop. */
    stop_server(&srv, sock);
    {
        char dst[160];
        snprintf(dst, sizeof(dst), "%s.dst", sock);
        assert_false(is_socket(dst));
    }
}

/* The client's exit status for a run, checked with its verdict. */
static void
test_client_exit_status(void **state)
{
    char sock[128], server[PATH_MAX], client[PATH_MAX];
    struct proc cli;
    char *out;
    int status;

    sock_path(sock, sizeof(sock), "none");
    unlink(sock);
    example_path(server, sizeof(server), "server");
    example_path(client, sizeof(client), "client");
    {
        char *argv[] = { client, sock, server, NULL };
        cli = spawn(argv);
    }
    status = finish(&cli, 30000);
    out = output(&cli);
    close(cli.out);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 1);
    assert_non_null(strstr(out, "client: FAIL"));
    free(out);

    /* A destination that never comes up fails the run, after the tour. */
    {
        struct proc srv = start_server(sock);
        char *argv[] = { client, sock, "/bin/false", NULL };

        cli = spawn(argv);
        status = finish(&cli, 60000);
        out = output(&cli);
        close(cli.out);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 1);
        assert_non_null(strstr(out, "DEVICE_RESET: registers cleared"));
        assert_non_null(strstr(out, "CHECK FAILED: destination server"));
        assert_non_null(strstr(out, "client: FAIL"));
        free(out);
        stop_server(&srv, sock);
    }

    {
        char *argv[] = { client, NULL };
        cli = spawn(argv);
        status = finish(&cli, 10000);
        close(cli.out);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 2);
    }
}

static int
exit_code(char *const argv[])
{
    struct proc p = spawn(argv);
    int status = finish(&p, 10000);

    close(p.out);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static void
test_server_usage(void **state)
{
    char server[PATH_MAX];

    example_path(server, sizeof(server), "server");
    {
        char *argv[] = { server, NULL };
        assert_int_equal(exit_code(argv), 2);
    }
    {
        char *argv[] = { server, "-x", "/tmp/x.sock", NULL };
        assert_int_equal(exit_code(argv), 2);
    }
    {
        char *argv[] = { server, "a.sock", "b.sock", NULL };
        assert_int_equal(exit_code(argv), 2);
    }
    {
        char *argv[] = { server, "/nonexistent-dir/vfu.sock", NULL };
        assert_int_equal(exit_code(argv), 1);
    }
}

static void
write_rec(vfu_client_t *c, uint32_t magic, uint32_t type, uint64_t offset,
          uint64_t len, int want_errno)
{
    struct rec_hdr h = { magic, type, offset, len };

    errno = 0;
    assert_int_equal(vfu_client_mig_data_write(c, &h, sizeof(h)),
                     want_errno == 0 ? 0 : -1);
    assert_int_equal(errno, want_errno);
}

static void
expect_state(vfu_client_t *c, uint32_t want)
{
    uint32_t s;

    assert_int_equal(vfu_client_mig_get_state(c, &s), 0);
    assert_int_equal(s, want);
}

static void
to_resuming(vfu_client_t *c)
{
    assert_int_equal(vfu_client_device_reset(c), 0);
    assert_int_equal(vfu_client_mig_set_state(c,
                     VFIO_USER_DEVICE_STATE_RESUMING), 0);
}

/* Broken streams are refused with EINVAL; a reset recovers the device. */
static void
test_server_bad_streams(void **state)
{
    char sock[128];
    struct proc srv;
    vfu_client_t *c;
    uint8_t page[4096] = { 0 };
    uint64_t v = 0;

    sock_path(sock, sizeof(sock), "bad");
    srv = start_server(sock);
    c = connect_sock(sock);

    /* Wrong magic, unknown type, bad sizes and offsets. */
    to_resuming(c);
    write_rec(c, 0x12345678, 1, 0, 4096, EINVAL);
    to_resuming(c);
    write_rec(c, REC_MAGIC, 9, 0, 0, EINVAL);
    to_resuming(c);
    write_rec(c, REC_MAGIC, 1, 0, 4095, EINVAL);
    to_resuming(c);
    write_rec(c, REC_MAGIC, 1, 100, 4096, EINVAL);
    to_resuming(c);
    write_rec(c, REC_MAGIC, 1, 1u << 20, 4096, EINVAL);
    to_resuming(c);
    write_rec(c, REC_MAGIC, 1, UINT64_MAX - 4095, 4096, EINVAL);
    to_resuming(c);
    write_rec(c, REC_MAGIC, 2, 0, 1ull << 40, EINVAL);
    to_resuming(c);
    write_rec(c, REC_MAGIC, 3, 0, 8, EINVAL);

    /* A stream cut short: the device refuses to leave RESUMING. */
    to_resuming(c);
    write_rec(c, REC_MAGIC, 1, 4096, 4096, 0);
    assert_int_equal(vfu_client_mig_data_write(c, page, 100), 0);
    errno = 0;
    assert_int_equal(vfu_client_mig_set_state(c,
                     VFIO_USER_DEVICE_STATE_RUNNING), -1);
    assert_int_equal(errno, EINVAL);
    expect_state(c, VFIO_USER_DEVICE_STATE_RESUMING);

    /* No end record at all. */
    to_resuming(c);
    errno = 0;
    assert_int_equal(vfu_client_mig_set_state(c,
                     VFIO_USER_DEVICE_STATE_STOP), -1);
    assert_int_equal(errno, EINVAL);

    /* Data after the end record. */
    to_resuming(c);
    write_rec(c, REC_MAGIC, 3, 0, 0, 0);
    write_rec(c, REC_MAGIC, 3, 0, 0, EINVAL);

    /* A complete one-page stream, split at odd places, is taken. */
    to_resuming(c);
    {
        uint8_t stream[2 * sizeof(struct rec_hdr) + 4096];
        struct rec_hdr h1 = { REC_MAGIC, 1, 8192, 4096 };
        struct rec_hdr h2 = { REC_MAGIC, 3, 0, 0 };

        memset(page, 0x5a, sizeof(page));
        memcpy(stream, &h1, sizeof(h1));
        memcpy(stream + sizeof(h1), page, sizeof(page));
        memcpy(stream + sizeof(h1) + sizeof(page), &h2, sizeof(h2));
        assert_int_equal(vfu_client_mig_data_write(c, stream, 7), 0);
        assert_int_equal(vfu_client_mig_data_write(c, stream + 7, 2000), 0);
        assert_int_equal(vfu_client_mig_data_write(c, stream + 2007,
                                                   sizeof(stream) - 2007), 0);
    }
    assert_int_equal(vfu_client_mig_set_state(c,
                     VFIO_USER_DEVICE_STATE_RUNNING), 0);
    assert_int_equal(vfu_client_region_read(c, 1, 8192 + 4088, &v, 8), 0);
    assert_int_equal(v, 0x5a5a5a5a5a5a5a5aull);

    /* The server still serves a fresh client afterwards. */
    vfu_client_close(c);
    c = connect_sock(sock);
    expect_state(c, VFIO_USER_DEVICE_STATE_RUNNING);
    vfu_client_close(c);
    stop_server(&srv, sock);
}

/* Migrating with no pre-copy keeps BAR1 and an armed timer's IRQ. */
static void
test_server_stop_copy_only(void **state)
{
    char src_sock[128], dst_sock[128];
    struct proc src, dst;
    vfu_client_t *cs, *cd;
    struct vfu_client_mig_stats st;
    int efd[2] = { harness_eventfd(), harness_eventfd() };
    uint64_t when, v = 0xfeedf00dull, got = 0;

    sock_path(src_sock, sizeof(src_sock), "src");
    sock_path(dst_sock, sizeof(dst_sock), "dst");
    src = start_server(src_sock);
    dst = start_server(dst_sock);
    cs = connect_sock(src_sock);
    cd = connect_sock(dst_sock);
    for (int i = 0; i < 2; i++) {
        assert_true(efd[i] >= 0);
    }
    assert_int_equal(vfu_client_set_irqs(cd, VFIO_IRQ_SET_DATA_EVENTFD |
                     VFIO_IRQ_SET_ACTION_TRIGGER, 1, 0, 2, efd, 2, NULL, 0), 0);
    assert_int_equal(vfu_client_region_write(cs, 1, 0xff000, &v, 8), 0);
    when = (uint64_t)time(NULL) + 2;
    assert_int_equal(vfu_client_region_write(cs, 0, 0, &when, 8), 0);

    assert_int_equal(vfu_client_migrate(cs, cd, NULL, &st), 0);
    assert_int_equal(st.rounds, 0);
    assert_true(st.stopcopy_bytes > (1u << 20));
    assert_int_equal(vfu_client_region_read(cd, 1, 0xff000, &got, 8), 0);
    assert_int_equal(got, v);
    assert_int_equal(vfu_client_region_read(cd, 0, 0, &got, 8), 0);
    assert_int_equal(got, when);
    /* The source is stopped: its timer does not run there. */
    assert_true(harness_eventfd_wait(efd[0], 5000) > 0);
    assert_true(harness_eventfd_wait(efd[1], 1000) > 0);
    assert_int_equal(vfu_client_region_read(cd, 0, 0x28, &got, 8), 0);
    assert_int_equal(got, 1);

    vfu_client_close(cs);
    vfu_client_close(cd);
    close(efd[0]);
    close(efd[1]);
    stop_server(&src, src_sock);
    stop_server(&dst, dst_sock);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pair),
        cmocka_unit_test(test_client_exit_status),
        cmocka_unit_test(test_server_usage),
        cmocka_unit_test(test_server_bad_streams),
        cmocka_unit_test(test_server_stop_copy_only),
    };

    signal(SIGPIPE, SIG_IGN);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
