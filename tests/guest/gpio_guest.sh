# SPDX-License-Identifier: BSD-3-Clause
# Guest side: Linux's gpio-pci-idio-16 driver on PCI-IDIO-16 models whose
# inputs follow their outputs. Sourced by /init (see lib.sh); GPIO_CARDS
# (default 1) is how many cards the guest must find.

# check_card DEVICE first|next: all 16 outputs, their inputs, and the
# interrupt (first card only); lines are unexported after, so that the next
# card's can take the same names.
check_card() {
    local dev=$1 chip base i v got name
    name=${dev##*/}
    chip=$(ls -d "$dev"/gpio/gpiochip* 2>/dev/null | head -n1)
    [ -n "$chip" ] || fail "$name: the driver registered no gpiochip"
    base=$(cat "$chip/base")
    [ "$(cat "$chip/ngpio")" -ge 32 ] ||
        fail "$name: ngpio is $(cat "$chip/ngpio"), want 32 or more"
    note "$name: gpio base $base"

    # Lines 0-15 are the outputs, 16-31 the inputs.
    for i in $(seq 0 31); do
        echo $((base + i)) > /sys/class/gpio/export || fail "$name: export line $i"
    done
    for v in 1 0; do
        for i in $(seq 0 15); do
            echo $v > "$(outp $i)" || fail "$name: set output $i to $v"
            got=$(cat "$(outp $i)")
            [ "$got" = $v ] || fail "$name: output $i reads $got after set to $v"
            got=$(cat "$(inp $i)")
            [ "$got" = $v ] || fail "$name: input $i reads $got after output $i set to $v"
        done
    done
    note "$name: 16 outputs set and cleared, each input followed"

    # Linux 6.1's driver shares one irq_chip between its cards ("detected
    # irqchip that is shared with multiple gpiochips"): only the first
    # card's interrupt can be asked for.
    if [ "$2" = first ]; then check_irq "$dev"; fi

    for i in $(seq 0 31); do echo $((base + i)) > /sys/class/gpio/unexport; done
}

# check_irq DEVICE: the interrupt of a card whose lines are exported.
check_irq() {
    local dev=$1 name=${1##*/} irq before after again

    # An input change interrupts: asking for edges makes the driver enable
    # the IRQ; its count in /proc/interrupts must move, and the driver
    # acknowledges it (one change, one interrupt: no storm).
    irq=$(cat "$dev/irq")
    echo both > /sys/class/gpio/IIN0/edge || fail "$name: edge detection on input 0"
    before=$(irq_count "$irq")
    [ -n "$before" ] || fail "$name: IRQ $irq is not in /proc/interrupts"
    echo 1 > "$(outp 0)"; echo 0 > "$(outp 0)"; echo 1 > "$(outp 0)"
    sleep 1
    after=$(irq_count "$irq")
    [ "$after" -gt "$before" ] ||
        fail "$name: IRQ $irq count stayed at $before after input 0 changed"
    echo 0 > "$(outp 0)"
    sleep 1
    again=$(irq_count "$irq")
    [ "$again" -gt "$after" ] || fail "$name: no interrupt for a second change (count $after)"
    [ "$again" -lt $((after + 50)) ] ||
        fail "$name: interrupt storm, $after -> $again (not acknowledged?)"
    note "$name: IRQ $irq counted $before -> $after -> $again"

    echo none > /sys/class/gpio/IIN0/edge
}

# The driver names its lines, and sysfs names exported lines after them.
outp() { echo "/sys/class/gpio/OUT$1/value"; }
inp() { echo "/sys/class/gpio/IIN$1/value"; }
irq_count() {
    awk -v irq="$1:" '$1 == irq { s = 0
        for (i = 2; i <= NF && $i ~ /^[0-9]+$/; i++) s += $i; print s }' /proc/interrupts
}

modprobe gpio-pci-idio-16 || fail "modprobe gpio-pci-idio-16"
n=0
for dev in /sys/bus/pci/drivers/pci-idio-16/0000:*; do
    [ -e "$dev" ] || continue
    [ $n = 0 ] && which=first || which=next
    check_card "$dev" $which
    n=$((n + 1))
done
[ "$n" = "${GPIO_CARDS:-1}" ] || fail "the driver bound to $n cards, want ${GPIO_CARDS:-1}"
pass
