//! Which URLs and addresses the hub's download proxy may fetch from
//! (draft-ietf-mimi-protocol-06 §5.10.2 and §5.10.3).
//!
//! -06 §5.10.2: "The hub MUST verify that the host part of the
//! `downloadUrl` is associated with the asset server domain for one of its
//! peer providers. This prevents the hub from becoming an open proxy."
//! §5.10.3 asks the same of the OHTTP gateway. A proxy that fetches what it
//! is told is also a server-side request forgery tool against the hub's
//! own network, so checking the host name alone is not enough. The checks
//! come in three steps, one per moment of a fetch:
//!
//! 1. [`DownloadTargets::check`] on the `downloadUrl`, before anything is
//!    resolved: `https` only, no userinfo, no fragment, no IP literal (in
//!    any of the decimal, octal or hexadecimal spellings the URL standard
//!    turns into one), a host in the allowed set and its allowed port.
//! 2. [`check_address`] on every address the host name resolves to, before
//!    connecting: a peer's DNS could point an allowed name at `127.0.0.1`.
//! 3. [`DownloadTargets::check_redirect`] on every `Location` the asset
//!    server answers with: a redirect may not leave the origin.
//!
//! The allowed set is the union of the asset upload domains the hub's peer
//! providers declared (room-policy §Asset policies, `asset_upload_domains`).
//! Hosts match exactly after lowercasing and dropping one trailing dot;
//! there are no wildcards: "associated with the asset server domain" is
//! read as "is one of the declared asset hosts", not "is under a peer's
//! domain", which would let a peer's every subdomain be fetched.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use url::{Host, Url};

/// The port of an allowed host that names none.
pub const DEFAULT_PORT: u16 = 443;

/// Why an entry of the allowed asset hosts was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TargetConfigError {
    /// The entry is empty.
    #[error("an allowed asset host is empty")]
    Empty,
    /// The port after `:` is not a number in 1..=65535.
    #[error("allowed asset host {entry:?} has an invalid port (expected 1-65535)")]
    BadPort {
        /// The entry as given.
        entry: String,
    },
    /// The entry is an IP address: assets are named by DNS names only.
    #[error("allowed asset host {entry:?} is an IP address; list DNS names only")]
    IpLiteral {
        /// The entry as given.
        entry: String,
    },
    /// The entry is not an ASCII DNS name (letters, digits, hyphens and
    /// dots; internationalized names in their `xn--` form).
    #[error("allowed asset host {entry:?} is not a DNS name")]
    NotADnsName {
        /// The entry as given.
        entry: String,
    },
}

/// Why a URL, redirect or address is not a download target.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TargetRefusal {
    /// The URL does not parse.
    #[error("the download URL is not a valid URL: {0}")]
    Unparsable(#[from] url::ParseError),
    /// The scheme is not `https` (-06 §5.10: assets are fetched with TLS).
    #[error("the download URL must use https, not {scheme}")]
    NotHttps {
        /// The URL's scheme.
        scheme: String,
    },
    /// The URL carries a user name or password.
    #[error("the download URL must not carry a user name or password")]
    UserInfo,
    /// The URL has a `#fragment`, which is never sent to a server and has
    /// no place in a proxied asset URL.
    #[error("the download URL must not have a fragment")]
    Fragment,
    /// The host is an IP address rather than a DNS name.
    #[error("the download URL names the IP address {host}; only asset host names are fetched")]
    IpLiteral {
        /// The address as the URL standard normalized it.
        host: String,
    },
    /// The host is not one of the allowed asset hosts.
    #[error("{host} is not an asset host of a peer provider (-06 §5.10.2)")]
    HostNotAllowed {
        /// The normalized host.
        host: String,
    },
    /// The host is allowed, but not on this port.
    #[error("asset host {host} is not allowed on port {port}")]
    PortNotAllowed {
        /// The normalized host.
        host: String,
        /// The URL's port (443 when it names none).
        port: u16,
    },
    /// A redirect leads to another host.
    #[error("the asset server redirected from {from} to another host, {to}")]
    RedirectToOtherHost {
        /// The host redirected from.
        from: String,
        /// The host redirected to.
        to: String,
    },
    /// A redirect leads to another port of the same host.
    #[error("the asset server redirected from port {from} to another port, {to}")]
    RedirectToOtherPort {
        /// The port redirected from.
        from: u16,
        /// The port redirected to.
        to: u16,
    },
    /// The host resolved to a loopback, private, link-local or other
    /// non-public unicast address (allowed only with `allow_private`).
    #[error("the asset host resolved to {addr}, a {range} address")]
    NonPublicAddress {
        /// The resolved address.
        addr: IpAddr,
        /// Its range.
        range: AddressRange,
    },
    /// The host resolved to an address no connection can go to
    /// (unspecified, multicast, broadcast, reserved), even with
    /// `allow_private`.
    #[error("the asset host resolved to {addr}, a {range} address, which is never connected to")]
    UnusableAddress {
        /// The resolved address.
        addr: IpAddr,
        /// Its range.
        range: AddressRange,
    },
}

/// The asset hosts the hub's download proxy (and OHTTP gateway) fetches
/// from, each with the ports it may be reached on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DownloadTargets {
    allowed: BTreeMap<String, BTreeSet<u16>>,
}

impl DownloadTargets {
    /// Builds the allowed set from entries `host` or `host:port` (port
    /// [`DEFAULT_PORT`] when absent). Hosts are lowercased and lose one
    /// trailing dot; IP addresses and anything but ASCII DNS names are
    /// refused. A host may be listed with several ports.
    pub fn new<I, S>(hosts: I) -> Result<Self, TargetConfigError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut allowed: BTreeMap<String, BTreeSet<u16>> = BTreeMap::new();
        for entry in hosts {
            let (host, port) = parse_entry(entry.as_ref())?;
            allowed.entry(host).or_default().insert(port);
        }
        Ok(DownloadTargets { allowed })
    }

    /// No host is allowed: every URL is refused.
    pub fn is_empty(&self) -> bool {
        self.allowed.is_empty()
    }

    /// The allowed `(host, port)` pairs, sorted.
    pub fn hosts(&self) -> impl Iterator<Item = (&str, u16)> {
        self.allowed
            .iter()
            .flat_map(|(h, ports)| ports.iter().map(move |p| (h.as_str(), *p)))
    }

    /// Checks a `downloadUrl` (step 1) and returns it parsed and
    /// normalized (lowercase host without trailing dot, default port
    /// omitted): fetch that URL, not the string given.
    pub fn check(&self, url: &str) -> Result<Url, TargetRefusal> {
        let url = Url::parse(url)?;
        self.check_url(url)
    }

    fn check_url(&self, mut url: Url) -> Result<Url, TargetRefusal> {
        if url.scheme() != "https" {
            return Err(TargetRefusal::NotHttps {
                scheme: url.scheme().to_owned(),
            });
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(TargetRefusal::UserInfo);
        }
        if url.fragment().is_some() {
            return Err(TargetRefusal::Fragment);
        }
        let host = match url.host() {
            Some(Host::Domain(d)) => normalize_host(d),
            Some(Host::Ipv4(a)) => {
                return Err(TargetRefusal::IpLiteral {
                    host: a.to_string(),
                });
            }
            Some(Host::Ipv6(a)) => {
                return Err(TargetRefusal::IpLiteral {
                    host: a.to_string(),
                });
            }
            // The URL standard gives every https URL a host.
            None => {
                return Err(TargetRefusal::HostNotAllowed {
                    host: String::new(),
                });
            }
        };
        let Some(ports) = self.allowed.get(&host) else {
            return Err(TargetRefusal::HostNotAllowed { host });
        };
        let port = url.port_or_known_default().unwrap_or(DEFAULT_PORT);
        if !ports.contains(&port) {
            return Err(TargetRefusal::PortNotAllowed { host, port });
        }
        if url.host_str() != Some(host.as_str()) {
            url.set_host(Some(&host))
                .map_err(TargetRefusal::Unparsable)?;
        }
        Ok(url)
    }

    /// Checks a redirect (step 3): `location` is resolved against `from`
    /// (a `Location` may be relative, RFC 9110 §10.2.2), must pass
    /// [`check`](Self::check), and must stay on the same host and port.
    /// Redirects between two allowed hosts are refused too: the proxy
    /// fetches the URL the message names, not wherever it leads.
    pub fn check_redirect(&self, from: &Url, location: &str) -> Result<Url, TargetRefusal> {
        let to = self.check_url(from.join(location)?)?;
        let from_host = from.host_str().map(normalize_host).unwrap_or_default();
        let to_host = to.host_str().map(normalize_host).unwrap_or_default();
        if from_host != to_host {
            return Err(TargetRefusal::RedirectToOtherHost {
                from: from_host,
                to: to_host,
            });
        }
        let from_port = from.port_or_known_default().unwrap_or(DEFAULT_PORT);
        let to_port = to.port_or_known_default().unwrap_or(DEFAULT_PORT);
        if from_port != to_port {
            return Err(TargetRefusal::RedirectToOtherPort {
                from: from_port,
                to: to_port,
            });
        }
        Ok(to)
    }
}

/// Lowercase, without one trailing dot.
fn normalize_host(host: &str) -> String {
    host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase()
}

fn parse_entry(entry: &str) -> Result<(String, u16), TargetConfigError> {
    let entry = entry.trim();
    if entry.is_empty() {
        return Err(TargetConfigError::Empty);
    }
    if entry.contains(['/', '@', '?', '#']) {
        return Err(TargetConfigError::NotADnsName {
            entry: entry.to_owned(),
        });
    }
    if entry.starts_with('[') || entry.parse::<IpAddr>().is_ok() {
        return Err(TargetConfigError::IpLiteral {
            entry: entry.to_owned(),
        });
    }
    let (host, port) = match entry.rsplit_once(':') {
        Some((host, port)) => {
            let port = port
                .parse::<u16>()
                .ok()
                .filter(|p| *p != 0 && port.bytes().all(|b| b.is_ascii_digit()))
                .ok_or_else(|| TargetConfigError::BadPort {
                    entry: entry.to_owned(),
                })?;
            (host, port)
        }
        None => (entry, DEFAULT_PORT),
    };
    let host = normalize_host(host);
    let not_dns = || TargetConfigError::NotADnsName {
        entry: entry.to_owned(),
    };
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    };
    if host.is_empty() || host.len() > 253 || !host.split('.').all(label_ok) {
        return Err(not_dns());
    }
    // What the URL standard would read as an IPv4 address ("127.1",
    // "0x7f.0.0.1", "2130706433") is an IP literal, not a name.
    match Host::parse(&host) {
        Ok(Host::Domain(_)) => Ok((host, port)),
        Ok(Host::Ipv4(_) | Host::Ipv6(_)) => Err(TargetConfigError::IpLiteral {
            entry: entry.to_owned(),
        }),
        Err(_) => Err(not_dns()),
    }
}

/// A special-purpose address range (RFC 6890 and its IPv6 counterparts)
/// that a download proxy must not connect to on the public Internet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AddressRange {
    /// `0.0.0.0`, `::` (RFC 1122, RFC 4291).
    Unspecified,
    /// `0.0.0.0/8`, "this network" (RFC 791).
    ThisNetwork,
    /// `127.0.0.0/8`, `::1` (RFC 1122, RFC 4291).
    Loopback,
    /// `10/8`, `172.16/12`, `192.168/16` (RFC 1918) and the local-use
    /// NAT64 prefix `64:ff9b:1::/48` (RFC 8215).
    Private,
    /// `169.254/16`, `fe80::/10` (RFC 3927, RFC 4291).
    LinkLocal,
    /// `100.64/10`, carrier-grade NAT (RFC 6598).
    SharedAddressSpace,
    /// `192.0.2/24`, `198.51.100/24`, `203.0.113/24` (RFC 5737),
    /// `2001:db8::/32` (RFC 3849), `3fff::/20` (RFC 9637).
    Documentation,
    /// `198.18/15` (RFC 2544), `2001:2::/48` (RFC 5180).
    Benchmarking,
    /// `fc00::/7`, unique local (RFC 4193).
    UniqueLocal,
    /// `fec0::/10`, deprecated site-local (RFC 3879).
    SiteLocal,
    /// `224/4`, `ff00::/8`.
    Multicast,
    /// `255.255.255.255` (RFC 919).
    Broadcast,
    /// Everything else not routable as unicast on the Internet:
    /// `240/4` (RFC 1112), `192.0.0/24` (RFC 6890), `192.88.99/24`
    /// (RFC 7526), `100::/64` (RFC 6666), Teredo `2001::/32` (RFC 4380),
    /// the rest of `::/8`, and IPv6 outside `2000::/3`.
    Reserved,
}

impl AddressRange {
    /// Whether a lab deployment may connect to it with `allow_private`:
    /// unicast ranges a test network uses. Unspecified, multicast,
    /// broadcast and reserved addresses are never connected to.
    pub const fn lab_usable(self) -> bool {
        !matches!(
            self,
            AddressRange::Unspecified
                | AddressRange::ThisNetwork
                | AddressRange::Multicast
                | AddressRange::Broadcast
                | AddressRange::Reserved
        )
    }
}

impl fmt::Display for AddressRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AddressRange::Unspecified => "unspecified",
            AddressRange::ThisNetwork => "\"this network\" (0.0.0.0/8)",
            AddressRange::Loopback => "loopback",
            AddressRange::Private => "private-use",
            AddressRange::LinkLocal => "link-local",
            AddressRange::SharedAddressSpace => "shared (carrier-grade NAT, 100.64.0.0/10)",
            AddressRange::Documentation => "documentation",
            AddressRange::Benchmarking => "benchmarking",
            AddressRange::UniqueLocal => "unique local (fc00::/7)",
            AddressRange::SiteLocal => "site-local (fec0::/10)",
            AddressRange::Multicast => "multicast",
            AddressRange::Broadcast => "broadcast",
            AddressRange::Reserved => "reserved",
        })
    }
}

/// The special-purpose range of `addr`, `None` for a public unicast
/// address. IPv6 addresses that embed an IPv4 address (IPv4-mapped
/// `::ffff:0:0/96`, NAT64 `64:ff9b::/96`, 6to4 `2002::/16`) are judged by
/// the IPv4 address they lead to.
pub fn address_range(addr: IpAddr) -> Option<AddressRange> {
    match addr {
        IpAddr::V4(a) => v4_range(a),
        IpAddr::V6(a) => v6_range(a),
    }
}

/// Checks an address the asset host resolved to, before connecting
/// (step 2). Refuses every special-purpose range of [`address_range`].
///
/// `allow_private` is a deployment flag for lab and test networks, where
/// asset servers live on loopback or private addresses: it admits the
/// [`lab_usable`](AddressRange::lab_usable) ranges. It must stay off in
/// production, where it would let a peer's DNS aim the proxy at the hub's
/// own network.
pub fn check_address(addr: IpAddr, allow_private: bool) -> Result<(), TargetRefusal> {
    match address_range(addr) {
        None => Ok(()),
        Some(range) if !range.lab_usable() => Err(TargetRefusal::UnusableAddress { addr, range }),
        Some(_) if allow_private => Ok(()),
        Some(range) => Err(TargetRefusal::NonPublicAddress { addr, range }),
    }
}

fn in_v4(a: u32, prefix: [u8; 4], len: u32) -> bool {
    let mask = u32::MAX.checked_shl(32 - len).unwrap_or(0);
    a & mask == u32::from_be_bytes(prefix) & mask
}

fn v4_range(addr: Ipv4Addr) -> Option<AddressRange> {
    use AddressRange as R;
    let a = u32::from(addr);
    let table: [([u8; 4], u32, AddressRange); 17] = [
        ([0, 0, 0, 0], 32, R::Unspecified),
        ([255, 255, 255, 255], 32, R::Broadcast),
        ([0, 0, 0, 0], 8, R::ThisNetwork),
        ([127, 0, 0, 0], 8, R::Loopback),
        ([10, 0, 0, 0], 8, R::Private),
        ([172, 16, 0, 0], 12, R::Private),
        ([192, 168, 0, 0], 16, R::Private),
        ([169, 254, 0, 0], 16, R::LinkLocal),
        ([100, 64, 0, 0], 10, R::SharedAddressSpace),
        ([192, 0, 2, 0], 24, R::Documentation),
        ([198, 51, 100, 0], 24, R::Documentation),
        ([203, 0, 113, 0], 24, R::Documentation),
        ([198, 18, 0, 0], 15, R::Benchmarking),
        ([192, 0, 0, 0], 24, R::Reserved),
        ([192, 88, 99, 0], 24, R::Reserved),
        ([224, 0, 0, 0], 4, R::Multicast),
        ([240, 0, 0, 0], 4, R::Reserved),
    ];
    table
        .iter()
        .find(|(prefix, len, _)| in_v4(a, *prefix, *len))
        .map(|(_, _, range)| *range)
}

fn in_v6(a: u128, prefix: u128, len: u32) -> bool {
    let mask = u128::MAX.checked_shl(128 - len).unwrap_or(0);
    a & mask == prefix & mask
}

fn v6_range(addr: Ipv6Addr) -> Option<AddressRange> {
    use AddressRange as R;
    let a = u128::from(addr);
    let embedded = |shift: u32| {
        // The 32 bits of an IPv4 address starting `shift` bits from the right.
        let v4 = u32::try_from((a >> shift) & u128::from(u32::MAX)).unwrap_or(0);
        v4_range(Ipv4Addr::from(v4))
    };
    if a == 0 {
        return Some(R::Unspecified);
    }
    if a == 1 {
        return Some(R::Loopback);
    }
    if in_v6(a, 0xffff_0000_0000, 96) {
        return embedded(0); // ::ffff:a.b.c.d
    }
    if in_v6(a, 0x0064_ff9b << 96, 96) {
        return embedded(0); // 64:ff9b::a.b.c.d
    }
    if in_v6(a, 0x0064_ff9b_0001 << 80, 48) {
        return Some(R::Private);
    }
    if in_v6(a, 0x2002 << 112, 16) {
        return embedded(80); // 2002:aabb:ccdd::/48
    }
    let table: [(u128, u32, AddressRange); 10] = [
        (0, 8, R::Reserved),
        (0x0100 << 112, 64, R::Reserved),
        (0x2001_0db8 << 96, 32, R::Documentation),
        (0x3fff << 112, 20, R::Documentation),
        (0x2001_0002 << 96, 48, R::Benchmarking),
        (0x2001_0000 << 96, 32, R::Reserved),
        (0xfc00 << 112, 7, R::UniqueLocal),
        (0xfe80 << 112, 10, R::LinkLocal),
        (0xfec0 << 112, 10, R::SiteLocal),
        (0xff00 << 112, 8, R::Multicast),
    ];
    if let Some((_, _, range)) = table.iter().find(|(p, len, _)| in_v6(a, *p, *len)) {
        return Some(*range);
    }
    // Only 2000::/3 is allocated for global unicast (RFC 4291 §2.4).
    (!in_v6(a, 0x2000 << 112, 3)).then_some(R::Reserved)
}

#[cfg(test)]
mod tests;
