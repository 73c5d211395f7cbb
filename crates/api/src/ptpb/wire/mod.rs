//! The PTPB face's own reply types, with PTPB's field names. Each is built
//! from a core view by destructuring it whole, so a field added to or
//! renamed in the core fails to compile here instead of changing this API
//! unnoticed; and no core type is serialized onto the wire, so the core
//! may reshape its views without breaking PTPB front ends.

mod audit;
mod quotas;
mod roles;
mod tokens;
mod users;

pub use audit::{LoginLogReply, OperationLogReply};
pub use quotas::{QuotaBody, QuotaReportReply};
pub use roles::{MenuRouteReply, PermissionReply, RolePermsReply, RoleReply};
pub use tokens::{ApiTokenReply, CreatedApiTokenReply};
pub use users::{SessionTokensReply, UserDetailReply, UserReply};

/// A unix time as PTPB's ISO 8601 dates (UTC); null when out of range,
/// which a stored time never is.
fn date(ts: i64) -> Option<String> {
    use time::format_description::well_known::Rfc3339;
    time::OffsetDateTime::from_unix_timestamp(ts)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
}

/// The JSON each reply puts on the wire, pinned: PTPB front ends read these
/// keys, and the core's views no longer decide them.
#[cfg(test)]
mod tests {
    use ironidc_core::accounts::{LoginLogEntry, Quota, Usage};
    use ironidc_core::model::LogEntry;
    use ironidc_core::permissions::{self, MenuRoute};
    use ironidc_core::service::{
        ApiTokenView, CreatedApiToken, QuotaReport, RoleView, TokenPair, UserView,
    };
    use serde_json::{json, Value};

    use super::*;

    fn wire(reply: impl serde::Serialize) -> Value {
        serde_json::to_value(reply).unwrap()
    }

    const T: i64 = 1_700_000_000;
    const DATE: &str = "2023-11-14T22:13:20Z";

    fn user() -> UserView {
        UserView {
            id: 7,
            userid: Some("ext-7".into()),
            account: "carol".into(),
            name: "Carol".into(),
            email: None,
            phone: Some("+86 138".into()),
            status: true,
            protected: false,
            locked: false,
            remark: None,
            roles: vec![2],
            quota: Quota {
                vms: Some(3),
                ..Quota::default()
            },
            created_at: T,
            updated_at: T,
            login_at: None,
        }
    }

    #[test]
    fn users() {
        let expected = json!({
            "id": 7, "userid": "ext-7", "account": "carol", "name": "Carol",
            "email": null, "status": true, "protected": false, "locked": false,
            "phone_number": "+86 138", "avatar": null, "create_date": DATE,
            "update_date": DATE, "login_date": null, "remark": null,
            "roles": [2], "quota": {"vms": 3},
        });
        assert_eq!(wire(UserReply::from(user())), expected);
        let mut detailed = expected;
        detailed["ip"] = json!("10.0.0.1");
        detailed["permissions"] = json!(["vm.instance.read"]);
        let detail =
            UserDetailReply::new(user(), "10.0.0.1".into(), vec!["vm.instance.read".into()]);
        assert_eq!(wire(detail), detailed);
    }

    #[test]
    fn roles_permissions_and_menu() {
        let role = RoleView {
            id: 3,
            name: "Ops".into(),
            code: "ops".into(),
            description: None,
            status: true,
            protected: false,
            permissions: vec!["system.user.read".into()],
            perms: vec![2],
            quota: Quota::default(),
            created_at: T,
            updated_at: T,
        };
        assert_eq!(
            wire(RoleReply::from(role.clone())),
            json!({
                "id": 3, "name": "Ops", "code": "ops", "description": null,
                "status": true, "protected": false, "perms": [2], "quota": {},
                "create_date": DATE, "update_date": DATE,
            })
        );
        assert_eq!(
            wire(RolePermsReply::from(role)),
            json!({"id": 3, "perms": [2]})
        );
        let first = permissions::all().next().map(PermissionReply::from);
        assert_eq!(
            wire(first),
            json!({
                "id": 1, "scope": "system", "object": "user", "action": "create",
                "code": "system.user.create", "name": "Create users",
            })
        );
        let menu = MenuRoute {
            path: "/p",
            component: "",
            title: "P",
            icon: "I",
            permission: None,
            children: vec![MenuRoute {
                path: "/c",
                component: "C.vue",
                title: "C",
                icon: "J",
                permission: Some("system.user.read"),
                children: vec![],
            }],
        };
        assert_eq!(
            wire(MenuRouteReply::from(menu)),
            json!({
                "path": "/p", "component": "",
                "meta": {"title": "P", "icon": "I", "permission": null},
                "children": [{
                    "path": "/c", "component": "C.vue",
                    "meta": {"title": "C", "icon": "J", "permission": "system.user.read"},
                    "children": [],
                }],
            })
        );
    }

    #[test]
    fn tokens_and_quotas() {
        let pair = TokenPair {
            access: "a".into(),
            refresh: "r".into(),
            access_expires_in: 900,
            refresh_expires_in: 604_800,
        };
        assert_eq!(
            wire(SessionTokensReply::from(pair)),
            json!({"access": "a", "refresh": "r", "access_expires_in": 900, "refresh_expires_in": 604_800})
        );
        let view = ApiTokenView {
            id: 1,
            name: "script".into(),
            hint: "ixt_ab".into(),
            scopes: vec!["vm.instance.read".into()],
            created_at: T,
            expires_at: None,
            last_used_at: Some(T),
        };
        let listed = json!({
            "id": 1, "name": "script", "hint": "ixt_ab", "scopes": ["vm.instance.read"],
            "created_at": T, "expires_at": null, "last_used_at": T,
        });
        assert_eq!(wire(ApiTokenReply::from(view.clone())), listed);
        let mut created = listed;
        created["token"] = json!("ixt_secret");
        let new = CreatedApiToken {
            view,
            token: "ixt_secret".into(),
        };
        assert_eq!(wire(CreatedApiTokenReply::from(new)), created);
        let report = QuotaReport {
            user_id: 7,
            limits: Quota {
                memory_mb: Some(2048),
                ..Quota::default()
            },
            usage: Usage {
                vms: 1,
                ..Usage::default()
            },
        };
        assert_eq!(
            wire(QuotaReportReply::from(report)),
            json!({
                "user_id": 7, "limits": {"memory_mb": 2048},
                "usage": {"vms": 1, "vcpus": 0, "memory_mb": 0, "disk_mb": 0, "nat_rules": 0, "proxies": 0},
            })
        );
    }

    #[test]
    fn logs() {
        let login = |user_id| LoginLogEntry {
            id: 4,
            user_id,
            user_name: user_id.map(|_| "Carol".to_string()),
            account: "carol".into(),
            ip: "127.0.0.1".into(),
            status: "failed".into(),
            reason: "wrong password".into(),
            ts: T,
        };
        let expected = |user| {
            json!({
                "id": 4, "user": user, "account": "carol", "ip": "127.0.0.1",
                "status": "failed", "reason": "wrong password", "date": DATE,
            })
        };
        assert_eq!(
            wire(LoginLogReply::from(login(Some(7)))),
            expected(json!({"id": 7, "name": "Carol"}))
        );
        assert_eq!(
            wire(LoginLogReply::from(login(None))),
            expected(Value::Null)
        );
        let op = |user_id| LogEntry {
            id: 9,
            ts: T,
            actor: "carol".into(),
            user_id,
            source_ip: "127.0.0.1".into(),
            face: "ptpb".into(),
            action: "user.create".into(),
            hs_name: None,
            target: Some("dave".into()),
            ok: true,
            message: "ok".into(),
        };
        let expected = |user| {
            json!({
                "id": 9, "user": user, "actor": "carol", "ip": "127.0.0.1",
                "face": "ptpb", "operation": "user.create", "hs_name": null,
                "target": "dave", "status": true, "message": "ok", "date": DATE,
            })
        };
        assert_eq!(
            wire(OperationLogReply::from(op(Some(7)))),
            expected(json!({"id": 7, "name": "carol"}))
        );
        assert_eq!(
            wire(OperationLogReply::from(op(None))),
            expected(Value::Null)
        );
    }
}
