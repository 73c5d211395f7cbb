CREATE TABLE users (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    external_id TEXT,
    account TEXT NOT NULL,
    name TEXT NOT NULL,
    email TEXT,
    phone TEXT,
    enabled INTEGER NOT NULL DEFAULT 1,
    protected INTEGER NOT NULL DEFAULT 0,
    remark TEXT,
    password_hash TEXT NOT NULL,
    failed_logins INTEGER NOT NULL DEFAULT 0,
    locked_until INTEGER NOT NULL DEFAULT 0,
    quota TEXT NOT NULL DEFAULT '{}',
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    login_at INTEGER
);
CREATE UNIQUE INDEX users_account_uq ON users(lower(account));
CREATE UNIQUE INDEX users_email_uq ON users(lower(email));
CREATE UNIQUE INDEX users_phone_uq ON users(phone);
CREATE UNIQUE INDEX users_external_id_uq ON users(external_id);
CREATE TABLE roles (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    code TEXT NOT NULL,
    description TEXT,
    enabled INTEGER NOT NULL DEFAULT 1,
    protected INTEGER NOT NULL DEFAULT 0,
    quota TEXT NOT NULL DEFAULT '{}',
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE UNIQUE INDEX roles_name_uq ON roles(name);
CREATE UNIQUE INDEX roles_code_uq ON roles(code);
CREATE TABLE role_permissions (
    role_id INTEGER NOT NULL REFERENCES roles(id) ON DELETE CASCADE,
    code TEXT NOT NULL,
    PRIMARY KEY (role_id, code)
);
CREATE TABLE user_roles (
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    role_id INTEGER NOT NULL REFERENCES roles(id) ON DELETE CASCADE,
    PRIMARY KEY (user_id, role_id)
);
CREATE INDEX user_roles_role ON user_roles(role_id);
CREATE TABLE sessions (
    id TEXT PRIMARY KEY,
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    refresh_jti TEXT NOT NULL,
    ip TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    revoked INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX sessions_user ON sessions(user_id);
CREATE INDEX sessions_expires ON sessions(expires_at);
CREATE TABLE api_tokens (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    token_hash TEXT NOT NULL,
    hint TEXT NOT NULL,
    scopes TEXT NOT NULL DEFAULT '[]',
    created_at INTEGER NOT NULL,
    expires_at INTEGER,
    last_used_at INTEGER
);
CREATE UNIQUE INDEX api_tokens_token_hash_uq ON api_tokens(token_hash);
CREATE INDEX api_tokens_user ON api_tokens(user_id, id);
CREATE TABLE login_logs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id INTEGER,
    account TEXT NOT NULL,
    ip TEXT NOT NULL,
    status TEXT NOT NULL,
    reason TEXT NOT NULL,
    ts INTEGER NOT NULL
);
CREATE INDEX login_logs_user ON login_logs(user_id, id);
ALTER TABLE vms ADD COLUMN owner_id INTEGER;
CREATE INDEX vms_owner ON vms(owner_id);
ALTER TABLE logs ADD COLUMN user_id INTEGER;
CREATE INDEX logs_user ON logs(user_id, id);
CREATE INDEX tasks_actor ON tasks(actor, id)
