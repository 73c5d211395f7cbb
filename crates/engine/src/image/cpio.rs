//! A writer for "newc" cpio archives, the format the Linux kernel unpacks as initramfs
//! (Documentation/driver-api/early-userspace/buffer-format.rst).
//!
//! Every entry is owned by root and dated at the epoch, so the same inputs give the same
//! bytes and no privileges are needed to describe device nodes or root-owned files.
use std::io::{self, Read, Write};

const MAGIC: &[u8; 6] = b"070701";
const TRAILER: &str = "TRAILER!!!";

const S_IFDIR: u32 = 0o040000;
const S_IFREG: u32 = 0o100000;
const S_IFLNK: u32 = 0o120000;
const S_IFCHR: u32 = 0o020000;

/// Streams entries into `W`. Entries are written in the order given: a parent directory
/// must come before what it contains, because the kernel does not create missing parents.
pub(crate) struct CpioWriter<W: Write> {
    out: W,
    written: u64,
    next_ino: u32,
}

impl<W: Write> CpioWriter<W> {
    pub fn new(out: W) -> Self {
        // Inode 0 is avoided: some readers treat it as "no inode".
        CpioWriter {
            out,
            written: 0,
            next_ino: 1,
        }
    }

    pub fn dir(&mut self, path: &str, perm: u32) -> io::Result<()> {
        self.entry(path, S_IFDIR | perm, 2, 0, (0, 0), &mut io::empty())
    }

    pub fn file(&mut self, path: &str, perm: u32, data: &[u8]) -> io::Result<()> {
        self.entry(
            path,
            S_IFREG | perm,
            1,
            data.len() as u64,
            (0, 0),
            &mut &data[..],
        )
    }

    /// A regular file whose `len` bytes come from `data` (e.g. an opened file).
    pub fn file_from_reader(
        &mut self,
        path: &str,
        perm: u32,
        len: u64,
        data: &mut dyn Read,
    ) -> io::Result<()> {
        self.entry(path, S_IFREG | perm, 1, len, (0, 0), data)
    }

    pub fn symlink(&mut self, path: &str, target: &str) -> io::Result<()> {
        let target = target.as_bytes();
        self.entry(
            path,
            S_IFLNK | 0o777,
            1,
            target.len() as u64,
            (0, 0),
            &mut &target[..],
        )
    }

    pub fn char_device(&mut self, path: &str, perm: u32, major: u32, minor: u32) -> io::Result<()> {
        self.entry(path, S_IFCHR | perm, 1, 0, (major, minor), &mut io::empty())
    }

    /// Write the trailer entry and return the underlying writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.header(TRAILER, 0, 1, 0, (0, 0), 0)?;
        self.out.flush()?;
        Ok(self.out)
    }

    fn entry(
        &mut self,
        path: &str,
        mode: u32,
        nlink: u32,
        len: u64,
        rdev: (u32, u32),
        data: &mut dyn Read,
    ) -> io::Result<()> {
        let name = path.trim_start_matches('/');
        if name.is_empty() || name.contains('\0') {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("bad archive path {path:?}"),
            ));
        }
        let ino = self.next_ino;
        self.next_ino += 1;
        self.header(name, mode, nlink, len, rdev, ino)?;
        let copied = io::copy(&mut data.take(len), &mut self.out)?;
        if copied != len {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("{path}: {copied} of {len} bytes"),
            ));
        }
        self.written += copied;
        self.pad()
    }

    fn header(
        &mut self,
        name: &str,
        mode: u32,
        nlink: u32,
        len: u64,
        rdev: (u32, u32),
        ino: u32,
    ) -> io::Result<()> {
        // The format stores sizes in 32 bits; an initramfs member of 4 GiB is a bug upstream.
        let filesize = u32::try_from(len).map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{name} is larger than 4 GiB"),
            )
        })?;
        let namesize = name.len() + 1; // with the terminating NUL
        let fields = [
            ino,
            mode,
            0,
            0,
            nlink,
            0,
            filesize,
            0,
            0,
            rdev.0,
            rdev.1,
            namesize as u32,
            0,
        ];
        let mut header = Vec::with_capacity(110 + namesize);
        header.extend_from_slice(MAGIC);
        for field in fields {
            header.extend_from_slice(format!("{field:08X}").as_bytes());
        }
        header.extend_from_slice(name.as_bytes());
        header.push(0);
        self.out.write_all(&header)?;
        self.written += header.len() as u64;
        self.pad()
    }

    /// Header+name and file data are each padded to a multiple of four bytes.
    fn pad(&mut self) -> io::Result<()> {
        let padding = (4 - (self.written % 4) as usize) % 4;
        self.out.write_all(&[0u8; 3][..padding])?;
        self.written += padding as u64;
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    /// A minimal newc reader, to check what the writer produced.
    #[derive(Debug, PartialEq)]
    struct Parsed {
        name: String,
        mode: u32,
        rdev: (u32, u32),
        data: Vec<u8>,
    }

    fn parse(mut bytes: &[u8]) -> Vec<Parsed> {
        let total = bytes.len();
        let mut entries = Vec::new();
        loop {
            let offset = total - bytes.len();
            assert_eq!(offset % 4, 0, "entry not aligned");
            assert_eq!(&bytes[..6], MAGIC);
            let field = |i: usize| {
                u32::from_str_radix(
                    std::str::from_utf8(&bytes[6 + 8 * i..14 + 8 * i]).unwrap(),
                    16,
                )
                .unwrap()
            };
            let (mode, filesize, rdev, namesize) = (
                field(1),
                field(6) as usize,
                (field(9), field(10)),
                field(11) as usize,
            );
            let name = std::str::from_utf8(&bytes[110..110 + namesize - 1])
                .unwrap()
                .to_string();
            assert_eq!(bytes[110 + namesize - 1], 0);
            let data_start = (110 + namesize).div_ceil(4) * 4;
            let data = bytes[data_start..data_start + filesize].to_vec();
            bytes = &bytes[(data_start + filesize).div_ceil(4) * 4..];
            if name == TRAILER {
                assert!(bytes.is_empty());
                return entries;
            }
            entries.push(Parsed {
                name,
                mode,
                rdev,
                data,
            });
        }
    }

    fn sample() -> Vec<u8> {
        let mut w = CpioWriter::new(Vec::new());
        w.dir("/bin", 0o755).unwrap();
        w.file("/bin/busybox", 0o755, b"\x7fELF-ish").unwrap();
        w.symlink("/bin/sh", "busybox").unwrap();
        w.char_device("dev/console", 0o600, 5, 1).unwrap();
        w.file("init", 0o755, b"#!/bin/sh\n").unwrap();
        w.finish().unwrap()
    }

    #[test]
    fn entries_round_trip() {
        let entries = parse(&sample());
        let summary: Vec<_> = entries
            .iter()
            .map(|e| (e.name.as_str(), e.mode, e.rdev, e.data.as_slice()))
            .collect();
        assert_eq!(
            summary,
            vec![
                ("bin", 0o040755, (0, 0), &b""[..]),
                ("bin/busybox", 0o100755, (0, 0), &b"\x7fELF-ish"[..]),
                ("bin/sh", 0o120777, (0, 0), &b"busybox"[..]),
                ("dev/console", 0o020600, (5, 1), &b""[..]),
                ("init", 0o100755, (0, 0), &b"#!/bin/sh\n"[..]),
            ]
        );
    }

    #[test]
    fn short_reader_is_an_error() {
        let mut w = CpioWriter::new(Vec::new());
        let err = w
            .file_from_reader("x", 0o644, 10, &mut &b"abc"[..])
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
    }

    #[test]
    fn empty_name_is_refused() {
        let mut w = CpioWriter::new(Vec::new());
        assert!(w.dir("/", 0o755).is_err());
    }

    /// GNU cpio, when installed, agrees with our reading of the format.
    #[test]
    fn gnu_cpio_lists_the_archive() {
        let Ok(mut child) = std::process::Command::new("cpio")
            .args(["-t", "-v", "--quiet"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
        else {
            eprintln!("skipping: GNU cpio (Debian package cpio) is not installed");
            return;
        };
        child.stdin.take().unwrap().write_all(&sample()).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success());
        let listing = String::from_utf8(out.stdout).unwrap();
        let expected = [
            ("drwxr-xr-x", " bin"),
            ("-rwxr-xr-x", " bin/busybox"),
            ("lrwxrwxrwx", " bin/sh -> busybox"),
            ("crw-------", " dev/console"),
            ("-rwxr-xr-x", " init"),
        ];
        let lines: Vec<_> = listing.lines().collect();
        assert_eq!(lines.len(), expected.len(), "{listing}");
        for (line, (perms, name)) in lines.iter().zip(expected) {
            assert!(
                line.starts_with(perms) && line.ends_with(name),
                "{line} is not {perms} ..{name}"
            );
        }
    }
}
