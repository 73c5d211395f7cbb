CREATE TABLE users (
    id BIGSERIAL PRIMARY KEY,
    external_id TEXT,
    account TEXT NOT NULL,
    name TEXT NOT NULL,
    email TEXT,
    phone TEXT,
    enabled BIGINT NOT NULL DEFAULT 1,
    protected BIGINT NOT NULL DEFAULT 0,
    remark TEXT,
    password_hash TEXT NOT NULL,
    failed_logins BIGINT NOT NULL DEFAULT 0,
    locked_until BIGINT NOT NULL DEFAULT 0,
    quota TEXT NOT NULL DEFAULT '{}',
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    login_at BIGINT
);
CREATE UNIQUE INDEX users_account_uq ON users(lower(account));
CREATE UNIQUE INDEX users_email_uq ON users(lower(email));
CREATE UNIQUE INDEX users_phone_uq ON users(phone);
CREATE UNIQUE INDEX users_external_id_uq ON users(external_id);
CREATE TABLE roles (
    id BIGSERIAL PRIMARY KEY,
    name TEXT NOT NULL,
    code TEXT NOT NULL,
    description TEXT,
    enabled BIGINT NOT NULL DEFAULT 1,
    protected BIGINT NOT NULL DEFAULT 0,
    quota TEXT NOT NULL DEFAULT '{}',
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX roles_name_uq ON roles(name);
CREATE UNIQUE INDEX roles_code_uq ON roles(code);
CREATE TABLE role_permissions (
    role_id BIGINT NOT NULL REFERENCES roles(id) ON DELETE CASCADE,
    code TEXT NOT NULL,
    PRIMARY KEY (role_id, code)
);
CREATE TABLE user_roles (
    user_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    role_id BIGINT NOT NULL REFERENCES roles(id) ON DELETE CASCADE,
    PRIMARY KEY (user_id, role_id)
);
CREATE INDEX user_roles_role ON user_roles(role_id);
CREATE TABLE sessions (
    id TEXT PRIMARY KEY,
    user_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    refresh_jti TEXT NOT NULL,
    ip TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    revoked BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX sessions_user ON sessions(user_id);
CREATE INDEX sessions_expires ON sessions(expires_at);
CREATE TABLE api_tokens (
    id BIGSERIAL PRIMARY KEY,
    user_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    token_hash TEXT NOT NULL,
    hint TEXT NOT NULL,
    scopes TEXT NOT NULL DEFAULT '[]',
    created_at BIGINT NOT NULL,
    expires_at BIGINT,
    last_used_at BIGINT
);
CREATE UNIQUE INDEX api_tokens_token_hash_uq ON api_tokens(token_hash);
CREATE INDEX api_tokens_user ON api_tokens(user_id, id);
CREATE TABLE login_logs (
    id BIGSERIAL PRIMARY KEY,
    user_id BIGINT,
    account TEXT NOT NULL,
    ip TEXT NOT NULL,
    status TEXT NOT NULL,
    reason TEXT NOT NULL,
    ts BIGINT NOT NULL
);
CREATE INDEX login_logs_user ON login_logs(user_id, id);
ALTER TABLE vms ADD COLUMN owner_id BIGINT;
CREATE INDEX vms_owner ON vms(owner_id);
ALTER TABLE logs ADD COLUMN user_id BIGINT;
CREATE INDEX logs_user ON logs(user_id, id);
CREATE INDEX tasks_actor ON tasks(actor, id)
