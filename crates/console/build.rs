//! Rebuild when the console page or the installed noVNC changes: the files
//! are embedded at compile time, and `npm install` adding noVNC after a
//! build would otherwise leave a binary without it.

fn main() {
    // A directory is scanned recursively for changes.
    println!("cargo:rerun-if-changed=../../web/console");
}
