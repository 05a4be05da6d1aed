# SPDX-License-Identifier: BSD-3-Clause
# Guest side: Linux's gpio-pci-idio-16 driver on a PCI-IDIO-16 model whose
# inputs follow its outputs. Sourced by /init (see lib.sh).
modprobe gpio-pci-idio-16 || fail "modprobe gpio-pci-idio-16"
dev=$(ls -d /sys/bus/pci/drivers/pci-idio-16/0000:* 2>/dev/null | head -n1)
[ -n "$dev" ] || fail "the driver bound to no device"
chip=$(ls -d "$dev"/gpio/gpiochip* 2>/dev/null | head -n1)
[ -n "$chip" ] || fail "the driver registered no gpiochip"
base=$(cat "$chip/base")
[ "$(cat "$chip/ngpio")" -ge 32 ] || fail "ngpio is $(cat "$chip/ngpio"), want 32 or more"
note "bound: $dev, gpio base $base"

# Lines 0-15 are the outputs, 16-31 the inputs.
for i in $(seq 0 31); do
    echo $((base + i)) > /sys/class/gpio/export || fail "export line $i"
done
# The driver names its lines, and sysfs names exported lines after them.
outp() { echo "/sys/class/gpio/OUT$1/value"; }
inp() { echo "/sys/class/gpio/IIN$1/value"; }

for v in 1 0; do
    for i in $(seq 0 15); do
        echo $v > "$(outp $i)" || fail "set output $i to $v"
        [ "$(cat "$(outp $i)")" = $v ] || fail "output $i reads $(cat "$(outp $i)") after set to $v"
        got=$(cat "$(inp $i)")
        [ "$got" = $v ] || fail "input $i reads $got after output $i set to $v"
    done
done
note "16 outputs set and cleared, each input followed"

# An input change interrupts: asking for edges makes the driver enable the
# IRQ; its count in /proc/interrupts must move, and the driver acks it.
irq=$(cat "$dev/irq")
count() { awk -v irq="$irq:" '$1 == irq { s = 0; for (i = 2; i <= NF && $i ~ /^[0-9]+$/; i++) s += $i; print s }' /proc/interrupts; }
echo both > /sys/class/gpio/IIN0/edge || fail "edge detection on input 0"
before=$(count)
[ -n "$before" ] || fail "IRQ $irq is not in /proc/interrupts"
echo 1 > "$(outp 0)"; echo 0 > "$(outp 0)"; echo 1 > "$(outp 0)"
sleep 1
after=$(count)
[ "$after" -gt "$before" ] || fail "IRQ $irq count stayed at $before after input 0 changed"
note "IRQ $irq: $before -> $after interrupts"
# Acked: one more change is one more interrupt, not a storm.
echo 0 > "$(outp 0)"
sleep 1
again=$(count)
[ "$again" -gt "$after" ] || fail "no interrupt for a second change (count $after)"
[ "$again" -lt $((after + 50)) ] || fail "interrupt storm: $after -> $again (not acked?)"
pass
