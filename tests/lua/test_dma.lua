-- SPDX-License-Identifier: BSD-3-Clause
-- Copyright (c) 2026 the vfu authors.

-- dev:dma_read/dma_write on fd-backed maps (dirty pages reported to the
-- client's dirty log) and on fd-less maps (each access served by the
-- client over the socket), and dma_hold handles: write through them,
-- mark_dirty reports exactly the held pages, and they are released when
-- the client unmaps or goes away.
local H = dofile(arg[2] .. "/tests/lua/harness.lua")
local vfu = require "vfu"

local s = H.start(H.src .. "/tests/lua/fixtures/events.lua", "", "dma")
local c = H.connect(s)
local BASE, PG = 0x100000, 4096

local function cmd(n) assert(c:write("bar0", 0x10, 8, n)) end
local function at(a) assert(c:write("bar0", 0x08, 8, a)) end
local function dirty() return table.concat(c:dirty_report(BASE, 4 * PG), ",") end
local function last_event()
  local n = c:read("bar0", 0, 8)
  local text = c:read("bar0", 0x100, 256, true):gsub("%z+$", "")
  local list = {}
  for e in text:gmatch("[^;]+") do list[#list + 1] = e end
  H.eq(#list, n, "event count")
  return list[#list]
end

-- fd-backed map with dirty logging
assert(c:dma_map(BASE, 4 * PG))
assert(c:dirty_start(PG))
H.eq(dirty(), "", "nothing dirty yet")
at(BASE + PG + 16)
cmd(1)
H.eq(last_event(), "cmd1", "dma_write")
H.eq(c:mem_read(BASE + PG + 16, 5), "hello", "written into client memory")
H.eq(dirty(), "1", "dma_write dirties its page")
H.eq(dirty(), "", "a report clears the log")
cmd(2)
H.eq(c:read("bar0", 0x18, 8), 0x6f6c6c6568, "dma_read")
H.eq(dirty(), "", "reads dirty nothing")
-- a write across a page boundary dirties both pages
at(BASE + 2 * PG - 8)
cmd(7)
H.eq(dirty(), "1,2,3", "8 KiB write from the end of page 1")

-- held SG: writes through it are not logged until mark_dirty, which logs
-- exactly the held pages
at(BASE)
cmd(3)
H.eq(c:read("bar0", 0x20, 8), 1, "hold alive")
cmd(4)
H.eq(c:mem_read(BASE + PG + 8, 4), "held", "write through the hold")
H.eq(dirty(), "", "held writes are unlogged")
cmd(5)
H.eq(dirty(), "0,1,2", "mark_dirty: the three held pages")
cmd(6)
H.eq(c:read("bar0", 0x20, 8), 0, "released")
-- a hold is released when the client unmaps under it
cmd(3)
H.eq(c:read("bar0", 0x20, 8), 1, "hold alive")
assert(c:dirty_stop())
assert(c:dma_unmap(BASE, 4 * PG))
H.eq(c:read("bar0", 0x20, 8), 0, "released on unmap")
at(BASE)
cmd(1)
H.eq(last_event(), "cmd1 failed", "no DMA into unmapped memory")

-- fd-less map: the server reads and writes through the client
local NOFD = 0x200000
assert(c:dma_map(NOFD, 2 * PG, "rw", false))
H.eq(last_event(), "map 200000 2000 nofd", "map without fd")
at(NOFD + 100)
cmd(1)
H.eq(c:mem_read(NOFD + 100, 5), "hello", "DMA_WRITE served by the client")
c:mem_write(NOFD + 100, "world")
cmd(2)
H.eq(c:read("bar0", 0x18, 8), 0x646c726f77, "DMA_READ served by the client")
at(NOFD)
cmd(7)
H.eq(c:mem_read(NOFD + PG, 4), "xxxx", "two pages in one request")
-- such memory cannot be held: there is nothing to map
cmd(3)
H.eq(last_event(), "cmd3 failed", "no hold on fd-less memory")
-- read-only memory refuses device writes
assert(c:dma_map(0x300000, PG, "r"))
at(0x300000)
cmd(1)
H.eq(last_event(), "cmd1 failed", "dma_write to read-only memory")
cmd(2)
H.eq(last_event(), "cmd2", "dma_read of read-only memory")

-- a hold is released when the client goes away
assert(c:dma_map(BASE, 4 * PG))
at(BASE)
cmd(3)
H.eq(c:read("bar0", 0x20, 8), 1, "hold alive")
c:close()
vfu.sleep(100)
c = H.connect(s)
H.eq(c:read("bar0", 0x20, 8), 0, "released on disconnect")
c:close()
local log = H.stop(s)
assert(not log:find("AddressSanitizer"), log)
-- vfu.errno names the third result of a failed dma_read/dma_write
-- (Linux's numbers): EBUSY means "try again later".
H.eq(vfu.errno.EBUSY, 16, "errno EBUSY") ; H.eq(vfu.errno.EAGAIN, 11, "errno EAGAIN")
H.eq(vfu.errno.EFAULT, 14, "errno EFAULT") ; H.eq(vfu.errno.ENOTCONN, 107, "errno ENOTCONN")
H.done("dma")
