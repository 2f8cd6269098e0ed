//! The outbound guard: the one gate every server-side fetch passes (the ACME client,
//! plugins' `wasi:http` requests and their `smtp` sessions), cargo feature `outbound`.
//!
//! A connection is allowed when the operator's grants allow it (a [`Policy`]):
//!
//! - **scheme**: `https` (and SMTP) only; plain `http` needs a grant written
//!   `http://host[:port]`;
//! - **port**: a grant without a port means the scheme's default port (443 for https,
//!   80 for http, 25 and 587 for SMTP); `host:port` grants that port, `host:*` any port;
//! - **address**: the name is resolved once (through an injectable [`Resolver`]) and
//!   every address is checked: loopback, link-local, private, shared (CGNAT),
//!   unspecified, multicast, broadcast, reserved and cloud-metadata addresses are refused
//!   unless a grant names that host, that address or a range containing it explicitly (a
//!   wildcard `*` or `*.example.com` never opens them). The connection then goes to an
//!   address that was checked, never through a second lookup, so a name cannot resolve to
//!   a public address for the check and to a private one for the connection (DNS
//!   rebinding). TLS still verifies the certificate for, and sends SNI of, the host name.
//!
//! Plugins get [`Policy::granted_only`] over their `hosts` grant; the server's own fetches
//! (ACME) get [`Policy::public_https`]: any public address on https port 443, plus the
//! operator's grants. Refusals are [`Refusal`]s saying which host, which address, which
//! rule, and how to grant it. The decisions are pure functions of [`Policy`]
//! (`policy.rs`); this file adds name resolution and connecting.
//!
//! Grant syntax (`grant.rs`): `[http://|https://]host[:port|:*]` where host is a name,
//! `*.domain`, `*`, an IPv4 address, `[IPv6]`, or a CIDR range (`10.0.0.0/8`,
//! `[fd00::/8]`; a bare IPv6 address or range without a port needs no brackets).

mod grant;
mod policy;
mod ranges;
mod resolve;

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use serde::Serialize;
use tokio::net::TcpStream;

pub use grant::{Grant, GrantError};
pub use policy::Policy;
pub use ranges::special_range;
pub use resolve::{Resolver, Resolving, StaticResolver, SystemResolver};

/// The protocol of an outbound connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Scheme {
    /// HTTP over TLS.
    Https,
    /// Plain HTTP (only when granted as `http://…`).
    Http,
    /// SMTP (STARTTLS is the SMTP client's business).
    Smtp,
}

impl Scheme {
    /// The ports a grant without a port allows for this scheme.
    pub fn default_ports(self) -> &'static [u16] {
        match self {
            Self::Https => &[443],
            Self::Http => &[80],
            Self::Smtp => &[25, 587],
        }
    }

    /// The lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Https => "https",
            Self::Http => "http",
            Self::Smtp => "smtp",
        }
    }
}

impl fmt::Display for Scheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a connection is meant to go, before name resolution.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Destination {
    /// The protocol.
    pub scheme: Scheme,
    /// Lower-case host name or IP literal, without IPv6 brackets.
    pub host: String,
    /// The port (the scheme's default when the URL names none).
    pub port: u16,
}

impl Destination {
    /// The destination of an `http://` or `https://` URL.
    pub fn parse_url(url: &str) -> Result<Self, Refusal> {
        let uri: http::Uri = url.parse().map_err(|e| Refusal::Url {
            url: url.to_owned(),
            why: format!("not a URL ({e})"),
        })?;
        Self::from_uri(&uri)
    }

    /// The destination of a request URI (absolute: scheme and host are required).
    pub fn from_uri(uri: &http::Uri) -> Result<Self, Refusal> {
        let bad = |why: &str| Refusal::Url {
            url: uri.to_string(),
            why: why.to_owned(),
        };
        let scheme = match uri.scheme_str().map(str::to_ascii_lowercase).as_deref() {
            Some("https") => Scheme::Https,
            Some("http") => Scheme::Http,
            Some(_) => return Err(bad("only https:// (and granted http://) URLs are fetched")),
            None => return Err(bad("the URL has no scheme")),
        };
        let host = uri
            .host()
            .map(|h| h.trim_start_matches('[').trim_end_matches(']'))
            .filter(|h| !h.is_empty())
            .ok_or_else(|| bad("the URL has no host"))?;
        let port = uri.port_u16().unwrap_or(scheme.default_ports()[0]);
        Ok(Self {
            scheme,
            host: host.to_ascii_lowercase(),
            port,
        })
    }

    /// An SMTP server.
    pub fn smtp(host: &str, port: u16) -> Self {
        Self {
            scheme: Scheme::Smtp,
            host: host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_ascii_lowercase(),
            port,
        }
    }

    /// `host:port`, with brackets around an IPv6 host.
    pub fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// The host as an IP address, when it is an IP literal.
    pub fn ip_literal(&self) -> Option<IpAddr> {
        self.host.parse().ok()
    }

    /// The grant that would allow exactly this destination (for messages).
    fn grant_suggestion(&self) -> String {
        let prefix = if self.scheme == Scheme::Http {
            "http://"
        } else {
            ""
        };
        format!("{prefix}{}", self.authority())
    }
}

impl fmt::Display for Destination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}", self.scheme, self.authority())
    }
}

/// Why the guard refused a destination. Each message names the destination, the rule, and
/// the grant that would allow it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[serde(tag = "rule", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Refusal {
    /// Not a URL the guard fetches (no host, or a scheme other than http/https).
    #[error("outbound request to `{url}` refused: {why}")]
    Url {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        why: String,
    },
    /// No grant names the host.
    #[error(
        "outbound connection to {destination} refused: the host is not granted (grant `{suggestion}` in {granted_by})"
    )]
    Host {
        /// Where the connection was meant to go.
        destination: Destination,
        /// The grant that would allow it.
        suggestion: String,
        /// Where grants are configured.
        granted_by: String,
    },
    /// Plain http without an `http://` grant.
    #[error(
        "outbound connection to {destination} refused: plain http is not allowed, only https (grant `{suggestion}` in {granted_by} to allow http to it)"
    )]
    PlainHttp {
        /// Where the connection was meant to go.
        destination: Destination,
        /// The grant that would allow it.
        suggestion: String,
        /// Where grants are configured.
        granted_by: String,
    },
    /// The host is granted, but not on this port.
    #[error("outbound connection to {destination} refused: port {} is not granted (a grant without a port allows {} only on port {}; grant `{suggestion}` in {granted_by})", destination.port, destination.scheme, join_ports(destination.scheme))]
    Port {
        /// Where the connection was meant to go.
        destination: Destination,
        /// The grant that would allow it.
        suggestion: String,
        /// Where grants are configured.
        granted_by: String,
    },
    /// The host resolved to an address in a refused range, and no grant names the host,
    /// the address or its range explicitly.
    #[error("outbound connection to {destination} refused: {} resolves to {address}, a {range} address, which is reached only when {granted_by} names the host, the address or its range explicitly (e.g. `{suggestion}`)", destination.host)]
    Address {
        /// Where the connection was meant to go.
        destination: Destination,
        /// The address the host resolved to.
        address: IpAddr,
        /// The refused range it is in (e.g. `loopback (127.0.0.0/8)`).
        range: &'static str,
        /// A grant that would allow it.
        suggestion: String,
        /// Where grants are configured.
        granted_by: String,
    },
}

fn join_ports(scheme: Scheme) -> String {
    let ports: Vec<String> = scheme.default_ports().iter().map(u16::to_string).collect();
    ports.join(" and ")
}

impl Refusal {
    /// The destination refused, when it was understood.
    pub fn destination(&self) -> Option<&Destination> {
        match self {
            Self::Url { .. } => None,
            Self::Host { destination, .. }
            | Self::PlainHttp { destination, .. }
            | Self::Port { destination, .. }
            | Self::Address { destination, .. } => Some(destination),
        }
    }
}

/// Why an outbound connection did not happen.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OutboundError {
    /// The guard refused it (no traffic was sent).
    #[error(transparent)]
    Refused(#[from] Refusal),
    /// The name did not resolve.
    #[error("resolving {host}: {source}")]
    Resolve {
        /// The host name.
        host: String,
        /// The resolver's error.
        #[source]
        source: std::io::Error,
    },
    /// The name resolved to no address.
    #[error("{host} resolves to no address")]
    NoAddress {
        /// The host name.
        host: String,
    },
    /// Every permitted address refused the connection (the last error is kept).
    #[error("connecting to {destination} ({address}): {source}")]
    Connect {
        /// Where the connection was meant to go.
        destination: Destination,
        /// The last address tried.
        address: SocketAddr,
        /// The socket error.
        #[source]
        source: std::io::Error,
    },
}

impl OutboundError {
    /// The guard's refusal, when that is what this is (not retryable, unlike the others).
    pub fn refusal(&self) -> Option<&Refusal> {
        match self {
            Self::Refused(r) => Some(r),
            _ => None,
        }
    }

    /// The refusal inside `error` or any of its sources (for errors that went through
    /// an HTTP client stack).
    pub fn find_refusal<'a>(error: &'a (dyn std::error::Error + 'static)) -> Option<&'a Refusal> {
        let mut current = Some(error);
        while let Some(e) = current {
            if let Some(r) = e.downcast_ref::<Refusal>() {
                return Some(r);
            }
            if let Some(r) = e.downcast_ref::<OutboundError>().and_then(Self::refusal) {
                return Some(r);
            }
            current = e.source();
        }
        None
    }
}

/// A [`Policy`] with the resolver it checks addresses from. Cheap to clone.
#[derive(Clone)]
pub struct OutboundGuard {
    policy: Arc<Policy>,
    resolver: Arc<dyn Resolver>,
}

impl fmt::Debug for OutboundGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OutboundGuard")
            .field("policy", &self.policy)
            .field("resolver", &self.resolver)
            .finish()
    }
}

impl OutboundGuard {
    /// The guard of `policy`, resolving names through the system resolver.
    pub fn new(policy: Policy) -> Self {
        Self {
            policy: Arc::new(policy),
            resolver: Arc::new(SystemResolver),
        }
    }

    /// The same guard resolving names through `resolver` (tests make names resolve to
    /// chosen addresses without any traffic).
    pub fn with_resolver(mut self, resolver: Arc<dyn Resolver>) -> Self {
        self.resolver = resolver;
        self
    }

    /// The policy.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// The checks possible without DNS (scheme, port, host grants; the address when the
    /// host is an IP literal), for refusing a URL when it is configured.
    pub fn check_url(&self, url: &str) -> Result<Destination, Refusal> {
        let destination = Destination::parse_url(url)?;
        self.policy.check(&destination)?;
        Ok(destination)
    }

    /// Resolves the destination once and returns the addresses the policy allows, in the
    /// resolver's order; refused when it allows none.
    pub async fn resolve(
        &self,
        destination: &Destination,
    ) -> Result<Vec<SocketAddr>, OutboundError> {
        if let Err(refusal) = self.policy.check(destination) {
            tracing::warn!(%destination, %refusal, "outbound connection refused");
            return Err(refusal.into());
        }
        if let Some(ip) = destination.ip_literal() {
            return Ok(vec![SocketAddr::new(ip, destination.port)]);
        }
        let addresses = self
            .resolver
            .resolve(&destination.host, destination.port)
            .await
            .map_err(|source| OutboundError::Resolve {
                host: destination.host.clone(),
                source,
            })?;
        let mut allowed = Vec::new();
        let mut first_refusal = None;
        for address in addresses {
            match self.policy.check_address(destination, address.ip()) {
                Ok(()) => allowed.push(SocketAddr::new(address.ip(), destination.port)),
                Err(refusal) => {
                    tracing::warn!(%destination, address = %address.ip(), %refusal, "outbound address refused");
                    first_refusal.get_or_insert(refusal);
                }
            }
        }
        match (allowed.is_empty(), first_refusal) {
            (false, _) => Ok(allowed),
            (true, Some(refusal)) => Err(refusal.into()),
            (true, None) => Err(OutboundError::NoAddress {
                host: destination.host.clone(),
            }),
        }
    }

    /// Resolves, checks and connects to the first allowed address that answers; returns
    /// the stream and the address it is connected to.
    pub async fn connect(
        &self,
        destination: &Destination,
    ) -> Result<(TcpStream, SocketAddr), OutboundError> {
        let mut last = None;
        for address in self.resolve(destination).await? {
            match TcpStream::connect(address).await {
                Ok(stream) => return Ok((stream, address)),
                Err(source) => last = Some((address, source)),
            }
        }
        match last {
            Some((address, source)) => Err(OutboundError::Connect {
                destination: destination.clone(),
                address,
                source,
            }),
            None => Err(OutboundError::NoAddress {
                host: destination.host.clone(),
            }),
        }
    }
}

#[cfg(test)]
mod tests;
