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
    dev->mig_in_over = false;
    dev->mig_in_failed = false;
}

void
lvfu_migr_free(struct lvfu_dev *dev)
{
    out_free(dev);
    in_free(dev);
}

/*
 * The largest stream kept in C memory: a quarter of the Lua memory cap (16
 * MiB at vfu-lua's default of 64), at most 64 MiB. The destination hands
 * the whole received stream to the script as strings, and the script needs
 * room left to decode them; the source keeps to the same bound so that a
 * device can always load what its twin saved.
 */
static size_t
mig_max(struct lvfu_dev *dev)
{
    size_t cap = dev->L != NULL ? lvfu_mem_cap(dev->L) : 0;

    return cap != 0 && cap / 4 < MIG_MAX ? cap / 4 : MIG_MAX;
}

/* Append one record to what the client reads next (unread bytes stay). */
static int
out_append(struct lvfu_dev *dev, char kind, const char *s, size_t len)
{
    size_t left = dev->mig_out_len - dev->mig_out_pos;
    size_t max = mig_max(dev);
    char *p;

    if (len > max || left > max - len || left + len > max - REC_HDR) {
        lvfu_errorf(dev, "migration data over %zu KiB", max >> 10);
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

/* What the entries of this file build their arguments from. */
struct mig_call {
    struct lvfu_dev *dev;
    char kind;                  /* produce: 'P' or 'S' */
    const char *bad;            /* produce: the type of an unusable result */
    int err;                    /* produce: errno of a failed append */
    vfu_migr_state_t to, from;  /* transition */
    size_t len;                 /* receive: the record's length */
};

/* Push state.<name> and the declared state table. */
static void
push_auto(lua_State *L, struct lvfu_dev *dev, const char *name)
{
    lvfu_load_helper(L, "state");
    lua_getfield(L, -1, name);
    lua_remove(L, -2);
    lua_rawgeti(L, LUA_REGISTRYINDEX, dev->migr_state_ref);
}

static int
push_auto_save(lua_State *L, void *arg)
{
    push_auto(L, ((struct mig_call *)arg)->dev, "save");
    return 1;
}

/* The result of save() or precopy(): appended as a record. precopy() may
 * also return nil or "": nothing this round. */
static int
take_record(lua_State *L, void *arg)
{
    struct mig_call *m = arg;
    const char *s;
    size_t len;

    if (m->kind == 'P' && lua_isnil(L, -1)) {
        return 0;
    }
    if (lua_type(L, -1) != LUA_TSTRING) {
        m->bad = luaL_typename(L, -1);
        return -1;
    }
    s = lua_tolstring(L, -1, &len);
    if (m->kind == 'P' && len == 0) {
        return 0;
    }
    if (out_append(m->dev, m->kind, s, len) < 0) {
        m->err = errno;
        return -1;
    }
    return 0;
}

/* Call a script function returning a string and append it as a record. */
static int
produce(lua_State *L, struct lvfu_dev *dev, char kind)
{
    struct mig_call m = { .dev = dev, .kind = kind };
    struct lvfu_entry e = {
        .what = kind == 'P' ? "migration precopy" : "migration save",
        .ref = kind == 'P' ? dev->migr_precopy_ref : dev->migr_save_ref,
        .nres = 1, .take = take_record, .arg = &m,
    };

    if (e.ref == LUA_NOREF) {
        e.push = push_auto_save;
    }
    if (lvfu_enter(L, dev, &e, 0) < 0) {
        if (m.bad != NULL) {
            lvfu_errorf(dev, "%s must return a string, not %s", e.what, m.bad);
        }
        errno = m.err != 0 ? m.err : EIO;
        return -1;
    }
    return 0;
}

/* Check the received records; push the final state and the list of
 * pre-copy strings (raises on a malformed stream). */
static void
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
            return;
        }
        lua_rawseti(L, -2, ++npre);
    }
    luaL_error(L, "migration stream is malformed (%I bytes received)",
               (lua_Integer)dev->mig_in_len);
}

/* load(s, pre) */
static int
push_load(lua_State *L, void *arg)
{
    push_records(L, ((struct mig_call *)arg)->dev);
    return 2;
}

/* state.load(tbl, s): no pre-copy records without a load handler */
static int
push_auto_load(lua_State *L, void *arg)
{
    struct lvfu_dev *dev = ((struct mig_call *)arg)->dev;

    push_auto(L, dev, "load");
    push_records(L, dev);
    lua_pop(L, 1);
    return 2;
}

static int
load_state(lua_State *L, struct lvfu_dev *dev)
{
    struct mig_call m = { .dev = dev };
    struct lvfu_entry e = {
        .what = "migration load", .ref = dev->migr_load_ref, .arg = &m,
        .push = dev->migr_load_ref != LUA_NOREF ? push_load : push_auto_load,
    };

    if (dev->mig_in_over) {
        lvfu_errorf(dev, "migration load: the stream was cut short");
        errno = EFBIG;
        return -1;
    }
    if (dev->mig_in_failed) {
        lvfu_errorf(dev, "migration load: a pre-copy record was refused");
        errno = EIO;
        return -1;
    }
    return lvfu_enter(L, dev, &e, 0);
}

static int
push_transition(lua_State *L, void *arg)
{
    struct mig_call *m = arg;

    lua_pushstring(L, lvfu_migr_state_name(m->to));
    lua_pushstring(L, lvfu_migr_state_name(m->from));
    return 2;
}

/*
 * The client is gone: what it sent while resuming is half a stream and
 * must not reach the script. The core's reset(lost_conn) comes before it
 * brings the device back to running.
 */
void
lvfu_migr_lost(struct lvfu_dev *dev)
{
    if (dev->migr && dev->migr_state == VFU_MIGR_STATE_RESUME) {
        in_free(dev);
        dev->mig_abandoned = true;
    }
}

static int
transition(vfu_ctx_t *ctx, vfu_migr_state_t state)
{
    struct lvfu_dev *dev = vfu_get_private(ctx);
    lua_State *L = dev->closed ? NULL : dev->L;
    vfu_migr_state_t from = dev->migr_state;
    struct mig_call m = { .dev = dev, .to = state, .from = from };
    struct lvfu_entry e = {
        .what = "migration transition", .ref = dev->migr_transition_ref,
        .push = push_transition, .arg = &m,
    };
    struct json_object *o;

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
    if (from == VFU_MIGR_STATE_RESUME && state == VFU_MIGR_STATE_RUNNING) {
        /* No client goes there directly (the spec's only arc out of
         * resuming is to stop): the core is resetting the device, for the
         * client or because it left. The stream is abandoned, and the
         * device is running whatever its handler says, as the core has it. */
        dev->mig_abandoned = true;
        dev->migr_state = state;
    }
    if (from == VFU_MIGR_STATE_RESUME && state != VFU_MIGR_STATE_RESUME) {
        if (!dev->mig_abandoned && load_state(L, dev) < 0) {
            return -1;
        }
        dev->mig_abandoned = false;
        in_free(dev);
    }
    if (state == VFU_MIGR_STATE_RESUME) {
        lvfu_migr_free(dev);
        dev->mig_abandoned = false;
    }
    /* a new save starts unless stop-and-copy continues a pre-copy */
    if (state == VFU_MIGR_STATE_PRE_COPY ||
        (state == VFU_MIGR_STATE_STOP_AND_COPY &&
         from != VFU_MIGR_STATE_PRE_COPY) ||
        state == VFU_MIGR_STATE_RUNNING) {
        out_free(dev);
    }
    if (dev->migr_transition_ref != LUA_NOREF && lvfu_enter(L, dev, &e, 0) < 0) {
        return -1;
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

static int
push_received(lua_State *L, void *arg)
{
    struct mig_call *m = arg;

    lua_pushlstring(L, m->dev->mig_in + REC_HDR, m->len);
    return 1;
}

/*
 * With migration.receive, each complete pre-copy record at the front of
 * what arrived goes to it at once and is dropped: the stream kept in C is
 * then one record and the state, not every round. A malformed header is
 * left for load_state() to refuse; a failing receive() fails the load.
 */
static void
deliver_received(lua_State *L, struct lvfu_dev *dev)
{
    while (!dev->mig_in_failed && dev->mig_in_len >= REC_HDR) {
        const char *p = dev->mig_in;
        struct mig_call m = { .dev = dev };
        struct lvfu_entry e = {
            .what = "migration receive", .ref = dev->migr_receive_ref,
            .push = push_received, .arg = &m,
        };
        uint64_t len = 0;

        if (memcmp(p, REC_MAGIC, 4) != 0 || p[4] != 'P' || p[5] || p[6] || p[7]) {
            return;
        }
        for (int i = 0; i < 8; i++) {
            len |= (uint64_t)(uint8_t)p[8 + i] << (8 * i);
        }
        if (len > dev->mig_in_len - REC_HDR) {
            return;                     /* the rest is still to come */
        }
        m.len = (size_t)len;
        if (lvfu_enter(L, dev, &e, 0) < 0) {
            dev->mig_in_failed = true;
        }
        dev->mig_in_len -= REC_HDR + (size_t)len;
        memmove(dev->mig_in, p + REC_HDR + len, dev->mig_in_len);
    }
}

static ssize_t
write_data(vfu_ctx_t *ctx, void *buf, uint64_t count)
{
    struct lvfu_dev *dev = vfu_get_private(ctx);

    if (dev->migr_state != VFU_MIGR_STATE_RESUME) {
        errno = EINVAL;
        return -1;
    }
    if (dev->mig_in_over || count > mig_max(dev) - dev->mig_in_len) {
        /* logged once; the rest of such a stream is refused as well */
        if (!dev->mig_in_over) {
            lvfu_errorf(dev, "incoming migration stream over %zu KiB "
                        "(a quarter of the Lua memory cap)", mig_max(dev) >> 10);
            dev->mig_in_over = true;
        }
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
    if (dev->migr_receive_ref != LUA_NOREF && !dev->closed && dev->L != NULL) {
        deliver_received(dev->L, dev);
    }
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
