-- Numbered 0007: 0006 is taken by the cluster work (PostgreSQL leases)
-- landing beside this.
-- A host's VMs in id order, a page at a time, and the per-host VM counts
-- of the host list, both straight from one index (vms_host is ordered by
-- uuid, so paging by id had to sort every VM of the host).
CREATE INDEX vms_host_id ON vms(host_id, id);
