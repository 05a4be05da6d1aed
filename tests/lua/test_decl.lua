-- SPDX-License-Identifier: BSD-3-Clause
-- Copyright (c) 2026 the vfu authors.

-- Declaration mistakes fail at load with the script's file and line, and
-- binding functions check their arguments.
local H = dofile(arg[2] .. "/tests/lua/harness.lua")
local vfu = require "vfu"

local function check(name, body, pattern)
  local path = H.write(name .. ".lua", "local vfu = require 'vfu'\n" .. body)
  local out = H.tmp .. "/" .. name .. ".out"
  local ok = os.execute(("%s --check %s >%s 2>&1"):format(H.runner, path, out))
  local text = H.read(out)
  if ok then error(name .. ": --check accepted a bad script:\n" .. text) end
  if not text:find(pattern) then
    error(("%s: %q does not match %q"):format(name, text, pattern))
  end
end

local rw = "read = function() end, write = function() end"
check("barsize", "return vfu.device { vendor = 1, device = 2,\n bars = { [0] = { size = 300, " .. rw .. " } } }",
      "barsize%.lua:2: bar0%.size: 300 is not a power of two")
check("cap", "return vfu.device { vendor = 1, device = 2, caps = { { 'nope' } } }",
      "cap%.lua:2: .*unknown capability 'nope'")
check("id", "return vfu.device { vendor = 0x10000, device = 2 }", "id%.lua:2: device%.vendor")
check("noid", "return vfu.device { device = 2 }", "vendor and device ids are required")
check("field", "return vfu.device { vendor = 1, device = 2, rset = function() end }",
      "unknown field 'rset'")
check("handler", "return vfu.device { vendor = 1, device = 2, bars = { [1] = { size = 16 } } }",
      "read and write handlers expected")
check("iosize", "return vfu.device { vendor = 1, device = 2, bars = { [1] = { size = 512, io = true, " .. rw .. " } } }",
      "I/O BAR is at most 256")
check("mem64", "return vfu.device { vendor = 1, device = 2, bars = { [0] = { size = 4096, mem64 = true, mmap = true }, [1] = { size = 16, " .. rw .. " } } }",
      "taken by 64%-bit bar0")
check("dsn", "return vfu.device { vendor = 1, device = 2, caps = { { 'dsn', serial = 1 } } }",
      "dsn needs type express")
check("type", "return vfu.device { vendor = 1, device = 2, type = 'isa' }", "type: 'isa'")
check("migr", "return vfu.device { vendor = 1, device = 2, migration = { save = function() end } }",
      "give both save and load")
check("syntax", "return vfu.device {", "syntax%.lua:2:")
check("loop", "while true do end", "time budget")
check("notdev", "return 42", "returned a number, not a vfu.device")

-- the same checks in-process raise with the caller's position
H.raises("bar2%.size", vfu.device, { vendor = 1, device = 2, bars = { [2] = { size = 3 } } })
H.raises("bad argument #1", vfu.device, 42)
H.raises("bars: BAR numbers", vfu.device, { vendor = 1, device = 2, bars = { [7] = {} } })
H.raises("sparse", vfu.device, { vendor = 1, device = 2,
  bars = { [0] = { size = 8192, sparse = { { 1, 4096 } } } } })
H.raises("vectors", vfu.device, { vendor = 1, device = 2, caps = { { "msi", vectors = 3 } } })
H.raises("irqs%.msi", vfu.device, { vendor = 1, device = 2, irqs = { msi = 64 } })

-- a good declaration, its summary and methods before it listens
local dev <close> = vfu.device {
  name = "good", type = "express", vendor = 0x1af4, device = 0x1000, class = 0x020000,
  revision = 3, subsystem_vendor = 0x1af4, subsystem = 1,
  bars = { [0] = { size = 8192, mem64 = true, prefetchable = true, mmap = true,
                   sparse = { { 4096, 4096 } } },
           [2] = { size = 16, io = true, read = function() return 1 end, write = function() end } },
  caps = { { "pm" }, { "msi", vectors = 4 }, { "msix", table_size = 8, table_bar = 0 },
           { "pcie", flr = true }, { "vendor", data = "abc" }, { "dsn", serial = 0x0102030405060708 } },
  irqs = { intx = 1, msi = 4, msix = 8 },
  irq_state = { msix = function() end },
  dma = { map = function() end, unmap = function() end },
  migration = { state = { x = 1 } },
}
local sum = dev:summary()
assert(sum:find("1af4:1000") and sum:find("64%-bit") and sum:find("dsn"), sum)
assert(tostring(dev):find("vfu.device good"))
H.fails(nil, dev.irq, dev, 0)
H.fails(nil, dev.dma_read, dev, 0, 4)
H.raises("bad argument #3", dev.dma_read, dev, 0, -1)
H.raises("bad argument #2", dev.irq, dev, -1)
H.raises("once the device listens", dev.config_read, dev, 0, 4)
H.raises("bad argument #2", dev.mem_read, dev, "bar9", 0, 1)
H.raises("bad argument #3", dev.log, dev, "x", "loud")

-- listening creates the context: config space and memory become usable
local sock = H.tmp .. "/good.sock"
os.remove(sock)
assert(dev:listen(sock))
H.fails(nil, dev.listen, dev, sock)
H.eq(dev:config_read(0, 4), 0x10001af4, "config id")
H.eq(dev:config_read(8, 1), 3, "revision")
H.eq(dev:config_read(0x10, 4) & 0xf, 0xc, "64-bit prefetchable BAR0")
dev:config_write(0x40, 1, 0x5a)
H.eq(dev:config_read(0x40, 1), 0x5a, "config write")
dev:mem_write("bar0", 100, "hello")
H.eq(dev:mem_read("bar0", 100, 5), "hello", "BAR memory")
H.raises("range outside", dev.mem_read, dev, "bar0", 8190, 4)
H.raises("no memory", dev.mem_read, dev, "bar2", 0, 1)
H.fails(nil, dev.dma_read, dev, 0x1000, 4)          -- nothing mapped
dev:close()
dev:close()                                           -- twice is harmless
assert(tostring(dev):find("closed"))
H.raises("device is closed", dev.irq, dev, 0)

-- timers and the client check their arguments too
H.raises("bad argument #1", vfu.timer, 0, function() end)
H.raises("bad argument #2", vfu.timer, 10, 42)
H.fails(nil, vfu.connect, H.tmp .. "/nobody.sock")
H.raises("bad argument #1", vfu.sleep, -1)
H.done("declarations")
