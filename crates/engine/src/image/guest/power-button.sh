#!/bin/sh
# Run by acpid when the ACPI power button is pressed (e.g. QMP system_powerdown):
# an orderly shutdown by busybox init, which then powers the machine off.
exec /bin/busybox poweroff
