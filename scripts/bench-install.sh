#!/usr/bin/env bash
# Product install benchmark, on this machine, over loopback, with the
# workload of a WSO2 node: a 200 MB / 3000-file pack, the module's
# templates and edits, the server run as a supervised service and (as
# root) an EFS-style share bind-mounted and linked. In one run it prints:
#   1. cold install (enroll, fetch, materialise, configure, start) against
#      the reference: curl of the same zip from a local HTTP server + unzip
#      + sync, and their ratio;
#   2. three 2% update levels, one after the other (the third also prunes
#      the oldest release): each one's time against the cold install,
#      bytes fetched against the level's changed content, and the median;
#   3. converged runs: median and p95 of the whole process (at the default
#      log level), and where one more run's time went, phase by phase;
#   4. converged runs of a restored node (its root copied: new inodes);
#   5. the agent's peak RSS (with GNU time).
#
#   scripts/bench-install.sh [--xfs|--ext4] [FILES=3000] [MEGABYTES=200]
#
# --xfs, --ext4 (root only): the node, its share and the reference write
# to a file system made in a loop file for the run (XFS with reflinks, as
# on Amazon Linux; ext4 with its journal, as on Ubuntu).
#
# Measuring: without either, they write to the machine's /tmp. Where that
# is ext4 without a journal (as on this project's CI machines), a new
# inode skips every inode freed in the last minute (six while its table
# block is dirty), searching again from the start of the group for each
# file: whatever ran just before decides what 3000 new files cost, up to
# a third of a cold install. So the reference's files are kept until the
# end (removed before the install, they taxed it and not the reference),
# and figures to compare come from --ext4 or --xfs.
# BIN=<folder> runs the binaries in that folder instead of building them
# (to compare two builds side by side, run after run: this machine's
# speed drifts by a fifth within an hour).
# Needs curl, unzip and python3 (for the reference HTTP server).
set -euo pipefail
fs=""
case "${1:-}" in --xfs|--ext4) fs=${1#--}; shift ;; esac
files=${1:-3000}
mb=${2:-200}
runs=20
for tool in curl unzip python3; do
  command -v "$tool" >/dev/null || { echo "bench-install.sh: needs $tool" >&2; exit 1; }
done
root=false
[ "$(id -u)" -eq 0 ] && root=true
if [ -n "$fs" ] && ! $root; then echo "bench-install.sh: --$fs needs root" >&2; exit 64; fi
cd "$(dirname "$0")/.."
if [ -n "${BIN:-}" ]; then
  bin=$BIN
else
  cargo build --release --quiet --bins
  bin="$PWD/target/release"
fi
work=$(mktemp -d -t rigger-bench.XXXXXX)
chmod 755 "$work"
pids=()
mounts=()
cleanup() {
  local servers=()
  for pidfile in "$work"/*/var/lib/rigger/agent/services/*.pid "$work"/fs/*/var/lib/rigger/agent/services/*.pid; do
    [ -f "$pidfile" ] || continue
    servers+=("$(cut -d' ' -f1 "$pidfile")")
    kill -TERM -- "-${servers[-1]}" 2>/dev/null || true
  done
  # The servers stop gracefully: wait for them (bounded).
  for pid in "${servers[@]}"; do
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  done
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  for m in "$work"/fs/*/mnt/efs "$work"/*/mnt/efs; do
    mountpoint -q "$m" 2>/dev/null && umount "$m"
  done
  for m in "${mounts[@]}"; do
    # The servers may take a moment to let go of their files.
    for _ in $(seq 1 50); do umount "$m" 2>/dev/null && break; sleep 0.1; done
  done
  rm -rf "$work"
}
trap cleanup EXIT

# Bash's own clock: no `date` process inside a measured interval.
now() { echo "$EPOCHREALTIME"; }
# The agent's run phases from its debug log, in ms.
phases() {
  grep 'run phase' "$1" | sed -n 's/.*phase="\{0,1\}\([a-z_]*\)"\{0,1\} micros=\([0-9]*\).*/\1 \2/p' \
    | awk '$2 >= 50 { printf "%s%s %.1f", sep, $1, $2 / 1000; sep = ", " } END { print " ms" }'
}
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
# GNU time's peak RSS (KiB) when it is installed.
timed=()
[ -x /usr/bin/time ] && timed=(/usr/bin/time -f "%M" -o "$work/rss")
peak_rss() { [ -s "$work/rss" ] && echo "$(( $(tail -1 "$work/rss") / 1024 )) MiB" || echo "n/a (no GNU time)"; }

# Where the node and the reference write.
disk="$work"
if [ -n "$fs" ]; then
  truncate -s $(( mb * 6 + 1024 ))M "$work/$fs.img"
  case $fs in
    xfs) mkfs.xfs -q -m reflink=1 "$work/$fs.img" ;;
    ext4) mkfs.ext4 -q -F "$work/$fs.img" ;;
  esac
  mkdir "$work/fs"
  mount -o loop "$work/$fs.img" "$work/fs"
  mounts+=("$work/fs")
  chmod 755 "$work/fs"
  disk="$work/fs"
fi
echo "==> on $(stat -f -c %T "$disk") ($disk)"

echo "==> generating a ${mb} MB / ${files}-file pack and its 2% update"
"$bin/sample-pack" "$work/ga.zip" "$files" "$mb" 0
for level in 1 2 3; do "$bin/sample-pack" "$work/l$level.zip" "$files" "$mb" "$level" 20; done
ls -l "$work/ga.zip" "$work/l1.zip" | awk '{ print "    " $5 " bytes  " $9 }'

# The example site with the server run as a service and, as root, the
# share bind-mounted from the node's /srv/efs-export.
cp -r examples/site "$work/site"
chmod -R go= "$work/site/secrets"
printf '\n[service]\nenabled = true\n' >> "$work/site/roles/is.toml"
if $root; then
  printf '\n[shared_fs]\nenabled = true\ntype = "bind"\nsource = "/srv/efs-export"\nmount_point = "/mnt/efs"\n' >> "$work/site/roles/is.toml"
else
  echo "==> not root: no share, and the server runs as $(id -un)"
  printf 'user = ""\ngroup = ""\n' >> "$work/site/roles/is.toml"
fi

"$bin/rigger-master" --data-dir "$work/master" --listen 127.0.0.1:0 --site "$work/site" \
  --modules modules --admin-socket "$work/master.sock" >"$work/master.log" 2>&1 &
pids+=($!)
master_pid=$!
for _ in $(seq 1 100); do [ -s "$work/master/listen.addr" ] && break; sleep 0.1; done
addr=$(cat "$work/master/listen.addr")
# The master's resident memory (KiB field of /proc status) in MiB.
master_memory() { awk -v k="$1:" '$1 == k { printf "%.0f MiB", $2 / 1024 }' "/proc/$master_pid/status"; }
master_started=$(master_memory VmRSS)
ctl=("$bin/masterctl" --socket "$work/master.sock")

t0=$(now); "${ctl[@]}" product import "$work/ga.zip" >/dev/null; t1=$(now)
echo "master import of the GA pack:            $(elapsed "$t0" "$t1") s"

# The node's private IP, 127.0.0.97, from a fake IMDS on loopback.
"$bin/rigger-fake-imds" 127.0.0.97 i-0bench >"$work/imds.url" 2>"$work/imds.log" &
pids+=($!)
for _ in $(seq 1 50); do [ -s "$work/imds.url" ] && break; sleep 0.1; done
imds=$(cat "$work/imds.url")

# Reference: the zip over HTTP from a local server, then unzip and sync.
(cd "$work" && exec python3 -m http.server 0 --bind 127.0.0.1 >"$work/http.log" 2>&1) &
pids+=($!)
port=""
for _ in $(seq 1 100); do
  port=$(sed -n 's/.*port \([0-9]*\).*/\1/p' "$work/http.log" | head -1)
  [ -n "$port" ] && break; sleep 0.1
done
sync; t0=$(now)
curl -s -o "$disk/ref.zip" "http://127.0.0.1:$port/ga.zip"
unzip -q "$disk/ref.zip" -d "$disk/ref"
sync; t1=$(now)
ref=$(elapsed "$t0" "$t1")
# The reference's files stay until the end: removed now, they would tax
# the install that follows (see "Measuring" above).

node="$disk/node"
if $root; then
  mkdir -p "$disk/efs" "$node/srv"
  ln -s "$disk/efs" "$node/srv/efs-export"
fi
token=$("${ctl[@]}" token create --role is 2>/dev/null)
fp=$("${ctl[@]}" ca show | sed -n 's/^fingerprint: //p')
# One run of the agent on ROOT; `wrap` goes before it (GNU time, for the installs).
wrap=()
agent() {
  local root="$1"; shift
  "${wrap[@]}" "$bin/rigger-agent" --root "$root" --master "https://$addr" --certname bench-1 \
    --imds-endpoint "$imds" --once --detailed-exitcodes "$@"
}
wrap=("${timed[@]}")
sync; t0=$(now)
RIGGER_LOG=debug agent "$node" --token "$token" --ca-fingerprint "$fp" \
  >"$work/cold.out" 2>"$work/cold.err" || [ $? -eq 2 ] || { cat "$work/cold.err" >&2; exit 1; }
sync; t1=$(now)
cold=$(elapsed "$t0" "$t1")
cold_rss=$(peak_rss)
echo "reference curl + unzip + sync:           $ref s"
echo "Rigger cold install (enroll, fetch, materialise, configure, start): $cold s = $(ratio "$cold" "$ref")x the reference"
grep -o 'fetched.*' "$work/cold.out" | sed 's/^/    /'
echo "    phases: $(phases "$work/cold.err")"

# Three update levels in a row: one run is at the mercy of this machine's
# noise, the median of three less so.
updates=()
for level in 1 2 3; do
  "${ctl[@]}" update import wso2is@5.11.0 "$work/l$level.zip" >"$work/update-import.out"
  [ "$level" -eq 1 ] && head -2 "$work/update-import.out" | sed "s/^/    /"
  new_content=$(sed -n 's/.*; \([0-9]*\) bytes of new content stored.*/\1/p' "$work/update-import.out")
  sync; t0=$(now)
  RIGGER_LOG=debug agent "$node" >"$work/update.out" 2>"$work/update.err" || [ $? -eq 2 ] || { cat "$work/update.err" >&2; exit 1; }
  sync; t1=$(now)
  update=$(elapsed "$t0" "$t1")
  updates+=("$update")
  [ "$level" -eq 1 ] && update_rss=$(peak_rss)
  fetched=$(sed -n 's/.*fetched [0-9]* blobs (\([0-9]*\) bytes).*/\1/p' "$work/update.out" | head -1)
  pruned=""
  grep -q "removing an old release" "$work/update.err" && pruned=" (and pruned the oldest release)"
  echo "Rigger 2% update install, level $level:       $update s = $(ratio "$update" "$cold")x the cold install$pruned"
  echo "    phases: $(phases "$work/update.err")"
  echo "    fetched ${fetched:-0} bytes = $(ratio "${fetched:-0}" "${new_content:-1}")x the level's new content ($new_content bytes)"
done
wrap=()
update=$(printf '%s\n' "${updates[@]}" | sort -n | sed -n 2p)
echo "Rigger 2% update install, median of 3:  $update s = $(ratio "$update" "$cold")x the cold install"

# Converged runs: the whole process, $runs times; median and p95.
converged_runs() {
  local root="$1" count="$2" i t0 t1
  : >"$work/times"
  for i in $(seq 1 "$count"); do
    t0=$EPOCHREALTIME
    agent "$root" >"$work/conv.out" 2>"$work/conv.err" \
      || { echo "a converged run changed something:" >&2; cat "$work/conv.out" "$work/conv.err" >&2; exit 1; }
    t1=$EPOCHREALTIME
    awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f\n", (b - a) * 1000 }' >>"$work/times"
  done
  # Timed at the default log level, as an operator runs it; one more run
  # at debug level (not timed: it writes ~80 lines) for the phases.
  RIGGER_LOG=debug agent "$root" >"$work/conv.out" 2>"$work/conv.err" \
    || { echo "a converged run changed something:" >&2; cat "$work/conv.out" >&2; exit 1; }
  sort -n "$work/times" | awk '{ t[NR] = $1 } END {
    p95 = int(NR * 0.95 + 0.999); if (p95 > NR) p95 = NR
    printf "median %.1f ms, p95 %.1f ms, first %.1f ms (%d runs)\n", t[int((NR + 1) / 2)], t[p95], first, NR
  }' first="$(head -1 "$work/times")"
}
echo "converged runs, whole process: $(converged_runs "$node" "$runs")"
echo "    one more run's phases: $(phases "$work/conv.err")"
echo "    its slowest checks: $(sed -n 's/.*slow check resource=\([^ ]*\) micros=\([0-9]*\).*/\1 \2/p' "$work/conv.err" | awk '{ printf "%s%s %.1f", sep, $1, $2 / 1000; sep = ", " } END { print " ms" }')"

# A node restored from a snapshot (or its root copied): the same bytes,
# new inodes. The first run re-hashes what moved and refreshes the stat
# index; the runs after it are converged runs again.
for pidfile in "$node"/var/lib/rigger/agent/services/*.pid; do
  [ -f "$pidfile" ] && kill -TERM -- "-$(cut -d' ' -f1 "$pidfile")" 2>/dev/null || true
done
if $root; then umount "$node/mnt/efs"; fi
cp -a "$node" "$disk/restored"
# Its first run re-hashes the moved files and starts the server again.
t0=$(now)
RIGGER_LOG=warn agent "$disk/restored" >/dev/null 2>&1 || [ $? -eq 2 ]
t1=$(now)
echo "a restored node (cp -a: new inodes): first run $(elapsed "$t0" "$t1") s (re-hash, server start), then $(converged_runs "$disk/restored" 5)"
echo "agent peak RSS: cold install $cold_rss, update $update_rss"
echo "master RSS: started $master_started, now $(master_memory VmRSS), peak $(master_memory VmHWM)"
