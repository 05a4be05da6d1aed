/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 the vfu authors. */

/*
 * The device object: vfu.device{...} checks the declaration, dev:listen()
 * turns it into a vfu context, and the C callbacks here call the script's
 * handlers. Every handler runs through lvfu_enter, so a broken handler costs
 * the client one EIO and the log one traceback, never the server.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <json-c/json.h>

#include "lvfu.h"
#include "vfu.h"

void
lvfu_unref(lua_State *L, int *ref)
{
    if (*ref != LUA_NOREF && *ref != LUA_REFNIL) {
        luaL_unref(L, LUA_REGISTRYINDEX, *ref);
    }
    *ref = LUA_NOREF;
}

struct lvfu_dev *
lvfu_checkdev(lua_State *L, int idx)
{
    struct lvfu_dev *dev = luaL_checkudata(L, idx, LVFU_DEVICE_MT);

    if (dev->closed) {
        luaL_argerror(L, idx, "device is closed");
    }
    return dev;
}

/* The thread callbacks run on: set by whoever drives vfu_run_ctx(). */
static lua_State *
cb_state(struct lvfu_dev *dev)
{
    return dev->closed ? NULL : dev->L;
}

/* --- regions --------------------------------------------------------- */

static void
push_value(lua_State *L, const char *buf, size_t count)
{
    uint64_t v = 0;

    if (count == 1 || count == 2 || count == 4 || count == 8) {
        for (size_t i = 0; i < count; i++) {
            v |= (uint64_t)(uint8_t)buf[i] << (8 * i);
        }
        lua_pushinteger(L, (lua_Integer)v);
    } else {
        lua_pushlstring(L, buf, count);
    }
}

/* Store a read handler's result; -1 if it is unusable. */
static int
store_value(lua_State *L, int idx, char *buf, size_t count)
{
    size_t len;
    const char *s;

    switch (lua_type(L, idx)) {
    case LUA_TNIL:
        memset(buf, 0, count);
        return 0;
    case LUA_TNUMBER:
        if (lua_isinteger(L, idx) && count <= 8) {
            uint64_t v = (uint64_t)lua_tointeger(L, idx);

            for (size_t i = 0; i < count; i++) {
                buf[i] = (char)(v >> (8 * i));
            }
            return 0;
        }
        return -1;
    case LUA_TSTRING:
        s = lua_tolstring(L, idx, &len);
        if (len != count) {
            return -1;
        }
        memcpy(buf, s, count);
        return 0;
    default:
        return -1;
    }
}

static void
trace_access(lua_State *L, int idx, loff_t off, size_t count, bool is_write,
             const char *buf, int err)
{
    struct json_object *o = lvfu_trace_begin(L, is_write ? "region_write"
                                                         : "region_read");
    char hex[2 * 64 + 1];
    size_t n = count < 64 ? count : 64;

    if (o == NULL) {
        return;
    }
    json_object_object_add(o, "region", json_object_new_string(lvfu_region_name(idx)));
    json_object_object_add(o, "offset", json_object_new_int64(off));
    json_object_object_add(o, "size", json_object_new_int64((int64_t)count));
    if (err == 0) {
        for (size_t i = 0; i < n; i++) {
            /* little-endian bytes, as on the wire */
            snprintf(hex + 2 * i, 3, "%02x", (uint8_t)buf[i]);
        }
        hex[2 * n] = '\0';
        json_object_object_add(o, "data", json_object_new_string(hex));
    } else {
        json_object_object_add(o, "error", json_object_new_string(strerror(err)));
    }
    lvfu_trace_end(L, o);
}

/* What a region access hands to its handler and takes back. */
struct access {
    char *buf;
    size_t count;
    loff_t off;
    bool is_write;
    const char *bad;            /* the type of an unusable read result */
};

static int
access_push(lua_State *L, void *arg)
{
    struct access *a = arg;

    lua_pushinteger(L, a->off);
    lua_pushinteger(L, (lua_Integer)a->count);
    if (a->is_write) {
        push_value(L, a->buf, a->count);    /* may allocate: protected */
        return 3;
    }
    return 2;
}

static int
access_take(lua_State *L, void *arg)
{
    struct access *a = arg;

    if (store_value(L, -1, a->buf, a->count) < 0) {
        a->bad = luaL_typename(L, -1);
        return -1;
    }
    return 0;
}

/*
 * The hot path: one call per 4-byte register access, so nothing here
 * formats, allocates or looks anything up by name unless something fails
 * or tracing is on.
 */
static ssize_t
region_access(vfu_ctx_t *ctx, int idx, char *buf, size_t count, loff_t off,
              bool is_write)
{
    struct lvfu_dev *dev = vfu_get_private(ctx);
    struct lvfu_region *r = &dev->regions[idx];
    int ref = is_write ? r->write_ref : r->read_ref;
    lua_State *L = cb_state(dev);
    struct access a = { buf, count, off, is_write, NULL };
    struct lvfu_entry e = {
        .who = lvfu_region_name(idx), .what = is_write ? "write" : "read",
        .ref = ref, .nres = is_write ? 0 : 1, .push = access_push,
        .take = is_write ? NULL : access_take, .arg = &a,
    };

    if (off < 0 || (uint64_t)off > r->size || count > r->size - (uint64_t)off) {
        errno = EINVAL;
        return -1;
    }
    if (ref == LUA_NOREF) {
        if (r->map == NULL) {
            errno = is_write ? EPERM : EINVAL;
            return -1;
        }
        if (is_write) {
            memcpy(r->map + off, buf, count);
        } else {
            memcpy(buf, r->map + off, count);
        }
        return (ssize_t)count;
    }
    if (L == NULL) {
        errno = EIO;
        return -1;
    }
    if (lvfu_enter(L, dev, &e, 0) < 0) {
        if (a.bad != NULL) {
            lvfu_errorf(dev, "%s %s handler returned %s for a %zu-byte access "
                        "(integer, %zu-byte string or nil expected)",
                        e.who, e.what, a.bad, count, count);
        }
        if (dev->rt->trace != NULL) {
            trace_access(L, idx, off, count, is_write, buf, EIO);
        }
        errno = EIO;
        return -1;
    }
    if (dev->rt->trace != NULL) {
        trace_access(L, idx, off, count, is_write, buf, 0);
    }
    return (ssize_t)count;
}

#define REGION_TRAMPOLINE(n)                                                \
    static ssize_t region_cb_##n(vfu_ctx_t *ctx, char *buf, size_t count,   \
                                 loff_t off, bool is_write)                 \
    {                                                                       \
        return region_access(ctx, n, buf, count, off, is_write);            \
    }
REGION_TRAMPOLINE(0)
REGION_TRAMPOLINE(1)
REGION_TRAMPOLINE(2)
REGION_TRAMPOLINE(3)
REGION_TRAMPOLINE(4)
REGION_TRAMPOLINE(5)
REGION_TRAMPOLINE(6)
REGION_TRAMPOLINE(7)
REGION_TRAMPOLINE(8)

static vfu_region_access_cb_t *const region_cbs[VFU_PCI_DEV_NUM_REGIONS] = {
    region_cb_0, region_cb_1, region_cb_2, region_cb_3, region_cb_4,
    region_cb_5, region_cb_6, region_cb_7, region_cb_8
};

/* --- device-wide callbacks ------------------------------------------- */

static int
push_kind(lua_State *L, void *arg)
{
    lua_pushstring(L, arg);
    return 1;
}

static int
call_simple(struct lvfu_dev *dev, int ref, const char *what, const char *arg)
{
    lua_State *L = cb_state(dev);
    struct lvfu_entry e = {
        .what = what, .ref = ref, .push = arg != NULL ? push_kind : NULL,
        .arg = (void *)arg,
    };

    if (ref == LUA_NOREF || L == NULL) {
        return 0;
    }
    return lvfu_enter(L, dev, &e, 0);
}

static int
reset_cb(vfu_ctx_t *ctx, vfu_reset_type_t type)
{
    static const char *const kinds[] = { "device", "lost_conn", "flr" };
    struct lvfu_dev *dev = vfu_get_private(ctx);
    const char *kind = (unsigned)type < 3 ? kinds[type] : "unknown";
    lua_State *L = cb_state(dev);
    struct json_object *o;
    int rc;

    if (L != NULL && (o = lvfu_trace_begin(L, "reset")) != NULL) {
        json_object_object_add(o, "kind", json_object_new_string(kind));
        lvfu_trace_end(L, o);
    }
    if (type == VFU_RESET_LOST_CONN) {
        /* The client's memory is gone whatever the script does with the
         * news; its handles go before the script hears of it. */
        lvfu_dma_release_all(L, dev);
        lvfu_migr_lost(dev);
        rc = call_simple(dev, dev->reset_ref, "reset", kind);
        /* and whatever the handler took hold of before the maps go */
        lvfu_dma_release_all(L, dev);
        return rc;
    }
    return call_simple(dev, dev->reset_ref, "reset", kind);
}

static int
quiesce_cb(vfu_ctx_t *ctx)
{
    struct lvfu_dev *dev = vfu_get_private(ctx);

    /* Handlers are synchronous, so the device is idle once this returns;
     * a failing handler is logged but cannot hold the client up. */
    call_simple(dev, dev->quiesce_ref, "quiesce", NULL);
    return 0;
}

static void
irq_state(vfu_ctx_t *ctx, int type, uint32_t start, uint32_t count, bool mask)
{
    static const char *const names[] = { "intx", "msi", "msix", "err", "req" };
    struct lvfu_dev *dev = vfu_get_private(ctx);
    lua_State *L = cb_state(dev);
    struct lvfu_entry e = { .what = "irq_state", .ref = dev->irq_state_ref[type] };
    struct json_object *o;

    if (L == NULL) {
        return;
    }
    if ((o = lvfu_trace_begin(L, "irq_state")) != NULL) {
        json_object_object_add(o, "type", json_object_new_string(names[type]));
        json_object_object_add(o, "start", json_object_new_int64(start));
        json_object_object_add(o, "count", json_object_new_int64(count));
        json_object_object_add(o, "masked", json_object_new_boolean(mask));
        lvfu_trace_end(L, o);
    }
    if (!lua_checkstack(L, 3)) {
        return;
    }
    /* integers and a boolean: pushing them allocates nothing */
    lua_pushinteger(L, start);
    lua_pushinteger(L, count);
    lua_pushboolean(L, mask);
    lvfu_enter(L, dev, &e, 3);
}

#define IRQ_TRAMPOLINE(n)                                                   \
    static void irq_state_##n(vfu_ctx_t *ctx, uint32_t start,               \
                              uint32_t count, bool mask)                    \
    {                                                                       \
        irq_state(ctx, n, start, count, mask);                              \
    }
IRQ_TRAMPOLINE(0)
IRQ_TRAMPOLINE(1)
IRQ_TRAMPOLINE(2)
IRQ_TRAMPOLINE(3)
IRQ_TRAMPOLINE(4)

static vfu_dev_irq_state_cb_t *const irq_state_cbs[VFU_DEV_NUM_IRQS] = {
    irq_state_0, irq_state_1, irq_state_2, irq_state_3, irq_state_4
};

/* --- life cycle -------------------------------------------------------- */

static int
back_region(struct lvfu_dev *dev, int idx)
{
    struct lvfu_region *r = &dev->regions[idx];
    char name[80];
    void *p;

    snprintf(name, sizeof(name), "%s-%s", dev->name, lvfu_region_name(idx));
    r->fd = memfd_create(name, MFD_CLOEXEC);
    if (r->fd < 0) {
        return -1;
    }
    if (ftruncate(r->fd, (off_t)r->size) < 0) {
        return -1;
    }
    p = mmap(NULL, r->size, PROT_READ | PROT_WRITE, MAP_SHARED, r->fd, 0);
    if (p == MAP_FAILED) {
        return -1;
    }
    r->map = p;
    return 0;
}

static int
setup_pci(struct lvfu_dev *dev)
{
    vfu_pci_config_space_t *cs;

    if (vfu_pci_init(dev->ctx, dev->pci_type, PCI_HEADER_TYPE_NORMAL, 0) < 0) {
        return -1;
    }
    vfu_pci_set_id(dev->ctx, dev->vid, dev->did, dev->ssvid, dev->ssid);
    vfu_pci_set_class(dev->ctx, dev->class_base, dev->class_sub, dev->class_pi);
    cs = vfu_pci_get_config_space(dev->ctx);
    if (cs == NULL) {
        return -1;
    }
    cs->hdr.rid = dev->revision;
    if (dev->nirqs[VFU_DEV_INTX_IRQ] > 0) {
        cs->hdr.intr.ipin = 1;      /* INTA# */
    }
    for (int i = 0; i <= VFU_PCI_DEV_BAR5_REGION_IDX; i++) {
        struct lvfu_region *r = &dev->regions[i];

        if (!r->present) {
            continue;
        }
        if (!(r->flags & VFU_REGION_FLAG_MEM)) {
            cs->hdr.bars[i].io.region_type = 1;
            continue;
        }
        cs->hdr.bars[i].mem.locatable = r->mem64 ?
            PCI_BASE_ADDRESS_MEM_TYPE_LOCATABLE_64 : 0;
        cs->hdr.bars[i].mem.prefetchable = r->prefetch;
    }
    for (int i = 0; i < dev->nr_caps; i++) {
        struct lvfu_cap *c = &dev->caps[i];

        if (vfu_pci_add_capability(dev->ctx, c->pos, c->flags, c->data) < 0) {
            lvfu_errorf(dev, "adding capability %s: %s", c->kind,
                        strerror(errno));
            return -1;
        }
    }
    return 0;
}

static int
setup_ctx(struct lvfu_dev *dev)
{
    if (setup_pci(dev) < 0) {
        return -1;
    }
    for (int i = 0; i < VFU_PCI_DEV_NUM_REGIONS; i++) {
        struct lvfu_region *r = &dev->regions[i];

        if (!r->present) {
            continue;
        }
        if (r->backed && r->fd < 0 && back_region(dev, i) < 0) {
            return -1;
        }
        if (vfu_setup_region(dev->ctx, i, r->size, region_cbs[i], r->flags,
                             r->areas, r->nr_areas, r->backed ? r->fd : -1,
                             0) < 0) {
            lvfu_errorf(dev, "setting up %s: %s", lvfu_region_name(i),
                        strerror(errno));
            return -1;
        }
    }
    for (int i = 0; i < VFU_DEV_NUM_IRQS; i++) {
        if (vfu_setup_device_nr_irqs(dev->ctx, i, dev->nirqs[i]) < 0) {
            return -1;
        }
        if (dev->irq_state_ref[i] != LUA_NOREF &&
            vfu_setup_irq_state_callback(dev->ctx, i, irq_state_cbs[i]) < 0) {
            return -1;
        }
    }
    if (vfu_setup_device_reset_cb(dev->ctx, reset_cb) < 0) {
        return -1;
    }
    vfu_setup_device_quiesce_cb(dev->ctx, quiesce_cb);
    if (dev->dma && lvfu_dma_setup(dev) < 0) {
        return -1;
    }
    if (dev->migr && lvfu_migr_setup(dev) < 0) {
        return -1;
    }
    return vfu_realize_ctx(dev->ctx);
}

int
lvfu_dev_listen(lua_State *L, struct lvfu_dev *dev, const char *path)
{
    struct lvfu_rt *rt = lvfu_rt(L);
    int level = rt->verbose >= 2 ? LOG_DEBUG
              : rt->verbose == 1 ? LOG_INFO : LOG_ERR;
    int err;

    if (dev->ctx != NULL) {
        errno = EBUSY;
        return -1;
    }
    dev->ctx = vfu_create_ctx(VFU_TRANS_SOCK, path, LIBVFIO_USER_FLAG_ATTACH_NB,
                              dev, VFU_DEV_TYPE_PCI);
    if (dev->ctx == NULL) {
        return -1;
    }
    dev->L = L;
    vfu_setup_log(dev->ctx, lvfu_log_sink, level);
    if (rt->trace != NULL) {
        vfu_setup_trace(dev->ctx, lvfu_trace_msg, rt->trace);
    }
    if (setup_ctx(dev) < 0) {
        err = errno != 0 ? errno : EINVAL;
        vfu_destroy_ctx(dev->ctx);
        dev->ctx = NULL;
        errno = err;
        return -1;
    }
    free(dev->sock_path);
    dev->sock_path = strdup(path);
    return 0;
}

/* Release everything; safe on a half-built device and safe twice. */
void
lvfu_dev_release(lua_State *L, struct lvfu_dev *dev)
{
    dev->closed = true;
    lvfu_dma_release_all(L, dev);
    if (dev->ctx != NULL) {
        vfu_destroy_ctx(dev->ctx);      /* callbacks see closed and stay out */
        dev->ctx = NULL;
    }
    free(dev->sock_path);
    dev->sock_path = NULL;
    for (int i = 0; i < VFU_PCI_DEV_NUM_REGIONS; i++) {
        struct lvfu_region *r = &dev->regions[i];

        lvfu_unref(L, &r->read_ref);
        lvfu_unref(L, &r->write_ref);
        if (r->map != NULL) {
            munmap(r->map, r->size);
            r->map = NULL;
        }
        if (r->fd >= 0) {
            close(r->fd);
            r->fd = -1;
        }
        free(r->areas);
        r->areas = NULL;
    }
    for (int i = 0; i < VFU_DEV_NUM_IRQS; i++) {
        lvfu_unref(L, &dev->irq_state_ref[i]);
    }
    lvfu_unref(L, &dev->reset_ref);
    lvfu_unref(L, &dev->quiesce_ref);
    lvfu_unref(L, &dev->dma_map_ref);
    lvfu_unref(L, &dev->dma_unmap_ref);
    lvfu_unref(L, &dev->migr_transition_ref);
    lvfu_unref(L, &dev->migr_save_ref);
    lvfu_unref(L, &dev->migr_load_ref);
    lvfu_unref(L, &dev->migr_state_ref);
    lvfu_unref(L, &dev->migr_precopy_ref);
    lvfu_unref(L, &dev->migr_receive_ref);
    lvfu_unref(L, &dev->self_ref);
    lvfu_migr_free(dev);
}

/* --- Lua methods ------------------------------------------------------- */

int
lvfu_device_new(lua_State *L)
{
    struct lvfu_dev *dev;

    luaL_checktype(L, 1, LUA_TTABLE);
    /* inert first: a closed object that __gc can always clean up */
    dev = lua_newuserdatauv(L, sizeof(*dev), 0);
    memset(dev, 0, sizeof(*dev));
    dev->closed = true;
    dev->rt = lvfu_rt(L);
    dev->self_ref = LUA_NOREF;
    dev->reset_ref = dev->quiesce_ref = LUA_NOREF;
    dev->dma_map_ref = dev->dma_unmap_ref = LUA_NOREF;
    dev->migr_transition_ref = dev->migr_save_ref = LUA_NOREF;
    dev->migr_load_ref = dev->migr_state_ref = LUA_NOREF;
    dev->migr_precopy_ref = LUA_NOREF;
    dev->migr_receive_ref = LUA_NOREF;
    for (int i = 0; i < VFU_PCI_DEV_NUM_REGIONS; i++) {
        dev->regions[i].read_ref = dev->regions[i].write_ref = LUA_NOREF;
        dev->regions[i].fd = -1;
    }
    for (int i = 0; i < VFU_DEV_NUM_IRQS; i++) {
        dev->irq_state_ref[i] = LUA_NOREF;
    }
    dev->migr_state = VFU_MIGR_STATE_RUNNING;
    luaL_setmetatable(L, LVFU_DEVICE_MT);
    /* then live */
    lvfu_spec_parse(L, 1, dev);
    dev->closed = false;
    return 1;
}

/* __gc, __close and dev:close(). A device being served is referenced
 * from the loop's stack, so only a script can get here with it running:
 * from one of its handlers or timers, under vfu_run_ctx(). */
static int
dev_gc(lua_State *L)
{
    struct lvfu_dev *dev = luaL_checkudata(L, 1, LVFU_DEVICE_MT);

    if (dev->running) {
        return luaL_error(L, "dev:close() inside a handler or timer of the "
                          "device being served (dev:stop() ends the loop)");
    }
    lvfu_dev_release(L, dev);
    return 0;
}

static int
dev_tostring(lua_State *L)
{
    struct lvfu_dev *dev = luaL_checkudata(L, 1, LVFU_DEVICE_MT);

    if (dev->closed) {
        lua_pushfstring(L, "vfu.device (closed): %p", (void *)dev);
    } else {
        char ids[16];

        snprintf(ids, sizeof(ids), "%04x:%04x", dev->vid, dev->did);
        lua_pushfstring(L, "vfu.device %s %s%s%s", dev->name, ids,
                        dev->sock_path ? " on " : "",
                        dev->sock_path ? dev->sock_path : "");
    }
    return 1;
}

static int
dev_listen(lua_State *L)
{
    struct lvfu_dev *dev = lvfu_checkdev(L, 1);
    const char *path = luaL_checkstring(L, 2);

    if (lvfu_dev_listen(L, dev, path) < 0) {
        return lvfu_fail(L, errno, path);
    }
    lua_pushboolean(L, 1);
    return 1;
}

static int
dev_serve(lua_State *L)
{
    struct lvfu_dev *dev = lvfu_checkdev(L, 1);

    if (lvfu_rt(L)->loops > 0) {
        return luaL_error(L, "dev:serve() inside a handler or timer: a loop "
                          "is running already (return from the handler)");
    }
    if (dev->ctx == NULL) {
        const char *path = luaL_checkstring(L, 2);

        if (lvfu_dev_listen(L, dev, path) < 0) {
            return lvfu_fail(L, errno, path);
        }
    }
    if (lvfu_loop_run(L, dev, -1) < 0) {
        return lvfu_fail(L, errno, "serve");
    }
    lua_pushboolean(L, 1);
    return 1;
}

static int
dev_stop(lua_State *L)
{
    struct lvfu_dev *dev = lvfu_checkdev(L, 1);

    dev->stop = true;
    return 0;
}

static int
dev_irq(lua_State *L)
{
    struct lvfu_dev *dev = lvfu_checkdev(L, 1);
    lua_Integer v = luaL_optinteger(L, 2, 0);
    struct json_object *o;

    luaL_argcheck(L, v >= 0 && v <= 0xffffffff, 2, "vector out of range");
    if (dev->ctx == NULL) {
        return lvfu_fail(L, ENOTCONN, "irq");
    }
    if ((o = lvfu_trace_begin(L, "irq")) != NULL) {
        json_object_object_add(o, "vector", json_object_new_int64(v));
        lvfu_trace_end(L, o);
    }
    if (vfu_irq_trigger(dev->ctx, (uint32_t)v) < 0) {
        return lvfu_fail(L, errno, "irq");
    }
    lua_pushboolean(L, 1);
    return 1;
}

static int
dev_log(lua_State *L)
{
    static const char *const levels[] = { "err", "warning", "info", "debug",
                                          NULL };
    static const int prio[] = { LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG };
    struct lvfu_dev *dev = lvfu_checkdev(L, 1);
    const char *msg = luaL_checkstring(L, 2);
    int level = prio[luaL_checkoption(L, 3, "info", levels)];

    if (dev->ctx != NULL) {
        vfu_log(dev->ctx, level, "%s: %s", dev->name, msg);
    } else if (level <= LOG_ERR + lvfu_rt(L)->verbose * 3) {
        fprintf(stderr, "%s: %s\n", dev->name, msg);
    }
    return 0;
}

static vfu_pci_config_space_t *
check_cfg(lua_State *L, struct lvfu_dev *dev, lua_Integer off, lua_Integer size)
{
    vfu_pci_config_space_t *cs;
    size_t max;

    luaL_argcheck(L, size == 1 || size == 2 || size == 4, 3,
                  "size must be 1, 2 or 4");
    cs = dev->ctx != NULL ? vfu_pci_get_config_space(dev->ctx) : NULL;
    if (cs == NULL) {
        luaL_error(L, "config space exists once the device listens");
        return NULL;    /* not reached: luaL_error does not return */
    }
    max = (dev->pci_type == VFU_PCI_TYPE_EXPRESS ||
           dev->pci_type == VFU_PCI_TYPE_PCI_X_2) ? 4096 : 256;
    luaL_argcheck(L, off >= 0 && (size_t)off + (size_t)size <= max, 2,
                  "offset outside config space");
    return cs;
}

static int
dev_config_read(lua_State *L)
{
    struct lvfu_dev *dev = lvfu_checkdev(L, 1);
    lua_Integer off = luaL_checkinteger(L, 2);
    lua_Integer size = luaL_optinteger(L, 3, 4);
    uint8_t *p = (uint8_t *)check_cfg(L, dev, off, size);
    uint64_t v = 0;

    for (lua_Integer i = 0; i < size; i++) {
        v |= (uint64_t)p[off + i] << (8 * i);
    }
    lua_pushinteger(L, (lua_Integer)v);
    return 1;
}

static int
dev_config_write(lua_State *L)
{
    struct lvfu_dev *dev = lvfu_checkdev(L, 1);
    lua_Integer off = luaL_checkinteger(L, 2);
    lua_Integer size = luaL_checkinteger(L, 3);
    uint64_t v = (uint64_t)luaL_checkinteger(L, 4);
    uint8_t *p = (uint8_t *)check_cfg(L, dev, off, size);

    for (lua_Integer i = 0; i < size; i++) {
        p[off + i] = (uint8_t)(v >> (8 * i));
    }
    return 0;
}

static struct lvfu_region *
check_mem(lua_State *L, struct lvfu_dev *dev, lua_Integer off, size_t len)
{
    static const char *const names[] = { "bar0", "bar1", "bar2", "bar3",
                                         "bar4", "bar5", "rom", NULL };
    struct lvfu_region *r = &dev->regions[luaL_checkoption(L, 2, NULL, names)];

    luaL_argcheck(L, r->present && r->backed, 2, "region has no memory");
    if (r->map == NULL) {
        luaL_error(L, "region memory exists once the device listens");
    }
    luaL_argcheck(L, off >= 0 && (uint64_t)off <= r->size &&
                  len <= r->size - (uint64_t)off, 3, "range outside the region");
    return r;
}

static int
dev_mem_read(lua_State *L)
{
    struct lvfu_dev *dev = lvfu_checkdev(L, 1);
    lua_Integer off = luaL_checkinteger(L, 3);
    lua_Integer len = luaL_checkinteger(L, 4);
    struct lvfu_region *r;

    luaL_argcheck(L, len >= 0, 4, "negative length");
    r = check_mem(L, dev, off, (size_t)len);
    lua_pushlstring(L, r->map + off, (size_t)len);
    return 1;
}

static int
dev_mem_write(lua_State *L)
{
    struct lvfu_dev *dev = lvfu_checkdev(L, 1);
    lua_Integer off = luaL_checkinteger(L, 3);
    size_t len;
    const char *s = luaL_checklstring(L, 4, &len);
    struct lvfu_region *r = check_mem(L, dev, off, len);

    memcpy(r->map + off, s, len);
    return 0;
}

static int
dev_summary(lua_State *L)
{
    struct lvfu_dev *dev = lvfu_checkdev(L, 1);
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);

    if (f == NULL) {
        return lvfu_fail(L, errno, "summary");
    }
    lvfu_summary(dev, f);
    fclose(f);
    lua_pushlstring(L, buf, len);
    free(buf);
    return 1;
}

static int
dev_close(lua_State *L)
{
    dev_gc(L);
    return 0;
}

static const luaL_Reg dev_meta[] = {
    { "__gc", dev_gc },
    { "__close", dev_gc },
    { "__tostring", dev_tostring },
    { "__index", NULL },
    { NULL, NULL }
};

static const luaL_Reg dev_methods[] = {
    { "listen", dev_listen },
    { "serve", dev_serve },
    { "stop", dev_stop },
    { "irq", dev_irq },
    { "log", dev_log },
    { "config_read", dev_config_read },
    { "config_write", dev_config_write },
    { "mem_read", dev_mem_read },
    { "mem_write", dev_mem_write },
    { "dma_read", lvfu_dev_dma_read },
    { "dma_write", lvfu_dev_dma_write },
    { "dma_hold", lvfu_dev_dma_hold },
    { "summary", dev_summary },
    { "close", dev_close },
    { NULL, NULL }
};

void
lvfu_device_register(lua_State *L)
{
    if (luaL_newmetatable(L, LVFU_DEVICE_MT)) {
        luaL_setfuncs(L, dev_meta, 0);
        luaL_newlib(L, dev_methods);
        lua_setfield(L, -2, "__index");
        lvfu_hide_metatable(L, -1);
    }
    lua_pop(L, 1);
}
