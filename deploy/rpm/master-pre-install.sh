# rigger-master %pre: the system user the master runs as.
getent group rigger >/dev/null || groupadd --system rigger
getent passwd rigger >/dev/null || useradd --system --gid rigger --home-dir /var/lib/rigger \
    --no-create-home --shell /sbin/nologin --comment "Rigger master" rigger
exit 0
