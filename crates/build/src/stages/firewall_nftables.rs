//! `firewall.nftables`: an input firewall with nftables, Debian's default firewall.
//!
//! # Why nftables, not firewalld
//!
//! osbuild blueprints describe the firewall in firewalld's terms (ports, services, zones),
//! but Debian's default is plain nftables (`nftables.service` loading
//! `/etc/nftables.conf`), without a daemon or D-Bus. kiln writes a static ruleset that
//! does what firewalld's default zone does with the blueprint's settings, checks every name
//! against the image at build time, and enables `nftables.service`.
//!
//! # Options
//!
//! ```json
//! {"ports": [{"from": 22, "to": 22, "protocol": "tcp"},
//!            {"service": "imap", "protocol": "tcp"}],
//!  "services": ["ssh", "dhcpv6-client", "http"],
//!  "sources": [{"address": "10.0.0.0/8", "action": "accept"}]}
//! ```
//!
//! `services` is the final list to allow (kiln-distro starts from firewalld's default
//! zone, `ssh` and `dhcpv6-client`, adds `services.enabled` and removes
//! `services.disabled`). Service names, also as ports, are looked up in the tree's
//! `/etc/services` (package netbase); an unknown name is an error. Every protocol a service
//! is listed with (tcp, udp, sctp, dccp) is opened. `sources` come from zones: `accept`
//! (zone `trusted`), `drop` (`drop`), `reject` (`block`).
//!
//! # The ruleset
//!
//! `table inet filter`: the input chain drops by default and accepts established and
//! related traffic and loopback, drops/rejects/accepts the zone sources (a dropped source
//! gets no ICMP answers either), accepts ICMP and ICMPv6 (IPv6 neighbour discovery needs
//! it), then the ports. `forward` and `output` accept
//! (Debian's defaults; forwarding is off in the kernel unless enabled). Ports are sorted
//! and merged, so the file depends only on the set of rules.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use serde::Deserialize;

use super::StageContext;
use super::treefs::{self, Meta, Tree};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Options {
    #[serde(default)]
    ports: Vec<Port>,
    #[serde(default)]
    services: Vec<String>,
    #[serde(default)]
    sources: Vec<Source>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Port {
    #[serde(default)]
    from: Option<u16>,
    #[serde(default)]
    to: Option<u16>,
    #[serde(default)]
    service: Option<String>,
    protocol: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Source {
    address: String,
    action: String,
}

const PROTOCOLS: &[&str] = &["tcp", "udp", "sctp", "dccp"];

/// The ruleset file.
pub const CONF: &str = "/etc/nftables.conf";

/// `/etc/services`: name or alias → (port, protocol) pairs.
fn parse_services(text: &str) -> BTreeMap<String, Vec<(u16, String)>> {
    let mut map: BTreeMap<String, Vec<(u16, String)>> = BTreeMap::new();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("");
        let mut w = line.split_whitespace();
        let (Some(name), Some(pp)) = (w.next(), w.next()) else {
            continue;
        };
        let Some((port, proto)) = pp.split_once('/') else {
            continue;
        };
        let Ok(port) = port.parse::<u16>() else {
            continue;
        };
        if !PROTOCOLS.contains(&proto) {
            continue;
        }
        for n in std::iter::once(name).chain(w) {
            let v = map.entry(n.to_owned()).or_default();
            if !v.iter().any(|(p, pr)| *p == port && pr == proto) {
                v.push((port, proto.to_owned()));
            }
        }
    }
    map
}

/// Sorted, merged ranges.
fn merge(mut ranges: Vec<(u16, u16)>) -> Vec<(u16, u16)> {
    ranges.sort();
    let mut out: Vec<(u16, u16)> = Vec::new();
    for (a, b) in ranges {
        match out.last_mut() {
            Some((_, end)) if u32::from(a) <= u32::from(*end) + 1 => *end = (*end).max(b),
            _ => out.push((a, b)),
        }
    }
    out
}

fn check_cidr(s: &str) -> Result<bool, String> {
    let bad = || {
        format!(
            "invalid firewall source {s:?}: use an address or a CIDR such as \"10.0.0.0/8\" or \"fd00::/8\""
        )
    };
    let (addr, len) = match s.split_once('/') {
        Some((a, l)) => (a, Some(l.parse::<u8>().map_err(|_| bad())?)),
        None => (s, None),
    };
    let ip: IpAddr = addr.parse().map_err(|_| bad())?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    if len.is_some_and(|l| l > max) {
        return Err(bad());
    }
    Ok(ip.is_ipv4())
}

/// The ruleset for `opts`, with names resolved through `services`.
fn ruleset(
    opts: &Options,
    services: &BTreeMap<String, Vec<(u16, String)>>,
) -> Result<String, String> {
    let mut by_proto: BTreeMap<&str, Vec<(u16, u16)>> = BTreeMap::new();
    let lookup = |name: &str| -> Result<&Vec<(u16, String)>, String> {
        services.get(name).ok_or_else(|| {
            format!(
                "unknown firewall service {name:?}: it is not in the image's /etc/services; open its port instead (ports = [\"PORT:tcp\"])"
            )
        })
    };
    for p in &opts.ports {
        let proto = PROTOCOLS
            .iter()
            .find(|x| **x == p.protocol)
            .ok_or_else(|| {
                format!(
                    "unknown firewall protocol {:?} (tcp, udp, sctp, dccp)",
                    p.protocol
                )
            })?;
        match (&p.service, p.from, p.to) {
            (Some(name), None, None) => {
                let ports: Vec<(u16, u16)> = lookup(name)?
                    .iter()
                    .filter(|(_, pr)| pr == proto)
                    .map(|(n, _)| (*n, *n))
                    .collect();
                if ports.is_empty() {
                    return Err(format!(
                        "firewall port \"{name}:{proto}\": /etc/services has no {proto} port for {name}"
                    ));
                }
                by_proto.entry(proto).or_default().extend(ports);
            }
            (None, Some(a), b) => {
                let b = b.unwrap_or(a);
                if a == 0 || b < a {
                    return Err(format!("invalid firewall port range {a}-{b}"));
                }
                by_proto.entry(proto).or_default().push((a, b));
            }
            _ => {
                return Err(
                    "a firewall port needs either `service` or `from` (and optionally `to`)".into(),
                );
            }
        }
    }
    for name in &opts.services {
        for (port, proto) in lookup(name)? {
            let proto = PROTOCOLS.iter().find(|x| *x == proto).unwrap_or(&"tcp");
            by_proto.entry(proto).or_default().push((*port, *port));
        }
    }
    if let Some(s) = opts
        .sources
        .iter()
        .find(|s| !matches!(s.action.as_str(), "accept" | "drop" | "reject"))
    {
        return Err(format!(
            "invalid firewall source action {:?} (accept, drop, reject)",
            s.action
        ));
    }
    let mut source_rules: Vec<String> = Vec::new();
    for action in ["drop", "reject", "accept"] {
        let mut v4 = BTreeSet::new();
        let mut v6 = BTreeSet::new();
        for s in opts.sources.iter().filter(|s| s.action == action) {
            if check_cidr(&s.address)? {
                v4.insert(s.address.clone());
            } else {
                v6.insert(s.address.clone());
            }
        }
        for (family, set) in [("ip", v4), ("ip6", v6)] {
            if !set.is_empty() {
                let list: Vec<String> = set.into_iter().collect();
                source_rules.push(format!(
                    "\t\t{family} saddr {{ {} }} {action}\n",
                    list.join(", ")
                ));
            }
        }
    }

    let mut text = String::from(
        "#!/usr/sbin/nft -f\n\
         # Written by kiln from the blueprint's firewall customization:\n\
         # incoming traffic is dropped unless allowed below.\n\n\
         flush ruleset\n\n\
         table inet filter {\n\
         \tchain input {\n\
         \t\ttype filter hook input priority filter; policy drop;\n\
         \t\tct state established,related accept\n\
         \t\tct state invalid drop\n\
         \t\tiif \"lo\" accept\n",
    );
    for r in source_rules {
        text.push_str(&r);
    }
    text.push_str("\t\tmeta l4proto { icmp, ipv6-icmp } accept\n");
    for (proto, ranges) in by_proto {
        let items: Vec<String> = merge(ranges)
            .into_iter()
            .map(|(a, b)| {
                if a == b {
                    a.to_string()
                } else {
                    format!("{a}-{b}")
                }
            })
            .collect();
        text.push_str(&format!(
            "\t\t{proto} dport {{ {} }} accept\n",
            items.join(", ")
        ));
    }
    text.push_str(
        "\t}\n\n\
         \tchain forward {\n\
         \t\ttype filter hook forward priority filter; policy accept;\n\
         \t}\n\n\
         \tchain output {\n\
         \t\ttype filter hook output priority filter; policy accept;\n\
         \t}\n\
         }\n",
    );
    Ok(text)
}

pub fn run(ctx: &mut StageContext<'_>) -> Result<(), String> {
    let opts: Options = treefs::options("firewall.nftables", ctx)?;
    let tree = Tree::open(ctx.tree)?;
    if !tree.is_executable("/usr/sbin/nft") || !treefs::unit_exists(&tree, "nftables.service")? {
        return Err("the firewall needs the nftables package in the image (nft or nftables.service is missing)".into());
    }
    let needs_names = !opts.services.is_empty() || opts.ports.iter().any(|p| p.service.is_some());
    let services = match tree.read_string("/etc/services")? {
        Some(t) => parse_services(&t),
        None if needs_names => {
            return Err("firewall service names are looked up in the image's /etc/services, which is missing (package netbase)".into());
        }
        None => BTreeMap::new(),
    };
    let text = ruleset(&opts, &services)?;
    tree.write(CONF, text.as_bytes(), Meta::root(0o755))?;
    (ctx.log)(&format!("wrote {CONF}"));
    let sb = ctx.chroot_sandbox();
    treefs::run(
        ctx,
        &sb,
        "enabling nftables.service",
        "systemctl",
        &["enable", "nftables.service"],
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SERVICES: &str = "ssh\t\t22/tcp\t\t\t# SSH\nhttp\t\t80/tcp\t\twww\nhttps\t\t443/tcp\nhttps\t\t443/udp\n\
        dhcpv6-client\t546/tcp\ndhcpv6-client\t546/udp\nimap2\t\t143/tcp\t\timap\n";

    #[test]
    fn ruleset_is_sorted_and_merged() {
        let opts = Options {
            ports: vec![
                Port {
                    from: Some(8000),
                    to: Some(8080),
                    protocol: "tcp".into(),
                    service: None,
                },
                Port {
                    from: Some(8081),
                    to: None,
                    protocol: "tcp".into(),
                    service: None,
                },
                Port {
                    from: None,
                    to: None,
                    protocol: "tcp".into(),
                    service: Some("imap".into()),
                },
                Port {
                    from: Some(53),
                    to: None,
                    protocol: "udp".into(),
                    service: None,
                },
            ],
            services: vec!["ssh".into(), "https".into(), "www".into()],
            sources: vec![
                Source {
                    address: "10.0.0.0/8".into(),
                    action: "accept".into(),
                },
                Source {
                    address: "fd00::/8".into(),
                    action: "drop".into(),
                },
            ],
        };
        let text = ruleset(&opts, &parse_services(SERVICES)).unwrap();
        assert!(
            text.contains("tcp dport { 22, 80, 143, 443, 8000-8081 } accept"),
            "{text}"
        );
        assert!(text.contains("udp dport { 53, 443 } accept"), "{text}");
        assert!(text.contains("ip saddr { 10.0.0.0/8 } accept"), "{text}");
        assert!(text.contains("ip6 saddr { fd00::/8 } drop"), "{text}");
        assert!(text.contains("policy drop;"));
    }

    #[test]
    fn unknown_names_and_bad_sources_are_errors() {
        let s = parse_services(SERVICES);
        let mut o = Options {
            ports: vec![],
            services: vec!["cockpit".into()],
            sources: vec![],
        };
        assert!(ruleset(&o, &s).unwrap_err().contains("cockpit"));
        o.services.clear();
        o.sources.push(Source {
            address: "10.0.0.0/40".into(),
            action: "accept".into(),
        });
        assert!(ruleset(&o, &s).is_err());
        o.sources[0].address = "10.0.0.0/8".into();
        o.sources[0].action = "allow".into();
        assert!(ruleset(&o, &s).is_err());
    }
}
