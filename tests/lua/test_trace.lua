-- SPDX-License-Identifier: BSD-3-Clause
-- Copyright (c) 2026 the vfu authors.

-- --trace: one JSON line per protocol message (request and reply, with the
-- command's name, flags, error and a summary of the common commands) and
-- per device event, in the order they happened.
local H = dofile(arg[2] .. "/tests/lua/harness.lua")
local vfu = require "vfu"

local trace = H.tmp .. "/events.trace"
os.remove(trace)
local s = H.start(H.src .. "/tests/lua/fixtures/events.lua", "--trace " .. trace, "trace")
local c = H.connect(s)
assert(c:write("bar0", 8, 8, 0x1234))
H.eq(c:read("bar0", 0, 8), 0, "read")
assert(c:dma_map(0x40000, 0x2000, "r"))
assert(c:irq_enable("msi", 1, 2))
H.fails(H.EINVAL, c.read, c, "bar0", 0x1000, 4)       -- past the end
H.fails(H.EINVAL, c.call, c, 9, "short")              -- truncated REGION_READ
assert(c:dma_unmap(0x40000, 0x2000))
c:close()
-- the server notices the disconnect on its own time: wait for it
for _ = 1, 200 do
  if H.read(trace):find('"event":"reset","kind":"lost_conn"', 1, true) then break end
  vfu.sleep(10)
end
H.stop(s)

local lines, requests, replies = {}, {}, {}
for line in io.lines(trace) do
  assert(line:match('^{"t_us":%d+,"event":"[%w_]+".*}$'), line)
  lines[#lines + 1] = line
  local dir, id, cmd = line:match('"event":"msg","dir":"(%a+)","msg_id":(%d+),"cmd":"([%u_]+)"')
  if dir == "request" then requests[id] = cmd
  elseif dir == "reply" then
    H.eq(requests[id], cmd, "reply " .. id .. " names its request's command")
    replies[id] = true
  end
end
for id, cmd in pairs(requests) do assert(replies[id], "no reply to " .. cmd) end
local all = table.concat(lines, "\n")
local function has(pattern, what)
  assert(all:find(pattern), ("trace lacks %s (%s):\n%s"):format(what, pattern, all))
end
has('"dir":"request","msg_id":%d+,"cmd":"VERSION","cmd_no":1,"flags":0,"size":%d+', "VERSION")
has('"cmd":"REGION_WRITE","cmd_no":10,"flags":0,"size":24,"region":"bar0","offset":8,"count":8', "REGION_WRITE summary")
has('"dir":"reply","msg_id":%d+,"cmd":"REGION_READ","cmd_no":9,"flags":1,"size":24,"region":"bar0","offset":0,"count":8', "REGION_READ reply")
has('"cmd":"DMA_MAP","cmd_no":2,"flags":0,"size":32,"iova":262144,"len":8192,"prot":"r"', "DMA_MAP summary")
has('"cmd":"DMA_UNMAP","cmd_no":3,"flags":0,"size":24,"iova":262144,"len":8192', "DMA_UNMAP summary")
has('"cmd":"DEVICE_SET_IRQS","cmd_no":8,"flags":0,"size":20,"index":1,"start":1,"count":2', "SET_IRQS summary")
has('"cmd":"REGION_READ","cmd_no":9,"flags":0,"size":16,"region":"bar0","offset":4096,"count":4', "bad read request")
has('"dir":"reply","msg_id":%d+,"cmd":"REGION_READ","cmd_no":9,"flags":33,"error":22,"error_str":"[^"]+","size":0', "error reply")
has('"cmd":"REGION_READ","cmd_no":9,"flags":0,"size":5}', "truncated request, no summary")
-- device events still come, between their request and its reply
has('"event":"region_write","region":"bar0","offset":8,"size":8,"data":"3412000000000000"', "region event")
has('"event":"dma_map","iova":262144,"len":8192', "DMA event")
has('"event":"irq_state","type":"msi","start":1,"count":2,"masked":false', "irq event")
has('"event":"reset","kind":"lost_conn"', "lost connection")
local req = all:find('"cmd":"DMA_MAP","cmd_no":2,"flags":0', 1, true)
local ev = all:find('"event":"dma_map"', 1, true)
local rep = all:find('"dir":"reply","msg_id":%d+,"cmd":"DMA_MAP"')
assert(req < ev and ev < rep, "event between request and reply")
H.done("trace")
