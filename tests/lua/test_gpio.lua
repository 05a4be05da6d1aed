-- SPDX-License-Identifier: BSD-3-Clause
-- Copyright (c) 2026 the vfu authors.

-- devices/gpio.lua driven through the client: registers, loopback inputs,
-- INTx on input change, reset, reconnect with state kept, migration.
local H = dofile(arg[2] .. "/tests/lua/harness.lua")
local gpio = H.src .. "/devices/gpio.lua"

local s = H.start(gpio, "-v")
local c = H.connect(s)
H.eq(c:read("config", 0, 4), 0x0dc8494f, "vendor/device id")
H.eq(c:region_info("bar2").size, 256, "BAR2 size")
H.eq(c:region_info("bar0").size, 0, "BAR0 absent")
H.eq(c:read("config", 0x18, 4) & 1, 1, "BAR2 is I/O")

-- outputs loop back to inputs
H.eq(c:read("bar2", 1, 1), 0, "inputs at reset")
assert(c:write("bar2", 0, 1, 0xa5))
H.eq(c:read("bar2", 1, 1), 0xa5, "in0_7 follows out0_7")
assert(c:write("bar2", 4, 1, 0x3c))
H.eq(c:read("bar2", 5, 1), 0x3c, "in8_15 follows out8_15")
-- the map merges a wider access from byte registers
H.eq(c:read("bar2", 0, 2), 0xa5a5, "16-bit read of out0_7/in0_7")
H.eq(c:read("bar2", 4, 4), 0x003c3c, "32-bit read across out8_15..status")
-- inputs are read-only
assert(c:write("bar2", 1, 1, 0xff))
H.eq(c:read("bar2", 1, 1), 0xa5, "in0_7 ignores writes")
-- an unmapped offset reads zero
H.eq(c:read("bar2", 0x80, 1), 0, "hole")

-- interrupts: none while disabled, INTx on change when enabled
assert(c:irq_enable("intx"))
assert(c:write("bar2", 0, 1, 0x01))
H.eq(c:irq_wait("intx", 0, 50), 0, "no irq while disabled")
assert(c:write("bar2", 3, 1, 1))
H.eq(c:read("bar2", 3, 1), 1, "irq_ctl reads back")
assert(c:write("bar2", 0, 1, 0x02))
H.eq(c:irq_wait("intx", 0, 1000), 1, "irq on input change")
H.eq(c:read("bar2", 6, 1), 1, "status pending")
assert(c:write("bar2", 0, 1, 0x02))
H.eq(c:irq_wait("intx", 0, 50), 0, "no irq without a change")
assert(c:write("bar2", 2, 1, 0))
H.eq(c:read("bar2", 6, 1), 0, "status cleared")

-- state survives a reconnect
c:close()
c = H.connect(s)
H.eq(c:read("bar2", 0, 1), 0x02, "outputs kept across clients")
H.eq(c:read("bar2", 3, 1), 1, "irq enable kept")

-- out-of-range accesses are refused by the server, which keeps serving
H.fails(nil, c.read, c, "bar2", 0xff, 2)
H.fails(nil, c.read, c, "bar2", 0x100, 1)
H.eq(c:read("bar2", 0, 1), 0x02, "still serving")

-- migration: save from this server, load into a second one
assert(c:write("bar2", 4, 1, 0x77))
assert(c:mig_set("stop"))
assert(c:mig_set("stop_copy"))
local blob = assert(c:mig_read())
assert(#blob > 0, "migration stream is empty")
assert(c:mig_set("stop"))
assert(c:mig_set("running"))

local s2 = H.start(gpio, "", "gpio2")
local c2 = H.connect(s2)
H.eq(c2:read("bar2", 4, 1), 0, "fresh device")
assert(c2:mig_set("stop"))
assert(c2:mig_set("resuming"))
assert(c2:mig_write(blob))
assert(c2:mig_set("stop"))
assert(c2:mig_set("running"))
H.eq(c2:read("bar2", 4, 1), 0x77, "outputs migrated")
H.eq(c2:read("bar2", 0, 1), 0x02, "outputs migrated")
H.eq(c2:read("bar2", 3, 1), 1, "irq enable migrated")
-- a corrupt stream is refused
assert(c2:mig_set("stop"))
assert(c2:mig_set("resuming"))
assert(c2:mig_write("garbage"))
H.fails(nil, c2.mig_set, c2, "stop")
c2:close()
H.stop(s2)

-- device reset
assert(c:reset())
H.eq(c:read("bar2", 0, 1), 0, "outputs after reset")
H.eq(c:read("bar2", 3, 1), 0, "irq disabled after reset")
c:close()
local log = H.stop(s)
assert(log:find("client attached"), "log mentions the client")
H.done("gpio")
