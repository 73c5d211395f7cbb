//! The ports host processes listen on, from `/proc/net/{tcp,tcp6,udp,udp6}`
//! of the caller's network namespace: a forward onto one of them would take
//! a host service's outside traffic, so the service layer refuses it.

use std::collections::BTreeSet;
use std::path::Path;

use ironidc_core::network::ForwardProtocol;

/// TCP's LISTEN state in `/proc/net/tcp`.
const TCP_LISTEN: &str = "0A";

/// (protocol, port) of every listening TCP socket and every bound UDP
/// socket. A table that cannot be read (no IPv6) counts as empty.
pub fn listening_ports() -> BTreeSet<(ForwardProtocol, u16)> {
    listening_ports_in(Path::new("/proc/net"))
}

fn listening_ports_in(dir: &Path) -> BTreeSet<(ForwardProtocol, u16)> {
    let mut ports = BTreeSet::new();
    for (file, protocol) in [
        ("tcp", ForwardProtocol::Tcp),
        ("tcp6", ForwardProtocol::Tcp),
        ("udp", ForwardProtocol::Udp),
        ("udp6", ForwardProtocol::Udp),
    ] {
        let Ok(table) = std::fs::read_to_string(dir.join(file)) else {
            continue;
        };
        let wanted_state = (protocol == ForwardProtocol::Tcp).then_some(TCP_LISTEN);
        ports.extend(
            parse_table(&table, wanted_state)
                .into_iter()
                .map(|port| (protocol, port)),
        );
    }
    ports
}

/// Local ports of the rows of one table, keeping only `state` when given.
/// Row: `sl local_address rem_address st ...`, addresses as `HEXIP:HEXPORT`.
fn parse_table(table: &str, state: Option<&str>) -> Vec<u16> {
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let local = fields.nth(1)?;
            let row_state = fields.nth(1)?;
            if state.is_some_and(|s| s != row_state) {
                return None;
            }
            let (_, port) = local.rsplit_once(':')?;
            u16::from_str_radix(port, 16).ok().filter(|p| *p != 0)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn parses_listening_rows_only() {
        let tcp = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:53DC 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0000000000000000 100 0 0 10 0
   1: 0100007F:0758 0100007F:9C40 01 00000000:00000000 00:00000000 00000000     0        0 2 1 0000000000000000 20 4 30 10 -1
";
        assert_eq!(parse_table(tcp, Some(TCP_LISTEN)), vec![21468]);
        let udp = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops
  10: 00000000:0035 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 3 2 0000000000000000 0
";
        assert_eq!(parse_table(udp, None), vec![53]);
    }

    #[test]
    fn sees_a_real_listener() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        assert!(listening_ports().contains(&(ForwardProtocol::Tcp, port)));
    }
}
