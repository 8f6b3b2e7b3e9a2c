-- Abuse reports (-06 §5.9) whose AbusiveMessages' franks the hub verified
-- before storing them. Rows stored before verification existed stay 0.
ALTER TABLE abuse_reports ADD COLUMN franks_verified INTEGER NOT NULL DEFAULT 0;
