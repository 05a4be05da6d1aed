-- SPDX-License-Identifier: BSD-3-Clause
-- Copyright (c) 2026 the vfu authors.

-- Timers on the device's event loop: a periodic timer counts, a one-shot
-- fires once, a cancelled one never; a failing timer handler is logged and
-- the device keeps serving. Trace output is JSON lines.
local H = dofile(arg[2] .. "/tests/lua/harness.lua")
local vfu = require "vfu"

local script = H.write("ticker.lua", [[
local vfu = require "vfu"
local ticks, once, never = 0, 0, 0
vfu.timer(10, function() ticks = ticks + 1 end, true)
vfu.timer(10, function() once = once + 1 end)
vfu.timer(10, function() never = never + 1 end):cancel()
vfu.timer(20, function() error("timer boom") end)
return vfu.device {
  vendor = 1, device = 2,
  bars = { [0] = { size = 16,
    read = function(off) return ({ [0] = ticks, [4] = once, [8] = never })[off] or 0 end,
    write = function() end } },
}
]])
local trace = H.tmp .. "/ticker.trace"
local s = H.start(script, "--trace " .. trace)
local c = H.connect(s)
vfu.sleep(200)
local t1 = c:read("bar0", 0, 4)
vfu.sleep(100)
local t2 = c:read("bar0", 0, 4)
assert(t1 > 0 and t2 > t1, ("periodic timer counts: %d then %d"):format(t1, t2))
H.eq(c:read("bar0", 4, 4), 1, "one-shot fired once")
H.eq(c:read("bar0", 8, 4), 0, "cancelled timer")
c:close()
local log = H.stop(s)
assert(log:find("timer handler failed: .*timer boom"), log)
local n = 0
for line in io.lines(trace) do
  assert(line:match('^{"t_us":%d+,"event":"[%w_]+"'), line)
  n = n + 1
end
assert(n >= 4, "trace lines")
assert(H.read(trace):find('"event":"region_read","region":"bar0","offset":0,"size":4'))
H.done("timer")
