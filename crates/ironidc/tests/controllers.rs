//! Two `ironidc serve` processes on one fresh PostgreSQL database, started
//! at the same moment: both come up (start-up seeding does not race), both
//! serve the same VMs, a credential revoked on one is refused by the other
//! within a second, exactly one runs the background jobs, and when that
//! one is killed (-9) the other takes the jobs over within 15 s and the
//! monitor samples on, once per interval (no duplicate samples).
//!
//! Needs `IRONIDC_TEST_POSTGRES_URL` (a role that may create databases)
//! and QEMU; skipped with a note otherwise (CI never skips).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::Read;
use std::path::Path;
use std::sync::Barrier;
use std::time::{Duration, Instant};

use common::{host_body, Server, ADMIN_PASSWORD, TOKEN};
use serde_json::json;
use sqlx::{Connection, Executor, PgConnection};

/// Seconds between monitor samples in this test.
const MONITOR_SECS: i64 = 3;

/// `url` with its database name replaced by `name`.
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, format!("?{q}")),
        None => (url, String::new()),
    };
    let cut = base.rfind('/').expect("a database in the URL");
    format!("{}/{name}{query}", &base[..cut])
}

struct Db {
    runtime: tokio::runtime::Runtime,
    admin_url: String,
    name: String,
    url: String,
}

impl Db {
    /// A fresh database beside the one `admin_url` names.
    fn fresh(admin_url: &str, name: &str) -> Self {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let mut conn = PgConnection::connect(admin_url).await.expect("connect");
            conn.execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str())
                .await
                .unwrap();
            conn.execute(format!("CREATE DATABASE {name}").as_str())
                .await
                .expect("create database (the role needs CREATEDB)");
        });
        Self {
            runtime,
            admin_url: admin_url.to_string(),
            name: name.to_string(),
            url: with_database(admin_url, name),
        }
    }

    /// (ts, samples at ts) of a VM's status series, oldest first.
    fn samples(&self, vm: &str) -> Vec<(i64, i64)> {
        self.runtime.block_on(async {
            let mut conn = PgConnection::connect(&self.url).await.unwrap();
            sqlx::query_as(
                "SELECT s.ts, COUNT(*) FROM vm_status s JOIN vms v ON v.id = s.vm_id \
                 WHERE v.uuid = $1 GROUP BY s.ts ORDER BY s.ts",
            )
            .bind(vm)
            .fetch_all(&mut conn)
            .await
            .unwrap()
        })
    }
}

impl Drop for Db {
    fn drop(&mut self) {
        let _ = self.runtime.block_on(async {
            let mut conn = PgConnection::connect(&self.admin_url).await?;
            conn.execute(format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name).as_str())
                .await
        });
    }
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// (controller, job_owner) as a controller reports them.
fn cluster_view(s: &Server) -> (String, Option<String>) {
    let v = s.ok("GET", "/api/system/statis", None);
    (
        v["controller"].as_str().unwrap().to_string(),
        v["job_owner"].as_str().map(str::to_string),
    )
}

/// The controllers share the secret key that seals stored secrets (the
/// token signing key among them), as an operator copies it.
fn share_secret_key(dirs: &[&Path]) {
    let mut key = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .unwrap()
        .read_exact(&mut key)
        .unwrap();
    for dir in dirs {
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(dir.join("secret.key"), key).unwrap();
    }
}

/// Poll until `refused` holds, at most one second; panics otherwise.
fn refused_within_a_second(what: &str, mut refused: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(1);
    loop {
        if refused() {
            return;
        }
        assert!(Instant::now() < deadline, "{what} still accepted after 1 s");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn two_controllers_share_one_postgresql() {
    let Ok(pg) = std::env::var("IRONIDC_TEST_POSTGRES_URL") else {
        assert!(
            std::env::var("CI").is_err(),
            "CI must set IRONIDC_TEST_POSTGRES_URL"
        );
        eprintln!("SKIPPED two_controllers_share_one_postgresql: set IRONIDC_TEST_POSTGRES_URL=postgres://… (a role that may create databases)");
        return;
    };
    if !common::qemu_available("two_controllers_share_one_postgresql") {
        return;
    }
    let db = Db::fresh(&pg, &format!("ironidc_ctl_{}", std::process::id()));
    let root = tempfile::tempdir().unwrap();
    let (dir_a, dir_b) = (root.path().join("a"), root.path().join("b"));
    share_secret_key(&[&dir_a, &dir_b]);
    let monitor_secs = MONITOR_SECS.to_string();
    let env = |name: &'static str| {
        [
            ("IRONIDC_TOKEN", TOKEN),
            ("IRONIDC_DATABASE_URL", db.url.as_str()),
            ("IRONIDC_CONTROLLER_NAME", name),
            ("IRONIDC_MONITOR_SECS", monitor_secs.as_str()),
        ]
    };

    // Both at the same moment, on the empty database.
    let start = Barrier::new(2);
    let (a, b) = std::thread::scope(|scope| {
        let a = scope.spawn(|| {
            start.wait();
            Server::start_with(&dir_a, &env("ctl-a"), None)
        });
        let b = scope.spawn(|| {
            start.wait();
            Server::start_with(&dir_b, &env("ctl-b"), None)
        });
        (
            a.join().expect("controller A started"),
            b.join().expect("controller B started"),
        )
    });
    let (id_a, owner) = cluster_view(&a);
    let (id_b, owner_b) = cluster_view(&b);
    assert!(id_a.starts_with("ctl-a#") && id_b.starts_with("ctl-b#"));
    assert_eq!(owner, owner_b, "both see the same job owner");
    let owner = owner.expect("one controller runs the jobs");
    assert!(owner == id_a || owner == id_b, "{owner}");
    // The administrator seeded once works on both.
    a.login("administrator", ADMIN_PASSWORD);
    b.login("administrator", ADMIN_PASSWORD);

    // A VM made through A is seen and powered through B.
    let images = common::blank_image_dir(root.path());
    a.ok(
        "POST",
        "/api/server/create",
        Some(host_body("h1", &images, "blank.qcow2")),
    );
    a.ok(
        "POST",
        "/api/client/create/h1",
        Some(json!({"vm_uuid": "shared1", "os_name": "demo", "cpu_num": 1, "mem_num": 128, "hdd_num": 64})),
    );
    let seen = b.ok("GET", "/api/client/detail/h1/shared1", None);
    assert_eq!(seen["config"]["vm_uuid"], "shared1", "{seen}");
    // The disk is blank: the VM runs its firmware only, paused at once.
    let started = b.ok(
        "POST",
        "/api/client/powers/h1/shared1",
        Some(json!({"action": "start"})),
    );
    assert_eq!(started["state"], "running", "{started}");
    let paused = b.ok(
        "POST",
        "/api/client/powers/h1/shared1",
        Some(json!({"action": "pause"})),
    );
    assert_eq!(paused["state"], "paused", "{paused}");
    let seen = a.ok("GET", "/api/client/detail/h1/shared1", None);
    assert_eq!(seen["state"], "paused", "A sees what B did: {seen}");

    revocations_reach_the_other_controller(&a, &b);

    // The owner samples; then it dies and the other takes over.
    let (owner_server, survivor, survivor_id) = if owner == id_a {
        (a, b, id_b)
    } else {
        (b, a, id_a)
    };
    common::wait_until(30, "monitor samples from the owner", || {
        db.samples("shared1").len() >= 2
    });
    owner_server.kill();
    let killed_at = Instant::now();
    let killed_ts = unix_now();
    let mut took_over = None;
    while killed_at.elapsed() < Duration::from_secs(15) {
        if cluster_view(&survivor).1.as_deref() == Some(survivor_id.as_str()) {
            took_over = Some(killed_at.elapsed());
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let took_over = took_over.expect("the survivor took the jobs over within 15 s");
    eprintln!("jobs taken over {took_over:?} after kill -9 of the owner");

    // The monitor samples on through the survivor.
    common::wait_until(30, "samples after the takeover", || {
        db.samples("shared1")
            .iter()
            .filter(|(ts, _)| *ts > killed_ts + 1)
            .count()
            >= 3
    });
    let window_start = unix_now();
    std::thread::sleep(Duration::from_secs(4 * MONITOR_SECS as u64));
    let window_end = unix_now();
    let samples = db.samples("shared1");
    let duplicates: Vec<_> = samples.iter().filter(|(_, n)| *n > 1).collect();
    assert!(duplicates.is_empty(), "duplicate samples: {duplicates:?}");
    // Once per interval: two samplers would make about twice as many.
    let in_window = samples
        .iter()
        .filter(|(ts, _)| (window_start..=window_end).contains(ts))
        .count() as i64;
    let most = (window_end - window_start) / MONITOR_SECS + 2;
    assert!(
        (1..=most).contains(&in_window),
        "{in_window} samples in {} s (at most {most}): {samples:?}",
        window_end - window_start
    );

    survivor.ok(
        "POST",
        "/api/client/powers/h1/shared1",
        Some(json!({"action": "hard_stop"})),
    );
    survivor.ok("DELETE", "/api/client/delete/h1/shared1", None);
}

/// A session, an API token and a user revoked on `a` are refused by `b`
/// within a second, also after `b` has just accepted them (a cache must
/// be invalidated across controllers).
fn revocations_reach_the_other_controller(a: &Server, b: &Server) {
    let customer = a.role_id("Customer");
    let carol = a.add_user("carol", "Sunny-Meadow-2026", &[customer]);
    let detail = |s: &Server, credential: &str| -> u16 {
        s.ptpb(Some(credential), "GET", "/api/rbac/user/detail/", None)
            .0
    };

    // A login session ended on A.
    let (access, _) = a.login("carol", "Sunny-Meadow-2026");
    assert_eq!(detail(b, &access), 200);
    let (st, v) = a.ptpb(Some(&access), "POST", "/api/rbac/logout/", None);
    assert_eq!(st, 200, "{v}");
    refused_within_a_second("a logged-out session on B", || detail(b, &access) == 401);

    // A personal API token deleted on A.
    let (access, _) = a.login("carol", "Sunny-Meadow-2026");
    let (st, v) = a.ptpb(
        Some(&access),
        "POST",
        "/api/rbac/token/add/",
        Some(json!({"name": "ci"})),
    );
    assert_eq!(st, 200, "{v}");
    let token = v["detail"]["token"].as_str().unwrap().to_string();
    let token_id = v["detail"]["id"].as_i64().unwrap();
    assert_eq!(detail(b, &token), 200);
    let (st, v) = a.ptpb(
        Some(&access),
        "POST",
        "/api/rbac/token/del/",
        Some(json!({ "id": token_id })),
    );
    assert_eq!(st, 200, "{v}");
    refused_within_a_second("a deleted API token on B", || detail(b, &token) == 401);

    // A user disabled on A: its live session is refused on B.
    assert_eq!(detail(b, &access), 200);
    a.admin_ptpb(
        "POST",
        "/api/rbac/user/edit/",
        Some(json!({"id": carol, "status": false})),
    );
    refused_within_a_second("a disabled user's session on B", || {
        detail(b, &access) == 401
    });
}
