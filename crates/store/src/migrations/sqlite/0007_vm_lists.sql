-- Numbered 0007: 0006 is taken by the cluster work (PostgreSQL leases)
-- landing beside this.

-- A host's VMs in id order, a page at a time, straight from one index
-- (vms_host is ordered by uuid, so paging by id had to sort every VM of
-- the host).
CREATE INDEX vms_host_id ON vms(host_id, id);

-- The host list shows each host's VM count: kept on the host row by
-- triggers, so listing hosts reads one row per host whatever the number
-- of VMs (a COUNT per request made it O(VMs)). Triggers rather than the
-- store's own writes: a cascade or any future write path counts too.
ALTER TABLE hosts ADD COLUMN vm_count INTEGER NOT NULL DEFAULT 0;
UPDATE hosts SET vm_count = (SELECT COUNT(*) FROM vms WHERE vms.host_id = hosts.id);
CREATE TRIGGER vms_count_insert AFTER INSERT ON vms BEGIN
    UPDATE hosts SET vm_count = vm_count + 1 WHERE id = NEW.host_id;
END;
CREATE TRIGGER vms_count_delete AFTER DELETE ON vms BEGIN
    UPDATE hosts SET vm_count = vm_count - 1 WHERE id = OLD.host_id;
END;
CREATE TRIGGER vms_count_move AFTER UPDATE OF host_id ON vms
WHEN NEW.host_id <> OLD.host_id BEGIN
    UPDATE hosts SET vm_count = vm_count - 1 WHERE id = OLD.host_id;
    UPDATE hosts SET vm_count = vm_count + 1 WHERE id = NEW.host_id;
END;
