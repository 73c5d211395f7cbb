#!/bin/sh
# /usr/sbin/chpasswd of the ironidc demo guest: busybox-static has no chpasswd applet,
# and qemu-ga's guest-set-user-password runs `chpasswd` (or `chpasswd -e` for a hash it
# was given) with `user:password` lines on stdin. Each user's /etc/shadow entry gets the
# crypt hash (SHA-512 for a plain password) and today as its last change.
SHADOW=/etc/shadow

encrypted=
case "$1" in
    -e | --encrypted) encrypted=1 ;;
    '') ;;
    *) echo "usage: chpasswd [-e] < user:password lines" >&2; exit 2 ;;
esac

umask 077
status=0
while IFS= read -r line || [ -n "$line" ]; do
    user=${line%%:*}
    password=${line#*:}
    case "$user" in
        '' | *[!A-Za-z0-9._-]*) echo "chpasswd: invalid user name" >&2; status=1; continue ;;
    esac
    if [ -n "$encrypted" ]; then
        hash=$password
    else
        hash=$(printf '%s' "$password" | mkpasswd -m sha512 -P 0) || { status=1; continue; }
    fi
    # A hash is one field of a colon-separated line: no colon, no line break.
    case "$hash" in
        '' | *:* | *'
'*) echo "chpasswd: invalid password hash for $user" >&2; status=1; continue ;;
    esac
    # ENVIRON rather than -v: awk would interpret backslashes in -v values.
    if USER_NAME=$user HASH=$hash DAYS=$(($(date +%s) / 86400)) awk -F: -v OFS=: '
        $1 == ENVIRON["USER_NAME"] { $2 = ENVIRON["HASH"]; $3 = ENVIRON["DAYS"]; found = 1 }
        { print }
        END { exit found ? 0 : 1 }' "$SHADOW" > "$SHADOW.new"; then
        chmod 600 "$SHADOW.new" && mv "$SHADOW.new" "$SHADOW" || status=1
    else
        rm -f "$SHADOW.new"
        echo "chpasswd: no user $user in $SHADOW" >&2
        status=1
    fi
done
exit "$status"
