/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 the vfu authors. */

/*
 * --trace: one JSON object per line for every protocol message (request
 * and reply, from the core's message trace) and every event the bindings
 * see (region accesses, resets, IRQs, DMA, migration), with a monotonic
 * timestamp in microseconds so traces from two runs line up.
 */
#include <string.h>
#include <time.h>

#include <json-c/json.h>
#include <linux/vfio.h>

#include "lvfu.h"
#include "vfio-user.h"
#include "vfu.h"

static struct json_object *
trace_begin(FILE *f, const char *event)
{
    struct json_object *o;
    struct timespec ts;

    if (f == NULL || (o = json_object_new_object()) == NULL) {
        return NULL;
    }
    clock_gettime(CLOCK_MONOTONIC, &ts);
    json_object_object_add(o, "t_us", json_object_new_int64(
        (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000));
    json_object_object_add(o, "event", json_object_new_string(event));
    return o;
}

static void
trace_end(FILE *f, struct json_object *o)
{
    if (o == NULL) {
        return;
    }
    fprintf(f, "%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
    fflush(f);
    json_object_put(o);
}

struct json_object *
lvfu_trace_begin(lua_State *L, const char *event)
{
    return trace_begin(lvfu_rt(L)->trace, event);
}

void
lvfu_trace_end(lua_State *L, struct json_object *o)
{
    struct lvfu_rt *rt = lvfu_rt(L);

    if (rt->trace == NULL) {
        json_object_put(o);
        return;
    }
    trace_end(rt->trace, o);
}

static void
add_u64(struct json_object *o, const char *key, uint64_t v)
{
    /* json-c integers are signed: keep huge values exact as hex text */
    if (v > INT64_MAX) {
        char hex[24];

        snprintf(hex, sizeof(hex), "0x%llx", (unsigned long long)v);
        json_object_object_add(o, key, json_object_new_string(hex));
    } else {
        json_object_object_add(o, key, json_object_new_int64((int64_t)v));
    }
}

/* The few fields worth seeing of the common commands; a payload too short
 * to hold them gets no summary (the server refuses it anyway). */
static void
summarize(struct json_object *o, uint16_t cmd, const void *p, size_t size,
          bool is_reply)
{
    switch (cmd) {
    case VFIO_USER_REGION_READ:
    case VFIO_USER_REGION_WRITE: {
        struct vfio_user_region_access ra;

        if (size < sizeof(ra)) {
            return;
        }
        memcpy(&ra, p, sizeof(ra));
        json_object_object_add(o, "region", json_object_new_string(
            ra.region < VFU_PCI_DEV_NUM_REGIONS ? lvfu_region_name((int)ra.region)
                                                : "unknown"));
        add_u64(o, "offset", ra.offset);
        add_u64(o, "count", ra.count);
        return;
    }
    case VFIO_USER_DMA_MAP: {
        struct vfio_user_dma_map m;

        if (is_reply || size < sizeof(m)) {
            return;
        }
        memcpy(&m, p, sizeof(m));
        add_u64(o, "iova", m.addr);
        add_u64(o, "len", m.size);
        json_object_object_add(o, "prot", json_object_new_string(
            (m.flags & VFIO_USER_F_DMA_REGION_WRITE) ? "rw" : "r"));
        return;
    }
    case VFIO_USER_DMA_UNMAP: {
        struct vfio_user_dma_unmap u;

        if (size < sizeof(u)) {
            return;
        }
        memcpy(&u, p, sizeof(u));
        add_u64(o, "iova", u.addr);
        add_u64(o, "len", u.size);
        return;
    }
    case VFIO_USER_DEVICE_SET_IRQS: {
        struct vfio_irq_set s;

        if (is_reply || size < sizeof(s)) {
            return;
        }
        memcpy(&s, p, sizeof(s));
        add_u64(o, "index", s.index);
        add_u64(o, "start", s.start);
        add_u64(o, "count", s.count);
        add_u64(o, "irq_flags", s.flags);
        return;
    }
    default:
        return;
    }
}

void
lvfu_trace_msg(vfu_ctx_t *ctx, const struct vfio_user_header *hdr,
               const void *payload, size_t size, bool is_reply, void *arg)
{
    FILE *f = arg;
    struct json_object *o = trace_begin(f, "msg");

    (void)ctx;
    if (o == NULL) {
        return;
    }
    json_object_object_add(o, "dir", json_object_new_string(
        is_reply ? "reply" : "request"));
    json_object_object_add(o, "msg_id", json_object_new_int(hdr->msg_id));
    json_object_object_add(o, "cmd", json_object_new_string(vfu_cmd_name(hdr->cmd)));
    json_object_object_add(o, "cmd_no", json_object_new_int(hdr->cmd));
    add_u64(o, "flags", hdr->flags);
    if (hdr->flags & VFIO_USER_F_ERROR) {
        json_object_object_add(o, "error", json_object_new_int((int)hdr->error_no));
        json_object_object_add(o, "error_str", json_object_new_string(
            strerror((int)hdr->error_no)));
    }
    add_u64(o, "size", size);
    if (payload == NULL && !is_reply && hdr->msg_size > sizeof(*hdr)) {
        json_object_object_add(o, "dropped", json_object_new_boolean(true));
    } else if (payload != NULL && !(hdr->flags & VFIO_USER_F_ERROR)) {
        summarize(o, hdr->cmd, payload, size, is_reply);
    }
    trace_end(f, o);
}
