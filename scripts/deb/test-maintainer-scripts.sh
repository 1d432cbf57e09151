#!/usr/bin/env bash
# Runs the .deb's postinst/postrm against stub commands (getent, groupadd,
# useradd, usermod, chown, chmod, systemctl, udevadm, rm) and checks what
# they would do to a system, without touching this one:
#   fresh Debian: groups gpio and i2c created, then user pinshadow in them;
#   Raspberry Pi OS (groups exist) / upgrade (user exists): no groupadd,
#   the user is (re)added to gpio,i2c;
#   purge removes /var/lib/pinshadow; remove keeps it.
set -euo pipefail
D=$(cd "$(dirname "$0")" && pwd)
S=$(mktemp -d); trap 'rm -rf "$S"' EXIT
for c in groupadd useradd usermod chown chmod systemctl udevadm rm rmdir; do
  printf '#!/bin/sh\necho "%s $*" >> "$STUB_LOG"\n' "$c" > "$S/$c"
done
# getent DB NAME: succeeds when "DB:NAME" is in $STUB_EXISTING
printf '#!/bin/sh\ncase " $STUB_EXISTING " in *" $1:$2 "*) echo "$2:x:1:";; *) exit 2;; esac\n' > "$S/getent"
chmod +x "$S"/*
run() { # existing-entries script args...
  export STUB_EXISTING=$1 STUB_LOG=$S/log; shift
  : > "$STUB_LOG"
  PATH="$S:/usr/bin:/bin" sh "$D/$1" "${@:2}"
  cat "$STUB_LOG"
}
fail() { echo "maintainer scripts: FAILED: $*"; exit 1; }
has() { grep -qx -- "$2" <<<"$1" || fail "$3: expected '$2' in:
$1"; }
hasnt() { ! grep -q -- "$2" <<<"$1" || fail "$3: unexpected '$2' in:
$1"; }

out=$(run "" postinst configure "")
has "$out" "groupadd --system gpio" fresh
has "$out" "groupadd --system i2c" fresh
has "$out" "groupadd --system pinshadow" fresh
has "$out" "useradd --system --gid pinshadow --groups gpio,i2c --no-create-home --home-dir /var/lib/pinshadow --shell /usr/sbin/nologin --comment pinshadow device agent pinshadow" fresh
has "$out" "chown root:pinshadow /etc/pinshadow /etc/pinshadow/agent.yaml" fresh
has "$out" "chmod 0640 /etc/pinshadow/agent.yaml" fresh

out=$(run "group:gpio group:i2c" postinst configure "")
hasnt "$out" "groupadd --system gpio" "Pi OS"
hasnt "$out" "groupadd --system i2c" "Pi OS"
has "$out" "groupadd --system pinshadow" "Pi OS"

out=$(run "group:gpio group:i2c group:pinshadow passwd:pinshadow" postinst configure 1.0)
hasnt "$out" "groupadd" upgrade
hasnt "$out" "useradd" upgrade
has "$out" "usermod -a -G gpio,i2c pinshadow" upgrade

out=$(run "" postrm purge)
has "$out" "rm -rf /var/lib/pinshadow" purge
out=$(run "" postrm remove)
hasnt "$out" "rm -rf" remove
out=$(run "" postinst abort-upgrade)
hasnt "$out" "useradd" abort-upgrade
echo "maintainer scripts: ok (fresh, Pi OS, upgrade, purge, remove)"
