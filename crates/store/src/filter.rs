//! `WHERE` clauses built from optional filters. Placeholders are numbered
//! in the order they appear, and the arguments are bound in that order.

use ironidc_core::accounts::Page;
use ironidc_core::store::StoreError;
use sqlx::any::AnyArguments;
use sqlx::query::{QueryAs, QueryScalar};
use sqlx::{Any, AnyPool};

use crate::rows::db;

/// One bound value of a filter.
#[derive(Debug, Clone)]
pub(crate) enum Arg {
    Int(i64),
    Text(String),
}

/// A query the arguments of a `Where` bind onto: rows (`query_as`) or a
/// scalar (`query_scalar`). sqlx gives the two no common binding trait.
pub(crate) trait Bind: Sized {
    fn bind_int(self, value: i64) -> Self;
    fn bind_text(self, value: String) -> Self;
}

impl<'q, O> Bind for QueryAs<'q, Any, O, AnyArguments<'q>> {
    fn bind_int(self, value: i64) -> Self {
        self.bind(value)
    }
    fn bind_text(self, value: String) -> Self {
        self.bind(value)
    }
}

impl<'q, O> Bind for QueryScalar<'q, Any, O, AnyArguments<'q>> {
    fn bind_int(self, value: i64) -> Self {
        self.bind(value)
    }
    fn bind_text(self, value: String) -> Self {
        self.bind(value)
    }
}

/// Conditions joined by `AND`, with their arguments.
#[derive(Debug, Default)]
pub(crate) struct Where {
    clauses: Vec<String>,
    args: Vec<Arg>,
}

impl Where {
    /// Adds an argument and returns its placeholder (`$N`).
    pub fn placeholder(&mut self, arg: Arg) -> String {
        self.args.push(arg);
        format!("${}", self.args.len())
    }

    /// Adds a condition; its placeholders come from `placeholder`.
    pub fn and(&mut self, clause: String) {
        self.clauses.push(clause);
    }

    pub fn eq_int(&mut self, column: &str, value: i64) {
        let p = self.placeholder(Arg::Int(value));
        self.and(format!("{column} = {p}"));
    }

    pub fn eq_text(&mut self, column: &str, value: &str) {
        let p = self.placeholder(Arg::Text(value.to_string()));
        self.and(format!("{column} = {p}"));
    }

    /// `column` contains `needle`, case-insensitively; `%` and `_` in the
    /// needle match themselves.
    pub fn contains(&mut self, column: &str, needle: &str) {
        let p = self.placeholder(Arg::Text(like_pattern(needle)));
        self.and(format!("lower({column}) LIKE lower({p}) ESCAPE '\\'"));
    }

    /// ` WHERE …`, or nothing without conditions.
    pub fn sql(&self) -> String {
        if self.clauses.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", self.clauses.join(" AND "))
        }
    }

    /// ` LIMIT $n OFFSET $n+1`, numbered after the conditions' arguments;
    /// bind with `bind_page`.
    pub fn page_sql(&self) -> String {
        let n = self.args.len();
        format!(" LIMIT ${} OFFSET ${}", n + 1, n + 2)
    }

    /// ` LIMIT $n`, numbered after the conditions' arguments.
    pub fn limit_sql(&self) -> String {
        format!(" LIMIT ${}", self.args.len() + 1)
    }

    /// Binds the conditions' arguments.
    pub fn bind<Q: Bind>(&self, mut q: Q) -> Q {
        for arg in &self.args {
            q = match arg {
                Arg::Int(v) => q.bind_int(*v),
                Arg::Text(s) => q.bind_text(s.clone()),
            };
        }
        q
    }

    /// Binds the conditions' arguments, then the page's limit and offset.
    pub fn bind_page<Q: Bind>(&self, q: Q, page: Page) -> Q {
        self.bind(q)
            .bind_int(i64::from(page.limit))
            .bind_int(i64::from(page.offset))
    }

    /// `SELECT COUNT(*) FROM {from}` with these conditions.
    pub async fn count(&self, pool: &AnyPool, from: &str) -> Result<u64, StoreError> {
        let sql = format!("SELECT COUNT(*) FROM {from}{}", self.sql());
        let n: i64 = self
            .bind(sqlx::query_scalar(&sql))
            .fetch_one(pool)
            .await
            .map_err(db)?;
        Ok(u64::try_from(n).unwrap_or(0))
    }
}

/// A `LIKE` pattern matching `needle` anywhere, with `\` as escape.
pub(crate) fn like_pattern(needle: &str) -> String {
    let mut pattern = String::with_capacity(needle.len() + 2);
    pattern.push('%');
    for c in needle.chars() {
        if matches!(c, '\\' | '%' | '_') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_pattern_escapes_wildcards() {
        assert_eq!(like_pattern("a%b_c\\d"), "%a\\%b\\_c\\\\d%");
        assert_eq!(like_pattern(""), "%%");
    }

    #[test]
    fn placeholders_follow_the_arguments() {
        let mut w = Where::default();
        assert_eq!(w.sql(), "");
        w.eq_int("user_id", 3);
        w.contains("action", "vm");
        assert_eq!(
            w.sql(),
            " WHERE user_id = $1 AND lower(action) LIKE lower($2) ESCAPE '\\'"
        );
        assert_eq!(w.page_sql(), " LIMIT $3 OFFSET $4");
        assert_eq!(w.limit_sql(), " LIMIT $3");
    }
}
