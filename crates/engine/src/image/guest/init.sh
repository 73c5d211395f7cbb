#!/bin/busybox sh
# /init of the ironidc demo guest: the kernel runs it as PID 1 from the initramfs.
# It prepares the system (applets, pseudo file systems, hostname, kernel modules), then
# hands PID 1 over to busybox init, which runs /etc/init.d/rcS (services, ready marker)
# and keeps a shell on the serial console (/etc/inittab).

# Applet symlinks (/bin/sh, /sbin/insmod, ...) are made here rather than in the image:
# the applet list is then always the one of the busybox binary we ship.
/bin/busybox --install -s
export PATH=/sbin:/usr/sbin:/bin:/usr/bin

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
mount -t tmpfs -o mode=1777 tmpfs /dev/shm
mount -t tmpfs -o mode=0755 tmpfs /run

# Hostname: `hostname=NAME` on the kernel command line (letters, digits, dots, dashes),
# else the default. A NoCloud seed's local-hostname overrides both (/etc/init.d/rcS).
name=ironidc-demo
for arg in $(cat /proc/cmdline); do
    case "$arg" in
        hostname=*[!A-Za-z0-9.-]*) echo "ironidc: ignoring invalid $arg" > /dev/console ;;
        hostname=?*) name="${arg#hostname=}" ;;
    esac
done
hostname "$name"
echo "$name" > /etc/hostname

# Modules in dependency order, as computed when the image was built (no modules.dep,
# no modprobe: the list is exactly what the image needs).
while read -r module; do
    [ -n "$module" ] || continue
    insmod "/lib/modules/$module.ko" || echo "ironidc: cannot load module $module" > /dev/console
done < /etc/ironidc/modules

exec /bin/busybox init
