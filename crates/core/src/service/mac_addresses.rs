//! MAC addresses for the NICs a caller gave none.
//!
//! A MAC is drawn at random in QEMU's locally administered 52:54:00 range
//! and taken only when no NIC of any host has it: `vm_nics.mac` is unique
//! in the one database every host and controller shares, so the store is
//! the allocator. 24 random bits alone collide by the birthday bound at a
//! few thousand VMs; checking each draw (and, for the rare race between two
//! creates, redrawing on the store's conflict) never lets a MAC the caller
//! did not choose fail a request. A MAC the caller chose is never replaced.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::Arc;

use rand::Rng;

use super::Services;
use crate::error::CoreError;
use crate::model::NicConfig;

/// How many candidates a NIC may draw before the request is refused.
/// With N NICs in the 2^24 range one draw is taken with probability
/// N / 2^24, so 16 in a row only when the range is all but full.
pub const MAC_ATTEMPTS: usize = 16;

/// Where candidate MACs come from: their low three octets. Random by
/// default; tests inject a sequence to force collisions.
#[derive(Clone)]
pub struct MacSource(Arc<dyn Fn() -> [u8; 3] + Send + Sync>);

impl MacSource {
    /// Uniformly random octets.
    pub fn random() -> Self {
        Self(Arc::new(|| rand::thread_rng().gen()))
    }

    /// Octets from `f`, e.g. a fixed sequence in a test.
    pub fn from_fn(f: impl Fn() -> [u8; 3] + Send + Sync + 'static) -> Self {
        Self(Arc::new(f))
    }

    /// The next candidate, lower-case as stored.
    fn candidate(&self) -> String {
        let [a, b, c] = (self.0)();
        mac_of([a, b, c])
    }
}

/// `52:54:00:aa:bb:cc`.
pub fn mac_of([a, b, c]: [u8; 3]) -> String {
    format!("52:54:00:{a:02x}:{b:02x}:{c:02x}")
}

impl Default for MacSource {
    fn default() -> Self {
        Self::random()
    }
}

impl fmt::Debug for MacSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MacSource")
    }
}

impl Services {
    /// Give every NIC of `nics` without a MAC a free one. Returns the names
    /// of the NICs that got one: only those may be redrawn later.
    pub(crate) async fn fill_macs(
        &self,
        nics: &mut BTreeMap<String, NicConfig>,
    ) -> Result<BTreeSet<String>, CoreError> {
        let mut generated = BTreeSet::new();
        if nics.values().all(|n| !n.mac_addr.is_empty()) {
            return Ok(generated);
        }
        let mut taken: BTreeSet<String> = nics
            .values()
            .filter(|n| !n.mac_addr.is_empty())
            .map(|n| n.mac_addr.to_ascii_lowercase())
            .collect();
        for (name, nic) in nics.iter_mut() {
            if nic.mac_addr.is_empty() {
                let mac = self.free_mac(&taken).await?;
                taken.insert(mac.clone());
                nic.mac_addr = mac;
                generated.insert(name.clone());
            }
        }
        Ok(generated)
    }

    /// Draw the generated MAC of NIC `name` again after the store refused
    /// it (another create took it since it was drawn).
    pub(crate) async fn redraw_mac(
        &self,
        nics: &mut BTreeMap<String, NicConfig>,
        name: &str,
    ) -> Result<(), CoreError> {
        let taken: BTreeSet<String> = nics.values().map(|n| n.mac_addr.clone()).collect();
        let mac = self.free_mac(&taken).await?;
        if let Some(nic) = nics.get_mut(name) {
            nic.mac_addr = mac;
        }
        Ok(())
    }

    /// A MAC neither in `taken` (the request's own NICs) nor on any NIC
    /// in the store.
    async fn free_mac(&self, taken: &BTreeSet<String>) -> Result<String, CoreError> {
        for _ in 0..MAC_ATTEMPTS {
            let mac = self.inner.opts.mac_source.candidate();
            if !taken.contains(&mac) && !self.store().mac_in_use(&mac).await? {
                return Ok(mac);
            }
        }
        Err(CoreError::Conflict(format!(
            "no free MAC address in 52:54:00:xx:xx:xx after {MAC_ATTEMPTS} tries"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn candidates_are_lower_case_in_the_qemu_range() {
        let source = MacSource::from_fn(|| [0xAB, 0x01, 0xff]);
        assert_eq!(source.candidate(), "52:54:00:ab:01:ff");
        let random = MacSource::random().candidate();
        assert!(crate::validate::mac_address("m", &random).is_ok());
        assert!(random.starts_with("52:54:00:"));
    }
}
