-- SPDX-License-Identifier: BSD-3-Clause
-- Copyright (c) 2026 the vfu authors.

-- migration.receive: on the destination each pre-copy record goes to it as
-- soon as the client has written all of it (even split across writes), and
-- is not kept for load, whose `pre` is then empty; the stream bound holds
-- for one record at a time, not the whole stream. A failing receive fails
-- leaving resuming. receive needs precopy.
local H = dofile(arg[2] .. "/tests/lua/harness.lua")
local vfu = require "vfu"

local script = H.write("receiver.lua", [[
local vfu = require "vfu"
local got, sum, loaded, rounds = 0, 0, "", 0
return vfu.device {
  vendor = 1, device = 2,
  bars = { [0] = { size = 32,
    read = function(off)
      if off == 0 then return got elseif off == 8 then return sum end
      return #loaded
    end,
    write = function(off, size, v) rounds = v end } },
  migration = {
    precopy = function()
      if rounds == 0 then return nil end
      rounds = rounds - 1
      return ("x"):rep(1 << 20)          -- 1 MiB a round
    end,
    receive = function(s)
      if s == "boom" then error("receive boom") end
      got, sum = got + 1, sum + #s
    end,
    save = function() return "final" end,
    load = function(s, pre) loaded = s .. ("/%d"):format(#pre) end,
  },
}
]])
-- --memory 8: a stream may be 2 MiB; six 1 MiB rounds still get through
local s1 = H.start(script, "--memory 8", "recv_src")
local s2 = H.start(script, "--memory 8", "recv_dst")
local c1, c2 = H.connect(s1), H.connect(s2)
assert(c1:write("bar0", 24, 8, 6))
assert(c1:mig_set("pre_copy"))
local rounds = {}
while true do
  local r = assert(c1:mig_read())
  if r == "" then break end
  rounds[#rounds + 1] = r
end
H.eq(#rounds, 6, "six rounds")
assert(c1:mig_set("stop_copy"))
local final = assert(c1:mig_read())
assert(c2:mig_set("resuming"))
-- a record split in two writes arrives once it is whole
assert(c2:mig_write(rounds[1]:sub(1, 1000)))
H.eq(c2:read("bar0", 0, 8), 0, "half a record: not yet")
assert(c2:mig_write(rounds[1]:sub(1001)))
H.eq(c2:read("bar0", 0, 8), 1, "the whole record: received")
for i = 2, 6 do assert(c2:mig_write(rounds[i])) end
H.eq(c2:read("bar0", 0, 8), 6, "every round received while resuming")
H.eq(c2:read("bar0", 8, 8), 6 << 20, "their bytes")
assert(c2:mig_write(final))
assert(c2:mig_set("running"))
H.eq(c2:read("bar0", 16, 8), #"final/0", "load got the state and no rounds")

-- a failing receive fails the load; the server keeps serving
local boom = string.pack("<c4c1xxxI8", "vfuL", "P", 4) .. "boom"
assert(c2:mig_set("resuming"))
assert(c2:mig_write(boom .. final))
H.fails(nil, c2.mig_set, c2, "running")
H.eq(c2:read("bar0", 0, 8), 6, "still serving")
c1:close(); c2:close()
H.stop(s1)
local log = H.stop(s2)
assert(log:find("receive boom"), log)

H.raises("receive: needs precopy", vfu.device, { vendor = 1, device = 2,
  migration = { save = function() return "" end, load = function() end,
                receive = function() end } })
H.done("receive")
