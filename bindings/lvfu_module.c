/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 the vfu authors. */

/*
 * The `vfu` module table: constructors, logging, a few helpers, and the
 * pure-Lua helpers (regmap, state) compiled in so that they need no search
 * path inside the sandbox.
 */
#include <errno.h>
#include <string.h>
#include <time.h>

#include "lvfu.h"
#include "lvfu_helpers.h"   /* generated: lvfu_helper_regmap, _state */

void
lvfu_log_sink(vfu_ctx_t *ctx, int level, const char *msg)
{
    struct lvfu_dev *dev = vfu_get_private(ctx);

    fprintf(stderr, "%s: %s\n", dev != NULL ? dev->name : "vfu", msg);
}

int
lvfu_load_helper(lua_State *L, const char *name)
{
    static const struct {
        const char *name;
        const char *src;
        size_t len;
        const char *chunk;
    } helpers[] = {
        { "regmap", lvfu_helper_regmap, sizeof(lvfu_helper_regmap) - 1,
          "=[vfu regmap.lua]" },
        { "state", lvfu_helper_state, sizeof(lvfu_helper_state) - 1,
          "=[vfu state.lua]" },
    };

    luaL_getsubtable(L, LUA_REGISTRYINDEX, "vfu.helpers");
    if (lua_getfield(L, -1, name) != LUA_TNIL) {
        lua_remove(L, -2);
        return 1;
    }
    lua_pop(L, 1);
    for (size_t i = 0; i < sizeof(helpers) / sizeof(helpers[0]); i++) {
        if (strcmp(helpers[i].name, name) != 0) {
            continue;
        }
        if (luaL_loadbufferx(L, helpers[i].src, helpers[i].len,
                             helpers[i].chunk, "t") != LUA_OK) {
            return lua_error(L);
        }
        lua_call(L, 0, 1);
        lua_pushvalue(L, -1);
        lua_setfield(L, -3, name);
        lua_remove(L, -2);
        return 1;
    }
    return luaL_error(L, "no helper named '%s'", name);
}

static int
l_log(lua_State *L)
{
    static const char *const levels[] = { "err", "warning", "info", "debug",
                                          NULL };
    const char *msg = luaL_checkstring(L, 1);
    int level = luaL_checkoption(L, 2, "info", levels);

    /* err always; info with -v; debug with -vv */
    if (level <= 1 || level - 1 <= lvfu_rt(L)->verbose) {
        fprintf(stderr, "vfu: %s\n", msg);
    }
    return 0;
}

static int
l_now(lua_State *L)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    lua_pushinteger(L, (lua_Integer)ts.tv_sec * 1000 + ts.tv_nsec / 1000000);
    return 1;
}

static int
l_sleep(lua_State *L)
{
    lua_Integer ms = luaL_checkinteger(L, 1);
    struct timespec ts;

    luaL_argcheck(L, ms >= 0 && ms <= 10000, 1, "0 to 10000 ms expected");
    if (lvfu_rt(L)->in_handler) {
        return luaL_error(L, "vfu.sleep inside a device handler; use vfu.timer");
    }
    ts.tv_sec = ms / 1000;
    ts.tv_nsec = (ms % 1000) * 1000000L;
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {
        continue;
    }
    return 0;
}

static int
l_memory(lua_State *L)
{
    lua_pushinteger(L, (lua_Integer)lvfu_mem_used(L));
    return 1;
}

static int
l_helper(lua_State *L)
{
    return lvfu_load_helper(L, luaL_checkstring(L, 1));
}

static const luaL_Reg vfu_funcs[] = {
    { "device", lvfu_device_new },
    { "timer", lvfu_timer_new },
    { "connect", lvfu_client_connect },
    { "log", l_log },
    { "now", l_now },
    { "sleep", l_sleep },
    { "memory", l_memory },
    { "helper", l_helper },
    { "buffer", lvfu_buffer_new },
    { NULL, NULL }
};

int
luaopen_vfu(lua_State *L)
{
    lvfu_rt(L);
    lvfu_device_register(L);
    lvfu_timer_register(L);
    lvfu_dma_register(L);
    lvfu_client_register(L);
    lvfu_buffer_register(L);
    lvfu_budget_hook_install(L);
    luaL_newlib(L, vfu_funcs);
    lua_pushliteral(L, "0.1");
    lua_setfield(L, -2, "version");
    return 1;
}
