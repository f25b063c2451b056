//! What happens to a blocked query, per category, and the sinkhole addresses it points to.

use crate::Category;
use serde::{Deserialize, Serialize};
use std::net::{Ipv4Addr, Ipv6Addr};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Answer NXDOMAIN (with a synthetic SOA so clients cache the block briefly).
    Nxdomain,
    /// A/AAAA answered with the sinkhole addresses, other types NODATA.
    Sinkhole,
    /// Answer REFUSED.
    Refused,
    /// Monitor only: answer normally, record the verdict.
    Log,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Nxdomain => "nxdomain",
            Action::Sinkhole => "sinkhole",
            Action::Refused => "refused",
            Action::Log => "log",
        }
    }
}

/// `[actions]`: the action for each block category, and the global monitor switch.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ActionConfig {
    /// Monitor mode: every block becomes `log` (answer normally, record the verdict).
    pub monitor: bool,
    pub list: Action,
    pub dga: Action,
    pub flux: Action,
    pub ioc: Action,
    pub parking: Action,
    /// IOC hits on shared infrastructure, when `[intel.actions] ioc_shared` blocks them.
    pub shared: Action,
}

impl Default for ActionConfig {
    fn default() -> Self {
        ActionConfig {
            monitor: false,
            list: Action::Nxdomain,
            dga: Action::Nxdomain,
            // Answer-side blocks point at the sinkhole: the machine that then connects there is infected.
            flux: Action::Sinkhole,
            ioc: Action::Sinkhole,
            parking: Action::Log,
            // Not the sinkhole: the clients reaching a shared site are mostly its ordinary
            // users, and each connection to the sinkhole counts against a client.
            shared: Action::Nxdomain,
        }
    }
}

impl ActionConfig {
    /// The action actually taken for a category, monitor mode applied.
    pub fn for_category(&self, category: Category) -> Action {
        if self.monitor {
            return Action::Log;
        }
        match category {
            Category::List => self.list,
            Category::Dga => self.dga,
            Category::Flux => self.flux,
            Category::Ioc => self.ioc,
            Category::Parking => self.parking,
            Category::Shared => self.shared,
        }
    }
}

/// `[sinkhole]`: where `sinkhole` answers point.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct SinkholeConfig {
    /// Addresses returned for A queries of sinkholed names.
    pub ipv4: Vec<Ipv4Addr>,
    /// Addresses returned for AAAA queries of sinkholed names.
    pub ipv6: Vec<Ipv6Addr>,
    /// TTL of sinkhole answers and of the SOA on blocked NXDOMAIN/NODATA answers (seconds).
    pub ttl: u32,
}

impl Default for SinkholeConfig {
    fn default() -> Self {
        // Unroutable until an operator runs the sinkhole server and points these at it.
        SinkholeConfig {
            ipv4: vec![Ipv4Addr::UNSPECIFIED],
            ipv6: vec![Ipv6Addr::UNSPECIFIED],
            ttl: 60,
        }
    }
}

impl SinkholeConfig {
    /// Checks the values; errors name the key.
    pub fn validate(&self) -> Result<(), String> {
        if self.ipv4.is_empty() && self.ipv6.is_empty() {
            return Err("sinkhole: set at least one of sinkhole.ipv4 / sinkhole.ipv6".into());
        }
        if self.ttl > 86_400 {
            return Err(format!(
                "sinkhole.ttl: {} is longer than one day; blocks should expire quickly",
                self.ttl
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn monitor_turns_every_block_into_log() {
        let mut cfg = ActionConfig::default();
        assert_eq!(cfg.for_category(Category::Dga), Action::Nxdomain);
        assert_eq!(cfg.for_category(Category::Ioc), Action::Sinkhole);
        cfg.monitor = true;
        for c in Category::ALL {
            assert_eq!(cfg.for_category(c), Action::Log);
        }
    }

    #[test]
    fn sinkhole_validation_names_the_key() {
        let cfg = SinkholeConfig {
            ipv4: vec![],
            ipv6: vec![],
            ttl: 60,
        };
        assert!(cfg.validate().unwrap_err().contains("sinkhole.ipv4"));
        let cfg = SinkholeConfig {
            ttl: 1_000_000,
            ..Default::default()
        };
        assert!(cfg.validate().unwrap_err().contains("sinkhole.ttl"));
    }
}
