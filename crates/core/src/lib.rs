//! ironidc core: domain model, validation, ports and the service layer.
pub mod engine;
pub mod model;
