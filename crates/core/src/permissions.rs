//! The permission catalogue: codes `scope.object.action`. A permission's
//! numeric id (PTPB `perms`) is its position here plus one, so the list is
//! append-only: never reorder or remove an entry.

/// One grantable permission.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Permission {
    pub id: i64,
    pub scope: &'static str,
    pub object: &'static str,
    pub action: &'static str,
    pub code: &'static str,
    pub name: &'static str,
}

macro_rules! catalogue {
    ($( $code:literal => $name:literal ),* $(,)?) => {
        const CODES: &[(&str, &str)] = &[ $( ($code, $name) ),* ];
    };
}

catalogue! {
    "system.user.create" => "Create users",
    "system.user.read" => "View users",
    "system.user.update" => "Edit users, their roles and passwords",
    "system.user.delete" => "Delete users",
    "system.role.create" => "Create roles",
    "system.role.read" => "View roles and permissions",
    "system.role.update" => "Edit roles, their permissions and quotas",
    "system.role.delete" => "Delete roles",
    "system.token.manage" => "Reset or set the operator's root token",
    "system.config.manage" => "Export and import the configuration",
    "system.stats.read" => "View controller statistics and engines",
    "system.task.read" => "View every user's tasks",
    "audit.login.read" => "View every user's login log",
    "audit.opera.read" => "View every user's operation log",
    "host.server.create" => "Create hosts",
    "host.server.read" => "View hosts, their status and address pools",
    "host.server.update" => "Edit hosts",
    "host.server.delete" => "Delete hosts",
    "host.server.power" => "Enable and disable hosts",
    "host.vm.scan" => "Scan a host for VMs and import them",
    "vm.instance.create" => "Create VMs",
    "vm.instance.read" => "View VMs and their status",
    "vm.instance.update" => "Change VMs",
    "vm.instance.delete" => "Delete VMs",
    "vm.power.write" => "Start, stop and restart VMs",
    "vm.nat.read" => "View port forwards",
    "vm.nat.write" => "Add and remove port forwards",
    "vm.ipaddr.read" => "View VM addresses",
    "vm.ipaddr.write" => "Add and remove VM addresses",
    "vm.proxy.read" => "View domain bindings",
    "vm.proxy.write" => "Add and remove domain bindings",
    "vm.all.manage" => "See and act on every user's VMs and set VM owners",
    "vm.console.open" => "Open the VNC console of VMs and end console sessions",
    "vm.agent.write" => "Reset guest passwords, set hostnames, write files and run commands through the guest agent",
    "vm.snapshot.write" => "Take, revert and delete snapshots",
    "vm.backup.write" => "Take, restore and delete backups",
    "vm.reinstall.write" => "Reinstall VMs from an OS image",
    "vm.media.write" => "Insert and eject ISO images",
    "vm.nic.write" => "Add and remove network cards",
}

/// Every permission, in id order.
pub fn all() -> impl Iterator<Item = Permission> {
    CODES.iter().enumerate().map(|(i, (code, name))| {
        let mut parts = code.splitn(3, '.');
        let scope = parts.next().unwrap_or_default();
        let object = parts.next().unwrap_or_default();
        let action = parts.next().unwrap_or_default();
        Permission {
            id: i as i64 + 1,
            scope,
            object,
            action,
            code,
            name,
        }
    })
}

pub fn by_id(id: i64) -> Option<Permission> {
    let index = usize::try_from(id.checked_sub(1)?).ok()?;
    all().nth(index)
}

pub fn by_code(code: &str) -> Option<Permission> {
    all().find(|p| p.code == code)
}

/// Whether `code` is in the catalogue.
pub fn is_known(code: &str) -> bool {
    CODES.iter().any(|(c, _)| *c == code)
}

/// Every permission code.
pub fn all_codes() -> Vec<String> {
    CODES.iter().map(|(c, _)| c.to_string()).collect()
}

/// What a customer may do by default: use and look after their own VMs;
/// provisioning and deletion stay with the operator or billing system.
pub const CUSTOMER_DEFAULT: &[&str] = &[
    "vm.instance.read",
    "vm.power.write",
    "vm.nat.read",
    "vm.nat.write",
    "vm.ipaddr.read",
    "vm.proxy.read",
    "vm.proxy.write",
    "vm.console.open",
    "vm.agent.write",
    "vm.snapshot.write",
    "vm.backup.write",
    "vm.reinstall.write",
    "vm.media.write",
];

/// One entry of the menu `GET /api/rbac/routes/` returns: shown to users
/// holding `permission` (or to everyone when it is `None`).
#[derive(Debug, Clone)]
pub struct MenuRoute {
    pub path: &'static str,
    pub component: &'static str,
    pub title: &'static str,
    pub icon: &'static str,
    pub permission: Option<&'static str>,
    pub children: Vec<MenuRoute>,
}

/// The whole menu; `menu_for` filters it.
fn menu() -> Vec<MenuRoute> {
    let leaf = |path, component, title, icon, permission| MenuRoute {
        path,
        component,
        title,
        icon,
        permission,
        children: Vec::new(),
    };
    vec![
        leaf(
            "/overview",
            "@/views/OverviewPage.vue",
            "Overview",
            "Monitor",
            None,
        ),
        leaf(
            "/vms",
            "@/views/VmsPage.vue",
            "Virtual machines",
            "Cpu",
            Some("vm.instance.read"),
        ),
        leaf(
            "/hosts",
            "@/views/HostsPage.vue",
            "Hosts",
            "Platform",
            Some("host.server.read"),
        ),
        MenuRoute {
            path: "permission_manage",
            component: "",
            title: "Permissions",
            icon: "User",
            permission: None,
            children: vec![
                leaf(
                    "/users",
                    "@/views/UsersPage.vue",
                    "Users",
                    "User",
                    Some("system.user.read"),
                ),
                leaf(
                    "/roles",
                    "@/views/RolesPage.vue",
                    "Roles",
                    "Key",
                    Some("system.role.read"),
                ),
            ],
        },
        leaf(
            "/tokens",
            "@/views/TokensPage.vue",
            "API tokens",
            "Key",
            None,
        ),
        leaf(
            "/audit",
            "@/views/AuditView.vue",
            "Audit log",
            "Document",
            None,
        ),
        leaf(
            "/system",
            "@/views/SystemPage.vue",
            "System",
            "Setting",
            Some("system.config.manage"),
        ),
    ]
}

/// The menu a holder of `has` may see: entries whose permission it holds;
/// a group without a permission is shown when any child is.
pub fn menu_for(has: impl Fn(&str) -> bool) -> Vec<MenuRoute> {
    fn keep(route: MenuRoute, has: &dyn Fn(&str) -> bool) -> Option<MenuRoute> {
        if let Some(p) = route.permission {
            return has(p).then_some(route);
        }
        if route.children.is_empty() {
            return Some(route);
        }
        let children: Vec<MenuRoute> = route
            .children
            .into_iter()
            .filter_map(|c| keep(c, has))
            .collect();
        (!children.is_empty()).then_some(MenuRoute { children, ..route })
    }
    menu().into_iter().filter_map(|r| keep(r, &has)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_positions_and_codes_unique() {
        let all: Vec<_> = all().collect();
        for (i, p) in all.iter().enumerate() {
            assert_eq!(p.id, i as i64 + 1);
            assert_eq!(by_id(p.id).map(|q| q.code), Some(p.code));
            assert_eq!(format!("{}.{}.{}", p.scope, p.object, p.action), p.code);
        }
        let mut codes: Vec<_> = all.iter().map(|p| p.code).collect();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), all.len());
        assert!(by_id(0).is_none());
        assert!(by_id(all.len() as i64 + 1).is_none());
        assert!(CUSTOMER_DEFAULT.iter().all(|c| is_known(c)));
    }

    #[test]
    fn menu_is_filtered_by_permission() {
        let customer = menu_for(|p| p == "vm.instance.read");
        let paths: Vec<_> = customer.iter().map(|r| r.path).collect();
        assert!(paths.contains(&"/vms"));
        assert!(!paths.contains(&"/hosts"));
        assert!(!paths.contains(&"permission_manage"));
        let admin = menu_for(|_| true);
        let group = admin.iter().find(|r| r.path == "permission_manage");
        assert_eq!(group.map(|g| g.children.len()), Some(2));
    }
}
