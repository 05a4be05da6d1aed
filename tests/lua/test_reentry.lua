-- SPDX-License-Identifier: BSD-3-Clause
-- Copyright (c) 2026 the vfu authors.

-- Every method of the device object called from inside every kind of
-- handler: region access, reset (client's and lost connection), quiesce,
-- DMA map and unmap, migration transition and save, a timer. Freeing the
-- device (close, __close) or running a loop again (serve) there raises a
-- clear error; the rest works or fails softly; SG handles taken while the
-- client's memory goes away go with it; dev:stop() ends the loop cleanly
-- from each kind of handler. The server serves the next client throughout.
local H = dofile(arg[2] .. "/tests/lua/harness.lua")
local vfu = require "vfu"

local IOVA = 0x10000
local device = [[
local vfu = require "vfu"
local IOVA = 0x10000
local STOP_IN = "@STOP@"
local dev
local held, done, ndone, timer_on = {}, {}, 0, false

local function try(where, name, f)
  local ok, a, b = pcall(f)
  local how = not ok and "raise" or (a == nil and b ~= nil) and "fail" or "ok"
  local msg = tostring(not ok and a or b or ""):gsub("\n.*", "")
  dev:log(("probe %s %s %s %s"):format(where, name, how, msg), "err")
end

local function probe(where)
  if where == STOP_IN then dev:stop() return end
  if STOP_IN ~= "" or done[where] then return end
  done[where] = true
  ndone = ndone + 1
  try(where, "listen", function() return dev:listen(arg[1] .. ".again") end)
  try(where, "irq", function() return dev:irq(0) end)
  try(where, "log", function() return dev:log("hello", "debug") end)
  try(where, "config_read", function() return dev:config_read(0, 4) end)
  try(where, "config_write", function() return dev:config_write(0x3c, 1, 5) end)
  try(where, "mem_read", function() return dev:mem_read("bar1", 0, 4) end)
  try(where, "mem_write", function() return dev:mem_write("bar1", 0, "abcd") end)
  try(where, "dma_read", function() return dev:dma_read(IOVA, 16) end)
  try(where, "dma_write", function() return dev:dma_write(IOVA, ("x"):rep(16)) end)
  try(where, "dma_hold", function()
    local h, m, e = dev:dma_hold(IOVA, 4096)
    held[where] = h
    return h, m, e
  end)
  try(where, "summary", function() return dev:summary() end)
  try(where, "__close", function() local d <close> = dev end)
  try(where, "close", function() return dev:close() end)
  try(where, "serve", function() return dev:serve() end)
end

vfu.timer(10, function() if timer_on then probe("timer") end end, true)

dev = vfu.device {
  vendor = 0x1234, device = 0x0004,
  bars = {
    [0] = { size = 32,
      read = function(off)
        if off == 8 or off == 20 then   -- is a handle taken as memory went live?
          local h = held[off == 8 and "dma_unmap" or "lost_conn"]
          return h and #h or 0
        elseif off == 12 then return ndone
        elseif off == 16 then return done.timer and 1 or 0 end
        return 0
      end,
      write = function(off, size, v)
        if off == 0 then probe("region")
        elseif off == 4 then timer_on = true end
      end },
    [1] = { size = 4096, mmap = true },
  },
  irqs = { intx = 1 },
  reset = function(kind) probe(kind) end,
  quiesce = function() probe("quiesce") end,
  dma = { map = function(info) probe("dma_map") end,
          unmap = function(info) probe("dma_unmap") end },
  migration = {
    transition = function(to, from) probe("transition") end,
    save = function() probe("save"); return "s" end,
    load = function() end,
  },
}
return dev
]]

local WHERE = { "quiesce", "dma_map", "region", "timer", "device", "transition",
                "save", "dma_unmap", "lost_conn" }
local METHODS = { "listen", "irq", "log", "config_read", "config_write",
                  "mem_read", "mem_write", "dma_read", "dma_write", "dma_hold",
                  "summary", "__close", "close", "serve" }
local REFUSED = { __close = "inside a handler", close = "inside a handler",
                  serve = "inside a handler" }

local function wait_timer(c)
  for _ = 1, 200 do
    if c:read("bar0", 16, 4) == 1 then return end
    vfu.sleep(10)
  end
  error("the timer never probed")
end

local script = H.write("reentry.lua", device:gsub("@STOP@", ""))
local s = H.start(script, "--budget 1000")
H.watchdog(s, 30)      -- a nested loop used to hang the server for ever
local c = H.connect(s)
assert(c:dma_map(IOVA, 0x4000))
assert(c:write("bar0", 0, 4, 1))
assert(c:write("bar0", 4, 4, 1))
wait_timer(c)
assert(c:reset())
assert(c:mig_set("stop_copy"))
assert(#c:mig_read() > 0)
assert(c:mig_set("running"))
assert(c:dma_unmap(IOVA, 0x4000))
H.eq(c:read("bar0", 8, 4), 0, "a handle taken in the unmap handler is released")
assert(c:dma_map(IOVA, 0x4000))
c:close()
c = H.connect(s)
H.eq(c:read("bar0", 12, 4), #WHERE, "every kind of handler probed")
H.eq(c:read("bar0", 20, 4), 0, "a handle taken as the client left is released")
c:close()
local log = H.stop(s)

for _, w in ipairs(WHERE) do
  for _, m in ipairs(METHODS) do
    local how, msg = log:match("probe " .. w .. " " .. m:gsub("_", "%%_") .. " (%a+) ([^\n]*)")
    assert(how, ("no outcome for %s in %s:\n%s"):format(m, w, log))
    if REFUSED[m] then
      assert(how == "raise" and msg:find(REFUSED[m]),
             ("%s in %s: %s %s"):format(m, w, how, msg))
    else
      assert(how ~= "raise", ("%s in %s raised: %s"):format(m, w, msg))
    end
  end
end

-- dev:stop() from each kind of handler ends the loop: the runner exits
-- and removes its socket
local triggers = {
  region = function(c) assert(c:write("bar0", 0, 4, 1)) end,
  device = function(c) assert(c:reset()) end,
  dma_map = function(c) c:dma_map(IOVA, 0x4000) end,
  transition = function(c) c:mig_set("stop") end,
  timer = function(c) c:write("bar0", 4, 4, 1) end,
  lost_conn = function(c) c:close() end,
}
for w, trigger in pairs(triggers) do
  local stopper = H.write("stop_" .. w .. ".lua", device:gsub("@STOP@", w))
  local st = H.start(stopper, "", "stop_" .. w)
  local sc = H.connect(st)
  trigger(sc)
  assert(H.exited(st, 5), "dev:stop() in " .. w .. " ends the server")
  sc:close()
end
H.done("reentry")
