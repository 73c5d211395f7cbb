//! ironidc core: domain model, validation, ports (store, engine) and the
//! service layer that every face calls.
pub mod account_store;
pub mod accounts;
pub mod cluster_store;
pub mod cpu_work;
pub mod engine;
pub mod error;
pub mod ipam;
pub mod model;
pub mod network;
pub mod ops_store;
pub mod permissions;
pub mod remote_host;
pub mod secrets;
pub mod service;
pub mod store;
pub mod validate;

pub use error::{CoreError, ErrorClass};
pub use service::{Actor, EngineRegistry, ServiceOptions, Services};
