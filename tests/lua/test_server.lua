-- SPDX-License-Identifier: BSD-3-Clause
-- Copyright (c) 2026 the vfu authors.

-- devices/server.lua (the device of examples/server.c): registers, BAR1
-- storage, DMA, the timer and its two interrupts, reset; then a live
-- migration with pre-copy between two vfu-lua processes that keeps BAR1,
-- the registers and the armed timer, which fires on the destination.
local H = dofile(arg[2] .. "/tests/lua/harness.lua")
local vfu = require "vfu"
local script = H.src .. "/devices/server.lua"
local TIMER, DMA_ADDR, DOORBELL, DMA_COUNT, DMA_ERRORS, IRQ_COUNT =
  0x00, 0x08, 0x10, 0x18, 0x20, 0x28
local PAGE, WIN = 4096, 0x100000

local s1 = H.start(script, "-v", "server1")
local c1 = H.connect(s1)
H.eq(c1:read("config", 0, 4), 0x00011234, "vendor/device id")
local bar1 = c1:region_info("bar1")
H.eq(bar1.size, 1 << 20, "BAR1 size")
assert(bar1.mmap and bar1.has_fd, "BAR1 is mmap-able")
H.eq(#bar1.sparse, 2, "two sparse areas")
H.eq(bar1.sparse[2][1], 512 << 10, "second area offset")

-- BAR0 takes 8-byte aligned accesses only
H.fails(H.EIO, c1.read, c1, "bar0", TIMER, 4)
H.fails(H.EIO, c1.write, c1, "bar0", 4, 8, 1)
H.eq(c1:read("bar0", DMA_COUNT, 8), 0, "registers at power-on")

-- BAR1 storage, in and out of the mmap-able areas, any access size
assert(c1:write("bar1", 300 << 10, "alpha"))
assert(c1:write("bar1", 0x10, 4, 0xdeadbeef))
assert(c1:write("bar1", (768 << 10) - 1, 2, 0x4142))
H.eq(c1:read("bar1", 300 << 10, 5, true), "alpha", "BAR1 bytes")
H.eq(c1:read("bar1", 0x10, 4), 0xdeadbeef, "BAR1 word")
H.eq(c1:read("bar1", (768 << 10) - 1, 2), 0x4142, "across an area's end")
H.fails(nil, c1.read, c1, "bar1", (1 << 20) - 2, 4)

-- DMA: the doorbell writes V into slot V % 64 and reads it back
assert(c1:dma_map(WIN, 64 * PAGE))
assert(c1:write("bar0", DMA_ADDR, 8, WIN))
assert(c1:write("bar0", DOORBELL, 8, 69))
H.eq(c1:mem_read(WIN + 5 * PAGE, 8), string.pack("<i8", 69), "DMA write")
H.eq(c1:read("bar0", DMA_COUNT, 8), 1, "DMA_COUNT")
H.eq(c1:read("bar0", DMA_ERRORS, 8), 0, "DMA_ERRORS")

-- the timer: a time already past fires at once, vectors 0 and 1 of MSI
assert(c1:irq_enable("msi", 0, 2))
local past = os.time() - 10
assert(c1:write("bar0", TIMER, 8, past))
H.eq(c1:irq_wait("msi", 0, 2000), 1, "vector 0")
H.eq(c1:irq_wait("msi", 1, 2000), 1, "vector 1")
H.eq(c1:read("bar0", IRQ_COUNT, 8), 1, "IRQ_COUNT")
H.eq(c1:read("bar0", TIMER, 8), 0, "TIMER reads 0 once expired")
H.eq(c1:read("bar0", DMA_COUNT, 8), 2, "writing TIMER also DMAs")
-- 0 disarms
assert(c1:write("bar0", TIMER, 8, os.time() + 1))
assert(c1:write("bar0", TIMER, 8, 0))
H.eq(c1:irq_wait("msi", 0, 1500), 0, "disarmed timer stays quiet")

-- reset: registers back to 0, BAR1 kept
assert(c1:reset())
H.eq(c1:read("bar0", IRQ_COUNT, 8), 0, "IRQ_COUNT after reset")
H.eq(c1:read("bar0", DMA_ADDR, 8), 0, "DMA_ADDR after reset")
H.eq(c1:read("bar1", 300 << 10, 5, true), "alpha", "BAR1 survives reset")
assert(c1:write("bar0", DMA_ADDR, 8, WIN))
assert(c1:write("bar0", DOORBELL, 8, 7))

-- arm the timer, then migrate while it counts
local when = os.time() + 2
assert(c1:write("bar0", TIMER, 8, when))
local armed_at = vfu.now()
assert(c1:mig_set("pre_copy"))
local round1 = assert(c1:mig_read())
assert(#round1 > (1 << 20), "first round carries all of BAR1: " .. #round1)
-- the guest keeps running: writes after the first round go in later ones
assert(c1:write("bar1", 800 << 10, "late"))
assert(c1:write("bar1", 300 << 10, "ALPHA"))
local round2 = assert(c1:mig_read())
assert(#round2 > 2 * PAGE and #round2 < 4 * PAGE, "second round: two pages, got " .. #round2)
H.eq(c1:mig_read(), "", "nothing new")
assert(c1:write("bar1", 900 << 10, "stopping"))
assert(c1:mig_set("stop_copy"))
local final = assert(c1:mig_read())
-- the dirty page and the 128 mmap-able pages (stores through a mapping
-- are invisible to the device) and the registers
assert(#final > 129 * PAGE and #final < 131 * PAGE, "final part: " .. #final)
assert(c1:mig_set("stop"))

local s2 = H.start(script, "-v", "server2")
local c2 = H.connect(s2)
assert(c2:irq_enable("msi", 0, 2))
assert(c2:dma_map(WIN, 64 * PAGE))
assert(c2:mig_set("stop"))
assert(c2:mig_set("resuming"))
assert(c2:mig_write(round1 .. round2 .. final))
assert(c2:mig_set("stop"))
assert(c2:mig_set("running"))
H.eq(c2:read("bar1", 300 << 10, 5, true), "ALPHA", "rewritten page migrated")
H.eq(c2:read("bar1", 800 << 10, 4, true), "late", "pre-copy round 2 migrated")
H.eq(c2:read("bar1", 900 << 10, 8, true), "stopping", "stop-copy page migrated")
H.eq(c2:read("bar1", 0x10, 4), 0xdeadbeef, "first-round page migrated")
H.eq(c2:read("bar1", (768 << 10) - 1, 2), 0x4142, "mmap-able page migrated")
H.eq(c2:read("bar0", TIMER, 8), when, "armed TIMER migrated")
H.eq(c2:read("bar0", DMA_ADDR, 8), WIN, "DMA_ADDR migrated")
H.eq(c2:read("bar0", DMA_COUNT, 8), 2, "DMA_COUNT migrated")
-- the timer goes off on the destination, about when it was due
H.eq(c2:irq_wait("msi", 0, 4000), 1, "timer fired on the destination")
H.eq(c2:irq_wait("msi", 1, 1000), 1, "second vector on the destination")
local waited = vfu.now() - armed_at
assert(waited < 4000, "timer kept its remaining time: " .. waited .. " ms")
H.eq(c2:read("bar0", IRQ_COUNT, 8), 1, "IRQ_COUNT on the destination")
H.eq(c2:read("bar0", TIMER, 8), 0, "TIMER expired")
-- DMA works on the destination with the migrated address
assert(c2:write("bar0", DOORBELL, 8, 3))
H.eq(c2:mem_read(WIN + 3 * PAGE, 8), string.pack("<i8", 3), "DMA after migration")
-- the stopped source never fired
H.eq(c1:irq_wait("msi", 0, 0), 0, "source stayed stopped")
-- a truncated stream is refused by a fresh destination
local s3 = H.start(script, "", "server3")
local c3 = H.connect(s3)
assert(c3:mig_set("stop"))
assert(c3:mig_set("resuming"))
assert(c3:mig_write((round1 .. final):sub(1, -20)))
H.fails(nil, c3.mig_set, c3, "stop")
c3:close()
H.stop(s3)
c1:close()
c2:close()
local log1, log2 = H.stop(s1), H.stop(s2)
assert(log1:find("timer armed for " .. when), log1)
assert(log2:find("state loaded: timer %d+ ms left"), log2)
assert(log2:find("timer expired"), log2)
H.done("server")
