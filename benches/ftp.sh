#!/usr/bin/env bash
# FTP benchmarks: ferry vs lftp against a local vsftpd. See benches/ftp.py.
#   bash benches/ftp.sh [upload-small|upload-big|pickup ...]
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked -q
export FERRY_BIN="${CARGO_TARGET_DIR:-target}/release/ferry"
exec python3 benches/ftp.py "$@"
