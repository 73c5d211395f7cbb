#!/bin/sh
# Services of the ironidc demo guest. busybox init runs this once (::sysinit in
# /etc/inittab), after /init, and waits for it before starting the console shell.
# Signals sent to PID 1 from here on (poweroff) are handled by busybox init.
#
# Console lines for whoever watches ttyS0 (tests, the control plane):
#   IRONIDC-SEED hostname=NAME   a NoCloud seed named the guest
#   IRONIDC-NET IFACE ADDRESS    IFACE got ADDRESS by DHCP (from the udhcpc script)
#   IRONIDC-DEMO-READY           services are up (printed last)

say() {
    echo "$*" > /dev/console
}

# Wait up to about 5 s for a file to appear; daemons write their pid file once ready.
wait_for_file() {
    tries=0
    while [ ! -s "$1" ] && [ "$tries" -lt 100 ]; do
        usleep 50000
        tries=$((tries + 1))
    done
    [ -s "$1" ]
}

# A hostname we accept: letters, digits, dots and dashes, 1 to 63 characters.
valid_hostname() {
    case "$1" in
        '' | *[!A-Za-z0-9.-]* | -*) return 1 ;;
    esac
    [ "${#1}" -le 63 ]
}

set_hostname() {
    hostname "$1"
    echo "$1" > /etc/hostname
    printf '127.0.0.1\tlocalhost\n127.0.1.1\t%s\n' "$1" > /etc/hosts
}

# NoCloud seed: a FAT disk labelled CIDATA (or cidata) holding meta-data. Devices with
# that label come first (busybox findfs); the scan after them takes any FAT disk with a
# meta-data file. The seed stays mounted read-only at /run/cidata.
SEED_DIR=/run/cidata
mount_seed() {
    mkdir -p "$SEED_DIR"
    for dev in $(findfs LABEL=CIDATA 2>/dev/null) $(findfs LABEL=cidata 2>/dev/null) \
        /dev/vd? /dev/sd?; do
        [ -b "$dev" ] || continue
        mount -t vfat -o ro "$dev" "$SEED_DIR" 2>/dev/null || continue
        if [ -f "$SEED_DIR/meta-data" ]; then
            echo "$dev" > /run/ironidc/seed-device
            return 0
        fi
        umount "$SEED_DIR"
    done
    return 1
}

# `local-hostname: NAME` of meta-data (YAML: the value may be quoted, lines may end in CR).
seed_hostname() {
    sed -n 's/^local-hostname:[[:space:]]*//p' "$SEED_DIR/meta-data" |
        head -n 1 | tr -d "\r\"'" | sed 's/[[:space:]]*$//'
}

apply_seed() {
    mount_seed || return 0
    name=$(seed_hostname)
    if [ -z "$name" ]; then
        say "ironidc: the NoCloud seed on $(cat /run/ironidc/seed-device) has no local-hostname"
    elif valid_hostname "$name"; then
        set_hostname "$name"
        say "IRONIDC-SEED hostname=$name"
    else
        say "ironidc: ignoring the seed's invalid local-hostname"
    fi
}

# The guest's web page, once the hostname is final.
start_httpd() {
    mkdir -p /www
    name=$(hostname)
    cat > /www/index.html <<EOF
<!DOCTYPE html>
<html><head><title>$name</title></head><body><pre>
IRONIDC-GUEST $name
</pre></body></html>
EOF
    httpd -p 80 -h /www || say "ironidc: httpd did not start"
}

# Time since boot in hundredths of a second (the `1` prefix keeps a fraction like 08
# from being read as octal).
uptime_cs() {
    read -r up _ < /proc/uptime
    echo $((${up%.*} * 100 + 1${up#*.} - 100))
}

# DHCP on every ethN, all at once; /usr/share/udhcpc/default.script configures each NIC
# and writes /run/ironidc/net/IFACE once it has an address. udhcpc keeps renewing.
NICS=
LEASE_DEADLINE=0
start_network() {
    LEASE_DEADLINE=$(($(uptime_cs) + 1000))
    ip link set lo up
    mkdir -p /run/ironidc/net
    for path in /sys/class/net/eth*; do
        [ -e "$path" ] || continue
        nic=${path##*/}
        NICS="$NICS $nic"
        ip link set "$nic" up
        udhcpc -i "$nic" -b -s /usr/share/udhcpc/default.script \
            -p "/run/udhcpc.$nic.pid" > "/var/log/udhcpc.$nic.log" 2>&1 &
    done
}

# Wait for every NIC's first lease, until 10 s after DHCP started: a guest without a
# DHCP server still gets ready, only later.
wait_for_leases() {
    while :; do
        pending=
        for nic in $NICS; do
            [ -s "/run/ironidc/net/$nic" ] || pending="$pending $nic"
        done
        [ -z "$pending" ] && return 0
        [ "$(uptime_cs)" -lt "$LEASE_DEADLINE" ] || break
        usleep 50000
    done
    say "ironidc: no DHCP lease yet for$pending; still trying in the background"
}

mkdir -p /run/ironidc

# ACPI power button -> poweroff. acpid reads /dev/input/event* (the `button` module
# makes the "Power Button" input device, `evdev` its event node) and runs
# /etc/acpi/PWRF/00000080 for KEY_POWER. It writes its pid file only after opening the
# event devices, so once the file exists a button press is no longer lost.
acpid -c /etc/acpi -l /var/log/acpid.log -p /run/acpid.pid
wait_for_file /run/acpid.pid || say "ironidc: acpid did not start; the power button will not work"

start_network
set_hostname "$(hostname)"
apply_seed
start_httpd
wait_for_leases

# Tells whoever watches the serial console that the guest is up.
say IRONIDC-DEMO-READY
