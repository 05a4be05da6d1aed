/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 the vfu authors. */

/*
 * vfu.connect(path): the client side, so that device tests are Lua
 * scripts. It wraps vfu-client.h; the client also owns the eventfds it
 * hands out for interrupts and the memfds it maps for DMA.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include "lvfu.h"
#include "vfu-client.h"

#define MAX_VECTORS 64
#define MAX_MAPS    16

struct client_map {
    uint64_t iova, size;
    int fd;
    char *mem;
};

struct lvfu_client {
    vfu_client_t *c;
    int efds[VFU_DEV_NUM_IRQS][MAX_VECTORS];
    struct client_map maps[MAX_MAPS];
};

static struct lvfu_client *
check_client(lua_State *L)
{
    struct lvfu_client *cl = luaL_checkudata(L, 1, LVFU_CLIENT_MT);

    if (cl->c == NULL) {
        luaL_argerror(L, 1, "client is closed");
    }
    return cl;
}

static int
check_region(lua_State *L, int idx)
{
    if (lua_type(L, idx) == LUA_TSTRING) {
        const char *name = lua_tostring(L, idx);

        for (int i = 0; i < VFU_PCI_DEV_NUM_REGIONS; i++) {
            if (strcmp(name, lvfu_region_name(i)) == 0) {
                return i;
            }
        }
        return luaL_argerror(L, idx, "unknown region name");
    }
    lua_Integer i = luaL_checkinteger(L, idx);
    luaL_argcheck(L, i >= 0 && i < 64, idx, "region index out of range");
    return (int)i;
}

static int
check_irq_type(lua_State *L, int idx)
{
    static const char *const names[] = { "intx", "msi", "msix", "err", "req",
                                         NULL };
    return luaL_checkoption(L, idx, NULL, names);
}

static void
unmap_slot(struct client_map *m)
{
    if (m->mem != NULL) {
        munmap(m->mem, m->size);
        m->mem = NULL;
    }
    if (m->fd >= 0) {
        close(m->fd);
        m->fd = -1;
    }
    m->size = 0;
}

static int
client_gc(lua_State *L)
{
    struct lvfu_client *cl = luaL_checkudata(L, 1, LVFU_CLIENT_MT);

    vfu_client_close(cl->c);
    cl->c = NULL;
    for (int t = 0; t < VFU_DEV_NUM_IRQS; t++) {
        for (int v = 0; v < MAX_VECTORS; v++) {
            if (cl->efds[t][v] >= 0) {
                close(cl->efds[t][v]);
                cl->efds[t][v] = -1;
            }
        }
    }
    for (int i = 0; i < MAX_MAPS; i++) {
        unmap_slot(&cl->maps[i]);
    }
    return 0;
}

static int
client_tostring(lua_State *L)
{
    struct lvfu_client *cl = luaL_checkudata(L, 1, LVFU_CLIENT_MT);

    lua_pushfstring(L, "vfu.client (%s): %p", cl->c ? "connected" : "closed",
                    (void *)cl);
    return 1;
}

/* vfu.connect(path [, negotiate = true]) */
int
lvfu_client_connect(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    bool negotiate = lua_isnone(L, 2) || lua_toboolean(L, 2);
    struct lvfu_client *cl;

    cl = lua_newuserdatauv(L, sizeof(*cl), 0);
    memset(cl, 0, sizeof(*cl));
    for (int t = 0; t < VFU_DEV_NUM_IRQS; t++) {
        for (int v = 0; v < MAX_VECTORS; v++) {
            cl->efds[t][v] = -1;
        }
    }
    for (int i = 0; i < MAX_MAPS; i++) {
        cl->maps[i].fd = -1;
    }
    luaL_setmetatable(L, LVFU_CLIENT_MT);
    cl->c = vfu_client_connect(path);
    if (cl->c == NULL) {
        return lvfu_fail(L, errno, path);
    }
    if (negotiate && vfu_client_negotiate(cl->c, NULL, NULL) < 0) {
        int err = errno;

        client_gc(L);
        return lvfu_fail(L, err, "negotiate");
    }
    return 1;
}

static int
ok_or_fail(lua_State *L, int rc, const char *what)
{
    if (rc < 0) {
        return lvfu_fail(L, errno, what);
    }
    lua_pushboolean(L, 1);
    return 1;
}

static int
client_negotiate(lua_State *L)
{
    struct lvfu_client *cl = check_client(L);
    size_t len = 0;
    const char *raw = luaL_optlstring(L, 2, NULL, &len);

    if (raw != NULL) {
        return ok_or_fail(L, vfu_client_negotiate_raw(cl->c, 0, 0, raw, len,
                                                      NULL), "negotiate");
    }
    return ok_or_fail(L, vfu_client_negotiate(cl->c, NULL, NULL), "negotiate");
}

/* c:read(region, offset, size): integer for 1/2/4/8 bytes, else a string */
static int
client_read(lua_State *L)
{
    struct lvfu_client *cl = check_client(L);
    int region = check_region(L, 2);
    lua_Integer off = luaL_checkinteger(L, 3);
    lua_Integer size = luaL_checkinteger(L, 4);
    bool as_string = lua_toboolean(L, 5);
    luaL_Buffer b;
    char *buf;

    luaL_argcheck(L, off >= 0, 3, "negative offset");
    luaL_argcheck(L, size > 0 && size <= LVFU_DMA_MAX, 4, "size out of range");
    buf = luaL_buffinitsize(L, &b, (size_t)size);
    if (vfu_client_region_read(cl->c, (uint32_t)region, (uint64_t)off, buf,
                               (size_t)size) < 0) {
        return lvfu_fail(L, errno, "region read");
    }
    if (!as_string && (size == 1 || size == 2 || size == 4 || size == 8)) {
        uint64_t v = 0;

        for (lua_Integer i = 0; i < size; i++) {
            v |= (uint64_t)(uint8_t)buf[i] << (8 * i);
        }
        lua_pushinteger(L, (lua_Integer)v);
        return 1;
    }
    luaL_pushresultsize(&b, (size_t)size);
    return 1;
}

/* c:write(region, offset, size, integer) or c:write(region, offset, bytes) */
static int
client_write(lua_State *L)
{
    struct lvfu_client *cl = check_client(L);
    int region = check_region(L, 2);
    lua_Integer off = luaL_checkinteger(L, 3);
    char tmp[8];
    const char *buf;
    size_t len;

    luaL_argcheck(L, off >= 0, 3, "negative offset");
    if (lua_type(L, 4) == LUA_TSTRING) {
        buf = lua_tolstring(L, 4, &len);
        luaL_argcheck(L, len > 0, 4, "empty write");
    } else {
        lua_Integer size = luaL_checkinteger(L, 4);
        uint64_t v = (uint64_t)luaL_checkinteger(L, 5);

        luaL_argcheck(L, size == 1 || size == 2 || size == 4 || size == 8, 4,
                      "size must be 1, 2, 4 or 8");
        for (lua_Integer i = 0; i < size; i++) {
            tmp[i] = (char)(v >> (8 * i));
        }
        buf = tmp;
        len = (size_t)size;
    }
    return ok_or_fail(L, vfu_client_region_write(cl->c, (uint32_t)region,
                                                 (uint64_t)off, buf, len),
                      "region write");
}

static int
client_region_info(lua_State *L)
{
    struct lvfu_client *cl = check_client(L);
    int region = check_region(L, 2);
    struct vfu_client_region_info ri;

    memset(&ri, 0, sizeof(ri));
    ri.fd = -1;
    if (vfu_client_get_region_info(cl->c, (uint32_t)region, &ri) < 0) {
        return lvfu_fail(L, errno, "region info");
    }
    lua_createtable(L, 0, 6);
    lua_pushinteger(L, (lua_Integer)ri.info.size);
    lua_setfield(L, -2, "size");
    lua_pushinteger(L, ri.info.flags);
    lua_setfield(L, -2, "flags");
    lua_pushboolean(L, ri.fd >= 0);
    lua_setfield(L, -2, "has_fd");
    lua_pushboolean(L, (ri.info.flags & VFIO_REGION_INFO_FLAG_MMAP) != 0);
    lua_setfield(L, -2, "mmap");
    lua_createtable(L, (int)ri.nr_sparse, 0);
    for (uint32_t i = 0; i < ri.nr_sparse; i++) {
        lua_createtable(L, 2, 0);
        lua_pushinteger(L, (lua_Integer)ri.sparse[i].offset);
        lua_rawseti(L, -2, 1);
        lua_pushinteger(L, (lua_Integer)ri.sparse[i].size);
        lua_rawseti(L, -2, 2);
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    lua_setfield(L, -2, "sparse");
    vfu_client_region_info_free(&ri);
    return 1;
}

static int
client_device_info(lua_State *L)
{
    struct lvfu_client *cl = check_client(L);
    struct vfio_user_device_info info;

    memset(&info, 0, sizeof(info));
    if (vfu_client_device_get_info(cl->c, &info) < 0) {
        return lvfu_fail(L, errno, "device info");
    }
    lua_createtable(L, 0, 3);
    lua_pushinteger(L, info.flags);
    lua_setfield(L, -2, "flags");
    lua_pushinteger(L, info.num_regions);
    lua_setfield(L, -2, "num_regions");
    lua_pushinteger(L, info.num_irqs);
    lua_setfield(L, -2, "num_irqs");
    return 1;
}

static int
client_irq_info(lua_State *L)
{
    struct lvfu_client *cl = check_client(L);
    int type = check_irq_type(L, 2);
    struct vfio_irq_info info;

    memset(&info, 0, sizeof(info));
    if (vfu_client_get_irq_info(cl->c, (uint32_t)type, &info) < 0) {
        return lvfu_fail(L, errno, "irq info");
    }
    lua_createtable(L, 0, 2);
    lua_pushinteger(L, info.count);
    lua_setfield(L, -2, "count");
    lua_pushinteger(L, info.flags);
    lua_setfield(L, -2, "flags");
    return 1;
}

/* c:irq_enable(type [, start = 0, count = 1]): attach fresh eventfds */
static int
client_irq_enable(lua_State *L)
{
    struct lvfu_client *cl = check_client(L);
    int type = check_irq_type(L, 2);
    lua_Integer start = luaL_optinteger(L, 3, 0);
    lua_Integer count = luaL_optinteger(L, 4, 1);
    int fds[MAX_VECTORS];
    int rc, err;

    luaL_argcheck(L, start >= 0 && start < MAX_VECTORS, 3, "bad start");
    luaL_argcheck(L, count > 0 && start + count <= MAX_VECTORS, 4, "bad count");
    for (lua_Integer i = 0; i < count; i++) {
        fds[i] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (fds[i] < 0) {
            err = errno;
            while (i-- > 0) {
                close(fds[i]);
            }
            return lvfu_fail(L, err, "eventfd");
        }
    }
    rc = vfu_client_set_irqs(cl->c, VFIO_IRQ_SET_DATA_EVENTFD |
                             VFIO_IRQ_SET_ACTION_TRIGGER, (uint32_t)type,
                             (uint32_t)start, (uint32_t)count, fds,
                             (uint32_t)count, NULL, 0);
    err = errno;
    for (lua_Integer i = 0; i < count; i++) {
        int *slot = &cl->efds[type][start + i];

        if (rc < 0) {
            close(fds[i]);
            continue;
        }
        if (*slot >= 0) {
            close(*slot);
        }
        *slot = fds[i];
    }
    errno = err;
    return ok_or_fail(L, rc, "set irqs");
}

/* c:irq_disable(type): detach all eventfds of the type */
static int
client_irq_disable(lua_State *L)
{
    struct lvfu_client *cl = check_client(L);
    int type = check_irq_type(L, 2);
    int rc = vfu_client_set_irqs(cl->c, VFIO_IRQ_SET_DATA_NONE |
                                 VFIO_IRQ_SET_ACTION_TRIGGER, (uint32_t)type,
                                 0, 0, NULL, 0, NULL, 0);

    return ok_or_fail(L, rc, "set irqs");
}

/* c:irq_mask(type, start, count [, mask = true]): ACTION_MASK or UNMASK */
static int
client_irq_mask(lua_State *L)
{
    struct lvfu_client *cl = check_client(L);
    int type = check_irq_type(L, 2);
    lua_Integer start = luaL_checkinteger(L, 3);
    lua_Integer count = luaL_checkinteger(L, 4);
    bool mask = lua_isnoneornil(L, 5) || lua_toboolean(L, 5);
    int rc;

    luaL_argcheck(L, start >= 0 && start <= 0xffffffff, 3, "bad start");
    luaL_argcheck(L, count >= 0 && count <= 0xffffffff, 4, "bad count");
    rc = vfu_client_set_irqs(cl->c, VFIO_IRQ_SET_DATA_NONE |
                             (mask ? VFIO_IRQ_SET_ACTION_MASK
                                   : VFIO_IRQ_SET_ACTION_UNMASK),
                             (uint32_t)type, (uint32_t)start, (uint32_t)count,
                             NULL, 0, NULL, 0);
    return ok_or_fail(L, rc, "set irqs");
}

/* c:irq_wait(type, vector [, timeout_ms = 0]) -> times signalled (0: none) */
static int
client_irq_wait(lua_State *L)
{
    struct lvfu_client *cl = check_client(L);
    int type = check_irq_type(L, 2);
    lua_Integer v = luaL_optinteger(L, 3, 0);
    lua_Integer timeout = luaL_optinteger(L, 4, 0);
    struct pollfd p;
    uint64_t n = 0;

    luaL_argcheck(L, v >= 0 && v < MAX_VECTORS, 3, "bad vector");
    luaL_argcheck(L, timeout >= 0 && timeout <= 60000, 4, "bad timeout");
    if (cl->efds[type][v] < 0) {
        return luaL_argerror(L, 3, "no eventfd; call irq_enable first");
    }
    p.fd = cl->efds[type][v];
    p.events = POLLIN;
    if (poll(&p, 1, (int)timeout) > 0 &&
        read(p.fd, &n, sizeof(n)) != sizeof(n)) {
        n = 0;
    }
    lua_pushinteger(L, (lua_Integer)n);
    return 1;
}

static int
client_reset(lua_State *L)
{
    struct lvfu_client *cl = check_client(L);

    return ok_or_fail(L, vfu_client_device_reset(cl->c), "reset");
}

/* c:dma_map(iova, size [, "r"|"rw" [, share_fd = true]]): memfd-backed
 * client memory; without share_fd the server gets no fd and every access
 * it makes comes back to this client as DMA_READ/DMA_WRITE. */
static int
client_dma_map(lua_State *L)
{
    static const char *const modes[] = { "r", "rw", NULL };
    struct lvfu_client *cl = check_client(L);
    lua_Integer iova = luaL_checkinteger(L, 2);
    lua_Integer size = luaL_checkinteger(L, 3);
    int mode = luaL_checkoption(L, 4, "rw", modes);
    bool share_fd = lua_isnoneornil(L, 5) || lua_toboolean(L, 5);
    uint32_t flags = VFIO_USER_F_DMA_REGION_READ |
                     (mode == 1 ? VFIO_USER_F_DMA_REGION_WRITE : 0);
    struct client_map *m = NULL;

    luaL_argcheck(L, iova >= 0 && iova % 4096 == 0, 2, "page-aligned iova");
    luaL_argcheck(L, size > 0 && size % 4096 == 0 && size <= (256 << 20), 3,
                  "page multiple up to 256 MiB");
    for (int i = 0; i < MAX_MAPS && m == NULL; i++) {
        m = cl->maps[i].size == 0 ? &cl->maps[i] : NULL;
    }
    if (m == NULL) {
        return lvfu_fail(L, ENOSPC, "dma_map");
    }
    m->fd = memfd_create("vfu-lua-dma", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    /* Sealed against shrinking, or the server would not map it. */
    if (m->fd < 0 || ftruncate(m->fd, (off_t)size) < 0 ||
        fcntl(m->fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) < 0) {
        int err = errno;

        unmap_slot(m);
        return lvfu_fail(L, err, "dma_map");
    }
    m->mem = mmap(NULL, (size_t)size, PROT_READ | PROT_WRITE, MAP_SHARED,
                  m->fd, 0);
    if (m->mem == MAP_FAILED) {
        int err = errno;

        m->mem = NULL;
        unmap_slot(m);
        return lvfu_fail(L, err, "dma_map");
    }
    m->iova = (uint64_t)iova;
    m->size = (uint64_t)size;
    if (vfu_client_dma_map(cl->c, m->iova, m->size, flags,
                           share_fd ? m->fd : -1, 0, m->mem) < 0) {
        int err = errno;

        unmap_slot(m);
        return lvfu_fail(L, err, "dma_map");
    }
    lua_pushboolean(L, 1);
    return 1;
}

static int
client_dma_unmap(lua_State *L)
{
    struct lvfu_client *cl = check_client(L);
    lua_Integer iova = luaL_checkinteger(L, 2);
    lua_Integer size = luaL_checkinteger(L, 3);

    if (vfu_client_dma_unmap(cl->c, (uint64_t)iova, (uint64_t)size, 0) < 0) {
        return lvfu_fail(L, errno, "dma_unmap");
    }
    for (int i = 0; i < MAX_MAPS; i++) {
        struct client_map *m = &cl->maps[i];

        if (m->size != 0 && m->iova >= (uint64_t)iova &&
            m->iova + m->size <= (uint64_t)iova + (uint64_t)size) {
            unmap_slot(m);
        }
    }
    lua_pushboolean(L, 1);
    return 1;
}

static char *
find_mem(lua_State *L, struct lvfu_client *cl, lua_Integer iova, size_t len)
{
    for (int i = 0; i < MAX_MAPS; i++) {
        struct client_map *m = &cl->maps[i];

        if (m->size != 0 && (uint64_t)iova >= m->iova &&
            (uint64_t)iova - m->iova <= m->size &&
            len <= m->size - ((uint64_t)iova - m->iova)) {
            return m->mem + ((uint64_t)iova - m->iova);
        }
    }
    luaL_argerror(L, 2, "range is not in one mapping of this client");
    return NULL;
}

/* c:mem_read(iova, len) / c:mem_write(iova, bytes): the client's side */
static int
client_mem_read(lua_State *L)
{
    struct lvfu_client *cl = check_client(L);
    lua_Integer iova = luaL_checkinteger(L, 2);
    lua_Integer len = luaL_checkinteger(L, 3);

    luaL_argcheck(L, len >= 0, 3, "negative length");
    lua_pushlstring(L, find_mem(L, cl, iova, (size_t)len), (size_t)len);
    return 1;
}

static int
client_mem_write(lua_State *L)
{
    struct lvfu_client *cl = check_client(L);
    lua_Integer iova = luaL_checkinteger(L, 2);
    size_t len;
    const char *s = luaL_checklstring(L, 3, &len);

    memcpy(find_mem(L, cl, iova, len), s, len);
    return 0;
}

static int
client_poll(lua_State *L)
{
    struct lvfu_client *cl = check_client(L);
    lua_Integer timeout = luaL_optinteger(L, 2, 0);
    int n;

    luaL_argcheck(L, timeout >= -1 && timeout <= 60000, 2, "bad timeout");
    n = vfu_client_poll(cl->c, (int)timeout);
    if (n < 0) {
        return lvfu_fail(L, errno, "poll");
    }
    lua_pushinteger(L, n);
    return 1;
}

/* c:defer_requests(on): serve the server's DMA requests only once the
 * call they came during has its reply, as QEMU 10.2 does */
static int
client_defer_requests(lua_State *L)
{
    struct lvfu_client *cl = check_client(L);

    luaL_checktype(L, 2, LUA_TBOOLEAN);
    return ok_or_fail(L, vfu_client_defer_requests(cl->c, lua_toboolean(L, 2)),
                      "defer_requests");
}

/* c:dirty_start([page_size = 4096]): log client memory the device dirties */
static int
client_dirty_start(lua_State *L)
{
    struct lvfu_client *cl = check_client(L);
    lua_Integer pgsize = luaL_optinteger(L, 2, 4096);

    luaL_argcheck(L, pgsize > 0, 2, "bad page size");
    return ok_or_fail(L, vfu_client_dma_logging_start(cl->c, (uint64_t)pgsize,
                                                      NULL, 0), "dirty start");
}

static int
client_dirty_stop(lua_State *L)
{
    struct lvfu_client *cl = check_client(L);

    return ok_or_fail(L, vfu_client_dma_logging_stop(cl->c), "dirty stop");
}

/* c:dirty_report(iova, len [, page_size = 4096]) -> { page numbers from
 * iova, ascending }; reading the report clears it on the server. */
static int
client_dirty_report(lua_State *L)
{
    struct lvfu_client *cl = check_client(L);
    lua_Integer iova = luaL_checkinteger(L, 2);
    lua_Integer len = luaL_checkinteger(L, 3);
    lua_Integer pgsize = luaL_optinteger(L, 4, 4096);
    uint64_t pages;
    size_t bytes;
    uint8_t *bm;
    int n = 0;

    luaL_argcheck(L, pgsize > 0, 4, "bad page size");
    luaL_argcheck(L, len > 0 && len <= ((lua_Integer)1 << 40), 3, "bad length");
    pages = ((uint64_t)len + (uint64_t)pgsize - 1) / (uint64_t)pgsize;
    luaL_argcheck(L, pages <= (1u << 24), 3, "too many pages");
    bytes = (size_t)((pages + 63) / 64 * 8);
    bm = lua_newuserdatauv(L, bytes, 0);
    memset(bm, 0, bytes);
    if (vfu_client_dma_logging_report(cl->c, (uint64_t)iova, (uint64_t)len,
                                      (uint64_t)pgsize, bm, bytes) < 0) {
        return lvfu_fail(L, errno, "dirty report");
    }
    lua_newtable(L);
    for (uint64_t p = 0; p < pages; p++) {
        if (bm[p / 8] & (1u << (p % 8))) {
            lua_pushinteger(L, (lua_Integer)p);
            lua_rawseti(L, -2, ++n);
        }
    }
    return 1;
}

static const char *const mig_names[] = {
    "error", "stop", "running", "stop_copy", "resuming", "running_p2p",
    "pre_copy", "pre_copy_p2p", NULL
};

static int
client_mig_state(lua_State *L)
{
    struct lvfu_client *cl = check_client(L);
    uint32_t s;

    if (vfu_client_mig_get_state(cl->c, &s) < 0) {
        return lvfu_fail(L, errno, "migration state");
    }
    if (s < 8) {
        lua_pushstring(L, mig_names[s]);
    } else {
        lua_pushinteger(L, s);
    }
    return 1;
}

static int
client_mig_set(lua_State *L)
{
    struct lvfu_client *cl = check_client(L);
    int s = luaL_checkoption(L, 2, NULL, mig_names);

    return ok_or_fail(L, vfu_client_mig_set_state(cl->c, (uint32_t)s),
                      "migration state");
}

/* c:mig_read() -> the whole stream of the current state, as one string */
static int
client_mig_read(lua_State *L)
{
    struct lvfu_client *cl = check_client(L);
    luaL_Buffer b;
    size_t total = 0;

    luaL_buffinit(L, &b);
    for (;;) {
        char *p = luaL_prepbuffsize(&b, 4096);
        ssize_t n = vfu_client_mig_data_read(cl->c, p, 4096);

        if (n < 0) {
            return lvfu_fail(L, errno, "migration read");
        }
        luaL_addsize(&b, (size_t)n);
        total += (size_t)n;
        if (n < 4096 || total > (64u << 20)) {
            break;
        }
    }
    luaL_pushresult(&b);
    return 1;
}

static int
client_mig_write(lua_State *L)
{
    struct lvfu_client *cl = check_client(L);
    size_t len;
    const char *s = luaL_checklstring(L, 2, &len);

    for (size_t off = 0; off < len; off += 4096) {
        size_t n = len - off < 4096 ? len - off : 4096;

        if (vfu_client_mig_data_write(cl->c, s + off, n) < 0) {
            return lvfu_fail(L, errno, "migration write");
        }
    }
    lua_pushboolean(L, 1);
    return 1;
}

/* c:call(cmd, payload) -> reply payload: raw requests for error tests */
static int
client_call(lua_State *L)
{
    struct lvfu_client *cl = check_client(L);
    lua_Integer cmd = luaL_checkinteger(L, 2);
    size_t len;
    const char *req = luaL_optlstring(L, 3, "", &len);
    luaL_Buffer b;
    size_t rsize = 65536;
    char *reply;

    luaL_argcheck(L, cmd >= 0 && cmd <= 0xffff, 2, "command out of range");
    reply = luaL_buffinitsize(L, &b, rsize);
    if (vfu_client_call(cl->c, (uint16_t)cmd, req, len, NULL, 0, reply, &rsize,
                        NULL, NULL) < 0) {
        return lvfu_fail(L, errno, "call");
    }
    luaL_pushresultsize(&b, rsize);
    return 1;
}

static const luaL_Reg client_meta[] = {
    { "__gc", client_gc },
    { "__close", client_gc },
    { "__tostring", client_tostring },
    { "__index", NULL },
    { NULL, NULL }
};

static const luaL_Reg client_methods[] = {
    { "negotiate", client_negotiate },
    { "read", client_read },
    { "write", client_write },
    { "region_info", client_region_info },
    { "device_info", client_device_info },
    { "irq_info", client_irq_info },
    { "irq_enable", client_irq_enable },
    { "irq_disable", client_irq_disable },
    { "irq_wait", client_irq_wait },
    { "irq_mask", client_irq_mask },
    { "reset", client_reset },
    { "dma_map", client_dma_map },
    { "dma_unmap", client_dma_unmap },
    { "mem_read", client_mem_read },
    { "mem_write", client_mem_write },
    { "poll", client_poll },
    { "defer_requests", client_defer_requests },
    { "dirty_start", client_dirty_start },
    { "dirty_stop", client_dirty_stop },
    { "dirty_report", client_dirty_report },
    { "mig_state", client_mig_state },
    { "mig_set", client_mig_set },
    { "mig_read", client_mig_read },
    { "mig_write", client_mig_write },
    { "call", client_call },
    { "close", client_gc },
    { NULL, NULL }
};

void
lvfu_client_register(lua_State *L)
{
    lvfu_register_type(L, LVFU_CLIENT_MT, client_meta, client_methods);
}
