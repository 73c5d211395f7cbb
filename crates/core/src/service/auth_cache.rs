//! The in-process cache of `authenticate`: credential -> resolved actor
//! (permissions included), for a few seconds, so a request with a known
//! credential costs a hash and a map lookup instead of a JWT check and
//! three store reads.
//!
//! Correctness rests on wholesale invalidation: every change to users,
//! roles, their permissions, API tokens, sessions or the root token calls
//! `Services::invalidate_auth_cache` before the change's call returns (and
//! the PostgreSQL NOTIFY listener calls it for changes made by other
//! controllers). A generation counter closes the race in which a request
//! that read the store before a change stores its (now stale) actor after
//! the invalidation: an entry is only stored, and only served, under the
//! generation that was current when its request began resolving.
//!
//! Keys are SHA-256 hashes of the credential, so no credential is kept in
//! memory. Refusals are not cached: an unknown credential always reaches
//! the store (and its timing stays what it was).
//!
//! A small map behind a lock rather than a cache crate: the generation
//! check has to sit inside the insert, and the map is bounded by
//! `AUTH_CACHE_CAPACITY` with expired entries swept when it fills.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::RwLock;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use super::Actor;

/// Distinct credentials held at most; past it expired entries go, then all.
pub const AUTH_CACHE_CAPACITY: usize = 10_000;

/// The key of a credential: its SHA-256.
pub type CredentialKey = [u8; 32];

pub fn credential_key(credential: &str) -> CredentialKey {
    Sha256::digest(credential.as_bytes()).into()
}

struct Entry {
    actor: Actor,
    generation: u64,
    expires: Instant,
}

/// See the module documentation.
pub struct AuthCache {
    /// Zero turns the cache off.
    ttl: Duration,
    capacity: usize,
    generation: AtomicU64,
    entries: RwLock<HashMap<CredentialKey, Entry>>,
}

impl AuthCache {
    pub fn new(ttl: Duration, capacity: usize) -> Self {
        Self {
            ttl,
            capacity,
            generation: AtomicU64::new(0),
            entries: RwLock::new(HashMap::new()),
        }
    }

    pub fn enabled(&self) -> bool {
        !self.ttl.is_zero()
    }

    /// Read before resolving a credential; hand it to `insert`.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    /// The cached actor of `key`, if fresh and of the current generation.
    pub fn get(&self, key: &CredentialKey) -> Option<Actor> {
        if !self.enabled() {
            return None;
        }
        let entries = self.entries.read().unwrap_or_else(|p| p.into_inner());
        let entry = entries.get(key)?;
        (entry.expires > Instant::now() && entry.generation == self.generation())
            .then(|| entry.actor.clone())
    }

    /// Remember `actor` for `key` until the TTL passes or `valid_until`
    /// (the credential's own expiry), whichever is first, unless the cache
    /// was invalidated since `generation` was read.
    pub fn insert(
        &self,
        key: CredentialKey,
        actor: &Actor,
        generation: u64,
        valid_until: Option<Instant>,
    ) {
        if !self.enabled() {
            return;
        }
        let now = Instant::now();
        let mut expires = now + self.ttl;
        if let Some(until) = valid_until {
            expires = expires.min(until);
        }
        if expires <= now {
            return;
        }
        let mut entries = self.entries.write().unwrap_or_else(|p| p.into_inner());
        // Checked under the write lock that `invalidate` also takes: an
        // invalidation either came before (and this is dropped) or comes
        // after (and clears this).
        if generation != self.generation() {
            return;
        }
        if entries.len() >= self.capacity && !entries.contains_key(&key) {
            entries.retain(|_, e| e.expires > now);
            if entries.len() >= self.capacity {
                entries.clear();
            }
        }
        entries.insert(
            key,
            Entry {
                actor: actor.clone(),
                generation,
                expires,
            },
        );
    }

    /// Forget every entry, and refuse the inserts of resolutions that
    /// began before this.
    pub fn invalidate(&self) {
        let mut entries = self.entries.write().unwrap_or_else(|p| p.into_inner());
        self.generation.fetch_add(1, Ordering::SeqCst);
        entries.clear();
    }

    /// How many entries are held (expired ones included until swept).
    pub fn len(&self) -> usize {
        self.entries.read().unwrap_or_else(|p| p.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache() -> AuthCache {
        AuthCache::new(Duration::from_secs(5), 3)
    }

    #[test]
    fn a_cached_actor_is_served_until_invalidated() {
        let c = cache();
        let key = credential_key("ixt_secret");
        assert!(c.get(&key).is_none());
        let g = c.generation();
        c.insert(key, &Actor::root("admin", "", "test"), g, None);
        let hit = c.get(&key).map(|a| a.name);
        assert_eq!(hit.as_deref(), Some("admin"));
        c.invalidate();
        assert!(c.get(&key).is_none());
        assert!(c.is_empty());
    }

    #[test]
    fn a_resolution_that_began_before_an_invalidation_is_not_stored() {
        let c = cache();
        let key = credential_key("token");
        let before = c.generation();
        // The credential is revoked while its request reads the store.
        c.invalidate();
        c.insert(key, &Actor::root("admin", "", "test"), before, None);
        assert!(c.get(&key).is_none());
    }

    #[test]
    fn entries_end_with_the_credential_and_with_the_ttl() {
        let c = cache();
        let key = credential_key("jwt");
        let g = c.generation();
        c.insert(key, &Actor::root("a", "", "t"), g, Some(Instant::now()));
        assert!(c.get(&key).is_none(), "an expired credential is not kept");
        let short = AuthCache::new(Duration::from_millis(20), 3);
        short.insert(key, &Actor::root("a", "", "t"), 0, None);
        assert!(short.get(&key).is_some());
        std::thread::sleep(Duration::from_millis(30));
        assert!(short.get(&key).is_none());
    }

    #[test]
    fn a_zero_ttl_turns_the_cache_off() {
        let c = AuthCache::new(Duration::ZERO, 3);
        let key = credential_key("x");
        c.insert(key, &Actor::root("a", "", "t"), 0, None);
        assert!(c.get(&key).is_none());
    }

    #[test]
    fn the_map_stays_within_its_capacity() {
        let c = cache();
        for i in 0..10 {
            let g = c.generation();
            c.insert(
                credential_key(&i.to_string()),
                &Actor::root("a", "", "t"),
                g,
                None,
            );
            assert!(c.len() <= 3);
        }
        assert!(c.get(&credential_key("9")).is_some());
    }
}
