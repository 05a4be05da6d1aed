/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 the vfu authors. */

/*
 * vfu.buffer: bytes that live on the C side (anonymous memory, or a file
 * mapped shared), for a device's storage. Data moves between a buffer and
 * client memory in one call per command, through a list of page
 * addresses as DMA descriptors give them (NVMe PRPs, for one): no Lua
 * string per block, and adjacent pages are copied as one range.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lvfu.h"

#define LVFU_BUFFER_MT "vfu.buffer"
#define MSG_PIECE 4096u         /* bytes per DMA_READ/DMA_WRITE message */

struct lvfu_buf {
    char *mem;                  /* NULL once closed */
    size_t size;
    bool file;                  /* mapped from a file, shared */
    bool writable;
    dma_sg_t *sgl;              /* scratch for translations */
};

static struct lvfu_buf *
check_buf(lua_State *L, int idx)
{
    struct lvfu_buf *b = luaL_checkudata(L, idx, LVFU_BUFFER_MT);

    if (b->mem == NULL) {
        luaL_argerror(L, idx, "buffer is closed");
    }
    return b;
}

/* Check [off, off + len) against the buffer; raises if outside. */
static char *
range(lua_State *L, struct lvfu_buf *b, int arg, lua_Integer off,
      lua_Integer len)
{
    luaL_argcheck(L, off >= 0 && len >= 0 && (uint64_t)off <= b->size &&
                  (uint64_t)len <= b->size - (uint64_t)off, arg,
                  "range outside the buffer");
    return b->mem + off;
}

static int
buf_gc(lua_State *L)
{
    struct lvfu_buf *b = luaL_checkudata(L, 1, LVFU_BUFFER_MT);

    if (b->mem != NULL) {
        munmap(b->mem, b->size);
        b->mem = NULL;
    }
    free(b->sgl);
    b->sgl = NULL;
    return 0;
}

/* vfu.buffer(size) or vfu.buffer(path [, "r" | "rw"]) */
int
lvfu_buffer_new(lua_State *L)
{
    static const char *const modes[] = { "r", "rw", NULL };
    bool is_size = lua_type(L, 1) == LUA_TNUMBER;
    lua_Integer size = is_size ? luaL_checkinteger(L, 1) : 0;
    const char *path = is_size ? NULL : luaL_checkstring(L, 1);
    bool rw = is_size || luaL_checkoption(L, 2, "rw", modes) == 1;
    struct lvfu_buf *b;
    void *p;

    luaL_argcheck(L, !is_size || (size > 0 && (uint64_t)size <= (1ull << 40)), 1,
                  "size out of range");
    lua_settop(L, 1);
    b = lua_newuserdatauv(L, sizeof(*b), 0);
    memset(b, 0, sizeof(*b));
    luaL_setmetatable(L, LVFU_BUFFER_MT);
    b->sgl = calloc(LVFU_MAX_SG, dma_sg_size());
    if (b->sgl == NULL) {
        return lvfu_fail(L, ENOMEM, "buffer");
    }
    if (is_size) {
        /* zero pages cost nothing until written */
        p = mmap(NULL, (size_t)size, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (p == MAP_FAILED) {
            return lvfu_fail(L, errno, "buffer");
        }
        b->size = (size_t)size;
        b->writable = true;
    } else {
        struct stat st;
        int fd = open(path, (rw ? O_RDWR : O_RDONLY) | O_CLOEXEC);
        int err;

        if (fd < 0) {
            return lvfu_fail(L, errno, path);
        }
        if (fstat(fd, &st) < 0) {
            err = errno;
            close(fd);
            return lvfu_fail(L, err, path);
        }
        if (!S_ISREG(st.st_mode) || st.st_size <= 0) {
            close(fd);
            return lvfu_fail(L, EINVAL, path);  /* nothing to map */
        }
        p = mmap(NULL, (size_t)st.st_size, PROT_READ | (rw ? PROT_WRITE : 0),
                 MAP_SHARED, fd, 0);
        err = errno;
        close(fd);
        if (p == MAP_FAILED) {
            return lvfu_fail(L, err, path);
        }
        b->size = (size_t)st.st_size;
        b->file = true;
        b->writable = rw;
    }
    b->mem = p;
    return 1;
}

static int
buf_len(lua_State *L)
{
    struct lvfu_buf *b = luaL_checkudata(L, 1, LVFU_BUFFER_MT);

    lua_pushinteger(L, b->mem != NULL ? (lua_Integer)b->size : 0);
    return 1;
}

static int
buf_tostring(lua_State *L)
{
    struct lvfu_buf *b = luaL_checkudata(L, 1, LVFU_BUFFER_MT);

    if (b->mem == NULL) {
        lua_pushfstring(L, "vfu.buffer (closed): %p", (void *)b);
    } else {
        lua_pushfstring(L, "vfu.buffer %I bytes%s", (lua_Integer)b->size,
                        b->file ? " (file)" : "");
    }
    return 1;
}

static int
buf_read(lua_State *L)
{
    struct lvfu_buf *b = check_buf(L, 1);
    lua_Integer off = luaL_checkinteger(L, 2);
    lua_Integer len = luaL_checkinteger(L, 3);

    lua_pushlstring(L, range(L, b, 2, off, len), (size_t)len);
    return 1;
}

static int
buf_write(lua_State *L)
{
    struct lvfu_buf *b = check_buf(L, 1);
    lua_Integer off = luaL_checkinteger(L, 2);
    size_t len;
    const char *s = luaL_checklstring(L, 3, &len);

    luaL_argcheck(L, b->writable, 1, "buffer is read-only");
    memcpy(range(L, b, 2, off, (lua_Integer)len), s, len);
    return 0;
}

/* b:fill(off, len [, byte]) */
static int
buf_fill(lua_State *L)
{
    struct lvfu_buf *b = check_buf(L, 1);
    lua_Integer off = luaL_checkinteger(L, 2);
    lua_Integer len = luaL_checkinteger(L, 3);
    lua_Integer byte = luaL_optinteger(L, 4, 0);

    luaL_argcheck(L, b->writable, 1, "buffer is read-only");
    memset(range(L, b, 2, off, len), (int)(byte & 0xff), (size_t)len);
    return 0;
}

static int
buf_unpack(lua_State *L)
{
    struct lvfu_buf *b = check_buf(L, 1);
    lua_Integer off = luaL_checkinteger(L, 2);
    const char *fmt = luaL_checkstring(L, 3);
    int nvalues;
    size_t size = lvfu_pack_size(L, fmt, &nvalues);

    luaL_checkstack(L, nvalues, "too many values");
    return lvfu_unpack_mem(L, (unsigned char *)range(L, b, 2, off,
                                                     (lua_Integer)size), fmt);
}

static int
buf_pack(lua_State *L)
{
    struct lvfu_buf *b = check_buf(L, 1);
    lua_Integer off = luaL_checkinteger(L, 2);
    const char *fmt = luaL_checkstring(L, 3);
    size_t size = lvfu_pack_size(L, fmt, NULL);
    unsigned char tmp[LVFU_PACK_MAX];

    luaL_argcheck(L, b->writable, 1, "buffer is read-only");
    range(L, b, 2, off, (lua_Integer)size);
    lvfu_pack_mem(L, tmp, fmt, 4);      /* all arguments checked first */
    memcpy(b->mem + off, tmp, size);
    return 0;
}

/* b:is_zero(off, len): whether every byte is zero (what need not be sent
 * to a peer that starts from zeros). */
static int
buf_is_zero(lua_State *L)
{
    struct lvfu_buf *b = check_buf(L, 1);
    lua_Integer off = luaL_checkinteger(L, 2);
    lua_Integer len = luaL_checkinteger(L, 3);
    const char *p = range(L, b, 2, off, len);
    size_t n = (size_t)len;

    /* each byte equals the next and the first is zero */
    lua_pushboolean(L, n == 0 || (p[0] == 0 && memcmp(p, p + 1, n - 1) == 0));
    return 1;
}

/* b:sync([off, len]): write a file's pages back (msync). */
static int
buf_sync(lua_State *L)
{
    struct lvfu_buf *b = check_buf(L, 1);
    lua_Integer off = luaL_optinteger(L, 2, 0);
    lua_Integer len = luaL_optinteger(L, 3, (lua_Integer)b->size - off);
    long pg = sysconf(_SC_PAGESIZE);
    lua_Integer start;

    range(L, b, 2, off, len);
    if (b->file && len > 0) {
        start = off & ~(lua_Integer)(pg - 1);
        if (msync(b->mem + start, (size_t)(len + off - start), MS_SYNC) < 0) {
            return lvfu_fail(L, errno, "sync");
        }
    }
    lua_pushboolean(L, 1);
    return 1;
}

/* --- copies with client memory ----------------------------------------- */

/*
 * Memory the client mapped without an fd: DMA_READ/DMA_WRITE messages, one
 * page each. QEMU 10.2 serves them from its guest memory and aborts on
 * some larger ones (seen with 256 KiB), and a page never spans two of its
 * memory regions.
 */
static int
copy_by_message(struct lvfu_dev *dev, dma_sg_t *sgl, uint64_t addr, char *p,
                size_t len, bool to_client)
{
    while (len > 0) {
        size_t c = MSG_PIECE - (addr & (MSG_PIECE - 1));
        int n;

        c = c < len ? c : len;
        n = vfu_addr_to_sgl(dev->ctx, (vfu_dma_addr_t)(uintptr_t)addr, c, sgl,
                            1, to_client ? PROT_READ | PROT_WRITE : PROT_READ);
        if (n != 1) {
            errno = n < -1 || errno == 0 ? ENOTSUP : errno;
            return -1;
        }
        if ((to_client ? vfu_sgl_write(dev->ctx, sgl, 1, p, VFU_SGL_DIRECT_ACCESS)
                       : vfu_sgl_read(dev->ctx, sgl, 1, p, VFU_SGL_DIRECT_ACCESS)) < 0) {
            return -1;
        }
        addr += c;
        p += c;
        len -= c;
    }
    return 0;
}

/* Copy len bytes between p and the client range at addr. */
static int
copy_range(struct lvfu_dev *dev, dma_sg_t *sgl, uint64_t addr, char *p,
           size_t len, bool to_client)
{
    struct iovec iov[LVFU_MAX_SG];
    int n = vfu_addr_to_sgl(dev->ctx, (vfu_dma_addr_t)(uintptr_t)addr, len, sgl,
                            LVFU_MAX_SG, to_client ? PROT_READ | PROT_WRITE
                                                   : PROT_READ);
    size_t done = 0;

    if (n < 0) {
        errno = n < -1 || errno == 0 ? E2BIG : errno;
        return -1;
    }
    if (!vfu_sg_is_mappable(dev->ctx, sgl)) {
        return copy_by_message(dev, sgl, addr, p, len, to_client);
    }
    if (vfu_sgl_get(dev->ctx, sgl, iov, (size_t)n, 0) < 0) {
        return -1;
    }
    for (int i = 0; i < n && done < len; i++) {
        size_t c = iov[i].iov_len < len - done ? iov[i].iov_len : len - done;

        if (to_client) {
            memcpy(iov[i].iov_base, p + done, c);
        } else {
            memcpy(p + done, iov[i].iov_base, c);
        }
        done += c;
    }
    vfu_sgl_put(dev->ctx, sgl, iov, (size_t)n);     /* marks dirty pages */
    return 0;
}

/* The next page address from the arguments from *arg on (integers, or
 * arrays of integers); false when they are used up. */
struct addrs {
    int arg, top;
    lua_Integer idx;            /* next element of the table at arg, 0: none */
};

static bool
next_addr(lua_State *L, struct addrs *a, uint64_t *out)
{
    while (a->arg <= a->top) {
        if (lua_type(L, a->arg) == LUA_TTABLE) {
            if (a->idx == 0) {
                a->idx = 1;
            }
            if (lua_rawgeti(L, a->arg, a->idx) != LUA_TNIL) {
                int ok;
                lua_Integer v = lua_tointegerx(L, -1, &ok);

                lua_pop(L, 1);
                if (!ok) {
                    luaL_error(L, "address list at argument #%d: entry %d is "
                               "not an integer", a->arg - 1, (int)a->idx);
                }
                a->idx++;
                *out = (uint64_t)v;
                return true;
            }
            lua_pop(L, 1);
            a->arg++;
            a->idx = 0;
            continue;
        }
        *out = (uint64_t)luaL_checkinteger(L, a->arg++);
        return true;
    }
    return false;
}

/*
 * b:to_dma(dev, off, len, pgsz, addr, ...) and b:from_dma(...): the first
 * address runs to its page's end, each further one (page-aligned) covers a
 * page; pgsz 0 makes the first address one contiguous range. Addresses
 * may come as integers or arrays; those past len are ignored.
 */
static int
buf_dma(lua_State *L, bool to_client)
{
    struct lvfu_buf *b = check_buf(L, 1);
    struct lvfu_dev *dev = lvfu_checkdev(L, 2);
    lua_Integer off = luaL_checkinteger(L, 3);
    lua_Integer len = luaL_checkinteger(L, 4);
    lua_Integer pgsz = luaL_checkinteger(L, 5);
    const char *what = to_client ? "to_dma" : "from_dma";
    struct addrs a = { 6, lua_gettop(L), 0 };
    char *p = range(L, b, 3, off, len);
    uint64_t run_addr, run_len, next;
    size_t left = (size_t)len;

    luaL_argcheck(L, pgsz == 0 || (pgsz >= 512 && (pgsz & (pgsz - 1)) == 0),
                  5, "page size must be 0 or a power of two >= 512");
    luaL_argcheck(L, to_client || b->writable, 1, "buffer is read-only");
    if (dev->ctx == NULL || !dev->dma) {
        return lvfu_fail(L, EINVAL, what);
    }
    if (!next_addr(L, &a, &run_addr)) {
        return luaL_argerror(L, 6, "address expected");
    }
    if (left == 0) {
        lua_pushboolean(L, 1);          /* nothing to move */
        return 1;
    }
    run_len = pgsz == 0 ? left : (uint64_t)pgsz - (run_addr & (uint64_t)(pgsz - 1));
    if (run_len > left) {
        run_len = left;
    }
    left -= run_len;
    /* grow the run while the pages follow each other */
    while (left > 0) {
        uint64_t c = left < (uint64_t)pgsz ? left : (uint64_t)pgsz;

        if (!next_addr(L, &a, &next)) {
            return luaL_error(L, "%s: addresses cover %d of %d bytes", what,
                              (int)((size_t)len - left), (int)len);
        }
        if ((next & (uint64_t)(pgsz - 1)) != 0) {
            return lvfu_fail(L, EINVAL, what);      /* not page-aligned */
        }
        if (next != run_addr + run_len) {
            if (copy_range(dev, b->sgl, run_addr, p, run_len, to_client) < 0) {
                return lvfu_fail(L, errno, what);
            }
            p += run_len;
            run_addr = next;
            run_len = 0;
        }
        run_len += c;
        left -= c;
    }
    if (run_len > 0 &&
        copy_range(dev, b->sgl, run_addr, p, run_len, to_client) < 0) {
        return lvfu_fail(L, errno, what);
    }
    lua_pushboolean(L, 1);
    return 1;
}

static int
buf_to_dma(lua_State *L)
{
    return buf_dma(L, true);
}

static int
buf_from_dma(lua_State *L)
{
    return buf_dma(L, false);
}

static const luaL_Reg buf_meta[] = {
    { "__gc", buf_gc },
    { "__close", buf_gc },
    { "__len", buf_len },
    { "__tostring", buf_tostring },
    { "__index", NULL },
    { NULL, NULL }
};

static const luaL_Reg buf_methods[] = {
    { "read", buf_read },
    { "write", buf_write },
    { "fill", buf_fill },
    { "unpack", buf_unpack },
    { "pack", buf_pack },
    { "is_zero", buf_is_zero },
    { "sync", buf_sync },
    { "to_dma", buf_to_dma },
    { "from_dma", buf_from_dma },
    { "close", buf_gc },
    { NULL, NULL }
};

void
lvfu_buffer_register(lua_State *L)
{
    if (luaL_newmetatable(L, LVFU_BUFFER_MT)) {
        luaL_setfuncs(L, buf_meta, 0);
        luaL_newlib(L, buf_methods);
        lua_setfield(L, -2, "__index");
        lvfu_hide_metatable(L, -1);
    }
    lua_pop(L, 1);
}
