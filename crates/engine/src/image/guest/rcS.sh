#!/bin/sh
# Services of the ironidc demo guest. busybox init runs this once (::sysinit in
# /etc/inittab), after /init, and waits for it before starting the console shell.
# Signals sent to PID 1 from here on (poweroff) are handled by busybox init.
#
# Console lines for whoever watches ttyS0 (tests, the control plane):
#   IRONIDC-SEED hostname=NAME   a NoCloud seed named the guest
#   IRONIDC-DISK /mnt/disk       the boot disk is mounted read-write (and sync) there
#   IRONIDC-NET IFACE ADDRESS    IFACE got ADDRESS by DHCP (from the udhcpc script)
#   IRONIDC-AGENT up             qemu-ga serves org.qemu.guest_agent.0
#   IRONIDC-AGENT failed: WHY    ... or why it does not
#   IRONIDC-RUNCMD PROGRAM       a cloud-config runcmd entry was started
#   IRONIDC-DEMO-READY           services are up (printed last)
# Other lines starting with `ironidc:` are warnings.

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
    apply_write_files
}

# cloud-config `user-data`: the subset the control plane emits, read with awk rather than
# a YAML parser. Top-level keys start in column 1; `write_files` items are `- key: value`
# blocks, `runcmd` items flow sequences `- [ word, word ]` (or a plain string for sh -c).
USER_DATA=$SEED_DIR/user-data
TAB=$(printf '\t')

# awk functions shared by both readers: the top-level section a line is in, and a scalar
# with its quotes removed.
# shellcheck disable=SC2016 # awk code, not shell
YAML_AWK='
function unquote(v) {
    gsub(/^[ \t]+|[ \t]+$/, "", v)
    if (length(v) >= 2 && (substr(v, 1, 1) == "\"" || substr(v, 1, 1) == q) &&
        substr(v, length(v), 1) == substr(v, 1, 1))
        v = substr(v, 2, length(v) - 2)
    return v
}
{ sub(/\r$/, "") }
/^[^ \t#]/ { section = $0; sub(/:.*/, "", section) }
'

# One line per write_files entry: PATH TAB PERMISSIONS TAB ENCODING TAB CONTENT
# (tabs are whitespace to `read`: every field but the last gets a placeholder if empty).
write_files_entries() {
    awk -v q="'" "$YAML_AWK"'
function flush() {
    if (path != "")
        print path "\t" (perm == "" ? "0644" : perm) "\t" (enc == "" ? "text" : enc) "\t" content
    path = ""; perm = ""; enc = ""; content = ""
}
/^[^ \t#]/ { flush(); next }
section != "write_files" { next }
/^[ \t]*-[ \t]/ { flush(); sub(/-[ \t]+/, "") }
{
    line = $0
    sub(/^[ \t]+/, "", line)
    key = line; sub(/:.*/, "", key)
    value = line
    if (!sub(/^[^:]*:/, "", value)) next
    value = unquote(value)
    if (key == "path") path = value
    else if (key == "permissions") perm = value
    else if (key == "encoding") enc = value
    else if (key == "content") content = value
}
END { flush() }' "$USER_DATA"
}

# Files are created with umask 077 and then given their permissions, so a secret is
# never readable by others in between.
apply_write_files() {
    [ -f "$USER_DATA" ] || return 0
    write_files_entries | while IFS="$TAB" read -r path perm enc content; do
        case "$path" in
            /*) ;;
            *) say "ironidc: write_files: ignoring relative path $path"; continue ;;
        esac
        case "$enc" in
            b64 | base64) ;;
            *) say "ironidc: write_files: $path has encoding $enc; only b64 is supported"; continue ;;
        esac
        case "$perm" in
            *[!0-7]*) say "ironidc: write_files: $path has bad permissions $perm"; continue ;;
        esac
        mkdir -p "$(dirname "$path")"
        if (umask 077 && printf '%s\n' "$content" | base64 -d > "$path") && chmod "$perm" "$path"; then
            :
        else
            say "ironidc: write_files: cannot write $path"
        fi
    done
}

# One line per runcmd entry: `argv` TAB WORD TAB WORD..., or `sh` TAB COMMAND.
runcmd_entries() {
    awk -v q="'" "$YAML_AWK"'
/^[^ \t#]/ { next }
section != "runcmd" || !/^[ \t]*-[ \t]/ { next }
{
    line = $0
    sub(/^[ \t]*-[ \t]*/, "", line)
    sub(/[ \t]+$/, "", line)
    if (line ~ /^\[.*\]$/) {
        n = split(substr(line, 2, length(line) - 2), words, ",")
        out = "argv"
        for (i = 1; i <= n; i++) {
            word = unquote(words[i])
            if (word != "") out = out "\t" word
        }
        print out
    } else if (line != "") {
        print "sh\t" unquote(line)
    }
}' "$USER_DATA"
}

# Each entry runs in the background in a session of its own, its output in
# /var/log/runcmd.N.log.
run_runcmd() {
    [ -f "$USER_DATA" ] || return 0
    n=0
    runcmd_entries | while IFS= read -r entry; do
        kind=${entry%%"$TAB"*}
        rest=${entry#*"$TAB"}
        n=$((n + 1))
        if [ "$kind" = argv ]; then
            set -f
            IFS=$TAB
            # shellcheck disable=SC2086 # splitting on tabs is the point
            set -- $rest
            unset IFS
            set +f
            [ "$#" -gt 0 ] || continue
            say "IRONIDC-RUNCMD $1"
        else
            say "IRONIDC-RUNCMD ${rest%% *}"
            set -- /bin/sh -c "$rest"
        fi
        setsid "$@" < /dev/null > "/var/log/runcmd.$n.log" 2>&1 &
    done
}

# The boot disk, read-write: files written there live in the VM's disk image. `sync`
# writes them through at once, so a snapshot or backup taken right after sees them.
DISK_DIR=/mnt/disk
mount_disk() {
    dev=$(findfs LABEL=IRONIDC 2>/dev/null)
    [ -b "$dev" ] || dev=/dev/vda
    mkdir -p "$DISK_DIR"
    if mount -t vfat -o rw,sync "$dev" "$DISK_DIR"; then
        say "IRONIDC-DISK $DISK_DIR"
    else
        say "ironidc: cannot mount the boot disk $dev at $DISK_DIR"
    fi
}

# The QEMU guest agent on the virtio-serial port QEMU named org.qemu.guest_agent.0. With
# no udev in the guest, the /dev/virtio-ports link udev would make is made here.
AGENT_PORT=org.qemu.guest_agent.0
agent_port_device() {
    for port in /sys/class/virtio-ports/*; do
        [ "$(cat "$port/name" 2>/dev/null)" = "$AGENT_PORT" ] && echo "/dev/${port##*/}" && return 0
    done
    return 1
}

# True once process $1 has device $2 open.
has_open() {
    for fd in /proc/"$1"/fd/*; do
        [ "$(readlink "$fd")" = "$2" ] && return 0
    done
    return 1
}

start_agent() {
    # The port's name arrives from QEMU shortly after the port appears: wait a little,
    # but only when there are ports at all.
    tries=0
    until dev=$(agent_port_device); do
        if [ -z "$(ls /sys/class/virtio-ports 2>/dev/null)" ] || [ "$tries" -ge 40 ]; then
            say "IRONIDC-AGENT failed: no virtio-serial port named $AGENT_PORT"
            return 1
        fi
        usleep 50000
        tries=$((tries + 1))
    done
    mkdir -p /dev/virtio-ports /run/qemu-ga
    ln -sf "../${dev##*/}" "/dev/virtio-ports/$AGENT_PORT"
    if ! qemu-ga -d -m virtio-serial -p "/dev/virtio-ports/$AGENT_PORT" \
        -f /run/qemu-ga.pid -t /run/qemu-ga -l /var/log/qemu-ga.log; then
        say "IRONIDC-AGENT failed: qemu-ga did not start; see /var/log/qemu-ga.log"
        return 1
    fi
    # qemu-ga forks away before it opens the port: wait until the daemon holds it open.
    tries=0
    while [ "$tries" -lt 100 ]; do
        pid=$(cat /run/qemu-ga.pid 2>/dev/null)
        if [ -n "$pid" ] && has_open "$pid" "$dev"; then
            say "IRONIDC-AGENT up"
            return 0
        fi
        usleep 50000
        tries=$((tries + 1))
    done
    say "IRONIDC-AGENT failed: qemu-ga does not hold $dev open; see /var/log/qemu-ga.log"
    return 1
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
mount_disk
mkdir -p /mnt/cdrom
start_agent
start_httpd
wait_for_leases
run_runcmd

# Tells whoever watches the serial console that the guest is up.
say IRONIDC-DEMO-READY
