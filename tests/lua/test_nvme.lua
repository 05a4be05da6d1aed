-- SPDX-License-Identifier: BSD-3-Clause
-- Copyright (c) 2026 the vfu authors.

-- devices/nvme.lua driven the way a host driver drives an NVMe controller:
-- enable, identify, queues, data through every PRP shape, the status codes
-- of bad commands, interrupts, asynchronous events, resets (CC.EN, DEVICE
-- RESET, FLR), shutdown, a file-backed namespace, a hostile client after
-- which a fresh one still gets a working controller, and migration
-- between two processes with I/O in flight.
local H = dofile(arg[2] .. "/tests/lua/harness.lua")
local N = dofile(arg[2] .. "/tests/lua/nvme_driver.lua")
local vfu = require "vfu"

local NVME = H.src .. "/devices/nvme.lua"
local PG = 4096
local M, MSIZE = 0x10000000, 4 << 20         -- client memory
local ASQ, ACQ = M, M + 0x1000
local SQ1, CQ1, SQ2, CQ2 = M + 0x2000, M + 0x3000, M + 0x4000, M + 0x5000
local IDBUF = M + 0x10000
local W, R, L = M + 0x100000, M + 0x200000, M + 0x300000    -- write, read, lists
local UNMAPPED = 0x50000000

local function pattern(n, seed)
  local t = {}
  for i = 1, n // 4 do t[i] = string.pack("<I4", (seed * 0x9e3779b1 + i * 0x85ebca6b) & 0xffffffff) end
  return table.concat(t)
end

local function list_at(addr, entries)
  local t = {}
  for i, a in ipairs(entries) do t[i] = string.pack("<J", a) end
  return addr, table.concat(t)
end

-- 17 vectors, 8 eventfds per message at most
local function enable_msix(cl)
  assert(cl:irq_enable("msix", 0, 8))
  assert(cl:irq_enable("msix", 8, 8))
  assert(cl:irq_enable("msix", 16, 1))
end

local function bring_up(c, d, namespace_blocks)
  H.eq(d:enable(ASQ, ACQ, 32), 1, "CSTS.RDY after CC.EN")
  H.eq(d:admin { op = 0x09, c10 = 0x07, c11 = 0x000f000f }, 0, "set number of queues")
  H.eq(d:create_pair(1, SQ1, CQ1, 64, 1), 0, "I/O queue pair 1")
  if namespace_blocks then
    H.eq(d:admin { op = 0x06, nsid = 1, c10 = 0, prp1 = IDBUF }, 0, "identify namespace")
    H.eq(string.unpack("<J", c:mem_read(IDBUF, 8)), namespace_blocks, "NSZE")
  end
end

-- === registers, identify, features ==========================================

-- a budget of 10 ms: the batch of big commands below must yield to get by
local s = H.start(NVME, "--budget 10", "nvme", "16M")
H.watchdog(s, 100)
local c = H.connect(s)
assert(c:dma_map(M, MSIZE))
local d = N.new(c)

local cap = d:reg(0, 8)
H.eq(cap & 0xffff, 1023, "CAP.MQES")
H.eq((cap >> 16) & 1, 1, "CAP.CQR")
H.eq((cap >> 32) & 0xf, 0, "CAP.DSTRD")
H.eq((cap >> 37) & 1, 1, "CAP.CSS NVM")
H.eq(d:reg(0x08), 0x10400, "VS 1.4")
H.eq(d:reg(0x1c), 0, "not ready before enable")
H.eq(d:enable(ASQ, ACQ, 32), 1, "CSTS.RDY")
H.eq(d:reg(0x24), 31 << 16 | 31, "AQA reads back")
H.eq(d:reg(0x28, 8), ASQ, "ASQ reads back")

H.eq(d:admin { op = 0x06, c10 = 1, prp1 = IDBUF }, 0, "identify controller")
local id = c:mem_read(IDBUF, 4096)
H.eq(string.unpack("<H", id, 1), 0x1234, "VID")
H.eq(id:sub(25, 64):match("^(.-)%s*$"), "vfu Lua NVMe", "MN")
H.eq(id:byte(78), 6, "MDTS")
H.eq(string.unpack("<I4", id, 81), 0x10400, "VER")
H.eq(id:byte(513), 0x66, "SQES")
H.eq(id:byte(514), 0x44, "CQES")
H.eq(string.unpack("<I4", id, 517), 1, "NN")
H.eq(string.unpack("<H", id, 521) & 0x0c, 0x0c, "ONCS: DSM and Write Zeroes")
H.eq(id:byte(526), 1, "VWC present")
assert(id:sub(769, 800):find("^nqn%."), "SUBNQN")

H.eq(d:admin { op = 0x06, nsid = 1, c10 = 0, prp1 = IDBUF }, 0, "identify namespace")
local ns = c:mem_read(IDBUF, 4096)
local nsze, ncap = string.unpack("<JJ", ns)
H.eq(nsze, (16 << 20) // 512, "NSZE of 16M")
H.eq(ncap, nsze, "NCAP")
H.eq(ns:byte(27) & 0xf, 0, "FLBAS")
H.eq(ns:byte(128 + 3), 9, "LBAF0: 512-byte blocks")
H.eq(d:admin { op = 0x06, nsid = 0, c10 = 2, prp1 = IDBUF }, 0, "active namespace list")
H.eq(string.unpack("<I4I4", c:mem_read(IDBUF, 8)), 1, "NSID 1 listed")
H.eq(select(2, string.unpack("<I4I4", c:mem_read(IDBUF, 8))), 0, "only NSID 1")
H.eq(d:admin { op = 0x06, nsid = 1, c10 = 2, prp1 = IDBUF }, 0, "list after NSID 1")
H.eq(string.unpack("<I4", c:mem_read(IDBUF, 4)), 0, "nothing after NSID 1")
H.eq(d:admin { op = 0x06, nsid = 1, c10 = 3, prp1 = IDBUF }, 0, "NS descriptors")
local desc = c:mem_read(IDBUF, 40)
H.eq(desc:byte(1), 2, "NGUID descriptor")
H.eq(desc:byte(2), 16, "NGUID length")
H.eq(desc:byte(21), 3, "UUID descriptor")
H.eq(d:admin { op = 0x06, nsid = 2, c10 = 0, prp1 = IDBUF }, N.INVALID_NS, "NSID 2")
H.eq(d:admin { op = 0x06, nsid = 1, c10 = 0x55, prp1 = IDBUF }, N.INVALID_FIELD, "bad CNS")
H.eq(d:admin { op = 0x06, c10 = 1, prp1 = UNMAPPED }, N.DATA_XFER, "identify to unmapped memory")
H.eq(d:admin { op = 0x7e }, N.INVALID_OPCODE, "unknown admin opcode")

local st, dw0 = d:admin { op = 0x09, c10 = 0x07, c11 = 0x00ff00ff }
H.eq(st, 0, "set number of queues")
H.eq(dw0, 15 << 16 | 15, "16 queue pairs granted")
H.eq(d:admin { op = 0x09, c10 = 0x07, c11 = 0xffff }, N.INVALID_FIELD, "65536 queues")
st, dw0 = d:admin { op = 0x0a, c10 = 0x06 }
H.eq(st, 0, "get volatile write cache")
H.eq(dw0, 1, "write cache enabled")
H.eq(d:admin { op = 0x09, c10 = 0x06, c11 = 0 }, 0, "disable write cache")
H.eq(select(2, d:admin { op = 0x0a, c10 = 0x06 }), 0, "write cache disabled")
H.eq(d:admin { op = 0x09, c10 = 0x08, c11 = 0x0a04 }, 0, "interrupt coalescing")
H.eq(select(2, d:admin { op = 0x0a, c10 = 0x08 }), 0x0a04, "coalescing reads back")
H.eq(d:admin { op = 0x09, c10 = 0x01, c11 = 3 }, 0, "arbitration")
H.eq(d:admin { op = 0x09, c10 = 0x02, c11 = 0 }, 0, "power state 0")
H.eq(d:admin { op = 0x09, c10 = 0x02, c11 = 1 }, N.INVALID_FIELD, "power state 1")
H.eq(d:admin { op = 0x09, c10 = 0x04, c11 = 0x160 }, 0, "temperature threshold")
H.eq(select(2, d:admin { op = 0x0a, c10 = 0x04 }), 0x160, "threshold reads back")
H.eq(d:admin { op = 0x09, c10 = 0x0b, c11 = 0x1ff }, 0, "async event config")
H.eq(d:admin { op = 0x09, c10 = 0x80000006, c11 = 1 }, 0x10d, "save is refused")
H.eq(d:admin { op = 0x09, c10 = 0x7f }, N.INVALID_FIELD, "unknown feature")

H.eq(d:admin { op = 0x02, nsid = 0xffffffff, c10 = 127 << 16 | 0x02, prp1 = IDBUF }, 0, "SMART log")
H.eq(c:mem_read(IDBUF + 3, 1):byte(), 100, "available spare")
H.eq(d:admin { op = 0x02, c10 = 15 << 16 | 0x01, prp1 = IDBUF }, 0, "error log")
H.eq(d:admin { op = 0x02, c10 = 127 << 16 | 0x03, prp1 = IDBUF }, 0, "firmware slot log")
H.eq(c:mem_read(IDBUF, 1):byte(), 1, "slot 1 active")
H.eq(d:admin { op = 0x02, c10 = 15 << 16 | 0x7a, prp1 = IDBUF }, N.INVALID_LOG, "unknown log")
H.eq(select(2, d:admin { op = 0x08, c10 = 1 << 16 }), 1, "abort: nothing to abort")

-- === queues ====================================================================

H.eq(d:admin { op = 0x05, prp1 = CQ1, c10 = 63 << 16 | 0, c11 = 3 }, N.INVALID_QID, "CQ 0")
H.eq(d:admin { op = 0x05, prp1 = CQ1, c10 = 63 << 16 | 17, c11 = 3 }, N.INVALID_QID, "CQ 17")
H.eq(d:admin { op = 0x05, prp1 = CQ1, c10 = 0 << 16 | 1, c11 = 3 }, N.INVALID_QSIZE, "CQ of 1")
H.eq(d:admin { op = 0x05, prp1 = CQ1, c10 = 2047 << 16 | 1, c11 = 3 }, N.INVALID_QSIZE, "CQ of 2048")
H.eq(d:admin { op = 0x05, prp1 = CQ1, c10 = 63 << 16 | 1, c11 = 40 << 16 | 3 },
     N.INVALID_VECTOR, "vector 40")
H.eq(d:admin { op = 0x05, prp1 = CQ1, c10 = 63 << 16 | 1, c11 = 2 }, N.INVALID_FIELD,
     "not physically contiguous")
H.eq(d:admin { op = 0x05, prp1 = UNMAPPED, c10 = 63 << 16 | 1, c11 = 3 }, N.DATA_XFER,
     "CQ in unmapped memory")
H.eq(d:admin { op = 0x01, prp1 = SQ1, c10 = 63 << 16 | 1, c11 = 1 << 16 | 1 }, N.CQ_INVALID,
     "SQ before its CQ")
H.eq(d:create_pair(1, SQ1, CQ1, 64, 1), 0, "queue pair 1")
H.eq(d:admin { op = 0x05, prp1 = CQ1, c10 = 63 << 16 | 1, c11 = 3 }, N.INVALID_QID, "CQ 1 twice")
H.eq(d:admin { op = 0x01, prp1 = SQ2, c10 = 63 << 16 | 2, c11 = 9 << 16 | 1 }, N.CQ_INVALID,
     "SQ on CQ 9")
H.eq(d:admin { op = 0x01, prp1 = UNMAPPED, c10 = 63 << 16 | 2, c11 = 1 << 16 | 1 },
     N.DATA_XFER, "SQ in unmapped memory")
H.eq(d:create_pair(2, SQ2, CQ2, 64, 2), 0, "queue pair 2")
H.eq(d:admin { op = 0x04, c10 = 1 }, N.INVALID_DELETE, "CQ 1 with its SQ")
H.eq(d:admin { op = 0x00, c10 = 9 }, N.INVALID_QID, "delete SQ 9")
H.eq(d:admin { op = 0x04, c10 = 0 }, N.INVALID_QID, "delete the admin CQ")

-- === data ========================================================================

enable_msix(c)
local data = pattern(256 << 10, 1)
c:mem_write(W, data)
local function readback(slba, len)
  c:mem_write(R, string.rep("\xee", len))
  H.eq(d:io(1, false, slba, len // 512, R, R + PG, 1), 0, "read back")
  if len > 2 * PG then error("readback: two pages at most") end
  return c:mem_read(R, len)
end

-- PRP1 only
H.eq(d:io(1, true, 0, 8, W), 0, "write 4 KiB, PRP1")
H.eq(c:irq_wait("msix", 1, 1000), 1, "vector 1 for CQ 1")
H.eq(readback(0, PG) == data:sub(1, PG), true, "4 KiB round trip")
-- PRP1 + PRP2, pages apart
c:mem_write(W + 5 * PG, data:sub(PG + 1, 2 * PG))
H.eq(d:io(1, true, 8, 16, W + PG, W + 5 * PG), 0, "write 8 KiB, PRP1 + PRP2")
local lba8 = data:sub(PG + 1, 2 * PG):rep(2)
H.eq(readback(8, 2 * PG) == lba8, true, "PRP2 page used")
-- a PRP list of 15 pages, read back into pages in reverse order
c:mem_write(W, data)
local entries = {}
for i = 1, 15 do entries[i] = W + i * PG end
c:mem_write(list_at(L, entries))
H.eq(d:io(1, true, 100, 128, W, L), 0, "write 64 KiB, PRP list")
local rev = {}
for i = 1, 15 do rev[i] = R + (15 - i + 1) * PG end
c:mem_write(list_at(L + PG, rev))
H.eq(d:io(1, false, 100, 128, R, L + PG), 0, "read 64 KiB, scattered PRP list")
H.eq(c:mem_read(R, PG) == data:sub(1, PG), true, "list: first page")
for i = 1, 15 do
  if c:mem_read(R + (16 - i) * PG, PG) ~= data:sub(i * PG + 1, (i + 1) * PG) then
    error("list page " .. i .. " misplaced")
  end
end
-- 256 KiB with a chained list: the first list page has room for one entry
-- and the pointer to the next
local first, rest = {}, {}
first[1] = W + PG
for i = 2, 63 do rest[#rest + 1] = W + i * PG end
local L2 = L + 2 * PG + PG - 16
c:mem_write(L2, string.pack("<JJ", W + PG, L + 3 * PG))
c:mem_write(list_at(L + 3 * PG, rest))
H.eq(d:io(1, true, 1000, 512, W, L2), 0, "write 256 KiB, chained PRP list")
for i = 0, 63, 9 do
  H.eq(readback(1000 + i * 8, PG) == data:sub(i * PG + 1, (i + 1) * PG), true,
       "chained list page " .. i)
end
-- unaligned, page-crossing: 8 KiB from offset 0x200 spans three pages
c:mem_write(list_at(L + 4 * PG, { W + PG, W + 2 * PG }))
H.eq(d:io(1, true, 2000, 16, W + 0x200, L + 4 * PG), 0, "unaligned 8 KiB write")
H.eq(readback(2000, 2 * PG) == data:sub(0x201, 0x200 + 2 * PG), true, "unaligned data")
c:mem_write(R, string.rep("\0", 2 * PG))
H.eq(d:io(1, false, 2000, 8, R + 0x800, R + PG), 0, "unaligned 4 KiB read")
H.eq(c:mem_read(R + 0x800, PG) == data:sub(0x201, 0x200 + PG), true, "unaligned read data")
H.eq(c:mem_read(R, 0x800), string.rep("\0", 0x800), "nothing before PRP1")

-- Write Zeroes, Flush, Dataset Management
H.eq(d:cmd(1, { op = 0x08, nsid = 1, c10 = 0, c12 = 3 }), 0, "write zeroes")
H.eq(readback(0, PG):sub(1, 2048), string.rep("\0", 2048), "zeroed blocks")
H.eq(readback(0, PG):sub(2049) == data:sub(2049, PG), true, "next blocks kept")
H.eq(d:cmd(1, { op = 0x00, nsid = 1 }), 0, "flush")
H.eq(d:cmd(1, { op = 0x00, nsid = 0xffffffff }), 0, "flush all namespaces")
c:mem_write(IDBUF, string.pack("<I4I4J", 0, 8, 16) .. string.pack("<I4I4J", 0, 8, 32))
H.eq(d:cmd(1, { op = 0x09, nsid = 1, prp1 = IDBUF, c10 = 1, c11 = 4 }), 0, "deallocate")
c:mem_write(IDBUF, string.pack("<I4I4J", 0, 8, nsze - 4))
H.eq(d:cmd(1, { op = 0x09, nsid = 1, prp1 = IDBUF, c10 = 0, c11 = 4 }), N.LBA_RANGE,
     "deallocate past the end")

-- what a bad command gets
H.eq(d:io(1, false, nsze - 1, 2, R), N.LBA_RANGE, "LBA out of range")
H.eq(d:io(1, false, nsze, 1, R), N.LBA_RANGE, "LBA at the end")
H.eq(d:io(1, false, -1, 1, R), N.LBA_RANGE, "LBA 2^64-1")
H.eq(d:cmd(1, { op = 0x08, nsid = 1, c10 = nsze - 1, c12 = 1 }), N.LBA_RANGE,
     "write zeroes past the end")
H.eq(d:io(1, false, 0, 1024, R), N.INVALID_FIELD, "512 KiB: more than MDTS")
H.eq(d:cmd(1, { op = 0x7f, nsid = 1 }), N.INVALID_OPCODE, "unknown I/O opcode")
H.eq(d:cmd(1, { op = 0x06, nsid = 1 }), N.INVALID_OPCODE, "admin opcode on an I/O queue")
H.eq(d:io(1, false, 0, 1, R, 0, 2), N.INVALID_NS, "NSID 2")
H.eq(d:io(1, false, 0, 1, R, 0, 0), N.INVALID_NS, "NSID 0")
H.eq(d:io(1, false, 0, 1, R + 1), N.PRP_OFFSET, "PRP1 not dword-aligned")
H.eq(d:io(1, false, 0, 16, R, R + PG + 8), N.PRP_OFFSET, "PRP2 with an offset")
c:mem_write(list_at(L, { R + PG, R + 2 * PG + 512 }))
H.eq(d:io(1, false, 0, 24, R, L), N.PRP_OFFSET, "list entry with an offset")
H.eq(d:io(1, false, 0, 24, R, L + 4), N.PRP_OFFSET, "list pointer not qword-aligned")
H.eq(d:io(1, false, 0, 8, UNMAPPED), N.DATA_XFER, "read into unmapped memory")
H.eq(d:io(1, true, 0, 16, W, UNMAPPED), N.DATA_XFER, "write from an unmapped PRP2")
H.eq(d:io(1, false, 0, 24, R, UNMAPPED), N.DATA_XFER, "PRP list in unmapped memory")
H.eq(d:cmd(1, { op = 0x02, flags = 0x40, nsid = 1, prp1 = R }), N.INVALID_FIELD, "SGL")
H.eq(d:cmd(1, { op = 0x02, flags = 0x01, nsid = 1, prp1 = R }), N.INVALID_FIELD, "fused")
local _, _, e = d:io(1, false, 0, 1, R)
H.eq(e.sqid, 1, "CQE SQID")
H.eq(e.sqhd, d.q[1].tail, "CQE SQ head")

-- queue 2 completes on vector 2; one interrupt per doorbell batch
H.eq(d:io(2, false, 0, 8, R), 0, "read on queue 2")
H.eq(c:irq_wait("msix", 2, 1000), 1, "vector 2 for CQ 2")
for _ = 1, 8 do d:put(2, { op = 0x02, nsid = 1, prp1 = R + PG, c12 = 7 }) end
d:ring(2)
H.eq(c:irq_wait("msix", 2, 1000), 1, "one interrupt for 8 commands")
local got = 0
while d:reap(2) do got = got + 1 end
H.eq(got, 8, "8 completions from one doorbell")
H.eq(c:irq_wait("msix", 2, 100), 0, "no second interrupt")

-- a full CQ holds back the SQ until the host frees an entry
for _ = 1, 2 do
  for _ = 1, 40 do d:put(2, { op = 0x00, nsid = 1 }) end
  d:ring(2)
end
got = 0
while d:reap(2, true) do got = got + 1 end
H.eq(got, 63, "a CQ of 64 holds 63")
assert(c:write("bar0", 0x1004 + 16, 4, d.q[2].head))
while d:reap(2, true) do got = got + 1 end
H.eq(got, 80, "the rest once the head moved")
assert(c:write("bar0", 0x1004 + 16, 4, d.q[2].head))

-- 60 Write Zeroes of the whole namespace (960 MiB of memset) in one
-- doorbell: the batch yields to a timer and finishes, within budget
for _ = 1, 60 do d:put(2, { op = 0x08, nsid = 1, c10 = 0, c12 = 32767 }) end
d:ring(2)
got = 0
local deadline = vfu.now() + 20000
while got < 60 and vfu.now() < deadline do
  local e2 = d:reap(2)
  if e2 then
    H.eq(e2.status, 0, "write zeroes of 16 MiB")
    got = got + 1
  else
    vfu.sleep(5)
  end
end
H.eq(got, 60, "every big command completed")
c:mem_write(W, data:sub(1, 2 * PG))
H.eq(d:io(1, true, 8, 16, W, W + PG), 0, "rewrite LBA 8")
lba8 = data:sub(1, 2 * PG)

-- INTx when MSI-X is off, masked by INTMS
assert(c:irq_disable("msix"))
assert(c:irq_enable("intx"))
H.eq(d:io(1, false, 0, 8, R), 0, "read with INTx")
H.eq(c:irq_wait("intx", 0, 1000), 1, "INTx for CQ 1")
d:setreg(0x0c, 1)
H.eq(d:reg(0x0c), 1, "INTMS")
d:put(1, { op = 0x00, nsid = 1 })
d:ring(1)
H.eq(c:irq_wait("intx", 0, 200), 0, "masked")
d:setreg(0x10, 1)
H.eq(d:reg(0x0c), 0, "INTMC")
H.eq(c:irq_wait("intx", 0, 1000), 1, "pending completion raises INTx on unmask")
assert(d:reap(1))
assert(c:irq_disable("intx"))
-- MSI: every CQ on its one vector
assert(c:irq_enable("msi"))
H.eq(d:io(2, false, 0, 8, R), 0, "read on queue 2 with MSI")
H.eq(c:irq_wait("msi", 0, 1000), 1, "MSI vector 0 for CQ 2")
assert(c:irq_disable("msi"))
enable_msix(c)

-- === asynchronous events ===========================================================

local aer = d:put(0, { op = 0x0c })
d:ring(0)
H.eq(d:reap(0), nil, "AER held")
assert(c:write("bar0", 0x1000 + 8 * 9, 4, 1))        -- SQ 9 does not exist
local ev = d:reap(0)
assert(ev, "AER completed by the invalid doorbell")
H.eq(ev.cid, aer, "the held AER")
H.eq(ev.dw0, 0x010000, "error event, invalid doorbell register, error log")
H.eq(c:irq_wait("msix", 0, 1000), 1, "vector 0 for the admin CQ")
aer = d:put(0, { op = 0x0c })
d:ring(0)
assert(c:write("bar0", 0x1000 + 8, 4, 64))           -- SQ 1 has 64 entries
H.eq(d:reap(0), nil, "error events masked until the log is read")
H.eq(d:admin { op = 0x02, c10 = 15 << 16 | 0x01, prp1 = IDBUF }, 0, "read the error log")
assert(c:write("bar0", 0x1004 + 8, 4, (d.q[1].head + 5) % 64))   -- past the tail
ev = d:reap(0)
assert(ev, "AER completed by the invalid value")
H.eq(ev.dw0, 0x010100, "invalid doorbell write value")
H.eq(d:io(1, false, 0, 8, R), 0, "queue 1 works after the bad doorbells")
for _ = 1, 4 do d:put(0, { op = 0x0c }) end
d:ring(0)
H.eq(d:reap(0), nil, "4 AERs held")
H.eq(d:admin { op = 0x0c }, N.AER_LIMIT, "a fifth")

-- === resets and shutdown ============================================================

H.eq(d:admin { op = 0x00, c10 = 2 }, 0, "delete SQ 2")
H.eq(d:admin { op = 0x04, c10 = 2 }, 0, "delete CQ 2")
assert(c:write("bar0", 0x1000 + 16, 4, 1))
H.eq(d:reap(0), nil, "error events masked again: the log was not read since")
d:setreg(0x14, 0)
H.eq(d:reg(0x1c) & 1, 0, "CSTS.RDY drops with CC.EN")
bring_up(c, d)
H.eq(d:reap(0), nil, "held AERs are gone with the reset")
H.eq(readback(8, 2 * PG) == lba8, true, "data survives a controller reset")

d:setreg(0x14, 0x464001)                               -- CC.SHN normal
H.eq(d:reg(0x1c) & 0xc, 0x8, "CSTS.SHST complete")
d:setreg(0x14, 0x460000)
H.eq(d:reg(0x1c) & 1, 0, "disabled after shutdown")
bring_up(c, d)
H.eq(d:reg(0x1c), 1, "SHST clear after enable")

-- FLR through the PCIe capability
local pos = c:read("config", 0x34, 1)
while pos ~= 0 and c:read("config", pos, 1) ~= 0x10 do pos = c:read("config", pos + 1, 1) end
assert(pos ~= 0, "PCIe capability")
assert((c:read("config", pos + 4, 4) >> 28) & 1 == 1, "FLR capable")
assert(c:write("config", pos + 8, 2, 0x8000))
H.eq(d:reg(0x14), 0, "CC after FLR")
H.eq(d:reg(0x1c), 0, "CSTS after FLR")
H.eq(d:reg(0x28, 8), 0, "ASQ after FLR")
bring_up(c, d)
H.eq(readback(8, 2 * PG) == lba8, true, "data survives FLR")
assert(c:reset())
H.eq(d:reg(0x1c), 0, "CSTS after DEVICE_RESET")
bring_up(c, d)

-- enabling on unmapped admin queues is a fatal status, cleared by a reset
d:setreg(0x14, 0)
d:setreg(0x28, UNMAPPED, 8)
d:setreg(0x14, 0x460001)
H.eq(d:reg(0x1c), 2, "CSTS.CFS, not ready")
bring_up(c, d)

-- memory unmapped under live queues: fatal, the device keeps serving
assert(c:dma_map(0x20000000, 64 << 10))
H.eq(d:create_pair(3, 0x20000000, 0x20001000, 16, 3), 0, "queue pair 3")
assert(c:dma_unmap(0x20000000, 64 << 10))
assert(c:write("bar0", 0x1000 + 24, 4, 1))
H.eq(d:reg(0x1c) & 2, 2, "CFS when the SQ memory went away")
bring_up(c, d)
H.eq(readback(8, 2 * PG) == lba8, true, "working after the fatal status")

-- queues and data in memory mapped without an fd: every access is a
-- DMA_READ/DMA_WRITE message to the client
local NOFD = 0x30000000
assert(c:dma_map(NOFD, 64 << 10, "rw", false))
H.eq(d:create_pair(4, NOFD, NOFD + 0x1000, 16, 4), 0, "queue pair 4 without fds")
c:mem_write(NOFD + 0x4000, data:sub(1, PG))
H.eq(d:io(4, true, 300, 8, NOFD + 0x4000), 0, "write from fd-less memory")
H.eq(d:io(4, false, 300, 8, NOFD + 0x8000), 0, "read into fd-less memory")
H.eq(c:mem_read(NOFD + 0x8000, PG) == data:sub(1, PG), true, "fd-less data")
H.eq(readback(300, PG) == data:sub(1, PG), true, "and through queue 1")
for _ = 1, 20 do H.eq(d:cmd(4, { op = 0x00, nsid = 1 }), 0, "round the fd-less queue") end

-- === hostile ======================================================================

local rng = 12345
local function rand()
  rng = (rng * 1103515245 + 12345) & 0x7fffffff
  return rng
end
local function garbage(n)
  local t = {}
  for i = 1, n // 4 do t[i] = string.pack("<I4", rand() * 2 + (rand() & 1)) end
  return table.concat(t)
end
-- garbage SQEs on the I/O queue, some with valid opcodes and NSID
for _ = 1, 40 do
  local q = d.q[1]
  for _ = 1, 32 do
    local sqe = garbage(64)
    if rand() % 2 == 0 then
      sqe = string.pack("<BxH", ({ 0, 1, 2, 8, 9, 0x7f })[rand() % 6 + 1], 0) ..
            string.pack("<I4", 1) .. sqe:sub(9)
    end
    c:mem_write(q.sq + q.tail * 64, sqe)
    q.tail = (q.tail + 1) % q.size
  end
  d:ring(1)
  got = 0
  while d:reap(1) do got = got + 1 end
  H.eq(got, 32, "every garbage I/O command completes")
end
-- garbage admin commands (AERs among them may be held)
for _ = 1, 20 do
  local q = d.q[0]
  for _ = 1, 16 do
    local sqe = garbage(64)
    local op = ({ 0x02, 0x06, 0x08, 0x09, 0x0a, 0x0c, 0x7e, 0xff })[rand() % 8 + 1]
    c:mem_write(q.sq + q.tail * 64, string.char(op) .. sqe:sub(2))
    q.tail = (q.tail + 1) % q.size
  end
  d:ring(0)
  while d:reap(0) do end
end
-- well-formed commands whose PRPs, lists and queues point anywhere in the
-- client's memory, the queues themselves included
local function anywhere() return M + (rand() % (MSIZE // 8)) * 8 end
for _ = 1, 30 do
  local q = d.q[1]
  for _ = 1, 16 do
    local op = ({ 0x01, 0x02, 0x08, 0x09 })[rand() % 4 + 1]
    c:mem_write(q.sq + q.tail * 64, N.pack_sqe {
      op = op, nsid = 1, cid = rand() & 0xffff, prp1 = anywhere(), prp2 = anywhere(),
      c10 = rand() % 32768, c12 = rand() % 512, c11 = 0 })
    q.tail = (q.tail + 1) % q.size
  end
  d:ring(1)
  for _ = 1, 64 do if not d:reap(1) then break end end
end
for _ = 1, 10 do
  local q = d.q[0]
  for _ = 1, 8 do
    local op = ({ 0x01, 0x02, 0x05, 0x06, 0x0a })[rand() % 5 + 1]
    c:mem_write(q.sq + q.tail * 64, N.pack_sqe {
      op = op, nsid = rand() % 3, prp1 = anywhere() & ~0xfff, prp2 = anywhere(),
      c10 = (rand() % 64) << 16 | (rand() % 20), c11 = (rand() % 20) << 16 | (rand() % 4) })
    q.tail = (q.tail + 1) % q.size
  end
  d:ring(0)
  for _ = 1, 32 do if not d:reap(0) then break end end
end
-- huge and bad doorbells, odd register accesses
assert(c:write("bar0", 0x1000, 4, 0xffffffff))
assert(c:write("bar0", 0x1000 + 8 * 200, 4, 3))
assert(c:write("bar0", 0x3ffc, 4, 3))
assert(c:write("bar0", 0x1000, 2, 3))
assert(c:write("bar0", 0x1000, 8, 3))
assert(c:write("bar0", 0x14, 1, 0xff))
assert(c:write("bar0", 0x15, 2, 0xffff))
assert(c:write("bar0", 0x1003, 1, 1))
c:read("bar0", 0x3ff8, 8)
c:read("bar0", 0x1001, 2)
c:read("bar4", 0, 4)
H.eq(d:reg(0x1c) & 2, 0, "no fatal status")
c:close()

-- a fresh client gets a working controller
c = H.connect(s)
assert(c:dma_map(M, MSIZE))
d = N.new(c)
H.eq(d:reg(0x1c), 0, "reset for the new client")
bring_up(c, d, (16 << 20) // 512)
c:mem_write(W, data:sub(1, PG))
H.eq(d:io(1, true, 0, 8, W), 0, "write after the hostile client")
H.eq(readback(0, PG) == data:sub(1, PG), true, "read after the hostile client")
c:close()
local log = H.stop(s)
assert(not log:find("traceback"), log)

-- === a file-backed namespace =======================================================

local img = H.tmp .. "/ns.img"
local f = assert(io.open(img, "wb"))
local content = pattern(1 << 20, 7)
f:write(content)
f:close()
s = H.start(NVME, "", "nvmefile", img)
H.watchdog(s, 60)
c = H.connect(s)
assert(c:dma_map(M, MSIZE))
d = N.new(c)
bring_up(c, d, 2048)
H.eq(readback(10, 2 * PG) == content:sub(5121, 5120 + 2 * PG), true, "the file's data")
c:mem_write(W, string.rep("file", 1024))
H.eq(d:io(1, true, 2040, 8, W), 0, "write the last 4 KiB")
H.eq(d:cmd(1, { op = 0x00, nsid = 1 }), 0, "flush")
H.eq(d:io(1, true, 2041, 8, W), N.LBA_RANGE, "one past the end of the file")
c:close()
H.stop(s)
f = assert(io.open(img, "rb"))
local after = f:read("a")
f:close()
H.eq(#after, 1 << 20, "file size kept")
H.eq(after:sub(-PG) == string.rep("file", 1024), true, "written into the file")
H.eq(after:sub(1, 5120) == content:sub(1, 5120), true, "the rest kept")
s = H.start(NVME, "", "nvmefile2", img)
c = H.connect(s)
assert(c:dma_map(M, MSIZE))
d = N.new(c)
bring_up(c, d, 2048)
H.eq(readback(2040, PG) == string.rep("file", 1024), true, "data of the last run")
c:close()
H.stop(s)

-- === migration with I/O in flight ====================================================

-- --memory 16 bounds a stream at 4 MiB: the 6 MiB of data get through
-- because each pre-copy chunk is written as it arrives
local src = H.start(NVME, "--memory 16", "nvmesrc", "16M")
local dst = H.start(NVME, "--memory 16", "nvmedst", "16M")
H.watchdog(src, 60)
H.watchdog(dst, 60)
local c1 = H.connect(src)
assert(c1:dma_map(M, MSIZE))
enable_msix(c1)
local d1 = N.new(c1)
bring_up(c1, d1, (16 << 20) // 512)
c1:mem_write(W, data)
H.eq(d1:io(1, true, 0, 8, W), 0, "chunk 0 data")
H.eq(d1:io(1, true, 2048 * 2, 8, W + PG), 0, "chunk 2 data")   -- 2 MiB
for ch = 4, 8 do
  H.eq(d1:io(1, true, 2048 * ch + 7, 8, W + ch * PG), 0, "chunk " .. ch .. " data")
end
aer = d1:put(0, { op = 0x0c })
d1:ring(0)
H.eq(d1:reap(0), nil, "AER held on the source")
-- a full CQ 2 holding back 17 commands when the source stops
H.eq(d1:create_pair(2, SQ2, CQ2, 64, 2), 0, "queue pair 2 on the source")
for _ = 1, 2 do
  for _ = 1, 40 do d1:put(2, { op = 0x00, nsid = 1 }) end
  d1:ring(2)
end
-- completions the host has not reaped when the source stops
for i = 1, 3 do d1:put(1, { op = 0x02, nsid = 1, prp1 = R + i * PG, c12 = 7 }) end
d1:ring(1)
assert(c1:mig_set("pre_copy"))
local rounds = {}
rounds[1] = assert(c1:mig_read())
assert(#rounds[1] > (1 << 20), "round 1: a chunk with data, got " .. #rounds[1])
-- the guest keeps writing: chunk 0 again, after it was sent
c1:mem_write(W + 2 * PG, string.rep("late", 1024))
local tail1 = d1.q[1].tail
d1:put(1, { op = 0x01, nsid = 1, prp1 = W + 2 * PG, c10 = 16, c12 = 7 })
d1:ring(1)
while true do
  local r = assert(c1:mig_read())
  if r == "" then break end
  rounds[#rounds + 1] = r
end
H.eq(#rounds, 8, "chunks 0, 2, 4-8, then chunk 0 again")
assert(c1:mig_set("stop_copy"))
local final = assert(c1:mig_read())
assert(#final < (1 << 20), "the final part has no chunks: " .. #final)
assert(c1:mig_set("stop"))

-- the guest's memory moves with it
local c2 = H.connect(dst)
assert(c2:dma_map(M, MSIZE))
for off = 0, MSIZE - 1, 1 << 20 do c2:mem_write(M + off, c1:mem_read(M + off, 1 << 20)) end
enable_msix(c2)
assert(c2:mig_set("stop"))
assert(c2:mig_set("resuming"))
assert(c2:mig_write(table.concat(rounds) .. final))
assert(c2:mig_set("stop"))
assert(c2:mig_set("running"))
c1:close()
H.stop(src)

local d2 = N.new(c2)
d2.q, d2.cid = d1.q, d1.cid
H.eq(d2:reg(0x1c), 1, "ready on the destination")
H.eq(d2:reg(0x28, 8), ASQ, "ASQ migrated")
got = 0
while d2:reap(1) do got = got + 1 end
H.eq(got, 4, "the completions in flight")
H.eq(d2.q[1].tail, (tail1 + 1) % 64, "SQ tail")
got = 0
while d2:reap(2, true) do got = got + 1 end
H.eq(got, 63, "CQ 2 was full")
assert(c2:write("bar0", 0x1004 + 16, 4, d2.q[2].head))
while d2:reap(2, true) do got = got + 1 end
H.eq(got, 80, "the commands held back on the source ran on the destination")
H.eq(d2:io(1, false, 16, 8, R), 0, "read on the destination")
H.eq(c2:mem_read(R, PG), string.rep("late", 1024), "the block written during pre-copy")
H.eq(d2:io(1, false, 0, 8, R), 0, "read chunk 0")
H.eq(c2:mem_read(R, PG) == data:sub(1, PG), true, "pre-copied data")
H.eq(d2:io(1, false, 4096, 8, R), 0, "read chunk 2")
H.eq(c2:mem_read(R, PG) == data:sub(PG + 1, 2 * PG), true, "chunk 2 data")
for ch = 4, 8 do
  H.eq(d2:io(1, false, 2048 * ch + 7, 8, R), 0, "read chunk " .. ch)
  H.eq(c2:mem_read(R, PG) == data:sub(ch * PG + 1, (ch + 1) * PG), true, "chunk " .. ch)
end
assert(c2:irq_wait("msix", 1, 1000) >= 1, "interrupts on the destination")
-- the held AER survived and completes on the destination
assert(c2:write("bar0", 0x1000 + 8 * 7, 4, 1))
ev = d2:reap(0)
assert(ev, "migrated AER completes")
H.eq(ev.cid, aer, "the AER held on the source")
H.eq(ev.dw0, 0x010000, "invalid doorbell event")
-- phases continue: go once round the queue
for _ = 1, 70 do H.eq(d2:cmd(1, { op = 0x00, nsid = 1 }), 0, "flush round the queue") end
c2:close()
log = H.stop(dst)
assert(not log:find("traceback"), log)

H.done("nvme")
