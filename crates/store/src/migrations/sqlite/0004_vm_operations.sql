ALTER TABLE vms ADD COLUMN report_secret TEXT;
CREATE TABLE console_tokens (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    token_hash TEXT NOT NULL,
    vm_id INTEGER NOT NULL REFERENCES vms(id) ON DELETE CASCADE,
    user_id INTEGER,
    actor TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    last_used_at INTEGER NOT NULL,
    opened_at INTEGER,
    revoked INTEGER NOT NULL DEFAULT 0
);
CREATE UNIQUE INDEX console_tokens_token_hash_uq ON console_tokens(token_hash);
CREATE INDEX console_tokens_vm ON console_tokens(vm_id, id);
CREATE INDEX vm_status_ts ON vm_status(ts);
