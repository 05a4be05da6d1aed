-- SPDX-License-Identifier: BSD-3-Clause
-- Copyright (c) 2026 the vfu authors.

-- QEMU's edu device (docs/specs/edu.rst in QEMU): a teaching device with an
-- identification register, a liveness check, a factorial unit, an
-- interrupt raise/acknowledge pair, and a DMA engine with a 4 KiB buffer at
-- 0x40000 of its own address space. Interrupts go out as INTx or MSI,
-- whichever the client enabled. Factorials and DMA complete on a timer, as
-- asynchronous work, so drivers have to poll the busy bits.
--
--   BAR0 (1 MiB)  access  meaning
--   0x00          R   4   identification 0x010000ed (version 1.0)
--   0x04          RW  4   liveness: reads back the inverse of the write
--   0x08          RW  4   factorial: write n, read n! once 0x20 bit 0 clears
--   0x20          RW  4   status: 0x01 computing (RO), 0x80 irq when done
--   0x24          R   4   interrupt status
--   0x60          W   4   interrupt raise (ORed into 0x24)
--   0x64          W   4   interrupt acknowledge (cleared from 0x24)
--   0x80/0x88     RW  4/8 DMA source/destination address
--   0x90          RW  4/8 DMA count
--   0x98          RW  4/8 DMA command: 0x01 start, 0x02 EDU to RAM, 0x04 irq

local vfu = require "vfu"

local BUF, BUF_SIZE = 0x40000, 4096
local st = {            -- migrated
  live = 0, fact = 0, status = 0, irq = 0,
  src = 0, dst = 0, cnt = 0, cmd = 0, buf = string.rep("\0", BUF_SIZE),
}
local dev

local function raise(bits)
  st.irq = st.irq | bits
  dev:irq(0)
end

local function factorial()
  local r = 1
  for i = 2, st.fact do r = (r * i) & 0xffffffff end
  st.fact = r
  st.status = st.status & ~0x01
  if st.status & 0x80 ~= 0 then raise(0x01) end
end

local function in_buf(addr, len)
  return addr >= BUF and len <= BUF_SIZE and addr - BUF <= BUF_SIZE - len
end

-- The client may be unable to serve DMA right now (QEMU, with guest RAM
-- that is not shared, while a vCPU waits for this device): EBUSY, and the
-- transfer is tried again a few ms later. Not a fixed delay: the failed
-- try ended when the vCPU got its reply, so a driver polling every 1 ms
-- would meet each retry of a 1 ms timer with its next read.
local retries = 0
local function busy(errno)
  return errno == vfu.errno.EBUSY
end

local function dma()
  local cnt, ok, errno = st.cnt, false, nil
  if st.cmd & 0x02 == 0 then          -- RAM to EDU
    local data, _, e
    if in_buf(st.dst, cnt) then data, _, e = dev:dma_read(st.src, cnt) end
    if data then
      local o = st.dst - BUF
      st.buf = st.buf:sub(1, o) .. data .. st.buf:sub(o + cnt + 1)
    end
    ok, errno = data ~= nil, e
  elseif in_buf(st.src, cnt) then     -- EDU to RAM
    local _
    ok, _, errno = dev:dma_write(st.dst, st.buf:sub(st.src - BUF + 1, st.src - BUF + cnt))
  end
  if not ok and busy(errno) then
    retries = retries + 1
    vfu.timer(1 + retries % 7, dma)
    return
  end
  retries = 0
  if not ok then
    dev:log(st.cmd & 0x02 == 0 and "DMA from RAM failed" or "DMA to RAM failed", "err")
  end
  st.cmd = st.cmd & ~0x01
  if st.cmd & 0x04 ~= 0 then raise(0x100) end
end

local function check(off, size)
  if size ~= 4 and (off < 0x80 or size ~= 8) then
    error(("edu: %d-byte access at 0x%x"):format(size, off), 0)
  end
end

local rd = {
  [0x00] = function() return 0x010000ed end,
  [0x04] = function() return ~st.live & 0xffffffff end,
  [0x08] = function() return st.fact end,
  [0x20] = function() return st.status end,
  [0x24] = function() return st.irq end,
  [0x80] = function() return st.src end, [0x88] = function() return st.dst end,
  [0x90] = function() return st.cnt end, [0x98] = function() return st.cmd end,
}

local wr = {
  [0x04] = function(v) st.live = v end,
  [0x08] = function(v)
    if st.status & 0x01 ~= 0 then return end
    st.fact, st.status = v, st.status | 0x01
    vfu.timer(1, factorial)
  end,
  [0x20] = function(v) st.status = (st.status & 0x01) | (v & 0x80) end,
  [0x60] = function(v) raise(v) end,
  [0x64] = function(v) st.irq = st.irq & ~v end,
  [0x80] = function(v) st.src = v end, [0x88] = function(v) st.dst = v end,
  [0x90] = function(v) st.cnt = v end,
  [0x98] = function(v)
    if st.cmd & 0x01 ~= 0 or v & 0x01 == 0 then return end
    st.cmd = v
    vfu.timer(1, dma)
  end,
}

dev = vfu.device {
  name = "edu", vendor = 0x1234, device = 0x11e8, class = 0x00ff00, revision = 0x10,
  bars = { [0] = {
    size = 1 << 20,
    read = function(off, size)
      check(off, size)
      local f = rd[off]
      return f and f() or 0
    end,
    write = function(off, size, v)
      check(off, size)
      local f = wr[off]
      if f then f(size == 4 and v & 0xffffffff or v) end
    end,
  } },
  caps = { { "msi", vectors = 1 } },
  irqs = { intx = 1, msi = 1 },
  dma = true,
  reset = function()
    st.live, st.fact, st.status, st.irq = 0, 0, 0, 0
    st.src, st.dst, st.cnt, st.cmd = 0, 0, 0, 0
  end,
  migration = { state = st },
}
return dev
