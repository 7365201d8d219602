-- What each node says it applied when it asks for its catalog: the
-- master's epoch, the version and the content digest. A master restored
-- from a backup (a new epoch) issues its next version above it, never a
-- number the node has seen with other content.
ALTER TABLE nodes ADD COLUMN applied_epoch TEXT NOT NULL DEFAULT '';
ALTER TABLE nodes ADD COLUMN applied_version INTEGER NOT NULL DEFAULT 0;
ALTER TABLE nodes ADD COLUMN applied_digest TEXT NOT NULL DEFAULT '';
