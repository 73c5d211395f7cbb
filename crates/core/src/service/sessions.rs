//! Logins and credentials: login with lockout, refresh with rotation and
//! reuse detection, logout, and `authenticate`, which turns any credential
//! a face receives (root token, access token, API token) into an `Actor`.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use super::auth_cache::credential_key;
use super::jwt::{looks_like_jwt, Claims, TokenType};
use super::{now, passwords, Actor, Services};
use crate::accounts::{NewLoginLog, Session, User, UserKey};
use crate::error::CoreError;

/// The tokens a login or refresh hands out.
#[derive(Debug, Clone)]
pub struct TokenPair {
    pub access: String,
    pub refresh: String,
    /// Seconds until `access` expires.
    pub access_expires_in: u64,
    /// Seconds until `refresh` expires.
    pub refresh_expires_in: u64,
}

const WRONG_LOGIN: &str = "wrong account or password";
/// Longest unknown account name counted as given; longer names are cut,
/// so a flood of huge names cannot grow the lockout table by much.
const UNKNOWN_ACCOUNT_KEY_MAX: usize = 255;

impl Services {
    /// Check a password and open a session. Failures are counted per
    /// account; after `lockout_after` in a row the account refuses logins
    /// for `lockout_for`, whatever the password.
    pub async fn login(
        &self,
        account: &str,
        password: &str,
        ip: &str,
    ) -> Result<TokenPair, CoreError> {
        if account.is_empty() {
            return Err(CoreError::invalid("account", "is required"));
        }
        if password.is_empty() {
            return Err(CoreError::invalid("password", "is required"));
        }
        let t = now();
        let Some(user) = self.store().user_by_key(UserKey::Account, account).await? else {
            // Spend the time a real check would, and count failures and
            // lock exactly as for a real account, so neither the timing nor
            // the replies tell which accounts exist.
            let decoy = self
                .inner
                .decoy_hash
                .get_or_try_init(passwords::decoy_hash)
                .await?;
            passwords::verify(password, decoy).await;
            let locked_for = self.count_unknown_account_failure(account, t).await?;
            self.log_login(None, account, ip, "failed", "unknown account")
                .await;
            return Err(match locked_for {
                Some(seconds) => locked(seconds),
                None => CoreError::unauthorized(WRONG_LOGIN),
            });
        };
        if user.locked_until > t {
            // The same work as an unlocked check: a locked reply is no faster.
            passwords::verify(password, &user.password_hash).await;
            self.log_login(Some(user.id), account, ip, "locked", "account locked")
                .await;
            return Err(locked(user.locked_until - t));
        }
        if !passwords::verify(password, &user.password_hash).await {
            return Err(self.count_failure(&user, ip).await);
        }
        if !user.enabled {
            self.log_login(Some(user.id), account, ip, "failed", "account disabled")
                .await;
            return Err(CoreError::unauthorized("account disabled"));
        }
        // The check took a while: date the session from now.
        let t = now();
        self.store()
            .set_user_login_state(user.id, 0, 0, Some(t))
            .await?;
        let session = Session {
            id: uuid::Uuid::new_v4().simple().to_string(),
            user_id: user.id,
            refresh_jti: new_jti(),
            ip: ip.to_string(),
            created_at: t,
            expires_at: t + self.inner.opts.refresh_ttl.as_secs() as i64,
            revoked: false,
        };
        self.store().insert_session(&session).await?;
        self.log_login(Some(user.id), account, ip, "succeed", "")
            .await;
        self.token_pair(&session).await
    }

    /// Count a failed login on an account that does not exist, in the
    /// store as `count_failure` does for real ones (so the lockout holds on
    /// every controller alike); returns the seconds left when the name is
    /// "locked", in which case nothing is counted, as for a real account.
    async fn count_unknown_account_failure(
        &self,
        account: &str,
        t: i64,
    ) -> Result<Option<i64>, CoreError> {
        // Accounts match case-insensitively: so do their lockouts.
        let key: String = account
            .to_lowercase()
            .chars()
            .take(UNKNOWN_ACCOUNT_KEY_MAX)
            .collect();
        let locked_until = self.store().unknown_login_locked_until(&key).await?;
        if locked_until > t {
            return Ok(Some(locked_until - t));
        }
        self.store()
            .count_unknown_login_failure(&key, self.lockout_rule())
            .await?;
        Ok(None)
    }

    pub(super) async fn count_failure(&self, user: &User, ip: &str) -> CoreError {
        // Counted in one statement: controllers counting the same account
        // at once lose no failure.
        let counted = match self
            .store()
            .count_login_failure(user.id, self.lockout_rule())
            .await
        {
            Ok(c) => c,
            Err(e) => return e.into(),
        };
        let reason = if counted.locked_until > 0 {
            "wrong password; account locked"
        } else {
            "wrong password"
        };
        self.log_login(Some(user.id), &user.account, ip, "failed", reason)
            .await;
        CoreError::unauthorized(WRONG_LOGIN)
    }

    /// Exchange a refresh token for a new pair. The old refresh token is
    /// spent: presenting it again revokes the whole session, since only a
    /// copy held by someone else would be presented twice.
    pub async fn refresh(&self, refresh_token: &str) -> Result<TokenPair, CoreError> {
        let claims = self
            .jwt()
            .await?
            .verify(refresh_token, TokenType::Refresh)?;
        let session = self.live_session(&claims).await?;
        let user = self.enabled_user(session.user_id).await?;
        let new_jti = new_jti();
        let expires_at = now() + self.inner.opts.refresh_ttl.as_secs() as i64;
        if !self
            .store()
            .rotate_session(&session.id, &claims.jti, &new_jti, expires_at)
            .await?
        {
            let _flush = self.auth_change();
            self.store().revoke_session(&session.id).await?;
            tracing::warn!(user = %user.account, "a spent refresh token was presented; session revoked");
            return Err(CoreError::unauthorized(
                "refresh token already used; the session is revoked",
            ));
        }
        self.token_pair(&Session {
            refresh_jti: new_jti,
            expires_at,
            ..session
        })
        .await
    }

    /// End the caller's login session: its access and refresh tokens stop
    /// working at once.
    pub async fn logout(&self, actor: &Actor) -> Result<(), CoreError> {
        let Some(sid) = &actor.session_id else {
            return Err(CoreError::invalid(
                "Authorization",
                "only a login's access token can log out",
            ));
        };
        {
            // The access token stops working on the very next request.
            let _flush = self.auth_change();
            self.store().revoke_session(sid).await?;
        }
        self.log_login(actor.user_id, &actor.name, &actor.source_ip, "logout", "")
            .await;
        Ok(())
    }

    /// The caller behind a credential: the root token, a login's access
    /// token, or a personal API token (`ixt_…`). A credential resolved in
    /// the last `auth_cache_ttl` is served from memory (see `auth_cache`).
    pub async fn authenticate(
        &self,
        credential: &str,
        ip: &str,
        face: &'static str,
    ) -> Result<Actor, CoreError> {
        let credential = credential.trim();
        if credential.is_empty() {
            return Err(CoreError::unauthorized(
                "missing token (send Authorization: Bearer <token>)",
            ));
        }
        let cache = &self.inner.auth_cache;
        if !cache.enabled() {
            return Ok(self.resolve_credential(credential, ip, face).await?.0);
        }
        let key = credential_key(credential);
        if let Some(actor) = cache.get(&key) {
            return Ok(actor.seen_from(ip, face));
        }
        // Read before the store is: see `AuthCache::insert`.
        let generation = cache.generation();
        let (actor, expires_at) = self.resolve_credential(credential, ip, face).await?;
        let valid_until = expires_at.map(|at| {
            let left = u64::try_from(at - now()).unwrap_or(0);
            Instant::now() + Duration::from_secs(left)
        });
        cache.insert(key, &actor, generation, valid_until);
        Ok(actor)
    }

    /// `authenticate` against the store, with the Unix time the
    /// credential stops working (none for the root token).
    async fn resolve_credential(
        &self,
        credential: &str,
        ip: &str,
        face: &'static str,
    ) -> Result<(Actor, Option<i64>), CoreError> {
        if credential.starts_with(super::API_TOKEN_PREFIX) {
            return self.authenticate_api_token(credential, ip, face).await;
        }
        if looks_like_jwt(credential) {
            let claims = self.jwt().await?.verify(credential, TokenType::Access)?;
            let session = self.live_session(&claims).await?;
            let user = self.enabled_user(session.user_id).await?;
            let permissions = self.permissions_of(user.id).await?;
            let expires_at = claims.exp.min(session.expires_at);
            return Ok((
                Actor::user(
                    user.id,
                    &user.account,
                    permissions,
                    ip,
                    face,
                    Some(session.id),
                ),
                Some(expires_at),
            ));
        }
        if self.check_token(credential).await? {
            return Ok((Actor::root("admin", ip, face), None));
        }
        Err(CoreError::unauthorized("invalid token"))
    }

    pub(crate) async fn permissions_of(&self, user_id: i64) -> Result<BTreeSet<String>, CoreError> {
        Ok(self
            .store()
            .user_permissions(user_id)
            .await?
            .into_iter()
            .collect())
    }

    /// The user behind a token, refused when gone or disabled.
    pub(crate) async fn enabled_user(&self, user_id: i64) -> Result<User, CoreError> {
        match self.store().user_by_id(user_id).await? {
            Some(u) if u.enabled => Ok(u),
            Some(_) => Err(CoreError::unauthorized("account disabled")),
            None => Err(CoreError::unauthorized("invalid token")),
        }
    }

    async fn live_session(&self, claims: &Claims) -> Result<Session, CoreError> {
        let session = self
            .store()
            .session_by_id(&claims.sid)
            .await?
            .filter(|s| s.user_id.to_string() == claims.user_id)
            .ok_or_else(|| CoreError::unauthorized("invalid token"))?;
        if session.revoked {
            return Err(CoreError::unauthorized("token revoked"));
        }
        if session.expires_at <= now() {
            return Err(CoreError::unauthorized("token expired"));
        }
        Ok(session)
    }

    async fn token_pair(&self, session: &Session) -> Result<TokenPair, CoreError> {
        let keys = self.jwt().await?;
        let t = now();
        let access_ttl = self.inner.opts.access_ttl.as_secs();
        let claims = |token_type, exp, jti: String| Claims {
            token_type,
            exp,
            iat: t,
            jti,
            user_id: session.user_id.to_string(),
            sid: session.id.clone(),
        };
        Ok(TokenPair {
            access: keys.sign(&claims(TokenType::Access, t + access_ttl as i64, new_jti()))?,
            refresh: keys.sign(&claims(
                TokenType::Refresh,
                session.expires_at,
                session.refresh_jti.clone(),
            ))?,
            access_expires_in: access_ttl,
            refresh_expires_in: (session.expires_at - t).max(0) as u64,
        })
    }

    pub(crate) async fn log_login(
        &self,
        user_id: Option<i64>,
        account: &str,
        ip: &str,
        status: &str,
        reason: &str,
    ) {
        let entry = NewLoginLog {
            user_id,
            account,
            ip,
            status,
            reason,
        };
        if let Err(e) = self.store().insert_login_log(entry).await {
            tracing::warn!(error = %e, "could not write the login log");
        }
    }
}

fn new_jti() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

fn locked(seconds: i64) -> CoreError {
    let retry_after = seconds.max(1) as u64;
    CoreError::TooMany {
        message: format!("account locked after repeated failed logins; retry in {retry_after} s"),
        retry_after,
    }
}
