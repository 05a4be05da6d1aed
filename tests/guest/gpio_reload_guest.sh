# SPDX-License-Identifier: BSD-3-Clause
# Guest side of test_gpio_reload.sh: Linux's gpio-pci-idio-16 driver on
# devices/gpio.lua while the host edits the script under it. Before the
# edit every input follows its output; the guest says "ready for reload"
# and, without rebooting, waits until the inputs show the edited script's
# behaviour (each input the inverse of its output), then checks every
# line, the state the device kept (an output left set) and the interrupt.

outp() { echo "/sys/class/gpio/OUT$1/value"; }
inp() { echo "/sys/class/gpio/IIN$1/value"; }
irq_count() {
    awk -v irq="$1:" '$1 == irq { s = 0
        for (i = 2; i <= NF && $i ~ /^[0-9]+$/; i++) s += $i; print s }' /proc/interrupts
}

# lines OUT IN: every output set to OUT reads back, its input reads IN
lines() {
    local i got
    for i in $(seq 0 15); do
        [ "$i" = 5 ] && continue        # kept set across the reload
        echo "$1" > "$(outp $i)" || fail "set output $i to $1"
        got=$(cat "$(inp $i)")
        [ "$got" = "$2" ] || fail "input $i reads $got with output $i at $1 ($3)"
    done
}

modprobe gpio-pci-idio-16 || fail "modprobe gpio-pci-idio-16"
dev=$(ls -d /sys/bus/pci/drivers/pci-idio-16/0000:* 2>/dev/null | head -n1)
[ -n "$dev" ] || fail "the driver bound to no card"
chip=$(ls -d "$dev"/gpio/gpiochip* | head -n1)
base=$(cat "$chip/base")
for i in $(seq 0 31); do
    echo $((base + i)) > /sys/class/gpio/export || fail "export line $i"
done
irq=$(cat "$dev/irq")
echo both > /sys/class/gpio/IIN0/edge || fail "edge detection on input 0"

lines 1 1 "before the reload"
lines 0 0 "before the reload"
echo 1 > "$(outp 5)"
note "inputs follow outputs; output 5 left set"

note "ready for reload"
# the host edits devices/gpio.lua now; no reboot, no reconnect
echo 0 > "$(outp 0)"
n=0
while [ "$(cat "$(inp 0)")" = 0 ]; do
    n=$((n + 1))
    [ $n -lt 600 ] || fail "input 0 still follows output 0 a minute after the edit"
    sleep 0.1
done
note "the edited script answers (input 0 is 1 with output 0 at 0)"

lines 1 0 "after the reload"
lines 0 1 "after the reload"
[ "$(cat "$(inp 5)")" = 0 ] || fail "output 5 was not kept: input 5 reads $(cat "$(inp 5)")"
[ "$(cat "$(inp 4)")" = 1 ] || fail "input 4 reads $(cat "$(inp 4)") with output 4 at 0"
note "after the reload every input is the inverse of its output; output 5 kept"

before=$(irq_count "$irq")
echo 1 > "$(outp 0)"; echo 0 > "$(outp 0)"
sleep 1
after=$(irq_count "$irq")
[ "$after" -gt "$before" ] || fail "IRQ $irq count stayed at $before after the reload"
note "IRQ $irq counted $before -> $after after the reload"
pass
