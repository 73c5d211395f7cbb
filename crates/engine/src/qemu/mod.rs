//! The local QEMU engine.
