CREATE TABLE vm_nics (
    mac TEXT PRIMARY KEY,
    vm_id BIGINT NOT NULL REFERENCES vms(id) ON DELETE CASCADE,
    name TEXT NOT NULL
);
CREATE INDEX vm_nics_vm ON vm_nics(vm_id);
CREATE TABLE vm_addresses (
    id BIGSERIAL PRIMARY KEY,
    host_id BIGINT NOT NULL REFERENCES hosts(id),
    vm_id BIGINT NOT NULL REFERENCES vms(id) ON DELETE CASCADE,
    nic TEXT NOT NULL,
    vers TEXT NOT NULL,
    address TEXT NOT NULL,
    prefix BIGINT NOT NULL,
    gateway TEXT NOT NULL,
    pool TEXT NOT NULL,
    description TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    UNIQUE (host_id, address)
);
CREATE INDEX vm_addresses_vm ON vm_addresses(vm_id, id);
CREATE TABLE nat_rules (
    id BIGSERIAL PRIMARY KEY,
    host_id BIGINT NOT NULL REFERENCES hosts(id),
    vm_id BIGINT NOT NULL REFERENCES vms(id) ON DELETE CASCADE,
    protocol TEXT NOT NULL,
    external_port BIGINT NOT NULL,
    internal_ip TEXT NOT NULL,
    internal_port BIGINT NOT NULL,
    description TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX nat_rules_vm ON nat_rules(vm_id, id);
CREATE INDEX nat_rules_port ON nat_rules(external_port);
CREATE TABLE proxies (
    id BIGSERIAL PRIMARY KEY,
    host_id BIGINT NOT NULL REFERENCES hosts(id),
    vm_id BIGINT NOT NULL REFERENCES vms(id) ON DELETE CASCADE,
    domain TEXT NOT NULL UNIQUE,
    backend_ip TEXT NOT NULL,
    backend_port BIGINT NOT NULL,
    ssl_enabled BIGINT NOT NULL,
    ssl_type TEXT NOT NULL,
    cert_pem TEXT,
    key_sealed TEXT,
    cert_not_after BIGINT,
    cert_error TEXT,
    description TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX proxies_vm ON proxies(vm_id, id)
