/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 the vfu authors. */

/*
 * Hot reload: a new version of a device script, run in a Lua state of its
 * own, takes over the context of the running version between two
 * messages. The client sees nothing: the context (config space, DMA maps,
 * IRQ eventfds and masks, the socket) and the memory of mmap-able regions
 * stay where they are; only the Lua side behind the callbacks changes.
 *
 * In order, each step able to refuse until the last:
 *   1. the declarations must agree on what the client has been told;
 *   2. the running version's state is taken as its migration would send
 *      it (save(), or the state table serialized);
 *   3. the new version gets the context, then the state: reload(old, held)
 *      if it has one, else its migration load (a state table is refilled
 *      key by key, so keys the new version added keep their initial
 *      values); failing, the context goes back, untouched;
 *   4. armed timers are armed again in the new state with what they had
 *      left, calling the new version's function of the same name;
 *   5. the old version's held DMA handles are released, the loop moves on.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "lvfu.h"

#define SEARCH_NODES 20000      /* tables and functions a name search visits */

static void
say(char *why, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
say(char *why, size_t len, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(why, len, fmt, ap);
    va_end(ap);
}

/* --- 1. what the client knows ----------------------------------------- */

static bool
regions_agree(const struct lvfu_dev *a, const struct lvfu_dev *b, char *why,
              size_t len)
{
    for (int i = 0; i < VFU_PCI_DEV_NUM_REGIONS; i++) {
        const struct lvfu_region *x = &a->regions[i], *y = &b->regions[i];
        const char *n = lvfu_region_name(i);

        if (x->present != y->present) {
            say(why, len, "%s: %s in the new version", n,
                x->present ? "missing" : "added");
            return false;
        }
        if (!x->present) {
            continue;
        }
        if (x->size != y->size) {
            say(why, len, "%s: size %#zx, was %#zx", n, y->size, x->size);
            return false;
        }
        if (x->flags != y->flags || x->mem64 != y->mem64 ||
            x->prefetch != y->prefetch) {
            say(why, len, "%s: its kind changed (I/O or memory, 64-bit, "
                "prefetchable, always_cb)", n);
            return false;
        }
        if (x->backed != y->backed || x->nr_areas != y->nr_areas ||
            (x->nr_areas > 0 && memcmp(x->areas, y->areas,
                                       x->nr_areas * sizeof(*x->areas)) != 0)) {
            say(why, len, "%s: what the client may mmap changed (mmap, sparse)",
                n);
            return false;
        }
    }
    return true;
}

bool
lvfu_reload_compatible(const struct lvfu_dev *a, const struct lvfu_dev *b,
                       char *why, size_t len)
{
    static const char *const irqs[] = { "intx", "msi", "msix", "err", "req" };

    if (a->pci_type != b->pci_type) {
        say(why, len, "type: the PCI type changed");
        return false;
    }
    if (a->vid != b->vid || a->did != b->did || a->ssvid != b->ssvid ||
        a->ssid != b->ssid) {
        say(why, len, "identity: %04x:%04x subsystem %04x:%04x, was "
            "%04x:%04x subsystem %04x:%04x", b->vid, b->did, b->ssvid,
            b->ssid, a->vid, a->did, a->ssvid, a->ssid);
        return false;
    }
    if (a->class_base != b->class_base || a->class_sub != b->class_sub ||
        a->class_pi != b->class_pi || a->revision != b->revision) {
        say(why, len, "identity: class or revision changed");
        return false;
    }
    if (!regions_agree(a, b, why, len)) {
        return false;
    }
    if (a->nr_caps != b->nr_caps) {
        say(why, len, "caps: %d capabilities, was %d", b->nr_caps, a->nr_caps);
        return false;
    }
    for (int i = 0; i < a->nr_caps; i++) {
        const struct lvfu_cap *x = &a->caps[i], *y = &b->caps[i];

        if (x->len != y->len || x->flags != y->flags || x->pos != y->pos ||
            memcmp(x->data, y->data, x->len) != 0) {
            say(why, len, "caps[%d] (%s): changed", i + 1, x->kind);
            return false;
        }
    }
    for (int i = 0; i < VFU_DEV_NUM_IRQS; i++) {
        if (a->nirqs[i] != b->nirqs[i]) {
            say(why, len, "irqs.%s: %u, was %u", irqs[i], b->nirqs[i],
                a->nirqs[i]);
            return false;
        }
    }
    /* the context was set up with these callbacks or without them */
    if (a->dma != b->dma) {
        say(why, len, "dma: %s in the new version", a->dma ? "missing" : "added");
        return false;
    }
    if (a->migr != b->migr) {
        say(why, len, "migration: %s in the new version (it carries the "
            "state, and the client knows whether the device migrates)",
            a->migr ? "missing" : "added");
        return false;
    }
    return true;
}

/* --- names of functions, for timers ---------------------------------- */

/*
 * A timer's function is known by a name: the upvalue or field under which
 * it is first reached, breadth first, from the declaration's handlers and
 * the globals. The same search in the new state finds the function of
 * that name. Arguments: roots table, then the function to name (returns
 * its name) or a name (returns the function); nil if none.
 */
static bool
found(lua_State *L, const char *name, int value, int target, bool by_name)
{
    if (by_name) {
        return name != NULL && lua_type(L, value) == LUA_TFUNCTION &&
               !lua_iscfunction(L, value) &&
               strcmp(name, lua_tostring(L, target)) == 0;
    }
    return name != NULL && lua_rawequal(L, value, target);
}

/* Queue the value on top (popped) unless seen. */
static void
enqueue(lua_State *L, int queue, int seen, lua_Integer *tail)
{
    int t = lua_type(L, -1);

    if ((t != LUA_TTABLE && t != LUA_TFUNCTION) ||
        (t == LUA_TFUNCTION && lua_iscfunction(L, -1)) ||
        *tail >= SEARCH_NODES) {
        lua_pop(L, 1);
        return;
    }
    lua_pushvalue(L, -1);
    if (lua_rawget(L, seen) != LUA_TNIL) {
        lua_pop(L, 2);
        return;
    }
    lua_pop(L, 1);
    lua_pushvalue(L, -1);
    lua_pushboolean(L, 1);
    lua_rawset(L, seen);
    lua_rawseti(L, queue, ++*tail);
}

static int
search(lua_State *L)
{
    bool by_name = lua_type(L, 2) == LUA_TSTRING;
    lua_Integer head = 0, tail = 0;
    int queue, seen;

    lua_newtable(L);
    queue = lua_gettop(L);
    lua_newtable(L);
    seen = lua_gettop(L);
    /* the roots are named by the declaration: "bar0.read", "reset", ... */
    lua_pushnil(L);
    while (lua_next(L, 1) != 0) {
        if (found(L, lua_tostring(L, -2), -1, 2, by_name)) {
            return by_name ? 1 : (lua_pop(L, 1), 1);
        }
        enqueue(L, queue, seen, &tail);
    }
    lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_GLOBALS);
    enqueue(L, queue, seen, &tail);
    while (head < tail) {
        int node;

        lua_rawgeti(L, queue, ++head);
        node = lua_gettop(L);
        if (lua_type(L, node) == LUA_TFUNCTION) {
            const char *name;

            for (int i = 1; (name = lua_getupvalue(L, node, i)) != NULL; i++) {
                if (found(L, name, -1, 2, by_name)) {
                    if (!by_name) {
                        lua_pushstring(L, name);
                    }
                    return 1;
                }
                enqueue(L, queue, seen, &tail);
            }
        } else {
            lua_pushnil(L);
            while (lua_next(L, node) != 0) {
                const char *name = lua_type(L, -2) == LUA_TSTRING
                                   ? lua_tostring(L, -2) : NULL;

                if (found(L, name, -1, 2, by_name)) {
                    if (!by_name) {
                        lua_pushvalue(L, -2);
                    }
                    return 1;
                }
                enqueue(L, queue, seen, &tail);
            }
        }
        lua_settop(L, node - 1);
    }
    lua_pushnil(L);
    return 1;
}

static void
add_root(lua_State *L, int roots, const char *name, int ref)
{
    if (ref != LUA_NOREF && ref != LUA_REFNIL) {
        lua_rawgeti(L, LUA_REGISTRYINDEX, ref);
        lua_setfield(L, roots, name);
    }
}

/* Push the table of dev's named handlers (raises on allocation failure). */
static void
push_roots(lua_State *L, struct lvfu_dev *dev)
{
    static const char *const irqs[] = { "intx", "msi", "msix", "err", "req" };
    char name[32];
    int roots;

    lua_newtable(L);
    roots = lua_gettop(L);
    for (int i = 0; i < VFU_PCI_DEV_NUM_REGIONS; i++) {
        snprintf(name, sizeof(name), "%s.read", lvfu_region_name(i));
        add_root(L, roots, name, dev->regions[i].read_ref);
        snprintf(name, sizeof(name), "%s.write", lvfu_region_name(i));
        add_root(L, roots, name, dev->regions[i].write_ref);
    }
    for (int i = 0; i < VFU_DEV_NUM_IRQS; i++) {
        snprintf(name, sizeof(name), "irq_state.%s", irqs[i]);
        add_root(L, roots, name, dev->irq_state_ref[i]);
    }
    add_root(L, roots, "reset", dev->reset_ref);
    add_root(L, roots, "quiesce", dev->quiesce_ref);
    add_root(L, roots, "reload", dev->reload_ref);
    add_root(L, roots, "dma.map", dev->dma_map_ref);
    add_root(L, roots, "dma.unmap", dev->dma_unmap_ref);
    add_root(L, roots, "migration.transition", dev->migr_transition_ref);
    add_root(L, roots, "migration.save", dev->migr_save_ref);
    add_root(L, roots, "migration.load", dev->migr_load_ref);
    add_root(L, roots, "migration.precopy", dev->migr_precopy_ref);
    add_root(L, roots, "migration.state", dev->migr_state_ref);
}

static int
search_body(lua_State *L)
{
    struct lvfu_dev *dev = lua_touserdata(L, 1);

    lua_settop(L, 2);
    push_roots(L, dev);
    lua_replace(L, 1);
    return search(L);
}

/* With the function or name on top of L's stack: replace it with the name
 * or function found (nil if none, or on any failure). Unbudgeted, bounded
 * by SEARCH_NODES, and runs no script code. */
static void
name_search(lua_State *L, struct lvfu_dev *dev)
{
    if (!lua_checkstack(L, 8)) {
        lua_pop(L, 1);
        lua_pushnil(L);
        return;
    }
    lua_pushcfunction(L, search_body);
    lua_insert(L, -2);
    lua_pushlightuserdata(L, dev);
    lua_insert(L, -2);
    if (lua_pcall(L, 2, 1, 0) != LUA_OK) {
        lua_pop(L, 1);
        lua_pushnil(L);
    }
}

/* --- 3. the state, in the new version ---------------------------------- */

struct carry {
    lua_State *oldL;
    struct lvfu_dev *old, *dev;
    const char *state;          /* the old version's snapshot, or NULL */
    size_t state_len;
    bool table;                 /* it is a serialized state table */
};

/* state.decode(s), pushed; raises on a bad stream. */
static void
push_decoded(lua_State *L, struct carry *c)
{
    lvfu_load_helper(L, "state");
    lua_getfield(L, -1, "decode");
    lua_remove(L, -2);
    lua_pushlstring(L, c->state, c->state_len);
    lua_call(L, 1, 1);
}

/* reload(old_state, held): the decoded table or save()'s string (nil if
 * the old version kept no state), and its held DMA handles taken again */
static int
push_reload(lua_State *L, void *arg)
{
    struct carry *c = arg;

    if (c->state == NULL) {
        lua_pushnil(L);
    } else if (c->table) {
        push_decoded(L, c);
    } else {
        lua_pushlstring(L, c->state, c->state_len);
    }
    lvfu_dma_push_rehold(L, c->dev, c->old);
    return 2;
}

/* load(s, {}) */
static int
push_load(lua_State *L, void *arg)
{
    struct carry *c = arg;

    lua_pushlstring(L, c->state, c->state_len);
    lua_newtable(L);
    return 2;
}

/* The declared state table, refilled key by key from the old one. */
static int
merge_body(lua_State *L)
{
    lua_pushnil(L);
    while (lua_next(L, 2) != 0) {
        lua_pushvalue(L, -2);
        lua_insert(L, -2);
        lua_rawset(L, 1);
    }
    return 0;
}

static int
push_merge(lua_State *L, void *arg)
{
    struct carry *c = arg;

    lua_pushcfunction(L, merge_body);
    lua_rawgeti(L, LUA_REGISTRYINDEX, c->dev->migr_state_ref);
    push_decoded(L, c);
    return 2;
}

static int
carry_state(lua_State *L, struct carry *c, char *why, size_t len)
{
    struct lvfu_dev *dev = c->dev;
    struct lvfu_entry e = { .arg = c };

    if (dev->reload_ref != LUA_NOREF) {
        e.what = "reload";
        e.ref = dev->reload_ref;
        e.push = push_reload;
    } else if (c->state == NULL) {
        return 0;       /* nothing kept, nothing to give */
    } else if (dev->migr_load_ref != LUA_NOREF) {
        e.what = "migration load";
        e.ref = dev->migr_load_ref;
        e.push = push_load;
    } else {
        e.what = "migration state";
        e.ref = LUA_NOREF;
        e.push = push_merge;
    }
    if (lvfu_enter(L, dev, &e, 0) < 0) {
        say(why, len, "the new version's %s failed (see above)", e.what);
        return -1;
    }
    return 0;
}

/* --- 4. timers ----------------------------------------------------------- */

static void
carry_timers(lua_State *oldL, struct lvfu_dev *old, lua_State *L,
             struct lvfu_dev *dev, struct lvfu_reload_stats *st)
{
    struct lvfu_timer_info info;

    for (int i = 0; lua_checkstack(oldL, 4) && lvfu_timer_get(oldL, i, &info);
         i++) {
        const char *name;

        name_search(oldL, old);
        name = lua_tostring(oldL, -1);
        if (name == NULL) {
            lvfu_errorf(dev, "reload: a timer with %llu ms left calls a "
                        "function reached from no handler or global; not "
                        "carried over (the new version arms its own)",
                        (unsigned long long)info.remaining_ms);
            st->timers_dropped++;
            lua_pop(oldL, 1);
            continue;
        }
        if (!lua_checkstack(L, 4) || lua_pushstring(L, name) == NULL) {
            lua_pop(oldL, 1);
            st->timers_dropped++;
            continue;
        }
        name_search(L, dev);
        if (lua_isnil(L, -1)) {
            lvfu_errorf(dev, "reload: the new version has no function '%s' "
                        "for a timer with %llu ms left; not carried over",
                        name, (unsigned long long)info.remaining_ms);
            st->timers_dropped++;
        } else if (lvfu_timer_calls(L, -1)) {
            /* the new version armed it itself (a periodic tick) */
            st->timers_dropped++;
        } else {
            lua_pushvalue(L, -1);
            if (lvfu_timer_arm(L, &info) < 0) {
                lvfu_errorf(dev, "reload: timer '%s' not carried over: %s",
                            name, strerror(errno));
                st->timers_dropped++;
            } else {
                st->timers_carried++;
            }
        }
        lua_pop(L, 1);
        lua_pop(oldL, 1);
    }
}

/* --- the whole ----------------------------------------------------------- */

int
lvfu_reload(lua_State *oldL, struct lvfu_dev *old, lua_State *L,
            struct lvfu_dev *dev, struct lvfu_reload_stats *st,
            char *why, size_t len)
{
    struct carry c = { .oldL = oldL, .old = old, .dev = dev };
    char *snap = NULL;

    memset(st, 0, sizeof(*st));
    if (old->closed || old->ctx == NULL || dev->closed || dev->ctx != NULL) {
        say(why, len, "the new version must return a device that does not "
            "listen");
        return -1;
    }
    if (!lvfu_reload_compatible(old, dev, why, len)) {
        return -1;
    }
    if (old->migr && old->migr_state != VFU_MIGR_STATE_RUNNING) {
        say(why, len, "the device is migrating (%s); reload when it runs",
            lvfu_migr_state_name(old->migr_state));
        return -1;
    }
    if (old->migr) {
        size_t n;
        const char *s;

        if (lvfu_migr_snapshot(oldL, old) < 0) {
            say(why, len, "the running version's migration save failed "
                "(see above)");
            return -1;
        }
        s = lua_tolstring(oldL, -1, &n);
        snap = malloc(n > 0 ? n : 1);
        if (snap == NULL) {
            lua_pop(oldL, 1);
            say(why, len, "out of memory");
            return -1;
        }
        memcpy(snap, s, n);
        lua_pop(oldL, 1);
        c.state = snap;
        c.state_len = n;
        c.table = old->migr_save_ref == LUA_NOREF;
        st->state_bytes = n;
    }
    lvfu_dev_adopt(dev, old);
    dev->L = L;
    if (carry_state(L, &c, why, len) < 0) {
        /* what the new version took hold of goes, and the context back */
        lvfu_dma_drop_holds(dev, dev->ctx);
        lvfu_dev_adopt(old, dev);
        free(snap);
        return -1;
    }
    free(snap);
    carry_timers(oldL, old, L, dev, st);
    lvfu_dma_drop_holds(old, dev->ctx);
    lvfu_loop_handover(oldL, old, L, dev);
    return 0;
}
