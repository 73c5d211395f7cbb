//! The OpenIDCS face's own reply types, with OpenIDCS's field names, one
//! module per area. Each is built from a core view by destructuring it
//! whole, so a field added to or renamed in the core fails to compile here
//! instead of changing this API unnoticed; and no core type is serialized
//! onto the wire, so the core's types are free to change shape.

mod console;
mod guest;
mod hosts;
mod media;
mod network;
mod system;
mod vms;

pub use console::*;
pub use guest::*;
pub use hosts::*;
pub use media::*;
pub use network::*;
pub use system::*;
pub use vms::*;
