/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 the vfu authors. */

/*
 * vfu_setup_trace(): every request and every reply, in order, with the
 * right headers and payloads, including error replies and requests whose
 * payload is dropped unseen; and nothing once the trace is removed.
 */

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "harness.h"
#include "vfu.h"

#define MAX_EVENTS 64

struct event {
    uint16_t msg_id, cmd;
    uint32_t flags, error_no;
    size_t size;
    bool is_reply, has_payload;
    uint8_t head[8];
};

/* The harness device first, so that callbacks find it as their private
 * pointer; the trace log after it. */
struct tdev {
    struct harness_dev dev;
    struct event ev[MAX_EVENTS];
    unsigned nr;
};

static void
trace(vfu_ctx_t *ctx, const struct vfio_user_header *hdr, const void *payload,
      size_t size, bool is_reply, void *arg)
{
    struct tdev *t = arg;
    struct event *e;

    if (t->nr >= MAX_EVENTS) {
        return;
    }
    e = &t->ev[t->nr];
    e->msg_id = hdr->msg_id;
    e->cmd = hdr->cmd;
    e->flags = hdr->flags;
    e->error_no = hdr->error_no;
    e->size = size;
    e->is_reply = is_reply;
    e->has_payload = payload != NULL;
    if (payload != NULL) {
        memcpy(e->head, payload, size < 8 ? size : 8);
    }
    __atomic_store_n(&t->nr, t->nr + 1, __ATOMIC_RELEASE);
}

static int
setup_traced(vfu_ctx_t *ctx, void *arg)
{
    if (vfu_setup_trace(ctx, trace, arg) < 0) {
        return -1;
    }
    return harness_dev_setup(ctx, arg);
}

static void
untrace(vfu_ctx_t *ctx, void *arg)
{
    assert_int_equal(vfu_setup_trace(ctx, NULL, NULL), 0);
}

static unsigned
nr_events(struct tdev *t)
{
    return __atomic_load_n(&t->nr, __ATOMIC_ACQUIRE);
}

static void
test_trace(void **state)
{
    struct tdev *t = calloc(1, sizeof(*t));
    struct harness_server *srv;
    vfu_client_t *c;
    uint32_t v = 0x12345678;
    char big[64];

    assert_non_null(t);
    assert_int_equal(harness_dev_init(&t->dev), 0);
    assert_int_equal(vfu_setup_trace(NULL, trace, NULL), -1);
    assert_int_equal(errno, EINVAL);
    srv = harness_server_start(setup_traced, t);
    assert_non_null(srv);
    c = harness_connect(srv);

    assert_int_equal(vfu_client_region_write(c, 0, 4, &v, 4), 0);
    /* An error reply: offset out of range. */
    assert_int_equal(vfu_client_region_read(c, 0, HARNESS_BAR0_SIZE, big, 4), -1);
    assert_int_equal(errno, EINVAL);
    /* An unknown command. */
    assert_int_equal(vfu_client_call(c, 99, NULL, 0, NULL, 0, NULL, NULL,
                                     NULL, NULL), -1);

    /* VERSION, WRITE, READ, 99: request then reply each. */
    assert_int_equal(nr_events(t), 8);
    for (unsigned i = 0; i < 8; i += 2) {
        struct event *rq = &t->ev[i], *rp = &t->ev[i + 1];
        assert_false(rq->is_reply);
        assert_true(rp->is_reply);
        assert_int_equal(rq->msg_id, rp->msg_id);
        assert_int_equal(rq->cmd, rp->cmd);
        assert_int_equal(rq->flags & VFIO_USER_F_TYPE_MASK,
                         VFIO_USER_F_TYPE_COMMAND);
        assert_int_equal(rp->flags & VFIO_USER_F_TYPE_MASK,
                         VFIO_USER_F_TYPE_REPLY);
        assert_true(rq->has_payload || rq->size == 0);
    }
    assert_int_equal(t->ev[0].cmd, VFIO_USER_VERSION);
    assert_int_equal(t->ev[2].cmd, VFIO_USER_REGION_WRITE);
    assert_int_equal(t->ev[2].size, 16 + 4);
    assert_memory_equal(t->ev[2].head, &(uint64_t){ 4 }, 8);
    assert_false(t->ev[3].flags & VFIO_USER_F_ERROR);
    assert_int_equal(t->ev[4].cmd, VFIO_USER_REGION_READ);
    assert_true(t->ev[5].flags & VFIO_USER_F_ERROR);
    assert_int_equal(t->ev[5].error_no, EINVAL);
    assert_int_equal(t->ev[6].cmd, 99);
    assert_true(t->ev[7].flags & VFIO_USER_F_ERROR);
    assert_int_not_equal(t->ev[7].error_no, 0);
    /* ids increase: the trace is in order */
    assert_true(t->ev[2].msg_id != t->ev[4].msg_id);

    /* An oversized request: traced with no payload, then its EINVAL. */
    {
        struct vfio_user_header h = {
            .msg_id = vfu_client_next_msg_id(c),
            .cmd = VFIO_USER_REGION_WRITE,
            .msg_size = (uint32_t)(sizeof(h) + (64u << 20)),
        };
        assert_int_equal(vfu_client_send_raw(c, &h, sizeof(h), NULL, 0), 0);
        /* The server waits for the declared bytes to drop them; give it
         * none and end the session instead. */
    }
    vfu_client_close(c);
    for (int i = 0; i < 200 && nr_events(t) < 9; i++) {
        harness_sleep_ms(5);
    }
    assert_true(nr_events(t) >= 9);
    assert_false(t->ev[8].is_reply);
    assert_int_equal(t->ev[8].cmd, VFIO_USER_REGION_WRITE);
    assert_false(t->ev[8].has_payload);
    /* vfu.h: the size it declared */
    assert_int_equal(t->ev[8].size, 64u << 20);

    /* Removed: nothing more is seen. */
    c = harness_connect(srv);
    assert_int_equal(harness_server_exec(srv, untrace, NULL), 0);
    unsigned before = nr_events(t);
    assert_int_equal(vfu_client_region_read(c, 0, 4, &v, 4), 0);
    assert_int_equal(v, 0x12345678);
    assert_int_equal(nr_events(t), before);
    vfu_client_close(c);

    assert_int_equal(harness_server_stop(srv), 0);
    harness_dev_fini(&t->dev);
    free(t);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_trace),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
