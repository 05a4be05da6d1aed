/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 the vfu authors. */

/*
 * Migration for scripts: the device's state is one string, produced by the
 * script's save() (or by serializing its declared state table) when the
 * client enters stop-and-copy, and handed to load() (or deserialized into
 * that same table, in place) when the client leaves resume. Pre-copy sends
 * nothing: script devices are small.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "lvfu.h"

#define MIG_MAX (64u << 20)

const char *
lvfu_migr_state_name(vfu_migr_state_t s)
{
    static const char *const names[] = { "stop", "running", "stop_and_copy",
                                         "pre_copy", "resume" };

    return (unsigned)s < 5 ? names[s] : "unknown";
}

void
lvfu_migr_free(struct lvfu_dev *dev)
{
    free(dev->mig_out);
    dev->mig_out = NULL;
    dev->mig_out_len = dev->mig_out_pos = 0;
    free(dev->mig_in);
    dev->mig_in = NULL;
    dev->mig_in_len = dev->mig_in_cap = 0;
}

/* Push the helper function state.<name> and the declared state table. */
static void
push_auto(lua_State *L, struct lvfu_dev *dev, const char *name)
{
    lvfu_load_helper(L, "state");
    lua_getfield(L, -1, name);
    lua_remove(L, -2);
    lua_rawgeti(L, LUA_REGISTRYINDEX, dev->migr_state_ref);
}

static int
load_helper_protected(lua_State *L)
{
    return lvfu_load_helper(L, "state");
}

static int
save_state(lua_State *L, struct lvfu_dev *dev)
{
    const char *s;
    size_t len;
    int top = lua_gettop(L);

    lvfu_migr_free(dev);
    if (dev->migr_save_ref != LUA_NOREF) {
        lua_rawgeti(L, LUA_REGISTRYINDEX, dev->migr_save_ref);
        if (lvfu_pcall(L, dev, 0, 1, "migration save") < 0) {
            return -1;
        }
    } else {
        /* the helper loads lazily; keep a load error on the error path */
        lua_pushcfunction(L, load_helper_protected);
        if (lvfu_pcall(L, dev, 0, 1, "migration save") < 0) {
            return -1;
        }
        lua_pop(L, 1);
        push_auto(L, dev, "save");
        if (lvfu_pcall(L, dev, 1, 1, "migration save") < 0) {
            return -1;
        }
    }
    s = lua_tolstring(L, -1, &len);
    if (lua_type(L, -1) != LUA_TSTRING || (dev->mig_out = malloc(len + 1)) == NULL) {
        lvfu_errorf(dev, "migration save must return a string");
        lua_settop(L, top);
        errno = EIO;
        return -1;
    }
    memcpy(dev->mig_out, s, len);
    dev->mig_out_len = len;
    lua_settop(L, top);
    return 0;
}

static int
load_state(lua_State *L, struct lvfu_dev *dev)
{
    int top = lua_gettop(L);
    int rc;

    if (dev->migr_load_ref != LUA_NOREF) {
        lua_rawgeti(L, LUA_REGISTRYINDEX, dev->migr_load_ref);
        lua_pushlstring(L, dev->mig_in ? dev->mig_in : "", dev->mig_in_len);
        rc = lvfu_pcall(L, dev, 1, 0, "migration load");
    } else {
        lua_pushcfunction(L, load_helper_protected);
        if (lvfu_pcall(L, dev, 0, 1, "migration load") < 0) {
            return -1;
        }
        lua_pop(L, 1);
        push_auto(L, dev, "load");
        lua_pushlstring(L, dev->mig_in ? dev->mig_in : "", dev->mig_in_len);
        rc = lvfu_pcall(L, dev, 2, 0, "migration load");
    }
    lua_settop(L, top);
    return rc;
}

static int
transition(vfu_ctx_t *ctx, vfu_migr_state_t state)
{
    struct lvfu_dev *dev = vfu_get_private(ctx);
    lua_State *L = dev->closed ? NULL : dev->L;
    vfu_migr_state_t from = dev->migr_state;
    struct json_object *o;
    int top;

    if (L == NULL) {
        errno = EIO;
        return -1;
    }
    if ((o = lvfu_trace_begin(L, "migration")) != NULL) {
        json_object_object_add(o, "from", json_object_new_string(
            lvfu_migr_state_name(from)));
        json_object_object_add(o, "to", json_object_new_string(
            lvfu_migr_state_name(state)));
        lvfu_trace_end(L, o);
    }
    if (from == VFU_MIGR_STATE_RESUME && state != VFU_MIGR_STATE_RESUME &&
        load_state(L, dev) < 0) {
        return -1;
    }
    if (state == VFU_MIGR_STATE_RESUME) {
        lvfu_migr_free(dev);
    }
    if (dev->migr_transition_ref != LUA_NOREF) {
        top = lua_gettop(L);
        lua_rawgeti(L, LUA_REGISTRYINDEX, dev->migr_transition_ref);
        lua_pushstring(L, lvfu_migr_state_name(state));
        lua_pushstring(L, lvfu_migr_state_name(from));
        if (lvfu_pcall(L, dev, 2, 0, "migration transition") < 0) {
            lua_settop(L, top);
            return -1;
        }
        lua_settop(L, top);
    }
    /* snapshot after the handler: it may have stopped the device's work */
    if (state == VFU_MIGR_STATE_STOP_AND_COPY && save_state(L, dev) < 0) {
        return -1;
    }
    dev->migr_state = state;
    return 0;
}

static ssize_t
read_data(vfu_ctx_t *ctx, void *buf, uint64_t count)
{
    struct lvfu_dev *dev = vfu_get_private(ctx);
    size_t left = dev->mig_out_len - dev->mig_out_pos;
    size_t n = count < left ? (size_t)count : left;

    if (dev->migr_state != VFU_MIGR_STATE_STOP_AND_COPY || dev->mig_out == NULL) {
        return 0;
    }
    memcpy(buf, dev->mig_out + dev->mig_out_pos, n);
    dev->mig_out_pos += n;
    return (ssize_t)n;
}

static ssize_t
write_data(vfu_ctx_t *ctx, void *buf, uint64_t count)
{
    struct lvfu_dev *dev = vfu_get_private(ctx);

    if (dev->migr_state != VFU_MIGR_STATE_RESUME) {
        errno = EINVAL;
        return -1;
    }
    if (count > MIG_MAX - dev->mig_in_len) {
        errno = EFBIG;
        return -1;
    }
    if (dev->mig_in_len + count > dev->mig_in_cap) {
        size_t cap = dev->mig_in_cap ? dev->mig_in_cap : 4096;
        char *p;

        while (cap < dev->mig_in_len + count) {
            cap *= 2;
        }
        p = realloc(dev->mig_in, cap);
        if (p == NULL) {
            return -1;
        }
        dev->mig_in = p;
        dev->mig_in_cap = cap;
    }
    memcpy(dev->mig_in + dev->mig_in_len, buf, count);
    dev->mig_in_len += count;
    return (ssize_t)count;
}

int
lvfu_migr_setup(struct lvfu_dev *dev)
{
    static const vfu_migration_callbacks_t cbs = {
        .version = VFU_MIGR_CALLBACKS_VERS,
        .transition = transition,
        .read_data = read_data,
        .write_data = write_data,
    };

    return vfu_setup_device_migration_callbacks(dev->ctx, &cbs);
}
