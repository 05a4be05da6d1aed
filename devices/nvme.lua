-- SPDX-License-Identifier: BSD-3-Clause
-- Copyright (c) 2026 the vfu authors.

-- An NVMe 1.4 PCIe controller with one namespace of 512-byte blocks, as
-- Linux's nvme driver expects one:
--
--   vfu-lua devices/nvme.lua SOCKET [FILE | SIZE]
--
-- FILE (its size is the namespace's; it is mapped shared, so its data
-- outlives the process) or SIZE bytes of memory (64M by default; K, M, G, T
-- suffixes).
--
-- BAR0 holds the controller registers and, from 0x1000, the doorbells
-- (stride 4: SQ y tail at 0x1000 + 8y, CQ y head at 0x1004 + 8y); BAR4 the
-- MSI-X table and PBA. One MSI-X vector per completion queue (the client
-- picks it), MSI or INTx (vector 0) when MSI-X is off. PCIe capability
-- with FLR, PM capability.
--
-- Commands run synchronously inside the doorbell write that makes them
-- visible: all new entries of the queue at once, one interrupt per
-- completion queue and doorbell. Queue memory is held (dev:dma_hold) and
-- read and written as records (sg:unpack/pack); data moves between the
-- namespace (a vfu.buffer) and the PRP pages in one call (to_dma/from_dma).
-- A command is thus one unpack, one copy and one pack.

local vfu = require "vfu"
local state = require "state"

local PG, PGMASK, PGSHIFT = 4096, 4095, 12
local BLK_SHIFT = 9
local MQES = 1023               -- largest queue: 1024 entries
local MAXQ = 16                 -- I/O queue pairs
local MDTS = 6                  -- 2^6 pages (256 KiB) per command
local MAX_XFER = PG << MDTS
local AERL = 3                  -- 4 asynchronous event requests held at most
local BATCH_BYTES = 32 << 20    -- moved per doorbell before yielding to a timer
-- ... or run for this long (ms, looked at every 4 commands): a tenth of
-- vfu-lua's default budget, so that a batch whose DMA goes by slow
-- messages (guest RAM not shared, a busy host) never runs out of it
local BATCH_MS = 10
local CHUNK = 1 << 20           -- migration unit of a memory namespace
local EINVAL = 22

-- Status: SCT << 8 | SC, and Do Not Retry for what would fail again.
local DNR = 0x4000
local OK = 0
-- Not a status: the client could not serve a DMA message just now (QEMU,
-- guest RAM not shared, a vCPU waiting for this device); the command runs
-- again from a timer.
local BUSY = -1
local INVALID_OPCODE, INVALID_FIELD = 0x01 | DNR, 0x02 | DNR
local DATA_XFER, INVALID_NS = 0x04, 0x0b | DNR
local PRP_OFFSET, LBA_RANGE = 0x13 | DNR, 0x80 | DNR
local CQ_INVALID, INVALID_QID, INVALID_QSIZE = 0x100 | DNR, 0x101 | DNR, 0x102 | DNR
local AER_LIMIT, INVALID_VECTOR = 0x105 | DNR, 0x108 | DNR
local INVALID_LOG, INVALID_DELETE, NOT_SAVEABLE = 0x109 | DNR, 0x10c | DNR, 0x10d | DNR

-- CSTS bits
local RDY, CFS, SHST_MASK, SHST_DONE = 0x1, 0x2, 0xc, 0x8

-- CAP: MQES, CQR (contiguous queues required), TO 7.5 s, DSTRD 0, CSS NVM,
-- MPSMIN = MPSMAX = 4 KiB
local CAP = MQES | 1 << 16 | 15 << 24 | 1 << 37
local VS = 0x00010400

local SQE = "<I4I4x16JJI4I4I4I4"    -- CDW0 NSID (CDW2-3 MPTR) PRP1 PRP2 CDW10-13
local CQE = "<I4I4HHHH"             -- DW0 DW1 SQHD SQID CID status|phase

-- --- the namespace ---------------------------------------------------------

local function parse_size(s)
  local n, suf = s:match("^(%d+)([KkMmGgTt]?)[iI]?[Bb]?$")
  if not n then return nil end
  local shift = ({ [""] = 0, k = 10, m = 20, g = 30, t = 40 })[suf:lower()]
  return math.tointeger(tonumber(n) << shift)
end

local backing = arg and arg[2] or "64M"
local size = parse_size(backing)
local store, file_backed
if size then
  store = assert(vfu.buffer(size))
else
  store = assert(vfu.buffer(backing))
  file_backed = true
end
local NLB = #store >> BLK_SHIFT      -- namespace size in blocks
assert(NLB > 0, "nvme: the namespace needs at least one 512-byte block")
local to_dma, from_dma = store.to_dma, store.from_dma

-- --- controller state (saved for migration) -------------------------------

local r = { cc = 0, csts = 0, aqa = 0, asq = 0, acq = 0, intms = 0 }
local feat = {}
local function default_features()
  feat.arb, feat.pm, feat.err, feat.vwc = 0, 0, 0, 1
  feat.temp_over, feat.temp_under = 0x157, 0       -- 343 K
  feat.nsq, feat.ncq = MAXQ, MAXQ
  feat.coal, feat.wan, feat.aec = 0, 0, 0
  feat.ivc = {}
end
default_features()
local stats = { rd_blocks = 0, wr_blocks = 0, rd_cmds = 0, wr_cmds = 0,
                powered = vfu.now() }

-- queues by id (0 admin): sq = { id, base, size, head, tail, cq, mem },
-- cq = { id, base, size, head, tail, phase, iv, ien, nsq, mem, stalled }
local sqs, cqs = {}, {}
local aers = {}                 -- command ids of held AERs
local events = {}               -- DW0s of events waiting for an AER
local ev_masked = {}            -- event types reported and not yet read
local dev
local msix_on = false
local fatal_logged = false
local mig = nil                 -- { next = chunk, dirty = {} } while migrating
local running = true            -- false while a migration has the device stopped

local list = {}                 -- PRP list entries, reused
local scratch = assert(vfu.buffer(8192))        -- identify lists, logs, DSM

local function fatal(why)
  r.csts = r.csts | CFS
  if not fatal_logged then
    fatal_logged = true
    dev:log("controller fatal status: " .. why, "err")
  end
end

-- Queue memory the client mapped without an fd (QEMU's, when guest RAM is
-- not shared) cannot be held: the same methods then go through
-- dev:dma_read/dma_write, one message per entry. Those raise if the
-- memory goes away (the handler fails; the controller stays).
local STD = { [SQE] = "<I4I4" .. ("x"):rep(16) .. "JJI4I4I4I4", [CQE] = CQE }
local by_message = {
  unpack = function(q, off, fmt)
    local s, msg, e = dev:dma_read(q.base + off, string.packsize(STD[fmt]))
    if not s and e == vfu.errno.EBUSY then return nil end   -- later
    assert(s, msg)
    return string.unpack(STD[fmt], s)
  end,
  pack = function(q, off, fmt, ...)
    assert(dev:dma_write(q.base + off, string.pack(STD[fmt], ...)))
  end,
  mark_dirty = function() end,          -- dma_write marked the pages
  release = function() end,
}
local by_message_meta = { __index = by_message, __len = function() return 1 end }

local EFAULT = 14
local function hold(q, len, mode)
  local m = q.mem
  if m and #m > 0 then return m end
  local _, e
  m, _, e = dev:dma_hold(q.base, len, mode)
  if not m and e == EFAULT then         -- mapped, but not into this process
    m = setmetatable({ base = q.base }, by_message_meta)
  end
  q.mem = m
  return m
end

-- Held queue memory; taken again if the client unmapped and remapped it.
local function sq_mem(q) return hold(q, q.size << 6, "r") end
local function cq_mem(q) return hold(q, q.size << 4, "rw") end

local function notify(cq)
  local m = cq.mem
  if m and #m > 0 then m:mark_dirty() end   -- held writes are not logged
  if not cq.ien then return end
  if msix_on then
    dev:irq(cq.iv)
  elseif r.intms & 1 == 0 then
    dev:irq(0)
  end
end

local function cq_full(cq)
  local t = cq.tail + 1
  if t == cq.size then t = 0 end
  return t == cq.head
end

local function post(cq, dw0, sqhd, sqid, cid, status)
  local t = cq.tail
  cq.mem:pack(t << 4, CQE, dw0, 0, sqhd, sqid, cid, status << 1 | cq.phase)
  t = t + 1
  if t == cq.size then
    t = 0
    cq.phase = cq.phase ~ 1
  end
  cq.tail = t
end

-- An asynchronous event (type, info, log page): to a held AER, or kept
-- until one comes. A type stays masked until its log page is read.
local function event(etype, info, lid)
  if ev_masked[etype] or #events >= 8 then return end
  ev_masked[etype] = true
  local dw0 = etype | info << 8 | lid << 16
  local cq, sq = cqs[0], sqs[0]
  if #aers > 0 and cq and cq_mem(cq) and not cq_full(cq) then
    post(cq, dw0, sq.head, 0, table.remove(aers, 1), OK)
    notify(cq)
  else
    events[#events + 1] = dw0
  end
end

-- --- data transfer ----------------------------------------------------------

-- Fill `list` with n PRP entries from the list at addr, following the
-- chain when a list page's last entry points to the next page.
local function prp_list(addr, n)
  local k, unpack = 0, string.unpack
  while true do
    if addr & 7 ~= 0 then return PRP_OFFSET end
    local room = (PG - (addr & PGMASK)) >> 3
    local take, chained = n - k, false
    if take > room then
      take, chained = room - 1, true
      if take == 0 then return PRP_OFFSET end
    end
    local s, _, e = dev:dma_read(addr, (chained and room or take) << 3)
    if not s then return e == vfu.errno.EBUSY and BUSY or DATA_XFER end
    local pos = 1
    for _ = 1, take do
      k = k + 1
      list[k], pos = unpack("<i8", s, pos)
    end
    if not chained then return OK end
    addr = unpack("<i8", s, pos)
  end
end

-- The status of a failed copy between the namespace and the PRPs.
local function dma_status(e)
  return e == EINVAL and PRP_OFFSET or e == vfu.errno.EBUSY and BUSY or DATA_XFER
end

-- Move len bytes between buf at off and the PRPs; a status.
local function xfer(buf, off, len, p1, p2, to_host)
  local copy = to_host and to_dma or from_dma
  if p1 & 3 ~= 0 then return PRP_OFFSET end
  local first = PG - (p1 & PGMASK)
  local ok, e, _
  if len <= first then
    ok, _, e = copy(buf, dev, off, len, PG, p1)
  elseif len <= first + PG then
    ok, _, e = copy(buf, dev, off, len, PG, p1, p2)
  else
    local st = prp_list(p2, (len - first + PGMASK) >> PGSHIFT)
    if st ~= OK then return st end
    ok, _, e = copy(buf, dev, off, len, PG, p1, list)
  end
  if ok then return OK end
  return dma_status(e)
end

-- --- I/O commands -------------------------------------------------------------

local function mark_dirty(off, len)
  local d = mig.dirty
  for c = off // CHUNK, (off + len - 1) // CHUNK do d[c] = true end
end

-- The blocks a Read, Write or Write Zeroes names: nil, slba, nlb; or a
-- status.
local function blocks(nsid, c10, c11, c12)
  if nsid ~= 1 then return INVALID_NS end
  local slba, nlb = c11 << 32 | c10, (c12 & 0xffff) + 1
  if slba < 0 or slba > NLB - nlb then return LBA_RANGE end
  return nil, slba, nlb
end

-- Read and Write: the hot path, so the one-page case skips xfer().
local function io_read(nsid, p1, p2, c10, c11, c12)
  local st, slba, nlb = blocks(nsid, c10, c11, c12)
  if st then return st end
  local len = nlb << BLK_SHIFT
  if len > MAX_XFER then return INVALID_FIELD end
  stats.rd_cmds, stats.rd_blocks = stats.rd_cmds + 1, stats.rd_blocks + nlb
  if p1 & 3 == 0 and len <= PG - (p1 & PGMASK) then
    local ok, _, e = to_dma(store, dev, slba << BLK_SHIFT, len, PG, p1)
    if ok then return OK, 0, len end
    return dma_status(e)
  end
  return xfer(store, slba << BLK_SHIFT, len, p1, p2, true), 0, len
end

local function io_write(nsid, p1, p2, c10, c11, c12)
  local st, slba, nlb = blocks(nsid, c10, c11, c12)
  if st then return st end
  local len = nlb << BLK_SHIFT
  if len > MAX_XFER then return INVALID_FIELD end
  stats.wr_cmds, stats.wr_blocks = stats.wr_cmds + 1, stats.wr_blocks + nlb
  if mig then mark_dirty(slba << BLK_SHIFT, len) end
  return xfer(store, slba << BLK_SHIFT, len, p1, p2, false), 0, len
end

local io_ops = {
  [0x02] = io_read,
  [0x01] = io_write,
  [0x00] = function(nsid)                                  -- Flush
    if nsid ~= 1 and nsid ~= 0xffffffff then return INVALID_NS end
    if file_backed and not store:sync() then return 0x06 end  -- internal error
    return OK
  end,
  [0x08] = function(nsid, _, _, c10, c11, c12)             -- Write Zeroes
    local st, slba, nlb = blocks(nsid, c10, c11, c12)
    if st then return st end
    if mig then mark_dirty(slba << BLK_SHIFT, nlb << BLK_SHIFT) end
    store:fill(slba << BLK_SHIFT, nlb << BLK_SHIFT)
    return OK, 0, nlb << BLK_SHIFT
  end,
  [0x09] = function(nsid, p1, p2, c10)                     -- Dataset Management
    if nsid ~= 1 then return INVALID_NS end
    local nr = (c10 & 0xff) + 1
    local st = xfer(scratch, 0, nr << 4, p1, p2, false)
    if st ~= OK then return st end
    for i = 0, nr - 1 do
      local nlb, slba = scratch:unpack(i << 4, "<x4I4J")
      if slba < 0 or slba > NLB - nlb then return LBA_RANGE end
    end
    return OK          -- deallocation is advisory: the data stays
  end,
}

-- --- admin commands -----------------------------------------------------------

local id_ctrl, id_ns, id_desc = assert(vfu.buffer(4096)), assert(vfu.buffer(4096)),
                                assert(vfu.buffer(4096))

local function pad(s, n) return (s .. string.rep(" ", n)):sub(1, n) end

local function build_identify()
  local vid = 0x1234
  local c = id_ctrl
  c:pack(0, "<HH", vid, vid)
  c:write(4, pad("VFULUA0001", 20))
  c:write(24, pad("vfu Lua NVMe", 40))
  c:write(64, pad("1.0", 8))
  c:pack(72, "<B", 6)                           -- RAB
  c:pack(77, "<BHI4", MDTS, 1, VS)              -- MDTS CNTLID VER
  c:pack(111, "<B", 1)                          -- CNTRLTYPE: I/O controller
  c:pack(258, "<BBBBB", 3, AERL, 0x03, 0x04, 0) -- ACL AERL FRMW LPA ELPE
  c:pack(266, "<HH", 0x157, 0x175)              -- WCTEMP CCTEMP
  c:pack(512, "<BBHI4HHBB", 0x66, 0x44, 0, 1, 0x0c, 0, 0, 1)
  -- SQES CQES MAXCMD NN ONCS (DSM, Write Zeroes) FUSES FNA VWC
  c:write(768, "nqn.2026-12.org.vfu:nvme:VFULUA0001")
  c:pack(2048, "<H", 2500)                      -- PSD0: 25 W
  local ns = id_ns
  ns:pack(0, "<JJJBBB", NLB, NLB, NLB, 0, 0, 0) -- NSZE NCAP NUSE NSFEAT NLBAF FLBAS
  local guid = string.pack("<I4I4I4I4", 0x76667521, 0x4e564d65, NLB & 0xffffffff, 1)
  ns:write(104, guid)                           -- NGUID
  ns:pack(128, "<HBB", 0, BLK_SHIFT, 0)         -- LBAF0: 512-byte blocks
  id_desc:write(0, string.pack("<BBxx", 2, 16) .. guid ..
                   string.pack("<BBxx", 3, 16) .. guid:reverse())
end
build_identify()

local function identify(nsid, p1, p2, c10)
  local cns = c10 & 0xff
  local src = id_ctrl
  if cns == 0 then
    if nsid == 0xffffffff then
      scratch:fill(0, 4096)
      scratch:pack(128, "<HBB", 0, BLK_SHIFT, 0)
      src = scratch
    elseif nsid ~= 1 then
      return INVALID_NS
    else
      src = id_ns
    end
  elseif cns == 2 then
    if nsid >= 0xfffffffe then return INVALID_NS end
    scratch:fill(0, 4096)
    if nsid < 1 then scratch:pack(0, "<I4", 1) end
    src = scratch
  elseif cns == 3 then
    if nsid ~= 1 then return INVALID_NS end
    src = id_desc
  elseif cns ~= 1 then
    return INVALID_FIELD
  end
  return xfer(src, 0, 4096, p1, p2, true)
end

local function release(q)
  if q.mem and #q.mem > 0 then q.mem:release() end
  q.mem = nil
end

local function create_cq(_, p1, _, c10, c11)
  local qid, qsize, iv = c10 & 0xffff, (c10 >> 16) + 1, c11 >> 16
  if qid == 0 or qid > feat.ncq or cqs[qid] then return INVALID_QID end
  if qsize < 2 or qsize > MQES + 1 then return INVALID_QSIZE end
  if c11 & 1 == 0 or p1 & PGMASK ~= 0 or (r.cc >> 20) & 0xf ~= 4 then
    return INVALID_FIELD
  end
  if iv > MAXQ then return INVALID_VECTOR end
  local cq = { id = qid, base = p1, size = qsize, head = 0, tail = 0, phase = 1,
               iv = iv, ien = c11 & 2 ~= 0, nsq = 0 }
  if not cq_mem(cq) then return DATA_XFER end
  cqs[qid] = cq
  return OK
end

local function create_sq(_, p1, _, c10, c11)
  local qid, qsize, cqid = c10 & 0xffff, (c10 >> 16) + 1, c11 >> 16
  if qid == 0 or qid > feat.nsq or sqs[qid] then return INVALID_QID end
  if qsize < 2 or qsize > MQES + 1 then return INVALID_QSIZE end
  local cq = cqid ~= 0 and cqs[cqid]
  if not cq then return CQ_INVALID end
  if c11 & 1 == 0 or p1 & PGMASK ~= 0 or (r.cc >> 16) & 0xf ~= 6 then
    return INVALID_FIELD
  end
  local sq = { id = qid, base = p1, size = qsize, head = 0, tail = 0, cq = cq }
  if not sq_mem(sq) then return DATA_XFER end
  sqs[qid] = sq
  cq.nsq = cq.nsq + 1
  return OK
end

local function delete_sq(_, _, _, c10)
  local qid = c10 & 0xffff
  local sq = qid ~= 0 and sqs[qid]
  if not sq then return INVALID_QID end
  sqs[qid] = nil
  sq.cq.nsq = sq.cq.nsq - 1
  release(sq)
  return OK
end

local function delete_cq(_, _, _, c10)
  local qid = c10 & 0xffff
  local cq = qid ~= 0 and cqs[qid]
  if not cq then return INVALID_QID end
  if cq.nsq > 0 then return INVALID_DELETE end
  cqs[qid] = nil
  release(cq)
  return OK
end

local function u128(lo) return string.pack("<JJ", lo, 0) end

local function get_log(nsid, p1, p2, c10, c11, c12, c13)
  local lid, rae = c10 & 0xff, c10 & 0x8000 ~= 0
  local len = (((c11 & 0xffff) << 16 | c10 >> 16) + 1) << 2
  local off = c13 << 32 | c12
  local size
  scratch:fill(0, 8192)
  if lid == 0x01 then                       -- error information: none
    size = 64
  elseif lid == 0x02 then                   -- SMART / health
    if nsid ~= 0 and nsid ~= 1 and nsid ~= 0xffffffff then return INVALID_NS end
    size = 512
    scratch:pack(0, "<BHBBB", 0, 0x13b, 100, 10, 0)   -- 315 K, spare 100%
    local units = function(b) return (b + 999) // 1000 end
    local hours = (vfu.now() - stats.powered) // 3600000
    scratch:write(32, u128(units(stats.rd_blocks)) .. u128(units(stats.wr_blocks)) ..
                      u128(stats.rd_cmds) .. u128(stats.wr_cmds) .. u128(0) ..
                      u128(1) .. u128(math.tointeger(hours) or 0))
  elseif lid == 0x03 then                   -- firmware slots: slot 1 active
    size = 512
    scratch:pack(0, "<B", 1)
    scratch:write(8, pad("1.0", 8))
  else
    return INVALID_LOG
  end
  if off & 3 ~= 0 or off < 0 or off >= size or len > 8192 - off then
    return INVALID_FIELD
  end
  local st = xfer(scratch, off, len, p1, p2, true)
  if st == OK and not rae then
    if lid == 0x01 then ev_masked[0] = nil end
    if lid == 0x02 then ev_masked[1] = nil end
  end
  return st
end

local function set_features(_, _, _, c10, c11)
  local fid = c10 & 0xff
  if c10 >> 31 ~= 0 then return NOT_SAVEABLE end
  local dw0 = 0
  if fid == 0x01 then feat.arb = c11
  elseif fid == 0x02 then
    if c11 & 0x1f ~= 0 then return INVALID_FIELD end    -- one power state
    feat.pm = c11 & 0xff
  elseif fid == 0x04 then
    local sel, th = (c11 >> 16) & 0xf, (c11 >> 20) & 3
    if (sel ~= 0 and sel ~= 0xf) or th > 1 then return INVALID_FIELD end
    if th == 0 then feat.temp_over = c11 & 0xffff else feat.temp_under = c11 & 0xffff end
  elseif fid == 0x05 then feat.err = c11 & 0x1ffff
  elseif fid == 0x06 then feat.vwc = c11 & 1
  elseif fid == 0x07 then
    local nsq, ncq = c11 & 0xffff, c11 >> 16
    if nsq == 0xffff or ncq == 0xffff then return INVALID_FIELD end
    feat.nsq, feat.ncq = math.min(nsq + 1, MAXQ), math.min(ncq + 1, MAXQ)
    dw0 = (feat.nsq - 1) | (feat.ncq - 1) << 16
  elseif fid == 0x08 then feat.coal = c11 & 0xffff
  elseif fid == 0x09 then
    local iv = c11 & 0xffff
    if iv > MAXQ then return INVALID_FIELD end
    feat.ivc[iv] = c11 & 0x10000
  elseif fid == 0x0a then feat.wan = c11 & 1
  elseif fid == 0x0b then feat.aec = c11 & 0xffff
  else return INVALID_FIELD end
  return OK, dw0
end

local function get_features(_, _, _, c10, c11)
  local fid, sel = c10 & 0xff, (c10 >> 8) & 7
  if sel > 3 then return INVALID_FIELD end
  local v
  if fid == 0x01 then v = feat.arb
  elseif fid == 0x02 then v = feat.pm
  elseif fid == 0x04 then
    v = (c11 >> 20) & 3 == 0 and feat.temp_over or feat.temp_under
  elseif fid == 0x05 then v = feat.err
  elseif fid == 0x06 then v = feat.vwc
  elseif fid == 0x07 then v = (feat.nsq - 1) | (feat.ncq - 1) << 16
  elseif fid == 0x08 then v = feat.coal
  elseif fid == 0x09 then
    local iv = c11 & 0xffff
    if iv > MAXQ then return INVALID_FIELD end
    v = iv | (feat.ivc[iv] or 0)
  elseif fid == 0x0a then v = feat.wan
  elseif fid == 0x0b then v = feat.aec
  else return INVALID_FIELD end
  if sel == 3 then v = 0x4 end              -- changeable, not saveable
  return OK, v
end

local admin_ops = {
  [0x00] = delete_sq,
  [0x01] = create_sq,
  [0x02] = get_log,
  [0x04] = delete_cq,
  [0x05] = create_cq,
  [0x06] = identify,
  [0x08] = function() return OK, 1 end,     -- Abort: nothing is in flight
  [0x09] = set_features,
  [0x0a] = get_features,
  [0x0c] = function(_, _, _, _, _, _, _, cid)   -- Async Event Request
    if #aers > AERL then return AER_LIMIT end
    if #events > 0 then return OK, table.remove(events, 1) end
    aers[#aers + 1] = cid
    return nil                              -- held until an event
  end,
  [0x18] = function() return OK end,        -- Keep Alive
}

-- --- the submission path --------------------------------------------------

local run_later
local later = {}                -- queues that yielded, by id

-- Run the commands between an SQ's head and tail.
local function run_sq(sq)
  local cq = sq.cq
  local sm, cm = sq.mem, cq.mem
  if not sm or #sm == 0 or not cm or #cm == 0 then
    sm, cm = sq_mem(sq), cq_mem(cq)
    if not (sm and cm) then return fatal("queue memory is not mapped") end
  end
  local ops = sq.id == 0 and admin_ops or io_ops
  local head, tail, size, sqid = sq.head, sq.tail, sq.size, sq.id
  local moved, posted, ran = 0, false, 0
  local ct, csize = cq.tail, cq.size
  local t0 = vfu.now()
  while head ~= tail do
    ct = ct + 1
    if ct == csize then ct = 0 end
    if ct == cq.head then               -- full
      cq.stalled = true
      break
    end
    ran = ran + 1
    if moved > BATCH_BYTES or (ran & 3 == 0 and vfu.now() - t0 >= BATCH_MS) then
      later[sqid] = sq
      run_later()
      break
    end
    local d0, nsid, p1, p2, c10, c11, c12, c13 = sm:unpack(head << 6, SQE)
    if not d0 then                      -- BUSY: fetched again later
      later[sqid] = sq
      run_later()
      break
    end
    local at = head
    head = head + 1
    if head == size then head = 0 end
    sq.head = head
    local cid, f = d0 >> 16, ops[d0 & 0xff]
    local status, dw0, n
    if d0 & 0xc300 ~= 0 then                -- fused, or SGLs
      status = INVALID_FIELD
    elseif f then
      status, dw0, n = f(nsid, p1, p2, c10, c11, c12, c13, cid)
      if status == BUSY then            -- run again later, from the start
        head, sq.head = at, at
        later[sqid] = sq
        run_later()
        break
      end
      if n then moved = moved + n end
    else
      status = INVALID_OPCODE
    end
    if status then
      local t = cq.tail
      cm:pack(t << 4, CQE, dw0 or 0, 0, head, sqid, cid, status << 1 | cq.phase)
      t = t + 1
      if t == csize then
        t = 0
        cq.phase = cq.phase ~ 1
      end
      cq.tail = t
      posted = true
    else
      ct = cq.tail                  -- nothing posted: the slot is still free
    end
    if sqs[sqid] ~= sq then break end       -- the queue went away
  end
  if posted then notify(cq) end
end

-- Commands left for later: a batch that moved enough data or ran long
-- enough, doorbells
-- while a migration stops the device, queues that arrived with one.
local timer
run_later = function()
  if timer then return end
  timer = vfu.timer(1, function()
    timer = nil
    if not running then return end          -- the transition back calls again
    local q = later
    later = {}
    for _, sq in pairs(q) do
      if sqs[sq.id] == sq and r.csts & (RDY | CFS) == RDY then run_sq(sq) end
    end
  end)
end

-- AERs held while the admin CQ was full take their events once it is not.
local function flush_events()
  local cq, sq, posted = cqs[0], sqs[0], false
  while #aers > 0 and #events > 0 and cq_mem(cq) and not cq_full(cq) do
    post(cq, table.remove(events, 1), sq.head, 0, table.remove(aers, 1), OK)
    posted = true
  end
  if posted then notify(cq) end
end

local function resume(cq)
  cq.stalled = false
  for _, sq in pairs(sqs) do
    if sq.cq == cq and sq.head ~= sq.tail then run_sq(sq) end
  end
end

local function doorbell(off, v)
  local i = (off - 0x1000) >> 2
  local qid = i >> 1
  if r.csts & (RDY | CFS) ~= RDY then return end
  if i & 1 == 0 then
    local sq = sqs[qid]
    if not sq then return event(0, 0, 1) end        -- invalid doorbell register
    if v >= sq.size then return event(0, 1, 1) end  -- invalid doorbell value
    sq.tail = v
    if running then
      run_sq(sq)
    else
      later[qid] = sq
    end
  else
    local cq = cqs[qid]
    if not cq then return event(0, 0, 1) end
    local size = cq.size
    if v >= size or (v - cq.head) % size > (cq.tail - cq.head) % size then
      return event(0, 1, 1)
    end
    cq.head = v
    if cq.stalled then resume(cq) end
    if qid == 0 and #events > 0 and #aers > 0 then flush_events() end
    -- INTx is a level: still pending entries raise it again
    if not msix_on and cq.head ~= cq.tail then notify(cq) end
  end
end

-- --- controller registers ---------------------------------------------------

local function clear(t) for k in pairs(t) do t[k] = nil end end

-- Controller reset (CC.EN 1 -> 0): queues and held AERs go, registers
-- other than the admin queue's stay. A full reset clears those too.
local function ctrl_reset(full)
  for _, q in pairs(sqs) do release(q) end
  for _, q in pairs(cqs) do release(q) end
  clear(sqs); clear(cqs); clear(aers); clear(events); clear(ev_masked); clear(later)
  default_features()
  r.csts = r.csts & SHST_MASK
  fatal_logged = false
  if full then
    r.cc, r.csts, r.aqa, r.asq, r.acq, r.intms = 0, 0, 0, 0, 0, 0
  end
end

local function enable()
  local cc = r.cc
  if (cc >> 4) & 7 ~= 0 or (cc >> 7) & 0xf ~= 0 or (cc >> 11) & 7 ~= 0 then
    return fatal("unsupported CC.CSS, MPS or AMS")
  end
  local asqs, acqs = (r.aqa & 0xfff) + 1, ((r.aqa >> 16) & 0xfff) + 1
  if asqs < 2 or acqs < 2 then return fatal("admin queues of one entry") end
  local cq = { id = 0, base = r.acq, size = acqs, head = 0, tail = 0, phase = 1,
               iv = 0, ien = true, nsq = 1 }
  local sq = { id = 0, base = r.asq, size = asqs, head = 0, tail = 0, cq = cq }
  if not (cq_mem(cq) and sq_mem(sq)) then
    release(cq)
    return fatal("admin queues are not in mapped memory")
  end
  cqs[0], sqs[0] = cq, sq
  r.csts = RDY
end

local function cc_write(v)
  local old = r.cc
  r.cc = v & 0x00fffff1
  if old & 1 == 0 and v & 1 == 1 then
    enable()
  elseif old & 1 == 1 and v & 1 == 0 then
    ctrl_reset(false)
  end
  if v & 0xc000 ~= 0 and old & 0xc000 == 0 then
    r.csts = (r.csts & ~SHST_MASK) | SHST_DONE      -- nothing to write back
  end
end

local rd = {
  [0x00] = function() return CAP & 0xffffffff end,
  [0x04] = function() return CAP >> 32 end,
  [0x08] = function() return VS end,
  [0x0c] = function() return r.intms end,
  [0x10] = function() return r.intms end,
  [0x14] = function() return r.cc end,
  [0x1c] = function() return r.csts end,
  [0x24] = function() return r.aqa end,
  [0x28] = function() return r.asq & 0xffffffff end,
  [0x2c] = function() return r.asq >> 32 end,
  [0x30] = function() return r.acq & 0xffffffff end,
  [0x34] = function() return r.acq >> 32 end,
}

local function pending_intx()
  if msix_on then return end
  for _, cq in pairs(cqs) do
    if cq.head ~= cq.tail and cq.ien then return notify(cq) end
  end
end

local wr = {
  [0x0c] = function(v) r.intms = r.intms | v end,
  [0x10] = function(v) r.intms = r.intms & ~v; pending_intx() end,
  [0x14] = cc_write,
  [0x24] = function(v) r.aqa = v & 0x0fff0fff end,
  [0x28] = function(v) r.asq = (r.asq & ~0xffffffff) | (v & 0xfffff000) end,
  [0x2c] = function(v) r.asq = (r.asq & 0xffffffff) | v << 32 end,
  [0x30] = function(v) r.acq = (r.acq & ~0xffffffff) | (v & 0xfffff000) end,
  [0x34] = function(v) r.acq = (r.acq & 0xffffffff) | v << 32 end,
}

local function bar0_read(off, size)
  if off >= 0x1000 or off & 3 ~= 0 then return 0 end
  local f = rd[off]
  local v = f and f() or 0
  if size == 8 then
    f = rd[off + 4]
    return v | (f and f() or 0) << 32
  end
  return size == 4 and v or v & ((1 << (8 * size)) - 1)
end

local function bar0_write(off, size, v)
  if off >= 0x1000 then
    if size == 4 and off & 3 == 0 then doorbell(off, v) end
    return
  end
  if off & 3 ~= 0 or type(v) ~= "number" then return end
  if size == 8 then
    local f = wr[off]
    if f then f(v & 0xffffffff) end
    f = wr[off + 4]
    if f then f((v >> 32) & 0xffffffff) end
  elseif size == 4 then
    local f = wr[off]
    if f then f(v) end
  end
end

-- --- migration ----------------------------------------------------------------

local NCHUNKS = (#store + CHUNK - 1) // CHUNK

local function chunk(c)
  local off = c * CHUNK
  local len = math.min(CHUNK, #store - off)
  return string.pack("<J", off) .. store:read(off, len)
end

local function save()
  local q = {}
  for _, cq in pairs(cqs) do
    q[#q + 1] = { id = cq.id, cq = true, base = cq.base, size = cq.size, head = cq.head,
                  tail = cq.tail, phase = cq.phase, iv = cq.iv, ien = cq.ien }
  end
  for _, sq in pairs(sqs) do
    q[#q + 1] = { id = sq.id, base = sq.base, size = sq.size, head = sq.head,
                  tail = sq.tail, cqid = sq.cq.id }
  end
  local data = {}
  if not file_backed then
    -- what pre-copy has not sent, or what changed since it did
    for c = mig and mig.next or 0, NCHUNKS - 1 do
      if not store:is_zero(c * CHUNK, math.min(CHUNK, #store - c * CHUNK)) then
        data[#data + 1] = chunk(c)
      end
    end
    for c in pairs(mig and mig.dirty or {}) do
      if c < (mig.next or 0) then data[#data + 1] = chunk(c) end
    end
  end
  mig = nil
  return state.save { nlb = NLB, regs = r, feat = feat, queues = q, aers = aers,
                      events = events, masked = ev_masked, stats = stats,
                      data = data }
end

local function apply_chunk(s)
  local off = string.unpack("<J", s)
  assert(off >= 0 and off + #s - 8 <= #store, "nvme: chunk outside the namespace")
  if not file_backed then store:write(off, s:sub(9)) end
end

local function load(s, pre)
  local t = {}
  state.load(t, s)
  assert(t.nlb == NLB, "nvme: the namespace sizes differ")
  ctrl_reset(true)
  for _, p in ipairs(pre) do apply_chunk(p) end
  for _, p in ipairs(t.data) do apply_chunk(p) end
  for k, v in pairs(t.regs) do r[k] = v end
  for k, v in pairs(t.feat) do feat[k] = v end
  for k, v in pairs(t.stats) do
    if k ~= "powered" then stats[k] = v end   -- each end has its own clock
  end
  for _, qd in ipairs(t.queues) do
    if qd.cq then
      qd.cq, qd.nsq = nil, 0
      cqs[qd.id] = qd
    end
  end
  for _, qd in ipairs(t.queues) do
    if qd.cqid then
      local cq = assert(cqs[qd.cqid], "nvme: SQ without its CQ")
      qd.cq, qd.cqid = cq, nil
      cq.nsq = cq.nsq + 1
      sqs[qd.id] = qd
    end
  end
  -- commands submitted and not yet run (their CQ was full): on a timer
  for _, sq in pairs(sqs) do
    if sq.head ~= sq.tail then later[sq.id] = sq end
  end
  if next(later) then run_later() end
  for i, cid in ipairs(t.aers) do aers[i] = cid end
  for i, e in ipairs(t.events) do events[i] = e end
  for k, v in pairs(t.masked) do ev_masked[k] = v end
end

local function precopy()
  if file_backed then return nil end      -- the data is in the file
  mig = mig or { next = 0, dirty = {} }
  while mig.next < NCHUNKS do
    local c = mig.next
    mig.next = c + 1
    mig.dirty[c] = nil
    if not store:is_zero(c * CHUNK, math.min(CHUNK, #store - c * CHUNK)) then
      return chunk(c)
    end
  end
  local c = next(mig.dirty)
  if c == nil then return nil end
  mig.dirty[c] = nil
  return chunk(c)
end

-- --- the device -------------------------------------------------------------

local function irq_kind(on_msix)
  return function(_, _, masked) if not masked then msix_on = on_msix end end
end

dev = vfu.device {
  name = "nvme", type = "express",
  vendor = 0x1234, device = 0x5845, subsystem_vendor = 0x1234, subsystem = 0x0001,
  class = 0x010802, revision = 0x01,
  bars = {
    [0] = { size = 0x4000, mem64 = true, read = bar0_read, write = bar0_write },
    [4] = { size = 0x1000, read = function() return nil end, write = function() end },
  },
  caps = { { "pm" }, { "msi", vectors = 1 },
           { "msix", table_size = MAXQ + 1, table_bar = 4, pba_offset = 0x800 },
           { "pcie", flr = true } },
  irqs = { intx = 1, msi = 1, msix = MAXQ + 1 },
  irq_state = { msix = irq_kind(true), msi = irq_kind(false), intx = irq_kind(false) },
  reset = function(kind)
    ctrl_reset(true)
    if kind == "lost_conn" then msix_on = false end
  end,
  dma = true,
  migration = {
    -- chunks are written as they arrive: the stream never holds them all
    save = save, load = load, precopy = precopy, receive = apply_chunk,
    transition = function(to)
      running = to == "running" or to == "pre_copy"
      if to == "running" then
        mig = nil
        if next(later) then run_later() end
      end
    end,
  },
}
return dev
