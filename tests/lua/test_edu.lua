-- SPDX-License-Identifier: BSD-3-Clause
-- Copyright (c) 2026 the vfu authors.

-- devices/edu.lua through the client: id, liveness, factorial, interrupts,
-- DMA both ways through client memory, access-size rules.
local H = dofile(arg[2] .. "/tests/lua/harness.lua")
local vfu = require "vfu"

local s = H.start(H.src .. "/devices/edu.lua")
local c = H.connect(s)
H.eq(c:read("config", 0, 4), 0x11e81234, "PCI id")
H.eq(c:region_info("bar0").size, 1 << 20, "BAR0 size")
H.eq(c:read("bar0", 0, 4), 0x010000ed, "identification")
assert(c:write("bar0", 4, 4, 0x12345678))
H.eq(c:read("bar0", 4, 4), 0xedcba987, "liveness inverts")
H.fails(H.EIO, c.read, c, "bar0", 0, 2)

local function wait_clear(off, bit)
  for _ = 1, 200 do
    if c:read("bar0", off, 4) & bit == 0 then return end
    vfu.sleep(5)
  end
  error("busy bit stuck")
end

assert(c:irq_enable("intx"))
assert(c:write("bar0", 0x20, 4, 0x80))
assert(c:write("bar0", 8, 4, 10))
wait_clear(0x20, 1)
H.eq(c:read("bar0", 8, 4), 3628800, "10!")
H.eq(c:irq_wait("intx", 0, 1000), 1, "irq after factorial")
H.eq(c:read("bar0", 0x24, 4), 1, "irq status")
assert(c:write("bar0", 0x64, 4, 1))
assert(c:write("bar0", 0x60, 4, 0x40))
H.eq(c:irq_wait("intx", 0, 1000), 1, "raised irq")
H.eq(c:read("bar0", 0x24, 4), 0x40, "raised value")
assert(c:write("bar0", 0x64, 4, 0x40))
H.eq(c:read("bar0", 0x24, 4), 0, "acknowledged")

local addr = 0x100000
assert(c:dma_map(addr, 4096))
local block = ("0123456789"):rep(10)
c:mem_write(addr, block)
assert(c:write("bar0", 0x80, 8, addr))
assert(c:write("bar0", 0x88, 8, 0x40000))
assert(c:write("bar0", 0x90, 8, 100))
assert(c:write("bar0", 0x98, 8, 1 | 4))
wait_clear(0x98, 1)
H.eq(c:irq_wait("intx", 0, 1000), 1, "irq after DMA")
H.eq(c:read("bar0", 0x24, 4), 0x100, "DMA irq value")
assert(c:write("bar0", 0x80, 8, 0x40000))
assert(c:write("bar0", 0x88, 8, addr + 100))
assert(c:write("bar0", 0x98, 8, 3))
wait_clear(0x98, 1)
H.eq(c:mem_read(addr + 100, 100), block, "DMA round trip")
-- DMA outside the mapping fails inside the device, which keeps serving
assert(c:write("bar0", 0x88, 8, 0x7000000))
assert(c:write("bar0", 0x98, 8, 3))
wait_clear(0x98, 1)
H.eq(c:read("bar0", 0, 4), 0x010000ed, "still serving")
assert(c:dma_unmap(addr, 4096))

-- As QEMU 10.2 with guest RAM not shared: memory without an fd (every DMA
-- a message), and the device's requests served only between the client's
-- own calls. A DMA timer that fires while the client waits for a register
-- read gets EBUSY, and the device must try again, not fail the transfer.
assert(c:dma_map(addr, 4096, "rw", false))
assert(c:defer_requests(true))
local function poll_clear(off, bit)
  -- first reads back to back, so that the DMA timer (1 ms) fires while
  -- one of them waits for its reply
  local t0 = vfu.now()
  while vfu.now() - t0 < 20 do c:read("bar0", off, 4) end
  for _ = 1, 2000 do
    if c:read("bar0", off, 4) & bit == 0 then return end
    c:poll(2)                   -- between calls: DMA served at once
  end
  error("busy bit stuck")
end
local other = ("abcdefghij"):rep(10)
c:mem_write(addr, other)
assert(c:write("bar0", 0x80, 8, addr))
assert(c:write("bar0", 0x88, 8, 0x40000))
assert(c:write("bar0", 0x98, 8, 1))
poll_clear(0x98, 1)
assert(c:write("bar0", 0x80, 8, 0x40000))
assert(c:write("bar0", 0x88, 8, addr + 200))
assert(c:write("bar0", 0x98, 8, 3))
poll_clear(0x98, 1)
H.eq(c:mem_read(addr + 200, 100), other, "DMA round trip, requests deferred")
assert(c:defer_requests(false))
assert(c:dma_unmap(addr, 4096))
c:close()
local log = H.stop(s)
assert(log:find("DMA to RAM failed"), log)
assert(not log:find("DMA from RAM failed"), log)
H.done("edu")
