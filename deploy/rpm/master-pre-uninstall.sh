# rigger-master %preun: stop and disable on the last removal (not on upgrade).
if [ "$1" -eq 0 ] && [ -d /run/systemd/system ]; then
    systemctl disable --now rigger-master.service || true
fi
