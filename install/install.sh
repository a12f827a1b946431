#!/usr/bin/env bash
# Installs ferry as a systemd service, or upgrades an installed one (see the README,
# "Install as a service on Linux"). Safe to run again: it creates only what is missing,
# replaces the binary and the unit, and never touches the jobs or the journal
# (/var/lib/ferry/jobs, /var/lib/ferry/var/state); before an upgrade it backs the journal
# up to /var/lib/ferry/var/backup.
#
# Usage: sudo install/install.sh [BINARY]      (default: target/release/ferry)
#
# Environment:
#   PREFIX=/usr/local   the binary goes to $PREFIX/bin/ferry
#   DESTDIR=DIR         stage every file below DIR instead (no user, no systemctl): for
#                       packaging and tests
#   FERRY_NO_START=1    install and enable, but do not start or restart the service
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
src=${1:-target/release/ferry}
prefix=${PREFIX:-/usr/local}
dest=${DESTDIR:-}
user=ferry
home=/var/lib/ferry
bin="$prefix/bin/ferry"
unit=/etc/systemd/system/ferry.service

say() { printf 'install.sh: %s\n' "$*"; }
die() { printf 'install.sh: error: %s\n' "$*" >&2; exit 1; }

[ -x "$src" ] || die "no ferry binary at $src (build it with: cargo build --release), or give its path"
version=$("$src" --version) || die "$src does not run"
if [ -z "$dest" ]; then
  [ "$(id -u)" -eq 0 ] || die "run as root (sudo), or set DESTDIR to stage the files"
  command -v systemctl >/dev/null || die "systemctl not found: this script installs a systemd service"
fi

# The service's own user, without a login or a home of its own (its deployment is its home).
if [ -z "$dest" ] && ! getent passwd "$user" >/dev/null; then
  say "creating the system user $user"
  useradd --system --user-group --home-dir "$home" --no-create-home \
    --shell /usr/sbin/nologin --comment "ferry file integration engine" "$user"
fi
owner=()
[ -n "$dest" ] || owner=(-o "$user" -g "$user")

# The deployment: jobs/ for the job files, var/ for the journal and archives. Existing
# folders keep their contents.
for d in "$home" "$home/jobs" "$home/var" "$home/var/backup" /var/log/ferry; do
  install -d "${owner[@]}" -m 0750 "$dest$d"
done

# Upgrade: a consistent copy of the journal first (the old binary makes it, safe while the
# service runs).
if [ -z "$dest" ] && [ -s "$home/var/state/journal.sqlite" ] && [ -x "$bin" ]; then
  say "backing up the journal to $home/var/backup/"
  runuser -u "$user" -- "$bin" --state "$home/var/state" journal backup "$home/var/backup/" \
    || die "the journal backup failed; nothing was changed"
fi

# The binary, replaced atomically (a running ferry keeps the old file until it restarts).
install -d -m 0755 "$dest$prefix/bin"
install -m 0755 "$src" "$dest$bin.new"
mv -f "$dest$bin.new" "$dest$bin"
say "installed $bin: $version"

# The unit, pointed at this binary (the file names the Debian package's /usr/bin/ferry).
install -d -m 0755 "$dest$(dirname "$unit")"
sed "s#^ExecStart=/usr/bin/ferry #ExecStart=$bin #" "$here/ferry.service" >"$dest$unit.new"
chmod 0644 "$dest$unit.new"
mv -f "$dest$unit.new" "$dest$unit"
say "installed $unit"

if [ -n "$dest" ]; then
  say "staged below $dest; not enabling anything"
  exit 0
fi

if compgen -G "$home/jobs/*.toml" >/dev/null; then
  runuser -u "$user" -- sh -c "cd '$home' && '$bin' check" \
    || say "warning: some job files have errors (the valid jobs run; see above)"
else
  say "no job files yet: put them in $home/jobs/ (ferry picks them up without a restart)"
fi

systemctl daemon-reload
systemctl enable ferry.service
if [ "${FERRY_NO_START:-}" = 1 ]; then
  say "enabled; start it with: systemctl start ferry"
elif systemctl is-active --quiet ferry.service; then
  say "restarting ferry (upgrade)"
  systemctl restart ferry.service
else
  systemctl start ferry.service
fi
say "done. Logs: journalctl -u ferry -f    Reload jobs: systemctl reload ferry"
