#!/bin/bash
# Rigger node bootstrap: the AMI user-data of every WSO2 node.
#
# Installs the agent package (unless the AMI has it), writes
# /etc/rigger/agent.toml, enrolls by the node's EC2 identity (a bootstrap
# token only where the operator chose one), waits for the node to be ready
# and tells CloudFormation the result. Safe on every boot: it changes a file
# only when its content changes, appends nothing, and never enrols again a
# node that has its certificate.
#
# The CloudFormation templates put the settings in the environment first
# (`Fn::Sub`); no secret is ever in them: the token, if any, is read from SSM
# Parameter Store by name.
#
#   RIGGER_MASTER           the master's address, e.g. 10.0.1.10:8140 (required)
#   RIGGER_CA_FINGERPRINT   sha256 fingerprint of the master's CA (required,
#                           unless RIGGER_CA_FINGERPRINT_PARAMETER names the
#                           SSM parameter the master stack published it to)
#   RIGGER_ROLE             the role to ask for (e.g. is, apim, mi)
#   RIGGER_TOKEN_PARAMETER  SSM SecureString holding a bootstrap token (optional)
#   RIGGER_AGENT_PACKAGE    the agent .deb/.rpm: s3://…, https://… or a path
#                           (optional when the AMI has the agent)
#   RIGGER_WAIT_TIMEOUT     how long to wait for the first run (default 20m)
#   RIGGER_IMDS_ENDPOINT    instance metadata endpoint (default: EC2's)
#   CFN_STACK, CFN_RESOURCE, AWS_REGION
#                           where cfn-signal reports (no signal when unset)
#   RIGGER_ROOT             install under this root instead of / (image
#                           building and tests: no service is started there)
set -euo pipefail

ROOT="${RIGGER_ROOT:-/}"
ROOT="${ROOT%/}"
log() { echo "rigger user-data: $*" >&2; }
fail() { log "$*"; signal 1; exit 1; }

signal() {
    if [ -n "${CFN_STACK:-}" ] && [ -n "${CFN_RESOURCE:-}" ]; then
        cfn-signal --exit-code "$1" --stack "$CFN_STACK" --resource "$CFN_RESOURCE" \
            --region "${AWS_REGION:?AWS_REGION is needed with CFN_STACK}" || log "cfn-signal failed"
    fi
}

# Writes stdin to FILE (mode MODE) atomically, and only when it differs:
# a second boot leaves the file, and its time stamp, as they were. A
# failure (a full disk) stops the script.
write_if_changed() {
    local file="$1" mode="$2" tmp
    mkdir -p "$(dirname "$file")"
    tmp="$(mktemp "$file.XXXXXX")"
    cat >"$tmp"
    chmod "$mode" "$tmp"
    if [ -f "$file" ] && cmp -s "$tmp" "$file"; then
        rm -f "$tmp"
    else
        mv -f "$tmp" "$file"
        log "wrote ${file#"$ROOT"}"
    fi
}

[ -n "${RIGGER_MASTER:-}" ] || fail "RIGGER_MASTER is not set (the master's address, e.g. 10.0.1.10:8140)"
if [ -z "${RIGGER_CA_FINGERPRINT:-}" ] && [ -n "${RIGGER_CA_FINGERPRINT_PARAMETER:-}" ]; then
    RIGGER_CA_FINGERPRINT="$(aws ssm get-parameter --name "$RIGGER_CA_FINGERPRINT_PARAMETER" \
        --query Parameter.Value --output text)" || fail "cannot read SSM parameter $RIGGER_CA_FINGERPRINT_PARAMETER"
fi
[ -n "${RIGGER_CA_FINGERPRINT:-}" ] || fail "RIGGER_CA_FINGERPRINT is not set (masterctl ca show)"
case "$RIGGER_MASTER" in
    *[!A-Za-z0-9.:/\[\]-]*) fail "RIGGER_MASTER has characters an address cannot: $RIGGER_MASTER" ;;
esac
case "$RIGGER_CA_FINGERPRINT" in
    *[!A-Za-z0-9:]*) fail "RIGGER_CA_FINGERPRINT has characters a fingerprint cannot" ;;
esac
case "${RIGGER_ROLE:-}" in
    *[!a-z0-9_-]*) fail "RIGGER_ROLE is not a role name: ${RIGGER_ROLE}" ;;
esac

# 1. The agent package, unless this image has it.
install_package() {
    local source="$1" file
    case "$source" in
        s3://*) file="$(mktemp -d)/$(basename "$source")"; aws s3 cp --only-show-errors "$source" "$file" ;;
        https://*) file="$(mktemp -d)/$(basename "$source")"; curl -fsSL --retry 5 -o "$file" "$source" ;;
        *) file="$source" ;;
    esac
    if [ "$ROOT" != "" ]; then
        # A scratch root: the files only, no maintainer scripts.
        case "$file" in
            *.deb) dpkg-deb -x "$file" "$ROOT" ;;
            *) fail "only a .deb can be unpacked into a scratch root: $file" ;;
        esac
        return
    fi
    case "$file" in
        *.deb) DEBIAN_FRONTEND=noninteractive apt-get install -y "$file" >/dev/null ;;
        *.rpm) dnf install -y "$file" >/dev/null 2>&1 || yum install -y "$file" >/dev/null ;;
        *) fail "RIGGER_AGENT_PACKAGE must be a .deb or an .rpm: $source" ;;
    esac
}
if [ ! -x "$ROOT/usr/bin/rigger-agent" ]; then
    [ -n "${RIGGER_AGENT_PACKAGE:-}" ] || fail "this image has no rigger-agent and RIGGER_AGENT_PACKAGE is not set"
    log "installing $RIGGER_AGENT_PACKAGE"
    install_package "$RIGGER_AGENT_PACKAGE"
fi

# 2. The agent's configuration: the same file on every boot.
{
    echo "# Written by the Rigger user-data; rewritten (only if it changes) at each boot."
    echo "master = \"$RIGGER_MASTER\""
    echo "ca_fingerprint = \"$RIGGER_CA_FINGERPRINT\""
    if [ -n "${RIGGER_ROLE:-}" ]; then echo "role = \"$RIGGER_ROLE\""; fi
    if [ -n "${RIGGER_IMDS_ENDPOINT:-}" ]; then echo "imds_endpoint = \"$RIGGER_IMDS_ENDPOINT\""; fi
} | write_if_changed "$ROOT/etc/rigger/agent.toml" 0644

# 3. Enrollment: by the EC2 identity document, which the agent presents
# itself; a token only where the operator chose one, fetched once, and
# removed once the node has its certificate.
env_file="$ROOT/etc/rigger/agent.env"
if [ -s "$ROOT/var/lib/rigger/agent/ssl/node.crt" ]; then
    rm -f "$env_file"
elif [ -n "${RIGGER_TOKEN_PARAMETER:-}" ]; then
    token="$(aws ssm get-parameter --with-decryption --name "$RIGGER_TOKEN_PARAMETER" \
        --query Parameter.Value --output text)" || fail "cannot read the token from SSM parameter $RIGGER_TOKEN_PARAMETER"
    case "$token" in *[!A-Za-z0-9._~+/=-]*|"") fail "SSM parameter $RIGGER_TOKEN_PARAMETER does not hold a token" ;; esac
    (umask 077; printf 'RIGGER_TOKEN=%s\n' "$token" | write_if_changed "$env_file" 0600)
    unset token
fi

# 4. The agent runs under systemd (not in a scratch root).
if [ "$ROOT" = "" ] && [ -d /run/systemd/system ]; then
    systemctl daemon-reload
    systemctl enable rigger-agent.service >/dev/null 2>&1
    # Started if it was not (the package starts it once the configuration
    # exists; a changed configuration is read again).
    systemctl reload-or-restart rigger-agent.service
elif [ "$ROOT" != "" ]; then
    log "scratch root $ROOT: not starting the agent"
fi

# 5. Wait for the first run to apply and every server to be ready, then
# tell CloudFormation: no sleep, the agent knows when the node is ready.
rc=0
"$ROOT/usr/bin/agentctl" --root "$ROOT/" wait-ready --timeout "${RIGGER_WAIT_TIMEOUT:-20m}" || rc=$?
if [ "$rc" -ne 0 ]; then
    log "the node is not ready (agentctl wait-ready exit $rc): see agentctl status"
    "$ROOT/usr/bin/agentctl" --root "$ROOT/" status >&2 || true
fi
signal "$rc"
exit "$rc"
