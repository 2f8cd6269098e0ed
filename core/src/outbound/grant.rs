//! One operator grant of the outbound guard, parsed: `[http://|https://]host[:port|:*]`.
//!
//! - no scheme: https (and SMTP); `http://`: plain http only; `https://`: https only;
//! - host: a name (`acme.internal`), `*.domain` (any name below it), `*` (any host), an
//!   IPv4 address, `[IPv6]`, or a CIDR range (`10.0.0.0/8`, `[fd00::/8]`); a bare IPv6
//!   address or range without a port may omit the brackets (`::1`, `fd00::/8`);
//! - port: none means the scheme's default port(s), `:*` any port.
//!
//! Only a name, an address or a range is *explicit*: it may open addresses the guard
//! refuses by default (loopback, private, …). Wildcards never do.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use super::Scheme;
use super::ranges::canonical;

/// A grant that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("outbound grant `{grant}`: {why}")]
pub struct GrantError {
    /// The grant as written.
    pub grant: String,
    /// What is wrong with it.
    pub why: String,
}

/// What a grant's host part matches.
#[derive(Debug, Clone, PartialEq, Eq)]
enum HostPattern {
    /// `*`: every host.
    Any,
    /// `*.example.com`: names ending in `.example.com` (stored with the leading dot).
    Suffix(String),
    /// One name, lower case.
    Name(String),
    /// One address.
    Ip(IpAddr),
    /// A range: network address (masked) and prefix length.
    Net(IpAddr, u8),
}

/// What a grant's port part matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PortPattern {
    /// No port: the scheme's default ports.
    Default,
    /// `:*`.
    Any,
    /// `:port`.
    Port(u16),
}

/// One parsed grant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    text: String,
    /// `None`: https and SMTP; `Some(s)`: only `s`.
    scheme: Option<Scheme>,
    host: HostPattern,
    port: PortPattern,
}

impl fmt::Display for Grant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl FromStr for Grant {
    type Err = GrantError;

    fn from_str(text: &str) -> Result<Self, GrantError> {
        let bad = |why: &str| GrantError {
            grant: text.to_owned(),
            why: why.to_owned(),
        };
        let lower = text.trim().to_ascii_lowercase();
        if lower.is_empty() {
            return Err(bad("is empty"));
        }
        let (scheme, rest) = if let Some(rest) = lower.strip_prefix("http://") {
            (Some(Scheme::Http), rest)
        } else if let Some(rest) = lower.strip_prefix("https://") {
            (Some(Scheme::Https), rest)
        } else if lower.contains("://") {
            return Err(bad("only http:// and https:// may prefix a grant"));
        } else {
            (None, lower.as_str())
        };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        // A bare IPv6 address or range (no port, no brackets).
        if rest.matches(':').count() >= 2 && !rest.starts_with('[') {
            let host = parse_host(rest).map_err(|why| bad(&why))?;
            return Ok(Self {
                text: text.trim().to_owned(),
                scheme,
                host,
                port: PortPattern::Default,
            });
        }
        let (host, port) = if let Some(inner) = rest.strip_prefix('[') {
            let (host, after) = inner
                .split_once(']')
                .ok_or_else(|| bad("`[` without `]`"))?;
            match after {
                "" => (host, None),
                _ => (
                    host,
                    Some(
                        after
                            .strip_prefix(':')
                            .ok_or_else(|| bad("expected `:port` after `]`"))?,
                    ),
                ),
            }
        } else {
            match rest.rsplit_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (rest, None),
            }
        };
        let port = match port {
            None => PortPattern::Default,
            Some("*") => PortPattern::Any,
            Some(p) => match p.parse::<u16>() {
                Ok(p) if p > 0 => PortPattern::Port(p),
                _ => return Err(bad("the port must be 1-65535 or `*`")),
            },
        };
        let host = parse_host(host).map_err(|why| bad(&why))?;
        Ok(Self {
            text: text.trim().to_owned(),
            scheme,
            host,
            port,
        })
    }
}

fn parse_host(host: &str) -> Result<HostPattern, String> {
    if host == "*" {
        return Ok(HostPattern::Any);
    }
    if let Some((addr, len)) = host.split_once('/') {
        let addr: IpAddr = addr
            .parse()
            .map_err(|_| format!("`{addr}` in a range is not an IP address"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let len: u8 = len
            .parse()
            .ok()
            .filter(|l| *l <= max)
            .ok_or_else(|| format!("the prefix length must be 0-{max}"))?;
        return Ok(HostPattern::Net(mask(canonical(addr), len), len));
    }
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(HostPattern::Ip(canonical(ip)));
    }
    let (suffix, name) = match host.strip_prefix("*.") {
        Some(name) => (true, name),
        None => (false, host),
    };
    let valid = !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        });
    if !valid {
        return Err(format!(
            "`{host}` is not a host name, `*.domain`, `*`, an IP address or a CIDR range"
        ));
    }
    Ok(if suffix {
        HostPattern::Suffix(format!(".{name}"))
    } else {
        HostPattern::Name(name.to_owned())
    })
}

/// `addr` with the bits past `len` cleared (`len` for IPv4-mapped ranges counts the v4 part).
fn mask(addr: IpAddr, len: u8) -> IpAddr {
    match addr {
        IpAddr::V4(v4) => {
            let bits = u32::from(v4);
            let m = if len == 0 {
                0
            } else {
                u32::MAX << (32 - u32::from(len))
            };
            IpAddr::V4((bits & m).into())
        }
        IpAddr::V6(v6) => {
            let bits = u128::from(v6);
            let m = if len == 0 {
                0
            } else {
                u128::MAX << (128 - u32::from(len))
            };
            IpAddr::V6((bits & m).into())
        }
    }
}

impl Grant {
    /// Whether the grant allows `scheme`.
    pub(super) fn allows_scheme(&self, scheme: Scheme) -> bool {
        match self.scheme {
            None => matches!(scheme, Scheme::Https | Scheme::Smtp),
            Some(granted) => granted == scheme,
        }
    }

    /// Whether the grant allows `port` for `scheme`.
    pub(super) fn allows_port(&self, scheme: Scheme, port: u16) -> bool {
        match self.port {
            PortPattern::Any => true,
            PortPattern::Port(p) => p == port,
            PortPattern::Default => scheme.default_ports().contains(&port),
        }
    }

    /// Whether the grant names `host` (a lower-case name or IP literal) before any name
    /// resolution: `Some(explicit)` when it does.
    pub(super) fn names_host(&self, host: &str) -> Option<bool> {
        match host.parse::<IpAddr>() {
            Ok(ip) => self.covers(host, ip),
            Err(_) => match &self.host {
                HostPattern::Any => Some(false),
                HostPattern::Suffix(domain) => host.ends_with(domain.as_str()).then_some(false),
                HostPattern::Name(name) => (name == host).then_some(true),
                HostPattern::Ip(_) | HostPattern::Net(..) => None,
            },
        }
    }

    /// Whether an address grant could cover a host name once it is resolved.
    pub(super) fn is_address_grant(&self) -> bool {
        matches!(self.host, HostPattern::Ip(_) | HostPattern::Net(..))
    }

    /// Whether the grant covers address `ip` of `host`: `Some(explicit)` when it does.
    pub(super) fn covers(&self, host: &str, ip: IpAddr) -> Option<bool> {
        let ip = canonical(ip);
        let is_literal = host.parse::<IpAddr>().is_ok();
        match &self.host {
            HostPattern::Any => Some(false),
            HostPattern::Suffix(domain) => {
                (!is_literal && host.ends_with(domain.as_str())).then_some(false)
            }
            HostPattern::Name(name) => (name == host).then_some(true),
            HostPattern::Ip(granted) => (*granted == ip).then_some(true),
            HostPattern::Net(net, len) => {
                (net.is_ipv4() == ip.is_ipv4() && mask(ip, *len) == *net).then_some(true)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant(s: &str) -> Grant {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn the_grant_forms_parse() {
        assert_eq!(
            grant("Hooks.Slack.com").host,
            HostPattern::Name("hooks.slack.com".into())
        );
        assert_eq!(grant("localhost:2019").port, PortPattern::Port(2019));
        assert_eq!(grant("localhost:*").port, PortPattern::Any);
        assert_eq!(
            grant("*.example.com").host,
            HostPattern::Suffix(".example.com".into())
        );
        assert_eq!(grant("*").host, HostPattern::Any);
        assert_eq!(
            grant("127.0.0.1").host,
            HostPattern::Ip("127.0.0.1".parse().unwrap())
        );
        assert_eq!(
            grant("[::1]:8080").host,
            HostPattern::Ip("::1".parse().unwrap())
        );
        assert_eq!(grant("[::1]:8080").port, PortPattern::Port(8080));
        assert_eq!(grant("::1").host, HostPattern::Ip("::1".parse().unwrap()));
        assert_eq!(
            grant("10.1.2.3/8").host,
            HostPattern::Net("10.0.0.0".parse().unwrap(), 8)
        );
        assert_eq!(
            grant("fd00::/8").host,
            HostPattern::Net("fd00::".parse().unwrap(), 8)
        );
        assert_eq!(grant("[fd00::/8]:443").port, PortPattern::Port(443));
        let http = grant("http://127.0.0.1:8080/");
        assert_eq!(http.scheme, Some(Scheme::Http));
        assert_eq!(http.port, PortPattern::Port(8080));
        assert_eq!(grant("https://acme.example").scheme, Some(Scheme::Https));
        assert_eq!(grant(" http://x ").to_string(), "http://x");
    }

    #[test]
    fn malformed_grants_say_why() {
        for (g, why) in [
            ("", "empty"),
            ("ftp://x", "only http:// and https://"),
            ("x:0", "port"),
            ("x:http", "port"),
            ("10.0.0.0/33", "prefix length"),
            ("nope/8", "not an IP address"),
            ("a b", "not a host name"),
            ("x/path", "not an IP address"),
            ("[::1", "without `]`"),
            ("*.", "not a host name"),
            ("a.*.b", "not a host name"),
        ] {
            let err = g.parse::<Grant>().expect_err(g);
            assert!(err.to_string().contains(why), "{g}: {err}");
        }
    }

    #[test]
    fn matching() {
        let g = grant("*.example.com");
        assert_eq!(g.names_host("a.b.example.com"), Some(false));
        assert_eq!(g.names_host("example.com"), None);
        assert_eq!(g.names_host("evil-example.com"), None);
        let g = grant("10.0.0.0/8");
        assert_eq!(g.names_host("internal.example"), None);
        assert!(g.is_address_grant());
        assert_eq!(
            g.covers("internal.example", "10.9.8.7".parse().unwrap()),
            Some(true)
        );
        assert_eq!(
            g.covers("internal.example", "11.0.0.1".parse().unwrap()),
            None
        );
        assert_eq!(
            g.covers("x", "::ffff:10.0.0.1".parse().unwrap()),
            Some(true),
            "IPv4-mapped IPv6 is the IPv4 address"
        );
        assert_eq!(
            grant("*").covers("10.0.0.1", "10.0.0.1".parse().unwrap()),
            Some(false)
        );
        assert!(grant("x").allows_scheme(Scheme::Https));
        assert!(grant("x").allows_scheme(Scheme::Smtp));
        assert!(!grant("x").allows_scheme(Scheme::Http));
        assert!(grant("http://x").allows_scheme(Scheme::Http));
        assert!(!grant("http://x").allows_scheme(Scheme::Https));
        assert!(grant("x").allows_port(Scheme::Https, 443));
        assert!(!grant("x").allows_port(Scheme::Https, 8443));
        assert!(grant("http://x").allows_port(Scheme::Http, 80));
        assert!(grant("x").allows_port(Scheme::Smtp, 587));
        assert!(grant("x:*").allows_port(Scheme::Https, 8443));
    }
}
