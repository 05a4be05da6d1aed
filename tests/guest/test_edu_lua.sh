#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# devices/edu.lua under QEMU's vfio-user-pci, driven from the guest by a
# static program (edu_guest.c) through sysfs: identification, liveness,
# factorial, interrupt raise/ack, and a DMA round trip between a guest page
# and the device's buffer, checked byte for byte. Three boots: guest RAM a
# shared memfd (the device reaches it through the mapping), RAM not shared
# (by DMA_READ/WRITE messages), and RAM a shared plain file, as QEMU's
# memory-backend-file makes (mapped under the SIGBUS guard: such a file
# can't be sealed).
# Usage: test_edu_lua.sh VFU-LUA EDU-GUEST
set -u
. "$(dirname "$0")/lib.sh"
guest_require
vfu_lua=${1:?usage: test_edu_lua.sh VFU-LUA EDU-GUEST}
prog=${2:?usage: test_edu_lua.sh VFU-LUA EDU-GUEST}
echo 'edu_guest; sync; poweroff -f' > "$guest_work/edu.sh"
guest_initramfs "$guest_work/initrd.gz" "$guest_work/edu.sh" "$prog"
guest_serve edu "$vfu_lua" "$guest_top/devices/edu.lua"
guest_boot "$guest_work/initrd.gz" -device "$(guest_device edu 0x4)"
guest_verdict || exit 1
guest_boot "$guest_work/initrd.gz" -device "$(guest_device edu 0x4)" \
    -object memory-backend-ram,id=ram,size=512M -machine memory-backend=ram
guest_verdict || exit 1
guest_serve edufile "$vfu_lua" -v --trace "$guest_work/edufile.trace" \
    "$guest_top/devices/edu.lua"
guest_boot "$guest_work/initrd.gz" -device "$(guest_device edufile 0x4)" \
    -object memory-backend-file,id=file,size=512M,share=on,mem-path="$guest_work/ram" \
    -machine memory-backend=file
guest_verdict || exit 1
rm -f "$guest_work/ram"
if ! grep -q '"event":"dma_map".*"mapped":true' "$guest_work/edufile.trace"; then
    echo "FAIL: the file-backed guest RAM was not mapped; server log:"
    tail -n 20 "$guest_work/edufile.log"
    exit 1
fi
