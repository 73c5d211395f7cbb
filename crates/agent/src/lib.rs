//! `ironidc agent`: a remote host's engine, served to controllers over
//! HTTP/2 + TLS with typed JSON (`server`), and the controller's engine that
//! speaks to it (`client`). The agent's certificate is pinned by the
//! enrolment token; every request carries the enrolment secret.

pub mod client;
pub mod identity;
pub mod pin;
pub mod server;
pub mod wire;
