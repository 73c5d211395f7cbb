//! The OpenAPI description of the OpenIDCS face (`openapi/openidcs.yaml`)
//! against the router's source: the same operations, the same placeholder
//! names, and authentication described as the handlers implement it.
//!
//! The router is read as text rather than built, because building it needs
//! the whole service layer; the parser refuses any form it does not
//! understand, so a route it cannot read fails the test instead of being
//! skipped.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use serde_norway::Value;

const METHODS: [&str; 8] = [
    "get", "post", "put", "delete", "patch", "head", "options", "trace",
];

fn api_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(rel: &str) -> String {
    let path = api_dir().join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn document() -> Value {
    serde_norway::from_str(&read("openapi/openidcs.yaml")).expect("openidcs.yaml is valid YAML")
}

/// One `(method, path)` of the router and the handler (`module::function`)
/// that serves it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Route {
    method: String,
    path: String,
    handler: String,
}

/// Remove `//` comments (the router's paths hold no `//`).
fn strip_comments(src: &str) -> String {
    src.lines()
        .map(|l| l.find("//").map_or(l, |i| &l[..i]))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The text between the `(` at `open` and its matching `)`.
fn balanced(text: &str, open: usize) -> &str {
    assert_eq!(&text[open..=open], "(");
    let mut depth = 0usize;
    let mut in_str = false;
    for (i, c) in text[open..].char_indices() {
        match c {
            '"' => in_str = !in_str,
            '(' if !in_str => depth += 1,
            ')' if !in_str => {
                depth -= 1;
                if depth == 0 {
                    return &text[open + 1..open + i];
                }
            }
            _ => {}
        }
    }
    panic!("unbalanced parentheses after byte {open} of the router");
}

/// `get(a::b).delete(c::d)` → `[("get", "a::b"), ("delete", "c::d")]`.
fn method_chain(expr: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = expr.trim();
    loop {
        let open = rest
            .find('(')
            .unwrap_or_else(|| panic!("cannot read the method router {expr:?}"));
        let method = rest[..open].trim().trim_start_matches('.').trim();
        assert!(
            METHODS.contains(&method),
            "unsupported method router {method:?} in {expr:?}: teach tests/openapi.rs to read it"
        );
        let inner = balanced(rest, open);
        let handler = inner.trim();
        assert!(
            !handler.is_empty()
                && handler
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "cannot read the handler {handler:?} in {expr:?}"
        );
        out.push((method.to_string(), handler.to_string()));
        rest = rest[open + inner.len() + 2..].trim();
        if rest.is_empty() {
            return out;
        }
        assert!(rest.starts_with('.'), "cannot read {rest:?} in {expr:?}");
    }
}

/// Every route of `openidcs::router`, read from `src/openidcs/mod.rs`.
fn router_routes() -> Vec<Route> {
    let src = strip_comments(&read("src/openidcs/mod.rs"));
    let start = src
        .find("fn routes() -> Router<FaceState<OpenIdcs>>")
        .expect("mod.rs defines `fn routes`");
    let body = &src[start..];
    let end = body.find("\n}").expect("the routes end with `}`");
    let body = &body[..end];
    for unsupported in [".nest(", ".nest_service(", ".route_service(", ".merge("] {
        assert!(
            !body.contains(unsupported),
            "the router uses `{unsupported}`: teach tests/openapi.rs to read it"
        );
    }
    let mut routes = Vec::new();
    let mut from = 0;
    while let Some(i) = body[from..].find(".route(") {
        let open = from + i + ".route".len();
        let raw = balanced(body, open);
        let args = raw.trim();
        assert!(
            args.starts_with('"'),
            "route without a literal path: {args:?}"
        );
        let close = args[1..].find('"').expect("closing quote") + 1;
        let path = &args[1..close];
        let rest = args[close + 1..].trim();
        let chain = rest
            .strip_prefix(',')
            .unwrap_or_else(|| panic!("cannot read the route {args:?}"))
            .trim()
            .trim_end_matches(',')
            .trim();
        for (method, handler) in method_chain(chain) {
            routes.push(Route {
                method,
                path: path.to_string(),
                handler,
            });
        }
        from = open + raw.len();
    }
    // Belt and braces: every path literal in the file is one we read.
    let paths: BTreeSet<&str> = routes.iter().map(|r| r.path.as_str()).collect();
    for literal in src.split('"').skip(1).step_by(2) {
        if literal.starts_with("/api/") {
            assert!(
                paths.contains(literal),
                "{literal} appears in mod.rs but the route parser did not read it"
            );
        }
    }
    routes
}

/// Whether `module::function` takes the `Caller` extractor (is authenticated).
fn handler_authenticates(handler: &str) -> bool {
    let (module, function) = handler
        .split_once("::")
        .unwrap_or_else(|| panic!("handler {handler} is not `module::function`"));
    let src = read(&format!("src/openidcs/{module}.rs"));
    let start = src
        .find(&format!("pub async fn {function}("))
        .unwrap_or_else(|| panic!("no `pub async fn {function}(` in {module}.rs"));
    let open = start + format!("pub async fn {function}").len();
    balanced(&src, open).contains("Caller")
}

fn get<'a>(v: &'a Value, key: &str) -> Option<&'a Value> {
    v.as_mapping().and_then(|m| m.get(key))
}

fn str_of<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    get(v, key).and_then(Value::as_str)
}

/// Follow a `$ref` inside the document.
fn resolve<'a>(doc: &'a Value, v: &'a Value) -> &'a Value {
    match str_of(v, "$ref") {
        None => v,
        Some(r) => {
            let pointer = r
                .strip_prefix("#/")
                .unwrap_or_else(|| panic!("external $ref {r}"));
            let target = pointer
                .split('/')
                .try_fold(doc, |node, key| get(node, key))
                .unwrap_or_else(|| panic!("$ref {r} points nowhere"));
            resolve(doc, target)
        }
    }
}

/// `(METHOD, path)` → operation.
fn operations(doc: &Value) -> BTreeMap<(String, String), &Value> {
    let paths = get(doc, "paths")
        .and_then(Value::as_mapping)
        .expect("paths");
    let mut out = BTreeMap::new();
    for (path, item) in paths {
        let path = path.as_str().expect("path keys are strings");
        for (method, op) in item.as_mapping().expect("path item") {
            let method = method.as_str().expect("method key");
            if METHODS.contains(&method) {
                out.insert((method.to_uppercase(), path.to_string()), op);
            } else {
                assert!(
                    matches!(method, "parameters" | "summary" | "description" | "servers")
                        || method.starts_with("x-"),
                    "unknown key {method} under {path}"
                );
            }
        }
    }
    out
}

#[test]
fn document_is_openapi_3_1() {
    let doc = document();
    let version = str_of(&doc, "openapi").expect("`openapi` version");
    assert!(version.starts_with("3.1."), "openapi: {version}");
    let info = get(&doc, "info").expect("info");
    assert!(
        !str_of(info, "title").unwrap_or("").is_empty(),
        "info.title"
    );
    assert!(
        !str_of(info, "version").unwrap_or("").is_empty(),
        "info.version"
    );
    let paths = get(&doc, "paths")
        .and_then(Value::as_mapping)
        .expect("paths");
    assert!(!paths.is_empty());
    let schemas = get(&doc, "components")
        .and_then(|c| get(c, "schemas"))
        .expect("components.schemas");
    for name in [
        "Envelope",
        "Error",
        "HwStatus",
        "VmConfig",
        "NicConfig",
        "Task",
        "SnapshotInfo",
        "BackupInfo",
        "TaskStarted",
        "MonitorSeries",
        "ExecResult",
        "GuestInterface",
        "IsoView",
        "ConsoleState",
        "HostStatus",
    ] {
        assert!(
            get(schemas, name).is_some(),
            "components.schemas.{name} missing"
        );
    }
    // The error shape the envelope promises: data is null.
    let error_data = get(schemas, "Error")
        .and_then(|e| get(e, "properties"))
        .and_then(|p| get(p, "data"))
        .expect("Error.properties.data");
    assert_eq!(str_of(error_data, "type"), Some("null"));
}

#[test]
fn every_ref_resolves() {
    let doc = document();
    fn walk(doc: &Value, v: &Value, count: &mut usize) {
        match v {
            Value::Mapping(m) => {
                if get(v, "$ref").is_some() {
                    resolve(doc, v);
                    *count += 1;
                }
                m.values().for_each(|x| walk(doc, x, count));
            }
            Value::Sequence(s) => s.iter().for_each(|x| walk(doc, x, count)),
            _ => {}
        }
    }
    let mut count = 0;
    walk(&doc, &doc, &mut count);
    assert!(count > 100, "only {count} $refs: is the document complete?");
}

#[test]
fn document_and_router_have_the_same_operations() {
    let routes = router_routes();
    let router: BTreeSet<(String, String)> = routes
        .iter()
        .map(|r| (r.method.to_uppercase(), r.path.clone()))
        .collect();
    assert_eq!(
        router.len(),
        routes.len(),
        "a (method, path) is routed twice"
    );
    // A sanity floor, so a parser that reads nothing cannot pass.
    assert!(router.len() >= 60, "only {} routes read", router.len());
    let doc = document();
    let documented: BTreeSet<(String, String)> = operations(&doc).into_keys().collect();
    let undocumented: Vec<_> = router.difference(&documented).collect();
    let unrouted: Vec<_> = documented.difference(&router).collect();
    assert!(
        undocumented.is_empty() && unrouted.is_empty(),
        "the document and the router differ:\n  routed but not documented: {undocumented:#?}\n  documented but not routed: {unrouted:#?}"
    );
}

#[test]
fn operations_are_complete() {
    let doc = document();
    let tags: BTreeSet<&str> = get(&doc, "tags")
        .and_then(Value::as_sequence)
        .expect("tags")
        .iter()
        .filter_map(|t| str_of(t, "name"))
        .collect();
    assert_eq!(
        tags,
        BTreeSet::from(["system", "hosts", "vms", "network", "console", "guest", "disks", "nics"])
    );
    let mut ids = BTreeSet::new();
    for ((method, path), op) in operations(&doc) {
        let at = format!("{method} {path}");
        assert!(
            !str_of(op, "summary").unwrap_or("").is_empty(),
            "{at}: summary"
        );
        let id = str_of(op, "operationId").unwrap_or_else(|| panic!("{at}: operationId"));
        assert!(
            ids.insert(id.to_string()),
            "{at}: operationId {id} used twice"
        );
        let op_tags = get(op, "tags").and_then(Value::as_sequence).expect(&at);
        assert!(!op_tags.is_empty(), "{at}: tags");
        for t in op_tags {
            let t = t.as_str().unwrap_or("");
            assert!(tags.contains(t), "{at}: undeclared tag {t}");
        }
        // Every `{placeholder}` is a declared path parameter, and back.
        let placeholders: BTreeSet<&str> = path
            .split('/')
            .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .collect();
        let declared: BTreeSet<&str> = get(op, "parameters")
            .and_then(Value::as_sequence)
            .map(|ps| {
                ps.iter()
                    .map(|p| resolve(&doc, p))
                    .filter(|p| str_of(p, "in") == Some("path"))
                    .map(|p| {
                        assert_eq!(
                            get(p, "required").and_then(Value::as_bool),
                            Some(true),
                            "{at}: path parameters are required"
                        );
                        str_of(p, "name").unwrap_or("")
                    })
                    .collect()
            })
            .unwrap_or_default();
        assert_eq!(placeholders, declared, "{at}: path parameters");
    }
}

/// The security requirement names in force for an operation.
fn security_of<'a>(doc: &'a Value, op: &'a Value) -> BTreeSet<&'a str> {
    get(op, "security")
        .or_else(|| get(doc, "security"))
        .and_then(Value::as_sequence)
        .map(|reqs| {
            reqs.iter()
                .filter_map(Value::as_mapping)
                .flat_map(|m| m.keys().filter_map(Value::as_str))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn responses_and_authentication_match_the_handlers() {
    let doc = document();
    let schemes = get(&doc, "components")
        .and_then(|c| get(c, "securitySchemes"))
        .expect("components.securitySchemes");
    let bearer = get(schemes, "bearerAuth").expect("bearerAuth scheme");
    assert_eq!(str_of(bearer, "type"), Some("http"));
    assert_eq!(str_of(bearer, "scheme"), Some("bearer"));

    let ops = operations(&doc);
    let mut unauthenticated = BTreeSet::new();
    for route in router_routes() {
        let key = (route.method.to_uppercase(), route.path.clone());
        let at = format!("{} {} ({})", key.0, key.1, route.handler);
        let op = ops
            .get(&key)
            .unwrap_or_else(|| panic!("{at}: not documented"));
        let responses = get(op, "responses")
            .and_then(Value::as_mapping)
            .unwrap_or_else(|| panic!("{at}: responses"));
        let has = |code: &str| responses.contains_key(code);
        // The WebSocket answers 101 (Switching Protocols), never 200.
        let success = if route.path == "/api/client/console/ws" {
            "101"
        } else {
            "200"
        };
        assert!(has(success), "{at}: no {success} response");
        for (code, resp) in responses {
            let code = code
                .as_str()
                .unwrap_or_else(|| panic!("{at}: quote status codes"));
            assert!(
                code.len() == 3 && code.chars().all(|c| c.is_ascii_digit()),
                "{at}: status {code}"
            );
            let resp = resolve(&doc, resp);
            assert!(
                str_of(resp, "description").is_some(),
                "{at}: {code} needs a description"
            );
            if code.starts_with('4') || code.starts_with('5') {
                let schema = get(resp, "content")
                    .and_then(|c| get(c, "application/json"))
                    .and_then(|c| get(c, "schema"))
                    .unwrap_or_else(|| panic!("{at}: {code} without a JSON schema"));
                assert_eq!(
                    str_of(schema, "$ref"),
                    Some("#/components/schemas/Error"),
                    "{at}: {code} is not the Error envelope"
                );
            }
        }
        let security = security_of(&doc, op);
        if handler_authenticates(&route.handler) {
            assert!(
                security.contains("bearerAuth"),
                "{at}: bearer security missing"
            );
            assert!(has("401"), "{at}: no 401 response");
        } else {
            assert!(
                !security.contains("bearerAuth"),
                "{at}: the handler takes no Caller but the document asks for a bearer token"
            );
            unauthenticated.insert(key.1.clone());
        }
    }
    // The handlers that take no `Caller` are exactly the ones meant to.
    assert_eq!(
        unauthenticated,
        BTreeSet::from([
            "/api/client/console/ws".to_string(),
            "/api/client/upload".to_string(),
            "/api/system/health".to_string(),
            "/api/system/openapi.yaml".to_string(),
        ])
    );
    // The two with credentials of their own say which, and can refuse.
    for (key, scheme) in [
        (("POST", "/api/client/upload"), "reportSecret"),
        (("GET", "/api/client/console/ws"), "consoleToken"),
    ] {
        let op = ops[&(key.0.to_string(), key.1.to_string())];
        assert_eq!(security_of(&doc, op), BTreeSet::from([scheme]), "{key:?}");
        assert!(get(schemes, scheme).is_some(), "{scheme} scheme");
        let responses = get(op, "responses").and_then(Value::as_mapping).unwrap();
        assert!(responses.contains_key("401"), "{key:?}: no 401");
    }
}

/// The route parser itself, on the forms the router uses.
#[test]
fn route_parser_reads_chains() {
    assert_eq!(
        method_chain("get(console::state).delete(console::revoke)"),
        vec![
            ("get".to_string(), "console::state".to_string()),
            ("delete".to_string(), "console::revoke".to_string())
        ]
    );
    assert_eq!(
        method_chain(
            "\n  get(disks::snapshot_list)\n  .post(disks::snapshot_create),\n"
                .trim()
                .trim_end_matches(',')
        ),
        vec![
            ("get".to_string(), "disks::snapshot_list".to_string()),
            ("post".to_string(), "disks::snapshot_create".to_string())
        ]
    );
    let routes = router_routes();
    let find = |m: &str, p: &str| {
        routes
            .iter()
            .find(|r| r.method == m && r.path == p)
            .map(|r| r.handler.as_str())
    };
    assert_eq!(
        find("delete", "/api/client/console/{hs_name}/{vm_uuid}"),
        Some("console::revoke")
    );
    assert_eq!(
        find("delete", "/api/client/natdel/{hs_name}/{vm_uuid}/{index}"),
        Some("network::nat_delete")
    );
    assert_eq!(
        find("get", "/api/system/openapi.yaml"),
        Some("system::openapi")
    );
    assert!(handler_authenticates("vms::list"));
    assert!(!handler_authenticates("system::health"));
}
