//! SQL repositories of ironidc over SQLite (embedded default) or
//! PostgreSQL, through sqlx's `Any` driver so one set of queries serves
//! both. Queries use `$N` placeholders, which both databases accept;
//! integers are 64-bit and flags are 0/1 integers on both, so rows decode
//! the same way.

mod accounts;
mod cluster;
mod filter;
mod migrate;
mod network;
mod ops;
mod rows;
mod sql_store;

pub use sql_store::{Backend, SqlStore};
