//! End-to-end tests of accounts and credentials on the real binary: logins,
//! refresh rotation, logout, password changes, token expiry, personal API
//! tokens, lockout, rate limits, refused account input and the `ironidc
//! user` CLI. No VM is booted, so QEMU is not needed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::{http_client_builder, Server, ADMIN_PASSWORD, TOKEN};
use serde_json::{json, Value};

// ---------------------------------------------------------------- helpers

/// A server with the root token and these extra settings.
fn start(dir: &Path, env: &[(&str, &str)]) -> Server {
    let mut all = vec![("IRONIDC_TOKEN", TOKEN)];
    all.extend_from_slice(env);
    Server::start_with(dir, &all, None)
}

/// A reply with its headers.
struct Resp {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: Value,
}

impl Resp {
    fn retry_after(&self) -> u64 {
        let raw = self
            .headers
            .get("retry-after")
            .unwrap_or_else(|| panic!("no Retry-After on {}: {}", self.status, self.body))
            .to_str()
            .unwrap();
        raw.parse()
            .unwrap_or_else(|_| panic!("Retry-After {raw:?} is not an integer"))
    }
}

/// Any request: raw headers, an optional JSON body, and optionally from a
/// chosen local address (another loopback address is another client).
fn send(
    s: &Server,
    from: Option<&str>,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<Value>,
) -> Resp {
    let mut builder = http_client_builder().timeout(Duration::from_secs(60));
    if let Some(ip) = from {
        builder = builder.local_address(ip.parse::<std::net::IpAddr>().unwrap());
    }
    let client = builder.build().unwrap();
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut req = client.request(method, format!("{}{}", s.base, path));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().expect("request");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let text = resp.text().unwrap_or_default();
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    Resp {
        status,
        headers,
        body,
    }
}

fn login_body(account: &str, password: &str) -> Option<Value> {
    Some(json!({"account": account, "password": password}))
}

/// A login attempt; returns the reply whatever it is.
fn try_login(s: &Server, account: &str, password: &str) -> Resp {
    send(
        s,
        None,
        "POST",
        "/api/rbac/login/",
        &[],
        login_body(account, password),
    )
}

/// `{"refresh": …}` in the body.
fn refresh_with_body(s: &Server, refresh: &str) -> (u16, Value) {
    s.ptpb(
        None,
        "POST",
        "/api/rbac/refresh/",
        Some(json!({ "refresh": refresh })),
    )
}

/// The refresh token in the `refresh` cookie, no body.
fn refresh_with_cookie(s: &Server, refresh: &str) -> Resp {
    send(
        s,
        None,
        "POST",
        "/api/rbac/refresh/",
        &[("cookie", &format!("theme=dark; refresh={refresh}"))],
        None,
    )
}

/// (access, refresh) of a login or refresh reply.
fn pair_of(v: &Value) -> (String, String) {
    (
        v["token"]["access"]
            .as_str()
            .unwrap_or_else(|| panic!("{v}"))
            .to_string(),
        v["token"]["refresh"]
            .as_str()
            .unwrap_or_else(|| panic!("{v}"))
            .to_string(),
    )
}

/// PTPB's words for an error status.
fn msg_of(code: u16) -> &'static str {
    match code {
        400 => "参数错误",
        401 => "未登录",
        403 => "权限错误",
        404 => "未找到",
        429 => "请求过于频繁",
        _ => "服务器错误",
    }
}

/// A PTPB error reply of this status, in PTPB's shape.
fn assert_ptpb_error(status: u16, v: &Value, code: u16, what: &str) {
    assert_eq!(status, code, "{what}: {v}");
    assert_eq!(v["code"], code, "{what}: {v}");
    assert_eq!(v["msg"], msg_of(code), "{what}: {v}");
    assert!(
        v["detail"].is_string() || v["detail"].is_object(),
        "{what}: {v}"
    );
}

/// A 400 whose detail names `field` with a list of messages.
fn assert_field_error(status: u16, v: &Value, field: &str, what: &str) {
    assert_ptpb_error(status, v, 400, what);
    let messages = v["detail"][field]
        .as_array()
        .unwrap_or_else(|| panic!("{what}: detail.{field} is not a list: {v}"));
    assert!(!messages.is_empty(), "{what}: {v}");
    assert!(messages.iter().all(Value::is_string), "{what}: {v}");
}

/// The detail of a user's own record, with this access token.
fn detail_of(s: &Server, access: &str) -> (u16, Value) {
    s.ptpb(Some(access), "GET", "/api/rbac/user/detail/", None)
}

/// The id of a role by its code.
/// The id of a user by account.
fn user_id(s: &Server, account: &str) -> i64 {
    let v = s.admin_ptpb(
        "GET",
        &format!("/api/rbac/user/get/?account={account}&page_size=100"),
        None,
    );
    v["detail"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["account"] == account)
        .unwrap_or_else(|| panic!("no user {account}: {v}"))["id"]
        .as_i64()
        .unwrap()
}

fn user_total(s: &Server) -> u64 {
    s.admin_ptpb("GET", "/api/rbac/user/get/", None)["total"]
        .as_u64()
        .unwrap()
}

/// The claims of a JWT (decoded, not verified).
fn claims_of(jwt: &str) -> Value {
    let payload = jwt.split('.').nth(1).expect("a JWT has a payload");
    let mut bits = 0u32;
    let mut nbits = 0;
    let mut bytes = Vec::new();
    for c in payload.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'-' => 62,
            b'_' => 63,
            _ => panic!("not base64url: {payload}"),
        };
        bits = (bits << 6) | u32::from(v);
        nbits += 6;
        if nbits >= 8 {
            nbits -= 8;
            bytes.push((bits >> nbits) as u8);
            bits &= (1 << nbits) - 1;
        }
    }
    serde_json::from_slice(&bytes).expect("JWT payload is JSON")
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// Sleep until the wall clock reads `t` (unix seconds).
fn sleep_until_unix(t: f64) {
    let now = unix_now();
    if t > now {
        std::thread::sleep(Duration::from_secs_f64(t - now));
    }
}

/// `jwt` with one character of its payload changed.
fn tampered(jwt: &str) -> String {
    let mut parts: Vec<String> = jwt.split('.').map(str::to_string).collect();
    let payload: Vec<char> = parts[1].chars().collect();
    let i = payload.len() / 2;
    let mut changed = payload.clone();
    changed[i] = if payload[i] == 'x' { 'y' } else { 'x' };
    parts[1] = changed.into_iter().collect();
    parts.join(".")
}

// ------------------------------------------------------------------ tests

#[test]
fn login_refresh_rotation_logout_and_password_change() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path());

    // The built-in administrator logs in with the configured password; the
    // reply also sets the refresh token as an HttpOnly cookie.
    let r = try_login(&s, "administrator", ADMIN_PASSWORD);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["code"], 200);
    assert_eq!(r.body["msg"], "OK");
    let (access, refresh) = pair_of(&r.body);
    assert!(access.starts_with("eyJ") && refresh.starts_with("eyJ"));
    assert_ne!(access, refresh);
    let cookie = r
        .headers
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .find(|c| c.starts_with("refresh="))
        .expect("a refresh cookie");
    assert!(
        cookie.starts_with(&format!("refresh={refresh};")),
        "{cookie}"
    );
    assert!(cookie.contains("HttpOnly"), "{cookie}");

    // A wrong password: 401 in PTPB's shape.
    let r = try_login(&s, "administrator", "Wrong-Passw0rd-x");
    assert_ptpb_error(r.status, &r.body, 401, "wrong password");

    // The access token works bare (PTPB) and with `Bearer `.
    for header in [access.clone(), format!("Bearer {access}")] {
        let (st, v) = detail_of(&s, &header);
        assert_eq!(st, 200, "{v}");
        assert_eq!(v["detail"]["account"], "administrator", "{v}");
        assert_eq!(v["detail"]["protected"], true, "{v}");
        assert_eq!(v["detail"]["ip"], "127.0.0.1", "{v}");
    }
    // And on the OpenIDCS face.
    let (st, v) = s.call_as(Some(&access), "GET", "/api/server/detail", None);
    assert_eq!(st, 200, "{v}");

    // Refresh in the body: a whole new pair.
    let (st, v) = refresh_with_body(&s, &refresh);
    assert_eq!(st, 200, "{v}");
    let (access1, refresh1) = pair_of(&v);
    assert_ne!(access1, access);
    assert_ne!(refresh1, refresh);
    assert_eq!(detail_of(&s, &access1).0, 200);

    // Refresh through the cookie, as PTPB's client does.
    let r = refresh_with_cookie(&s, &refresh1);
    assert_eq!(r.status, 200, "{}", r.body);
    let (access2, refresh2) = pair_of(&r.body);
    assert_ne!(access2, access1);
    assert_ne!(refresh2, refresh1);
    assert_eq!(detail_of(&s, &access2).0, 200);

    // A spent refresh token presented again: refused, and the whole
    // session is revoked (its newest tokens too).
    let (st, v) = refresh_with_body(&s, &refresh1);
    assert_ptpb_error(st, &v, 401, "reused refresh token");
    let (st, v) = detail_of(&s, &access2);
    assert_ptpb_error(st, &v, 401, "access token of a revoked session");
    let (st, v) = refresh_with_body(&s, &refresh2);
    assert_ptpb_error(st, &v, 401, "refresh token of a revoked session");

    // One kind of token is never the other; forged tokens fail.
    let (a, r) = s.login("administrator", ADMIN_PASSWORD);
    let (st, v) = detail_of(&s, &r);
    assert_ptpb_error(st, &v, 401, "refresh token as access token");
    let (st, v) = s.call_as(Some(&r), "GET", "/api/server/detail", None);
    assert_eq!(st, 401, "refresh token on OpenIDCS: {v}");
    let (st, v) = refresh_with_body(&s, &a);
    assert_ptpb_error(st, &v, 401, "access token as refresh token");
    let (st, v) = detail_of(&s, &tampered(&a));
    assert_ptpb_error(st, &v, 401, "tampered access token");
    let (st, v) = refresh_with_body(&s, &tampered(&r));
    assert_ptpb_error(st, &v, 401, "tampered refresh token");
    for garbage in ["garbage", "eyJhbGciOi.not.ajwt", "Bearer ", "ixt_nonsense"] {
        let (st, v) = detail_of(&s, garbage);
        assert_ptpb_error(st, &v, 401, garbage);
    }
    let (st, v) = s.ptpb(None, "GET", "/api/rbac/user/detail/", None);
    assert_ptpb_error(st, &v, 401, "no token");
    // None of that spoiled the session.
    assert_eq!(detail_of(&s, &a).0, 200);

    // Logout ends one session: its access and refresh tokens stop
    // working, another session of the same user does not.
    let (other_access, other_refresh) = s.login("administrator", ADMIN_PASSWORD);
    let (st, v) = s.ptpb(Some(&a), "POST", "/api/rbac/logout/", None);
    assert_eq!(st, 200, "{v}");
    let (st, v) = detail_of(&s, &a);
    assert_ptpb_error(st, &v, 401, "access token after logout");
    let (st, v) = refresh_with_body(&s, &r);
    assert_ptpb_error(st, &v, 401, "refresh token after logout");
    assert_eq!(detail_of(&s, &other_access).0, 200);
    let (st, v) = refresh_with_body(&s, &other_refresh);
    assert_eq!(st, 200, "the other session refreshes: {v}");
    // The root token has no session to end.
    let (st, v) = s.ptpb(Some(TOKEN), "POST", "/api/rbac/logout/", None);
    assert_ptpb_error(st, &v, 400, "root token logout");

    // A customer changes their own password.
    let customer = s.role_id("Customer");
    let old = "Sunny-Meadow-2026";
    let new = "Quiet-River-2027";
    s.add_user("carol", old, &[customer]);
    let (c1, c1_refresh) = s.login("carol", old);
    let (c2, _) = s.login("carol", old);
    let change = |token: &str, old_password: &str, new_password: &str| {
        s.ptpb(
            Some(token),
            "POST",
            "/api/rbac/user/reset_password/",
            Some(json!({"old_password": old_password, "new_password": new_password})),
        )
    };
    let (st, v) = change(&c1, "Not-the-old-1", new);
    assert_field_error(st, &v, "old_password", "wrong old password");
    let (st, v) = change(&c1, old, old);
    assert_field_error(st, &v, "new_password", "same password");
    for weak in ["Sh0rt!", "alllowercase", "Carol-2027"] {
        let (st, v) = change(&c1, old, weak);
        assert_field_error(st, &v, "new_password", weak);
    }
    // Refusals changed nothing.
    assert_eq!(detail_of(&s, &c1).0, 200);
    let (st, v) = change(&c1, old, new);
    assert_eq!(st, 200, "{v}");
    // Every session of hers ends, the caller's included.
    for t in [&c1, &c2] {
        let (st, v) = detail_of(&s, t);
        assert_ptpb_error(st, &v, 401, "token after a password change");
    }
    let (st, v) = refresh_with_body(&s, &c1_refresh);
    assert_ptpb_error(st, &v, 401, "refresh after a password change");
    let (c3, _) = s.login("carol", new);
    let (st, v) = detail_of(&s, &c3);
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["detail"]["account"], "carol");
    assert_eq!(v["detail"]["protected"], false);
    let r = try_login(&s, "carol", old);
    assert_ptpb_error(r.status, &r.body, 401, "old password");
    // Others' sessions are untouched.
    assert_eq!(detail_of(&s, &other_access).0, 200);
}

#[test]
fn tokens_expire() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(
        dir.path(),
        &[
            ("IRONIDC_ACCESS_TOKEN_SECS", "2"),
            ("IRONIDC_REFRESH_TOKEN_SECS", "4"),
        ],
    );
    // Times are whole seconds, and a login dates its session when the
    // request arrives but its tokens after the password check. So log in
    // just after a second begins, and again should the check have crossed
    // into the next second: then the access token ends (exp + 1, the
    // first second past exp) strictly before the refresh token (its exp).
    let (access_a, refresh_a, access_exp, refresh_exp) = (0..5)
        .find_map(|_| {
            sleep_until_unix(unix_now().floor() + 1.02);
            let r = try_login(&s, "administrator", ADMIN_PASSWORD);
            assert_eq!(r.status, 200, "{}", r.body);
            assert_eq!(r.body["token"]["access_expires_in"], 2, "{}", r.body);
            let refresh_in = r.body["token"]["refresh_expires_in"].as_u64().unwrap();
            assert!((1..=4).contains(&refresh_in), "{}", r.body);
            let (access, refresh) = pair_of(&r.body);
            let access_claims = claims_of(&access);
            let refresh_claims = claims_of(&refresh);
            assert_eq!(access_claims["token_type"], "access");
            assert_eq!(refresh_claims["token_type"], "refresh");
            let iat = access_claims["iat"].as_f64().unwrap();
            let access_exp = access_claims["exp"].as_f64().unwrap();
            let refresh_exp = refresh_claims["exp"].as_f64().unwrap();
            assert_eq!(access_exp, iat + 2.0);
            (refresh_exp == iat + 4.0).then_some((access, refresh, access_exp, refresh_exp))
        })
        .expect("a login within one second");
    assert_eq!(detail_of(&s, &access_a).0, 200);
    // A second session, left to expire.
    let (_, refresh_b) = s.login("administrator", ADMIN_PASSWORD);
    let refresh_b_exp = claims_of(&refresh_b)["exp"].as_f64().unwrap();

    // Past the access token's life, within the refresh token's: the
    // refresh goes first, it is the one with a deadline.
    sleep_until_unix(access_exp + 1.02);
    assert!(unix_now() < refresh_exp);
    let (st, v) = refresh_with_body(&s, &refresh_a);
    assert_eq!(st, 200, "refresh within its life: {v}");
    let (access_a2, refresh_a2) = pair_of(&v);
    let (st, v) = detail_of(&s, &access_a);
    assert_ptpb_error(st, &v, 401, "expired access token");
    assert!(
        v["detail"].as_str().unwrap_or_default().contains("expired"),
        "{v}"
    );
    let (st, v) = s.call_as(Some(&access_a), "GET", "/api/server/detail", None);
    assert_eq!(st, 401, "expired access token on OpenIDCS: {v}");
    assert_eq!(detail_of(&s, &access_a2).0, 200);

    // Past the refresh token's life (4 s from login): refused.
    sleep_until_unix(refresh_b_exp + 0.2);
    let (st, v) = refresh_with_body(&s, &refresh_b);
    assert_ptpb_error(st, &v, 401, "expired refresh token");
    assert!(
        v["detail"].as_str().unwrap_or_default().contains("expired"),
        "{v}"
    );

    // A rotated refresh token has a life of its own, and it ends too,
    // taking the session's access tokens with it.
    let refresh_a2_exp = claims_of(&refresh_a2)["exp"].as_f64().unwrap();
    assert!(refresh_a2_exp > refresh_exp, "rotation renews the session");
    sleep_until_unix(refresh_a2_exp + 0.2);
    let (st, v) = refresh_with_body(&s, &refresh_a2);
    assert_ptpb_error(st, &v, 401, "expired rotated refresh token");
    let (st, v) = detail_of(&s, &access_a2);
    assert_ptpb_error(st, &v, 401, "access token of an expired session");
}

#[test]
fn api_tokens_scoped_and_revocable() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path());
    let viewer = s.add_role("viewer", &["vm.instance.read", "host.server.read"]);
    s.add_user("dana", "Sunny-Meadow-2026", &[viewer]);
    let customer = s.role_id("Customer");
    s.add_user("erin", "Sunny-Meadow-2026", &[customer]);
    let (dana, _) = s.login("dana", "Sunny-Meadow-2026");
    let (erin, _) = s.login("erin", "Sunny-Meadow-2026");

    let add =
        |who: &str, body: Value| s.ptpb(Some(who), "POST", "/api/rbac/token/add/", Some(body));

    // A token limited to reading hosts.
    let (st, v) = add(
        &dana,
        json!({"name": "monitoring", "scopes": ["host.server.read"]}),
    );
    assert_eq!(st, 200, "{v}");
    let token = v["detail"]["token"].as_str().unwrap().to_string();
    let token_id = v["detail"]["id"].as_i64().unwrap();
    let hint = v["detail"]["hint"].as_str().unwrap().to_string();
    assert!(token.starts_with("ixt_"), "{v}");
    assert!(token.len() > 20, "{v}");
    assert!(token.starts_with(&hint) && hint.len() < token.len(), "{v}");
    assert_eq!(v["detail"]["scopes"], json!(["host.server.read"]), "{v}");

    // It works on the OpenIDCS face within its scope only.
    let (st, v) = s.call_as(Some(&token), "GET", "/api/server/detail", None);
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["code"], 200, "{v}");
    let (st, v) = s.call_as(Some(&token), "GET", "/api/client/detail/h1", None);
    assert_eq!(st, 403, "scope lacks vm.instance.read: {v}");
    assert_eq!(v["code"], 403, "{v}");
    // dana herself may read VMs: only the token is narrower.
    let (st, v) = s.call_as(Some(&dana), "GET", "/api/client/detail/h1", None);
    assert_eq!(st, 404, "dana reads VMs; no host h1: {v}");
    // And on the PTPB face, as dana.
    let (st, v) = s.ptpb(Some(&token), "GET", "/api/rbac/user/detail/", None);
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["detail"]["account"], "dana", "{v}");
    // An API token has no session to log out.
    let (st, v) = s.ptpb(Some(&token), "POST", "/api/rbac/logout/", None);
    assert_ptpb_error(st, &v, 400, "API token logout");

    // Scopes beyond the user's permissions, unknown ones, bad lifetimes.
    let (st, v) = add(
        &dana,
        json!({"name": "admin", "scopes": ["system.user.create"]}),
    );
    assert_ptpb_error(st, &v, 403, "scope the user lacks");
    let (st, v) = add(
        &dana,
        json!({"name": "odd", "scopes": ["no.such.permission"]}),
    );
    assert_field_error(st, &v, "scopes", "unknown scope");
    let (st, v) = add(&dana, json!({"name": "zero", "expires_in_days": 0}));
    assert_field_error(st, &v, "expires_in_days", "zero days");
    let (st, v) = add(&dana, json!({"name": "  "}));
    assert_field_error(st, &v, "name", "empty name");
    // The root token is no user: it cannot own tokens.
    let (st, v) = add(TOKEN, json!({"name": "root"}));
    assert_ptpb_error(st, &v, 400, "root token makes a token");

    // Without scopes a token carries the user's permissions.
    let (st, v) = add(&dana, json!({"name": "everything", "expires_in_days": 30}));
    assert_eq!(st, 200, "{v}");
    assert_eq!(
        v["detail"]["scopes"],
        json!(["host.server.read", "vm.instance.read"]),
        "{v}"
    );
    assert!(v["detail"]["expires_at"].as_i64().is_some(), "{v}");
    let full_token = v["detail"]["token"].as_str().unwrap().to_string();
    let (st, v) = s.call_as(Some(&full_token), "GET", "/api/client/detail/h1", None);
    assert_eq!(st, 404, "full token reads VMs; no host h1: {v}");

    // The list shows hints, never the secrets.
    let (st, v) = s.ptpb(Some(&dana), "GET", "/api/rbac/token/get/", None);
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["total"], 2, "{v}");
    let listed = v["detail"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == token_id)
        .unwrap_or_else(|| panic!("token {token_id} not listed: {v}"))
        .clone();
    assert_eq!(listed["hint"], hint.as_str(), "{v}");
    assert_eq!(listed["name"], "monitoring", "{v}");
    assert!(listed.get("token").is_none(), "{v}");
    let text = v.to_string();
    assert!(!text.contains(&token), "the list leaks a token: {text}");
    assert!(
        !text.contains(&full_token),
        "the list leaks a token: {text}"
    );
    // Others see only their own.
    let (_, v) = s.ptpb(Some(&erin), "GET", "/api/rbac/token/get/", None);
    assert_eq!(v["total"], 0, "{v}");

    // Nobody deletes another user's token.
    let (st, v) = add(&erin, json!({"name": "erin's"}));
    assert_eq!(st, 200, "{v}");
    let erin_token = v["detail"]["token"].as_str().unwrap().to_string();
    let erin_token_id = v["detail"]["id"].as_i64().unwrap();
    let (st, v) = s.ptpb(
        Some(&dana),
        "POST",
        "/api/rbac/token/del/",
        Some(json!({ "id": erin_token_id })),
    );
    assert_ptpb_error(st, &v, 404, "someone else's token");
    let (st, v) = s.ptpb(Some(&erin_token), "GET", "/api/rbac/user/detail/", None);
    assert_eq!(st, 200, "erin's token still works: {v}");
    assert_eq!(v["detail"]["account"], "erin", "{v}");

    // Deleting revokes at once.
    let (st, v) = s.ptpb(
        Some(&dana),
        "POST",
        "/api/rbac/token/del/",
        Some(json!({ "id": token_id })),
    );
    assert_eq!(st, 200, "{v}");
    let (st, v) = s.call_as(Some(&token), "GET", "/api/server/detail", None);
    assert_eq!(st, 401, "deleted token: {v}");
    assert_eq!(v["code"], 401, "{v}");
    let (st, v) = s.ptpb(Some(&token), "GET", "/api/rbac/user/detail/", None);
    assert_ptpb_error(st, &v, 401, "deleted token on PTPB");
    let (st, v) = s.ptpb(
        Some(&dana),
        "POST",
        "/api/rbac/token/del/",
        Some(json!({ "id": token_id })),
    );
    assert_ptpb_error(st, &v, 404, "token deleted twice");
    // The other token of dana's is untouched.
    let (st, _) = s.call_as(Some(&full_token), "GET", "/api/server/detail", None);
    assert_eq!(st, 200);

    // Only hashes are stored: no token appears in the database files.
    for name in ["ironidc.db", "ironidc.db-wal"] {
        let path = dir.path().join(name);
        if !path.exists() {
            assert_ne!(name, "ironidc.db", "no database at {}", path.display());
            continue;
        }
        let bytes = std::fs::read(&path).unwrap();
        for secret in [&token, &full_token, &erin_token] {
            assert!(
                !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                "{name} holds an API token in the clear"
            );
        }
    }
}

#[test]
fn lockout_after_repeated_failures() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path(), &[("IRONIDC_LOCKOUT_AFTER", "3")]);
    let customer = s.role_id("Customer");
    let frank_id = s.add_user("frank", "Sunny-Meadow-2026", &[customer]);
    let gina_id = s.add_user("gina", "Sunny-Meadow-2026", &[customer]);

    let mut wrong = Vec::new();
    for i in 0..3 {
        let r = try_login(&s, "frank", &format!("Wrong-pass-{i}"));
        assert_ptpb_error(r.status, &r.body, 401, "wrong password");
        wrong.push(r.body);
    }
    // Locked: even the right password is refused, with a time to wait.
    let r = try_login(&s, "frank", "Sunny-Meadow-2026");
    assert_ptpb_error(r.status, &r.body, 429, "locked account");
    assert!(r.retry_after() > 0, "{:?}", r.headers);
    assert!(
        r.body["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("locked"),
        "{}",
        r.body
    );
    // The user list says so.
    let v = s.admin_ptpb("GET", "/api/rbac/user/get/?account=frank", None);
    assert_eq!(v["detail"][0]["locked"], true, "{v}");

    // An unknown account reads exactly like a wrong password.
    let r = try_login(&s, "nobody-here", "Wrong-pass-0");
    assert_ptpb_error(r.status, &r.body, 401, "unknown account");
    assert_eq!(r.body, wrong[0], "unknown account vs wrong password");
    assert_eq!(wrong[0], wrong[1]);
    assert_eq!(wrong[1], wrong[2]);

    // The login log as the administrator.
    let (admin, _) = s.login("administrator", ADMIN_PASSWORD);
    let (st, v) = s.ptpb(
        Some(&admin),
        "GET",
        "/api/audit/login/get/?desc=true&page_size=100",
        None,
    );
    assert_eq!(st, 200, "{v}");
    let rows = v["detail"].as_array().unwrap();
    let franks: Vec<&Value> = rows.iter().filter(|e| e["account"] == "frank").collect();
    let failed = franks.iter().filter(|e| e["status"] == "failed").count();
    let locked = franks.iter().filter(|e| e["status"] == "locked").count();
    assert_eq!(failed, 3, "{v}");
    assert_eq!(locked, 1, "{v}");
    for e in &franks {
        assert_eq!(e["ip"], "127.0.0.1", "{e}");
        assert_eq!(e["user"]["id"], frank_id, "{e}");
    }
    assert!(
        rows.iter().any(|e| e["account"] == "nobody-here"
            && e["status"] == "failed"
            && e["user"].is_null()),
        "{v}"
    );
    // Newest first.
    let ids: Vec<i64> = rows.iter().map(|e| e["id"].as_i64().unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[0] > w[1]), "{v}");

    // A customer reads their own rows only.
    let (gina, _) = s.login("gina", "Sunny-Meadow-2026");
    let (st, v) = s.ptpb(
        Some(&gina),
        "GET",
        "/api/audit/login/get/?self=true&page_size=100",
        None,
    );
    assert_eq!(st, 200, "{v}");
    let rows = v["detail"].as_array().unwrap();
    assert!(!rows.is_empty(), "{v}");
    assert_eq!(v["total"], rows.len(), "{v}");
    for e in rows {
        assert_eq!(e["account"], "gina", "{e}");
        assert_eq!(e["user"]["id"], gina_id, "{e}");
    }
    let (st, v) = s.ptpb(Some(&gina), "GET", "/api/audit/login/get/", None);
    assert_ptpb_error(st, &v, 403, "customer reads everyone's logins");
}

#[test]
fn rate_limits_per_user_and_per_ip() {
    // Server A: per-user and login limits.
    let dir_a = tempfile::tempdir().unwrap();
    let a = start(
        dir_a.path(),
        &[
            ("IRONIDC_RATE_LIMIT_USER", "5"),
            ("IRONIDC_RATE_LIMIT_LOGIN", "3"),
        ],
    );
    let customer = a.role_id("Customer");
    a.add_user("henry", "Sunny-Meadow-2026", &[customer]);
    // Login attempt 1 of 3 this minute.
    let (henry, _) = a.login("henry", "Sunny-Meadow-2026");
    for i in 0..5 {
        let (st, v) = a.ptpb(Some(&henry), "GET", "/api/rbac/routes/", None);
        assert_eq!(st, 200, "request {i}: {v}");
    }
    let r = send(
        &a,
        None,
        "GET",
        "/api/rbac/routes/",
        &[("authorization", &henry)],
        None,
    );
    assert_ptpb_error(r.status, &r.body, 429, "6th request of a user");
    assert!(r.retry_after() >= 1, "{:?}", r.headers);
    assert!(r.body["detail"].is_string(), "{}", r.body);
    // The OpenIDCS face shares the user's budget.
    let (st, v) = a.call_as(Some(&henry), "GET", "/api/server/detail", None);
    assert_eq!(st, 429, "{v}");
    // The root token is not limited.
    for i in 0..10 {
        let (st, v) = a.ptpb(Some(TOKEN), "GET", "/api/rbac/routes/", None);
        assert_eq!(st, 200, "root request {i}: {v}");
    }
    // Logins: attempts 2 and 3 are heard, the 4th is refused.
    for _ in 0..2 {
        let r = try_login(&a, "nobody-here", "Wrong-pass-0");
        assert_eq!(r.status, 401, "{}", r.body);
    }
    let r = try_login(&a, "henry", "Sunny-Meadow-2026");
    assert_ptpb_error(r.status, &r.body, 429, "4th login in a minute");
    assert!(r.retry_after() >= 1, "{:?}", r.headers);
    drop(a);

    // Server B: per-address limit, no trusted proxy. The test speaks from
    // 127.0.0.2, an address nothing else has used (the readiness probe
    // came from 127.0.0.1).
    let dir_b = tempfile::tempdir().unwrap();
    let b = start(dir_b.path(), &[("IRONIDC_RATE_LIMIT_IP", "5")]);
    let auth = [("authorization", TOKEN)];
    for i in 0..5 {
        let xff = format!("198.51.100.{}", i + 1);
        let r = send(
            &b,
            Some("127.0.0.2"),
            "GET",
            "/api/rbac/routes/",
            &[auth[0], ("x-forwarded-for", &xff)],
            None,
        );
        assert_eq!(r.status, 200, "request {i}: {}", r.body);
    }
    // X-Forwarded-For is not believed: the 6th is over the address's budget.
    let r = send(
        &b,
        Some("127.0.0.2"),
        "GET",
        "/api/server/detail",
        &[
            ("authorization", &format!("Bearer {TOKEN}")),
            ("x-forwarded-for", "198.51.100.99"),
        ],
        None,
    );
    assert_eq!(r.status, 429, "{}", r.body);
    assert_eq!(r.body["code"], 429, "{}", r.body);
    assert!(r.body["msg"].is_string(), "{}", r.body);
    assert!(r.body["data"].is_null(), "{}", r.body);
    assert!(
        r.body.get("data").is_some(),
        "OpenIDCS envelope: {}",
        r.body
    );
    assert!(r.retry_after() >= 1, "{:?}", r.headers);
    // A PTPB path is refused in PTPB's shape, unauthenticated too.
    let r = send(
        &b,
        Some("127.0.0.2"),
        "GET",
        "/api/rbac/routes/",
        &auth,
        None,
    );
    assert_ptpb_error(r.status, &r.body, 429, "PTPB path over the address limit");
    assert!(r.retry_after() >= 1, "{:?}", r.headers);
    let r = try_login(&b, "administrator", ADMIN_PASSWORD);
    assert_eq!(r.status, 200, "127.0.0.1 has its own budget: {}", r.body);
    let r = send(
        &b,
        Some("127.0.0.2"),
        "POST",
        "/api/rbac/login/",
        &[],
        login_body("administrator", ADMIN_PASSWORD),
    );
    assert_ptpb_error(r.status, &r.body, 429, "login over the address limit");
    drop(b);

    // Server C: the same limit behind a trusted proxy: each forwarded
    // client has its own budget.
    let dir_c = tempfile::tempdir().unwrap();
    let c = start(
        dir_c.path(),
        &[
            ("IRONIDC_RATE_LIMIT_IP", "5"),
            ("IRONIDC_TRUSTED_PROXIES", "127.0.0.1"),
        ],
    );
    for i in 0..10 {
        let xff = format!("198.51.100.{}", i + 1);
        let r = send(
            &c,
            None,
            "GET",
            "/api/rbac/routes/",
            &[auth[0], ("x-forwarded-for", &xff)],
            None,
        );
        assert_eq!(r.status, 200, "client {xff}: {}", r.body);
    }
    for i in 0..6 {
        let r = send(
            &c,
            None,
            "GET",
            "/api/rbac/routes/",
            &[auth[0], ("x-forwarded-for", "203.0.113.7")],
            None,
        );
        if i < 5 {
            assert_eq!(r.status, 200, "request {i}: {}", r.body);
        } else {
            assert_ptpb_error(
                r.status,
                &r.body,
                429,
                "6th request of one forwarded client",
            );
        }
    }
    // The forwarded address is the one that is logged.
    let r = send(
        &c,
        None,
        "POST",
        "/api/rbac/login/",
        &[("x-forwarded-for", "192.0.2.44")],
        login_body("administrator", ADMIN_PASSWORD),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let (access, _) = pair_of(&r.body);
    let r = send(
        &c,
        None,
        "GET",
        "/api/rbac/user/detail/",
        &[
            ("authorization", &access),
            ("x-forwarded-for", "192.0.2.45"),
        ],
        None,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["detail"]["ip"], "192.0.2.45", "{}", r.body);
    let r = send(
        &c,
        None,
        "GET",
        "/api/audit/login/get/?desc=true",
        &[("authorization", TOKEN), ("x-forwarded-for", "192.0.2.46")],
        None,
    );
    assert_eq!(r.body["detail"][0]["ip"], "192.0.2.44", "{}", r.body);
}

#[test]
fn bad_account_input_names_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path());
    let customer = s.role_id("Customer");
    let admin_role = s.role_id("Administrator");
    let admin_id = user_id(&s, "administrator");
    s.admin_ptpb(
        "POST",
        "/api/rbac/user/add/",
        Some(json!({
            "account": "ivan", "password": "Sunny-Meadow-2026", "name": "Ivan",
            "email": "ivan@example.com", "phone_number": "+86 175-3133-3029",
            "roles": [customer],
        })),
    );
    let total = user_total(&s);

    let refused = [
        (
            "password",
            json!({"account": "jack", "password": "Ab1-x", "name": "Jack"}),
        ),
        (
            "password",
            json!({"account": "jack", "password": "alllowercase", "name": "Jack"}),
        ),
        (
            "password",
            json!({"account": "jackson", "password": "Jackson-2026!", "name": "Jack"}),
        ),
        (
            "account",
            json!({"account": "IVAN", "password": "Sunny-Meadow-2026", "name": "Jack"}),
        ),
        (
            "email",
            json!({"account": "jack", "password": "Sunny-Meadow-2026", "name": "Jack",
                   "email": "Ivan@Example.com"}),
        ),
        (
            "phone_number",
            json!({"account": "jack", "password": "Sunny-Meadow-2026", "name": "Jack",
                   "phone_number": "+86 175-3133-3029"}),
        ),
        (
            "email",
            json!({"account": "jack", "password": "Sunny-Meadow-2026", "name": "Jack",
                   "email": "not-an-email"}),
        ),
        (
            "account",
            json!({"account": "admin", "password": "Sunny-Meadow-2026", "name": "Jack"}),
        ),
        (
            "account",
            json!({"account": "-jack", "password": "Sunny-Meadow-2026", "name": "Jack"}),
        ),
        (
            "name",
            json!({"account": "jack", "password": "Sunny-Meadow-2026", "name": " "}),
        ),
        (
            "roles",
            json!({"account": "jack", "password": "Sunny-Meadow-2026", "name": "Jack",
                   "roles": [9999]}),
        ),
    ];
    for (field, body) in refused {
        let (st, v) = s.ptpb(
            Some(TOKEN),
            "POST",
            "/api/rbac/user/add/",
            Some(body.clone()),
        );
        assert_field_error(st, &v, field, &body.to_string());
    }
    // Nothing half-made.
    assert_eq!(user_total(&s), total);
    let v = s.admin_ptpb("GET", "/api/rbac/user/get/?account=jack", None);
    assert_eq!(v["total"], 0, "{v}");

    // The protected administrator and built-in roles.
    let (st, v) = s.ptpb(
        Some(TOKEN),
        "POST",
        "/api/rbac/user/del/",
        Some(json!({"id_list": [admin_id]})),
    );
    assert_field_error(st, &v, "id_list", "delete the administrator");
    let (st, v) = s.ptpb(
        Some(TOKEN),
        "POST",
        "/api/rbac/user/edit/",
        Some(json!({"id": admin_id, "status": false})),
    );
    assert_field_error(st, &v, "status", "disable the administrator");
    for role in [admin_role, customer] {
        let (st, v) = s.ptpb(
            Some(TOKEN),
            "POST",
            "/api/rbac/role/del/",
            Some(json!({"id_list": [role]})),
        );
        assert_field_error(st, &v, "id_list", "delete a built-in role");
    }
    let (st, v) = s.ptpb(
        Some(TOKEN),
        "POST",
        "/api/rbac/role/edit/permission/",
        Some(json!({"id": admin_role, "perms": [1]})),
    );
    assert_ptpb_error(st, &v, 400, "edit the Administrator's permissions");
    let (st, v) = s.ptpb(
        Some(TOKEN),
        "POST",
        "/api/rbac/role/edit/",
        Some(json!({"id": admin_role, "description": "mine now"})),
    );
    assert_ptpb_error(st, &v, 400, "edit the Administrator role");
    let v = s.admin_ptpb(
        "GET",
        &format!("/api/rbac/role/get/permission/?id={admin_role}"),
        None,
    );
    let catalogue = s.admin_ptpb("GET", "/api/rbac/perm/", None);
    assert_eq!(
        v["detail"]["perms"].as_array().unwrap().len(),
        catalogue["detail"].as_array().unwrap().len(),
        "the Administrator keeps every permission: {v}"
    );

    // Unknown permission ids.
    let roles_total = s.admin_ptpb("GET", "/api/rbac/role/get/", None)["total"].clone();
    let (st, v) = s.ptpb(
        Some(TOKEN),
        "POST",
        "/api/rbac/role/add/",
        Some(json!({"name": "Odd", "code": "odd", "perms": [1, 9999]})),
    );
    assert_field_error(st, &v, "perms", "unknown permission on add");
    assert_eq!(
        s.admin_ptpb("GET", "/api/rbac/role/get/", None)["total"],
        roles_total
    );

    // Someone who may edit users, but holds nothing else.
    let editor = s.add_role("editor", &["system.user.update"]);
    let (st, v) = s.ptpb(
        Some(TOKEN),
        "POST",
        "/api/rbac/role/edit/permission/",
        Some(json!({"id": editor, "perms": [3, 9999]})),
    );
    assert_field_error(st, &v, "perms", "unknown permission on grant");
    let kate_id = s.add_user("kate", "Sunny-Meadow-2026", &[editor]);
    let (kate, _) = s.login("kate", "Sunny-Meadow-2026");
    let (st, v) = s.ptpb(
        Some(&kate),
        "POST",
        "/api/rbac/user/role/",
        Some(json!({"id": admin_id, "roles": [customer]})),
    );
    assert_ptpb_error(st, &v, 403, "editor sets the administrator's roles");
    let (st, v) = s.ptpb(
        Some(&kate),
        "POST",
        "/api/rbac/user/set_password/",
        Some(json!({"id": admin_id, "password": "Taken-over-2026"})),
    );
    assert_ptpb_error(st, &v, 403, "editor sets the administrator's password");
    let (st, v) = s.ptpb(
        Some(&kate),
        "POST",
        "/api/rbac/user/role/",
        Some(json!({"id": kate_id, "roles": [editor, admin_role]})),
    );
    assert_ptpb_error(st, &v, 403, "editor grants herself Administrator");
    let (st, v) = detail_of(&s, &kate);
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["detail"]["roles"], json!([editor]), "{v}");
    // The administrator is untouched.
    s.login("administrator", ADMIN_PASSWORD);

    // Role codes are unique, whatever the case.
    s.add_role("auditor", &[]);
    for code in ["auditor", "AUDITOR"] {
        let (st, v) = s.ptpb(
            Some(TOKEN),
            "POST",
            "/api/rbac/role/add/",
            Some(json!({"name": format!("Another {code}"), "code": code, "perms": []})),
        );
        assert_field_error(st, &v, "code", code);
    }
}

/// `ironidc user ARGS…` with `stdin` as its input.
fn user_cli(before: &[&str], after: &[&str], stdin: &str) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ironidc"));
    cmd.arg("user")
        .args(before)
        .args(after)
        .env("IRONIDC_ADMIN_PASSWORD", ADMIN_PASSWORD)
        .env_remove("IRONIDC_DATABASE_URL")
        .env_remove("IRONIDC_DATA_DIR")
        .env_remove("IRONIDC_CONFIG")
        .env_remove("IRONIDC_TOKEN")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn ironidc user");
    // A command that fails before reading its input closes the pipe.
    let _ = child.stdin.take().unwrap().write_all(stdin.as_bytes());
    child.wait_with_output().unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "status {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn cli_user_commands() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data_arg = data.to_str().unwrap();
    // The settings flags go before the subcommand (see the last check).
    let at = ["--data-dir", data_arg];

    // A password naming the account is refused like any weak one.
    let out = user_cli(
        &at,
        &["add", "carol", "--name", "Carol"],
        "Carol-pass-2026\n",
    );
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("password"),
        "{}",
        text(&out)
    );
    let out = user_cli(
        &at,
        &["add", "carol", "--name", "Carol"],
        "Sunny-Meadow-2026\n",
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("carol"),
        "{}",
        text(&out)
    );

    let out = user_cli(&at, &["add", "dave", "--name", "Dave"], "weakpass\n");
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("password"),
        "{}",
        text(&out)
    );
    let out = user_cli(
        &at,
        &["add", "carol", "--name", "Again"],
        "Sunny-Meadow-2026\n",
    );
    assert!(!out.status.success(), "duplicate account: {}", text(&out));

    let out = user_cli(&at, &["list"], "");
    assert!(out.status.success(), "{}", text(&out));
    let listing = String::from_utf8_lossy(&out.stdout).to_string();
    let carol = listing
        .lines()
        .find(|l| l.contains(" carol "))
        .unwrap_or_else(|| panic!("carol not listed: {listing}"));
    assert!(carol.trim_end().ends_with("Customer"), "{listing}");
    assert!(carol.contains("Carol"), "{listing}");
    assert!(!listing.contains("dave"), "{listing}");
    let admin = listing
        .lines()
        .find(|l| l.contains(" administrator "))
        .unwrap_or_else(|| panic!("administrator not listed: {listing}"));
    assert!(admin.trim_end().ends_with("Administrator"), "{listing}");

    let out = user_cli(&at, &["role", "carol", "Administrator"], "");
    assert!(out.status.success(), "{}", text(&out));
    let out = user_cli(&at, &["role", "carol", "NoSuchRole"], "");
    assert!(!out.status.success(), "{}", text(&out));
    let out = user_cli(&at, &["passwd", "carol"], "Quiet-River-2027\n");
    assert!(out.status.success(), "{}", text(&out));
    let out = user_cli(&at, &["passwd", "carol"], "short\n");
    assert!(!out.status.success(), "{}", text(&out));

    let out = user_cli(&at, &["list", "--account", "car"], "");
    assert!(out.status.success(), "{}", text(&out));
    let listing = String::from_utf8_lossy(&out.stdout).to_string();
    let carol = listing
        .lines()
        .find(|l| l.contains(" carol "))
        .unwrap_or_else(|| panic!("carol not listed: {listing}"));
    assert!(carol.trim_end().ends_with("Administrator"), "{listing}");
    assert!(!listing.contains("administrator"), "{listing}");

    // The controller on the same database.
    {
        let s = Server::start(&data);
        let r = try_login(&s, "carol", "Sunny-Meadow-2026");
        assert_ptpb_error(r.status, &r.body, 401, "carol's old password");
        let (carol, _) = s.login("carol", "Quiet-River-2027");
        let (st, v) = detail_of(&s, &carol);
        assert_eq!(st, 200, "{v}");
        let admin_role = s.role_id("Administrator");
        assert_eq!(v["detail"]["roles"], json!([admin_role]), "{v}");
        assert_eq!(v["detail"]["name"], "Carol", "{v}");
        s.login("administrator", ADMIN_PASSWORD);
    }

    // The settings flags are global: accepted after the subcommand too.
    let out = user_cli(
        &[],
        &["add", "zoe", "--name", "Zoe", "--data-dir", data_arg],
        "Sunny-Meadow-2026\n",
    );
    assert!(out.status.success(), "{}", text(&out));
    let out = user_cli(&[], &["list", "--data-dir", data_arg], "");
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(" zoe "),
        "{}",
        text(&out)
    );
}

/// With an hour-long auth cache, every credential is used (and so cached)
/// just before it is revoked or its grants change: the very next request
/// sees the change. Only the controller's own invalidation can make that
/// so, not the cache's lifetime.
#[test]
fn revocations_apply_on_the_next_request_despite_the_auth_cache() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path(), &[("IRONIDC_AUTH_CACHE_SECS", "3600")]);
    let viewer = s.add_role("viewer", &["vm.instance.read", "host.server.read"]);
    let dana_id = s.add_user("dana", "Sunny-Meadow-2026", &[viewer]);
    let erin_id = s.add_user("erin", "Sunny-Meadow-2026", &[viewer]);
    let hosts = |token: &str| s.call_as(Some(token), "GET", "/api/server/detail", None).0;
    let warm = |token: &str, what: &str| {
        for _ in 0..3 {
            assert_eq!(hosts(token), 200, "{what} works before the change");
        }
    };

    // A deleted API token.
    let (dana, _) = s.login("dana", "Sunny-Meadow-2026");
    let (st, v) = s.ptpb(
        Some(&dana),
        "POST",
        "/api/rbac/token/add/",
        Some(json!({"name": "script"})),
    );
    assert_eq!(st, 200, "{v}");
    let token = v["detail"]["token"].as_str().unwrap().to_string();
    let token_id = v["detail"]["id"].as_i64().unwrap();
    warm(&token, "the API token");
    let (st, v) = s.ptpb(
        Some(&dana),
        "POST",
        "/api/rbac/token/del/",
        Some(json!({ "id": token_id })),
    );
    assert_eq!(st, 200, "{v}");
    assert_eq!(hosts(&token), 401, "a deleted API token");

    // A logged-out session.
    warm(&dana, "dana's session");
    let (st, v) = s.ptpb(Some(&dana), "POST", "/api/rbac/logout/", None);
    assert_eq!(st, 200, "{v}");
    assert_eq!(hosts(&dana), 401, "a logged-out session");

    // Roles taken away: authenticated still, but without the permission.
    let (dana, _) = s.login("dana", "Sunny-Meadow-2026");
    warm(&dana, "dana's new session");
    let (st, v) = s.ptpb(
        Some(TOKEN),
        "POST",
        "/api/rbac/user/role/",
        Some(json!({"id": dana_id, "roles": []})),
    );
    assert_eq!(st, 200, "{v}");
    assert_eq!(hosts(&dana), 403, "roles taken away");

    // A password set by the operator ends every session of the user.
    warm(&s.login("erin", "Sunny-Meadow-2026").0, "erin's session");
    let (erin, _) = s.login("erin", "Sunny-Meadow-2026");
    warm(&erin, "erin's second session");
    let (st, v) = s.ptpb(
        Some(TOKEN),
        "POST",
        "/api/rbac/user/set_password/",
        Some(json!({"id": erin_id, "password": "Quiet-River-2027"})),
    );
    assert_eq!(st, 200, "{v}");
    assert_eq!(hosts(&erin), 401, "a session after a password change");

    // A disabled user: sessions and API tokens alike.
    let (erin, _) = s.login("erin", "Quiet-River-2027");
    let (st, v) = s.ptpb(
        Some(&erin),
        "POST",
        "/api/rbac/token/add/",
        Some(json!({"name": "erin's"})),
    );
    assert_eq!(st, 200, "{v}");
    let erin_token = v["detail"]["token"].as_str().unwrap().to_string();
    warm(&erin, "erin's session");
    warm(&erin_token, "erin's API token");
    let (st, v) = s.ptpb(
        Some(TOKEN),
        "POST",
        "/api/rbac/user/edit/",
        Some(json!({"id": erin_id, "status": false})),
    );
    assert_eq!(st, 200, "{v}");
    assert_eq!(hosts(&erin), 401, "a disabled user's session");
    assert_eq!(hosts(&erin_token), 401, "a disabled user's API token");

    // A replaced root token.
    warm(TOKEN, "the root token");
    let reset = s.ok("POST", "/api/system/resets", None);
    assert_eq!(hosts(TOKEN), 401, "the replaced root token");
    let fresh = reset["token"].as_str().unwrap().to_string();
    assert_eq!(hosts(&fresh), 200);
}
