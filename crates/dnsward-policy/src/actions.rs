//! What happens to a blocked query, per category, and the sinkhole addresses it points to.

use crate::Category;
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

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
    pub const ALL: [Action; 4] = [
        Action::Nxdomain,
        Action::Sinkhole,
        Action::Refused,
        Action::Log,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Action::Nxdomain => "nxdomain",
            Action::Sinkhole => "sinkhole",
            Action::Refused => "refused",
            Action::Log => "log",
        }
    }
}

/// `[actions]`: the action for each block category, the monitor switch and the client groups
/// that override it.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ActionConfig {
    /// Monitor mode: every block becomes `log` (answer normally, record the verdict), for every
    /// client not in a [`ClientGroup`].
    pub monitor: bool,
    pub list: Action,
    pub dga: Action,
    pub flux: Action,
    pub ioc: Action,
    pub parking: Action,
    /// IOC hits on shared infrastructure, when `[intel.actions] ioc_shared` blocks them.
    pub shared: Action,
    /// What an NXDOMAIN or REFUSED block tells the client in an Extended DNS Error (RFC 8914,
    /// info code 15 "Blocked"; clients that sent EDNS; `dig` prints it). Sinkhole answers never
    /// carry one: they are meant to look like a real answer to the malware that connects.
    pub ede: EdeText,
    /// `[[actions.groups]]`: clients whose blocks are enforced or only logged whatever
    /// `monitor` says (a pilot group enforced while the rest of the network is monitored, a lab
    /// that must reach malware domains). A client takes the group with the longest matching
    /// prefix.
    pub groups: Vec<ClientGroup>,
}

/// `[actions] ede`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EdeText {
    /// No Extended DNS Error.
    Off,
    /// The code and the category: `blocked by policy: dga`. Nothing about lists or models.
    #[default]
    Category,
    /// The code and the whole reason (stage, list file:line or model, score, family): for
    /// networks whose users may see how the filter works.
    Reason,
}

/// One `[[actions.groups]]` entry.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ClientGroup {
    /// Shown in every block of its clients (`reason.client_group`), so that an operator sees
    /// why a block was only logged, or enforced during a monitored roll-out.
    pub name: Arc<str>,
    /// Client addresses and networks (`10.1.2.0/24`, `192.0.2.7`, `fd00::/64`).
    #[serde(deserialize_with = "nets")]
    pub clients: Vec<IpNet>,
    /// True: this group's blocks are logged, not enforced. False: enforced, also in monitor mode.
    pub monitor: bool,
}

/// A bare address is a host network (/32, /128): a group is often a handful of hosts. (The
/// other client lists, `allow_clients` and the `exempt` lists, take CIDR notation only.)
fn nets<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<IpNet>, D::Error> {
    let raw = Vec::<String>::deserialize(d)?;
    raw.iter()
        .map(|s| {
            s.parse::<IpNet>()
                .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| {
                    serde::de::Error::custom(format!("{s:?} is not an IP address or network"))
                })
        })
        .collect()
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
            ede: EdeText::Category,
            groups: Vec::new(),
        }
    }
}

impl ActionConfig {
    /// The configured action for a category. Monitor mode is not applied here: it depends on
    /// the client ([`ActionConfig::monitoring`], [`crate::Policy::for_client`]), so verdicts are
    /// judged and cached with the enforcing action.
    pub fn for_category(&self, category: Category) -> Action {
        match category {
            Category::List => self.list,
            Category::Dga => self.dga,
            Category::Flux => self.flux,
            Category::Ioc => self.ioc,
            Category::Parking => self.parking,
            Category::Shared => self.shared,
        }
    }

    /// Whether `client`'s blocks are only logged, and the group that decided it, if any. No
    /// client (`dnsward check`, the admin API without one) means no group: `monitor` decides.
    pub fn monitoring(&self, client: Option<IpAddr>) -> (bool, Option<&ClientGroup>) {
        let group = client.and_then(|ip| {
            self.groups
                .iter()
                .flat_map(|g| g.clients.iter().map(move |n| (n, g)))
                .filter(|(n, _)| n.contains(&ip))
                .max_by_key(|(n, _)| n.prefix_len())
                .map(|(_, g)| g)
        });
        (group.map_or(self.monitor, |g| g.monitor), group)
    }

    /// `--monitor`: block nothing, for any client (client groups that enforce included).
    pub fn monitor_everyone(&mut self) {
        self.monitor = true;
        for g in &mut self.groups {
            g.monitor = true;
        }
    }

    /// Checks the client groups; errors name the key.
    pub fn validate(&self) -> Result<(), String> {
        let mut seen: Vec<(IpNet, &str)> = Vec::new();
        for (i, g) in self.groups.iter().enumerate() {
            let key = format!("actions.groups[{i}]");
            let valid_name = !g.name.is_empty()
                && g.name.len() <= 64
                && g.name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
            if !valid_name {
                return Err(format!(
                    "{key}.name: {:?} must be 1-64 letters, digits, '-', '_' or '.'",
                    g.name
                ));
            }
            if let Some(j) = self.groups[..i].iter().position(|o| o.name == g.name) {
                return Err(format!(
                    "{key}.name: {:?} is also the name of actions.groups[{j}]",
                    g.name
                ));
            }
            if g.clients.is_empty() {
                return Err(format!(
                    "{key}.clients: list at least one address or network"
                ));
            }
            for net in &g.clients {
                let net = net.trunc();
                if let Some((_, other)) = seen.iter().find(|(n, _)| *n == net) {
                    return Err(format!(
                        "{key}.clients: {net} is also in group {other:?}; a client must have one group"
                    ));
                }
                seen.push((net, &g.name));
            }
        }
        Ok(())
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

    fn group(name: &str, clients: &[&str], monitor: bool) -> ClientGroup {
        ClientGroup {
            name: name.into(),
            clients: clients.iter().map(|c| c.parse().unwrap()).collect(),
            monitor,
        }
    }

    #[test]
    fn the_longest_matching_group_decides_monitoring_and_other_clients_follow_monitor() {
        let mut cfg = ActionConfig {
            monitor: true,
            groups: vec![
                group("lab", &["10.0.0.0/8"], true),
                group("pilot", &["10.1.2.0/24", "fd00::/64"], false),
            ],
            ..ActionConfig::default()
        };
        cfg.validate().unwrap();
        let at = |cfg: &ActionConfig, ip: &str| {
            let (monitor, g) = cfg.monitoring(Some(ip.parse().unwrap()));
            (monitor, g.map(|g| g.name.to_string()))
        };
        assert_eq!(at(&cfg, "10.1.2.9"), (false, Some("pilot".into())));
        assert_eq!(at(&cfg, "fd00::7"), (false, Some("pilot".into())));
        assert_eq!(at(&cfg, "10.1.3.9"), (true, Some("lab".into())));
        assert_eq!(at(&cfg, "192.0.2.1"), (true, None));
        assert!(cfg.monitoring(None).0);
        cfg.monitor = false;
        assert_eq!(at(&cfg, "192.0.2.1"), (false, None));
        assert_eq!(at(&cfg, "10.200.0.1"), (true, Some("lab".into())));
        // The category's action does not depend on monitoring.
        assert_eq!(cfg.for_category(Category::Ioc), Action::Sinkhole);
    }

    #[test]
    fn client_group_errors_name_the_key() {
        let err = |groups: Vec<ClientGroup>| {
            ActionConfig {
                groups,
                ..ActionConfig::default()
            }
            .validate()
            .unwrap_err()
        };
        let e = err(vec![
            group("a", &["10.0.0.0/8"], true),
            group("a", &["10.1.0.0/16"], true),
        ]);
        assert!(e.starts_with("actions.groups[1].name"), "{e}");
        let e = err(vec![group("lab net", &["10.0.0.0/8"], true)]);
        assert!(e.starts_with("actions.groups[0].name"), "{e}");
        let e = err(vec![group("a", &[], true)]);
        assert!(e.starts_with("actions.groups[0].clients"), "{e}");
        // The same network in two groups (written differently) would make the result depend on
        // the file's order.
        let e = err(vec![
            group("a", &["10.0.0.0/8"], true),
            group("b", &["10.9.9.9/8"], false),
        ]);
        assert!(
            e.starts_with("actions.groups[1].clients: 10.0.0.0/8"),
            "{e}"
        );
        let parsed: ActionConfig = serde_json::from_str(
            r#"{"groups":[{"name":"lab","clients":["192.0.2.7","10.0.0.0/8"],"monitor":true}]}"#,
        )
        .unwrap();
        assert_eq!(
            parsed.groups[0].clients[0],
            "192.0.2.7/32".parse::<IpNet>().unwrap()
        );
        let bad = serde_json::from_str::<ActionConfig>(
            r#"{"groups":[{"name":"lab","clients":["10.0.0.300"],"monitor":true}]}"#,
        )
        .unwrap_err();
        assert!(
            bad.to_string()
                .contains("\"10.0.0.300\" is not an IP address"),
            "{bad}"
        );
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
