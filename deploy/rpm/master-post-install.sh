# rigger-master %post: enable at first install, restart after an upgrade.
chmod 0750 /etc/rigger/site && chgrp rigger /etc/rigger/site
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload
    if [ "$1" -eq 1 ]; then
        systemctl enable --now rigger-master.service || true
    else
        systemctl try-restart rigger-master.service || true
    fi
fi
