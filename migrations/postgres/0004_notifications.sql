-- Notifications through notifier plugins (postgres dialect; mirrors the other 0004_notifications.sql).

-- A renewal policy may name the channels its certificates notify on (JSON array of channel
-- names, e.g. ["webhook","slack"]); empty means the server's routing (all configured channels).
ALTER TABLE renewal_policies ADD COLUMN IF NOT EXISTS notification_channels TEXT NOT NULL DEFAULT '[]';

-- One event fans out to one row per channel: the dedup key is unique per channel, and an
-- event whose key exists on any channel is not queued again.
DROP INDEX IF EXISTS uq_notification_events_dedup;
CREATE UNIQUE INDEX IF NOT EXISTS uq_notification_events_dedup_channel ON notification_events(dedup_key, channel);
CREATE INDEX IF NOT EXISTS idx_notification_events_dedup ON notification_events(dedup_key);
