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
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lvfu.h"

struct options {
    const char *script;
    const char *sock;
    const char *trace;
    bool check, unsafe;
    int verbose;
    unsigned budget_ms;
    size_t mem_cap;
};

static void
usage(FILE *f)
{
    fprintf(f,
        "usage: vfu-lua [options] SCRIPT [SOCKET] [ARGS...]\n"
        "  -v, --verbose       more logging (twice: debug)\n"
        "  --trace FILE        one JSON line per device event\n"
        "  --check             validate SCRIPT, print the device, don't serve\n"
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

static int
serve(lua_State *L, struct lvfu_dev *dev, const char *sock)
{
    sigset_t set;
    int sfd, rc = 0;
    struct stat st;

    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    if (sigprocmask(SIG_BLOCK, &set, NULL) < 0 ||
        (sfd = signalfd(-1, &set, SFD_CLOEXEC)) < 0) {
        perror("vfu-lua: signalfd");
        return -1;
    }
    signal(SIGPIPE, SIG_IGN);
    if (lvfu_dev_listen(L, dev, sock) < 0) {
        fprintf(stderr, "vfu-lua: cannot serve on %s: %s\n", sock,
                strerror(errno));
        close(sfd);
        return -1;
    }
    if (lvfu_rt(L)->verbose > 0) {
        fprintf(stderr, "vfu-lua: serving %s on %s\n", dev->name, sock);
    }
    if (lvfu_loop_run(L, dev, sfd) < 0) {
        fprintf(stderr, "vfu-lua: %s\n", strerror(errno));
        rc = -1;
    }
    lvfu_dev_release(L, dev);
    /* the context owned the socket; make sure no stale path is left */
    if (lstat(sock, &st) == 0 && S_ISSOCK(st.st_mode)) {
        unlink(sock);
    }
    close(sfd);
    return rc;
}

static int
run(lua_State *L, struct options *o, int argc, char **argv, int script_idx)
{
    struct lvfu_rt *rt;
    struct lvfu_dev *dev;
    /* Top-level code declares and builds tables: allow it more than a
     * handler, but not forever, unless the script is trusted (--unsafe
     * scripts may be whole test programs). */
    unsigned load_budget = o->unsafe ? 0
                         : o->budget_ms < 2000 ? 2000 : o->budget_ms;

    lvfu_open_sandbox(L, o->unsafe);
    rt = lvfu_rt(L);
    rt->verbose = o->verbose;
    rt->budget_ms = o->budget_ms;
    set_arg(L, argc, argv, script_idx);
    if (luaL_loadfilex(L, o->script, "t") != LUA_OK) {
        fprintf(stderr, "vfu-lua: %s\n", lua_tostring(L, -1));
        return 1;
    }
    if (lvfu_pcall_budget(L, 0, 1, load_budget) < 0) {
        fprintf(stderr, "vfu-lua: %s\n", lua_tostring(L, -1));
        return 1;
    }
    dev = luaL_testudata(L, -1, LVFU_DEVICE_MT);
    if (dev == NULL || dev->closed) {
        if (!lua_isnil(L, -1) && !(lua_isboolean(L, -1) && lua_toboolean(L, -1))) {
            fprintf(stderr, "vfu-lua: %s returned a %s, not a vfu.device\n",
                    o->script, luaL_typename(L, -1));
            return 1;
        }
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
    return serve(L, dev, o->sock) < 0 ? 1 : 0;
}

int
main(int argc, char **argv)
{
    struct options o;
    lua_State *L;
    FILE *trace = NULL;
    int idx, rc;

    memset(&o, 0, sizeof(o));
    idx = parse_args(argc, argv, &o);
    if (idx < 0) {
        return 2;
    }
    if (o.trace != NULL && (trace = fopen(o.trace, "we")) == NULL) {
        fprintf(stderr, "vfu-lua: %s: %s\n", o.trace, strerror(errno));
        return 1;
    }
    L = lvfu_newstate(o.mem_cap);
    if (L == NULL) {
        fprintf(stderr, "vfu-lua: cannot create a Lua state\n");
        return 1;
    }
    lvfu_rt(L)->trace = trace;
    rc = run(L, &o, argc, argv, idx);
    lvfu_closestate(L);
    if (trace != NULL) {
        fclose(trace);
    }
    return rc;
}
