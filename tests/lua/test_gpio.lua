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
-- writing in0_7 clears the interrupt and leaves the inputs alone
assert(c:write("bar2", 1, 1, 0xff))
H.eq(c:read("bar2", 1, 1), 0xa5, "in0_7 write does not change the inputs")
assert(c:write("bar2", 5, 1, 0xff))
H.eq(c:read("bar2", 5, 1), 0x3c, "in8_15 ignores writes")
-- filter_ctl: both accesses are accepted and change nothing
H.eq(c:read("bar2", 3, 1), 0, "filter_ctl read (filters on)")
assert(c:write("bar2", 3, 1, 0))
H.eq(c:read("bar2", 1, 1), 0xa5, "filters leave the inputs alone")
-- an unmapped offset reads zero
H.eq(c:read("bar2", 0x80, 1), 0, "hole")

-- interrupts, in the order Linux's regmap_irq setup touches the card
assert(c:irq_enable("intx"))
assert(c:write("bar2", 2, 1, 0))           -- probe: disable the IRQ
assert(c:write("bar2", 3, 1, 0))           -- probe: deactivate the filters
assert(c:write("bar2", 0, 1, 0x01))
H.eq(c:irq_wait("intx", 0, 50), 0, "no irq while disabled")
H.eq(c:read("bar2", 6, 1), 0, "nothing latched while disabled")
assert(c:write("bar2", 1, 1, 0))           -- unmask: clear, then enable
H.eq(c:read("bar2", 2, 1), 0, "irq_ctl read enables and reads 0")
assert(c:write("bar2", 0, 1, 0x02))
H.eq(c:irq_wait("intx", 0, 1000), 1, "irq on input change")
H.eq(c:read("bar2", 6, 1), 0x05, "status: pending (bit 2), inputs 0-7 changed (bit 0)")
H.eq(c:read("bar2", 4, 4), 0x053c3c, "32-bit read across out8_15..status")
assert(c:write("bar2", 0, 1, 0x02))
H.eq(c:irq_wait("intx", 0, 50), 0, "no irq without a change")
assert(c:write("bar2", 6, 1, 0))
H.eq(c:read("bar2", 6, 1), 0x05, "status ignores writes")
assert(c:write("bar2", 1, 1, 0x05))        -- the ack: status written back
H.eq(c:read("bar2", 6, 1), 0, "in0_7 write cleared the status")
H.eq(c:read("bar2", 1, 1), 0x02, "inputs unchanged by the ack")
assert(c:write("bar2", 4, 1, 0x3d))
H.eq(c:irq_wait("intx", 0, 1000), 1, "irq on a change of inputs 8-15")
assert(c:write("bar2", 2, 1, 0))           -- mask: disable
H.eq(c:read("bar2", 6, 1), 0x06, "disabling keeps the latch (inputs 8-15 changed)")
assert(c:write("bar2", 1, 1, 0))
assert(c:write("bar2", 4, 1, 0x3c))
H.eq(c:irq_wait("intx", 0, 50), 0, "no irq after disable")
H.eq(c:read("bar2", 6, 1), 0, "nothing latched after disable")
c:read("bar2", 2, 1)                       -- enabled for what follows

-- state survives a reconnect
c:close()
c = H.connect(s)
H.eq(c:read("bar2", 0, 1), 0x02, "outputs kept across clients")
assert(c:irq_enable("intx"))
assert(c:write("bar2", 0, 1, 0x03))
H.eq(c:irq_wait("intx", 0, 1000), 1, "irq enable kept")
H.eq(c:read("bar2", 6, 1), 0x05, "pending after reconnect")
assert(c:write("bar2", 0, 1, 0x02))
H.eq(c:irq_wait("intx", 0, 1000), 1, "irq again")

-- out-of-range accesses are refused by the server, which keeps serving
H.fails(nil, c.read, c, "bar2", 0xff, 2)
H.fails(nil, c.read, c, "bar2", 0x100, 1)
H.eq(c:read("bar2", 0, 1), 0x02, "still serving")

-- migration: save from this server, load into a second one
assert(c:write("bar2", 4, 1, 0x77))
H.eq(c:irq_wait("intx", 0, 1000), 1, "irq before migrating")
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
H.eq(c2:read("bar2", 6, 1), 0x07, "status bits migrated")
assert(c2:write("bar2", 1, 1, 0))
assert(c2:write("bar2", 0, 1, 0x01))
H.eq(c2:read("bar2", 6, 1), 0x05, "irq enable migrated")
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
H.eq(c:read("bar2", 6, 1), 0, "status clear after reset")
assert(c:write("bar2", 0, 1, 0x10))
H.eq(c:irq_wait("intx", 0, 50), 0, "irq disabled after reset")
H.eq(c:read("bar2", 6, 1), 0, "nothing latched after reset")
c:close()
local log = H.stop(s)
assert(log:find("client attached"), "log mentions the client")
H.done("gpio")
