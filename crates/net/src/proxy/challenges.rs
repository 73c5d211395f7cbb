//! The HTTP-01 answers the proxy serves under `/.well-known/acme-challenge/`.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};

/// Token -> key authorization, shared between the ACME client (which fills
/// it) and the proxy's HTTP listener (which answers the CA's validation).
/// Cheap to clone; all clones see the same map.
#[derive(Clone, Default)]
pub struct Http01Challenges {
    tokens: Arc<RwLock<HashMap<String, String>>>,
}

impl Http01Challenges {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn insert(&self, token: impl Into<String>, key_authorization: impl Into<String>) {
        // A poisoned lock only means another thread panicked mid-insert of a
        // plain map entry; the map itself is still consistent, so keep going
        // instead of turning one panic into many.
        self.tokens
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(token.into(), key_authorization.into());
    }

    pub fn remove(&self, token: &str) {
        self.tokens
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(token);
    }

    pub fn get(&self, token: &str) -> Option<String> {
        self.tokens
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(token)
            .cloned()
    }

    pub fn len(&self) -> usize {
        self.tokens
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

// Key authorizations are short-lived public values, but tokens are enough to
// identify pending validations; a count is all a log line needs.
impl std::fmt::Debug for Http01Challenges {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Http01Challenges")
            .field("pending", &self.len())
            .finish()
    }
}
