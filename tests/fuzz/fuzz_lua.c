/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 the vfu authors. */

/*
 * The Lua bindings' argument handling: each input is a list of calls of the
 * vfu module's functions and of the methods of the objects they return,
 * with arguments of every type (numbers at the edges, NaN, strings from the
 * bindings' own vocabulary, nested tables of them, functions, userdata of
 * the wrong kind). A call may fail with a Lua error; it must never crash,
 * leak or touch memory it should not. Each input runs in a fresh sandboxed
 * state with a memory cap, as the vfu-lua runner makes one.
 *
 * Not called: dev:serve() and vfu.sleep() (they wait). Paths given to
 * dev:listen() are replaced by one in a private directory so that the
 * fuzzer never creates files elsewhere, and vfu.connect() gets a path
 * nobody listens on: connecting to our own device, which this thread
 * would have to serve, would wait forever.
 */

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lua.h>

#include "lvfu.h"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct in {
    const uint8_t *p;
    size_t left;
};

static unsigned
take(struct in *in)
{
    if (in->left == 0) {
        return 0;
    }
    in->left--;
    return *in->p++;
}

static const char *const words[] = {
    "name", "vendor", "device", "subsystem", "subsystem_vendor", "class",
    "revision", "type", "express", "conventional", "pcie", "bars", "bar0",
    "bar1", "bar2", "bar5", "rom", "size", "read", "write", "io", "mmap",
    "mem64", "prefetchable", "sparse", "offset", "irqs", "intx", "msi",
    "msix", "err", "req", "irq_state", "caps", "pm", "dsn", "serial", "vsc",
    "data", "table_bar", "table_offset", "pba_bar", "pba_offset",
    "table_size", "vectors", "per_vector_mask", "dma", "map", "unmap",
    "migration", "save", "load", "state", "transition", "pre_copy",
    "reset", "quiesce", "flr", "config", "readonly", "always_cb", "from",
    "to", "r", "rw", "info", "debug", "warning", "", "regmap", "x",
};

/* A spec that builds, for the methods to have a device to work on. */
static const char base_spec[] =
    "return function() return {\n"
    "  name = 'fz', vendor = 0x1234, device = 0x11,\n"
    "  bars = { [0] = { size = 4096, read = function(o, n) return 0 end,\n"
    "                   write = function() end },\n"
    "           [2] = { size = 8192, mmap = true } },\n"
    "  irqs = { intx = 1, msi = 2, msix = 4 },\n"
    "  caps = { { 'pm' }, { 'msix' } },\n"
    "  dma = { map = function() end, unmap = function() end },\n"
    "  reset = function() end,\n"
    "  migration = { state = { a = 1 } },\n"
    "} end\n";

/* Functions a fuzzed value can be: they return, fail, or return junk. */
static const char fn_src[] =
    "return { function(...) return ... end, function() error('fz') end,\n"
    "         function() return 1 end, function() return {} end,\n"
    "         function() return nil, 'e' end, function() return 0x7fffffff end }\n";

/* Registry fields holding what the generator draws from. */
#define REG_BASE "fuzz.base"
#define REG_FNS  "fuzz.fns"
#define REG_OBJS "fuzz.objs"

static void gen(lua_State *L, struct in *in, int depth);

static void
gen_table(lua_State *L, struct in *in, int depth, bool keyed)
{
    unsigned n = take(in) % 6;

    lua_createtable(L, 0, 0);
    for (unsigned i = 0; i < n; i++) {
        if (keyed) {
            unsigned k = take(in);
            if (k & 0x80) {
                lua_pushinteger(L, (lua_Integer)(k & 7));
            } else {
                lua_pushstring(L, words[k % ARRAY_SIZE(words)]);
            }
        } else {
            lua_pushinteger(L, (lua_Integer)i + 1);
        }
        gen(L, in, depth + 1);
        lua_settable(L, -3);
    }
}

static void
gen(lua_State *L, struct in *in, int depth)
{
    static const lua_Integer edges[] = {
        0, 1, -1, 4, 8, 255, 256, 4095, 4096, 65535, 65536, 0x7fffffff,
        0x80000000, 0xffffffff, 0x100000000, INT64_MAX, INT64_MIN, 1 << 20,
        16 << 20, 3, 7, 0x100, 0x1000,
    };
    static const double floats[] = { 0.5, -0.0, 1e300, -1e300, 4096.0 };
    unsigned t = take(in);
    char buf[17];
    size_t len;

    if (depth > 3 && t % 12 >= 7) {
        t = 2;
    }
    switch (t % 12) {
    case 0:
        lua_pushnil(L);
        break;
    case 1:
        lua_pushboolean(L, t & 0x80);
        break;
    case 2:
        lua_pushinteger(L, (lua_Integer)(int8_t)take(in));
        break;
    case 3:
        lua_pushinteger(L, edges[take(in) % ARRAY_SIZE(edges)]);
        break;
    case 4:
        switch (take(in) % 8) {
        case 0: lua_pushnumber(L, NAN); break;
        case 1: lua_pushnumber(L, INFINITY); break;
        case 2: lua_pushnumber(L, -INFINITY); break;
        default: lua_pushnumber(L, floats[take(in) % ARRAY_SIZE(floats)]);
        }
        break;
    case 5:
        lua_pushstring(L, words[take(in) % ARRAY_SIZE(words)]);
        break;
    case 6:
        len = take(in) % sizeof(buf);
        for (size_t i = 0; i < len; i++) {
            buf[i] = (char)take(in);
        }
        lua_pushlstring(L, buf, len);
        break;
    case 7:
        gen_table(L, in, depth, false);
        break;
    case 8:
        gen_table(L, in, depth, true);
        break;
    case 9:
        lua_getfield(L, LUA_REGISTRYINDEX, REG_FNS);
        lua_rawgeti(L, -1, 1 + (lua_Integer)(take(in) % 6));
        lua_remove(L, -2);
        break;
    case 10:
        /* One of the objects made so far (any kind), or nil. */
        lua_getfield(L, LUA_REGISTRYINDEX, REG_OBJS);
        lua_rawgeti(L, -1, 1 + (lua_Integer)(take(in) % 4));
        lua_remove(L, -2);
        break;
    default:
        /* The working spec with one field replaced. */
        lua_getfield(L, LUA_REGISTRYINDEX, REG_BASE);
        lua_call(L, 0, 1);
        if (depth < 2) {
            lua_pushstring(L, words[take(in) % ARRAY_SIZE(words)]);
            gen(L, in, depth + 1);
            lua_settable(L, -3);
        }
        break;
    }
}

struct callee {
    const char *name;
    int self;           /* object slot the method is called on, 0: module */
    int path_arg;       /* argument replaced by our socket path, 0: none */
};

/* Object slots: 1 device, 2 timer, 3 sg handle, 4 client. */
static const struct callee callees[] = {
    { "device", 0, 0 }, { "timer", 0, 0 }, { "connect", 0, 1 },
    { "log", 0, 0 }, { "now", 0, 0 }, { "memory", 0, 0 },
    { "helper", 0, 0 },
    { "listen", 1, 2 }, { "stop", 1, 0 }, { "irq", 1, 0 }, { "log", 1, 0 },
    { "config_read", 1, 0 }, { "config_write", 1, 0 }, { "mem_read", 1, 0 },
    { "mem_write", 1, 0 }, { "dma_read", 1, 0 }, { "dma_write", 1, 0 },
    { "dma_hold", 1, 0 }, { "summary", 1, 0 }, { "close", 1, 0 },
    { "cancel", 2, 0 }, { "active", 2, 0 },
    { "read", 3, 0 }, { "write", 3, 0 }, { "release", 3, 0 },
    { "read", 4, 0 }, { "write", 4, 0 }, { "close", 4, 0 },
};

static int
call_one(lua_State *L, struct in *in, const char *sock)
{
    const struct callee *c = &callees[take(in) % ARRAY_SIZE(callees)];
    int nargs = (int)(take(in) % 5);
    int base = lua_gettop(L);

    if (c->self == 0) {
        lua_getglobal(L, "vfu");
        lua_getfield(L, -1, c->name);
        lua_remove(L, -2);
    } else {
        lua_getfield(L, LUA_REGISTRYINDEX, REG_OBJS);
        lua_rawgeti(L, -1, c->self);
        lua_remove(L, -2);
        if (lua_isnil(L, -1)) {
            lua_settop(L, base);
            return 0;
        }
        lua_getfield(L, -1, c->name);   /* through __index */
        lua_insert(L, -2);              /* method, self */
    }
    if (!lua_isfunction(L, base + 1)) {
        lua_settop(L, base);
        return 0;
    }
    for (int i = 0; i < nargs; i++) {
        int argno = (c->self != 0 ? 2 : 1) + i;
        if (argno == c->path_arg) {
            if (c->self == 0) {
                lua_pushfstring(L, "%s.none", sock);
            } else {
                lua_pushstring(L, sock);
            }
        } else {
            gen(L, in, 0);
        }
    }
    nargs = lua_gettop(L) - base - 1;
    if (lvfu_pcall_budget(L, nargs, 1, 200) == 0) {
        /* Keep what the constructors make, for the methods to use. */
        int slot = strcmp(c->name, "device") == 0 && c->self == 0 ? 1
                 : strcmp(c->name, "timer") == 0 ? 2
                 : strcmp(c->name, "dma_hold") == 0 ? 3
                 : strcmp(c->name, "connect") == 0 ? 4 : 0;
        if (slot != 0 && lua_isuserdata(L, -1)) {
            lua_getfield(L, LUA_REGISTRYINDEX, REG_OBJS);
            lua_pushvalue(L, -2);
            lua_rawseti(L, -2, slot);
            lua_pop(L, 1);
        }
    } else if (lvfu_rt(L)->budget_hit) {
        lua_settop(L, base);
        return -1;      /* the state refuses to run more; start over */
    }
    lua_settop(L, base);
    return 0;
}

static void
load_chunk(lua_State *L, const char *src, const char *name, const char *field)
{
    if (luaL_loadbufferx(L, src, strlen(src), name, "t") != LUA_OK ||
        lua_pcall(L, 0, 1, 0) != LUA_OK) {
        fprintf(stderr, "fuzz_lua: %s\n", lua_tostring(L, -1));
        abort();
    }
    lua_setfield(L, LUA_REGISTRYINDEX, field);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char dir[64], sock[96];
    struct in in = { data, size };
    lua_State *L;

    snprintf(dir, sizeof(dir), "/tmp/vfu-fuzz-lua-%d", (int)getpid());
    snprintf(sock, sizeof(sock), "%s/s", dir);
    mkdir(dir, 0700);

    L = lvfu_newstate(64u << 20);
    if (L == NULL) {
        return 0;
    }
    lvfu_open_sandbox(L, false);
    load_chunk(L, base_spec, "=base", REG_BASE);
    load_chunk(L, fn_src, "=fns", REG_FNS);
    lua_newtable(L);
    lua_setfield(L, LUA_REGISTRYINDEX, REG_OBJS);

    for (int i = 0; i < 64 && in.left > 0; i++) {
        if (call_one(L, &in, sock) < 0) {
            break;
        }
    }
    lvfu_closestate(L);
    unlink(sock);
    rmdir(dir);
    return 0;
}
