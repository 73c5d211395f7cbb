CREATE TABLE hosts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE,
    engine TEXT NOT NULL,
    enabled INTEGER NOT NULL DEFAULT 1,
    config TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE TABLE vms (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    host_id INTEGER NOT NULL REFERENCES hosts(id),
    uuid TEXT NOT NULL UNIQUE,
    config TEXT NOT NULL,
    state TEXT NOT NULL,
    pending_restart INTEGER NOT NULL DEFAULT 0,
    last_status TEXT,
    os_pass TEXT,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE INDEX vms_host ON vms(host_id, uuid);
CREATE TABLE vm_status (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    vm_id INTEGER NOT NULL REFERENCES vms(id) ON DELETE CASCADE,
    ts INTEGER NOT NULL,
    state TEXT NOT NULL,
    status TEXT NOT NULL
);
CREATE INDEX vm_status_vm_ts ON vm_status(vm_id, ts);
CREATE TABLE tasks (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    hs_name TEXT,
    vm_uuid TEXT,
    actor TEXT NOT NULL,
    step TEXT NOT NULL,
    status TEXT NOT NULL,
    progress INTEGER NOT NULL,
    result TEXT,
    error TEXT,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE INDEX tasks_host ON tasks(hs_name, id);
CREATE TABLE logs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    ts INTEGER NOT NULL,
    actor TEXT NOT NULL,
    source_ip TEXT NOT NULL,
    face TEXT NOT NULL,
    action TEXT NOT NULL,
    hs_name TEXT,
    target TEXT,
    ok INTEGER NOT NULL,
    message TEXT NOT NULL
);
CREATE INDEX logs_host ON logs(hs_name, id);
CREATE TABLE settings (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
