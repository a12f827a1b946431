#!/usr/bin/env bash
# Runs ferry's whole test suite. Installs, on Debian, the real tools the tests use
# (sshfs + socat for a FUSE share that raises no file events, inotify-tools, vsftpd and
# pure-ftpd + openssl for the FTP tests, lftp for the FTP benchmark, systemd-analyze and
# the shellcheck linter for the service files, cargo-deb for the package), so a fresh
# machine with only the Rust toolchain passes. Every test talks to 127.0.0.1 only.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v sshfs >/dev/null || missing+=(sshfs)
command -v socat >/dev/null || missing+=(socat)
command -v inotifywait >/dev/null || missing+=(inotify-tools)
[ -x /usr/lib/openssh/sftp-server ] || missing+=(openssh-sftp-server)
[ -x /usr/sbin/vsftpd ] || missing+=(vsftpd)
command -v openssl >/dev/null || missing+=(openssl)
command -v lftp >/dev/null || missing+=(lftp)
# The service tests: `systemd-analyze verify` on install/ferry.service, shellcheck on
# install/install.sh.
command -v systemd-analyze >/dev/null || missing+=(systemd)
command -v shellcheck >/dev/null || missing+=(shellcheck)
# The web console in a real browser (tests/browser.rs): headless Chromium via chromedriver.
[ -x /usr/bin/chromium ] || missing+=(chromium)
[ -x /usr/bin/chromedriver ] || missing+=(chromium-driver)
# The metrics tests: a real Prometheus scrapes `ferry run --http`; promtool checks
# install/ferry-alerts.yml.
{ [ -x /usr/bin/prometheus ] && [ -x /usr/bin/promtool ]; } || missing+=(prometheus)
# The libraries the unpacked pure-ftpd (below) links against.
for lib in libsodium23 libssl3 libcap2 libpam0g libcrypt1; do
  dpkg -s "$lib" >/dev/null 2>&1 || missing+=("$lib")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "test.sh: installing ${missing[*]}" >&2
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -q >/dev/null
  $SUDO apt-get install -y -q "${missing[@]}" >/dev/null
fi

# pure-ftpd (a second FTP server, with MLSD) conflicts with vsftpd as a Debian package:
# unpack it beside, without installing it.
PUREFTPD_DIR=/opt/ferry-pure-ftpd
if [ ! -x "$PUREFTPD_DIR/usr/sbin/pure-ftpd" ] && [ ! -x /usr/sbin/pure-ftpd ]; then
  echo "test.sh: unpacking pure-ftpd into $PUREFTPD_DIR" >&2
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  tmp=$(mktemp -d)
  (cd "$tmp" && apt-get download -q pure-ftpd >/dev/null 2>&1 || { $SUDO apt-get update -q >/dev/null && apt-get download -q pure-ftpd >/dev/null; })
  $SUDO dpkg -x "$tmp"/pure-ftpd_*.deb "$PUREFTPD_DIR"
  rm -rf "$tmp"
fi

# The package test (tests/package.rs) builds the .deb with cargo-deb from crates.io
# (pinned: a newer major may refuse the debug profile the test packs; about 2 minutes to
# build the first time).
CARGO_DEB_VERSION=3.8.0
if [ "$(cargo deb --version 2>/dev/null || true)" != "cargo-deb $CARGO_DEB_VERSION" ]; then
  echo "test.sh: installing cargo-deb $CARGO_DEB_VERSION" >&2
  cargo install cargo-deb --locked --version "$CARGO_DEB_VERSION" >/dev/null
fi

# Mail tests run real dovecot + postfix (installed here when missing; each test starts its
# own instances on free loopback ports).
bash scripts/mail-servers.sh install

# Database tests run real PostgreSQL and MariaDB (installed here when missing; each test
# binary starts its own instances in a temporary folder on free loopback ports).
bash scripts/db-servers.sh install

# HTTP output tests (tests/http_output.rs) run a REST endpoint on Python's http.server and
# a SOAP service built with spyne (from PyPI, with lxml); the WebDAV tests (tests/webdav.rs)
# run wsgidav under cheroot (PyPI, pinned). All in a venv made here. The REST source tests
# (tests/rest_source.rs) run their service on the same Python (standard library only).
HTTP_VENV=/opt/ferry-http-venv
if ! "$HTTP_VENV/bin/python" -c "import spyne, lxml, wsgidav, cheroot" >/dev/null 2>&1; then
  echo "test.sh: installing spyne, lxml, wsgidav and cheroot into $HTTP_VENV" >&2
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  python3 -m venv "$HTTP_VENV" 2>/dev/null || {
    $SUDO apt-get install -y -q python3-venv >/dev/null && $SUDO python3 -m venv "$HTTP_VENV"; }
  $SUDO "$HTTP_VENV/bin/pip" install -q spyne lxml "wsgidav==4.4.0" cheroot
fi

# The Windows build type-checks and lints clean (`cargo clippy --target
# x86_64-pc-windows-gnu`; installs gcc-mingw-w64-x86-64 and the rustup target when
# missing, says so and goes on when rustup cannot download it). The whole run of ferry.exe
# under wine (bash scripts/windows.sh) is too slow for CI from a cold target folder: see
# BENCHMARKS.md, "Windows build under wine".
bash scripts/windows.sh check

# Tests that need those tools fail, rather than skip, when they are missing.
export FERRY_REQUIRE_TOOLS=1
exec cargo test --locked --all-targets "$@"
