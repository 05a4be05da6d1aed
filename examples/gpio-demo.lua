-- SPDX-License-Identifier: BSD-3-Clause
-- Copyright (c) 2026 the vfu authors.

-- Drives the PCI-IDIO-16 model (devices/gpio.lua) as a guest driver would,
-- through vfu's own client, and says what happens at each step.
--   vfu-lua --unsafe examples/gpio-demo.lua SOCKET (vfu.connect is not in
--   the sandbox: a client script is trusted code)
-- or lua5.4 examples/gpio-demo.lua SOCKET, with LUA_CPATH finding vfu.so
local vfu = require "vfu"

local path = assert(arg[1], "usage: gpio-demo.lua SOCKET")
local c = assert(vfu.connect(path))

local function step(fmt, ...) print("  " .. fmt:format(...)) end

local id = c:read("config", 0, 4)
print(("connected: vendor %04x device %04x, BAR2 %d bytes of I/O"):format(
  id & 0xffff, id >> 16, c:region_info("bar2").size))

print("outputs loop back to the inputs:")
for _, v in ipairs { 0x01, 0x5a, 0xff } do
  assert(c:write("bar2", 0x0, 1, v))
  step("write out0_7 = %02x  ->  in0_7 reads %02x", v, c:read("bar2", 0x1, 1))
end
assert(c:write("bar2", 0x4, 1, 0xc3))
step("write out8_15 = c3  ->  in8_15 reads %02x", c:read("bar2", 0x5, 1))

print("interrupts (INTx on an eventfd), driven the way Linux's driver does:")
assert(c:irq_enable("intx"))
assert(c:write("bar2", 0x1, 1, 0))
step("write in0_7         ->  any stale interrupt cleared")
c:read("bar2", 0x2, 1)
step("read irq_ctl        ->  interrupts enabled (reading 0x2 is the command)")
assert(c:write("bar2", 0x0, 1, 0x42))
local fired = c:irq_wait("intx", 0, 1000)
step("write out0_7 = 42   ->  the inputs changed, INTx fired %d time(s)", fired)
local status = c:read("bar2", 0x6, 1)
step("irq_status reads %02x (bit 2: pending, bit 0: inputs 0-7)", status)
assert(c:write("bar2", 0x1, 1, status))
step("write in0_7 = %02x    ->  interrupt cleared, irq_status reads %02x",
     status, c:read("bar2", 0x6, 1))
assert(c:write("bar2", 0x2, 1, 0))
step("write irq_ctl       ->  interrupts disabled again")
c:close()
assert(fired == 1 and status == 0x05, "the interrupt did not fire")
print("demo done: the device answered every access and raised its interrupt")
