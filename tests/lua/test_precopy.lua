-- SPDX-License-Identifier: BSD-3-Clause
-- Copyright (c) 2026 the vfu authors.

-- Pre-copy for scripts: migration.precopy() is asked for a round when the
-- client enters PRE_COPY and again each time it has read a round; the
-- destination's load(s, pre) gets the stop-and-copy string and the rounds
-- in order. Devices without precopy send nothing early. A failing precopy
-- costs the client an error, not the server.
local H = dofile(arg[2] .. "/tests/lua/harness.lua")
local vfu = require "vfu"

local script = H.write("rounds.lua", [[
local vfu = require "vfu"
local log, rounds, value = {}, 0, 0
return vfu.device {
  vendor = 1, device = 2,
  bars = { [0] = { size = 16,
    read = function(off)
      if off == 0 then return value end
      return #table.concat(log, ",")
    end,
    write = function(off, size, v) value = v end } },
  migration = {
    precopy = function()
      rounds = rounds + 1
      if value == 666 then error("precopy boom") end
      if rounds > 3 then return nil end          -- nothing new
      return ("round%d:%d"):format(rounds, value)
    end,
    save = function() return "final:" .. value end,
    load = function(s, pre)
      log = { s, table.unpack(pre) }
      value = tonumber(s:match("final:(%d+)")) + #pre * 1000
      log[#log + 1] = tostring(#pre)
    end,
  },
}
]])
local s = H.start(script, "", "rounds")
local c = H.connect(s)
assert(c:write("bar0", 0, 4, 7))
assert(c:mig_set("pre_copy"))
local r1 = c:mig_read()
assert(r1:find("round1:7", 1, true), r1)
assert(c:write("bar0", 0, 4, 8))
local r2 = c:mig_read()
assert(r2:find("round2:8", 1, true), r2)
local r3 = c:mig_read()
assert(r3:find("round3:8", 1, true), r3)
H.eq(c:mig_read(), "", "no more rounds")
assert(c:mig_set("stop_copy"))
local fin = c:mig_read()
assert(fin:find("final:8", 1, true), fin)
assert(c:mig_set("stop"))
assert(c:mig_set("running"))

local s2 = H.start(script, "", "rounds2")
local c2 = H.connect(s2)
assert(c2:mig_set("resuming"))
assert(c2:mig_write(r1 .. r2 .. r3 .. fin))
assert(c2:mig_set("running"))
H.eq(c2:read("bar0", 0, 4), 3008, "load got the final state and 3 rounds")
-- records out of order (the final one not last) are refused
assert(c2:mig_set("resuming"))
assert(c2:mig_write(fin .. r1))
H.fails(nil, c2.mig_set, c2, "running")
c2:close()
H.stop(s2)

-- a failing precopy fails the read; the server keeps serving
assert(c:mig_set("pre_copy"))
H.eq(c:mig_read(), "", "rounds used up")
assert(c:write("bar0", 0, 4, 666))
H.fails(H.EIO, c.mig_read, c)
assert(c:mig_set("running"))
H.eq(c:read("bar0", 0, 4), 666, "still serving")
c:close()
local log = H.stop(s)
assert(log:find("precopy boom"), log)

-- a device with only a state table sends nothing early, all at the end
local plain = H.write("plain.lua", [[
local vfu = require "vfu"
local st = { v = 0 }
return vfu.device { vendor = 1, device = 2,
  bars = { [0] = { size = 8, read = function() return st.v end,
                   write = function(_, _, v) st.v = v end } },
  migration = { state = st } }
]])
local s3 = H.start(plain, "", "plain")
local c3 = H.connect(s3)
assert(c3:write("bar0", 0, 4, 99))
assert(c3:mig_set("pre_copy"))
H.eq(c3:mig_read(), "", "nothing in pre-copy")
assert(c3:mig_set("stop_copy"))
local blob = c3:mig_read()
assert(c3:mig_set("stop"))
assert(c3:mig_set("resuming"))
assert(c3:mig_write(blob))
assert(c3:mig_set("running"))
H.eq(c3:read("bar0", 0, 4), 99, "state table round trip")
c3:close()
H.stop(s3)

-- precopy without load is refused at declaration
H.raises("precopy: needs save and load", vfu.device, {
  vendor = 1, device = 2, migration = { state = {}, precopy = function() end } })
H.done("precopy")
