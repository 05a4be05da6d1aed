/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 the vfu authors. */

/*
 * Client memory from Lua: dev:dma_read/dma_write copy through
 * scatter/gather entries (mapped memory directly, unmapped memory over the
 * socket), and dev:dma_hold keeps entries mapped for repeated access. Held
 * entries are released whenever the client unmaps or goes away, so a
 * script can never touch memory the client took back.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include <json-c/json.h>

#include "lvfu.h"

struct lvfu_sg {
    struct lvfu_sg *next;
    struct lvfu_dev *dev;       /* NULL once released */
    dma_sg_t *sgl;
    struct iovec iov[LVFU_MAX_SG];
    int n;
    uint64_t iova, len;
    bool writable;
};

#define SG_AT(base, i) ((dma_sg_t *)((char *)(base) + (size_t)(i) * dma_sg_size()))

static int
push_info(lua_State *L, void *arg)
{
    vfu_dma_info_t *info = arg;

    lua_createtable(L, 0, 4);
    lua_pushinteger(L, (lua_Integer)(uintptr_t)info->iova.iov_base);
    lua_setfield(L, -2, "iova");
    lua_pushinteger(L, (lua_Integer)info->iova.iov_len);
    lua_setfield(L, -2, "len");
    lua_pushboolean(L, info->vaddr != NULL);
    lua_setfield(L, -2, "mappable");
    lua_pushboolean(L, (info->prot & PROT_WRITE) != 0);
    lua_setfield(L, -2, "writable");
    return 1;
}

static void
sg_release(struct lvfu_sg *s)
{
    struct lvfu_dev *dev = s->dev;

    if (dev == NULL) {
        return;
    }
    for (struct lvfu_sg **p = &dev->sgs; *p != NULL; p = &(*p)->next) {
        if (*p == s) {
            *p = s->next;
            break;
        }
    }
    if (dev->ctx != NULL && s->n > 0) {
        vfu_sgl_put(dev->ctx, s->sgl, s->iov, (size_t)s->n);
    }
    s->dev = NULL;
    s->next = NULL;
    s->n = 0;
}

static void
release_range(struct lvfu_dev *dev, uint64_t iova, uint64_t len)
{
    struct lvfu_sg *s = dev->sgs;

    while (s != NULL) {
        struct lvfu_sg *next = s->next;

        if (s->iova < iova + len && iova < s->iova + s->len) {
            sg_release(s);
        }
        s = next;
    }
}

void
lvfu_dma_release_all(lua_State *L, struct lvfu_dev *dev)
{
    release_range(dev, 0, UINT64_MAX);
}

static void
dma_event(vfu_ctx_t *ctx, vfu_dma_info_t *info, bool map)
{
    struct lvfu_dev *dev = vfu_get_private(ctx);
    lua_State *L = dev->closed ? NULL : dev->L;
    int ref = map ? dev->dma_map_ref : dev->dma_unmap_ref;
    struct lvfu_entry e = {
        .what = map ? "dma map" : "dma unmap", .ref = ref, .push = push_info,
        .arg = info,
    };
    struct json_object *o;

    if (!map) {
        release_range(dev, (uint64_t)(uintptr_t)info->iova.iov_base,
                      info->iova.iov_len);
    }
    if (L == NULL) {
        return;
    }
    if ((o = lvfu_trace_begin(L, map ? "dma_map" : "dma_unmap")) != NULL) {
        json_object_object_add(o, "iova", json_object_new_int64(
            (int64_t)(uintptr_t)info->iova.iov_base));
        json_object_object_add(o, "len", json_object_new_int64(
            (int64_t)info->iova.iov_len));
        lvfu_trace_end(L, o);
    }
    if (ref == LUA_NOREF) {
        return;
    }
    lvfu_enter(L, dev, &e, 0);
    if (!map) {
        /* what the handler held of the range goes with it, too */
        release_range(dev, (uint64_t)(uintptr_t)info->iova.iov_base,
                      info->iova.iov_len);
    }
}

static void
dma_register(vfu_ctx_t *ctx, vfu_dma_info_t *info)
{
    dma_event(ctx, info, true);
}

static void
dma_unregister(vfu_ctx_t *ctx, vfu_dma_info_t *info)
{
    dma_event(ctx, info, false);
}

int
lvfu_dma_setup(struct lvfu_dev *dev)
{
    return vfu_setup_device_dma(dev->ctx, 0, dma_register, dma_unregister);
}

/* Translate [addr, addr + len) into a scratch userdata pushed on the stack;
 * returns the entry count, or -1 with errno. */
static int
translate(lua_State *L, struct lvfu_dev *dev, uint64_t addr, size_t len,
          int prot, dma_sg_t **sgl)
{
    int n;

    *sgl = lua_newuserdatauv(L, LVFU_MAX_SG * dma_sg_size(), 0);
    if (dev->ctx == NULL || !dev->dma) {
        errno = EINVAL;
        return -1;
    }
    n = vfu_addr_to_sgl(dev->ctx, (vfu_dma_addr_t)(uintptr_t)addr, len, *sgl,
                        LVFU_MAX_SG, prot);
    if (n < -1 || (n < 0 && errno == 0)) {
        errno = E2BIG;
        return -1;
    }
    return n;
}

static int
copy_sg(struct lvfu_dev *dev, dma_sg_t *sgl, int n, char *buf, size_t len,
        bool is_write)
{
    size_t done = 0;

    for (int i = 0; i < n; i++) {
        dma_sg_t *sg = SG_AT(sgl, i);
        struct iovec iov;

        if (!vfu_sg_is_mappable(dev->ctx, sg)) {
            /* one entry is the whole range; more would need entry sizes */
            if (n != 1) {
                errno = ENOTSUP;
                return -1;
            }
            return is_write
                       ? vfu_sgl_write(dev->ctx, sg, 1, buf, VFU_SGL_DIRECT_ACCESS)
                       : vfu_sgl_read(dev->ctx, sg, 1, buf, VFU_SGL_DIRECT_ACCESS);
        }
        if (vfu_sgl_get(dev->ctx, sg, &iov, 1, 0) < 0) {
            return -1;
        }
        if (iov.iov_len > len - done) {
            vfu_sgl_put(dev->ctx, sg, &iov, 1);
            errno = EFAULT;
            return -1;
        }
        if (is_write) {
            memcpy(iov.iov_base, buf + done, iov.iov_len);
        } else {
            memcpy(buf + done, iov.iov_base, iov.iov_len);
        }
        done += iov.iov_len;
        vfu_sgl_put(dev->ctx, sg, &iov, 1);     /* marks written pages dirty */
    }
    return 0;
}

int
lvfu_dev_dma_read(lua_State *L)
{
    struct lvfu_dev *dev = lvfu_checkdev(L, 1);
    lua_Integer addr = luaL_checkinteger(L, 2);
    lua_Integer len = luaL_checkinteger(L, 3);
    dma_sg_t *sgl;
    luaL_Buffer b;
    char *buf;
    int n;

    luaL_argcheck(L, len > 0 && len <= LVFU_DMA_MAX, 3, "length out of range");
    n = translate(L, dev, (uint64_t)addr, (size_t)len, PROT_READ, &sgl);
    if (n < 0) {
        return lvfu_fail(L, errno, "dma_read");
    }
    buf = luaL_buffinitsize(L, &b, (size_t)len);
    if (copy_sg(dev, sgl, n, buf, (size_t)len, false) < 0) {
        return lvfu_fail(L, errno, "dma_read");
    }
    luaL_pushresultsize(&b, (size_t)len);
    return 1;
}

int
lvfu_dev_dma_write(lua_State *L)
{
    struct lvfu_dev *dev = lvfu_checkdev(L, 1);
    lua_Integer addr = luaL_checkinteger(L, 2);
    size_t len;
    const char *s = luaL_checklstring(L, 3, &len);
    dma_sg_t *sgl;
    int n;

    luaL_argcheck(L, len > 0 && len <= LVFU_DMA_MAX, 3, "length out of range");
    n = translate(L, dev, (uint64_t)addr, len, PROT_READ | PROT_WRITE, &sgl);
    if (n < 0) {
        return lvfu_fail(L, errno, "dma_write");
    }
    if (copy_sg(dev, sgl, n, (char *)s, len, true) < 0) {
        return lvfu_fail(L, errno, "dma_write");
    }
    lua_pushboolean(L, 1);
    return 1;
}

/* --- held SG handles --------------------------------------------------- */

static struct lvfu_sg *
check_sg(lua_State *L)
{
    struct lvfu_sg *s = luaL_checkudata(L, 1, LVFU_SG_MT);

    if (s->dev == NULL) {
        luaL_argerror(L, 1, "SG handle was released");
    }
    return s;
}

static int
sg_gc(lua_State *L)
{
    struct lvfu_sg *s = luaL_checkudata(L, 1, LVFU_SG_MT);

    sg_release(s);
    free(s->sgl);
    s->sgl = NULL;
    return 0;
}

/* Locate [off, off + len) across the held iovecs and copy. */
static void
sg_copy(lua_State *L, struct lvfu_sg *s, uint64_t off, char *buf, size_t len,
        bool is_write)
{
    luaL_argcheck(L, off <= s->len && len <= s->len - off, 2,
                  "range outside the held memory");
    for (int i = 0; i < s->n && len > 0; i++) {
        size_t l = s->iov[i].iov_len;
        size_t c;

        if (off >= l) {
            off -= l;
            continue;
        }
        c = l - off < len ? l - off : len;
        if (is_write) {
            memcpy((char *)s->iov[i].iov_base + off, buf, c);
        } else {
            memcpy(buf, (char *)s->iov[i].iov_base + off, c);
        }
        buf += c;
        len -= c;
        off = 0;
    }
}

static int
sg_read(lua_State *L)
{
    struct lvfu_sg *s = check_sg(L);
    lua_Integer off = luaL_checkinteger(L, 2);
    lua_Integer len = luaL_checkinteger(L, 3);
    luaL_Buffer b;
    char *buf;

    luaL_argcheck(L, off >= 0, 2, "negative offset");
    luaL_argcheck(L, len >= 0 && len <= LVFU_DMA_MAX, 3, "bad length");
    buf = luaL_buffinitsize(L, &b, (size_t)len);
    sg_copy(L, s, (uint64_t)off, buf, (size_t)len, false);
    luaL_pushresultsize(&b, (size_t)len);
    return 1;
}

static int
sg_write(lua_State *L)
{
    struct lvfu_sg *s = check_sg(L);
    lua_Integer off = luaL_checkinteger(L, 2);
    size_t len;
    const char *str = luaL_checklstring(L, 3, &len);

    luaL_argcheck(L, s->writable, 1, "SG handle is read-only");
    luaL_argcheck(L, off >= 0, 2, "negative offset");
    sg_copy(L, s, (uint64_t)off, (char *)str, len, true);
    return 0;
}

/* s:unpack(off, fmt) -> integers, s:pack(off, fmt, ...): records in the
 * held memory without a string (formats: lvfu_pack.c). */
static int
sg_unpack(lua_State *L)
{
    struct lvfu_sg *s = check_sg(L);
    lua_Integer off = luaL_checkinteger(L, 2);
    const char *fmt = luaL_checkstring(L, 3);
    int nvalues;
    size_t size = lvfu_pack_size(L, fmt, &nvalues);
    unsigned char tmp[LVFU_PACK_MAX];

    luaL_argcheck(L, off >= 0, 2, "negative offset");
    luaL_checkstack(L, nvalues, "too many values");
    sg_copy(L, s, (uint64_t)off, (char *)tmp, size, false);
    return lvfu_unpack_mem(L, tmp, fmt);
}

static int
sg_pack(lua_State *L)
{
    struct lvfu_sg *s = check_sg(L);
    lua_Integer off = luaL_checkinteger(L, 2);
    const char *fmt = luaL_checkstring(L, 3);
    size_t size = lvfu_pack_size(L, fmt, NULL);
    unsigned char tmp[LVFU_PACK_MAX];

    luaL_argcheck(L, s->writable, 1, "SG handle is read-only");
    luaL_argcheck(L, off >= 0, 2, "negative offset");
    lvfu_pack_mem(L, tmp, fmt, 4);
    sg_copy(L, s, (uint64_t)off, (char *)tmp, size, true);
    return 0;
}

static int
sg_mark_dirty(lua_State *L)
{
    struct lvfu_sg *s = check_sg(L);

    vfu_sgl_mark_dirty(s->dev->ctx, s->sgl, (size_t)s->n);
    return 0;
}

static int
sg_len(lua_State *L)
{
    struct lvfu_sg *s = luaL_checkudata(L, 1, LVFU_SG_MT);

    lua_pushinteger(L, s->dev != NULL ? (lua_Integer)s->len : 0);
    return 1;
}

static int
sg_tostring(lua_State *L)
{
    struct lvfu_sg *s = luaL_checkudata(L, 1, LVFU_SG_MT);

    if (s->dev == NULL) {
        lua_pushfstring(L, "vfu.sg (released): %p", (void *)s);
    } else {
        lua_pushfstring(L, "vfu.sg 0x%I+%I%s", (lua_Integer)s->iova,
                        (lua_Integer)s->len, s->writable ? " rw" : " r");
    }
    return 1;
}

/* dev:dma_hold(addr, len [, "r"|"rw"]) */
int
lvfu_dev_dma_hold(lua_State *L)
{
    static const char *const modes[] = { "r", "rw", NULL };
    struct lvfu_dev *dev = lvfu_checkdev(L, 1);
    lua_Integer addr = luaL_checkinteger(L, 2);
    lua_Integer len = luaL_checkinteger(L, 3);
    bool writable = luaL_checkoption(L, 4, "rw", modes) == 1;
    int prot = PROT_READ | (writable ? PROT_WRITE : 0);
    struct lvfu_sg *s;
    int n;

    luaL_argcheck(L, len > 0, 3, "length must be positive");
    s = lua_newuserdatauv(L, sizeof(*s), 0);
    memset(s, 0, sizeof(*s));
    luaL_setmetatable(L, LVFU_SG_MT);
    s->sgl = calloc(LVFU_MAX_SG, dma_sg_size());
    if (s->sgl == NULL) {
        return lvfu_fail(L, ENOMEM, "dma_hold");
    }
    if (dev->ctx == NULL || !dev->dma) {
        return lvfu_fail(L, EINVAL, "dma_hold");
    }
    n = vfu_addr_to_sgl(dev->ctx, (vfu_dma_addr_t)(uintptr_t)addr, (size_t)len,
                        s->sgl, LVFU_MAX_SG, prot);
    if (n < 0) {
        return lvfu_fail(L, n < -1 || errno == 0 ? E2BIG : errno, "dma_hold");
    }
    if (vfu_sgl_get(dev->ctx, s->sgl, s->iov, (size_t)n, 0) < 0) {
        return lvfu_fail(L, errno, "dma_hold");
    }
    s->n = n;
    s->dev = dev;
    s->iova = (uint64_t)addr;
    s->len = (uint64_t)len;
    s->writable = writable;
    s->next = dev->sgs;
    dev->sgs = s;
    return 1;
}

static const luaL_Reg sg_meta[] = {
    { "__gc", sg_gc },
    { "__close", sg_gc },
    { "__tostring", sg_tostring },
    { "__len", sg_len },
    { "__index", NULL },
    { NULL, NULL }
};

static const luaL_Reg sg_methods[] = {
    { "read", sg_read },
    { "write", sg_write },
    { "mark_dirty", sg_mark_dirty },
    { "unpack", sg_unpack },
    { "pack", sg_pack },
    { "release", sg_gc },
    { NULL, NULL }
};

void
lvfu_dma_register(lua_State *L)
{
    if (luaL_newmetatable(L, LVFU_SG_MT)) {
        luaL_setfuncs(L, sg_meta, 0);
        luaL_newlib(L, sg_methods);
        lua_setfield(L, -2, "__index");
        lvfu_hide_metatable(L, -1);
    }
    lua_pop(L, 1);
}
