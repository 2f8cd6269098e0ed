//! The outbound guard's decisions, as pure functions of the operator's grants: whether a
//! destination may be attempted at all ([`Policy::check`], before DNS) and whether one of
//! its resolved addresses may be connected to ([`Policy::check_address`]).

use std::net::IpAddr;

use super::grant::{Grant, GrantError};
use super::ranges::{canonical, special_range};
use super::{Destination, Refusal, Scheme};

/// The operator's grants and what is allowed without one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    grants: Vec<Grant>,
    /// Public addresses over https on port 443 need no grant (the server's own fetches).
    public_https: bool,
    /// Where the grants are configured, for messages.
    granted_by: String,
}

impl Policy {
    /// Only what `grants` allow (plugins: their `hosts` grant). `granted_by` says where the
    /// operator grants more, for refusal messages.
    pub fn granted_only(grants: Vec<Grant>, granted_by: impl Into<String>) -> Self {
        Self {
            grants,
            public_https: false,
            granted_by: granted_by.into(),
        }
    }

    /// Any public address over https on port 443, plus what `grants` allow (the server's
    /// own fetches, e.g. an ACME directory chosen through the API).
    pub fn public_https(grants: Vec<Grant>, granted_by: impl Into<String>) -> Self {
        Self {
            grants,
            public_https: true,
            granted_by: granted_by.into(),
        }
    }

    /// Parses a list of grants (`,`- or whitespace-separated, as in an environment
    /// variable).
    pub fn parse_list(list: &str) -> Result<Vec<Grant>, GrantError> {
        list.split(|c: char| c == ',' || c.is_whitespace())
            .filter(|g| !g.is_empty())
            .map(str::parse)
            .collect()
    }

    /// The grants.
    pub fn grants(&self) -> &[Grant] {
        &self.grants
    }

    fn public_default(&self, d: &Destination) -> bool {
        self.public_https && d.scheme == Scheme::Https && d.port == 443
    }

    fn refusal(
        &self,
        d: &Destination,
        rule: fn(Destination, String, String) -> Refusal,
    ) -> Refusal {
        rule(d.clone(), d.grant_suggestion(), self.granted_by.clone())
    }

    /// What can be decided before resolving the name: the scheme, the port and whether
    /// any grant names the host; for an IP literal also the address.
    pub fn check(&self, d: &Destination) -> Result<(), Refusal> {
        let public_default = self.public_default(d);
        // Grants that name the host, or may cover it once it is resolved (an address or a
        // range, for a host name).
        let literal = d.ip_literal().is_some();
        let named: Vec<&Grant> = self
            .grants
            .iter()
            .filter(|g| g.names_host(&d.host).is_some() || (!literal && g.is_address_grant()))
            .collect();
        let schemed: Vec<&Grant> = named
            .iter()
            .copied()
            .filter(|g| g.allows_scheme(d.scheme))
            .collect();
        if d.scheme == Scheme::Http && schemed.is_empty() {
            return Err(self.refusal(d, |destination, suggestion, granted_by| {
                Refusal::PlainHttp {
                    destination,
                    suggestion,
                    granted_by,
                }
            }));
        }
        if !public_default {
            if schemed.is_empty() && !(self.public_https && d.scheme == Scheme::Https) {
                return Err(self.host_refusal(d));
            }
            if !schemed.iter().any(|g| g.allows_port(d.scheme, d.port)) {
                return Err(
                    self.refusal(d, |destination, suggestion, granted_by| Refusal::Port {
                        destination,
                        suggestion,
                        granted_by,
                    }),
                );
            }
        }
        match d.ip_literal() {
            Some(ip) => self.check_address(d, ip),
            None => Ok(()),
        }
    }

    fn host_refusal(&self, d: &Destination) -> Refusal {
        self.refusal(d, |destination, suggestion, granted_by| Refusal::Host {
            destination,
            suggestion,
            granted_by,
        })
    }

    /// Whether `d` may be reached at `ip` (one of the addresses its host resolved to).
    pub fn check_address(&self, d: &Destination, ip: IpAddr) -> Result<(), Refusal> {
        let ip = canonical(ip);
        let mut fitting = self
            .grants
            .iter()
            .filter(|g| g.allows_scheme(d.scheme) && g.allows_port(d.scheme, d.port));
        match special_range(ip) {
            Some(range) => {
                if fitting.any(|g| g.covers(&d.host, ip) == Some(true)) {
                    Ok(())
                } else {
                    let suggestion = if d.ip_literal().is_some() {
                        d.grant_suggestion()
                    } else {
                        let by_address = Destination {
                            host: ip.to_string(),
                            ..d.clone()
                        };
                        format!(
                            "{}` or `{}",
                            d.grant_suggestion(),
                            by_address.grant_suggestion()
                        )
                    };
                    Err(Refusal::Address {
                        destination: d.clone(),
                        address: ip,
                        range,
                        suggestion,
                        granted_by: self.granted_by.clone(),
                    })
                }
            }
            None => {
                if self.public_default(d) || fitting.any(|g| g.covers(&d.host, ip).is_some()) {
                    Ok(())
                } else {
                    Err(self.host_refusal(d))
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plugin(grants: &str) -> Policy {
        Policy::granted_only(
            Policy::parse_list(grants).expect("grants"),
            "the test's grant",
        )
    }

    fn server(grants: &str) -> Policy {
        Policy::public_https(
            Policy::parse_list(grants).expect("grants"),
            "CERTCTL_OUTBOUND_ALLOW",
        )
    }

    fn url(u: &str) -> Destination {
        Destination::parse_url(u).expect("a URL")
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("an address")
    }

    /// The full decision for a URL whose host resolved to `addr`.
    fn decide(policy: &Policy, u: &str, addr: &str) -> Result<(), Refusal> {
        let d = url(u);
        policy.check(&d)?;
        policy.check_address(&d, ip(addr))
    }

    #[test]
    fn public_https_on_443_needs_no_grant_for_server_fetches() {
        let p = server("");
        assert_eq!(
            decide(&p, "https://acme.example/dir", "93.184.216.34"),
            Ok(())
        );
        // …but plugins need a grant even for that.
        let err = decide(&plugin(""), "https://acme.example/dir", "93.184.216.34").unwrap_err();
        assert!(matches!(err, Refusal::Host { .. }), "{err}");
    }

    #[test]
    fn loopback_metadata_and_private_are_refused_without_an_explicit_grant() {
        for (addr, range) in [
            ("127.0.0.1", "loopback"),
            ("169.254.169.254", "cloud metadata"),
            ("10.0.0.1", "private"),
        ] {
            // A name resolving there (the ACME directory chosen through the API).
            let err = decide(&server(""), "https://rebind.example/dir", addr).unwrap_err();
            let Refusal::Address {
                address,
                range: got,
                ..
            } = &err
            else {
                panic!("{addr}: {err:?}");
            };
            assert_eq!(*address, ip(addr));
            assert!(got.contains(range), "{got}");
            let text = err.to_string();
            assert!(
                text.contains("https://rebind.example:443")
                    && text.contains(addr)
                    && text.contains(range)
                    && text.contains("CERTCTL_OUTBOUND_ALLOW"),
                "{text}"
            );
            // A plugin with a wildcard grant: still refused.
            let err = decide(&plugin("*"), "https://rebind.example/", addr).unwrap_err();
            assert!(matches!(err, Refusal::Address { .. }), "{err}");
            let err = decide(&plugin("*.example"), "https://rebind.example/", addr).unwrap_err();
            assert!(matches!(err, Refusal::Address { .. }), "{err}");
            // The literal address in the URL: refused before any resolution.
            let err = server("")
                .check(&url(&format!("https://{addr}/dir")))
                .unwrap_err();
            assert!(matches!(err, Refusal::Address { .. }), "{err}");
        }
    }

    #[test]
    fn an_explicit_grant_of_the_host_the_address_or_the_range_allows_it() {
        for (addr, grants) in [
            ("127.0.0.1", ["rebind.example", "127.0.0.1", "127.0.0.0/8"]),
            (
                "169.254.169.254",
                ["rebind.example", "169.254.169.254", "169.254.0.0/16"],
            ),
            ("10.0.0.1", ["rebind.example", "10.0.0.1", "10.0.0.0/8"]),
        ] {
            for g in grants {
                assert_eq!(
                    decide(&server(g), "https://rebind.example/dir", addr),
                    Ok(()),
                    "{addr} with {g}"
                );
                assert_eq!(
                    decide(&plugin(g), "https://rebind.example/dir", addr),
                    Ok(()),
                    "plugin: {addr} with {g}"
                );
            }
            // Granting another host, address or range does not.
            for g in ["other.example", "192.0.2.1", "192.168.0.0/16"] {
                assert!(
                    decide(&server(g), "https://rebind.example/dir", addr).is_err(),
                    "{addr} with {g}"
                );
            }
        }
        // IP literal URLs with the address granted.
        assert_eq!(
            server("127.0.0.1:*").check(&url("https://127.0.0.1:14000/dir")),
            Ok(())
        );
        assert_eq!(
            server("[::1]:*").check(&url("https://[::1]:14000/dir")),
            Ok(())
        );
        // IPv4-mapped IPv6 is checked as the IPv4 address.
        assert!(decide(&server(""), "https://x.example/", "::ffff:10.0.0.1").is_err());
        assert_eq!(
            decide(
                &server("10.0.0.0/8"),
                "https://x.example/",
                "::ffff:10.0.0.1"
            ),
            Ok(())
        );
    }

    #[test]
    fn plain_http_needs_an_http_grant() {
        let err = decide(&server(""), "http://acme.example/dir", "93.184.216.34").unwrap_err();
        assert!(matches!(err, Refusal::PlainHttp { .. }), "{err}");
        assert!(
            err.to_string().contains("`http://acme.example:80`"),
            "{err}"
        );
        // An https grant of the same host does not allow http.
        let err = decide(
            &plugin("127.0.0.1:8080"),
            "http://127.0.0.1:8080/",
            "127.0.0.1",
        )
        .unwrap_err();
        assert!(matches!(err, Refusal::PlainHttp { .. }), "{err}");
        assert_eq!(
            decide(
                &plugin("http://127.0.0.1:8080"),
                "http://127.0.0.1:8080/",
                "127.0.0.1"
            ),
            Ok(())
        );
        assert_eq!(
            decide(
                &server("http://acme.example"),
                "http://acme.example/",
                "93.184.216.34"
            ),
            Ok(())
        );
        // An http grant does not allow https.
        assert!(
            decide(
                &plugin("http://x.example"),
                "https://x.example/",
                "93.184.216.34"
            )
            .is_err()
        );
    }

    #[test]
    fn a_port_not_granted_is_refused() {
        // A grant without a port: the scheme's default port only.
        let err = decide(
            &plugin("hooks.example"),
            "https://hooks.example:8443/",
            "93.184.216.34",
        )
        .unwrap_err();
        assert!(matches!(err, Refusal::Port { .. }), "{err}");
        assert!(
            err.to_string().contains("port 8443")
                && err.to_string().contains("`hooks.example:8443`"),
            "{err}"
        );
        assert_eq!(
            decide(
                &plugin("hooks.example"),
                "https://hooks.example/",
                "93.184.216.34"
            ),
            Ok(())
        );
        // Server fetches: public https on another port needs a grant.
        let err = decide(
            &server(""),
            "https://acme.example:14000/dir",
            "93.184.216.34",
        )
        .unwrap_err();
        assert!(matches!(err, Refusal::Port { .. }), "{err}");
        assert_eq!(
            decide(
                &server("acme.example:14000"),
                "https://acme.example:14000/dir",
                "93.184.216.34"
            ),
            Ok(())
        );
        // A granted port, a port wildcard.
        let err = decide(
            &plugin("127.0.0.1:5000"),
            "https://127.0.0.1:5001/",
            "127.0.0.1",
        )
        .unwrap_err();
        assert!(matches!(err, Refusal::Port { .. }), "{err}");
        assert_eq!(
            decide(
                &plugin("127.0.0.1:*"),
                "https://127.0.0.1:5001/",
                "127.0.0.1"
            ),
            Ok(())
        );
        // The loopback grant on port 80 does not open port 14000.
        let err = server("127.0.0.1")
            .check(&url("https://127.0.0.1:14000/dir"))
            .unwrap_err();
        assert!(matches!(err, Refusal::Port { .. }), "{err}");
        // SMTP: a grant without a port means 25 and 587.
        let p = plugin("smtp.example");
        assert_eq!(p.check(&Destination::smtp("smtp.example", 587)), Ok(()));
        assert!(matches!(
            p.check(&Destination::smtp("smtp.example", 2525)),
            Err(Refusal::Port { .. })
        ));
    }

    #[test]
    fn plugins_reach_only_granted_hosts() {
        let p = plugin("hooks.slack.com, *.example.com");
        assert_eq!(decide(&p, "https://hooks.slack.com/x", "34.1.2.3"), Ok(()));
        assert_eq!(decide(&p, "https://a.example.com/x", "34.1.2.3"), Ok(()));
        let err = decide(&p, "https://example.com/x", "34.1.2.3").unwrap_err();
        assert!(matches!(err, Refusal::Host { .. }), "{err}");
        // A range grant covers the names resolving into it, and nothing else.
        let p = plugin("10.0.0.0/8");
        assert_eq!(decide(&p, "https://internal.example/", "10.1.2.3"), Ok(()));
        let err = decide(&p, "https://internal.example/", "34.1.2.3").unwrap_err();
        assert!(matches!(err, Refusal::Host { .. }), "{err}");
    }

    #[test]
    fn urls_that_are_not_http_are_refused() {
        for u in ["ftp://x/", "/relative", "https:///nohost"] {
            assert!(Destination::parse_url(u).is_err(), "{u}");
        }
    }
}
