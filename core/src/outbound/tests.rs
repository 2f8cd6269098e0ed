//! The guard end to end with an injected resolver: names resolving to refused addresses
//! are refused before any connection; loopback with a grant really connects.

use std::net::IpAddr;
use std::sync::Arc;

use super::*;

fn ip(s: &str) -> IpAddr {
    s.parse().expect("an address")
}

fn guard(policy: Policy, resolver: StaticResolver) -> OutboundGuard {
    OutboundGuard::new(policy).with_resolver(Arc::new(resolver))
}

fn grants(list: &str) -> Vec<Grant> {
    Policy::parse_list(list).expect("grants")
}

#[tokio::test]
async fn names_resolving_to_refused_addresses_never_get_a_connection() {
    let resolver = StaticResolver::default()
        .with("metadata.test", &[ip("169.254.169.254")])
        .with("internal.test", &[ip("10.0.0.1")])
        .with("loop.test", &[ip("127.0.0.1")]);
    let g = guard(
        Policy::public_https(grants(""), "CERTCTL_OUTBOUND_ALLOW"),
        resolver,
    );
    for host in ["metadata.test", "internal.test", "loop.test"] {
        let d = Destination::parse_url(&format!("https://{host}/dir")).expect("url");
        // `connect` would fail loudly (a timeout or a refused connection) if it tried.
        let err = g.connect(&d).await.expect_err(host);
        let refusal = err.refusal().unwrap_or_else(|| panic!("{host}: {err}"));
        assert!(matches!(refusal, Refusal::Address { .. }), "{refusal}");
        assert!(err.to_string().contains(host), "{err}");
    }
}

#[tokio::test]
async fn only_the_checked_addresses_are_returned() {
    // A name with a public and a private address: only the public one may be used.
    let resolver =
        StaticResolver::default().with("mixed.test", &[ip("10.0.0.1"), ip("93.184.216.34")]);
    let g = guard(
        Policy::public_https(grants(""), "CERTCTL_OUTBOUND_ALLOW"),
        resolver,
    );
    let d = Destination::parse_url("https://mixed.test/").expect("url");
    let addresses = g.resolve(&d).await.expect("the public address");
    assert_eq!(addresses, vec![SocketAddr::new(ip("93.184.216.34"), 443)]);
    // Granted, both are allowed, in the resolver's order.
    let resolver =
        StaticResolver::default().with("mixed.test", &[ip("10.0.0.1"), ip("93.184.216.34")]);
    let g = guard(
        Policy::public_https(grants("10.0.0.0/8"), "CERTCTL_OUTBOUND_ALLOW"),
        resolver,
    );
    assert_eq!(g.resolve(&d).await.expect("both").len(), 2);
}

#[tokio::test]
async fn a_granted_loopback_name_connects_to_the_checked_address() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let resolver = StaticResolver::default().with("receiver.test", &[ip("127.0.0.1")]);
    let d = Destination::parse_url(&format!("https://receiver.test:{port}/")).expect("url");

    let refused = guard(
        Policy::granted_only(grants(""), "the grant"),
        resolver.clone(),
    );
    let err = refused.connect(&d).await.expect_err("not granted");
    assert!(matches!(err.refusal(), Some(Refusal::Host { .. })), "{err}");

    let granted = guard(
        Policy::granted_only(grants(&format!("receiver.test:{port}")), "the grant"),
        resolver,
    );
    let (_stream, address) = granted.connect(&d).await.expect("connects");
    assert_eq!(address, SocketAddr::new(ip("127.0.0.1"), port));
    let (_, peer) = listener.accept().await.expect("accepted");
    assert!(peer.ip().is_loopback());
}

#[test]
fn refusals_are_found_through_error_sources() {
    #[derive(Debug, thiserror::Error)]
    #[error("client error")]
    struct Wrapper(#[source] OutboundError);
    let refusal = Refusal::Url {
        url: "x".into(),
        why: "y".into(),
    };
    let wrapped = Wrapper(OutboundError::Refused(refusal.clone()));
    assert_eq!(OutboundError::find_refusal(&wrapped), Some(&refusal));
    let io = std::io::Error::other("nope");
    assert_eq!(OutboundError::find_refusal(&io), None);
}
