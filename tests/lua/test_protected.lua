-- SPDX-License-Identifier: BSD-3-Clause
-- Copyright (c) 2026 the vfu authors.

-- Every argument a handler gets is built inside its protected call: with
-- the Lua state's memory used up, a region write's data, the DMA map info
-- and the migration strings fail one handler each (EIO, one log entry),
-- never the server (a Lua panic aborts it). The incoming migration stream
-- is bounded well below the memory cap, and a client leaving while
-- resuming leaves half a stream that the script never sees.
local H = dofile(arg[2] .. "/tests/lua/harness.lua")

-- A device that takes all the memory there is at load time and again when
-- bar0 offset 12 is written, and gives it back when offset 0 is.
local hog = H.write("hog.lua", [[
local vfu = require "vfu"
local hog, maps = nil, 0
local function grab(size) hog = { hog, string.rep("y", size) } end
local function grab_small() hog = { hog } end
local function fill()
  collectgarbage()
  collectgarbage("stop")      -- only the emergency collections from here
  local size = 1 << 20
  while size >= 64 do
    while pcall(grab, size) do end
    size = size // 2
  end
  while pcall(grab_small) do end
end
local function free()
  hog = nil
  collectgarbage("restart")
  collectgarbage()
end
local dev = vfu.device {
  vendor = 0x1234, device = 0x0002,
  bars = { [0] = { size = 1 << 16,
    read = function(off) if off == 4 then return maps end return 7 end,
    write = function(off, size, v)
      if off == 0 then free() elseif off == 12 then fill() end
    end } },
  dma = { map = function(info) maps = maps + 1 end,
          unmap = function(info) end },
}
fill()
return dev
]])

local s = H.start(hog, "--memory 16 --budget 1000")
local c = H.connect(s)
-- 64 KiB of region data cannot become a Lua string: one EIO
H.fails(H.EIO, c.write, c, "bar0", 0x100, ("z"):rep((1 << 16) - 0x100))
H.eq(c:read("bar0", 8, 4), 7, "serving after a region write without memory")
-- the map info table cannot be built: the handler fails, the map stands
assert(c:write("bar0", 12, 4, 1))     -- what loading left over is taken too
assert(c:dma_map(0x100000, 0x4000))
H.eq(c:read("bar0", 4, 4), 0, "the map handler did not run")
assert(c:dma_unmap(0x100000, 0x4000))
-- with the memory back, both work
assert(c:write("bar0", 0, 4, 1))
assert(c:write("bar0", 0x100, ("z"):rep(1 << 12)))
assert(c:dma_map(0x100000, 0x4000))
H.eq(c:read("bar0", 4, 4), 1, "the map handler ran")
c:close()
local c2 = H.connect(s)
H.eq(c2:read("bar0", 8, 4), 7, "the next client is served")
c2:close()
local log = H.stop(s)
assert(log:find("bar0 write handler failed"), log)
assert(log:find("dma map handler failed"), log)

-- A stream over the bound (a quarter of the 16 MiB cap) is refused as it
-- arrives; a 17 MiB one used to be taken whole and abort the server on
-- leaving resuming, as its string could not fit in the state.
local mig = H.write("mig.lua", [[
local vfu = require "vfu"
local st = { v = 5 }
local loads, leaves = 0, 0
return vfu.device {
  vendor = 0x1234, device = 0x0003,
  bars = { [0] = { size = 16,
    read = function(off)
      return ({ [0] = st.v, [4] = loads, [8] = leaves })[off] or 0 end,
    write = function(off, size, v) st.v = v end } },
  migration = {
    save = function() return tostring(st.v) end,
    load = function(s) loads = loads + 1; st.v = tonumber(s) end,
    transition = function(to, from)
      if from == "resume" then leaves = leaves + 1 end
    end,
  },
}
]])
local function record(kind, data)
  return string.pack("<c4c1xxxI8", "vfuL", kind, #data) .. data
end
s = H.start(mig, "--memory 16")
c = H.connect(s)
assert(c:mig_set("resuming"))
H.fails(nil, c.mig_write, c, record("S", ("9"):rep(17 << 20)))
H.fails(nil, c.mig_set, c, "stop")
c:close()
c = H.connect(s)
H.eq(c:read("bar0", 0, 4), 5, "served after an oversized stream")
H.eq(c:read("bar0", 4, 4), 0, "the oversized stream was not loaded")
-- a stream within the bound still migrates
assert(c:mig_set("resuming"))
assert(c:mig_write(record("S", "42")))
assert(c:mig_set("running"))
H.eq(c:read("bar0", 0, 4), 42, "a good stream loads")
H.eq(c:read("bar0", 4, 4), 1, "one load")
-- the client leaves while resuming: the device hears running, not load
assert(c:mig_set("resuming"))
assert(c:mig_write(record("S", "77")))
c:close()
c = H.connect(s)
H.eq(c:read("bar0", 8, 4), 3, "the device left resuming three times")
H.eq(c:read("bar0", 4, 4), 1, "the half-received stream was not loaded")
H.eq(c:read("bar0", 0, 4), 42, "the state is untouched")
-- a device reset while resuming abandons the stream as well, and the
-- device migrates normally afterwards
assert(c:mig_set("resuming"))
assert(c:mig_write(record("S", "88")))
assert(c:reset())
H.eq(c:read("bar0", 4, 4), 1, "a reset does not load the stream")
H.eq(c:mig_state(), "running", "reset to running")
assert(c:mig_set("resuming"))
assert(c:mig_write(record("S", "99")))
assert(c:mig_set("running"))
H.eq(c:read("bar0", 0, 4), 99, "a stream after the reset loads")
c:close()
log = H.stop(s)
assert(log:find("incoming migration stream over 4096 KiB"), log)
H.done("protected")
