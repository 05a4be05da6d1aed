-- SPDX-License-Identifier: BSD-3-Clause
-- Copyright (c) 2026 the vfu authors.

-- Every shipped device (devices/*.lua, sandboxed, default budget and
-- memory) against a hostile client: random accesses of every size to every
-- region (in range, across the end, far past it), region writes of up to 1
-- MiB, DMA maps and unmaps that overlap or were never made, resets,
-- interrupt setup, migration streams over the bound (64 MiB, what used to
-- abort every device as it left resuming), malformed and cut off
-- by a disconnect while resuming, raw requests of every command with
-- garbage payloads, and a client that leaves in the middle of all that.
-- Each device must then serve the next client and stop cleanly.
local H = dofile(arg[2] .. "/tests/lua/harness.lua")

local DEVICES = {
  { "gpio", 0x494f, 0x0dc8 },
  { "edu", 0x1234, 0x11e8 },
  { "server", 0x1234, 0x0001 },
}
local REGIONS = { "bar0", "bar1", "bar2", "bar3", "bar4", "bar5", "rom",
                  "config", "vga" }

local function record(kind, data)
  return string.pack("<c4c1xxxI8", "vfuL", kind, #data) .. data
end

local function hostile(c)
  math.randomseed(12)
  local sizes = {}
  for _, r in ipairs(REGIONS) do
    local info = c:region_info(r)
    sizes[r] = info and info.size or 0
  end
  assert(c:dma_map(0x100000, 0x10000))
  assert(c:dma_map(0x200000, 0x1000, "r"))
  c:irq_enable("intx")
  c:irq_enable("msi", 0, 1)
  for _ = 1, 3000 do
    local r = REGIONS[math.random(#REGIONS)]
    local size = ({ 1, 2, 4, 8, 3, 16, 64 })[math.random(7)]
    local top = math.max(sizes[r], 16)
    local off = math.random(0, top + 16) & ~(size > 8 and 0 or size - 1)
    if math.random(2) == 1 then
      c:read(r, off, size)
    elseif size == 1 or size == 2 or size == 4 or size == 8 then
      -- values that look like addresses in the DMA maps, and not
      local v = ({ 0x100000 + math.random(0, 0xffff), math.random(0, 1 << 31),
                   -1, 0 })[math.random(4)]
      c:write(r, off, size, v)
    else
      c:write(r, off, ("\xff"):rep(size))
    end
  end
  for _, r in ipairs(REGIONS) do
    c:write(r, 0, ("\xa5"):rep(1 << 20))
    c:write(r, math.max(sizes[r] - 2, 0), "abcd")
    c:read(r, 1 << 40, 4)
  end
  c:dma_unmap(0x100000, 0x8000)           -- part of a map
  c:dma_unmap(0x300000, 0x1000)           -- never mapped
  assert(c:dma_map(0x100000, 0x10000) or true)
  c:reset()
  -- migration: a stream over the bound, a malformed one, then half of one
  if c:mig_set("resuming") then
    -- one record as large as the old limit, sent a MiB at a time
    local len = (64 << 20) - 16
    local ok = c:mig_write(string.pack("<c4c1xxxI8", "vfuL", "S", len))
    local mib = ("9"):rep(1 << 20)
    while ok and len > 0 do
      ok = c:mig_write(len >= #mib and mib or mib:sub(1, len))
      len = len - #mib
    end
    c:mig_set("running")
    c:mig_set("resuming")
    c:mig_write(record("S", "\0\1\2garbage") .. "trailing")
    c:mig_set("running")
  end
  c:mig_set("stop_copy")
  c:mig_read()
  c:mig_set("running")
  -- raw requests: every command, empty and garbage payloads
  for cmd = 0, 40 do
    c:call(cmd, "")
    c:call(cmd, ("\xff"):rep(math.random(1, 64)))
  end
  c:negotiate()
  -- and leave in the middle of receiving a migration stream
  if c:mig_set("resuming") then c:mig_write(record("S", "half")) end
  c:close()
end

for _, d in ipairs(DEVICES) do
  local name, vid, did = table.unpack(d)
  local s = H.start(H.src .. "/devices/" .. name .. ".lua", "", "hostile_" .. name)
  H.watchdog(s, 60)
  hostile(H.connect(s))
  -- a second hostile client that leaves at once, mid-request
  local c = H.connect(s)
  c:dma_map(0x100000, 0x1000)
  c:close()
  c = H.connect(s)
  H.eq(c:read("config", 0, 2), vid, name .. ": vendor id for the next client")
  H.eq(c:read("config", 2, 2), did, name .. ": device id for the next client")
  c:close()
  local log = H.stop(s)
  assert(not log:find("unprotected Lua error"), log)
end
H.done("hostile_devices")
