/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 the vfu authors. */

/*
 * --trace: one JSON object per line for every event the bindings see
 * (region accesses, resets, IRQs, DMA, migration), with a monotonic
 * timestamp in microseconds so traces from two runs line up.
 */
#include <time.h>

#include <json-c/json.h>

#include "lvfu.h"

struct json_object *
lvfu_trace_begin(lua_State *L, const char *event)
{
    struct lvfu_rt *rt = lvfu_rt(L);
    struct json_object *o;
    struct timespec ts;

    if (rt->trace == NULL) {
        return NULL;
    }
    o = json_object_new_object();
    if (o == NULL) {
        return NULL;
    }
    clock_gettime(CLOCK_MONOTONIC, &ts);
    json_object_object_add(o, "t_us", json_object_new_int64(
        (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000));
    json_object_object_add(o, "event", json_object_new_string(event));
    return o;
}

void
lvfu_trace_end(lua_State *L, struct json_object *o)
{
    struct lvfu_rt *rt = lvfu_rt(L);

    if (o == NULL) {
        return;
    }
    if (rt->trace != NULL) {
        fprintf(rt->trace, "%s\n",
                json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
        fflush(rt->trace);
    }
    json_object_put(o);
}
