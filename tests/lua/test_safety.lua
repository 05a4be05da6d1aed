-- SPDX-License-Identifier: BSD-3-Clause
-- Copyright (c) 2026 the vfu authors.

-- A device whose handlers loop forever, allocate without bound, catch
-- their own budget error, or raise: every such access gets EIO and the
-- server keeps serving. Also the sandbox's contents.
local H = dofile(arg[2] .. "/tests/lua/harness.lua")

local script = H.write("evil.lua", [[
local vfu = require "vfu"
-- the sandbox: no io, no os.execute, no package, no debug, text-only load
assert(io == nil and os.execute == nil and package == nil and debug == nil)
assert(dofile == nil and loadfile == nil and os.time ~= nil)
assert(not load(string.dump(function() end)), "binary chunks must be refused")
assert(load("return 1")() == 1)
assert(not pcall(require, "io"))
assert(require("regmap") and require("state"))
local hits = 0
return vfu.device {
  vendor = 0x1234, device = 0x0001,
  bars = {
    [0] = { size = 32,
      read = function(off, size)
        if off == 0 then while true do end
        elseif off == 4 then
          local t = {}
          while true do t[#t + 1] = ("x"):rep(1 << 20) .. #t end
        elseif off == 8 then error("boom")
        elseif off == 12 then
          while true do pcall(function() while true do end end) end
        elseif off == 16 then return "wrong size"
        elseif off == 20 then return {}
        elseif off == 24 then return coroutine.wrap(function() while true do end end)()
        end
        return 7
      end,
      write = function() error("write boom") end },
    [1] = { size = 16, read = function() hits = hits + 1; return hits end,
            write = function() end },
  },
}
]])

local s = H.start(script, "--budget 100 --memory 16")
local c = H.connect(s)
local function still_serving(n)
  H.eq(c:read("bar1", 0, 4), n, "good register after a bad handler")
end
local n = 0
for _, off in ipairs { 0, 4, 8, 12, 16, 20, 24 } do
  local t0 = require("vfu").now()
  H.fails(H.EIO, c.read, c, "bar0", off, 4)
  assert(require("vfu").now() - t0 < 5000, "budget not enforced")
  n = n + 1
  still_serving(n)
end
H.eq(c:read("bar0", 28, 4), 7, "a good offset of the same handler")
H.fails(H.EIO, c.write, c, "bar0", 0, 4, 1)
n = n + 1
still_serving(n)
c:close()
local log = H.stop(s)
assert(log:find("time budget of 100 ms"), "budget error logged:\n" .. log)
assert(log:find("not enough memory"), "memory error logged:\n" .. log)
assert(log:find("boom") and log:find("stack traceback"), "traceback logged")
assert(log:find("returned string for a 4%-byte access"), "bad result logged")
H.done("safety")
