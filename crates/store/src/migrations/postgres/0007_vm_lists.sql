-- Numbered 0007: 0006 is taken by the cluster work (PostgreSQL leases)
-- landing beside this.

-- A host's VMs in id order, a page at a time, straight from one index
-- (vms_host is ordered by uuid, so paging by id had to sort every VM of
-- the host).
CREATE INDEX vms_host_id ON vms(host_id, id);

-- The host list shows each host's VM count: kept on the host row by a
-- trigger, so listing hosts reads one row per host whatever the number of
-- VMs (a COUNT per request made it O(VMs)). A trigger rather than the
-- store's own writes: a cascade or any future write path counts too. The
-- update takes the host row's lock until the VM write commits, which
-- orders concurrent creates on one host (they are short).
ALTER TABLE hosts ADD COLUMN vm_count BIGINT NOT NULL DEFAULT 0;
UPDATE hosts SET vm_count = (SELECT COUNT(*) FROM vms WHERE vms.host_id = hosts.id);
CREATE FUNCTION vms_count_on_hosts() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('DELETE', 'UPDATE') THEN
        UPDATE hosts SET vm_count = vm_count - 1 WHERE id = OLD.host_id;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        UPDATE hosts SET vm_count = vm_count + 1 WHERE id = NEW.host_id;
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER vms_count AFTER INSERT OR DELETE OR UPDATE OF host_id ON vms
FOR EACH ROW EXECUTE FUNCTION vms_count_on_hosts();
