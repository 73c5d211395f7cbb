//! Whether the programs a test runs are installed. A test without them is
//! skipped with a message, except in CI (env `CI` set), where that is a
//! failure: a CI run must never pass by skipping.

use std::process::{Command, Stdio};

/// Whether `program --version` runs and succeeds.
pub fn installed(program: &str) -> bool {
    Command::new(program)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Whether all of `programs` are installed; if not, the test is skipped (or
/// fails in CI). `packages`: the Debian packages that hold them.
pub fn tools_available(programs: &[&str], packages: &str) -> bool {
    if programs.iter().all(|p| installed(p)) {
        return true;
    }
    let which = match programs {
        [one] => one.to_string(),
        many => format!("one of {}", many.join(", ")),
    };
    skip_unless_ci(&format!("{which} (Debian packages {packages})"));
    false
}

/// Say that the test is skipped because `what` is missing; in CI, fail.
pub fn skip_unless_ci(what: &str) {
    assert!(
        std::env::var_os("CI").is_none(),
        "CI must run this test, but {what} is missing"
    );
    eprintln!("SKIPPED: {what} is missing");
}

/// QEMU and qemu-img, what every test that boots a guest needs.
pub fn qemu_available() -> bool {
    tools_available(
        &["qemu-system-x86_64", "qemu-img"],
        "qemu-system-x86 qemu-utils",
    )
}
