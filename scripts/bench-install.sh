#!/usr/bin/env bash
# Product install benchmark, on this machine, over loopback:
#   1. cold install of a 200 MB / 3000-file pack from the master (mTLS) vs the
#      reference: curl of the same zip from a local HTTP server + unzip;
#   2. update install time and bytes fetched for a 2% update vs cold;
#   3. converged run time with the product installed;
#   4. converged runs of a restored node (its root copied: new inodes).
#
#   scripts/bench-install.sh [FILES=3000] [MEGABYTES=200]
# Needs curl, unzip and python3 (for the reference HTTP server).
set -euo pipefail
files=${1:-3000}
mb=${2:-200}
for tool in curl unzip python3; do
  command -v "$tool" >/dev/null || { echo "bench-install.sh: needs $tool" >&2; exit 1; }
done
cd "$(dirname "$0")/.."
cargo build --release --quiet --bins
bin="$PWD/target/release"
work=$(mktemp -d -t rigger-bench.XXXXXX)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }

echo "==> generating a ${mb} MB / ${files}-file pack and its 2% update"
"$bin/sample-pack" "$work/ga.zip" "$files" "$mb" 0
"$bin/sample-pack" "$work/l1.zip" "$files" "$mb" 1 20
ls -l "$work/ga.zip" "$work/l1.zip" | awk '{ print "    " $5 " bytes  " $9 }'

"$bin/rigger-master" --data-dir "$work/master" --listen 127.0.0.1:0 --site examples/site \
  --modules modules --admin-socket "$work/master.sock" >"$work/master.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do [ -s "$work/master/listen.addr" ] && break; sleep 0.1; done
addr=$(cat "$work/master/listen.addr")
ctl=("$bin/masterctl" --socket "$work/master.sock")

t0=$(now); "${ctl[@]}" product import "$work/ga.zip" >/dev/null; t1=$(now)
echo "master import of the GA pack:            $(elapsed "$t0" "$t1") s"

# Reference: the zip over HTTP from a local server, then unzip.
(cd "$work" && exec python3 -m http.server 0 --bind 127.0.0.1 >"$work/http.log" 2>&1) &
pids+=($!)
port=""
for _ in $(seq 1 100); do
  port=$(sed -n 's/.*port \([0-9]*\).*/\1/p' "$work/http.log" | head -1)
  [ -n "$port" ] && break; sleep 0.1
done
sync; t0=$(now)
curl -s -o "$work/ref.zip" "http://127.0.0.1:$port/ga.zip"
unzip -q "$work/ref.zip" -d "$work/ref"
sync; t1=$(now)
ref=$(elapsed "$t0" "$t1")
echo "reference curl + unzip:                  $ref s"

token=$("${ctl[@]}" token create --role is 2>/dev/null)
fp=$("${ctl[@]}" ca show | sed -n 's/^fingerprint: //p')
agent=("$bin/rigger-agent" --root "$work/node" --master "https://$addr" --certname bench-1 --imds-endpoint off --once --detailed-exitcodes)
sync; t0=$(now)
"${agent[@]}" --token "$token" --ca-fingerprint "$fp" >"$work/cold.out" || [ $? -eq 2 ]
sync; t1=$(now)
cold=$(elapsed "$t0" "$t1")
echo "Rigger cold install (enroll, fetch, materialise, configure): $cold s  ($(awk -v a="$cold" -v b="$ref" 'BEGIN { printf "%.2f", a / b }')x the reference)"
grep -o 'fetched.*' "$work/cold.out" | sed 's/^/    /'

"${ctl[@]}" update import wso2is@5.11.0 "$work/l1.zip" >"$work/update-import.out"
head -2 "$work/update-import.out" | sed "s/^/    /"
t0=$(now)
"${agent[@]}" >"$work/update.out" || [ $? -eq 2 ]
t1=$(now)
echo "Rigger 2% update install:                $(elapsed "$t0" "$t1") s"
grep -o 'fetched.*' "$work/update.out" | sed 's/^/    /'

# Five runs of the agent on ROOT: its own run time, then the whole process.
converged_runs() {
  local root="$1" i t0 t1
  for i in 1 2 3 4 5; do
    t0=$(now)
    "$bin/rigger-agent" --root "$root" --master "https://$addr" --certname bench-1 \
      --imds-endpoint off --once --detailed-exitcodes >"$work/conv.out"
    t1=$(now)
    echo "    run $i: $(grep -o 'in [0-9]* ms' "$work/conv.out"), process $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.0f", (b - a) * 1000 }') ms"
  done
}

echo "converged runs (the agent's own run time, then the whole process):"
converged_runs "$work/node"

# A node restored from a snapshot (or its root copied): the same bytes,
# new inodes. The first run re-hashes what moved and refreshes the stat
# index; the runs after it are converged runs again.
echo "a restored node (its root copied with cp -a: new inodes), converged runs:"
cp -a "$work/node" "$work/restored"
converged_runs "$work/restored"
