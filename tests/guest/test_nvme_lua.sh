#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# devices/nvme.lua with a 32 MiB file-backed namespace under QEMU's
# vfio-user-pci, driven by Linux's own nvme driver (nvme_guest.sh): the
# disk's size, data the host put in the file, 1 MiB written and read back
# past the page cache, four direct writers and readers at once, a FAT file
# system written, remounted and compared, a controller reset from sysfs
# with I/O after it, and the guest's shutdown (CC.SHN, seen in the
# device's trace, CSTS.SHST complete answered). After each boot, from the
# host: the backing file holds the guest's last 1 MiB and the FAT boot
# sector, and the device still runs. Two boots: guest RAM a shared memfd
# the device maps, then RAM of QEMU's own, reached by DMA messages, with
# two CPUs (two I/O queues).
# Usage: test_nvme_lua.sh VFU-LUA   ($VFU_NVME_SCRIPT: another device script)
set -u
. "$(dirname "$0")/lib.sh"
guest_require
vfu_lua=${1:?usage: test_nvme_lua.sh VFU-LUA}
script=${VFU_NVME_SCRIPT:-$guest_top/devices/nvme.lua}
[ -f "$script" ] || { echo "SKIP: $(basename "$0"): no $script"; exit 0; }
disk=$guest_work/disk.img
trace=$guest_work/trace.jsonl

truncate -s 32M "$disk"
head -c 1048576 /dev/urandom > "$guest_work/host.bin"
dd if="$guest_work/host.bin" of="$disk" bs=1M seek=28 conv=notrunc 2>/dev/null
{
    echo "HOST_MD5=$(md5sum < "$guest_work/host.bin" | cut -d' ' -f1)"
    cat "$guest_top/tests/guest/nvme_guest.sh"
} > "$guest_work/nvme.sh"
guest_initramfs "$guest_work/initrd.gz" "$guest_work/nvme.sh"
guest_serve nvme "$vfu_lua" --trace "$trace" "$script" @SOCK@ "$disk"
failed() { echo "FAIL: $(basename "$0"): $*"; exit 1; }

# after_boot WHAT FROM: the checks of one boot, on the trace from line FROM.
after_boot() {
    local what=$1 from=$2 shn="" shst="" line d want got verdict
    verdict=$(guest_verdict) || { echo "$verdict"; echo "(boot: $what)"; exit 1; }
    # The guest's shutdown: a CC write (BAR0 0x14) with SHN = 01, then a
    # CSTS read (0x1c) that says the shutdown is complete (SHST = 10).
    while IFS= read -r line; do
        case $line in
        *'"event":"region_write","region":"bar0","offset":20,'*)
            d=${line##*\"data\":\"}
            [ $(( 0x${d:2:2} & 0xc0 )) = $(( 0x40 )) ] && shn=1 ;;
        *'"event":"region_read","region":"bar0","offset":28,'*)
            d=${line##*\"data\":\"}
            [ -n "$shn" ] && [ $(( 0x${d:0:2} & 0x0c )) = 8 ] && shst=1 ;;
        esac
    done < <(tail -n +"$from" "$trace" | grep -a '"region":"bar0","offset":2[08],')
    [ -n "$shn" ] || failed "$what: the guest's shutdown never wrote CC.SHN (trace: $trace)"
    [ -n "$shst" ] || failed "$what: CC.SHN was written but CSTS never said the shutdown was complete"
    want=$(grep -a -m1 '^VFU-MD5 ' "$guest_work/console.log" | tr -d '\r' | cut -d' ' -f2)
    got=$(dd if="$disk" bs=1M skip=24 count=1 2>/dev/null | md5sum | cut -d' ' -f1)
    [ -n "$want" ] || failed "$what: the guest printed no VFU-MD5 line"
    [ "$got" = "$want" ] ||
        failed "$what: the backing file's 1 MiB at 24 MiB is $got, the guest wrote $want"
    [ "$(od -An -tx1 -j510 -N2 "$disk" | tr -d ' ')" = 55aa ] ||
        failed "$what: no FAT boot sector at the start of the backing file"
    kill -0 "$guest_pid_nvme" 2>/dev/null || failed "$what: the device did not outlive the guest"
    echo "$verdict, $what (the backing file holds what the guest wrote; its shutdown was served)"
}

# Guest RAM a shared memfd: the device maps it.
guest_boot "$guest_work/initrd.gz" -device "$(guest_device nvme 0x4)"
after_boot "guest RAM mapped" 1
# Guest RAM QEMU's own: every DMA map comes without an fd, and the queues
# and data move by DMA_READ/DMA_WRITE messages. Two CPUs: the driver makes
# an I/O queue pair for each, on MSI-X vectors 1 and 2.
from=$(( $(wc -l < "$trace") + 1 ))
guest_boot "$guest_work/initrd.gz" -device "$(guest_device nvme 0x4)" -smp 2 \
    -object memory-backend-ram,id=ram,size=512M -machine memory-backend=ram
after_boot "guest RAM by messages" "$from"
