//! Engines: the local QEMU driver and the demo image builder.
pub mod image;
pub mod qemu;
