/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 the vfu authors. */

/*
 * One poll loop per device: the vfu socket (listening or connected) and
 * its kick eventfd, the armed timers, and an optional stop descriptor (the
 * runner's signalfd).
 * A client leaving is not an error: the device keeps its state and waits
 * for the next one.
 */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "lvfu.h"
#include "vfu.h"

#define MAX_TIMERS 64

struct lvfu_timer {
    struct lvfu_timer *next;
    int fd;
    int fn_ref;
    int self_ref;               /* pins the object while armed */
    bool periodic;
    bool armed;
};

static int
nr_armed(struct lvfu_rt *rt)
{
    int n = 0;

    for (struct lvfu_timer *t = rt->timers; t != NULL; t = t->next) {
        n++;
    }
    return n;
}

static void
timer_disarm(lua_State *L, struct lvfu_timer *t)
{
    struct lvfu_rt *rt = lvfu_rt(L);

    if (!t->armed) {
        return;
    }
    for (struct lvfu_timer **p = &rt->timers; *p != NULL; p = &(*p)->next) {
        if (*p == t) {
            *p = t->next;
            break;
        }
    }
    t->armed = false;
    t->next = NULL;
    /* A timer is never armed again: its fd goes now, not when the object
     * is collected (a script keeping cancelled timers must not use up the
     * fds the next client needs). */
    if (t->fd >= 0) {
        close(t->fd);
        t->fd = -1;
    }
    lvfu_unref(L, &t->self_ref);
}

static int
timer_gc(lua_State *L)
{
    struct lvfu_timer *t = luaL_checkudata(L, 1, LVFU_TIMER_MT);

    timer_disarm(L, t);
    lvfu_unref(L, &t->fn_ref);
    if (t->fd >= 0) {
        close(t->fd);
        t->fd = -1;
    }
    return 0;
}

static int
timer_active(lua_State *L)
{
    struct lvfu_timer *t = luaL_checkudata(L, 1, LVFU_TIMER_MT);

    lua_pushboolean(L, t->armed);
    return 1;
}

static int
timer_cancel(lua_State *L)
{
    struct lvfu_timer *t = luaL_checkudata(L, 1, LVFU_TIMER_MT);

    timer_disarm(L, t);
    return 0;
}

static int
timer_tostring(lua_State *L)
{
    struct lvfu_timer *t = luaL_checkudata(L, 1, LVFU_TIMER_MT);

    lua_pushfstring(L, "vfu.timer (%s%s): %p", t->periodic ? "periodic, " : "",
                    t->armed ? "armed" : "idle", (void *)t);
    return 1;
}

/* vfu.timer(ms, fn [, periodic]) */
int
lvfu_timer_new(lua_State *L)
{
    lua_Integer ms = luaL_checkinteger(L, 1);
    bool periodic = lua_toboolean(L, 3);
    struct lvfu_rt *rt = lvfu_rt(L);
    struct itimerspec its;
    struct lvfu_timer *t;

    luaL_argcheck(L, ms > 0 && ms <= 86400000, 1, "1 ms to 1 day expected");
    luaL_checktype(L, 2, LUA_TFUNCTION);
    t = lua_newuserdatauv(L, sizeof(*t), 0);
    memset(t, 0, sizeof(*t));
    t->fd = -1;
    t->fn_ref = t->self_ref = LUA_NOREF;
    luaL_setmetatable(L, LVFU_TIMER_MT);
    if (nr_armed(rt) >= MAX_TIMERS) {
        return lvfu_fail(L, EMFILE, "timer");
    }
    t->fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
    if (t->fd < 0) {
        return lvfu_fail(L, errno, "timer");
    }
    memset(&its, 0, sizeof(its));
    its.it_value.tv_sec = ms / 1000;
    its.it_value.tv_nsec = (ms % 1000) * 1000000L;
    if (periodic) {
        its.it_interval = its.it_value;
    }
    if (timerfd_settime(t->fd, 0, &its, NULL) < 0) {
        return lvfu_fail(L, errno, "timer");
    }
    t->periodic = periodic;
    lua_pushvalue(L, 2);
    t->fn_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_pushvalue(L, -1);
    t->self_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    t->armed = true;
    t->next = rt->timers;
    rt->timers = t;
    return 1;
}

static void
fire_timers(lua_State *L, struct lvfu_dev *dev, struct pollfd *fds,
            struct lvfu_timer **ts, int n)
{
    int top = lua_gettop(L);

    if (!lua_checkstack(L, n + 4)) {
        return;         /* no room to pin them: they fire next time */
    }
    /* Pin every fired timer first: a handler may cancel another. */
    for (int i = 0; i < n; i++) {
        if (fds[i].revents & POLLIN) {
            lua_rawgeti(L, LUA_REGISTRYINDEX, ts[i]->self_ref);
        }
    }
    for (int i = 0, slot = top + 1; i < n; i++) {
        struct lvfu_timer *t = ts[i];
        uint64_t ticks;

        if (!(fds[i].revents & POLLIN)) {
            continue;
        }
        slot++;
        if (!t->armed || read(t->fd, &ticks, sizeof(ticks)) != sizeof(ticks)) {
            continue;
        }
        if (!t->periodic) {
            timer_disarm(L, t);
        }
        struct lvfu_entry e = { .what = "timer", .ref = t->fn_ref };

        lua_pushvalue(L, slot - 1);     /* the timer, pinned above */
        lvfu_enter(L, dev, &e, 1);
    }
    lua_settop(L, top);
}

static void
serve_client(struct lvfu_dev *dev)
{
    if (!dev->attached) {
        if (vfu_attach_ctx(dev->ctx) == 0) {
            dev->attached = true;
            vfu_log(dev->ctx, LOG_INFO, "client attached");
        } else if (errno != EAGAIN && errno != EWOULDBLOCK) {
            vfu_log(dev->ctx, LOG_ERR, "attach failed: %s", strerror(errno));
        }
        return;
    }
    if (vfu_run_ctx(dev->ctx) < 0) {
        if (errno == ENOTCONN) {
            dev->attached = false;
            vfu_log(dev->ctx, LOG_INFO, "client gone; waiting for the next");
        } else if (errno != EBUSY && errno != EAGAIN) {
            vfu_log(dev->ctx, LOG_ERR, "serving: %s", strerror(errno));
        }
    }
}

static int
loop(lua_State *L, struct lvfu_rt *rt, struct lvfu_dev *dev, int stop_fd)
{
    struct pollfd fds[MAX_TIMERS + 3];
    struct lvfu_timer *ts[MAX_TIMERS];

    while (!dev->stop && !dev->closed) {
        int n = 0;

        for (struct lvfu_timer *t = rt->timers; t && n < MAX_TIMERS; t = t->next) {
            ts[n] = t;
            fds[n].fd = t->fd;
            fds[n].events = POLLIN;
            fds[n].revents = 0;
            n++;
        }
        /* The socket and the kick eventfd themselves: cheaper per
         * message than the epoll set of vfu_get_poll_fd(). */
        int vfd[2];
        if (vfu_get_poll_fds(dev->ctx, vfd) < 0) {
            return -1;
        }
        for (int k = 0; k < 3; k++) {
            fds[n + k].fd = k < 2 ? vfd[k] : stop_fd;
            fds[n + k].events = POLLIN;
            fds[n + k].revents = 0;
        }
        if (poll(fds, (nfds_t)n + 3, -1) < 0) {
            if (errno == EINTR) {
                continue;
            }
            return -1;
        }
        if (fds[n + 2].revents != 0) {
            break;
        }
        if (fds[n].revents != 0 || fds[n + 1].revents != 0) {
            serve_client(dev);
        }
        fire_timers(L, dev, fds, ts, n);
    }
    return 0;
}

int
lvfu_loop_run(lua_State *L, struct lvfu_dev *dev, int stop_fd)
{
    struct lvfu_rt *rt = lvfu_rt(L);
    int rc;

    if (dev->ctx == NULL) {
        errno = EINVAL;
        return -1;
    }
    /* Only Lua code runs below a loop: handlers and timers. One of them
     * running another loop would re-enter vfu_run_ctx() and its buffers. */
    if (rt->loops > 0 || dev->running) {
        errno = EDEADLK;
        return -1;
    }
    rt->loops++;
    dev->running = true;
    dev->L = L;
    dev->stop = false;
    rc = loop(L, rt, dev, stop_fd);
    dev->running = false;
    rt->loops--;
    return rc;
}

static const luaL_Reg timer_meta[] = {
    { "__gc", timer_gc },
    { "__close", timer_gc },
    { "__tostring", timer_tostring },
    { "__index", NULL },
    { NULL, NULL }
};

static const luaL_Reg timer_methods[] = {
    { "cancel", timer_cancel },
    { "active", timer_active },
    { NULL, NULL }
};

void
lvfu_timer_register(lua_State *L)
{
    if (luaL_newmetatable(L, LVFU_TIMER_MT)) {
        luaL_setfuncs(L, timer_meta, 0);
        luaL_newlib(L, timer_methods);
        lua_setfield(L, -2, "__index");
        lvfu_hide_metatable(L, -1);
    }
    lua_pop(L, 1);
}
