//! Network namespaces for end-to-end tests that need root: made fresh,
//! removed with everything still running inside them.
#![allow(dead_code)]

use std::process::{Command, Output};

pub struct Netns(pub String);

impl Netns {
    pub fn new(name: String) -> Self {
        let _ = Command::new("ip").args(["netns", "del", &name]).output();
        run(&["ip", "netns", "add", &name]);
        let ns = Self(name);
        ns.exec(&["ip", "link", "set", "lo", "up"]);
        ns
    }
    /// A namespace the test process reaches over a veth pair: `outer` in
    /// the root namespace at `{net}.1/24`, `inner` inside at `{net}.2/24`
    /// (where a controller listens), `net` being three octets.
    pub fn reachable(name: String, outer: &str, inner: &str, net: &str) -> Self {
        let ns = Self::new(name);
        let _ = Command::new("ip").args(["link", "del", outer]).output();
        run(&[
            "ip", "link", "add", outer, "type", "veth", "peer", "name", inner,
        ]);
        run(&["ip", "link", "set", inner, "netns", &ns.0]);
        run(&["ip", "addr", "add", &format!("{net}.1/24"), "dev", outer]);
        run(&["ip", "link", "set", outer, "up"]);
        ns.must(&["ip", "addr", "add", &format!("{net}.2/24"), "dev", inner]);
        ns.must(&["ip", "link", "set", inner, "up"]);
        ns
    }

    pub fn exec(&self, args: &[&str]) -> Output {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.0])
            .args(args)
            .output()
            .unwrap();
        out
    }
    pub fn must(&self, args: &[&str]) -> String {
        let out = self.exec(args);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // dnsmasq outlives the controller by design: stop what runs inside.
        if let Ok(out) = Command::new("ip").args(["netns", "pids", &self.0]).output() {
            for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                let _ = Command::new("kill").args(["-9", pid]).output();
            }
        }
        let _ = Command::new("ip").args(["netns", "del", &self.0]).output();
    }
}

pub fn run(args: &[&str]) -> String {
    let out = Command::new(args[0]).args(&args[1..]).output().unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn root_and_tools_available(test: &str) -> bool {
    let root = unsafe_geteuid() == 0;
    let tools = ["nft", "dnsmasq", "curl"].iter().all(|t| {
        Command::new("sh")
            .args(["-c", &format!("command -v {t}")])
            .output()
            .is_ok_and(|o| o.status.success())
    });
    if !(root && tools) {
        assert!(
            std::env::var_os("CI").is_none(),
            "{test}: needs root, nft, dnsmasq and curl in CI"
        );
        eprintln!("SKIPPED {test}: needs root and nft, dnsmasq, curl");
        return false;
    }
    super::qemu_available(test)
}

fn unsafe_geteuid() -> u32 {
    // /proc/self/status holds the effective uid without libc.
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(str::to_string))
        })
        .and_then(|u| u.parse().ok())
        .unwrap_or(u32::MAX)
}
