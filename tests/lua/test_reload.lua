-- SPDX-License-Identifier: BSD-3-Clause
-- Copyright (c) 2026 the vfu authors.

-- Hot reload (vfu-lua --watch, SIGHUP): one client stays connected while
-- the device script is edited. A handler's behaviour changes on the next
-- access, the state survives (keys added by the new version keep their
-- initial values), a broken edit, a failing reload() and edits that change
-- what the client knows (a BAR's size, ids, IRQ counts, capabilities, ...)
-- are refused with the reason logged while the running version keeps
-- serving, and reload(old, held) converts the state and gets the held DMA
-- handles.
-- What the client gave stays: its DMA map, its MSI eventfd, the memory of
-- an mmap-able BAR; a timer keeps its remaining time and calls the new
-- version's function. Each reload is a "reload" event in the trace.
local H = dofile(arg[2] .. "/tests/lua/harness.lua")
local vfu = require "vfu"

-- The device, version by version: @READ0@ is what register 0 reads as,
-- @FIRE@ what the timer function does, @EXTRA@ more declaration fields.
local TEMPLATE = [[
local vfu = require "vfu"
local st = { count = 0, fired = 0, added = @ADDED@ }
local held, ticks = nil, 0
local dev
local function fire() @FIRE@ end
local function tick() ticks = ticks + 1 end
vfu.timer(20, tick, true)   -- every version arms its own
dev = vfu.device {
  name = "reload-test", vendor = 0x1234, device = 0x5678,
  bars = {
    [0] = { size = @SIZE@,
      read = function(off)
        if off == 0 then return @READ0@ end
        if off == 8 then return st.fired end
        if off == 16 then return held and string.unpack("<I4", held:read(0, 4)) or 0xdead end
        if off == 24 then return st.added end
        if off == 32 then return ticks end
        return 0
      end,
      write = function(off, size, v)
        if off == 0 then st.count = st.count + 1
        elseif off == 8 then vfu.timer(v, fire)
        elseif off == 16 then held = assert(dev:dma_hold(v, 4096))
        elseif off == 24 then assert(dev:irq(0))
        elseif off == 32 then tick()
        end
      end },
    [1] = { size = 0x1000, mmap = true },
  },
  irqs = { msi = 1 }, caps = { { "msi", vectors = 1 } },
  dma = true,
  migration = { state = st },
  @EXTRA@
}
return dev
]]

local function version(t)
  local s = TEMPLATE
  for k, v in pairs(t) do s = s:gsub("@" .. k .. "@", (tostring(v):gsub("%%", "%%%%"))) end
  return s
end

local V1 = { READ0 = "st.count", FIRE = "st.fired = 1", SIZE = "0x1000",
             ADDED = "nil", EXTRA = "" }
local V2 = { READ0 = "st.count + 100", FIRE = "st.fired = 2", SIZE = "0x1000",
             ADDED = "7", EXTRA = "" }
local V3 = { READ0 = "st.n + 1000", FIRE = "st.fired = 3", SIZE = "0x1000",
             ADDED = "nil", EXTRA = [[
  reload = function(old, list)
    -- version 3 counts in st.n (from version 2, or from itself on a
    -- later reload); the held handle comes back in the list
    st.n, st.fired, st.added = old.n or old.count, old.fired, old.added
    held = list[1]
  end,]] }
local BAR = {}
for k, v in pairs(V2) do BAR[k] = v end
BAR.SIZE = "0x2000"

local script = H.tmp .. "/reload_dev.lua"
local s
local trace = H.tmp .. "/reload.trace"

-- Replace the script as editors do: write a new file and rename it over
-- the old (rename = true), or rewrite it in place.
local function edit(text, rename)
  local path = rename and script .. ".new" or script
  local f = assert(io.open(path, "w"))
  f:write(text)
  f:close()
  if rename then assert(os.rename(path, script)) end
end

-- Wait for the n-th reload event (and no more); returns its trace line.
local function reloaded(n, path)
  local ev, got = H.wait_event(path or trace, "reload", n)
  H.eq(got, n, "reload events")
  return ev
end

local nreload = 0
local function next_reload()
  nreload = nreload + 1
  return reloaded(nreload)
end

edit(version(V1))
os.remove(trace)
s = H.start(script, "--watch --trace " .. trace, "reload")
H.watchdog(s, 100)
local c = H.connect(s)

-- what the client gives: DMA memory with a marker, an MSI eventfd, BAR1 bytes
local IOVA = 0x100000
assert(c:dma_map(IOVA, 0x4000))
c:mem_write(IOVA, string.pack("<I4", 0xc0ffee))
assert(c:irq_enable("msi", 0, 1))
assert(c:write("bar1", 0x10, 4, 0x5a5a5a5a))

assert(c:write("bar0", 0, 4, 1))
assert(c:write("bar0", 0, 4, 1))
H.eq(c:read("bar0", 0, 4), 2, "version 1 counts")
H.eq(c:read("bar0", 24, 4), 0, "version 1 has no added key")
assert(c:write("bar0", 16, 8, IOVA))            -- held by version 1
H.eq(c:read("bar0", 16, 4), 0xc0ffee, "held DMA in version 1")

-- 1. a handler changes; the state survives; a key the new version added
-- keeps its initial value
edit(version(V2), true)
local ev = next_reload()
assert(ev:find('"ok":true', 1, true), ev)
assert(ev:find('"pause_ms":[%d.]+'), ev)
H.eq(c:read("bar0", 0, 4), 102, "version 2 reads count + 100, count kept")
H.eq(c:read("bar0", 24, 4), 7, "a key version 2 added keeps its initial value")
-- version 2 kept no handle (no reload()): version 1's is gone
H.eq(c:read("bar0", 16, 4), 0xdead, "held handles of version 1 released")
assert(c:write("bar0", 16, 8, IOVA))            -- held again by version 2
H.eq(c:read("bar0", 16, 4), 0xc0ffee, "DMA map survives the reload")
assert(c:write("bar0", 24, 4, 0))               -- dev:irq(0)
H.eq(c:irq_wait("msi", 0, 2000), 1, "the MSI eventfd survives the reload")
H.eq(c:read("bar1", 0x10, 4), 0x5a5a5a5a, "BAR1 memory survives the reload")

-- 2. a broken edit is refused; version 2 keeps serving
edit(version(V2):gsub("return dev\n$", "return dev +\n"))
ev = next_reload()
assert(ev:find('"ok":false', 1, true), ev)
assert(ev:find('"reason":"[^"]*reload_dev.lua:%d+:'), "the reason names the line: " .. ev)
H.eq(c:read("bar0", 0, 4), 102, "version 2 still serves after a broken edit")
-- a script failing when run is refused too
edit(version(V2):gsub("local dev\n", "local dev\nerror('half-written edit')\n"), true)
ev = next_reload()
assert(ev:find('"ok":false', 1, true) and ev:find("half-written edit", 1, true), ev)

-- 3. a BAR the client knows cannot change size
edit(version(BAR))
ev = next_reload()
assert(ev:find('"ok":false', 1, true), ev)
assert(ev:find("bar0: size 0x2000, was 0x1000", 1, true), ev)
H.eq(c:read("bar0", 0, 4), 102, "version 2 still serves after a BAR change")
assert(c:write("bar0", 0, 4, 1))
H.eq(c:read("bar0", 0, 4), 103, "and still counts")
local log = H.read(s.log)
assert(log:find("refused (the running version keeps serving): bar0: size 0x2000, was 0x1000", 1, true), log)

-- the rest of what the client knows cannot change either
local INCOMPATIBLE = {
  { "vendor = 0x1234", "vendor = 0x1235", "identity: 1235:5678 subsystem 0000:0000, was 1234:5678" },
  { "irqs = { msi = 1 }", "irqs = { msi = 1, intx = 0, msix = 4 }", "irqs.msix: 4, was 0" },
  { '{ "msi", vectors = 1 }', '{ "msi", vectors = 2 }', "caps[1] (msi): changed" },
  { "[1] = { size = 0x1000, mmap = true }", "[1] = { size = 0x1000, mmap = true }, [3] = { size = 0x1000, mmap = true }", "bar3: added in the new version" },
  { "[1] = { size = 0x1000, mmap = true }", "[1] = { size = 0x1000, mmap = true, sparse = { { 0, 0x1000 } } }", "bar1: what the client may mmap changed" },
  { "[1] = { size = 0x1000, mmap = true }", "[1] = { size = 0x1000, mmap = true, prefetchable = true }", "bar1: its kind changed" },
  { "dma = true", "dma = false", "dma: missing in the new version" },
  { "migration = { state = st },", "", "migration: missing in the new version" },
}
for _, t in ipairs(INCOMPATIBLE) do
  local text, n = version(V2):gsub(t[1]:gsub("%p", "%%%0"), (t[2]:gsub("%%", "%%%%")))
  H.eq(n, 1, "variant applies: " .. t[2])
  edit(text, true)
  ev = next_reload()
  assert(ev:find('"ok":false', 1, true), ev)
  assert(ev:find(t[3], 1, true), ("want reason %q: %s"):format(t[3], ev))
end
H.eq(c:read("bar0", 0, 4), 103, "version 2 serves after eight refused edits")

-- a timer armed by version 2, due after version 3 takes over
local armed_at = vfu.now()
assert(c:write("bar0", 8, 4, 3000))

-- a reload() that fails leaves the running version as it was, its held
-- handle included, though the failing version had taken it again
local BAD = {}
for k, v in pairs(V3) do BAD[k] = v end
BAD.EXTRA = [[reload = function(old, list) assert(#list == 1); error("cannot convert") end,]]
edit(version(BAD), true)
ev = next_reload()
assert(ev:find('"ok":false', 1, true) and ev:find("reload failed", 1, true), ev)
assert(H.read(s.log):find("cannot convert", 1, true), "the log has the reload() error")
H.eq(c:read("bar0", 0, 4), 103, "version 2 still serves after a failed reload()")
H.eq(c:read("bar0", 16, 4), 0xc0ffee, "version 2's held handle still works")

-- 4. reload(old, held) converts the state and gets the held handles
vfu.sleep(500)
edit(version(V3), true)
ev = next_reload()
assert(ev:find('"ok":true', 1, true), ev)
-- the one-shot timer is carried over; the tick, which version 3 armed
-- itself, is not doubled
assert(ev:find('"timers":1,', 1, true) or ev:find('"timers":1}', 1, true),
       "one timer carried over: " .. ev)
local t0 = c:read("bar0", 32, 4)
vfu.sleep(200)
assert(c:read("bar0", 32, 4) > t0, "version 3's periodic tick runs")
H.eq(c:read("bar0", 0, 4), 1003, "version 3 converted count into n")
H.eq(c:read("bar0", 24, 4), 7, "version 3 took what it wanted")
H.eq(c:read("bar0", 16, 4), 0xc0ffee, "version 3 got version 2's held handle")
c:mem_write(IOVA, string.pack("<I4", 0xbeef))
H.eq(c:read("bar0", 16, 4), 0xbeef, "the handle reads the client's memory")

-- the timer fires in version 3's function, on its first schedule
local fired_at
for _ = 1, 400 do
  local f = c:read("bar0", 8, 4)
  if f ~= 0 then
    H.eq(f, 3, "the carried timer calls version 3's function")
    fired_at = vfu.now()
    break
  end
  vfu.sleep(10)
end
assert(fired_at, "the carried timer never fired")
local took = fired_at - armed_at
assert(took >= 2900 and took < 3700,
       ("the timer kept its remaining time: fired %d ms after arming, 3000 wanted"):format(took))

-- 5. SIGHUP reloads too, here with no change at all
os.execute("kill -HUP " .. s.pid)
ev = next_reload()
assert(ev:find('"ok":true', 1, true), ev)
H.eq(c:read("bar0", 0, 4), 1003, "state kept over a SIGHUP reload")

-- one connection all along: the server never saw its client leave
assert(not H.read(trace):find('"kind":"lost_conn"', 1, true), "the client was dropped")
c:close()
log = H.stop(s)
assert(log:find("reloaded " .. script .. " (#1)", 1, true), log)

-- Without --watch a change on disk does nothing; SIGHUP reloads.
local trace2 = H.tmp .. "/reload2.trace"
edit(version(V1))
os.remove(trace2)
local s2 = H.start(script, "--trace " .. trace2, "reload2")
c = H.connect(s2)
assert(c:write("bar0", 0, 4, 1))
edit(version(V2), true)
vfu.sleep(300)
H.eq(#H.trace_events(trace2, "reload"), 0, "no --watch, no reload on a change")
H.eq(c:read("bar0", 0, 4), 1, "version 1 still")
os.execute("kill -HUP " .. s2.pid)
reloaded(1, trace2)
H.eq(c:read("bar0", 0, 4), 101, "SIGHUP reloaded version 2")
-- with no client connected, and the next client finds the new version
c:close()
edit(version(V3), true)
os.execute("kill -HUP " .. s2.pid)
assert(reloaded(2, trace2):find('"ok":true', 1, true))
c = H.connect(s2)
H.eq(c:read("bar0", 0, 4), 1001, "a new client meets version 3 and the state")
c:close()
H.stop(s2)
H.done("reload")
