-- Several controllers on one database (PostgreSQL; SQLite gets the same
-- tables so both backends share one store). See cluster.rs in the store.

-- The controller process running each task: recovery settles only tasks
-- of controllers that are gone.
ALTER TABLE tasks ADD COLUMN controller TEXT;
CREATE INDEX tasks_running ON tasks(status, controller);

-- Controllers alive: each refreshes seen_at every few seconds.
CREATE TABLE controllers (
    instance TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    started_at BIGINT NOT NULL,
    seen_at BIGINT NOT NULL
);

-- A VM busy with a long operation, for every controller; a mark whose
-- controller died lapses at expires_at.
CREATE TABLE busy_marks (
    vm_key TEXT PRIMARY KEY,
    activity TEXT NOT NULL,
    owner TEXT NOT NULL,
    token TEXT NOT NULL,
    expires_at BIGINT NOT NULL
);

-- Failed logins on names that are no account, so they lock as real
-- accounts do (users.failed_logins holds those of real accounts).
CREATE TABLE login_failures (
    account TEXT PRIMARY KEY,
    failed BIGINT NOT NULL,
    locked_until BIGINT NOT NULL,
    last_at BIGINT NOT NULL
);

-- Nonces accepted once per key until they expire (replay protection).
CREATE TABLE nonces (
    key TEXT NOT NULL,
    nonce TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    PRIMARY KEY (key, nonce)
);
CREATE INDEX nonces_expires ON nonces(expires_at);
