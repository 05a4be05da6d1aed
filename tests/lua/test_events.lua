-- SPDX-License-Identifier: BSD-3-Clause
-- Copyright (c) 2026 the vfu authors.

-- The script's device-wide handlers fire when the protocol says so:
-- irq_state on eventfd assignment and on mask/unmask, quiesce before DMA
-- map/unmap, reset and migration state changes, the migration transition
-- handler with (to, from), and reset("lost_conn") when the client goes.
local H = dofile(arg[2] .. "/tests/lua/harness.lua")
local vfu = require "vfu"

local s = H.start(H.src .. "/tests/lua/fixtures/events.lua", "", "events")
local c = H.connect(s)

local function events()
  local n = c:read("bar0", 0, 8)
  local text = c:read("bar0", 0x100, 256, true):gsub("%z+$", "")
  assert(c:write("bar0", 0, 8, 0))
  local list = {}
  for e in text:gmatch("[^;]+") do list[#list + 1] = e end
  H.eq(#list, n, "event count")
  return table.concat(list, ";")
end

events()
-- irq_state: assigning eventfds unmasks, removing them masks, and the
-- client's MASK/UNMASK actions reach the handler with their range (a
-- disable of "all" arrives as every vector)
assert(c:irq_enable("msi", 0, 2))
assert(c:irq_mask("msi", 1, 1))
assert(c:irq_mask("msi", 1, 1, false))
assert(c:irq_mask("msi", 0, 4))
assert(c:irq_disable("msi"))
H.eq(events(), "msi 0 2 unmasked;msi 1 1 masked;msi 1 1 unmasked;msi 0 4 masked;msi 0 4 masked",
     "irq_state calls")
-- a mask outside the vectors is refused and reaches no handler
H.fails(H.EINVAL, c.irq_mask, c, "msi", 3, 2)
-- INTx has no handler: nothing recorded
assert(c:irq_enable("intx"))
assert(c:irq_mask("intx", 0, 1))
H.eq(events(), "", "no handler for intx")

-- quiesce comes before anything that changes what the device may touch
assert(c:dma_map(0x10000, 0x4000))
assert(c:dma_unmap(0x10000, 0x4000))
assert(c:reset())
H.eq(events(), "quiesce;map 10000 4000;quiesce;unmap 10000;quiesce;reset device",
     "quiesce, DMA and reset")

-- migration transitions, named as the bindings name them
assert(c:mig_set("stop"))
assert(c:mig_set("running"))
assert(c:mig_set("pre_copy"))
assert(c:mig_set("stop_copy"))
assert(#c:mig_read() > 0)
assert(c:mig_set("stop"))
assert(c:mig_set("running"))
H.eq(events(), "quiesce;mig running>stop;quiesce;mig stop>running;" ..
     "quiesce;mig running>pre_copy;quiesce;mig pre_copy>stop_and_copy;" ..
     "quiesce;mig stop_and_copy>stop;quiesce;mig stop>running", "transitions")
-- a refused transition reaches no transition handler (the device is asked
-- to quiesce before the request is looked at)
H.fails(nil, c.mig_set, c, "error")
H.eq(events(), "quiesce", "refused transition")

-- a client that goes away: the device is quiesced, then reset with
-- "lost_conn", and its DMA regions are dropped
assert(c:dma_map(0x20000, 0x1000))
events()
c:close()
vfu.sleep(100)
c = H.connect(s)
H.eq(events(), "quiesce;reset lost_conn;unmap 20000", "lost connection")
c:close()
H.stop(s)
H.done("events")
