#!/usr/bin/env bash
# The Windows build, built and run (issue 13).
#
#   bash scripts/windows.sh          build ferry.exe, run it under wine over the example
#                                    jobs, compare with the Linux build (the whole check)
#   bash scripts/windows.sh check    only `cargo check` and `cargo clippy` for the Windows
#                                    target (what CI runs, from scripts/test.sh)
#
# The whole check: installs what it needs when missing (Debian's wine64 and
# gcc-mingw-w64-x86-64, rustup's x86_64-pc-windows-gnu target), builds the stand-in
# bcryptprimitives.dll Wine 8 lacks (scripts/wine/processprng.c), makes a throw-away
# Wine prefix below /tmp, builds ferry.exe (debug) and the Linux ferry, then in two fresh
# copies of the example deployment (jobs/ and samples/, as the README's first command
# runs them) runs under each build, with one worker (`{seq}` numbers follow the order
# files are taken):
#
#   ferry check
#   ferry test JOB FILE          for every job and every file in its sample folder
#   ferry run --once --workers 1
#   (a second pass: `orders` switched to archive, `invoices` to delete, a changed, a
#   new and a broken sample) ferry run --once --workers 1
#   ferry history, ferry status
#
# and compares: exit codes and standard output of check, test, history and status, and
# the two deployments' trees byte for byte, names and contents (var/out, var/archive,
# var/error, samples/ with the .ferry.lock files; not var/state, ferry's journal). Text
# written for people (printed output, error reports) is equal where, times masked, the
# two differ only by the deployment's root and `\` for `/` in the same place. Any
# difference fails with a diff. No display needed (wine runs headless), nothing written
# outside target/ and /tmp (never ~/.wine). FERRY_WINE_KEEP=1 keeps the work folder
# (both deployments, what each command printed) for a look.
#
# If rustup cannot download the Windows target (a CI machine that reaches only package
# registries), it prints one line saying the Windows step was skipped and exits 0; any
# other failure exits non-zero.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
TARGET=x86_64-pc-windows-gnu
MODE=${1:-run}
export CARGO_INCREMENTAL=${CARGO_INCREMENTAL:-0}
say() { echo "windows.sh: $*" >&2; }

case "$MODE" in
  run | check) ;;
  *)
    say "unknown mode '$MODE' (use: run, check)"
    exit 2
    ;;
esac

# --- What it needs ---------------------------------------------------------------
wine_bin() {
  local w
  for w in /usr/lib/wine/wine64 "$(command -v wine64 || true)" "$(command -v wine || true)"; do
    [ -n "$w" ] && [ -x "$w" ] && { echo "$w"; return 0; }
  done
  return 1
}
missing=()
command -v x86_64-w64-mingw32-gcc >/dev/null || missing+=(gcc-mingw-w64-x86-64)
if [ "$MODE" = run ]; then
  wine_bin >/dev/null || missing+=(wine64)
fi
if [ ${#missing[@]} -gt 0 ]; then
  say "installing ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -q >/dev/null
  # No recommends: wine64 alone runs 64-bit programs; the 32-bit half and fonts are
  # not needed.
  $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! rustc --print target-libdir --target "$TARGET" 2>/dev/null | xargs -r test -d; then
  if ! command -v rustup >/dev/null; then
    say "the Rust standard library for $TARGET is missing and there is no rustup to add it"
    exit 1
  fi
  if ! out=$(rustup target add "$TARGET" 2>&1); then
    if grep -qiE 'download|network|request|resolv|connect|timed out|unreachable' <<<"$out"; then
      echo "windows.sh: SKIPPED the Windows step ($MODE): rustup cannot download the $TARGET target here ($(grep -iE 'error' <<<"$out" | head -n1 | tr -s ' '))"
      exit 0
    fi
    printf '%s\n' "$out" >&2
    say "rustup target add $TARGET failed"
    exit 1
  fi
fi

if [ "$MODE" = check ]; then
  # Type-checks and lints the code that builds on Windows (the tests are Unix-only).
  cargo clippy --locked --target "$TARGET" --bins --lib -- -D warnings
  exit 0
fi

# --- The stand-in DLL and the Wine prefix ------------------------------------------
WINE=$(wine_bin)
WINESERVER=$(dirname "$WINE")/wineserver
[ -x "$WINESERVER" ] || WINESERVER=$(command -v wineserver)
WORK=$(mktemp -d /tmp/ferry-windows.XXXXXX)
export WINEPREFIX=$WORK/prefix
export WINEDEBUG=-all
# No Mono / Gecko install prompts; Wine's own bcryptprimitives (if a later Wine has one)
# loses against the stand-in only when it is missing (native, then builtin).
export WINEDLLOVERRIDES="mscoree,mshtml=;bcryptprimitives=n,b"
export WINEARCH=win64
# The same settings in both runs: none of ferry's environment variables.
unset FERRY_JOBS FERRY_STATE FERRY_LOG FERRY_LOG_FILE RUST_LOG
export TZ=${TZ:-UTC}
cleanup() {
  "$WINESERVER" -k >/dev/null 2>&1 || true
  if [ "${FERRY_WINE_KEEP:-}" = 1 ]; then
    rm -rf "$WINEPREFIX"
    say "kept $WORK"
  else
    rm -rf "$WORK"
  fi
}
trap cleanup EXIT

started=$(date +%s)
mkdir -p target/wine
x86_64-w64-mingw32-gcc -shared -O2 -Wl,--no-insert-timestamp \
  -o target/wine/bcryptprimitives.dll scripts/wine/processprng.c -ladvapi32
say "creating the Wine prefix $WINEPREFIX"
"$WINE" wineboot --init >"$WORK/wineboot.log" 2>&1 || {
  cat "$WORK/wineboot.log" >&2
  say "wineboot failed"
  exit 1
}
"$WINESERVER" -w
cp target/wine/bcryptprimitives.dll "$WINEPREFIX/drive_c/windows/system32/"

# --- The two builds ------------------------------------------------------------------
say "building ferry.exe ($TARGET, debug) and the Linux ferry"
cargo build --locked --target "$TARGET" --bin ferry
cargo build --locked --bin ferry
EXE=$ROOT/target/$TARGET/debug/ferry.exe
LINUX=$ROOT/target/debug/ferry
"$WINE" "$EXE" --version >/dev/null 2>&1 || {
  say "ferry.exe does not start under wine ($("$WINE" --version 2>/dev/null)); is the stand-in bcryptprimitives.dll in $WINEPREFIX/drive_c/windows/system32?"
  exit 1
}
built=$(date +%s)

# --- Running the example deployment under one build ----------------------------------
# deploy NAME FERRY...: a fresh copy of jobs/ and samples/ in $WORK/NAME, then check,
# test (every job over every file of its sample folder) and run --once; then a second
# pass where originals are archived, deleted, changed and one fails, and run --once
# again; then history and status. What each printed goes to $WORK/NAME.report/.
deploy() {
  local name=$1
  shift
  local dir=$WORK/$name rep=$WORK/$name.report
  mkdir -p "$dir" "$rep/test"
  cp -a jobs samples "$dir/"
  (
    cd "$dir"
    local rc=0
    "$@" check >"$rep/check.out" 2>"$rep/check.err" || rc=$?
    echo "exit $rc" >>"$rep/check.out"
    for job_file in jobs/*.toml; do
      local job folder
      job=$(basename "$job_file" .toml)
      # The job's source folder: the first `folder = "samples/..."` (its [source]).
      folder=$(sed -n 's/^folder *= *"\(samples\/[^"]*\)".*/\1/p' "$job_file" | head -n1)
      if [ -z "$folder" ] || [ ! -d "$folder" ]; then
        continue
      fi
      while IFS= read -r file; do
        local out
        out="$rep/test/$job--$(tr '/' '_' <<<"$file").out"
        rc=0
        "$@" test "$job" "$file" >"$out" 2>"$out.err" || rc=$?
        echo "exit $rc" >>"$out"
      done < <(find "$folder" -type f ! -name .ferry.lock | LC_ALL=C sort)
    done
    rc=0
    "$@" run --once --workers 1 >"$rep/run.out" 2>"$rep/run.err" || rc=$?
    echo "exit $rc" >>"$rep/run.exit"
    find var/out -type f | wc -l >"$rep/first-pass-outputs"

    # The second pass: `orders` archives (its kept files are taken again, one of them
    # changed: `exists = "unique"` names in the backup), `invoices` deletes (a new
    # invoice), and a broken JSON Lines file goes to the error folder with its report.
    sed -i 's/^success = "keep"/success = "archive"/' jobs/orders.toml
    sed -i 's/^success = "keep"/success = "delete"/' jobs/invoices.toml
    sed 's/1001/1003/g' samples/invoices/INV-2026-1001.xml >samples/invoices/INV-2026-1003.xml
    printf 'ORD;4711;changed\n' >>samples/orders/orders_20261102.csv
    printf '{"id": 7, "status":\n' >samples/webshop/broken.jsonl
    rc=0
    "$@" run --once --workers 1 >"$rep/run2.out" 2>"$rep/run2.err" || rc=$?
    echo "exit $rc" >>"$rep/run.exit"
    rc=0
    "$@" history >"$rep/history.out" 2>"$rep/history.err" || rc=$?
    echo "exit $rc" >>"$rep/history.out"
    rc=0
    "$@" status >"$rep/status.out" 2>"$rep/status.err" || rc=$?
    echo "exit $rc" >>"$rep/status.out"
  )
}

say "running the example jobs under wine (ferry.exe)"
deploy windows "$WINE" "$EXE"
"$WINESERVER" -w
say "running the example jobs with the Linux build"
deploy linux "$LINUX"
ran=$(date +%s)

# --- HOOK: the Windows service (issue 13, `ferry service`) ---------------------------
# Wine has a service control manager (services.exe, sc.exe). Once ferry.exe has
# `ferry service install | start | stop | uninstall`, this installs the service over a
# third copy of the deployment, starts it, waits for the first pass's outputs, stops and
# uninstalls it. (`wineserver -p` keeps Wine's services.exe alive between commands.)
service_round() {
  local dir=$WORK/service want got
  mkdir -p "$dir"
  cp -a jobs samples "$dir/"
  # This round is about the service's life, not schedules: scheduled jobs take files as
  # they come here, so that every output of the first pass is made. (`ferry trigger`
  # against the service under Wine 8 finds no running daemon: still to be looked into.)
  sed -i -E '/^[[:space:]]*(schedule|every|timezone)[[:space:]]*=/d' "$dir"/jobs/*.toml
  local wdir="Z:${dir//\//\\}"
  want=$(cat "$WORK/windows.report/first-pass-outputs")
  (
    cd "$dir"
    "$WINESERVER" -p
    "$WINE" "$EXE" --jobs "$wdir\\jobs" service install --manual --workers 1 >"$WORK/service.out" 2>&1 || exit 1
    "$WINE" "$EXE" service start || exit 1
    for _ in $(seq 120); do
      got=$(find var/out -type f 2>/dev/null | wc -l)
      [ "$got" -ge "$want" ] && break
      sleep 1
    done
    "$WINE" "$EXE" service stop || exit 1
    "$WINE" "$EXE" service uninstall || exit 1
    if "$WINE" sc query ferry >/dev/null 2>&1; then
      say "the service is still registered after uninstall"
      exit 1
    fi
    [ "$got" -ge "$want" ] || {
      say "the service delivered $got of $want files in 2 minutes"
      exit 1
    }
  )
}
# Under Wine 8 the round is not reliable yet (seen 2026-12-03: `service stop` sometimes
# times out with the service still Running; `ferry trigger` finds no running daemon), so
# it runs only when asked: FERRY_WINE_SERVICE=1 bash scripts/windows.sh.
if [ "${FERRY_WINE_SERVICE:-0}" = 1 ]; then
  say "installing, starting, stopping and uninstalling the Windows service under wine"
  service_round || {
    say "FAILED: the Windows service round under wine"
    exit 1
  }
else
  say "the Windows service round is left out (FERRY_WINE_SERVICE=1 runs it)"
fi

# --- Comparing ------------------------------------------------------------------------
failed=0
# Text ferry writes for people (what commands print, error reports): a Windows line
# equals the Linux line when, with times masked in both, it differs only by the
# deployment's root and by `\` where Linux has `/`; anything else is a difference.
LROOT=$WORK/linux
WROOT="Z:${WORK//\//\\}\\windows"
normalize() { # LINUX_FILE WINDOWS_FILE > the Windows file, equal lines as Linux has them
  perl -e '
    my ($lf, $wf, $lroot, $wroot) = @ARGV;
    open my $l, "<", $lf or die "$lf: $!"; my @l = <$l>;
    open my $w, "<", $wf or die "$wf: $!"; my @w = <$w>;
    my $time = qr/\d{4}-\d\d-\d\d[ T]\d\d:\d\d(?::\d\d(?:\.\d+)?)?(?: ?[+-]\d\d:?\d\d|Z)?/;
    for my $i (0 .. $#w) {
      my ($a, $b) = ($l[$i] // "", $w[$i]);
      (my $an = $a) =~ s/\Q$lroot\E/<root>/g;
      (my $bn = $b) =~ s/\Q$wroot\E/<root>/g;
      s/$time/<time>/g for $an, $bn;
      # Numbers that follow the order files were seen in (file ids, `{seq}`), and the
      # stamp in a database source run\x27s staged name: equal when only they differ. A
      # database output\x27s spool names the database by its path (longer under Z:\\);
      # its rows are compared in the database itself (below).
      s/\d{8}T\d{9}Z/<stamp>/g for $an, $bn;
      s/(#|\(file |approve )\d+/${1}N/g for $an, $bn;
      s/\.load \(\d+ bytes, sha256 [0-9a-f]+\)/.load (<spool>)/g for $an, $bn;
      my $same = length($an) == length($bn);
      for (my $k = 0; $same && $k < length $an; $k++) {
        my ($x, $y) = (substr($an, $k, 1), substr($bn, $k, 1));
        $same = 0 unless $x eq $y || ($x eq "/" && $y eq "\\");
      }
      print $same ? $a : $b;
    }' "$1" "$2" "$LROOT" "$WROOT"
}
# `ferry history`: its entries are numbered in the order files were seen, and jobs look
# at their folders concurrently even with one worker: compare the entries unnumbered,
# sorted by what they say (root, separators and times made equal for the sort only).
by_file() { # HISTORY_FILE ROOT > its entries, unnumbered, sorted
  perl -e '
    my ($f, $root) = @ARGV;
    open my $h, "<", $f or die "$f: $!";
    my (@blocks, $tail);
    while (<$h>) {
      if (/^#\d+ /) { s/^#\d+ //; push @blocks, $_ } elsif (@blocks && /^ /) { $blocks[-1] .= $_ }
      else { $tail .= $_ }
    }
    my %key = map { my $k = $_; $k =~ s/\Q$root\E//g; $k =~ tr{\\}{/}; $k =~ s/\d\d:\d\d:\d\d\.\d+//g; $k =~ s/\d{8}T\d{9}Z//g; $k =~ s/(#|\(file |approve )\d+//g; ($_ => $k) } @blocks;
    print sort { $key{$a} cmp $key{$b} } @blocks;
    print $tail // "";' "$1" "$2"
}
for n in linux windows; do
  root=$LROOT
  [ "$n" = windows ] && root=$WROOT
  mv "$WORK/$n.report/history.out" "$WORK/$n.report/history.seen-order"
  by_file "$WORK/$n.report/history.seen-order" "$root" >"$WORK/$n.report/history.out"
done
same_text() { # LINUX_FILE WINDOWS_FILE LABEL
  diff -u --label "linux/$3" --label "windows/$3" "$1" <(normalize "$1" "$2")
}
for lf in "$WORK"/linux.report/*.out "$WORK"/linux.report/test/*.out; do
  rel=${lf#"$WORK/linux.report/"}
  case "$rel" in run.out | run2.out) continue ;; esac # logs: times, for reading only
  wf=$WORK/windows.report/$rel
  if [ ! -f "$wf" ]; then
    say "DIFFERENT: $rel exists for Linux only"
    failed=1
  elif ! same_text "$lf" "$wf" "$rel"; then
    failed=1
  fi
done
(cd "$WORK/windows.report" && find . -name '*.out' | LC_ALL=C sort) >"$WORK/w.list"
(cd "$WORK/linux.report" && find . -name '*.out' | LC_ALL=C sort) >"$WORK/l.list"
diff -u --label linux-reports --label windows-reports "$WORK/l.list" "$WORK/w.list" || failed=1
# The exit codes of both `run --once`.
diff -u --label linux/run-exit-codes --label windows/run-exit-codes \
  "$WORK/linux.report/run.exit" "$WORK/windows.report/run.exit" || failed=1

# The trees: every name (with its type) and every byte, ferry's journal left out; error
# reports (*.error.txt) as text, like the printed output.
tree() {
  (cd "$1" && find . -path ./var/state -prune -o -printf '%y %p\n' | LC_ALL=C sort)
}
tree "$WORK/linux" >"$WORK/linux.tree"
tree "$WORK/windows" >"$WORK/windows.tree"
# A database source's staged file is named by the time of its query.
stamp() { sed -E 's/[0-9]{8}T[0-9]{9}Z/<stamp>/g' "$1"; }
if ! diff -u --label linux/tree --label windows/tree <(stamp "$WORK/linux.tree") <(stamp "$WORK/windows.tree"); then
  failed=1
fi
# A database an example loads, as its tables' rows (its bytes differ per run: page layout,
# and ferry_loads holds times and the journal's random id).
rows() {
  python3 -c '
import sqlite3, sys
c = sqlite3.connect(sys.argv[1])
for (t,) in c.execute("SELECT name FROM sqlite_master WHERE type = \x27table\x27 AND name <> \x27ferry_loads\x27 ORDER BY name"):
    for r in c.execute("SELECT * FROM \"%s\" ORDER BY 1" % t):
        print(t, repr(r))' "$1"
}
while read -r type path; do
  [ "$type" = f ] || continue
  lf=$WORK/linux/$path wf=$WORK/windows/$path
  if [[ "$path" == *.error.txt ]]; then
    same_text "$lf" "$wf" "$path" || failed=1
  elif [[ "$path" == *.sqlite ]]; then
    if ! diff -u --label "linux/$path" --label "windows/$path" <(rows "$lf") <(rows "$wf"); then
      say "DIFFERENT: the rows of $path"
      failed=1
    fi
  elif ! cmp -s "$lf" "$wf"; then
    say "DIFFERENT: the contents of $path"
    diff -u --label "linux/$path" --label "windows/$path" "$lf" "$wf" | head -n 40 >&2 || true
    failed=1
  fi
done < <(LC_ALL=C comm -12 "$WORK/linux.tree" "$WORK/windows.tree")
delivered=$(grep -c '^f ./var/out/' "$WORK/linux.tree" || true)
tests=$(find "$WORK/linux.report/test" -name '*.out' | wc -l)

if [ "$failed" -ne 0 ]; then
  say "FAILED: ferry.exe under wine differs from the Linux build (above). Logs of both runs:"
  for n in linux windows; do
    echo "--- $n: run --once, then the second pass" >&2
    cat "$WORK/$n.report/run.err" "$WORK/$n.report/run2.err" >&2
  done
  exit 1
fi
say "OK: ferry.exe under $("$WINE" --version) gives the Linux build's results: check, $tests test runs, two run --once ($delivered output files), history and status identical. Prefix and build $((built - started)) s, runs $((ran - built)) s."
