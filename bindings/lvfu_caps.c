/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 the vfu authors. */

/*
 * Config space capabilities from tables: { "msi", vectors = 4 } becomes the
 * bytes vfu_pci_add_capability() takes, laid out with the structs of
 * pci_caps/. The first array element names the capability.
 */
#include <string.h>

#include "lvfu.h"

static lua_Integer
opt_int(lua_State *L, int t, const char *key, lua_Integer min, lua_Integer max,
        lua_Integer def, int n)
{
    lua_Integer v = def;

    if (lua_getfield(L, t, key) != LUA_TNIL) {
        int isint;

        v = lua_tointegerx(L, -1, &isint);
        if (!isint || v < min || v > max) {
            luaL_error(L, "caps[%d].%s: integer in [%I, %I] expected", n, key,
                       min, max);
        }
    }
    lua_pop(L, 1);
    return v;
}

static void
cap_pm(lua_State *L, int t, struct lvfu_cap *c, int n)
{
    struct pmcap *pm = (struct pmcap *)c->data;

    pm->hdr.id = PCI_CAP_ID_PM;
    pm->pc.vs = 3;
    pm->pc.d1s = lvfu_optflag(L, t, "d1", false);
    pm->pc.d2s = lvfu_optflag(L, t, "d2", false);
    pm->pmcs.nsfrst = lvfu_optflag(L, t, "no_soft_reset", true);
    c->len = sizeof(*pm);
}

static void
cap_msi(lua_State *L, int t, struct lvfu_cap *c, int n)
{
    struct msicap *msi = (struct msicap *)c->data;
    lua_Integer v = opt_int(L, t, "vectors", 1, 32, 1, n);
    unsigned log2 = 0;

    if ((v & (v - 1)) != 0) {
        luaL_error(L, "caps[%d].vectors: %I is not a power of two", n, v);
    }
    while ((1 << log2) < v) {
        log2++;
    }
    msi->hdr.id = PCI_CAP_ID_MSI;
    msi->mc.mmc = log2;
    msi->mc.c64 = lvfu_optflag(L, t, "addr64", true);
    msi->mc.pvm = lvfu_optflag(L, t, "per_vector_mask", false);
    c->len = sizeof(*msi);
}

static void
cap_msix(lua_State *L, int t, struct lvfu_cap *c, int n)
{
    struct msixcap *x = (struct msixcap *)c->data;
    lua_Integer size = opt_int(L, t, "table_size", 1, 2048, 1, n);
    lua_Integer tbar = opt_int(L, t, "table_bar", 0, 5, 0, n);
    lua_Integer toff = opt_int(L, t, "table_offset", 0, 0xffffffff, 0, n);
    lua_Integer pbar = opt_int(L, t, "pba_bar", 0, 5, tbar, n);
    lua_Integer poff = opt_int(L, t, "pba_offset", 0, 0xffffffff,
                               toff + size * 16, n);

    if (toff % 8 != 0 || poff % 8 != 0) {
        luaL_error(L, "caps[%d]: MSI-X table and PBA offsets must be "
                   "8-byte aligned", n);
    }
    x->hdr.id = PCI_CAP_ID_MSIX;
    x->mxc.ts = (uint16_t)(size - 1);
    x->mtab.tbir = (uint32_t)tbar;
    x->mtab.to = (uint32_t)(toff >> 3);
    x->mpba.pbir = (uint32_t)pbar;
    x->mpba.pbao = (uint32_t)(poff >> 3);
    c->len = sizeof(*x);
}

static void
cap_pcie(lua_State *L, int t, struct lvfu_cap *c, int n)
{
    struct pxcap *px = (struct pxcap *)c->data;

    px->hdr.id = PCI_CAP_ID_EXP;
    px->pxcaps.ver = 2;
    px->pxcaps.dpt = (unsigned)opt_int(L, t, "port_type", 0, 15, 0, n);
    px->pxdcap.flrc = lvfu_optflag(L, t, "flr", false);
    c->len = sizeof(*px);
}

static void
cap_vendor(lua_State *L, int t, struct lvfu_cap *c, int n)
{
    struct vsc *v = (struct vsc *)c->data;
    size_t len = 0;
    const char *data = "";

    if (lua_getfield(L, t, "data") != LUA_TNIL) {
        if (lua_type(L, -1) != LUA_TSTRING) {
            luaL_error(L, "caps[%d].data: string expected", n);
        }
        data = lua_tolstring(L, -1, &len);
    }
    if (len > 0xff - sizeof(*v)) {
        luaL_error(L, "caps[%d].data: at most %d bytes", n,
                   (int)(0xff - sizeof(*v)));
    }
    v->hdr.id = PCI_CAP_ID_VNDR;
    v->size = (uint8_t)(sizeof(*v) + len);
    memcpy(v->data, data, len);
    c->len = sizeof(*v) + len;
    lua_pop(L, 1);
}

static void
cap_dsn(lua_State *L, int t, struct lvfu_cap *c, int n)
{
    struct dsncap *d = (struct dsncap *)c->data;
    lua_Integer sn;

    if (lua_getfield(L, t, "serial") == LUA_TNIL || !lua_isinteger(L, -1)) {
        luaL_error(L, "caps[%d].serial: integer expected", n);
    }
    sn = lua_tointeger(L, -1);
    lua_pop(L, 1);
    d->hdr.id = PCI_EXT_CAP_ID_DSN;
    d->hdr.version = 1;
    d->sn_lo = (uint32_t)((uint64_t)sn & 0xffffffffu);
    d->sn_hi = (uint32_t)((uint64_t)sn >> 32);
    c->len = sizeof(*d);
    c->flags |= VFU_CAP_FLAG_EXTENDED;
}

void
lvfu_caps_parse(lua_State *L, int list, struct lvfu_dev *dev)
{
    static const struct {
        const char *kind;
        void (*fill)(lua_State *, int, struct lvfu_cap *, int);
        bool express;               /* needs PCI-X mode 2 or PCI Express */
    } kinds[] = {
        { "pm", cap_pm, false },
        { "msi", cap_msi, false },
        { "msix", cap_msix, false },
        { "pcie", cap_pcie, false },
        { "vendor", cap_vendor, false },
        { "dsn", cap_dsn, true },
    };
    lua_Integer n;

    list = lua_absindex(L, list);
    if (!lua_istable(L, list)) {
        luaL_error(L, "caps: list of capability tables expected");
    }
    n = luaL_len(L, list);
    if (n > LVFU_MAX_CAPS) {
        luaL_error(L, "caps: at most %d capabilities", LVFU_MAX_CAPS);
    }
    for (int i = 1; i <= (int)n; i++) {
        struct lvfu_cap *c = &dev->caps[i - 1];
        const char *kind;
        size_t k;
        int t;

        lua_geti(L, list, i);
        t = lua_absindex(L, -1);
        if (!lua_istable(L, t) || lua_geti(L, t, 1) != LUA_TSTRING) {
            luaL_error(L, "caps[%d]: { \"kind\", options... } expected", i);
        }
        kind = lua_tostring(L, -1);
        for (k = 0; k < sizeof(kinds) / sizeof(kinds[0]); k++) {
            if (strcmp(kind, kinds[k].kind) == 0) {
                break;
            }
        }
        if (k == sizeof(kinds) / sizeof(kinds[0])) {
            luaL_error(L, "caps[%d]: unknown capability '%s' (pm, msi, msix, "
                       "pcie, vendor, dsn)", i, kind);
        }
        if (kinds[k].express && dev->pci_type != VFU_PCI_TYPE_EXPRESS &&
            dev->pci_type != VFU_PCI_TYPE_PCI_X_2) {
            luaL_error(L, "caps[%d]: %s needs type express or pci-x2", i, kind);
        }
        lua_pop(L, 1);
        memset(c, 0, sizeof(*c));
        c->kind = kinds[k].kind;
        kinds[k].fill(L, t, c, i);
        c->pos = (size_t)opt_int(L, t, "offset", 0, 4095, 0, i);
        if (lvfu_optflag(L, t, "readonly", false)) {
            c->flags |= VFU_CAP_FLAG_READONLY;
        }
        if (lvfu_optflag(L, t, "callback", false)) {
            c->flags |= VFU_CAP_FLAG_CALLBACK;
        }
        dev->nr_caps = i;
        lua_pop(L, 1);
    }
}
