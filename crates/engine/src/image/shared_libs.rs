//! The run-time closure of a dynamically linked host program: its loader and every shared
//! library it needs, directly or through other libraries, found the way the loader would
//! find them on a multiarch Debian system, so the program runs in a guest that has
//! nothing else (no `ld.so.cache`, no `ldd`).
use std::collections::HashSet;
use std::path::{Path, PathBuf};

use super::elf;
use super::error::ImageError;
use super::initramfs::GuestFile;

/// Where Debian keeps x86-64 libraries, in the order the loader searches them.
pub(crate) const HOST_LIBRARY_DIRS: &[&str] =
    &["/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu"];

/// The loader and libraries `program` needs, as files at the same paths in the guest:
/// each library at `<dir>/<soname>` of the first of `library_dirs` that has it (the
/// loader's own default search path), the loader at its `PT_INTERP` path.
///
/// Fails with [`ImageError::MissingLibrary`] naming the first library none of the
/// directories has, and [`ImageError::NotAnExecutable`] for a file that is no ELF64
/// x86-64 program or library.
pub(crate) fn runtime_closure(
    program: &Path,
    library_dirs: &[&Path],
) -> Result<Vec<GuestFile>, ImageError> {
    let needs = read_needs(program)?;
    let mut files = Vec::new();
    let mut seen = HashSet::new();
    if let Some(loader) = &needs.interpreter {
        let host = PathBuf::from(loader);
        // The loader itself needs nothing: it is the one program that loads itself.
        read_needs(&host)?;
        files.push(GuestFile::new(loader, 0o755, host));
        // libc names the loader in DT_NEEDED too; the loader matches that by soname
        // against itself, already in memory, so it is never searched for as a file.
        if let Some(name) = Path::new(loader).file_name().and_then(|n| n.to_str()) {
            seen.insert(name.to_string());
        }
    }
    let mut pending = needs.needed;
    pending.reverse();
    while let Some(soname) = pending.pop() {
        if !seen.insert(soname.clone()) {
            continue;
        }
        let found =
            find_library(&soname, library_dirs).ok_or_else(|| ImageError::MissingLibrary {
                program: program.to_path_buf(),
                library: soname.clone(),
                searched: library_dirs
                    .iter()
                    .map(|d| d.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
            })?;
        let mut deeper = read_needs(&found)?.needed;
        deeper.reverse();
        pending.extend(deeper);
        let guest_path = found.to_string_lossy().into_owned();
        files.push(GuestFile::new(&guest_path, 0o644, found));
    }
    Ok(files)
}

/// `<dir>/<soname>` of the first directory holding a regular file (or a link to one) by
/// that name. A soname with a slash is no soname: refused rather than followed.
fn find_library(soname: &str, library_dirs: &[&Path]) -> Option<PathBuf> {
    if soname.is_empty() || soname.contains('/') {
        return None;
    }
    library_dirs
        .iter()
        .map(|dir| dir.join(soname))
        .find(|path| path.is_file())
}

fn read_needs(path: &Path) -> Result<elf::DynamicNeeds, ImageError> {
    let bytes = std::fs::read(path).map_err(ImageError::io("read", path))?;
    elf::dynamic_needs(&bytes).ok_or_else(|| ImageError::NotAnExecutable {
        path: path.to_path_buf(),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn host_dirs() -> Vec<&'static Path> {
        HOST_LIBRARY_DIRS.iter().map(Path::new).collect()
    }

    #[test]
    fn closure_of_a_host_program_holds_loader_and_libc_once() {
        let sh = Path::new("/bin/sh");
        if !std::fs::read(sh).is_ok_and(|b| elf::dynamic_needs(&b).is_some()) {
            return;
        }
        let files = runtime_closure(sh, &host_dirs()).unwrap();
        let paths: Vec<&str> = files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(paths[0], "lib64/ld-linux-x86-64.so.2", "{paths:?}");
        assert_eq!(
            paths.iter().filter(|p| p.ends_with("/libc.so.6")).count(),
            1,
            "{paths:?}"
        );
        assert!(
            !paths[1..]
                .iter()
                .any(|p| p.ends_with("ld-linux-x86-64.so.2")),
            "{paths:?}"
        );
    }

    #[test]
    fn a_library_no_directory_has_is_named_in_the_error() {
        let sh = Path::new("/bin/sh");
        if !std::fs::read(sh)
            .is_ok_and(|b| elf::dynamic_needs(&b).is_some_and(|n| !n.needed.is_empty()))
        {
            return;
        }
        let empty = tempfile::tempdir().unwrap();
        let err = runtime_closure(sh, &[empty.path()]).unwrap_err();
        match &err {
            ImageError::MissingLibrary { library, .. } => assert_eq!(library, "libc.so.6"),
            other => panic!("expected MissingLibrary, got {other:?}"),
        }
        assert!(err.to_string().contains("libc.so.6"), "{err}");
    }

    #[test]
    fn a_script_is_not_an_executable_we_can_ship() {
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("s");
        std::fs::write(&script, "#!/bin/sh\n").unwrap();
        assert!(matches!(
            runtime_closure(&script, &host_dirs()),
            Err(ImageError::NotAnExecutable { .. })
        ));
    }
}
