ALTER TABLE vms ADD COLUMN report_secret TEXT;
CREATE TABLE console_tokens (
    id BIGSERIAL PRIMARY KEY,
    token_hash TEXT NOT NULL,
    vm_id BIGINT NOT NULL REFERENCES vms(id) ON DELETE CASCADE,
    user_id BIGINT,
    actor TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    last_used_at BIGINT NOT NULL,
    opened_at BIGINT,
    revoked BIGINT NOT NULL DEFAULT 0
);
CREATE UNIQUE INDEX console_tokens_token_hash_uq ON console_tokens(token_hash);
CREATE INDEX console_tokens_vm ON console_tokens(vm_id, id);
CREATE INDEX vm_status_ts ON vm_status(ts);
