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

/* Arm a new timer object (pushed) calling the function at fn: first after
 * first_ms, then every period_ms (0: once). NULL with errno if it cannot
 * be armed (the object pushed stays idle). */
static struct lvfu_timer *
timer_arm_new(lua_State *L, int fn, uint64_t first_ms, uint64_t period_ms)
{
    struct lvfu_rt *rt = lvfu_rt(L);
    struct itimerspec its;
    struct lvfu_timer *t;

    fn = lua_absindex(L, fn);
    t = lua_newuserdatauv(L, sizeof(*t), 0);
    memset(t, 0, sizeof(*t));
    t->fd = -1;
    t->fn_ref = t->self_ref = LUA_NOREF;
    luaL_setmetatable(L, LVFU_TIMER_MT);
    if (nr_armed(rt) >= MAX_TIMERS) {
        errno = EMFILE;
        return NULL;
    }
    t->fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
    if (t->fd < 0) {
        return NULL;
    }
    memset(&its, 0, sizeof(its));
    its.it_value.tv_sec = (time_t)(first_ms / 1000);
    its.it_value.tv_nsec = (long)(first_ms % 1000) * 1000000L;
    its.it_interval.tv_sec = (time_t)(period_ms / 1000);
    its.it_interval.tv_nsec = (long)(period_ms % 1000) * 1000000L;
    if (timerfd_settime(t->fd, 0, &its, NULL) < 0) {
        return NULL;
    }
    t->periodic = period_ms != 0;
    lua_pushvalue(L, fn);
    t->fn_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_pushvalue(L, -1);
    t->self_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    t->armed = true;
    t->next = rt->timers;
    rt->timers = t;
    return t;
}

/* vfu.timer(ms, fn [, periodic]) */
int
lvfu_timer_new(lua_State *L)
{
    lua_Integer ms = luaL_checkinteger(L, 1);
    bool periodic = lua_toboolean(L, 3);

    luaL_argcheck(L, ms > 0 && ms <= 86400000, 1, "1 ms to 1 day expected");
    luaL_checktype(L, 2, LUA_TFUNCTION);
    if (timer_arm_new(L, 2, (uint64_t)ms, periodic ? (uint64_t)ms : 0) == NULL) {
        return lvfu_fail(L, errno, "timer");
    }
    return 1;
}

/* --- carried over by a reload ------------------------------------------ */

static uint64_t
ms_up(const struct timespec *ts)
{
    return (uint64_t)ts->tv_sec * 1000 +
           ((uint64_t)ts->tv_nsec + 999999) / 1000000;
}

bool
lvfu_timer_get(lua_State *L, int i, struct lvfu_timer_info *info)
{
    struct lvfu_timer *t = lvfu_rt(L)->timers;
    struct itimerspec its;

    while (t != NULL && i-- > 0) {
        t = t->next;
    }
    if (t == NULL) {
        return false;
    }
    memset(&its, 0, sizeof(its));
    timerfd_gettime(t->fd, &its);
    info->remaining_ms = ms_up(&its.it_value);
    /* expired but not yet fired: it fires as soon as it can */
    if (info->remaining_ms == 0) {
        info->remaining_ms = 1;
    }
    info->period_ms = ms_up(&its.it_interval);
    lua_rawgeti(L, LUA_REGISTRYINDEX, t->fn_ref);
    return true;
}

static int
arm_body(lua_State *L)
{
    const struct lvfu_timer_info *info = lua_touserdata(L, 2);

    if (timer_arm_new(L, 1, info->remaining_ms, info->period_ms) == NULL) {
        return luaL_error(L, "timer: %s", strerror(errno));
    }
    return 0;
}

int
lvfu_timer_arm(lua_State *L, const struct lvfu_timer_info *info)
{
    if (!lua_checkstack(L, 4)) {
        lua_pop(L, 1);
        errno = ENOMEM;
        return -1;
    }
    lua_pushcfunction(L, arm_body);
    lua_insert(L, -2);
    lua_pushlightuserdata(L, (void *)info);
    if (lua_pcall(L, 2, 0, 0) != LUA_OK) {
        lua_pop(L, 1);
        errno = EMFILE;
        return -1;
    }
    return 0;
}

bool
lvfu_timer_calls(lua_State *L, int idx)
{
    idx = lua_absindex(L, idx);
    for (struct lvfu_timer *t = lvfu_rt(L)->timers; t != NULL; t = t->next) {
        bool same;

        lua_rawgeti(L, LUA_REGISTRYINDEX, t->fn_ref);
        same = lua_rawequal(L, -1, idx);
        lua_pop(L, 1);
        if (same) {
            return true;
        }
    }
    return false;
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
loop(struct lvfu_serve *s)
{
    struct pollfd fds[MAX_TIMERS + 2 + LVFU_SERVE_FDS];
    struct lvfu_timer *ts[MAX_TIMERS];
    lua_State *rt_of = NULL;
    struct lvfu_rt *rt = NULL;

    while (!s->dev->stop && !s->dev->closed) {
        lua_State *L = s->L;
        struct lvfu_dev *dev = s->dev;
        bool replaced = false;
        int n = 0, vfd[2];

        if (rt_of != L) {
            /* a registry lookup: once per state, not per message */
            rt = lvfu_rt(L);
            rt_of = L;
        }
        for (struct lvfu_timer *t = rt->timers; t && n < MAX_TIMERS;
             t = t->next) {
            ts[n] = t;
            fds[n].fd = t->fd;
            fds[n].events = POLLIN;
            fds[n].revents = 0;
            n++;
        }
        /* The socket and the kick eventfd themselves: cheaper per
         * message than the epoll set of vfu_get_poll_fd(). */
        if (vfu_get_poll_fds(dev->ctx, vfd) < 0) {
            return -1;
        }
        for (int k = 0; k < 2 + LVFU_SERVE_FDS; k++) {
            fds[n + k].fd = k < 2 ? vfd[k] : s->fds[k - 2];
            fds[n + k].events = POLLIN;
            fds[n + k].revents = 0;
        }
        if (poll(fds, (nfds_t)(n + 2 + LVFU_SERVE_FDS), -1) < 0) {
            if (errno == EINTR) {
                continue;
            }
            return -1;
        }
        /* the runner's descriptors first: a reload happens here, between
         * two messages, never inside a handler */
        for (int k = 0; k < LVFU_SERVE_FDS; k++) {
            if (fds[n + 2 + k].revents == 0) {
                continue;
            }
            if (s->ready == NULL || s->ready(s, s->fds[k])) {
                return 0;
            }
            replaced = replaced || s->L != L || s->dev != dev;
        }
        if (replaced) {
            continue;   /* the old state's timers are gone: poll afresh */
        }
        if (fds[n].revents != 0 || fds[n + 1].revents != 0) {
            serve_client(dev);
        }
        fire_timers(L, dev, fds, ts, n);
    }
    return 0;
}

int
lvfu_loop_serve(struct lvfu_serve *s)
{
    struct lvfu_rt *rt = lvfu_rt(s->L);
    int rc;

    if (s->dev->ctx == NULL) {
        errno = EINVAL;
        return -1;
    }
    /* Only Lua code runs below a loop: handlers and timers. One of them
     * running another loop would re-enter vfu_run_ctx() and its buffers. */
    if (rt->loops > 0 || s->dev->running) {
        errno = EDEADLK;
        return -1;
    }
    rt->loops++;
    s->dev->running = true;
    s->dev->L = s->L;
    s->dev->stop = false;
    rc = loop(s);
    /* a reload may have replaced both */
    s->dev->running = false;
    lvfu_rt(s->L)->loops--;
    return rc;
}

int
lvfu_loop_run(lua_State *L, struct lvfu_dev *dev, int stop_fd)
{
    struct lvfu_serve s = { .L = L, .dev = dev, .fds = { stop_fd, -1, -1 } };

    return lvfu_loop_serve(&s);
}

void
lvfu_loop_enter(lua_State *L)
{
    lvfu_rt(L)->loops++;
}

void
lvfu_loop_handover(lua_State *oldL, struct lvfu_dev *old, lua_State *newL,
                   struct lvfu_dev *newdev)
{
    /* newL was marked by lvfu_loop_enter() before its script ran */
    lvfu_rt(oldL)->loops--;
    old->running = false;
    newdev->running = true;
    newdev->L = newL;
    newdev->stop = false;
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
    lvfu_register_type(L, LVFU_TIMER_MT, timer_meta, timer_methods);
}
