-- Abuse reports (-06 §5.9) whose AbusiveMessages' franks the hub verified
-- before storing them. Rows stored before verification existed stay false.
ALTER TABLE abuse_reports ADD COLUMN franks_verified BOOLEAN NOT NULL DEFAULT FALSE;
