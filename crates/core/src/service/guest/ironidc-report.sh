#!/bin/sh
# ironidc-report: sends this VM's resource usage to the ironidc control plane.
# POSIX sh; needs /proc, awk, df, and wget (busybox's will do) or curl.
#
#   ironidc-report --daemon   report every REPORT_INTERVAL seconds, in the background
#   ironidc-report --once     send one report; exit with the HTTP client's status
#
# Configuration: /etc/ironidc/report.conf (or $IRONIDC_REPORT_CONF), shell assignments:
#   REPORT_URL='http://10.0.0.1:1880/api/client/upload?nic=52:54:00:aa:bb:cc'
#   REPORT_SECRET='hex'    sent in the X-Ironidc-Secret header, never in the URL
#   REPORT_INTERVAL=60     seconds between reports (default 60)
#
# Each report is a JSON object POSTed to REPORT_URL, with OpenIDCS HWStatus field names:
# ac_status, on_update (unix time), cpu_total, cpu_usage (% busy), mem_total, mem_usage,
# hdd_total, hdd_usage (MB), network_u, network_d (KB/s up/down), net_tx_bytes and
# net_rx_bytes (counters over every NIC but lo). After the first report the server took,
# `IRONIDC-REPORT ok` goes to the console ($IRONIDC_REPORT_CONSOLE, else /dev/console).

CONF=${IRONIDC_REPORT_CONF:-/etc/ironidc/report.conf}
PIDFILE=/run/ironidc-report.pid
CONSOLE=${IRONIDC_REPORT_CONSOLE:-/dev/console}

die() {
    echo "ironidc-report: $*" >&2
    exit 1
}

load_config() {
    [ -r "$CONF" ] || die "cannot read the configuration $CONF"
    REPORT_URL='' REPORT_SECRET='' REPORT_INTERVAL=60
    # shellcheck disable=SC1090 # the file is written by the control plane
    . "$CONF" || die "cannot load $CONF"
    case "$REPORT_URL" in
        http://?* | https://?*) ;;
        *) die "REPORT_URL missing or not an http(s) URL in $CONF" ;;
    esac
    case "$REPORT_SECRET" in
        '' | *[!0-9A-Fa-f]*) die "REPORT_SECRET missing or not hexadecimal in $CONF" ;;
    esac
    case "$REPORT_INTERVAL" in
        '' | *[!0-9]* | 0) die "REPORT_INTERVAL must be a positive number of seconds in $CONF" ;;
    esac
}

# CPU time counters of /proc/stat's first line: cpu_all (all states), cpu_busy (all but
# idle and iowait).
read_cpu() {
    read -r _ user nice system idle iowait irq softirq steal _ < /proc/stat
    cpu_all=$((user + nice + system + idle + ${iowait:-0} + ${irq:-0} + ${softirq:-0} + ${steal:-0}))
    cpu_busy=$((cpu_all - idle - ${iowait:-0}))
}

# Byte counters summed over every interface but lo (`eth0: RX... TX...`; a large counter
# may touch the colon).
read_net() {
    # shellcheck disable=SC2046 # two numbers
    set -- $(awk 'NR > 2 {
            sub(/^[ \t]+/, "")
            name = $0; sub(/:.*/, "", name)
            if (name == "lo") next
            fields = $0; sub(/^[^:]*:/, "", fields)
            split(fields, f, " ")
            rx += f[1]; tx += f[9]
        }
        END { printf "%.0f %.0f\n", rx, tx }' /proc/net/dev)
    net_rx=${1:-0} net_tx=${2:-0}
}

# Everything but CPU and network rates, which need the previous sample.
sample() {
    on_update=$(date +%s)
    cpu_total=$(grep -c '^cpu[0-9]' /proc/stat)
    # shellcheck disable=SC2046
    set -- $(awk '/^MemTotal:/ { t = $2 } /^MemAvailable:/ { a = $2; seen = 1 }
            /^(MemFree|Buffers|Cached):/ { f += $2 }
            END { if (!seen) a = f; printf "%d %d\n", t / 1024, (t - a) / 1024 }' /proc/meminfo)
    mem_total=$1 mem_usage=$2
    # Block-device file systems only, each device once (it may be mounted twice).
    # shellcheck disable=SC2046
    set -- $(df -P -m 2>/dev/null | awk 'NR > 1 && $1 ~ /^\/dev\// && !seen[$1]++ { t += $2; u += $3 }
            END { printf "%.0f %.0f\n", t, u }')
    hdd_total=${1:-0} hdd_usage=${2:-0}
    read_net
}

# Rates since the previous sample ($prev_*); the first report's CPU figure comes from a
# 1 s window and its network rates are 0.
rates() {
    if [ -z "$prev_time" ]; then
        read_cpu
        prev_all=$cpu_all prev_busy=$cpu_busy
        sleep 1
    fi
    read_cpu
    sample
    all=$((cpu_all - prev_all))
    cpu_usage=0
    [ "$all" -gt 0 ] && cpu_usage=$((100 * (cpu_busy - prev_busy) / all))
    network_u=0 network_d=0
    elapsed=$((on_update - ${prev_time:-$on_update}))
    if [ "$elapsed" -gt 0 ] && [ "$net_tx" -ge "$prev_tx" ] && [ "$net_rx" -ge "$prev_rx" ]; then
        network_u=$(((net_tx - prev_tx) / 1024 / elapsed))
        network_d=$(((net_rx - prev_rx) / 1024 / elapsed))
    fi
    prev_time=$on_update prev_all=$cpu_all prev_busy=$cpu_busy prev_tx=$net_tx prev_rx=$net_rx
}

report_json() {
    printf '{"ac_status":"STARTED","on_update":%s,"cpu_total":%s,"cpu_usage":%s,' \
        "$on_update" "$cpu_total" "$cpu_usage"
    printf '"mem_total":%s,"mem_usage":%s,"hdd_total":%s,"hdd_usage":%s,' \
        "$mem_total" "$mem_usage" "$hdd_total" "$hdd_usage"
    printf '"network_u":%s,"network_d":%s,"net_tx_bytes":%s,"net_rx_bytes":%s}\n' \
        "$network_u" "$network_d" "$net_tx" "$net_rx"
}

# POST $1 to REPORT_URL; at most 30 s when `timeout` exists (busybox wget has no timeout
# of its own here). The secret is on the client's command line, which the guest's other
# local users could read in /proc; busybox wget takes headers no other way.
post() {
    if command -v wget > /dev/null 2>&1; then
        set -- wget -q -O /dev/null --header 'Content-Type: application/json' \
            --header "X-Ironidc-Secret: $REPORT_SECRET" --post-data "$1" "$REPORT_URL"
    elif command -v curl > /dev/null 2>&1; then
        set -- curl -fsS -o /dev/null -H 'Content-Type: application/json' \
            -H "X-Ironidc-Secret: $REPORT_SECRET" --data-binary "$1" "$REPORT_URL"
    else
        echo "ironidc-report: neither wget nor curl is installed" >&2
        return 127
    fi
    if command -v timeout > /dev/null 2>&1; then
        set -- timeout 30 "$@"
    fi
    "$@"
}

announced=
report() {
    rates
    post "$(report_json)" || return
    if [ -z "$announced" ]; then
        announced=1
        # On a line of its own, even after a prompt of the console's shell.
        { printf '\nIRONIDC-REPORT ok\n' > "$CONSOLE"; } 2> /dev/null
    fi
    return 0
}

# Failed reports are tried again at the next interval; the loop never ends by itself.
loop() {
    while :; do
        report || echo "ironidc-report: report to $REPORT_URL failed; retrying in ${REPORT_INTERVAL}s" >&2
        sleep "$REPORT_INTERVAL"
    done
}

case "$1" in
    --once)
        load_config
        report
        ;;
    --daemon)
        load_config
        if [ -s "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2> /dev/null; then
            echo "ironidc-report: already running (pid $(cat "$PIDFILE"))" >&2
            exit 0
        fi
        # Immune to the hangup of a terminal it was started from.
        (trap '' HUP && loop) < /dev/null > /dev/null 2>&1 &
        echo "$!" > "$PIDFILE" || die "cannot write $PIDFILE"
        ;;
    *)
        echo "usage: ironidc-report --daemon | --once" >&2
        exit 2
        ;;
esac
