-- SPDX-License-Identifier: BSD-3-Clause
-- Copyright (c) 2026 the vfu authors.

-- vfu.buffer (memory and file-backed), its pack/unpack/fill/is_zero/sync,
-- to_dma/from_dma through page address lists into a client's memory
-- (mapped and fd-less), and sg:pack/unpack on held client memory.
local H = dofile(arg[2] .. "/tests/lua/harness.lua")
local vfu = require "vfu"

-- === in this process: memory and files ==========================================

local b = assert(vfu.buffer(1 << 20))
H.eq(#b, 1 << 20, "size")
H.eq(b:is_zero(0, 1 << 20), true, "starts zeroed")
b:write(100, "hello")
H.eq(b:read(99, 7), "\0hello\0", "read/write")
H.eq(b:is_zero(0, 1 << 20), false, "not zero any more")
H.eq(b:is_zero(0, 100), true, "zero before")
H.eq(b:is_zero(105, 1000), true, "zero after")
b:fill(100, 3, 0x41)
H.eq(b:read(100, 5), "AAAlo", "fill with a byte")
b:fill(100, 5)
H.eq(b:is_zero(0, 1 << 20), true, "fill with zeros")

b:pack(8, "<I4I4x2HBJ", 0x11223344, -1, 0xbeef, 0xff, -2)
H.eq(b:read(8, 21), string.pack("<I4I4xxHBj", 0x11223344, 0xffffffff, 0xbeef, 0xff, -2),
     "pack lays out like string.pack")
local u1, u2, h, by, j = b:unpack(8, "<I4I4x2HBJ")
H.eq(u1, 0x11223344, "I4")
H.eq(u2, 0xffffffff, "I4 of -1 is unsigned")
H.eq(h, 0xbeef, "H")
H.eq(by, 0xff, "B")
H.eq(j, -2, "J: 64 bits")
local si4, sh, sb = b:unpack(12, "<i4x2hb")
H.eq(si4, -1, "i4 sign-extends")
H.eq(sh, 0xbeef - 0x10000, "h sign-extends")
H.eq(sb, -1, "b sign-extends")
H.eq(b:unpack(8, "<i3"), 0x223344, "i3")
H.eq(select("#", b:unpack(0, "<x64")), 0, "padding only")
H.raises("format", b.unpack, b, 0, "<q")
H.raises("bad size", b.unpack, b, 0, "<I9")
H.raises("bad size 300", b.unpack, b, 0, "<x300")
H.raises("more than 256 bytes", b.unpack, b, 0, "<x200x200")
H.raises("range outside", b.unpack, b, (1 << 20) - 4, "<J")
H.raises("range outside", b.read, b, -1, 2)
H.raises("range outside", b.write, b, (1 << 20) - 1, "ab")
H.raises("range outside", b.fill, b, 0, (1 << 20) + 1)
H.raises("number expected", b.pack, b, 0, "<I4I4", 1)
H.eq(b:unpack(0, "<I4"), 0, "a failed pack writes nothing")
H.raises("size out of range", vfu.buffer, 0)
H.raises("size out of range", vfu.buffer, -5)
assert(tostring(b):find("1048576 bytes"), tostring(b))
b:close()
H.eq(#b, 0, "closed")
H.raises("closed", b.read, b, 0, 1)
b:close()

local path = H.write("store.img", ("0123456789abcdef"):rep(512))
local fb = assert(vfu.buffer(path))
H.eq(#fb, 8192, "a file's size")
H.eq(fb:read(16, 4), "0123", "a file's data")
fb:write(4096, "XYZ")
assert(fb:sync())
assert(fb:sync(4000, 200))
fb:close()
H.eq(H.read(path):sub(4097, 4100), "XYZ3", "written through to the file")
local ro = assert(vfu.buffer(path, "r"))
H.eq(ro:read(4096, 3), "XYZ", "read-only")
H.raises("read%-only", ro.write, ro, 0, "a")
H.raises("read%-only", ro.fill, ro, 0, 1)
ro:close()
H.fails(H.ENOENT, vfu.buffer, H.tmp .. "/missing.img")
H.fails(21, vfu.buffer, H.tmp)                -- EISDIR
H.fails(H.EINVAL, vfu.buffer, H.tmp, "r")    -- not a regular file
H.fails(H.EINVAL, vfu.buffer, H.write("empty.img", ""))

-- === through a device: client memory ===========================================

local script = H.write("bufdev.lua", [[
local vfu = require "vfu"
local b = assert(vfu.buffer(1 << 16))
for i = 0, (1 << 16) - 4, 4 do b:pack(i, "<I4", i) end
local base, nofd, result = 0, 0, ""
local dev
local function res(...)
  local t = table.pack(...)
  for i = 1, t.n do t[i] = tostring(t[i]) end
  return table.concat(t, ",", 1, t.n)
end
local PG = 4096
local cases = {
  function() return res(b:to_dma(dev, 0, PG, PG, base)) end,
  function() return res(b:to_dma(dev, 0, 2 * PG, PG, base + 0x800, base + 0x2000, base + 0x3000)) end,
  function() return res(b:to_dma(dev, 0, 3 * PG, PG, base, { base + 0x5000, base + 0x4000 })) end,
  function() return res(b:to_dma(dev, 100, 10000, 0, base + 3)) end,
  function()
    local ok = b:from_dma(dev, 0x8000, 2 * PG, PG, base + 0x4000, base)
    return res(ok, b:unpack(0x8000, "<I4"), b:unpack(0x9000, "<I4"))
  end,
  function() local ok, _, e = b:to_dma(dev, 0, 2 * PG, PG, base, base + 0x1008); return res(ok, e) end,
  function() local ok, _, e = b:to_dma(dev, 0, PG, PG, 0x70000000); return res(ok, e) end,
  function() return res(pcall(b.to_dma, b, dev, 0, 3 * PG, PG, base, base + PG)) end,
  function() return res(b:to_dma(dev, 0, 100, PG, nofd + 8), b:from_dma(dev, 0xf000, 100, PG, nofd + 8)) end,
  function()
    local sg = assert(dev:dma_hold(base, 2 * PG, "rw"))
    sg:pack(PG - 2, "<I4h", 0xa1b2c3d4, -3)
    local a, s = sg:unpack(PG - 2, "<I4h")
    local r = assert(dev:dma_hold(base, PG, "r"))
    local ok = pcall(r.pack, r, 0, "<B", 1)
    local out = res(a, s, ok, pcall(sg.unpack, sg, 2 * PG - 2, "<I4"))
    sg:release(); r:release()
    return out
  end,
  function() return res(pcall(b.to_dma, b, dev, 0, PG, 1000, base)) end,
  function() return res(b:to_dma(dev, 0, 6000, 0, nofd + 100), b:from_dma(dev, 0xe000, 6000, 0, nofd + 100)) end,
  function() return res(b:to_dma(dev, 0, 0, PG, 0x70000000)) end,
}
dev = vfu.device {
  vendor = 1, device = 2, dma = true,
  bars = { [0] = { size = 0x1000,
    read = function(off, size)
      if off == 0x100 then return (result .. ("\0"):rep(size)):sub(1, size) end
      if off == 0x200 then return b:unpack(0xf000, "<I4") end
      return 0
    end,
    write = function(off, size, v)
      if off == 0 then base = v
      elseif off == 8 then nofd = v
      elseif off == 0x10 then
        local ok, r = pcall(cases[v])
        result = ok and r or "error:" .. tostring(r)
      end
    end } },
}
return dev
]])
local s = H.start(script, "", "bufdev")
H.watchdog(s, 60)
local c = H.connect(s)
local BASE, NOFD, PG = 0x100000, 0x200000, 4096
assert(c:dma_map(BASE, 8 * PG))
assert(c:dma_map(NOFD, PG, "rw", false))
assert(c:dma_map(NOFD + PG, PG, "rw", false))      -- a second map right after
assert(c:write("bar0", 0, 8, BASE))
assert(c:write("bar0", 8, 8, NOFD))
local function run(n)
  assert(c:write("bar0", 0x10, 8, n))
  return (c:read("bar0", 0x100, 256, true):gsub("%z+$", ""))
end
local function word(addr) return string.unpack("<I4", c:mem_read(addr, 4)) end

H.eq(run(1), "true", "one page")
H.eq(word(BASE + 4092), 4092, "one page copied")
c:mem_write(BASE, ("\0"):rep(8 * PG))
H.eq(run(2), "true", "first address to its page's end, then pages")
H.eq(word(BASE + 0x800), 0, "buffer byte 0 at the first address")
H.eq(word(BASE + 0xffc), 0x7fc, "first run ends at the page end")
H.eq(word(BASE + 0x2000), 0x800, "second address: the next bytes")
H.eq(word(BASE + 0x3000), 0x1800, "third address")
H.eq(word(BASE + 0x3800), 0, "nothing past len")
H.eq(run(3), "true", "an address table")
H.eq(word(BASE + 0x5000), 0x1000, "table entry 1")
H.eq(word(BASE + 0x4000), 0x2000, "table entry 2")
H.eq(run(4), "true", "page size 0: one contiguous range")
H.eq(word(BASE + 3), 100, "contiguous start")
H.eq(word(BASE + 3 + 9996), 10096, "contiguous end")
c:mem_write(BASE + 0x4000, string.pack("<I4", 0xabcd))
c:mem_write(BASE, string.pack("<I4", 0x1234))
H.eq(run(5), "true,43981,4660", "from_dma")
H.eq(run(6), "nil,22", "an unaligned page address is EINVAL")
H.eq(run(7), "nil,2", "unmapped memory is ENOENT")
assert(run(8):find("^false,.*addresses cover 8192 of 12288"), "too few addresses raise")
H.eq(run(9), "true,true", "fd-less memory through the client")
H.eq(c:mem_read(NOFD + 8, 4), string.pack("<I4", 0), "buffer byte 0 landed")
H.eq(c:read("bar0", 0x200, 4), 0, "and came back")
local r10 = run(10)
assert(r10:find("^2712847316,%-3,false,false,"), r10)
H.eq(c:mem_read(BASE + PG - 2, 6), string.pack("<I4h", 0xa1b2c3d4, -3), "sg:pack across pages")
assert(r10:find("range outside the held memory"), r10)
assert(run(11):find("^false,.*power of two"), "page size 1000")
-- across two fd-less maps: messages go a page at a time
H.eq(run(12), "true,true", "6000 bytes across two fd-less maps")
H.eq(c:mem_read(NOFD + 100, 8), string.pack("<I4I4", 0, 4), "first map")
H.eq(c:mem_read(NOFD + PG, 4), string.pack("<I4", PG - 100), "second map")
H.eq(run(13), "true", "nothing to move: no translation")
c:close()
H.stop(s)
H.done("buffer")
