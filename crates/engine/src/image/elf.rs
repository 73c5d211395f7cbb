//! Just enough ELF64 reading for the image builder: the `.modinfo` section of a kernel
//! module (Debian's kernel packages ship no `modules.dep`; `depmod` runs at install time,
//! and `kmod` may not be installed here), whether a program is statically linked, and
//! what a dynamically linked one needs at run time (its `PT_INTERP` loader and its
//! `DT_NEEDED` libraries), so the guest can get them without running `ldd`.
//!
//! Every offset is bounds-checked: the input is a downloaded file.

const ELF_MAGIC: &[u8; 4] = b"\x7fELF";
const ELFCLASS64: u8 = 2;
const ELFDATA2LSB: u8 = 1;
const PT_LOAD: u32 = 1;
const PT_DYNAMIC: u32 = 2;
const PT_INTERP: u32 = 3;
const DT_NULL: usize = 0;
const DT_NEEDED: usize = 1;
const DT_STRTAB: usize = 5;
const DT_STRSZ: usize = 10;
/// Size of one `Elf64_Dyn` entry: tag and value, 8 bytes each.
const DYN_ENTRY: usize = 16;

fn u16_at(bytes: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(
        bytes.get(at..at.checked_add(2)?)?.try_into().ok()?,
    ))
}

fn u32_at(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(
        bytes.get(at..at.checked_add(4)?)?.try_into().ok()?,
    ))
}

fn u64_at(bytes: &[u8], at: usize) -> Option<usize> {
    usize::try_from(u64::from_le_bytes(
        bytes.get(at..at.checked_add(8)?)?.try_into().ok()?,
    ))
    .ok()
}

/// Only little-endian ELF64: the image builder targets x86-64 guests.
fn is_elf64_le(bytes: &[u8]) -> bool {
    bytes.get(..4) == Some(&ELF_MAGIC[..])
        && bytes.get(4) == Some(&ELFCLASS64)
        && bytes.get(5) == Some(&ELFDATA2LSB)
}

/// The contents of the section called `wanted`, if present.
fn section<'a>(bytes: &'a [u8], wanted: &str) -> Option<&'a [u8]> {
    let shoff = u64_at(bytes, 0x28)?;
    let shentsize = usize::from(u16_at(bytes, 0x3A)?);
    let shnum = usize::from(u16_at(bytes, 0x3C)?);
    let shstrndx = usize::from(u16_at(bytes, 0x3E)?);
    let header = |index: usize| shoff.checked_add(index.checked_mul(shentsize)?);
    let data = |hdr: usize| -> Option<&'a [u8]> {
        let offset = u64_at(bytes, hdr.checked_add(0x18)?)?;
        let size = u64_at(bytes, hdr.checked_add(0x20)?)?;
        bytes.get(offset..offset.checked_add(size)?)
    };
    let names = data(header(shstrndx)?)?;
    (0..shnum).find_map(|index| {
        let hdr = header(index)?;
        let name_start = usize::try_from(u32_at(bytes, hdr)?).ok()?;
        let name = names.get(name_start..)?.split(|b| *b == 0).next()?;
        if name == wanted.as_bytes() {
            data(hdr)
        } else {
            None
        }
    })
}

/// The `key=value` strings of a kernel module's `.modinfo` section, or `None` if `bytes`
/// is not an ELF64 little-endian object with such a section.
pub(crate) fn modinfo(bytes: &[u8]) -> Option<Vec<(String, String)>> {
    if !is_elf64_le(bytes) {
        return None;
    }
    let raw = section(bytes, ".modinfo")?;
    let pairs = raw
        .split(|b| *b == 0)
        .filter_map(|entry| {
            let text = std::str::from_utf8(entry).ok()?;
            let (key, value) = text.split_once('=')?;
            Some((key.to_string(), value.to_string()))
        })
        .collect();
    Some(pairs)
}

/// One program header (segment): type, file offset, virtual address, size in the file.
#[derive(Debug, Clone, Copy)]
struct Segment {
    kind: u32,
    offset: usize,
    vaddr: usize,
    file_size: usize,
}

/// The program headers, or `None` if any of them lies outside `bytes`.
fn segments(bytes: &[u8]) -> Option<Vec<Segment>> {
    let phoff = u64_at(bytes, 0x20)?;
    let phentsize = usize::from(u16_at(bytes, 0x36)?);
    let phnum = usize::from(u16_at(bytes, 0x38)?);
    (0..phnum)
        .map(|index| {
            let hdr = phoff.checked_add(index.checked_mul(phentsize)?)?;
            Some(Segment {
                kind: u32_at(bytes, hdr)?,
                offset: u64_at(bytes, hdr.checked_add(0x08)?)?,
                vaddr: u64_at(bytes, hdr.checked_add(0x10)?)?,
                file_size: u64_at(bytes, hdr.checked_add(0x20)?)?,
            })
        })
        .collect()
}

/// True for an ELF64 executable without a program interpreter, i.e. one that runs without
/// the shared libraries of the host (what an initramfs with nothing but busybox needs).
pub(crate) fn is_static_executable(bytes: &[u8]) -> bool {
    is_elf64_le(bytes) && segments(bytes).is_some_and(|all| all.iter().all(|s| s.kind != PT_INTERP))
}

/// What the dynamic loader needs to run a program or load a library.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct DynamicNeeds {
    /// The program interpreter (`PT_INTERP`), e.g. `/lib64/ld-linux-x86-64.so.2`.
    pub interpreter: Option<String>,
    /// The `DT_NEEDED` sonames, in the order the file lists them.
    pub needed: Vec<String>,
}

/// The loader and libraries `bytes` (an ELF64 little-endian executable or shared object)
/// needs; empty for a static one. `None` if it is not such a file or is malformed.
pub(crate) fn dynamic_needs(bytes: &[u8]) -> Option<DynamicNeeds> {
    if !is_elf64_le(bytes) {
        return None;
    }
    let segments = segments(bytes)?;
    let contents = |s: &Segment| bytes.get(s.offset..s.offset.checked_add(s.file_size)?);
    let mut needs = DynamicNeeds::default();
    if let Some(interp) = segments.iter().find(|s| s.kind == PT_INTERP) {
        let raw = contents(interp)?;
        let path = raw.split(|b| *b == 0).next()?;
        needs.interpreter = Some(std::str::from_utf8(path).ok()?.to_string());
    }
    let Some(dynamic) = segments.iter().find(|s| s.kind == PT_DYNAMIC) else {
        return Some(needs);
    };
    let (mut needed_offsets, mut strtab, mut strsz) = (Vec::new(), None, None);
    for entry in contents(dynamic)?.chunks_exact(DYN_ENTRY) {
        let tag = u64_at(entry, 0)?;
        let value = u64_at(entry, 8)?;
        match tag {
            DT_NULL => break,
            DT_NEEDED => needed_offsets.push(value),
            DT_STRTAB => strtab = Some(value),
            DT_STRSZ => strsz = Some(value),
            _ => {}
        }
    }
    if needed_offsets.is_empty() {
        return Some(needs);
    }
    // DT_STRTAB is a virtual address: the loadable segment holding it maps it to the file.
    let (strtab, strsz) = (strtab?, strsz?);
    let load = segments
        .iter()
        .find(|s| s.kind == PT_LOAD && s.vaddr <= strtab && strtab - s.vaddr < s.file_size)?;
    let start = load.offset.checked_add(strtab - load.vaddr)?;
    let strings = bytes.get(start..start.checked_add(strsz)?)?;
    for offset in needed_offsets {
        let name = strings.get(offset..)?.split(|b| *b == 0).next()?;
        needs
            .needed
            .push(std::str::from_utf8(name).ok()?.to_string());
    }
    Some(needs)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn garbage_is_not_a_module_nor_static() {
        assert_eq!(modinfo(b"not an elf file at all"), None);
        assert!(!is_static_executable(b"\x7fELF\x02\x01"));
        let mut truncated = b"\x7fELF\x02\x01\x01".to_vec();
        truncated.resize(64, 0xff);
        assert_eq!(modinfo(&truncated), None);
    }

    #[test]
    fn host_shell_is_dynamically_linked() {
        // Debian's /bin/sh (dash) is a dynamically linked PIE.
        let Ok(bytes) = std::fs::read("/bin/sh") else {
            return;
        };
        if is_elf64_le(&bytes) {
            assert!(!is_static_executable(&bytes));
        }
    }

    #[test]
    fn reads_loader_and_libraries_of_a_host_program() {
        // Debian's /bin/sh (dash) needs glibc through the x86-64 loader.
        let Ok(bytes) = std::fs::read("/bin/sh") else {
            return;
        };
        if !is_elf64_le(&bytes) {
            return;
        }
        let needs = dynamic_needs(&bytes).unwrap();
        assert_eq!(
            needs.interpreter.as_deref(),
            Some("/lib64/ld-linux-x86-64.so.2")
        );
        assert!(needs.needed.iter().any(|n| n == "libc.so.6"), "{needs:?}");
    }

    #[test]
    fn static_or_foreign_files_need_nothing_or_are_refused() {
        assert_eq!(dynamic_needs(b"#!/bin/sh\n"), None);
        assert_eq!(dynamic_needs(b"\x7fELF\x02\x01"), None);
        // A header with no program headers at all: a static object needing nothing.
        let bytes = tiny_elf_with_section(".modinfo", b"name=x\0");
        assert_eq!(dynamic_needs(&bytes), Some(DynamicNeeds::default()));
        assert!(is_static_executable(&bytes));
    }

    #[test]
    fn reads_modinfo_of_a_hand_made_object() {
        let modinfo_data = b"license=GPL\0depends=virtio,virtio_ring\0name=virtio_net\0";
        let bytes = tiny_elf_with_section(".modinfo", modinfo_data);
        let pairs = modinfo(&bytes).unwrap();
        assert_eq!(
            pairs[1],
            ("depends".to_string(), "virtio,virtio_ring".to_string())
        );
        assert_eq!(pairs[2], ("name".to_string(), "virtio_net".to_string()));
    }

    /// An ELF64 header, the section data, a string table and three section headers
    /// (null, the named section, .shstrtab).
    fn tiny_elf_with_section(name: &str, data: &[u8]) -> Vec<u8> {
        let mut strtab = b"\0".to_vec();
        let name_off = strtab.len() as u32;
        strtab.extend_from_slice(name.as_bytes());
        strtab.push(0);
        let shstr_off = strtab.len() as u32;
        strtab.extend_from_slice(b".shstrtab\0");
        let data_off = 64u64;
        let strtab_off = data_off + data.len() as u64;
        let shoff = strtab_off + strtab.len() as u64;
        let mut out = vec![0u8; 64];
        out[..6].copy_from_slice(b"\x7fELF\x02\x01");
        out[0x28..0x30].copy_from_slice(&shoff.to_le_bytes());
        out[0x3A..0x3C].copy_from_slice(&64u16.to_le_bytes());
        out[0x3C..0x3E].copy_from_slice(&3u16.to_le_bytes());
        out[0x3E..0x40].copy_from_slice(&2u16.to_le_bytes());
        out.extend_from_slice(data);
        out.extend_from_slice(&strtab);
        let section_header = |name: u32, offset: u64, size: u64| {
            let mut h = vec![0u8; 64];
            h[..4].copy_from_slice(&name.to_le_bytes());
            h[0x18..0x20].copy_from_slice(&offset.to_le_bytes());
            h[0x20..0x28].copy_from_slice(&size.to_le_bytes());
            h
        };
        out.extend(section_header(0, 0, 0));
        out.extend(section_header(name_off, data_off, data.len() as u64));
        out.extend(section_header(shstr_off, strtab_off, strtab.len() as u64));
        out
    }
}
