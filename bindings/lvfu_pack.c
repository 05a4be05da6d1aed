/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 the vfu authors. */

/*
 * Fixed little-endian records, as hardware lays out its queue entries and
 * descriptors: a subset of string.pack's formats read from and written to
 * memory directly, so that decoding a 64-byte command is one call that
 * pushes integers and builds no string.
 *
 *   <  =  space   ignored (little-endian is the only order)
 *   b B           1-byte signed / unsigned integer
 *   h H           2 bytes
 *   i[n] I[n]     n bytes (1 to 8, default 4)
 *   j J l L       8 bytes
 *   x[n]          n padding bytes (default 1), skipped / written as zero
 */
#include <string.h>

#include "lvfu.h"

struct item {
    int kind;                   /* 0 end, 'x' padding, 'i' signed, 'u' unsigned */
    size_t size;
};

static const char *
next_item(lua_State *L, const char *f, struct item *it)
{
    while (*f == '<' || *f == '=' || *f == ' ') {
        f++;
    }
    it->kind = 0;
    it->size = 0;
    if (*f == '\0') {
        return f;
    }
    switch (*f++) {
    case 'b': it->kind = 'i'; it->size = 1; return f;
    case 'B': it->kind = 'u'; it->size = 1; return f;
    case 'h': it->kind = 'i'; it->size = 2; return f;
    case 'H': it->kind = 'u'; it->size = 2; return f;
    case 'j': case 'l': it->kind = 'i'; it->size = 8; return f;
    case 'J': case 'L': it->kind = 'u'; it->size = 8; return f;
    case 'i': it->kind = 'i'; it->size = 4; break;
    case 'I': it->kind = 'u'; it->size = 4; break;
    case 'x': it->kind = 'x'; it->size = 1; break;
    default:
        luaL_error(L, "format: '%c' is not one of < b B h H i I j J l L x",
                   f[-1]);
    }
    if (*f >= '0' && *f <= '9') {
        size_t n = 0;

        while (*f >= '0' && *f <= '9' && n <= LVFU_PACK_MAX) {
            n = n * 10 + (size_t)(*f++ - '0');
        }
        if (n == 0 || (it->kind != 'x' && n > 8) || n > LVFU_PACK_MAX) {
            luaL_error(L, "format: bad size %d", (int)n);
        }
        it->size = n;
    }
    return f;
}

size_t
lvfu_pack_size(lua_State *L, const char *fmt, int *nvalues)
{
    struct item it;
    size_t total = 0;
    int n = 0;

    for (fmt = next_item(L, fmt, &it); it.kind != 0; fmt = next_item(L, fmt, &it)) {
        total += it.size;
        n += it.kind != 'x';
        if (total > LVFU_PACK_MAX) {
            luaL_error(L, "format: more than %d bytes", LVFU_PACK_MAX);
        }
    }
    if (nvalues != NULL) {
        *nvalues = n;
    }
    return total;
}

int
lvfu_unpack_mem(lua_State *L, const unsigned char *p, const char *fmt)
{
    struct item it;
    int n = 0;

    for (fmt = next_item(L, fmt, &it); it.kind != 0; fmt = next_item(L, fmt, &it)) {
        uint64_t v = 0;

        if (it.kind != 'x') {
            for (size_t i = 0; i < it.size; i++) {
                v |= (uint64_t)p[i] << (8 * i);
            }
            if (it.kind == 'i' && it.size < 8 && (v >> (8 * it.size - 1)) != 0) {
                v |= ~(uint64_t)0 << (8 * it.size);     /* sign-extend */
            }
            lua_pushinteger(L, (lua_Integer)v);
            n++;
        }
        p += it.size;
    }
    return n;
}

void
lvfu_pack_mem(lua_State *L, unsigned char *p, const char *fmt, int arg)
{
    struct item it;

    for (fmt = next_item(L, fmt, &it); it.kind != 0; fmt = next_item(L, fmt, &it)) {
        uint64_t v = 0;

        if (it.kind != 'x') {
            v = (uint64_t)luaL_checkinteger(L, arg++);
        }
        for (size_t i = 0; i < it.size; i++) {
            p[i] = (unsigned char)(i < 8 ? v >> (8 * i) : 0);
        }
        p += it.size;
    }
}
