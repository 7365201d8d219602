# rigger-agent %preun: stop and disable on the last removal (the WSO2
# servers keep running: KillMode=process).
if [ "$1" -eq 0 ] && [ -d /run/systemd/system ]; then
    systemctl disable --now rigger-agent.service || true
fi
