/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 the vfu authors. */

/*
 * vfu-lua: serve a device written in Lua.
 *
 *   vfu-lua [options] SCRIPT [SOCKET] [ARGS...]
 *
 * The script runs in a sandbox and returns a vfu.device; the runner serves
 * it on SOCKET, waits for the next client whenever one leaves (the device
 * keeps its state), and stops on SIGINT/SIGTERM, removing the socket. A
 * script that returns nothing is simply run (client scripts and tests).
 * Signals arrive through a signalfd polled with the device, so no handler
 * ever interrupts Lua.
 *
 * SIGHUP, and with --watch a change of SCRIPT on disk, reload the script
 * while the client stays connected (lvfu_reload): it runs in a fresh Lua
 * state and takes over only if it loads and declares what the client
 * knows; otherwise the running version keeps serving.
 */
#include <errno.h>
#include <getopt.h>
#include <libgen.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "lvfu.h"

/* a burst of events from one save becomes one reload */
#define SETTLE_MS 50

struct options {
    const char *script;
    const char *sock;
    const char *trace;
    bool check, unsafe, watch;
    int verbose;
    unsigned budget_ms;
    size_t mem_cap;
};

/* What a reload needs to run the script again as it was run first. */
struct runner {
    struct options *o;
    int argc, script_idx;
    char **argv;
    FILE *trace;
    lua_State *L;               /* the state serving now */
    int sfd, ifd, tfd;          /* signalfd, inotify, settle timerfd */
    char *dir, *base;           /* the script's folder and name */
    unsigned reloads;
};

static void
usage(FILE *f)
{
    fprintf(f,
        "usage: vfu-lua [options] SCRIPT [SOCKET] [ARGS...]\n"
        "  -v, --verbose       more logging (twice: debug)\n"
        "  --trace FILE        one JSON line per device event\n"
        "  --check             validate SCRIPT, print the device, don't serve\n"
        "  --watch             reload SCRIPT when it changes (SIGHUP does too)\n"
        "  --unsafe            give the script io, os, package and debug\n"
        "  --budget MS         time budget of one handler call (default 100)\n"
        "  --memory MIB        memory cap of the Lua state (default 64)\n");
}

static int
parse_args(int argc, char **argv, struct options *o)
{
    static const struct option longopts[] = {
        { "verbose", no_argument, NULL, 'v' },
        { "trace", required_argument, NULL, 't' },
        { "check", no_argument, NULL, 'c' },
        { "watch", no_argument, NULL, 'w' },
        { "unsafe", no_argument, NULL, 'u' },
        { "budget", required_argument, NULL, 'b' },
        { "memory", required_argument, NULL, 'm' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 }
    };
    int c;

    o->budget_ms = 100;
    o->mem_cap = (size_t)64 << 20;
    /* '+': options end at SCRIPT; the rest belongs to the script */
    while ((c = getopt_long(argc, argv, "+vh", longopts, NULL)) != -1) {
        char *end;
        unsigned long v;

        switch (c) {
        case 'v': o->verbose++; break;
        case 't': o->trace = optarg; break;
        case 'c': o->check = true; break;
        case 'w': o->watch = true; break;
        case 'u': o->unsafe = true; break;
        case 'b':
        case 'm':
            errno = 0;
            v = strtoul(optarg, &end, 10);
            if (errno != 0 || *end != '\0' || v == 0 || v > 1000000) {
                fprintf(stderr, "vfu-lua: bad --%s value '%s'\n",
                        c == 'b' ? "budget" : "memory", optarg);
                return -1;
            }
            if (c == 'b') {
                o->budget_ms = (unsigned)v;
            } else {
                o->mem_cap = (size_t)v << 20;
            }
            break;
        case 'h': usage(stdout); exit(0);
        default: usage(stderr); return -1;
        }
    }
    if (optind >= argc) {
        usage(stderr);
        return -1;
    }
    o->script = argv[optind];
    o->sock = optind + 1 < argc ? argv[optind + 1] : NULL;
    return optind;
}

/* arg[0] = SCRIPT, arg[1..] = what follows it, as lua(1) does. */
static void
set_arg(lua_State *L, int argc, char **argv, int script_idx)
{
    lua_createtable(L, argc - script_idx, 1);
    for (int i = script_idx; i < argc; i++) {
        lua_pushstring(L, argv[i]);
        lua_rawseti(L, -2, i - script_idx);
    }
    lua_setglobal(L, "arg");
}

/*
 * Run the script in L, a fresh state: its result is left on the stack.
 * 0 and *dev (NULL: the script returned no device), or -1 with why.
 */
static int
run_script(struct runner *r, lua_State *L, struct lvfu_dev **dev, char *why,
           size_t len)
{
    struct options *o = r->o;
    /* Top-level code declares and builds tables: allow it more than a
     * handler, but not forever, unless the script is trusted (--unsafe
     * scripts may be whole test programs). */
    unsigned load_budget = o->unsafe ? 0
                         : o->budget_ms < 2000 ? 2000 : o->budget_ms;
    struct lvfu_rt *rt;

    *dev = NULL;
    lvfu_rt(L)->trace = r->trace;
    lvfu_open_sandbox(L, o->unsafe);
    rt = lvfu_rt(L);
    rt->verbose = o->verbose;
    rt->budget_ms = o->budget_ms;
    set_arg(L, r->argc, r->argv, r->script_idx);
    if (luaL_loadfilex(L, o->script, "t") != LUA_OK ||
        lvfu_pcall_budget(L, 0, 1, load_budget) < 0) {
        snprintf(why, len, "%s", lua_tostring(L, -1));
        return -1;
    }
    *dev = luaL_testudata(L, -1, LVFU_DEVICE_MT);
    if (*dev == NULL || (*dev)->closed) {
        *dev = NULL;
        if (!lua_isnil(L, -1) && !(lua_isboolean(L, -1) && lua_toboolean(L, -1))) {
            snprintf(why, len, "%s returned a %s, not a vfu.device", o->script,
                     luaL_typename(L, -1));
            return -1;
        }
    }
    return 0;
}

static double
ms_since(const struct timespec *t0)
{
    struct timespec t1;

    clock_gettime(CLOCK_MONOTONIC, &t1);
    return (double)(t1.tv_sec - t0->tv_sec) * 1e3 +
           (double)(t1.tv_nsec - t0->tv_nsec) / 1e6;
}

static void
trace_reload(struct runner *r, lua_State *L, bool ok, double ms,
             const struct lvfu_reload_stats *st, const char *why)
{
    struct json_object *o = lvfu_trace_begin(L, "reload");

    if (o == NULL) {
        return;
    }
    json_object_object_add(o, "script", json_object_new_string(r->o->script));
    json_object_object_add(o, "ok", json_object_new_boolean(ok));
    json_object_object_add(o, "n", json_object_new_int64(r->reloads));
    json_object_object_add(o, "pause_ms", json_object_new_double(ms));
    if (ok) {
        json_object_object_add(o, "state_bytes",
                               json_object_new_int64((int64_t)st->state_bytes));
        json_object_object_add(o, "timers", json_object_new_int(st->timers_carried));
    } else {
        json_object_object_add(o, "reason", json_object_new_string(why));
    }
    lvfu_trace_end(L, o);
}

/*
 * Between two messages: the script again, in a new state; it takes over
 * s->dev's client, or is thrown away and the running version goes on.
 */
static void
reload(struct runner *r, struct lvfu_serve *s)
{
    struct lvfu_reload_stats st = { 0 };
    struct lvfu_dev *dev = NULL;
    struct timespec t0;
    char why[1024] = "";
    lua_State *L, *old = s->L;
    double ms;

    clock_gettime(CLOCK_MONOTONIC, &t0);
    r->reloads++;
    L = lvfu_newstate(r->o->mem_cap);
    if (L == NULL) {
        snprintf(why, sizeof(why), "cannot create a Lua state");
    } else {
        lvfu_loop_enter(L);     /* its script cannot start a loop of its own */
        if (run_script(r, L, &dev, why, sizeof(why)) == 0) {
            if (dev == NULL) {
                snprintf(why, sizeof(why), "%s returned no device", r->o->script);
            } else if (lvfu_reload(old, s->dev, L, dev, &st, why,
                                   sizeof(why)) == 0) {
                s->L = r->L = L;
                s->dev = dev;
                lvfu_closestate(old);
                ms = ms_since(&t0);
                fprintf(stderr, "vfu-lua: reloaded %s (#%u) in %.2f ms: state "
                        "%zu bytes, %d timer%s carried over\n", r->o->script,
                        r->reloads, ms, st.state_bytes, st.timers_carried,
                        st.timers_carried == 1 ? "" : "s");
                trace_reload(r, L, true, ms, &st, NULL);
                return;
            }
        }
    }
    lvfu_closestate(L);
    ms = ms_since(&t0);
    fprintf(stderr, "vfu-lua: reload #%u of %s refused (the running version "
            "keeps serving): %s\n", r->reloads, r->o->script, why);
    trace_reload(r, old, false, ms, &st, why);
}

/* A watched folder changed: settle, then reload, if it is the script. */
static void
watch_event(struct runner *r)
{
    char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
    bool ours = false;
    ssize_t n;

    while ((n = read(r->ifd, buf, sizeof(buf))) > 0) {
        for (char *p = buf; p < buf + n;) {
            struct inotify_event *ev = (struct inotify_event *)p;

            if (ev->len > 0 && strcmp(ev->name, r->base) == 0) {
                ours = true;
            }
            p += sizeof(*ev) + ev->len;
        }
    }
    if (ours) {
        struct itimerspec its = { .it_value = { 0, SETTLE_MS * 1000000L } };

        timerfd_settime(r->tfd, 0, &its, NULL);
    }
}

static bool
ready(struct lvfu_serve *s, int fd)
{
    struct runner *r = s->arg;
    struct signalfd_siginfo si;
    uint64_t ticks;

    if (fd == r->sfd) {
        if (read(fd, &si, sizeof(si)) != sizeof(si)) {
            return false;
        }
        if (si.ssi_signo != SIGHUP) {
            return true;        /* SIGINT, SIGTERM: stop serving */
        }
        reload(r, s);
    } else if (fd == r->ifd) {
        watch_event(r);
    } else if (fd == r->tfd && read(fd, &ticks, sizeof(ticks)) == sizeof(ticks)) {
        reload(r, s);
    }
    return false;
}

/* inotify on the script's folder: editors often save by renaming a new
 * file over the old one, which a watch on the file itself would miss. */
static int
watch_script(struct runner *r)
{
    char *a = strdup(r->o->script), *b = strdup(r->o->script);

    if (a == NULL || b == NULL) {
        free(a);
        free(b);
        return -1;
    }
    r->dir = strdup(dirname(a));
    r->base = strdup(basename(b));
    free(a);
    free(b);
    if (r->dir == NULL || r->base == NULL) {
        return -1;
    }
    r->ifd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (r->ifd < 0 ||
        inotify_add_watch(r->ifd, r->dir, IN_CLOSE_WRITE | IN_MOVED_TO) < 0) {
        return -1;
    }
    r->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    return r->tfd < 0 ? -1 : 0;
}

static int
serve(struct runner *r, struct lvfu_dev *dev, const char *sock)
{
    struct lvfu_serve s = { .dev = dev, .ready = ready, .arg = r };
    sigset_t set;
    int rc = 0;
    struct stat st;

    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGHUP);
    if (sigprocmask(SIG_BLOCK, &set, NULL) < 0 ||
        (r->sfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK)) < 0) {
        perror("vfu-lua: signalfd");
        return -1;
    }
    if (r->o->watch && watch_script(r) < 0) {
        fprintf(stderr, "vfu-lua: cannot watch %s: %s\n", r->o->script,
                strerror(errno));
        return -1;
    }
    signal(SIGPIPE, SIG_IGN);
    if (lvfu_dev_listen(r->L, dev, sock) < 0) {
        fprintf(stderr, "vfu-lua: cannot serve on %s: %s\n", sock,
                strerror(errno));
        return -1;
    }
    if (lvfu_rt(r->L)->verbose > 0 || r->o->watch) {
        fprintf(stderr, "vfu-lua: serving %s on %s%s%s\n", dev->name, sock,
                r->o->watch ? ", watching " : "",
                r->o->watch ? r->o->script : "");
    }
    s.L = r->L;
    s.fds[0] = r->sfd;
    s.fds[1] = r->ifd;
    s.fds[2] = r->tfd;
    if (lvfu_loop_serve(&s) < 0) {
        fprintf(stderr, "vfu-lua: %s\n", strerror(errno));
        rc = -1;
    }
    lvfu_dev_release(s.L, s.dev);
    /* the context owned the socket; make sure no stale path is left */
    if (lstat(sock, &st) == 0 && S_ISSOCK(st.st_mode)) {
        unlink(sock);
    }
    return rc;
}

static int
run(struct runner *r)
{
    struct options *o = r->o;
    struct lvfu_dev *dev;
    char why[1024];

    if (run_script(r, r->L, &dev, why, sizeof(why)) < 0) {
        fprintf(stderr, "vfu-lua: %s\n", why);
        return 1;
    }
    if (dev == NULL) {
        if (o->check) {
            fprintf(stderr, "vfu-lua: %s declares no device\n", o->script);
            return 1;
        }
        return 0;       /* a plain script: done */
    }
    if (o->check) {
        lvfu_summary(dev, stdout);
        return 0;
    }
    if (o->sock == NULL) {
        fprintf(stderr, "vfu-lua: a SOCKET path is needed to serve\n");
        return 2;
    }
    return serve(r, dev, o->sock) < 0 ? 1 : 0;
}

int
main(int argc, char **argv)
{
    struct options o;
    struct runner r = { .o = &o, .argc = argc, .argv = argv,
                        .sfd = -1, .ifd = -1, .tfd = -1 };
    int idx, rc;

    memset(&o, 0, sizeof(o));
    idx = parse_args(argc, argv, &o);
    if (idx < 0) {
        return 2;
    }
    r.script_idx = idx;
    if (o.trace != NULL && (r.trace = fopen(o.trace, "we")) == NULL) {
        fprintf(stderr, "vfu-lua: %s: %s\n", o.trace, strerror(errno));
        return 1;
    }
    r.L = lvfu_newstate(o.mem_cap);
    if (r.L == NULL) {
        fprintf(stderr, "vfu-lua: cannot create a Lua state\n");
        return 1;
    }
    rc = run(&r);
    lvfu_closestate(r.L);
    int fds[] = { r.sfd, r.ifd, r.tfd };
    for (size_t i = 0; i < sizeof(fds) / sizeof(fds[0]); i++) {
        if (fds[i] >= 0) {
            close(fds[i]);
        }
    }
    free(r.dir);
    free(r.base);
    if (r.trace != NULL) {
        fclose(r.trace);
    }
    return rc;
}
