/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 the vfu authors. */

/*
 * A device declaration table, checked field by field and turned into the
 * C description in struct lvfu_dev. Every mistake raises an error at the
 * script's vfu.device{} call, naming the field; unknown fields are
 * mistakes too, so a typo cannot silently drop a handler.
 */
#include <stdlib.h>
#include <string.h>

#include "lvfu.h"

static const char *const region_names[VFU_PCI_DEV_NUM_REGIONS] = {
    "bar0", "bar1", "bar2", "bar3", "bar4", "bar5", "rom", "config", "vga"
};

const char *
lvfu_region_name(int idx)
{
    return idx >= 0 && idx < VFU_PCI_DEV_NUM_REGIONS ? region_names[idx] : "?";
}

static void
check_keys(lua_State *L, int tbl, const char *const *allowed, const char *path)
{
    tbl = lua_absindex(L, tbl);
    lua_pushnil(L);
    while (lua_next(L, tbl) != 0) {
        bool ok = false;

        if (lua_type(L, -2) == LUA_TSTRING) {
            const char *k = lua_tostring(L, -2);
            for (int i = 0; allowed[i] != NULL; i++) {
                ok = ok || strcmp(k, allowed[i]) == 0;
            }
            if (!ok) {
                luaL_error(L, "%s: unknown field '%s'", path, k);
            }
        } else if (lua_type(L, -2) != LUA_TNUMBER || strcmp(path, "bars") != 0) {
            luaL_error(L, "%s: unexpected %s key", path, luaL_typename(L, -2));
        }
        lua_pop(L, 1);
    }
}

static lua_Integer
get_int(lua_State *L, int tbl, const char *key, lua_Integer min,
        lua_Integer max, lua_Integer def, const char *path)
{
    lua_Integer v = def;
    int isint;

    if (lua_getfield(L, tbl, key) != LUA_TNIL) {
        v = lua_tointegerx(L, -1, &isint);
        if (!isint) {
            luaL_error(L, "%s.%s: integer expected, got %s", path, key,
                       luaL_typename(L, -1));
        }
        if (v < min || v > max) {
            luaL_error(L, "%s.%s: %I out of range [%I, %I]", path, key,
                       v, min, max);
        }
    }
    lua_pop(L, 1);
    return v;
}

static int
get_fn(lua_State *L, int tbl, const char *key, const char *path)
{
    int t = lua_getfield(L, tbl, key);

    if (t == LUA_TNIL) {
        lua_pop(L, 1);
        return LUA_NOREF;
    }
    if (t != LUA_TFUNCTION) {
        luaL_error(L, "%s.%s: function expected, got %s", path, key,
                   luaL_typename(L, -1));
    }
    return luaL_ref(L, LUA_REGISTRYINDEX);
}

static bool
get_bool(lua_State *L, int tbl, const char *key, const char *path)
{
    int t = lua_getfield(L, tbl, key);
    bool v = lua_toboolean(L, -1);

    if (t != LUA_TNIL && t != LUA_TBOOLEAN) {
        luaL_error(L, "%s.%s: boolean expected, got %s", path, key,
                   luaL_typename(L, -1));
    }
    lua_pop(L, 1);
    return v;
}

static void
parse_areas(lua_State *L, int tbl, struct lvfu_region *r, const char *path)
{
    lua_Integer n;

    lua_getfield(L, tbl, "sparse");
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        return;
    }
    if (!lua_istable(L, -1)) {
        luaL_error(L, "%s.sparse: table of areas expected", path);
    }
    n = luaL_len(L, -1);
    if (n < 1 || n > 64) {
        luaL_error(L, "%s.sparse: 1 to 64 areas expected", path);
    }
    r->areas = calloc((size_t)n, sizeof(*r->areas));
    if (r->areas == NULL) {
        luaL_error(L, "out of memory");
    }
    r->nr_areas = (uint32_t)n;
    for (lua_Integer i = 1; i <= n; i++) {
        lua_Integer off, len;

        lua_geti(L, -1, i);
        if (!lua_istable(L, -1)) {
            luaL_error(L, "%s.sparse[%I]: {offset, size} expected", path, i);
        }
        lua_geti(L, -1, 1);
        lua_geti(L, -2, 2);
        off = lua_tointeger(L, -2);
        len = lua_tointeger(L, -1);
        if (!lua_isinteger(L, -2) || !lua_isinteger(L, -1) || off < 0 ||
            len <= 0 || (uint64_t)off + (uint64_t)len > r->size ||
            off % 4096 != 0 || len % 4096 != 0) {
            luaL_error(L, "%s.sparse[%I]: page-aligned {offset, size} inside "
                       "the region expected", path, i);
        }
        r->areas[i - 1].iov_base = (void *)(uintptr_t)off;
        r->areas[i - 1].iov_len = (size_t)len;
        lua_pop(L, 3);
    }
    lua_pop(L, 1);
    r->backed = true;
}

static void
parse_region(lua_State *L, int tbl, struct lvfu_dev *dev, int idx)
{
    static const char *const keys[] = {
        "size", "io", "mem64", "prefetchable", "mmap", "sparse", "read",
        "write", "always_cb", NULL
    };
    struct lvfu_region *r = &dev->regions[idx];
    const char *path = region_names[idx];
    bool is_bar = idx <= VFU_PCI_DEV_BAR5_REGION_IDX;
    bool is_cfg = idx == VFU_PCI_DEV_CFG_REGION_IDX;
    lua_Integer size;

    tbl = lua_absindex(L, tbl);
    if (!lua_istable(L, tbl)) {
        luaL_error(L, "%s: table expected, got %s", path, luaL_typename(L, tbl));
    }
    check_keys(L, tbl, keys, path);
    size = get_int(L, tbl, "size", 0, (lua_Integer)1 << 40, 0, path);
    if (!is_cfg && size == 0) {
        luaL_error(L, "%s.size: missing", path);
    }
    if (is_bar && (size & (size - 1)) != 0) {
        luaL_error(L, "%s.size: %I is not a power of two", path, size);
    }
    r->present = true;
    r->size = (size_t)size;
    r->flags = VFU_REGION_FLAG_RW;
    if (!get_bool(L, tbl, "io", path) && !is_cfg) {
        r->flags |= VFU_REGION_FLAG_MEM;
    }
    if (get_bool(L, tbl, "always_cb", path)) {
        if (!is_cfg) {
            luaL_error(L, "%s.always_cb: only for the config region", path);
        }
        r->flags |= VFU_REGION_FLAG_ALWAYS_CB;
    }
    r->mem64 = get_bool(L, tbl, "mem64", path);
    r->prefetch = get_bool(L, tbl, "prefetchable", path);
    if ((r->mem64 || r->prefetch) && !(r->flags & VFU_REGION_FLAG_MEM)) {
        luaL_error(L, "%s: mem64/prefetchable need a memory BAR", path);
    }
    if (r->mem64 && (idx == VFU_PCI_DEV_BAR5_REGION_IDX || !is_bar)) {
        luaL_error(L, "%s.mem64: a 64-bit BAR takes two slots", path);
    }
    if (is_bar && (r->flags & VFU_REGION_FLAG_MEM) == 0 && size > 256) {
        luaL_error(L, "%s.size: an I/O BAR is at most 256 bytes", path);
    }
    r->backed = get_bool(L, tbl, "mmap", path);
    parse_areas(L, tbl, r, path);
    if (r->backed && (is_cfg || size % 4096 != 0)) {
        luaL_error(L, "%s.mmap: needs a region of whole pages", path);
    }
    r->read_ref = get_fn(L, tbl, "read", path);
    r->write_ref = get_fn(L, tbl, "write", path);
    if (!r->backed && !is_cfg &&
        (r->read_ref == LUA_NOREF || r->write_ref == LUA_NOREF)) {
        luaL_error(L, "%s: read and write handlers expected (or mmap = true)",
                   path);
    }
}

static void
parse_bars(lua_State *L, int spec, struct lvfu_dev *dev)
{
    if (lua_getfield(L, spec, "bars") == LUA_TNIL) {
        lua_pop(L, 1);
        return;
    }
    if (!lua_istable(L, -1)) {
        luaL_error(L, "bars: table expected, got %s", luaL_typename(L, -1));
    }
    lua_pushnil(L);
    while (lua_next(L, -2) != 0) {
        int isint;
        lua_Integer i = lua_tointegerx(L, -2, &isint);

        if (!isint || i < 0 || i > 5) {
            luaL_error(L, "bars: BAR numbers are 0 to 5");
        }
        if (i > 0 && dev->regions[i - 1].mem64) {
            luaL_error(L, "bars[%I]: taken by 64-bit bar%I", i, i - 1);
        }
        parse_region(L, -1, dev, (int)i);
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
    for (int i = 0; i < 5; i++) {
        if (dev->regions[i].mem64 && dev->regions[i + 1].present) {
            luaL_error(L, "bars[%d]: taken by 64-bit bar%d", i + 1, i);
        }
    }
}

static void
parse_type(lua_State *L, int spec, struct lvfu_dev *dev)
{
    static const char *const names[] = {
        "conventional", "pci-x", "pci-x2", "express", NULL
    };
    static const vfu_pci_type_t types[] = {
        VFU_PCI_TYPE_CONVENTIONAL, VFU_PCI_TYPE_PCI_X_1, VFU_PCI_TYPE_PCI_X_2,
        VFU_PCI_TYPE_EXPRESS
    };
    const char *t;

    lua_getfield(L, spec, "type");
    t = luaL_optstring(L, -1, "conventional");
    for (int i = 0; names[i] != NULL; i++) {
        if (strcmp(t, names[i]) == 0) {
            dev->pci_type = types[i];
            lua_pop(L, 1);
            return;
        }
    }
    luaL_error(L, "type: '%s' is not conventional, pci-x, pci-x2 or express", t);
}

static void
parse_irqs(lua_State *L, int spec, struct lvfu_dev *dev)
{
    static const char *const names[] = { "intx", "msi", "msix", "err", "req",
                                         NULL };
    static const lua_Integer max[] = { 1, 32, 2048, 1, 1 };

    /* like vfu_create_ctx: one ERR and one REQ unless told otherwise */
    dev->nirqs[VFU_DEV_ERR_IRQ] = 1;
    dev->nirqs[VFU_DEV_REQ_IRQ] = 1;
    if (lua_getfield(L, spec, "irqs") != LUA_TNIL) {
        int t = lua_absindex(L, -1);

        if (!lua_istable(L, t)) {
            luaL_error(L, "irqs: table expected");
        }
        check_keys(L, t, names, "irqs");
        for (int i = 0; names[i] != NULL; i++) {
            dev->nirqs[i] = (uint32_t)get_int(L, t, names[i], 0, max[i],
                                              dev->nirqs[i], "irqs");
        }
    }
    lua_pop(L, 1);
    if (lua_getfield(L, spec, "irq_state") != LUA_TNIL) {
        int t = lua_absindex(L, -1);

        if (!lua_istable(L, t)) {
            luaL_error(L, "irq_state: table of handlers expected");
        }
        check_keys(L, t, names, "irq_state");
        for (int i = 0; names[i] != NULL; i++) {
            dev->irq_state_ref[i] = get_fn(L, t, names[i], "irq_state");
        }
    }
    lua_pop(L, 1);
}

static void
parse_dma(lua_State *L, int spec, struct lvfu_dev *dev)
{
    static const char *const keys[] = { "map", "unmap", NULL };
    int t = lua_getfield(L, spec, "dma");

    if (t == LUA_TBOOLEAN) {
        dev->dma = lua_toboolean(L, -1);
    } else if (t == LUA_TTABLE) {
        check_keys(L, -1, keys, "dma");
        dev->dma = true;
        dev->dma_map_ref = get_fn(L, lua_absindex(L, -1), "map", "dma");
        dev->dma_unmap_ref = get_fn(L, lua_absindex(L, -1), "unmap", "dma");
    } else if (t != LUA_TNIL) {
        luaL_error(L, "dma: true or a table of handlers expected");
    }
    lua_pop(L, 1);
}

static void
parse_migration(lua_State *L, int spec, struct lvfu_dev *dev)
{
    static const char *const keys[] = { "state", "transition", "save", "load",
                                        "precopy", "receive", NULL };
    int t = lua_getfield(L, spec, "migration");
    int m = lua_absindex(L, -1);

    if (t == LUA_TNIL) {
        lua_pop(L, 1);
        return;
    }
    if (t != LUA_TTABLE) {
        luaL_error(L, "migration: table expected");
    }
    check_keys(L, m, keys, "migration");
    dev->migr = true;
    dev->migr_transition_ref = get_fn(L, m, "transition", "migration");
    dev->migr_save_ref = get_fn(L, m, "save", "migration");
    dev->migr_load_ref = get_fn(L, m, "load", "migration");
    dev->migr_precopy_ref = get_fn(L, m, "precopy", "migration");
    dev->migr_receive_ref = get_fn(L, m, "receive", "migration");
    t = lua_getfield(L, m, "state");
    if (t == LUA_TTABLE) {
        dev->migr_state_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    } else {
        lua_pop(L, 1);
        if (t != LUA_TNIL) {
            luaL_error(L, "migration.state: table expected");
        }
    }
    if ((dev->migr_save_ref == LUA_NOREF) != (dev->migr_load_ref == LUA_NOREF)) {
        luaL_error(L, "migration: give both save and load, or neither");
    }
    if (dev->migr_precopy_ref != LUA_NOREF && dev->migr_load_ref == LUA_NOREF) {
        luaL_error(L, "migration.precopy: needs save and load, which get "
                   "what it sent");
    }
    if (dev->migr_receive_ref != LUA_NOREF && dev->migr_precopy_ref == LUA_NOREF) {
        luaL_error(L, "migration.receive: needs precopy, whose records it gets");
    }
    if (dev->migr_save_ref == LUA_NOREF && dev->migr_state_ref == LUA_NOREF) {
        luaL_error(L, "migration: a state table or save/load handlers expected");
    }
    lua_pop(L, 1);
}

void
lvfu_spec_parse(lua_State *L, int spec, struct lvfu_dev *dev)
{
    static const char *const keys[] = {
        "name", "type", "vendor", "device", "subsystem_vendor", "subsystem",
        "class", "revision", "bars", "rom", "config", "vga", "caps", "irqs",
        "irq_state", "reset", "quiesce", "dma", "migration", NULL
    };
    lua_Integer cls;
    const char *name;

    spec = lua_absindex(L, spec);
    check_keys(L, spec, keys, "device");
    lua_getfield(L, spec, "name");
    name = luaL_optstring(L, -1, "device");
    snprintf(dev->name, sizeof(dev->name), "%s", name);
    lua_pop(L, 1);
    parse_type(L, spec, dev);
    lua_getfield(L, spec, "vendor");
    lua_getfield(L, spec, "device");
    if (lua_isnil(L, -1) || lua_isnil(L, -2)) {
        luaL_error(L, "device: vendor and device ids are required");
    }
    lua_pop(L, 2);
    dev->vid = (uint16_t)get_int(L, spec, "vendor", 0, 0xfffe, 0, "device");
    dev->did = (uint16_t)get_int(L, spec, "device", 0, 0xffff, 0, "device");
    dev->ssvid = (uint16_t)get_int(L, spec, "subsystem_vendor", 0, 0xffff, 0,
                                   "device");
    dev->ssid = (uint16_t)get_int(L, spec, "subsystem", 0, 0xffff, 0, "device");
    cls = get_int(L, spec, "class", 0, 0xffffff, 0xff0000, "device");
    dev->class_base = (uint8_t)(cls >> 16);
    dev->class_sub = (uint8_t)(cls >> 8);
    dev->class_pi = (uint8_t)cls;
    dev->revision = (uint8_t)get_int(L, spec, "revision", 0, 0xff, 0, "device");

    parse_bars(L, spec, dev);
    static const struct { const char *key; int idx; } extra[] = {
        { "rom", VFU_PCI_DEV_ROM_REGION_IDX },
        { "config", VFU_PCI_DEV_CFG_REGION_IDX },
        { "vga", VFU_PCI_DEV_VGA_REGION_IDX },
    };
    for (size_t i = 0; i < sizeof(extra) / sizeof(extra[0]); i++) {
        if (lua_getfield(L, spec, extra[i].key) != LUA_TNIL) {
            parse_region(L, -1, dev, extra[i].idx);
        }
        lua_pop(L, 1);
    }
    if (lua_getfield(L, spec, "caps") != LUA_TNIL) {
        lvfu_caps_parse(L, -1, dev);
    }
    lua_pop(L, 1);
    parse_irqs(L, spec, dev);
    dev->reset_ref = get_fn(L, spec, "reset", "device");
    dev->quiesce_ref = get_fn(L, spec, "quiesce", "device");
    parse_dma(L, spec, dev);
    parse_migration(L, spec, dev);
}

void
lvfu_summary(struct lvfu_dev *dev, FILE *out)
{
    static const char *const types[] = { "conventional", "pci-x", "pci-x2",
                                         "express" };
    static const char *const irqs[] = { "intx", "msi", "msix", "err", "req" };

    fprintf(out, "device %s: %04x:%04x subsystem %04x:%04x class %02x%02x%02x "
            "rev %02x, %s\n", dev->name, dev->vid, dev->did, dev->ssvid,
            dev->ssid, dev->class_base, dev->class_sub, dev->class_pi,
            dev->revision, types[dev->pci_type]);
    for (int i = 0; i < VFU_PCI_DEV_NUM_REGIONS; i++) {
        struct lvfu_region *r = &dev->regions[i];

        if (!r->present) {
            continue;
        }
        fprintf(out, "  %-6s %#zx bytes, %s%s%s%s%s\n", region_names[i],
                r->size, (r->flags & VFU_REGION_FLAG_MEM) ? "memory" : "I/O",
                r->mem64 ? ", 64-bit" : "", r->prefetch ? ", prefetchable" : "",
                r->backed ? ", mmap" : "",
                r->read_ref != LUA_NOREF ? ", handlers" : "");
    }
    for (int i = 0; i < dev->nr_caps; i++) {
        fprintf(out, "  cap    %s (%zu bytes)\n", dev->caps[i].kind,
                dev->caps[i].len);
    }
    fprintf(out, "  irqs  ");
    for (int i = 0; i < VFU_DEV_NUM_IRQS; i++) {
        fprintf(out, " %s=%u", irqs[i], dev->nirqs[i]);
    }
    fprintf(out, "\n  dma %s, migration %s, reset handler %s\n",
            dev->dma ? "yes" : "no", dev->migr ? "yes" : "no",
            dev->reset_ref != LUA_NOREF ? "yes" : "no");
}
