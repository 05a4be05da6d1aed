-- SPDX-License-Identifier: BSD-3-Clause
-- Copyright (c) 2026 the vfu authors.

-- ACCES PCI-IDIO-16 (494f:0dc8): 16 FET outputs and 16 isolated inputs
-- behind the byte registers of I/O BAR2. The registers follow the card as
-- Linux's gpio-pci-idio-16 driver sees it, so that driver binds unchanged.
-- Several registers do one thing when read and another when written.
--
--   BAR2  register    read                      write
--   0x0   out0_7      outputs 0-7               outputs 0-7
--   0x1   in0_7       inputs 0-7                clear the interrupt
--   0x2   irq_ctl     enable the IRQ (reads 0)  disable the IRQ
--   0x3   filter_ctl  activate input filters    deactivate input filters
--   0x4   out8_15     outputs 8-15              outputs 8-15
--   0x5   in8_15      inputs 8-15               ignored
--   0x6   irq_status  pending: bit 2, and which  ignored
--                     group changed: bit 0 (0-7), bit 1 (8-15)
--
-- Nothing is wired to the pins, so every output loops back to the matching
-- input. While the IRQ is enabled, an input change sets the status bits and
-- raises INTx; they stay set until in0_7 is written. (Linux before 6.4
-- wants bit 2 and bit 0 or 1; later ones look at bit 2.) The filters only
-- debounce real contacts: the model accepts both accesses and ignores them.

local vfu = require "vfu"
local regmap = require "regmap"

local PENDING = 0x04   -- the status bit Linux maps every input's IRQ to
local pins = { out = 0, irq_enabled = false, status = 0 }  -- migrated
local dev

local function set_outputs(new)
  local diff = new ~ pins.out
  pins.out = new
  if diff ~= 0 and pins.irq_enabled then
    local groups = (diff & 0xff ~= 0 and 1 or 0) | (diff & 0xff00 ~= 0 and 2 or 0)
    pins.status = pins.status | PENDING | groups
    dev:irq(0)            -- fails harmlessly while no client listens
  end
end

local function byte(shift) return function() return (pins.out >> shift) & 0xff end end
local function out_write(shift)
  return function(_, v) set_outputs((pins.out & ~(0xff << shift)) | (v << shift)) end
end
local function nothing() return 0 end

local regs = regmap.new({
  { "out0_7",     0x0, read = byte(0), write = out_write(0) },
  { "in0_7",      0x1, read = byte(0), write = function() pins.status = 0 end },
  { "irq_ctl",    0x2, read = function() pins.irq_enabled = true; return 0 end,
                       write = function() pins.irq_enabled = false end },
  { "filter_ctl", 0x3, read = nothing, write = nothing },
  { "out8_15",    0x4, read = byte(8), write = out_write(8) },
  { "in8_15",     0x5, ro = 0xff, read = byte(8) },
  { "irq_status", 0x6, ro = 0xff, read = function() return pins.status end },
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
    pins.out, pins.irq_enabled, pins.status = 0, false, 0
  end,
  migration = { state = pins },
}
return dev
