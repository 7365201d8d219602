#!/usr/bin/env bash
# Rigger demo: a master and an agent on this machine doing the whole job.
#
#   scripts/demo.sh          run until Ctrl-C
#   scripts/demo.sh --exit   stop everything once converged (exit 0), or fail
#
# Builds release binaries, starts a master on 127.0.0.1 in a temporary
# directory with the example site, creates a bootstrap token, starts an
# agent whose --root is another temporary directory (nothing outside it is
# touched), waits until the node has converged and prints `agentctl status`.
set -euo pipefail

exit_after=false
for arg in "$@"; do
  case "$arg" in
    --exit) exit_after=true ;;
    -h|--help) sed -n '2,11p' "$0"; exit 0 ;;
    *) echo "demo.sh: unknown argument $arg (try --help)" >&2; exit 64 ;;
  esac
done

cd "$(dirname "$0")/.."
echo "==> building release binaries"
cargo build --release --quiet --bins
bin="$PWD/target/release"

work=$(mktemp -d -t rigger-demo.XXXXXX)
master_pid=""
agent_pid=""
imds_pid=""
# Stops a process and waits for it (bounded), killing it if it lingers.
stop() {
  local pid="$1"
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  fi
}
cleanup() {
  # The agent first: its supervisor would start a stopped server again.
  [ -n "$agent_pid" ] && stop "$agent_pid"
  # Then the servers it started (their process groups, waited for), the rest.
  for pidfile in "$work"/node/var/lib/rigger/agent/services/*.pid; do
    [ -f "$pidfile" ] || continue
    server=$(cut -d' ' -f1 "$pidfile")
    kill -TERM -- "-$server" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$server" 2>/dev/null || break; sleep 0.1; done
  done
  for pid in $master_pid $imds_pid; do stop "$pid"; done
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The example site, with the server run as a service (the sample pack's
# start script runs a stand-in WSO2 server).
cp -r examples/site "$work/site"
chmod -R go= "$work/site/secrets"
printf '\n[service]\nenabled = true\n' >> "$work/site/roles/is.toml"
if [ "$(id -u)" -eq 0 ]; then
  # The server runs as wso2carbon (uid 802, created in the node's own
  # etc/passwd), which must reach its release under the node root.
  chmod 755 "$work"
else
  echo "==> not root: the server runs as $(id -un) instead of the service user wso2carbon"
  printf 'user = ""\ngroup = ""\n' >> "$work/site/roles/is.toml"
fi

echo "==> starting the master (data in $work/master)"
"$bin/rigger-master" --data-dir "$work/master" --listen 127.0.0.1:0 \
  --site "$work/site" --modules modules --admin-socket "$work/master.sock" \
  >"$work/master.log" 2>&1 &
master_pid=$!
for _ in $(seq 1 100); do [ -s "$work/master/listen.addr" ] && break; sleep 0.1; done
if [ ! -s "$work/master/listen.addr" ]; then
  echo "demo.sh: the master did not start:" >&2; cat "$work/master.log" >&2; exit 1
fi
addr=$(cat "$work/master/listen.addr")
masterctl=("$bin/masterctl" --socket "$work/master.sock")
fingerprint=$("${masterctl[@]}" ca show | sed -n 's/^fingerprint: //p')
token=$("${masterctl[@]}" token create --role is --ttl 10m 2>/dev/null)
echo "    master at https://$addr, CA $fingerprint"

echo "==> importing a sample wso2is 5.11.0 pack (300 files, 16 MB)"
"$bin/sample-pack" "$work/wso2is-5.11.0.zip" 300 16
"${masterctl[@]}" product import "$work/wso2is-5.11.0.zip"

# The node's EC2 metadata: a fake IMDS on 127.0.0.1 giving it the private
# IP 127.0.0.2, so that its server (and everything else) stays on loopback.
"$bin/rigger-fake-imds" 127.0.0.2 i-0demo >"$work/imds.url" 2>"$work/imds.log" &
imds_pid=$!
for _ in $(seq 1 50); do [ -s "$work/imds.url" ] && break; sleep 0.1; done
imds=$(cat "$work/imds.url")

node="$work/node"
echo "==> starting the agent (node root $node, private IP 127.0.0.2 from the fake IMDS at $imds)"
"$bin/rigger-agent" --root "$node" --master "https://$addr" --ca-fingerprint "$fingerprint" \
  --token "$token" --certname demo-is-1 --imds-endpoint "$imds" --run-interval 5m --splay 30s \
  >"$work/agent.log" 2>&1 &
agent_pid=$!
agentctl=("$bin/agentctl" --root "$node")

echo "==> waiting for the first run"
converged=false
for _ in $(seq 1 300); do
  if status=$("${agentctl[@]}" status --json 2>/dev/null) \
     && grep -q '"catalog_version": [1-9]' <<<"$status" \
     && grep -q '"running": false' <<<"$status"; then
    converged=true; break
  fi
  kill -0 "$agent_pid" 2>/dev/null || break
  sleep 0.2
done
if ! $converged; then
  echo "demo.sh: the agent did not complete a run:" >&2; cat "$work/agent.log" >&2; exit 1
fi
echo "==> the first run (from the agent's log):"
grep -E "resource=|fetching" "$work/agent.log" | sed 's/^.*INFO //' | head -20 || true
echo "==> a second run must change nothing"
"${agentctl[@]}" run
"${agentctl[@]}" status
echo
echo "==> files the catalog manages:"
echo "CARBON_HOME: $(readlink "$node/opt/wso2/wso2is-5.11.0" | sed "s|$node||")"
find "$node/opt" "$node/var/log" "$node/var/lib/wso2" -maxdepth 4 | sed "s|$node||" | sort | head -40
echo
pid=$(cut -d' ' -f1 "$node/var/lib/rigger/agent/services/wso2is.pid")
echo "==> the server (stand-in WSO2 IS) runs as pid $pid; its log:"
tail -n 3 "$node/var/log/wso2/wso2is/console.log" | sed 's/^/    /'
echo
"${masterctl[@]}" node list

status=$("${agentctl[@]}" status --json)
if ! grep -q '"last_run_result": "unchanged"' <<<"$status"; then
  echo "demo.sh: the node did not converge:" >&2; echo "$status" >&2; exit 1
fi
echo
echo "==> converged"
if $exit_after; then
  exit 0
fi
echo "    try: ${agentctl[*]} status"
echo "         ${masterctl[*]} catalog show demo-is-1"
echo "    logs: $work/master.log $work/agent.log"
echo "    Ctrl-C stops the master and the agent and removes $work"
wait "$agent_pid"
