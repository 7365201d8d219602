-- A server that kept running over a peer-list change: what it missed.
ALTER TABLE service_health ADD COLUMN peers_changed TEXT NOT NULL DEFAULT '';
