//! Helpers for the faces' wire types.

/// `impl From<Core> for Reply` where the reply shows the core value's
/// fields under the same names and types. The core value is destructured
/// field by field, so a field added to the core type fails to compile
/// here until the face decides whether its wire shows it, and renaming a
/// core field cannot rename a wire field.
macro_rules! copy_fields {
    ($core:ident => $reply:ident { $($field:ident),+ $(,)? }) => {
        impl From<$core> for $reply {
            fn from(value: $core) -> Self {
                let $core { $($field),+ } = value;
                Self { $($field),+ }
            }
        }
    };
}
