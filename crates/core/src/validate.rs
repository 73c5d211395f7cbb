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

/// Length bounds of a VM's root password, in characters.
/// Free text shown to people (a VM's display name): at most 128
/// characters, no control characters. Never used as a path or argument.
pub fn display_text(field: &str, value: &str) -> Result<(), CoreError> {
    if value.chars().count() > 128 {
        return Err(CoreError::invalid(field, "must be at most 128 characters"));
    }
    if value.chars().any(char::is_control) {
        return Err(CoreError::invalid(
            field,
            "must not contain control characters",
        ));
    }
    Ok(())
}

pub const VM_PASSWORD_LEN: std::ops::RangeInclusive<usize> = 8..=128;

/// A VM password, on every path that takes one (create, update, reinstall,
/// guest agent): 8 to 128 characters, none a control character or `:`.
/// The bound keeps the SHA-512-crypt hash of the seed cheap (its cost grows
/// with the square of the length); chpasswd reads `user:password` lines, so
/// a newline or `:` would corrupt its input.
pub fn vm_password(field: &str, password: &str) -> Result<(), CoreError> {
    let len = password.chars().count();
    if !VM_PASSWORD_LEN.contains(&len) {
        return Err(CoreError::invalid(
            field,
            format!(
                "must be {} to {} characters",
                VM_PASSWORD_LEN.start(),
                VM_PASSWORD_LEN.end()
            ),
        ));
    }
    if password.chars().any(|c| c.is_control() || c == ':') {
        return Err(CoreError::invalid(
            field,
            "must not contain control characters or ':'",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vm_passwords() {
        assert!(vm_password("os_pass", "Secret-Pass1").is_ok());
        assert!(vm_password("os_pass", &"x".repeat(128)).is_ok());
        for bad in [
            "short",
            "has:colon-long",
            "has\nnewline-long",
            &"x".repeat(129),
        ] {
            let err = vm_password("os_pass", bad).expect_err(bad);
            assert!(err.to_string().starts_with("os_pass:"), "{err}");
        }
    }

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

/// A Linux interface name that becomes a bridge or tap (`ip link`, nft rules):
/// the path-name alphabet, at most 15 bytes (IFNAMSIZ - 1).
pub fn interface_name(field: &str, value: &str) -> Result<(), CoreError> {
    let ok = value.len() <= 15
        && value
            .as_bytes()
            .first()
            .is_some_and(u8::is_ascii_alphanumeric)
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(CoreError::invalid(
            field,
            "must be an interface name: 1-15 ASCII letters, digits, '_', '.', '-', starting with a letter or digit",
        ))
    }
}

/// A DNS name bound to the reverse proxy, returned in lowercase: at least two
/// labels, each 1-63 of `[a-z0-9-]` not starting or ending with `-`, 253
/// bytes at most. No wildcards, no trailing dot, no IP literals.
pub fn domain_name(field: &str, value: &str) -> Result<String, CoreError> {
    let domain = value.trim().to_ascii_lowercase();
    let bad = |why: &str| Err(CoreError::invalid(field, format!("{why} ({value:?})")));
    if domain.is_empty() || domain.len() > 253 {
        return bad("must be a domain name of 1-253 characters");
    }
    let labels: Vec<&str> = domain.split('.').collect();
    if labels.len() < 2 {
        return bad("must have at least two labels, like example.com");
    }
    for label in &labels {
        let valid = !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-');
        if !valid {
            return bad("each label must be 1-63 letters, digits or '-' (not at either end)");
        }
    }
    if labels
        .last()
        .is_some_and(|tld| tld.bytes().all(|b| b.is_ascii_digit()))
    {
        return bad("must be a name, not an IP address");
    }
    Ok(domain)
}

#[cfg(test)]
mod network_name_tests {
    use super::*;

    #[test]
    fn interface_names() {
        for ok in ["br0", "nat-br", "ix525400aabbcc", "a.b_c"] {
            assert!(interface_name("f", ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "-br",
            ".x",
            "br0;drop",
            "a/b",
            "abcdefghijklmnop",
            "bré",
        ] {
            assert!(interface_name("f", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn domain_names() {
        assert_eq!(
            domain_name("domain", "Site.Example.COM").unwrap(),
            "site.example.com"
        );
        for bad in [
            "",
            "localhost",
            "*.example.com",
            "a..b",
            "-a.com",
            "a-.com",
            "10.0.0.1",
            "a b.com",
            "exa_mple.com",
        ] {
            assert!(domain_name("domain", bad).is_err(), "{bad}");
        }
        let long = format!("{}.com", "a".repeat(64));
        assert!(domain_name("domain", &long).is_err());
    }
}
