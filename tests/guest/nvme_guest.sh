# SPDX-License-Identifier: BSD-3-Clause
# Guest side of test_nvme_lua.sh: Linux's nvme driver on devices/nvme.lua
# with a 32 MiB file-backed namespace. Sourced by /init (see lib.sh) after
# the host's preamble, which sets HOST_MD5 (the 1 MiB the host put at
# 28 MiB). Layout: a FAT file system on the first 16 MiB, raw data at
# 20, 21 and 24 MiB; the last block written at 24 MiB is reported as
# "VFU-MD5 <md5>" for the host to find in the backing file.

disk=/dev/nvme0n1

drop() { sync; echo 3 > /proc/sys/vm/drop_caches; }
md5() { md5sum | cut -d' ' -f1; }
# mib_md5 OFFSET: the md5 of the 1 MiB at OFFSET MiB of the disk
mib_md5() { dd if=$disk bs=1M skip=$1 count=1 2>/dev/null | md5; }
# put FILE OFFSET: write 1 MiB, drop the caches, read it back
put() {
    dd if=$1 of=$disk bs=1M seek=$2 count=1 conv=fsync 2>/dev/null ||
        fail "writing 1 MiB at $2 MiB"
    drop
    [ "$(mib_md5 $2)" = "$(md5 < $1)" ] ||
        fail "the 1 MiB written at $2 MiB reads back different"
}
wait_live() {
    for _ in $(seq 100); do
        [ "$(cat /sys/class/nvme/nvme0/state 2>/dev/null)" = live ] && return 0
        sleep 0.1
    done
    fail "nvme0 is $(cat /sys/class/nvme/nvme0/state 2>/dev/null), not live"
}
# check_fs WHEN: mount, compare every file with the sums taken at writing
check_fs() {
    mount -t vfat $disk /mnt || fail "mount ($1)"
    (cd /mnt && md5sum -c /tmp/sums >/dev/null) || fail "the files differ ($1)"
    umount /mnt || fail "umount ($1)"
}

modprobe nvme || fail "modprobe nvme"
for _ in $(seq 100); do
    [ -b $disk ] && break
    sleep 0.1
done
[ -b $disk ] || fail "the nvme driver made no $disk"
wait_live
size=$(( $(cat /sys/block/nvme0n1/size) * 512 ))
[ "$size" = 33554432 ] || fail "$disk has $size bytes, not the backing file's 33554432"
note "nvme0: $(sed 's/ *$//' /sys/class/nvme/nvme0/model), $size bytes"

[ "$(mib_md5 28)" = "$HOST_MD5" ] || fail "the host's 1 MiB at 28 MiB reads different"

dd if=/dev/urandom of=/tmp/one bs=1M count=1 2>/dev/null
put /tmp/one 20
note "raw 1 MiB written and read back"

# Several commands in flight: four direct writers at once, then four readers
# (64 KiB blocks from 21 MiB on), compared.
for i in 0 1 2 3; do dd if=/dev/urandom of=/tmp/w$i bs=64k count=4 2>/dev/null; done
for i in 0 1 2 3; do
    dd if=/tmp/w$i of=$disk bs=64k seek=$((336 + 4 * i)) count=4 oflag=direct 2>/dev/null &
done
wait
for i in 0 1 2 3; do
    dd if=$disk of=/tmp/r$i bs=64k skip=$((336 + 4 * i)) count=4 iflag=direct 2>/dev/null &
done
wait
for i in 0 1 2 3; do
    [ "$(md5 < /tmp/r$i)" = "$(md5 < /tmp/w$i)" ] || fail "direct writer $i reads back different"
done
note "4 direct writers and readers at once"

modprobe vfat || fail "modprobe vfat"
for m in nls_cp437 nls_ascii nls_utf8; do modprobe $m 2>/dev/null; done
mkdosfs -n VFU $disk 16384 >/dev/null || fail "mkdosfs"
mount -t vfat $disk /mnt || fail "mount"
cp /tmp/one /mnt/one.bin || fail "cp one.bin"
dd if=/dev/urandom of=/mnt/two.bin bs=1k count=300 2>/dev/null || fail "two.bin"
mkdir /mnt/dir && echo "written by Linux's nvme driver" > /mnt/dir/hello.txt ||
    fail "dir/hello.txt"
(cd /mnt && md5sum one.bin two.bin dir/hello.txt > /tmp/sums)
umount /mnt || fail "umount"
drop
check_fs "remounted"
note "FAT: written, unmounted, remounted, compared"

echo 1 > /sys/class/nvme/nvme0/reset_controller || fail "reset_controller"
wait_live
drop
[ "$(mib_md5 20)" = "$(md5 < /tmp/one)" ] || fail "the 1 MiB at 20 MiB after the reset"
check_fs "after the reset"
dd if=/dev/urandom of=/tmp/last bs=1M count=1 2>/dev/null
put /tmp/last 24
note "reset served, I/O after it"
echo "VFU-MD5 $(md5 < /tmp/last)"
pass
