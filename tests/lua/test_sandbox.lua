-- SPDX-License-Identifier: BSD-3-Clause
-- Copyright (c) 2026 the vfu authors.

-- The sandbox's holes around the budget: finalizers run with hooks off, so
-- a sandboxed script cannot have any (setmetatable refuses __gc, and the
-- module's metatables are out of reach); coroutine.resume cannot swallow
-- the budget error, so nested coroutines stop with their handler;
-- vfu.connect (any local socket, a blocking poll) is for --unsafe scripts
-- only; a cancelled timer gives its fd back at once.
local H = dofile(arg[2] .. "/tests/lua/harness.lua")
local vfu = require "vfu"

local script = H.write("sandbox.lua", [[
local vfu = require "vfu"
local found = {}
local function note(what, v) found[#found + 1] = what .. "=" .. tostring(v) end

local forever = function() while true do end end
note("gc_table", (pcall(setmetatable, {}, { __gc = forever })))
note("gc_later", (pcall(function()      -- marked with a placeholder first
  local mt = { __gc = true }
  setmetatable({}, mt)
  mt.__gc = forever
end)))
local t = vfu.timer(100000, function() end)
note("gc_timer", (pcall(function() getmetatable(t).__gc = forever end)))
t:cancel()
t = nil
note("connect", vfu.connect ~= nil)
note("plain_mt", getmetatable(setmetatable({}, { __index = {} })) ~= nil)

local keep = {}
for i = 1, 2000 do
  local c = assert(vfu.timer(100000, function() end))
  c:cancel()
  keep[i] = c
end

-- each level resumes endless inner levels; the innermost loops for ever
local function nest(depth)
  if depth == 0 then while true do end end
  while true do coroutine.resume(coroutine.create(nest), depth - 1) end
end

local report = table.concat(found, ",")
return vfu.device {
  vendor = 0x1234, device = 0x0005,
  bars = { [0] = { size = 256,
    read = function(off, size)
      if off == 0 then collectgarbage(); collectgarbage(); return 1
      elseif off == 4 then nest(5)
      elseif off == 8 then
        -- a coroutine that catches the budget error and carries on
        local co = coroutine.wrap(function()
          while true do pcall(coroutine.resume, coroutine.create(forever)) end
        end)
        co()
      elseif off == 128 then return report .. (" "):rep(size - #report) end
      return 0
    end,
    write = function() end } },
}
]])

local s = H.start(script, "--budget 100")
H.watchdog(s, 30)       -- an endless finalizer used to hang the server
local c = H.connect(s)
local report = c:read("bar0", 128, 128):gsub(" +$", "")
H.eq(report, "gc_table=false,gc_later=false,gc_timer=false,connect=false,plain_mt=true",
     "what the sandbox allows")
H.eq(c:read("bar0", 0, 4), 1, "a collection runs no script finalizer")
for _, off in ipairs { 4, 8 } do
  local t0 = vfu.now()
  H.fails(H.EIO, c.read, c, "bar0", off, 4)
  local ms = vfu.now() - t0
  assert(ms < 2000, ("nested coroutines stopped after %d ms"):format(ms))
end
-- 2000 cancelled timers, still referenced, hold no fds
local fds = 0
for _ in io.popen("ls /proc/" .. s.pid .. "/fd"):lines() do fds = fds + 1 end
assert(fds < 100, ("the server holds %d fds"):format(fds))
c:close()
local c2 = H.connect(s)
H.eq(c2:read("bar0", 0, 4), 1, "the next client is served")
c2:close()
local log = H.stop(s)
assert(log:find("time budget of 100 ms"), log)

-- the stock interpreter and --unsafe keep vfu.connect
local unsafe = H.write("unsafe.lua", "assert(require('vfu').connect)\n")
assert(os.execute(H.runner .. " --unsafe " .. unsafe), "vfu.connect with --unsafe")
H.done("sandbox")
