/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 the vfu authors. */

/*
 * The runtime every handler call goes through: a traceback message handler,
 * a time budget enforced by a count hook, a capped allocator, and the
 * sandbox (which libraries a script sees).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include <lualib.h>

#include "lvfu.h"

#define HOOK_COUNT 1000         /* instructions between clock checks */

static const char rt_key = 'r';

struct lvfu_mem {
    size_t used;
    size_t cap;
};

struct lvfu_rt *
lvfu_rt(lua_State *L)
{
    struct lvfu_rt *rt;

    if (lua_rawgetp(L, LUA_REGISTRYINDEX, &rt_key) == LUA_TUSERDATA) {
        rt = lua_touserdata(L, -1);
        lua_pop(L, 1);
        return rt;
    }
    lua_pop(L, 1);
    rt = lua_newuserdatauv(L, sizeof(*rt), 0);
    memset(rt, 0, sizeof(*rt));
    rt->budget_ms = 100;
    lua_rawsetp(L, LUA_REGISTRYINDEX, &rt_key);
    return rt;
}

static void *
counting_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    struct lvfu_mem *m = ud;
    size_t old = ptr != NULL ? osize : 0;
    void *p;

    if (nsize == 0) {
        free(ptr);
        m->used -= old;
        return NULL;
    }
    /* Only growth can fail: Lua then collects and retries, or raises. */
    if (nsize > old && m->cap != 0 && m->used - old + nsize > m->cap) {
        return NULL;
    }
    p = realloc(ptr, nsize);
    if (p == NULL) {
        return NULL;
    }
    m->used = m->used - old + nsize;
    return p;
}

static int
panic(lua_State *L)
{
    const char *msg = lua_tostring(L, -1);

    fprintf(stderr, "vfu: unprotected Lua error: %s\n", msg ? msg : "?");
    return 0;
}

lua_State *
lvfu_newstate(size_t mem_cap)
{
    struct lvfu_mem *m = calloc(1, sizeof(*m));
    lua_State *L;

    if (m == NULL) {
        return NULL;
    }
    m->cap = mem_cap;
    L = lua_newstate(counting_alloc, m);
    if (L == NULL) {
        free(m);
        errno = ENOMEM;
        return NULL;
    }
    lua_atpanic(L, panic);
    return L;
}

size_t
lvfu_mem_cap(lua_State *L)
{
    void *ud;

    if (lua_getallocf(L, &ud) != counting_alloc) {
        return 0;
    }
    return ((struct lvfu_mem *)ud)->cap;
}

size_t
lvfu_mem_used(lua_State *L)
{
    void *ud;

    if (lua_getallocf(L, &ud) != counting_alloc) {
        return (size_t)lua_gc(L, LUA_GCCOUNT, 0) * 1024;
    }
    return ((struct lvfu_mem *)ud)->used;
}

void
lvfu_closestate(lua_State *L)
{
    void *ud;
    lua_Alloc f;

    if (L == NULL) {
        return;
    }
    f = lua_getallocf(L, &ud);
    lua_close(L);
    if (f == counting_alloc) {
        free(ud);
    }
}

static bool
past(const struct timespec *t)
{
    struct timespec now;

    clock_gettime(CLOCK_MONOTONIC, &now);
    return now.tv_sec > t->tv_sec ||
           (now.tv_sec == t->tv_sec && now.tv_nsec >= t->tv_nsec);
}

static void
set_deadline(struct lvfu_rt *rt)
{
    clock_gettime(CLOCK_MONOTONIC, &rt->deadline);
    rt->deadline.tv_sec += rt->call_budget_ms / 1000;
    rt->deadline.tv_nsec += (long)(rt->call_budget_ms % 1000) * 1000000L;
    if (rt->deadline.tv_nsec >= 1000000000L) {
        rt->deadline.tv_sec++;
        rt->deadline.tv_nsec -= 1000000000L;
    }
    rt->deadline_set = true;
}

/*
 * The clock starts at the hook's first run inside a handler, at most
 * HOOK_COUNT instructions after its start: short handlers, the common case,
 * never read the clock at all.
 */
static int
budget_error(lua_State *L, struct lvfu_rt *rt)
{
    return luaL_error(L, "handler exceeded its time budget of %d ms",
                      (int)rt->call_budget_ms);
}

static void
budget_hook(lua_State *L, lua_Debug *ar)
{
    struct lvfu_rt *rt = lvfu_rt(L);

    if (!rt->in_handler) {
        return;
    }
    if (rt->budget_hit) {
        budget_error(L, rt);    /* every thread, at its next check */
    } else if (!rt->deadline_set) {
        set_deadline(rt);
    } else if (past(&rt->deadline)) {
        /* Sticky until the handler returns: the sandbox's pcall,
         * coroutine.resume and coroutine.close rethrow it, and refuse to
         * start anything, once the budget is gone. */
        rt->budget_hit = true;
        budget_error(L, rt);
    }
}

void
lvfu_budget_hook_install(lua_State *L)
{
    if (lua_gethook(L) != budget_hook) {
        lua_sethook(L, budget_hook, LUA_MASKCOUNT, HOOK_COUNT);
    }
}

int
lvfu_traceback(lua_State *L)
{
    const char *msg = lua_tostring(L, 1);

    if (msg == NULL) {
        if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING) {
            return 1;
        }
        msg = lua_pushfstring(L, "(error object is a %s value)",
                              luaL_typename(L, 1));
    }
    luaL_traceback(L, L, msg, 1);
    return 1;
}

void
lvfu_errorf(struct lvfu_dev *dev, const char *fmt, ...)
{
    char buf[4096];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    if (dev != NULL && dev->ctx != NULL) {
        vfu_log(dev->ctx, LOG_ERR, "%s", buf);
    } else {
        fprintf(stderr, "vfu: %s\n", buf);
    }
}

/* The protected call itself, msgh being the traceback handler's index. */
static int
call_budget(lua_State *L, struct lvfu_rt *rt, int nargs, int nres,
            unsigned budget_ms, int msgh)
{
    /* budget 0: unbudgeted (trusted top-level code) */
    bool outer = !rt->in_handler && budget_ms != 0;
    int status;

    if (outer) {
        rt->call_budget_ms = budget_ms;
        rt->deadline_set = false;
        rt->in_handler = true;
        rt->budget_hit = false;
    }
    lvfu_budget_hook_install(L);
    status = lua_pcall(L, nargs, nres, msgh);
    if (outer) {
        rt->in_handler = false;
        rt->budget_hit = false;
    }
    return status;
}

static int
pcall_deadline(lua_State *L, struct lvfu_rt *rt, int nargs, int nres,
               unsigned budget_ms, const char **errmsg)
{
    int base = lua_gettop(L) - nargs;
    int status;

    lua_pushcfunction(L, lvfu_traceback);
    lua_insert(L, base);
    status = call_budget(L, rt, nargs, nres, budget_ms, base);
    lua_remove(L, base);
    if (status != LUA_OK) {
        *errmsg = lvfu_errmsg(L, status);
        return -1;
    }
    return 0;
}

const char *
lvfu_errmsg(lua_State *L, int status)
{
    /* lua_tostring would convert a number in place, which allocates
     * outside any protected call: only read what already is a string. */
    const char *msg = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1)
                                                     : NULL;

    if (msg == NULL) {
        msg = status == LUA_ERRMEM ? "not enough memory"
                                   : "(error object is not a string)";
    }
    return msg;
}

/*
 * The body of every entry: runs protected, so building the arguments and
 * taking the results may fail (out of memory, bad result) as a Lua error.
 * Stack: the entry (light userdata), then the caller's stack arguments.
 */
static int
entry_body(lua_State *L)
{
    struct lvfu_entry *e = lua_touserdata(L, 1);
    int nstack = lua_gettop(L) - 1;
    int n = 0;

    if (e->ref != LUA_NOREF) {
        lua_rawgeti(L, LUA_REGISTRYINDEX, e->ref);
        lua_replace(L, 1);
    } else {
        lua_remove(L, 1);   /* push pushes the function too */
    }
    if (e->push != NULL) {
        n = e->push(L, e->arg);
    }
    lua_call(L, nstack + n, e->nres);
    if (e->take != NULL && e->take(L, e->arg) < 0) {
        e->rejected = true;
    }
    return 0;
}

int
lvfu_enter(lua_State *L, struct lvfu_dev *dev, struct lvfu_entry *e,
           int nstack)
{
    struct lvfu_rt *rt = dev != NULL ? dev->rt : lvfu_rt(L);
    int base = lua_gettop(L) - nstack;
    int status;

    e->rejected = false;
    if (!lua_checkstack(L, 4)) {
        lua_settop(L, base);
        errno = EIO;
        return -1;
    }
    /* light C functions and a light userdata: nothing here allocates */
    lua_pushcfunction(L, lvfu_traceback);
    lua_pushcfunction(L, entry_body);
    lua_pushlightuserdata(L, e);
    lua_rotate(L, base + 1, 3);
    status = call_budget(L, rt, 1 + nstack, 0, rt->budget_ms, base + 1);
    if (status != LUA_OK) {
        lvfu_errorf(dev, "%s%s%s handler failed: %s", e->who ? e->who : "",
                    e->who ? " " : "", e->what, lvfu_errmsg(L, status));
        lua_settop(L, base);
        errno = EIO;
        return -1;
    }
    lua_settop(L, base);
    if (e->rejected) {
        errno = EIO;
        return -1;
    }
    return 0;
}

/* For top-level code: the message stays on the stack on error. */
int
lvfu_pcall_budget(lua_State *L, int nargs, int nres, unsigned budget_ms)
{
    const char *msg;

    return pcall_deadline(L, lvfu_rt(L), nargs, nres, budget_ms, &msg) < 0
           ? -1 : 0;
}

/* getmetatable() on the module's objects gives their type name, not the
 * metatable: scripts must not change how C objects behave (a Lua __gc
 * put there would run with hooks off, beyond any budget). */
void
lvfu_hide_metatable(lua_State *L, int idx)
{
    idx = lua_absindex(L, idx);
    lua_getfield(L, idx, "__name");
    lua_setfield(L, idx, "__metatable");
}

void
lvfu_register_type(lua_State *L, const char *name, const luaL_Reg *meta,
                   const luaL_Reg *methods)
{
    if (luaL_newmetatable(L, name)) {
        luaL_setfuncs(L, meta, 0);
        lua_newtable(L);        /* luaL_newlib() wants an array, not a pointer */
        luaL_setfuncs(L, methods, 0);
        lua_setfield(L, -2, "__index");
        lvfu_hide_metatable(L, -1);
    }
    lua_pop(L, 1);
}

int
lvfu_fail(lua_State *L, int err, const char *what)
{
    luaL_pushfail(L);
    lua_pushfstring(L, "%s: %s", what, strerror(err));
    lua_pushinteger(L, err);
    return 3;
}

int
lvfu_optflag(lua_State *L, int idx, const char *field, bool def)
{
    bool v = def;

    if (lua_getfield(L, idx, field) != LUA_TNIL) {
        v = lua_toboolean(L, -1);
    }
    lua_pop(L, 1);
    return v;
}

/* --- the sandbox ------------------------------------------------------- */

static int
finish_pcall(lua_State *L, int status, lua_KContext extra)
{
    if (status != LUA_OK && status != LUA_YIELD) {
        if (lvfu_rt(L)->budget_hit) {
            return lua_error(L);    /* a runaway handler must not be caught */
        }
        lua_pushboolean(L, 0);
        lua_pushvalue(L, -2);
        return 2;
    }
    return lua_gettop(L) - (int)extra;
}

static int
sb_pcall(lua_State *L)
{
    struct lvfu_rt *rt = lvfu_rt(L);
    int status;

    if (rt->budget_hit) {
        return budget_error(L, rt);
    }
    luaL_checkany(L, 1);
    lua_pushboolean(L, 1);
    lua_insert(L, 1);
    status = lua_pcallk(L, lua_gettop(L) - 2, LUA_MULTRET, 0, 0, finish_pcall);
    return finish_pcall(L, status, 0);
}

static int
sb_xpcall(lua_State *L)
{
    struct lvfu_rt *rt = lvfu_rt(L);
    int n = lua_gettop(L);
    int status;

    if (rt->budget_hit) {
        return budget_error(L, rt);
    }
    luaL_checktype(L, 2, LUA_TFUNCTION);
    lua_pushboolean(L, 1);
    lua_pushvalue(L, 1);
    lua_rotate(L, 3, 2);
    status = lua_pcallk(L, n - 2, LUA_MULTRET, 2, 2, finish_pcall);
    return finish_pcall(L, status, 2);
}

/*
 * coroutine.resume and coroutine.close catch errors like pcall does: a
 * coroutine that ran out of budget must not let its resumer carry on (each
 * level of nested coroutines would multiply the time). The real function
 * is the closure's upvalue.
 */
static int
sb_co_call(lua_State *L)
{
    struct lvfu_rt *rt = lvfu_rt(L);
    int n = lua_gettop(L);

    if (rt->budget_hit) {
        return budget_error(L, rt);
    }
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, n, LUA_MULTRET);
    if (rt->budget_hit) {
        if (!lua_toboolean(L, 1) && lua_gettop(L) >= 2) {
            lua_pushvalue(L, 2);
            return lua_error(L);        /* the budget error itself */
        }
        return budget_error(L, rt);
    }
    return lua_gettop(L);
}

/* coroutine.create: the budget hook on the new thread too (new threads
 * take their creator's hook; this makes sure of it). */
static int
sb_co_create(lua_State *L)
{
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, lua_gettop(L) - 1, 1);
    if (lua_type(L, -1) == LUA_TTHREAD) {
        lvfu_budget_hook_install(lua_tothread(L, -1));
    }
    return 1;
}

/*
 * Finalizers run with hooks off, so a __gc that never returns would hang
 * the server beyond any budget: a sandboxed script cannot mark objects for
 * finalization. Lua marks an object only if its metatable has a __gc
 * field when setmetatable runs, so refusing that is enough (adding __gc
 * to the metatable later does not mark it).
 */
static int
sb_setmetatable(lua_State *L)
{
    if (lua_type(L, 2) == LUA_TTABLE) {
        lua_pushliteral(L, "__gc");
        if (lua_rawget(L, 2) != LUA_TNIL) {
            return luaL_error(L, "__gc metamethods are not available in the "
                              "sandbox (run with --unsafe)");
        }
        lua_pop(L, 1);
    }
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, lua_gettop(L) - 1, 1);
    return 1;
}

/* Replace lib.name (lib at idx) by f with the old function as upvalue. */
static void
wrap_field(lua_State *L, int idx, const char *name, lua_CFunction f)
{
    idx = lua_absindex(L, idx);
    lua_getfield(L, idx, name);
    lua_pushcclosure(L, f, 1);
    lua_setfield(L, idx, name);
}

/* load() of text only: precompiled chunks can crash the VM. The real
 * load is the closure's upvalue, out of the script's reach. */
static int
sb_load(lua_State *L)
{
    lua_settop(L, 4);
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_pushliteral(L, "t");
    lua_replace(L, 4);
    lua_call(L, 4, LUA_MULTRET);
    return lua_gettop(L);
}

static int
sb_require(lua_State *L)
{
    const char *name = luaL_checkstring(L, 1);

    if (strcmp(name, "vfu") == 0) {
        lua_getglobal(L, "vfu");
        return 1;
    }
    if (strcmp(name, "regmap") == 0 || strcmp(name, "vfu.regmap") == 0) {
        return lvfu_load_helper(L, "regmap");
    }
    if (strcmp(name, "state") == 0 || strcmp(name, "vfu.state") == 0) {
        return lvfu_load_helper(L, "state");
    }
    return luaL_error(L, "module '%s' is not available in the sandbox "
                      "(run with --unsafe)", name);
}

static int
preload_helper(lua_State *L)
{
    const char *name = luaL_checkstring(L, 1);
    const char *dot = strrchr(name, '.');

    return lvfu_load_helper(L, dot != NULL ? dot + 1 : name);
}

void
lvfu_open_sandbox(lua_State *L, bool unsafe)
{
    static const char *const drop_base[] = { "dofile", "loadfile", NULL };
    static const char *const keep_os[] = { "time", "clock", "date",
                                           "difftime", NULL };
    static const luaL_Reg libs[] = {
        { LUA_GNAME, luaopen_base },
        { LUA_STRLIBNAME, luaopen_string },
        { LUA_TABLIBNAME, luaopen_table },
        { LUA_MATHLIBNAME, luaopen_math },
        { LUA_UTF8LIBNAME, luaopen_utf8 },
        { LUA_COLIBNAME, luaopen_coroutine },
        { NULL, NULL }
    };

    lvfu_rt(L);
    if (unsafe) {
        luaL_openlibs(L);
        luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
        lua_pushcfunction(L, luaopen_vfu);
        lua_setfield(L, -2, "vfu");
        for (int i = 0; i < 2; i++) {
            const char *n[] = { "regmap", "state" };
            lua_pushcfunction(L, preload_helper);
            lua_setfield(L, -2, n[i]);
        }
        lua_pop(L, 1);
        luaL_requiref(L, "vfu", luaopen_vfu, 1);
        lua_pop(L, 1);
    } else {
        for (const luaL_Reg *l = libs; l->func != NULL; l++) {
            luaL_requiref(L, l->name, l->func, 1);
            lua_pop(L, 1);
        }
        luaL_requiref(L, LUA_OSLIBNAME, luaopen_os, 0);
        lua_newtable(L);
        for (int i = 0; keep_os[i] != NULL; i++) {
            lua_getfield(L, -2, keep_os[i]);
            lua_setfield(L, -2, keep_os[i]);
        }
        lua_setglobal(L, "os");
        lua_pop(L, 1);
        for (int i = 0; drop_base[i] != NULL; i++) {
            lua_pushnil(L);
            lua_setglobal(L, drop_base[i]);
        }
        luaL_requiref(L, "vfu", luaopen_vfu, 1);
        lua_pop(L, 1);
        lua_getglobal(L, "load");
        lua_pushcclosure(L, sb_load, 1);
        lua_setglobal(L, "load");
        lua_pushcfunction(L, sb_require);
        lua_setglobal(L, "require");
        lua_pushglobaltable(L);
        wrap_field(L, -1, "setmetatable", sb_setmetatable);
        lua_pop(L, 1);
        lua_getglobal(L, "coroutine");
        wrap_field(L, -1, "resume", sb_co_call);
        wrap_field(L, -1, "close", sb_co_call);
        wrap_field(L, -1, "create", sb_co_create);
        lua_pop(L, 1);
        /* a device has no business opening other sockets; test and client
         * scripts are trusted and run with --unsafe */
        lua_getglobal(L, "vfu");
        lua_pushnil(L);
        lua_setfield(L, -2, "connect");
        lua_pop(L, 1);
    }
    lua_pushcfunction(L, sb_pcall);
    lua_setglobal(L, "pcall");
    lua_pushcfunction(L, sb_xpcall);
    lua_setglobal(L, "xpcall");
    lvfu_budget_hook_install(L);
}
