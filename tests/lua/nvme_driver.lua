-- SPDX-License-Identifier: BSD-3-Clause
-- Copyright (c) 2026 the vfu authors.

-- A small NVMe host driver over the vfu Lua client, for the tests of
-- devices/nvme.lua: the admin queue, I/O queue pairs, commands built from
-- their fields, completions checked for phase and command id. Memory is
-- one client DMA map; the caller lays it out.

local N = {}
N.__index = N

N.OK, N.INVALID_OPCODE, N.INVALID_FIELD, N.DATA_XFER = 0, 0x01, 0x02, 0x04
N.INVALID_NS, N.PRP_OFFSET, N.LBA_RANGE = 0x0b, 0x13, 0x80
N.CQ_INVALID, N.INVALID_QID, N.INVALID_QSIZE = 0x100, 0x101, 0x102
N.AER_LIMIT, N.INVALID_VECTOR, N.INVALID_LOG, N.INVALID_DELETE = 0x105, 0x108, 0x109, 0x10c

local function pack_sqe(f)
  return string.pack("<I4I4I4I4JJJI4I4I4I4I4I4",
    (f.op or 0) | (f.flags or 0) << 8 | (f.cid or 0) << 16, f.nsid or 0, 0, 0, 0,
    f.prp1 or 0, f.prp2 or 0, f.c10 or 0, f.c11 or 0, f.c12 or 0, f.c13 or 0,
    f.c14 or 0, f.c15 or 0)
end
N.pack_sqe = pack_sqe

-- c: a connected client; mem: { base = iova } of a DMA map it made.
function N.new(c)
  return setmetatable({ c = c, q = {}, cid = 0 }, N)
end

function N:reg(off, size) return assert(self.c:read("bar0", off, size or 4)) end
function N:setreg(off, v, size) assert(self.c:write("bar0", off, size or 4, v)) end

-- Enable with an admin queue pair of n entries at sq/cq.
function N:enable(sq, cq, n)
  self:setreg(0x14, 0)
  self:setreg(0x24, (n - 1) << 16 | (n - 1))
  self:setreg(0x28, sq, 8)
  self:setreg(0x30, cq, 8)
  self.q[0] = { id = 0, sq = sq, cq = cq, size = n, tail = 0, head = 0, phase = 1 }
  self.c:mem_write(cq, string.rep("\0", n * 16))   -- a host clears its CQs
  self:setreg(0x14, 0x460001)         -- IOCQES 4, IOSQES 6, EN
  return self:reg(0x1c)
end

-- Put a command in queue qid's SQ (without ringing); returns its cid.
function N:put(qid, f)
  local q = self.q[qid]
  self.cid = (self.cid + 1) & 0xffff
  f.cid = f.cid or self.cid
  self.c:mem_write(q.sq + q.tail * 64, pack_sqe(f))
  q.tail = (q.tail + 1) % q.size
  return f.cid
end

function N:ring(qid)
  local q = self.q[qid]
  self:setreg(0x1000 + 8 * qid, q.tail)
end

-- The next completion of queue qid, or nil if there is none.
function N:reap(qid, no_doorbell)
  local q = self.q[qid]
  local dw0, _, sqhd, sqid, cid, st = string.unpack("<I4I4HHHH",
    assert(self.c:mem_read(q.cq + q.head * 16, 16)))
  if st & 1 ~= q.phase then return nil end
  q.head = q.head + 1
  if q.head == q.size then q.head, q.phase = 0, q.phase ~ 1 end
  if not no_doorbell then self:setreg(0x1004 + 8 * qid, q.head) end
  return { status = (st >> 1) & 0x7ff, dnr = st >> 15, dw0 = dw0, sqhd = sqhd,
           sqid = sqid, cid = cid }
end

-- Submit one command and take its completion (the device completes
-- within the doorbell write).
function N:cmd(qid, f)
  local cid = self:put(qid, f)
  self:ring(qid)
  local e = self:reap(qid)
  assert(e, "no completion for command " .. cid)
  assert(e.cid == cid, ("completion for cid %d, want %d"):format(e.cid, cid))
  return e.status, e.dw0, e
end

function N:admin(f) return self:cmd(0, f) end

function N:create_pair(qid, sq, cq, n, iv)
  self.c:mem_write(cq, string.rep("\0", n * 16))
  local st = self:admin { op = 0x05, prp1 = cq, c10 = (n - 1) << 16 | qid,
                          c11 = (iv or qid) << 16 | 3 }
  if st ~= 0 then return st end
  st = self:admin { op = 0x01, prp1 = sq, c10 = (n - 1) << 16 | qid, c11 = qid << 16 | 1 }
  if st ~= 0 then return st end
  self.q[qid] = { id = qid, sq = sq, cq = cq, size = n, tail = 0, head = 0, phase = 1 }
  return 0
end

-- Read or write nlb blocks at slba through the given PRPs.
function N:io(qid, write, slba, nlb, prp1, prp2, nsid)
  return self:cmd(qid, { op = write and 0x01 or 0x02, nsid = nsid or 1, prp1 = prp1,
                         prp2 = prp2 or 0, c10 = slba & 0xffffffff, c11 = slba >> 32,
                         c12 = nlb - 1 })
end

return N
