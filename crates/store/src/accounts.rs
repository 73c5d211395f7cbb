//! Rows of the account tables: users, roles and their links, login
//! sessions, personal API tokens, the login log, VM ownership and usage.

use std::collections::{BTreeMap, BTreeSet};

use async_trait::async_trait;
use ironidc_core::accounts::{
    ApiToken, LogFilter, LoginLogEntry, NewApiToken, NewLoginLog, NewRole, NewUser, Page, Role,
    Session, Usage, User, UserFilter, UserKey,
};
use ironidc_core::model::VmConfig;
use ironidc_core::service::now;
use ironidc_core::store::{AccountStore, Invalidation, StoreError};
use sqlx::any::AnyRow;
use sqlx::{Any, FromRow, Transaction};

use crate::filter::{Arg, Where};
use crate::rows::{
    db, decode_all, json, to_json, ApiTokenRow, LoginLogRow, RoleRow, SessionRow, UserRow,
};
use crate::sql_store::SqlStore;

fn count(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

/// Delete row `id` of `table` and first the rows of `links` whose `key`
/// points at it; whether the row existed.
async fn delete_with_links(
    tx: &mut Transaction<'_, Any>,
    table: &str,
    id: i64,
    key: &str,
    links: &[&str],
) -> Result<bool, StoreError> {
    for link in links {
        sqlx::query(&format!("DELETE FROM {link} WHERE {key} = $1"))
            .bind(id)
            .execute(&mut **tx)
            .await
            .map_err(db)?;
    }
    let done = sqlx::query(&format!("DELETE FROM {table} WHERE id = $1"))
        .bind(id)
        .execute(&mut **tx)
        .await
        .map_err(db)?;
    Ok(done.rows_affected() > 0)
}

/// `column IN ($1, …, $n)` over `ids`, for the one extra query of a list.
fn in_ids(column: &str, ids: &[i64]) -> Where {
    let mut w = Where::default();
    let placeholders: Vec<String> = ids.iter().map(|id| w.placeholder(Arg::Int(*id))).collect();
    w.and(format!("{column} IN ({})", placeholders.join(", ")));
    w
}

async fn replace_user_roles(
    tx: &mut Transaction<'_, Any>,
    user_id: i64,
    role_ids: &[i64],
) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM user_roles WHERE user_id = $1")
        .bind(user_id)
        .execute(&mut **tx)
        .await
        .map_err(db)?;
    for role_id in role_ids.iter().collect::<BTreeSet<_>>() {
        sqlx::query("INSERT INTO user_roles (user_id, role_id) VALUES ($1, $2)")
            .bind(user_id)
            .bind(*role_id)
            .execute(&mut **tx)
            .await
            .map_err(db)?;
    }
    Ok(())
}

async fn replace_role_permissions(
    tx: &mut Transaction<'_, Any>,
    role_id: i64,
    codes: &[String],
) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM role_permissions WHERE role_id = $1")
        .bind(role_id)
        .execute(&mut **tx)
        .await
        .map_err(db)?;
    for code in codes.iter().collect::<BTreeSet<_>>() {
        // Two controllers seeding the built-in roles at once each delete
        // and re-insert the same set: the second insert of a code is a
        // no-op, not a conflict that stops a controller's start.
        sqlx::query(
            "INSERT INTO role_permissions (role_id, code) VALUES ($1, $2) \
             ON CONFLICT (role_id, code) DO NOTHING",
        )
        .bind(role_id)
        .bind(code.clone())
        .execute(&mut **tx)
        .await
        .map_err(db)?;
    }
    Ok(())
}

impl SqlStore {
    /// Rows of `table` matching `w`, in id order, optionally one page, read
    /// as `R` and decoded into `T`.
    async fn rows_where<R, T>(
        &self,
        columns: &str,
        table: &str,
        w: &Where,
        page: Option<Page>,
    ) -> Result<Vec<T>, StoreError>
    where
        R: for<'r> FromRow<'r, AnyRow> + Send + Unpin,
        T: TryFrom<R, Error = StoreError>,
    {
        let mut sql = format!("SELECT {columns} FROM {table}{} ORDER BY id", w.sql());
        let query = match page {
            Some(page) => {
                sql.push_str(&w.page_sql());
                w.bind_page(sqlx::query_as::<_, R>(&sql), page)
            }
            None => w.bind(sqlx::query_as::<_, R>(&sql)),
        };
        decode_all(query.fetch_all(self.pool()).await.map_err(db)?)
    }

    /// The `child` values of a link table for each `parent` id, in one
    /// query for all parents.
    async fn links_of<T>(
        &self,
        table: &str,
        parent: &str,
        child: &str,
        ids: &[i64],
    ) -> Result<BTreeMap<i64, Vec<T>>, StoreError>
    where
        T: for<'r> sqlx::Decode<'r, Any> + sqlx::Type<Any> + Send + Unpin,
    {
        let mut out: BTreeMap<i64, Vec<T>> = BTreeMap::new();
        if ids.is_empty() {
            return Ok(out);
        }
        let links = in_ids(parent, ids);
        let sql = format!(
            "SELECT {parent}, {child} FROM {table}{} ORDER BY {parent}, {child}",
            links.sql()
        );
        // Read by position: the parent id, then the child value.
        let rows: Vec<(i64, T)> = links
            .bind(sqlx::query_as(&sql))
            .fetch_all(self.pool())
            .await
            .map_err(db)?;
        for (id, value) in rows {
            out.entry(id).or_default().push(value);
        }
        Ok(out)
    }

    /// Users matching `w` (in id order, optionally one page), with roles.
    async fn users_where(&self, w: &Where, page: Option<Page>) -> Result<Vec<User>, StoreError> {
        let mut users = self
            .rows_where::<UserRow, User>(UserRow::COLUMNS, "users", w, page)
            .await?;
        let ids: Vec<i64> = users.iter().map(|u| u.id).collect();
        let mut roles = self
            .links_of::<i64>("user_roles", "user_id", "role_id", &ids)
            .await?;
        for u in &mut users {
            u.roles = roles.remove(&u.id).unwrap_or_default();
        }
        Ok(users)
    }

    async fn user_where(&self, w: &Where) -> Result<Option<User>, StoreError> {
        Ok(self.users_where(w, None).await?.pop())
    }

    /// Roles matching `w` (in id order, optionally one page), with
    /// permissions.
    async fn roles_where(&self, w: &Where, page: Option<Page>) -> Result<Vec<Role>, StoreError> {
        let mut roles = self
            .rows_where::<RoleRow, Role>(RoleRow::COLUMNS, "roles", w, page)
            .await?;
        let ids: Vec<i64> = roles.iter().map(|r| r.id).collect();
        let mut codes = self
            .links_of::<String>("role_permissions", "role_id", "code", &ids)
            .await?;
        for r in &mut roles {
            let mut permissions = codes.remove(&r.id).unwrap_or_default();
            // Sorted here: the databases' collations differ.
            permissions.sort();
            r.permissions = permissions;
        }
        Ok(roles)
    }

    async fn role_where(&self, w: &Where) -> Result<Option<Role>, StoreError> {
        Ok(self.roles_where(w, None).await?.pop())
    }

    async fn user_by_id_or_vanished(&self, id: i64) -> Result<User, StoreError> {
        self.user_by_id(id)
            .await?
            .ok_or_else(|| StoreError::Database("inserted user row vanished".into()))
    }
}

#[async_trait]
impl AccountStore for SqlStore {
    async fn insert_user(&self, new: &NewUser) -> Result<User, StoreError> {
        let ts = now();
        let mut tx = self.pool().begin().await.map_err(db)?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO users (external_id, account, name, email, phone, enabled, protected, remark, \
             password_hash, failed_logins, locked_until, quota, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 0, 0, $10, $11, $11) RETURNING id",
        )
        .bind(new.external_id.clone())
        .bind(&new.account)
        .bind(&new.name)
        .bind(new.email.clone())
        .bind(new.phone.clone())
        .bind(i64::from(new.enabled))
        .bind(i64::from(new.protected))
        .bind(new.remark.clone())
        .bind(&new.password_hash)
        .bind(to_json(&new.quota)?)
        .bind(ts)
        .fetch_one(&mut *tx)
        .await
        .map_err(db)?;
        replace_user_roles(&mut tx, id, &new.roles).await?;
        tx.commit().await.map_err(db)?;
        self.notify(Invalidation::Auth).await;
        self.user_by_id_or_vanished(id).await
    }

    async fn update_user(&self, user: &User) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE users SET external_id = $1, name = $2, email = $3, phone = $4, enabled = $5, \
             remark = $6, quota = $7, updated_at = $8 WHERE id = $9",
        )
        .bind(user.external_id.clone())
        .bind(&user.name)
        .bind(user.email.clone())
        .bind(user.phone.clone())
        .bind(i64::from(user.enabled))
        .bind(user.remark.clone())
        .bind(to_json(&user.quota)?)
        .bind(now())
        .bind(user.id)
        .execute(self.pool())
        .await
        .map_err(db)?;
        self.notify(Invalidation::Auth).await;
        Ok(())
    }

    async fn set_user_password(&self, id: i64, password_hash: &str) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE users SET password_hash = $1, failed_logins = 0, locked_until = 0, updated_at = $2 \
             WHERE id = $3",
        )
        .bind(password_hash)
        .bind(now())
        .bind(id)
        .execute(self.pool())
        .await
        .map_err(db)?;
        self.notify(Invalidation::Auth).await;
        Ok(())
    }

    async fn set_user_login_state(
        &self,
        id: i64,
        failed_logins: i64,
        locked_until: i64,
        login_at: Option<i64>,
    ) -> Result<(), StoreError> {
        // A failed attempt (no `login_at`) keeps the last successful login.
        sqlx::query(
            "UPDATE users SET failed_logins = $1, locked_until = $2, login_at = COALESCE($3, login_at) \
             WHERE id = $4",
        )
        .bind(failed_logins)
        .bind(locked_until)
        .bind(login_at)
        .bind(id)
        .execute(self.pool())
        .await
        .map_err(db)?;
        Ok(())
    }

    async fn delete_user(&self, id: i64) -> Result<bool, StoreError> {
        let mut tx = self.pool().begin().await.map_err(db)?;
        sqlx::query("UPDATE vms SET owner_id = NULL WHERE owner_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        // Dependent rows explicitly, as `delete_vm` does, whatever the
        // backend's foreign-key enforcement.
        let existed = delete_with_links(
            &mut tx,
            "users",
            id,
            "user_id",
            &["sessions", "api_tokens", "user_roles"],
        )
        .await?;
        tx.commit().await.map_err(db)?;
        self.notify(Invalidation::Auth).await;
        Ok(existed)
    }

    async fn user_by_id(&self, id: i64) -> Result<Option<User>, StoreError> {
        let mut w = Where::default();
        w.eq_int("id", id);
        self.user_where(&w).await
    }

    async fn user_by_key(&self, key: UserKey, value: &str) -> Result<Option<User>, StoreError> {
        let mut w = Where::default();
        match key {
            UserKey::Account | UserKey::Email => {
                let column = if key == UserKey::Account {
                    "account"
                } else {
                    "email"
                };
                let p = w.placeholder(Arg::Text(value.to_string()));
                w.and(format!("lower({column}) = lower({p})"));
            }
            UserKey::Phone => w.eq_text("phone", value),
            UserKey::ExternalId => w.eq_text("external_id", value),
        }
        self.user_where(&w).await
    }

    async fn list_users(&self, filter: &UserFilter) -> Result<(Vec<User>, u64), StoreError> {
        let mut w = Where::default();
        if let Some(name) = filter.name.as_deref().filter(|s| !s.is_empty()) {
            w.contains("name", name);
        }
        if let Some(account) = filter.account.as_deref().filter(|s| !s.is_empty()) {
            w.contains("account", account);
        }
        if let Some(enabled) = filter.enabled {
            w.eq_int("enabled", i64::from(enabled));
        }
        let total = w.count(self.pool(), "users").await?;
        let users = self.users_where(&w, Some(filter.page)).await?;
        Ok((users, total))
    }

    async fn set_user_roles(&self, user_id: i64, role_ids: &[i64]) -> Result<(), StoreError> {
        let mut tx = self.pool().begin().await.map_err(db)?;
        replace_user_roles(&mut tx, user_id, role_ids).await?;
        sqlx::query("UPDATE users SET updated_at = $1 WHERE id = $2")
            .bind(now())
            .bind(user_id)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        tx.commit().await.map_err(db)?;
        self.notify(Invalidation::Auth).await;
        Ok(())
    }

    async fn user_permissions(&self, user_id: i64) -> Result<Vec<String>, StoreError> {
        let codes: Vec<String> = sqlx::query_scalar(
            "SELECT DISTINCT rp.code FROM user_roles ur \
             JOIN roles r ON r.id = ur.role_id \
             JOIN role_permissions rp ON rp.role_id = r.id \
             WHERE ur.user_id = $1 AND r.enabled = 1",
        )
        .bind(user_id)
        .fetch_all(self.pool())
        .await
        .map_err(db)?;
        Ok(codes
            .into_iter()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect())
    }

    async fn role_members(&self, role_id: i64) -> Result<Vec<i64>, StoreError> {
        sqlx::query_scalar("SELECT user_id FROM user_roles WHERE role_id = $1 ORDER BY user_id")
            .bind(role_id)
            .fetch_all(self.pool())
            .await
            .map_err(db)
    }

    async fn insert_role(&self, new: &NewRole) -> Result<Role, StoreError> {
        let ts = now();
        let mut tx = self.pool().begin().await.map_err(db)?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO roles (name, code, description, enabled, protected, quota, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $7) RETURNING id",
        )
        .bind(&new.name)
        .bind(&new.code)
        .bind(new.description.clone())
        .bind(i64::from(new.enabled))
        .bind(i64::from(new.protected))
        .bind(to_json(&new.quota)?)
        .bind(ts)
        .fetch_one(&mut *tx)
        .await
        .map_err(db)?;
        replace_role_permissions(&mut tx, id, &new.permissions).await?;
        tx.commit().await.map_err(db)?;
        self.notify(Invalidation::Auth).await;
        self.role_by_id(id)
            .await?
            .ok_or_else(|| StoreError::Database("inserted role row vanished".into()))
    }

    async fn update_role(&self, role: &Role) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE roles SET name = $1, code = $2, description = $3, enabled = $4, quota = $5, \
             updated_at = $6 WHERE id = $7",
        )
        .bind(&role.name)
        .bind(&role.code)
        .bind(role.description.clone())
        .bind(i64::from(role.enabled))
        .bind(to_json(&role.quota)?)
        .bind(now())
        .bind(role.id)
        .execute(self.pool())
        .await
        .map_err(db)?;
        self.notify(Invalidation::Auth).await;
        Ok(())
    }

    async fn set_role_permissions(&self, role_id: i64, codes: &[String]) -> Result<(), StoreError> {
        let mut tx = self.pool().begin().await.map_err(db)?;
        replace_role_permissions(&mut tx, role_id, codes).await?;
        sqlx::query("UPDATE roles SET updated_at = $1 WHERE id = $2")
            .bind(now())
            .bind(role_id)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        tx.commit().await.map_err(db)?;
        self.notify(Invalidation::Auth).await;
        Ok(())
    }

    async fn delete_role(&self, id: i64) -> Result<bool, StoreError> {
        let mut tx = self.pool().begin().await.map_err(db)?;
        let existed = delete_with_links(
            &mut tx,
            "roles",
            id,
            "role_id",
            &["role_permissions", "user_roles"],
        )
        .await?;
        tx.commit().await.map_err(db)?;
        self.notify(Invalidation::Auth).await;
        Ok(existed)
    }

    async fn role_by_id(&self, id: i64) -> Result<Option<Role>, StoreError> {
        let mut w = Where::default();
        w.eq_int("id", id);
        self.role_where(&w).await
    }

    async fn role_by_code(&self, code: &str) -> Result<Option<Role>, StoreError> {
        let mut w = Where::default();
        w.eq_text("code", code);
        self.role_where(&w).await
    }

    async fn list_roles(
        &self,
        name: Option<&str>,
        page: Option<Page>,
    ) -> Result<(Vec<Role>, u64), StoreError> {
        let mut w = Where::default();
        if let Some(name) = name.filter(|s| !s.is_empty()) {
            w.contains("name", name);
        }
        let total = w.count(self.pool(), "roles").await?;
        let roles = self.roles_where(&w, page).await?;
        Ok((roles, total))
    }

    async fn insert_session(&self, s: &Session) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO sessions (id, user_id, refresh_jti, ip, created_at, expires_at, revoked) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&s.id)
        .bind(s.user_id)
        .bind(&s.refresh_jti)
        .bind(&s.ip)
        .bind(s.created_at)
        .bind(s.expires_at)
        .bind(i64::from(s.revoked))
        .execute(self.pool())
        .await
        .map_err(db)?;
        Ok(())
    }

    async fn session_by_id(&self, id: &str) -> Result<Option<Session>, StoreError> {
        let sql = format!("SELECT {} FROM sessions WHERE id = $1", SessionRow::COLUMNS);
        let row = sqlx::query_as::<_, SessionRow>(&sql)
            .bind(id)
            .fetch_optional(self.pool())
            .await
            .map_err(db)?;
        Ok(row.map(Session::from))
    }

    async fn rotate_session(
        &self,
        id: &str,
        old_jti: &str,
        new_jti: &str,
        expires_at: i64,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE sessions SET refresh_jti = $1, expires_at = $2 \
             WHERE id = $3 AND refresh_jti = $4 AND revoked = 0",
        )
        .bind(new_jti)
        .bind(expires_at)
        .bind(id)
        .bind(old_jti)
        .execute(self.pool())
        .await
        .map_err(db)?;
        Ok(done.rows_affected() == 1)
    }

    async fn revoke_session(&self, id: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE sessions SET revoked = 1 WHERE id = $1")
            .bind(id)
            .execute(self.pool())
            .await
            .map_err(db)?;
        self.notify(Invalidation::Auth).await;
        Ok(())
    }

    async fn revoke_user_sessions(&self, user_id: i64) -> Result<u64, StoreError> {
        let done =
            sqlx::query("UPDATE sessions SET revoked = 1 WHERE user_id = $1 AND revoked = 0")
                .bind(user_id)
                .execute(self.pool())
                .await
                .map_err(db)?;
        self.notify(Invalidation::Auth).await;
        Ok(done.rows_affected())
    }

    async fn purge_sessions(&self, before: i64) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM sessions WHERE expires_at < $1")
            .bind(before)
            .execute(self.pool())
            .await
            .map_err(db)?;
        // Expired sessions authenticate nobody: only a purge that removed
        // rows is worth telling (a cache may still hold them).
        if done.rows_affected() > 0 {
            self.notify(Invalidation::Auth).await;
        }
        Ok(done.rows_affected())
    }

    async fn insert_api_token(&self, new: &NewApiToken) -> Result<ApiToken, StoreError> {
        let sql = format!(
            "INSERT INTO api_tokens (user_id, name, token_hash, hint, scopes, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING {}",
            ApiTokenRow::COLUMNS
        );
        let row = sqlx::query_as::<_, ApiTokenRow>(&sql)
            .bind(new.user_id)
            .bind(&new.name)
            .bind(&new.token_hash)
            .bind(&new.hint)
            .bind(to_json(&new.scopes)?)
            .bind(now())
            .bind(new.expires_at)
            .fetch_one(self.pool())
            .await
            .map_err(db)?;
        self.notify(Invalidation::Auth).await;
        row.try_into()
    }

    async fn api_token_by_hash(&self, hash: &str) -> Result<Option<ApiToken>, StoreError> {
        let sql = format!(
            "SELECT {} FROM api_tokens WHERE token_hash = $1",
            ApiTokenRow::COLUMNS
        );
        let row = sqlx::query_as::<_, ApiTokenRow>(&sql)
            .bind(hash)
            .fetch_optional(self.pool())
            .await
            .map_err(db)?;
        row.map(ApiToken::try_from).transpose()
    }

    async fn list_api_tokens(&self, user_id: i64) -> Result<Vec<ApiToken>, StoreError> {
        let sql = format!(
            "SELECT {} FROM api_tokens WHERE user_id = $1 ORDER BY id",
            ApiTokenRow::COLUMNS
        );
        decode_all(
            sqlx::query_as::<_, ApiTokenRow>(&sql)
                .bind(user_id)
                .fetch_all(self.pool())
                .await
                .map_err(db)?,
        )
    }

    async fn delete_api_token(&self, id: i64, user_id: i64) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM api_tokens WHERE id = $1 AND user_id = $2")
            .bind(id)
            .bind(user_id)
            .execute(self.pool())
            .await
            .map_err(db)?;
        self.notify(Invalidation::Auth).await;
        Ok(done.rows_affected() > 0)
    }

    async fn touch_api_token(&self, id: i64, at: i64) -> Result<(), StoreError> {
        sqlx::query("UPDATE api_tokens SET last_used_at = $1 WHERE id = $2")
            .bind(at)
            .bind(id)
            .execute(self.pool())
            .await
            .map_err(db)?;
        Ok(())
    }

    async fn insert_login_log(&self, new: NewLoginLog<'_>) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO login_logs (user_id, account, ip, status, reason, ts) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(new.user_id)
        .bind(new.account)
        .bind(new.ip)
        .bind(new.status)
        .bind(new.reason)
        .bind(now())
        .execute(self.pool())
        .await
        .map_err(db)?;
        Ok(())
    }

    async fn list_login_logs(
        &self,
        filter: &LogFilter,
    ) -> Result<(Vec<LoginLogEntry>, u64), StoreError> {
        let mut w = Where::default();
        if let Some(user_id) = filter.user_id {
            w.eq_int("l.user_id", user_id);
        }
        let total = w.count(self.pool(), "login_logs l").await?;
        let order = if filter.desc { "DESC" } else { "ASC" };
        let sql = format!(
            "SELECT {} FROM login_logs l LEFT JOIN users u ON u.id = l.user_id{} ORDER BY l.id {order}{}",
            LoginLogRow::COLUMNS,
            w.sql(),
            w.page_sql()
        );
        let entries = w
            .bind_page(sqlx::query_as::<_, LoginLogRow>(&sql), filter.page)
            .fetch_all(self.pool())
            .await
            .map_err(db)?
            .into_iter()
            .map(LoginLogEntry::from)
            .collect();
        Ok((entries, total))
    }

    async fn set_vm_owner(&self, vm_id: i64, owner_id: Option<i64>) -> Result<(), StoreError> {
        sqlx::query("UPDATE vms SET owner_id = $1, updated_at = $2 WHERE id = $3")
            .bind(owner_id)
            .bind(now())
            .bind(vm_id)
            .execute(self.pool())
            .await
            .map_err(db)?;
        Ok(())
    }

    async fn usage_of(&self, owner_id: i64) -> Result<Usage, StoreError> {
        let configs: Vec<String> = sqlx::query_scalar("SELECT config FROM vms WHERE owner_id = $1")
            .bind(owner_id)
            .fetch_all(self.pool())
            .await
            .map_err(db)?;
        let mut usage = Usage::default();
        for text in &configs {
            let config: VmConfig = json("vm config", text)?;
            usage.vms += 1;
            usage.vcpus += u64::from(config.cpu_num);
            usage.memory_mb += config.mem_num;
            usage.disk_mb += config.hdd_num;
        }
        for (table, slot) in [
            ("nat_rules", &mut usage.nat_rules),
            ("proxies", &mut usage.proxies),
        ] {
            let n: i64 = sqlx::query_scalar(&format!(
                "SELECT COUNT(*) FROM {table} WHERE vm_id IN (SELECT id FROM vms WHERE owner_id = $1)"
            ))
            .bind(owner_id)
            .fetch_one(self.pool())
            .await
            .map_err(db)?;
            *slot = count(n);
        }
        Ok(usage)
    }
}
