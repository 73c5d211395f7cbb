CREATE TABLE vm_nics (
    mac TEXT PRIMARY KEY,
    vm_id INTEGER NOT NULL REFERENCES vms(id) ON DELETE CASCADE,
    name TEXT NOT NULL
);
CREATE INDEX vm_nics_vm ON vm_nics(vm_id);
CREATE TABLE vm_addresses (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    host_id INTEGER NOT NULL REFERENCES hosts(id),
    vm_id INTEGER NOT NULL REFERENCES vms(id) ON DELETE CASCADE,
    nic TEXT NOT NULL,
    vers TEXT NOT NULL,
    address TEXT NOT NULL,
    prefix INTEGER NOT NULL,
    gateway TEXT NOT NULL,
    pool TEXT NOT NULL,
    description TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    UNIQUE (host_id, address)
);
CREATE INDEX vm_addresses_vm ON vm_addresses(vm_id, id);
CREATE TABLE nat_rules (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    host_id INTEGER NOT NULL REFERENCES hosts(id),
    vm_id INTEGER NOT NULL REFERENCES vms(id) ON DELETE CASCADE,
    protocol TEXT NOT NULL,
    external_port INTEGER NOT NULL,
    internal_ip TEXT NOT NULL,
    internal_port INTEGER NOT NULL,
    description TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE INDEX nat_rules_vm ON nat_rules(vm_id, id);
CREATE INDEX nat_rules_port ON nat_rules(external_port);
CREATE TABLE proxies (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    host_id INTEGER NOT NULL REFERENCES hosts(id),
    vm_id INTEGER NOT NULL REFERENCES vms(id) ON DELETE CASCADE,
    domain TEXT NOT NULL UNIQUE,
    backend_ip TEXT NOT NULL,
    backend_port INTEGER NOT NULL,
    ssl_enabled INTEGER NOT NULL,
    ssl_type TEXT NOT NULL,
    cert_pem TEXT,
    key_sealed TEXT,
    cert_not_after INTEGER,
    cert_error TEXT,
    description TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE INDEX proxies_vm ON proxies(vm_id, id)
