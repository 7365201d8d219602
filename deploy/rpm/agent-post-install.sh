# rigger-agent %post: enable at first install (it starts once user-data has
# written /etc/rigger/agent.toml); restart the agent alone after an upgrade:
# KillMode=process keeps the WSO2 servers running.
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload
    if [ "$1" -eq 1 ]; then
        systemctl enable rigger-agent.service || true
    else
        systemctl try-restart rigger-agent.service || true
    fi
fi
