//! How nft operations scale with the number of forwards (root only; runs in a
//! fresh network namespace). `cargo bench -p ironidc-net --bench nft`
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/netns_util/mod.rs"]
mod netns_util;

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use ironidc_net::nft::{Forward, Masquerade, NatTable, Nft, Protocol};
use netns_util::{require_root, Netns};

const ROUNDS: usize = 200;

fn forwards(n: usize) -> Vec<Forward> {
    (0..n)
        .map(|i| Forward {
            protocol: if i % 2 == 0 {
                Protocol::Tcp
            } else {
                Protocol::Udp
            },
            external_port: 10_000 + (i / 2) as u16,
            internal_ip: Ipv4Addr::new(10, 80, (i / 250) as u8, (i % 250 + 2) as u8),
            internal_port: 22,
        })
        .collect()
}

fn table(n: usize) -> NatTable {
    NatTable {
        masquerade: vec![Masquerade {
            bridge: "br0".into(),
            subnet: "10.80.0.0/16".parse().unwrap(),
        }],
        forwards: forwards(n),
    }
}

struct Stats {
    median: Duration,
    p99: Duration,
}

fn stats(mut samples: Vec<Duration>) -> Stats {
    samples.sort();
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
    Stats {
        median: at(0.5),
        p99: at(0.99),
    }
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

/// Median/p99 of adding one forward, and of removing it again, with `existing` forwards in place.
async fn one_forward(nft: &Nft, existing: usize) -> (Stats, Stats) {
    nft.replace(&table(existing)).await.unwrap();
    let extra = Forward {
        protocol: Protocol::Tcp,
        external_port: 60_000,
        internal_ip: Ipv4Addr::new(10, 80, 255, 9),
        internal_port: 80,
    };
    let (mut adds, mut removes) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        let t = Instant::now();
        nft.add_forwards(std::slice::from_ref(&extra))
            .await
            .unwrap();
        adds.push(t.elapsed());
        let t = Instant::now();
        nft.remove_forwards(std::slice::from_ref(&extra))
            .await
            .unwrap();
        removes.push(t.elapsed());
    }
    (stats(adds), stats(removes))
}

fn main() {
    if !require_root("bench nft") {
        return;
    }
    // `cargo bench` passes --bench; nothing to parse.
    let ns = Netns::new();
    ns.run(|| async {
        let nft = Nft::with_table("ironidc_bench").unwrap();

        let big = table(10_000);
        let script = nft.render(&big).unwrap();
        let t = Instant::now();
        nft.replace(&big).await.unwrap();
        let replace_10k = t.elapsed();
        let t = Instant::now();
        let read = nft.read().await.unwrap().unwrap();
        let read_10k = t.elapsed();
        assert_eq!(read.forwards.len(), 10_000);
        let t = Instant::now();
        let report = nft.reconcile(&big).await.unwrap();
        let reconcile_10k = t.elapsed();
        assert!(!report.rebuilt && report.missing_forwards == 0 && report.foreign_forwards == 0);

        let version = std::process::Command::new("nft")
            .arg("--version")
            .output()
            .unwrap();
        println!(
            "{} in a fresh network namespace; each figure includes spawning nft",
            String::from_utf8_lossy(&version.stdout).trim()
        );
        println!();
        println!(
            "whole table, 10,000 forwards (script {} KiB):",
            script.len() / 1024
        );
        println!("  replace (one transaction)  {:>10}", ms(replace_10k));
        println!("  read                       {:>10}", ms(read_10k));
        println!("  reconcile (no change)      {:>10}", ms(reconcile_10k));
        println!();
        println!("one forward, {ROUNDS} rounds each:");
        println!("  existing   add median   add p99   remove median   remove p99");
        for existing in [100, 10_000] {
            let (add, remove) = one_forward(&nft, existing).await;
            println!(
                "  {existing:>8}   {:>10}   {:>7}   {:>13}   {:>10}",
                ms(add.median),
                ms(add.p99),
                ms(remove.median),
                ms(remove.p99)
            );
        }
        nft.delete().await.unwrap();
    });
}
