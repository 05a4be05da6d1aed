-- SPDX-License-Identifier: BSD-3-Clause
-- Copyright (c) 2026 the vfu authors.

-- ACCES PCI-IDIO-16: 16 isolated digital inputs and 16 FET outputs behind
-- an I/O BAR. In this model every output is looped back to the matching
-- input, so writing the outputs changes the inputs, and an input change
-- raises INTx while interrupts are enabled.
--
--   BAR2  register    access  meaning
--   0x0   out0_7      RW      outputs 0-7
--   0x1   in0_7       R       inputs 0-7
--   0x2   irq_clear   W       any write clears the pending interrupt
--   0x3   irq_ctl     RW      bit 0: interrupt on input change
--   0x4   out8_15     RW      outputs 8-15
--   0x5   in8_15      R       inputs 8-15
--   0x6   irq_status  R       bit 0: interrupt pending

local vfu = require "vfu"
local regmap = require "regmap"

local pins = { out = 0, irq_enabled = false, pending = false }  -- migrated
local dev

local function set_outputs(new)
  local changed = new ~= pins.out
  pins.out = new
  if changed and pins.irq_enabled then
    pins.pending = true
    dev:irq(0)            -- fails harmlessly while no client listens
  end
end

local function byte(shift) return function() return (pins.out >> shift) & 0xff end end
local function out_write(shift)
  return function(_, v) set_outputs((pins.out & ~(0xff << shift)) | (v << shift)) end
end

local regs = regmap.new({
  { "out0_7",     0x0, read = byte(0), write = out_write(0) },
  { "in0_7",      0x1, ro = 0xff, read = byte(0) },
  { "irq_clear",  0x2, read = function() return 0 end,
                       write = function() pins.pending = false end },
  { "irq_ctl",    0x3, read = function() return pins.irq_enabled and 1 or 0 end,
                       write = function(_, v) pins.irq_enabled = v & 1 == 1 end },
  { "out8_15",    0x4, read = byte(8), write = out_write(8) },
  { "in8_15",     0x5, ro = 0xff, read = byte(8) },
  { "irq_status", 0x6, ro = 0xff, read = function() return pins.pending and 1 or 0 end },
}, { width = 1 })

dev = vfu.device {
  name = "pci-idio-16",
  vendor = 0x494f, device = 0x0dc8,
  bars = { [2] = regs:handlers { size = 256, io = true } },
  irqs = { intx = 1 },
  reset = function(kind)
    -- a client going away is not a reset of the card: the pins keep their
    -- state for the next one
    if kind == "lost_conn" then return end
    pins.out, pins.irq_enabled, pins.pending = 0, false, false
  end,
  migration = { state = pins },
}
return dev
