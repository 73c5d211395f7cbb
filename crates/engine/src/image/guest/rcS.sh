#!/bin/sh
# Services of the ironidc demo guest. busybox init runs this once (::sysinit in
# /etc/inittab), after /init, and waits for it before starting the console shell.
# Signals sent to PID 1 from here on (poweroff) are handled by busybox init.

# Wait up to about 5 s for a file to appear; daemons write their pid file once ready.
wait_for_file() {
    tries=0
    while [ ! -s "$1" ] && [ "$tries" -lt 100 ]; do
        usleep 50000
        tries=$((tries + 1))
    done
    [ -s "$1" ]
}

# ACPI power button -> poweroff. acpid reads /dev/input/event* (the `button` module
# makes the "Power Button" input device, `evdev` its event node) and runs
# /etc/acpi/PWRF/00000080 for KEY_POWER. It writes its pid file only after opening the
# event devices, so once the file exists a button press is no longer lost.
acpid -c /etc/acpi -l /var/log/acpid.log -p /run/acpid.pid
wait_for_file /run/acpid.pid || echo "ironidc: acpid did not start; the power button will not work" > /dev/console

# Tells whoever watches the serial console that the guest is up.
echo IRONIDC-DEMO-READY > /dev/console
