/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 the vfu authors. */

/*
 * Migration for scripts. The stream is a sequence of records, each a
 * 16-byte header (magic "vfuL", kind, three zero bytes, 64-bit little-endian
 * length) and its bytes:
 *   'P'  what the script's precopy() returned in one pre-copy round
 *   'S'  the state at stop-and-copy: save()'s string, or the declared
 *        state table serialized by state.lua; always the last record
 * The destination checks the whole stream when the client leaves resume
 * and hands it to load(s, pre) (pre: the 'P' records, in order), or
 * deserializes the state table in place.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "lvfu.h"

#define MIG_MAX   (64u << 20)
#define REC_HDR   16
#define REC_MAGIC "vfuL"

const char *
lvfu_migr_state_name(vfu_migr_state_t s)
{
    static const char *const names[] = { "stop", "running", "stop_and_copy",
                                         "pre_copy", "resume" };

    return (unsigned)s < 5 ? names[s] : "unknown";
}

static void
out_free(struct lvfu_dev *dev)
{
    free(dev->mig_out);
    dev->mig_out = NULL;
    dev->mig_out_len = dev->mig_out_pos = 0;
}

static void
in_free(struct lvfu_dev *dev)
{
    free(dev->mig_in);
    dev->mig_in = NULL;
    dev->mig_in_len = dev->mig_in_cap = 0;
}

void
lvfu_migr_free(struct lvfu_dev *dev)
{
    out_free(dev);
    in_free(dev);
}

/* Append one record to what the client reads next (unread bytes stay). */
static int
out_append(struct lvfu_dev *dev, char kind, const char *s, size_t len)
{
    size_t left = dev->mig_out_len - dev->mig_out_pos;
    char *p;

    if (len > MIG_MAX || left > MIG_MAX) {
        lvfu_errorf(dev, "migration data over %u MiB", MIG_MAX >> 20);
        errno = EFBIG;
        return -1;
    }
    p = malloc(left + REC_HDR + len);
    if (p == NULL) {
        return -1;
    }
    if (left > 0) {
        memcpy(p, dev->mig_out + dev->mig_out_pos, left);
    }
    memcpy(p + left, REC_MAGIC, 4);
    p[left + 4] = kind;
    memset(p + left + 5, 0, 3);
    for (int i = 0; i < 8; i++) {
        p[left + 8 + i] = (char)((uint64_t)len >> (8 * i));
    }
    memcpy(p + left + REC_HDR, s, len);
    free(dev->mig_out);
    dev->mig_out = p;
    dev->mig_out_len = left + REC_HDR + len;
    dev->mig_out_pos = 0;
    return 0;
}

static int
load_helper_protected(lua_State *L)
{
    return lvfu_load_helper(L, "state");
}

/* Push state.<name> and the declared state table, under protection. */
static int
push_auto(lua_State *L, struct lvfu_dev *dev, const char *name, const char *what)
{
    /* the helper loads lazily; keep a load error on the error path */
    lua_pushcfunction(L, load_helper_protected);
    if (lvfu_pcall(L, dev, 0, 1, what) < 0) {
        return -1;
    }
    lua_getfield(L, -1, name);
    lua_remove(L, -2);
    lua_rawgeti(L, LUA_REGISTRYINDEX, dev->migr_state_ref);
    return 0;
}

/* Call a script function returning a string and append it as a record.
 * precopy() may also return nil: nothing this round. */
static int
produce(lua_State *L, struct lvfu_dev *dev, char kind)
{
    int top = lua_gettop(L);
    const char *what = kind == 'P' ? "migration precopy" : "migration save";
    int ref = kind == 'P' ? dev->migr_precopy_ref : dev->migr_save_ref;
    const char *s;
    size_t len;
    int rc;

    if (ref != LUA_NOREF) {
        lua_rawgeti(L, LUA_REGISTRYINDEX, ref);
        rc = lvfu_pcall(L, dev, 0, 1, what);
    } else {
        rc = push_auto(L, dev, "save", what);
        if (rc == 0) {
            rc = lvfu_pcall(L, dev, 1, 1, what);
        }
    }
    if (rc < 0) {
        return -1;
    }
    if (kind == 'P' && lua_isnil(L, -1)) {
        lua_settop(L, top);
        return 0;
    }
    if (lua_type(L, -1) != LUA_TSTRING) {
        lvfu_errorf(dev, "%s must return a string, not %s", what,
                    luaL_typename(L, -1));
        lua_settop(L, top);
        errno = EIO;
        return -1;
    }
    s = lua_tolstring(L, -1, &len);
    rc = kind == 'P' && len == 0 ? 0 : out_append(dev, kind, s, len);
    lua_settop(L, top);
    return rc;
}

/* Check the received records; push the final state and the list of
 * pre-copy strings. */
static int
push_records(lua_State *L, struct lvfu_dev *dev)
{
    const char *p = dev->mig_in != NULL ? dev->mig_in : "";
    size_t left = dev->mig_in_len;
    int npre = 0;

    lua_newtable(L);
    while (left > 0) {
        uint64_t len = 0;
        char kind;

        if (left < REC_HDR || memcmp(p, REC_MAGIC, 4) != 0 ||
            (p[4] != 'P' && p[4] != 'S') || p[5] || p[6] || p[7]) {
            break;
        }
        kind = p[4];
        for (int i = 0; i < 8; i++) {
            len |= (uint64_t)(uint8_t)p[8 + i] << (8 * i);
        }
        if (len > left - REC_HDR) {
            break;
        }
        lua_pushlstring(L, p + REC_HDR, (size_t)len);
        p += REC_HDR + len;
        left -= REC_HDR + (size_t)len;
        if (kind == 'S') {
            if (left != 0) {
                break;      /* the state record comes last */
            }
            lua_insert(L, -2);
            return 0;
        }
        lua_rawseti(L, -2, ++npre);
    }
    lua_pop(L, 1);
    lvfu_errorf(dev, "migration stream is malformed (%zu bytes received)",
                dev->mig_in_len);
    errno = EINVAL;
    return -1;
}

static int
load_state(lua_State *L, struct lvfu_dev *dev)
{
    int top = lua_gettop(L);
    int rc;

    if (dev->migr_load_ref != LUA_NOREF) {
        lua_rawgeti(L, LUA_REGISTRYINDEX, dev->migr_load_ref);
        if (push_records(L, dev) < 0) {
            lua_settop(L, top);
            return -1;
        }
        rc = lvfu_pcall(L, dev, 2, 0, "migration load");
    } else {
        if (push_auto(L, dev, "load", "migration load") < 0) {
            return -1;
        }
        if (push_records(L, dev) < 0) {
            lua_settop(L, top);
            return -1;
        }
        lua_pop(L, 1);      /* no pre-copy records without a load handler */
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
    if (from == VFU_MIGR_STATE_RESUME && state != VFU_MIGR_STATE_RESUME) {
        if (load_state(L, dev) < 0) {
            return -1;
        }
        in_free(dev);
    }
    if (state == VFU_MIGR_STATE_RESUME) {
        lvfu_migr_free(dev);
    }
    /* a new save starts unless stop-and-copy continues a pre-copy */
    if (state == VFU_MIGR_STATE_PRE_COPY ||
        (state == VFU_MIGR_STATE_STOP_AND_COPY &&
         from != VFU_MIGR_STATE_PRE_COPY) ||
        state == VFU_MIGR_STATE_RUNNING) {
        out_free(dev);
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
    /* snapshots after the handler: it may have stopped the device's work */
    if (state == VFU_MIGR_STATE_PRE_COPY && from != VFU_MIGR_STATE_PRE_COPY &&
        dev->migr_precopy_ref != LUA_NOREF && produce(L, dev, 'P') < 0) {
        return -1;
    }
    if (state == VFU_MIGR_STATE_STOP_AND_COPY && produce(L, dev, 'S') < 0) {
        return -1;
    }
    dev->migr_state = state;
    return 0;
}

static ssize_t
read_data(vfu_ctx_t *ctx, void *buf, uint64_t count)
{
    struct lvfu_dev *dev = vfu_get_private(ctx);
    lua_State *L = dev->closed ? NULL : dev->L;
    size_t left, n;

    if (dev->migr_state != VFU_MIGR_STATE_STOP_AND_COPY &&
        dev->migr_state != VFU_MIGR_STATE_PRE_COPY) {
        return 0;
    }
    /* pre-copy: once a round is read, the next read asks for another */
    if (dev->migr_state == VFU_MIGR_STATE_PRE_COPY && L != NULL &&
        dev->mig_out_pos == dev->mig_out_len &&
        dev->migr_precopy_ref != LUA_NOREF) {
        out_free(dev);
        if (produce(L, dev, 'P') < 0) {
            return -1;
        }
    }
    left = dev->mig_out_len - dev->mig_out_pos;
    n = count < left ? (size_t)count : left;
    if (n > 0) {
        memcpy(buf, dev->mig_out + dev->mig_out_pos, n);
        dev->mig_out_pos += n;
    }
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
