CREATE TABLE hosts (
    id BIGSERIAL PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    engine TEXT NOT NULL,
    enabled BIGINT NOT NULL DEFAULT 1,
    config TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE TABLE vms (
    id BIGSERIAL PRIMARY KEY,
    host_id BIGINT NOT NULL REFERENCES hosts(id),
    uuid TEXT NOT NULL UNIQUE,
    config TEXT NOT NULL,
    state TEXT NOT NULL,
    pending_restart BIGINT NOT NULL DEFAULT 0,
    last_status TEXT,
    os_pass TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX vms_host ON vms(host_id, uuid);
CREATE TABLE vm_status (
    id BIGSERIAL PRIMARY KEY,
    vm_id BIGINT NOT NULL REFERENCES vms(id) ON DELETE CASCADE,
    ts BIGINT NOT NULL,
    state TEXT NOT NULL,
    status TEXT NOT NULL
);
CREATE INDEX vm_status_vm_ts ON vm_status(vm_id, ts);
CREATE TABLE tasks (
    id BIGSERIAL PRIMARY KEY,
    kind TEXT NOT NULL,
    hs_name TEXT,
    vm_uuid TEXT,
    actor TEXT NOT NULL,
    step TEXT NOT NULL,
    status TEXT NOT NULL,
    progress BIGINT NOT NULL,
    result TEXT,
    error TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX tasks_host ON tasks(hs_name, id);
CREATE TABLE logs (
    id BIGSERIAL PRIMARY KEY,
    ts BIGINT NOT NULL,
    actor TEXT NOT NULL,
    source_ip TEXT NOT NULL,
    face TEXT NOT NULL,
    action TEXT NOT NULL,
    hs_name TEXT,
    target TEXT,
    ok BIGINT NOT NULL,
    message TEXT NOT NULL
);
CREATE INDEX logs_host ON logs(hs_name, id);
CREATE TABLE settings (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
