//! Validation of names and values that reach file paths, process arguments
//! or firewall rules. One function per kind of name; every face goes through
//! the service layer, so these run once, in the core.

use crate::error::CoreError;

/// The pattern of names that become path components: `[A-Za-z0-9][A-Za-z0-9_.-]{0,63}`.
/// A leading letter or digit rules out `.`/`..` and hidden files; `/` and
/// non-ASCII are never allowed.
pub fn path_name(field: &'static str, value: &str) -> Result<(), CoreError> {
    let bytes = value.as_bytes();
    let Some(first) = bytes.first() else {
        return Err(CoreError::invalid(field, "must not be empty"));
    };
    if bytes.len() > 64 {
        return Err(CoreError::invalid(field, "must be at most 64 characters"));
    }
    if !first.is_ascii_alphanumeric() {
        return Err(CoreError::invalid(
            field,
            "must start with a letter or a digit",
        ));
    }
    if !bytes
        .iter()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
    {
        return Err(CoreError::invalid(
            field,
            "may only contain ASCII letters, digits, '_', '.' and '-'",
        ));
    }
    Ok(())
}

/// An absolute directory path given by an operator in a host config. It must
/// be absolute and free of `..` components so it cannot be steered elsewhere.
pub fn absolute_dir(field: &'static str, value: &str) -> Result<(), CoreError> {
    let path = std::path::Path::new(value);
    if !path.is_absolute() {
        return Err(CoreError::invalid(field, "must be an absolute path"));
    }
    if path
        .components()
        .any(|c| matches!(c, std::path::Component::ParentDir))
    {
        return Err(CoreError::invalid(field, "must not contain '..'"));
    }
    if value.chars().any(|c| c.is_control()) {
        return Err(CoreError::invalid(
            field,
            "must not contain control characters",
        ));
    }
    Ok(())
}

/// A MAC address in `aa:bb:cc:dd:ee:ff` form (either case).
pub fn mac_address(field: &'static str, value: &str) -> Result<(), CoreError> {
    let parts: Vec<&str> = value.split(':').collect();
    let ok = parts.len() == 6
        && parts
            .iter()
            .all(|p| p.len() == 2 && p.bytes().all(|b| b.is_ascii_hexdigit()));
    if !ok {
        return Err(CoreError::invalid(
            field,
            "must be a MAC address like 52:54:00:12:34:56",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_names() {
        for good in ["a", "vm-1", "Host_2.local", "0abc", &"x".repeat(64)] {
            assert!(path_name("f", good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "../x",
            ".hidden",
            "-x",
            "a/b",
            "é",
            "a b",
            &"x".repeat(65),
            "a\0",
        ] {
            let err = path_name("vm_uuid", bad).expect_err(bad);
            assert!(err.to_string().contains("vm_uuid"), "{err}");
        }
    }

    #[test]
    fn dirs() {
        assert!(absolute_dir("p", "/var/lib/ironidc").is_ok());
        assert!(absolute_dir("p", "relative").is_err());
        assert!(absolute_dir("p", "/a/../etc").is_err());
    }

    #[test]
    fn macs() {
        assert!(mac_address("m", "52:54:00:ab:CD:ef").is_ok());
        assert!(mac_address("m", "52:54:00:ab:CD").is_err());
        assert!(mac_address("m", "52:54:00:ab:CD:eg").is_err());
    }
}
