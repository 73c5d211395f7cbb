//! The auth cache through the service layer over a real store: a resolved
//! credential is served from memory (a change written to the store behind
//! the service layer's back goes unseen) until `invalidate_auth_cache`,
//! and not at all with the cache off.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use std::time::Duration;

use ironidc_core::store::{AccountStore, Store};
use ironidc_core::{EngineRegistry, ServiceOptions, Services};
use ironidc_store::SqlStore;

const ROOT: &str = "cache-test-root-token-0123456789";
const PASSWORD: &str = "Cache-Test-Passw0rd";

async fn services(dir: &std::path::Path, ttl: Duration) -> (Services, SqlStore) {
    let mut opts = ServiceOptions::new(dir.to_path_buf());
    opts.auth_cache_ttl = ttl;
    let (services, store) = common::in_process(dir, EngineRegistry::default(), opts).await;
    services.bootstrap_token(Some(ROOT)).await.unwrap();
    services.init_accounts(Some(PASSWORD)).await.unwrap();
    (services, store)
}

/// The root token replaced in the store directly, as another process
/// would; the service layer is not told.
async fn replace_root_behind_the_back(store: &SqlStore) {
    store
        .set_setting(
            "admin_token_sha256",
            &ironidc_core::secrets::token_hash("another-root-token-0123456789"),
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn a_cached_credential_is_served_without_the_store_until_invalidated() {
    let dir = tempfile::tempdir().unwrap();
    let (s, store) = services(dir.path(), Duration::from_secs(3600)).await;

    // The root token.
    let actor = s.authenticate(ROOT, "10.0.0.1", "openidcs").await.unwrap();
    assert!(actor.is_root());
    replace_root_behind_the_back(&store).await;
    let cached = s.authenticate(ROOT, "10.0.0.2", "ptpb").await.unwrap();
    assert!(cached.is_root(), "served from memory, not the store");
    // The request's own address and face, not the cached one's.
    assert_eq!(
        (cached.source_ip.as_str(), cached.face),
        ("10.0.0.2", "ptpb")
    );
    s.invalidate_auth_cache();
    assert!(s.authenticate(ROOT, "10.0.0.1", "openidcs").await.is_err());

    // A login's access token, with its permissions and session.
    let pair = s
        .login("administrator", PASSWORD, "10.0.0.1")
        .await
        .unwrap();
    let actor = s
        .authenticate(&pair.access, "10.0.0.1", "ptpb")
        .await
        .unwrap();
    let session = actor.session_id.clone().unwrap();
    store.revoke_session(&session).await.unwrap();
    let cached = s
        .authenticate(&pair.access, "10.0.0.1", "ptpb")
        .await
        .expect("served from memory, not the store");
    assert_eq!(cached.name, "administrator");
    assert_eq!(cached.session_id.as_deref(), Some(session.as_str()));
    assert_eq!(cached.permissions(), actor.permissions());
    s.invalidate_auth_cache();
    let refused = s.authenticate(&pair.access, "10.0.0.1", "ptpb").await;
    assert!(refused.is_err(), "the revoked session after invalidation");
}

#[tokio::test]
async fn a_zero_ttl_reads_the_store_every_time() {
    let dir = tempfile::tempdir().unwrap();
    let (s, store) = services(dir.path(), Duration::ZERO).await;
    assert!(s.authenticate(ROOT, "10.0.0.1", "openidcs").await.is_ok());
    replace_root_behind_the_back(&store).await;
    assert!(s.authenticate(ROOT, "10.0.0.1", "openidcs").await.is_err());
}

#[tokio::test]
async fn refusals_are_not_cached() {
    let dir = tempfile::tempdir().unwrap();
    let (s, store) = services(dir.path(), Duration::from_secs(3600)).await;
    let other = "another-root-token-0123456789";
    assert!(s.authenticate(other, "10.0.0.1", "openidcs").await.is_err());
    replace_root_behind_the_back(&store).await;
    // The store now says yes; a cached refusal would still say no.
    assert!(s.authenticate(other, "10.0.0.1", "openidcs").await.is_ok());
}
