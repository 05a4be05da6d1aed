-- SPDX-License-Identifier: BSD-3-Clause
-- Copyright (c) 2026 the vfu authors.

-- The device of examples/server.c, in Lua: a made-up PCI device, vendor
-- 0x1234 device 0x0001.
--
-- BAR0, 4 KiB of 64-bit registers (8-byte aligned accesses only):
--   0x00 TIMER       seconds since the epoch. Writing arms a timer for that
--                    time (0 disarms); reads return the armed time or 0.
--                    On expiry the device raises vector 0 and then vector 1
--                    of the active interrupt type (MSI has both, INTx one).
--   0x08 DMA_ADDR    IOVA of the device's DMA window, 64 pages; 0: no DMA
--   0x10 DOORBELL    writing V DMA-writes V (8 bytes) at DMA_ADDR +
--                    (V % 64) * 4096 and reads it back; so does TIMER
--   0x18 DMA_COUNT   DMA writes done and read back correctly (RO)
--   0x20 DMA_ERRORS  DMA writes that failed (RO)
--   0x28 IRQ_COUNT   timer expiries (RO)
-- BAR1, 1 MiB of storage: messages reach it anywhere; the client may mmap
--   [0, 256 KiB) and [512 KiB, 768 KiB).
--
-- Migration: pre-copy sends all of BAR1 in its first round and then the
-- pages written by messages since; stop-and-copy sends the pages still
-- dirty, every mmap-able page (stores through a mapping are invisible to
-- the device), the registers and what the armed timer still had to run.
-- The timer is paused while the device is stopped and resumes with that
-- remaining time on the destination once it runs.
--
-- A reset (from the client, or the client going away) puts the registers
-- and the timer back to power-on values; BAR1 is storage and keeps its
-- contents.

local vfu = require "vfu"
local state = require "state"

local PAGE, BAR1_SIZE, DMA_SLOTS = 4096, 1 << 20, 64
local BAR1_PAGES = BAR1_SIZE // PAGE
local AREAS = { { 0, 256 << 10 }, { 512 << 10, 256 << 10 } }

local regs = { timer = 0, dma_addr = 0, dma_count = 0, dma_errors = 0,
               irq_count = 0 }
-- the timer: counting down in `tick` while the device runs, else what is
-- left of it is in `remaining_ms`
local clock = { armed = false, remaining_ms = 0, deadline = 0, tick = nil }
local dirty = {}            -- BAR1 page -> true: to send
local running = true
local dev

local function log(fmt, ...) dev:log(fmt:format(...)) end

-- ---- the timer ----

local function expired()
  clock.tick, clock.armed, clock.remaining_ms = nil, false, 0
  regs.timer = 0
  regs.irq_count = regs.irq_count + 1
  log("timer expired: raising vectors 0 and 1")
  for v = 0, 1 do
    local ok, err = dev:irq(v)  -- fails while the client listens on nothing
    if not ok then log("vector %d not raised: %s", v, err) end
  end
end

local function timer_run()
  if clock.armed and not clock.tick then
    local ms = math.max(clock.remaining_ms, 1)
    clock.deadline = vfu.now() + ms
    clock.tick = vfu.timer(ms, expired)
  end
end

local function timer_pause()
  if clock.tick then
    clock.remaining_ms = math.max(clock.deadline - vfu.now(), 1)
    clock.tick:cancel()
    clock.tick = nil
  end
end

local function timer_disarm()
  if clock.tick then clock.tick:cancel() end
  clock.tick, clock.armed, clock.remaining_ms = nil, false, 0
end

local function timer_write(when)
  timer_disarm()
  regs.timer = when
  if when == 0 then return end
  clock.armed = true
  -- a time already past fires at once
  clock.remaining_ms = math.max((when - os.time()) * 1000, 1)
  if running then timer_run() end
  log("timer armed for %d (in %d ms)", when, clock.remaining_ms)
end

-- ---- DMA ----

-- Write a completion record into guest memory and read it back.
local function dma_demo(v)
  if regs.dma_addr == 0 then return end
  local iova = regs.dma_addr + (v % DMA_SLOTS) * PAGE
  local bytes = string.pack("<i8", v)
  local ok, err = dev:dma_write(iova, bytes)
  local back
  if ok then back, err = dev:dma_read(iova, 8) end
  if back == bytes then
    regs.dma_count = regs.dma_count + 1
  else
    log("DMA at 0x%x failed: %s", iova, err or "read back something else")
    regs.dma_errors = regs.dma_errors + 1
  end
end

-- ---- regions ----

local reg_at = { [0x00] = "timer", [0x08] = "dma_addr", [0x18] = "dma_count",
                 [0x20] = "dma_errors", [0x28] = "irq_count" }

local function check0(off, size)
  if size ~= 8 or off % 8 ~= 0 then
    error(("BAR0: 8-byte aligned accesses only (%d bytes at 0x%x)"):format(size, off), 0)
  end
end

local bar0 = {
  size = 0x1000,
  read = function(off, size)
    check0(off, size)
    local name = reg_at[off]
    return name and regs[name] or 0
  end,
  write = function(off, size, v)
    check0(off, size)
    if off == 0x00 then timer_write(v); dma_demo(v)
    elseif off == 0x08 then regs.dma_addr = v
    elseif off == 0x10 then dma_demo(v)
    end                     -- read-only registers and holes ignore writes
  end,
}

local function bytes_of(size, v)
  if type(v) == "string" then return v end
  -- integers come for 1, 2, 4 and 8-byte accesses, unsigned below 8
  return size == 8 and string.pack("<i8", v) or string.pack("<I" .. size, v)
end

local bar1 = {
  size = BAR1_SIZE, mmap = true, sparse = AREAS,
  read = function(off, size) return dev:mem_read("bar1", off, size) end,
  write = function(off, size, v)
    dev:mem_write("bar1", off, bytes_of(size, v))
    for p = off // PAGE, (off + size - 1) // PAGE do dirty[p] = true end
  end,
}

-- ---- migration ----

-- A page set: count, then (page number, bytes) each.
local function pack_pages(list)
  local out = { string.pack("<I4", #list) }
  for _, p in ipairs(list) do
    out[#out + 1] = string.pack("<I4", p) .. dev:mem_read("bar1", p * PAGE, PAGE)
  end
  return table.concat(out)
end

local function unpack_pages(s, pos)
  local n
  n, pos = string.unpack("<I4", s, pos)
  for _ = 1, n do
    local p
    p, pos = string.unpack("<I4", s, pos)
    assert(p < BAR1_PAGES and pos + PAGE - 1 <= #s, "bad page record")
    dev:mem_write("bar1", p * PAGE, s:sub(pos, pos + PAGE - 1))
    pos = pos + PAGE
  end
  return pos
end

local function take_dirty(all)
  local list = {}
  for p = 0, BAR1_PAGES - 1 do
    if all or dirty[p] then list[#list + 1] = p end
  end
  dirty = {}
  return list
end

local first_round = true

local function precopy()
  local list = take_dirty(first_round)
  first_round = false
  if #list == 0 then return nil end
  return pack_pages(list)
end

local function save()
  local list, seen = take_dirty(first_round), {}
  for _, p in ipairs(list) do seen[p] = true end
  for _, a in ipairs(AREAS) do
    for p = a[1] // PAGE, (a[1] + a[2]) // PAGE - 1 do
      if not seen[p] then list[#list + 1] = p end
    end
  end
  table.sort(list)
  return pack_pages(list) .. state.save {
    regs = regs, armed = clock.armed, remaining_ms = clock.remaining_ms,
  }
end

local function load(s, pre)
  for _, round in ipairs(pre) do unpack_pages(round, 1) end
  local pos = unpack_pages(s, 1)
  local t = {}
  state.load(t, s:sub(pos))
  for k in pairs(regs) do regs[k] = assert(math.tointeger(t.regs[k]), "bad registers") end
  timer_disarm()
  clock.armed, clock.remaining_ms = t.armed == true, t.remaining_ms or 0
  log("state loaded: timer %s", clock.armed and ("%d ms left"):format(clock.remaining_ms) or "idle")
end

local function transition(to)
  running = to == "running" or to == "pre_copy"
  if running then timer_run() else timer_pause() end
  if to == "running" or to == "resume" then first_round = true end
end

local function reset(kind)
  log("reset (%s)", kind == "lost_conn" and "client gone" or "client asked")
  timer_disarm()
  for k in pairs(regs) do regs[k] = 0 end
end

dev = vfu.device {
  name = "server", vendor = 0x1234, device = 0x0001,
  subsystem_vendor = 0x1234, subsystem = 0x0001, class = 0xff0000,
  bars = { [0] = bar0, [1] = bar1 },
  irqs = { intx = 1, msi = 2 },
  caps = { { "msi", vectors = 2 } },
  reset = reset,
  dma = {
    map = function(i) log("DMA region [0x%x, +0x%x) added, %s", i.iova, i.len,
                          i.mappable and "mapped" or "by message") end,
    unmap = function(i) log("DMA region [0x%x, +0x%x) removed", i.iova, i.len) end,
  },
  migration = { transition = transition, precopy = precopy, save = save, load = load },
}
return dev
