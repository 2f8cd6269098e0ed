//! The outbound guard on plugins' wasi:http and smtp: plain http only with an `http://`
//! grant, granted ports only, and loopback / private / metadata addresses only with a
//! grant naming the host, the address or the range. Names are made to resolve through an
//! injected resolver, so `receiver.test` really reaches a loopback receiver (the
//! connection goes to the address the guard checked) and `metadata.test` "resolves" to
//! 169.254.169.254 without any traffic there: those refusals are decided before
//! connecting.

use std::net::{IpAddr, TcpListener};
use std::sync::Arc;

use certctl_core::outbound::{Refusal, StaticResolver};
use certctl_core::runtime::{Capability, Grants, Notification, PluginGrant, RuntimeError};
use certctl_testkit::http::Receiver;
use serde_json::json;

use crate::support::{load, plugin_dir, runtime_with};

fn ip(s: &str) -> IpAddr {
    s.parse().expect("an address")
}

fn resolver() -> StaticResolver {
    StaticResolver::default()
        .with("receiver.test", &[ip("127.0.0.1")])
        .with("metadata.test", &[ip("169.254.169.254")])
        .with("internal.test", &[ip("10.0.0.1")])
}

/// GETs `url` through the hostile notifier granted `hosts`.
async fn get(url: &str, hosts: &[&str]) -> Result<(), RuntimeError> {
    let plugins = plugin_dir(&["hostile-notifier"]);
    let grants = Grants::default().with_plugin(
        "hostile-notifier",
        PluginGrant {
            hosts: hosts.iter().map(|h| h.to_string()).collect(),
            ..PluginGrant::default()
        },
    );
    let rt = runtime_with(|c| c.resolver = Arc::new(resolver()));
    let set = load(&rt, plugins.path(), &grants);
    set.notifier("hostile-notifier")
        .expect("notifier")
        .notify(Notification {
            event: "test".into(),
            config_json: json!({ "url": url }).to_string(),
            ..Notification::default()
        })
        .await
}

fn refusal(err: &RuntimeError) -> &Refusal {
    match err {
        RuntimeError::Denied {
            capability: Capability::Outbound(r),
            ..
        } => r.as_ref(),
        other => panic!("expected an outbound refusal, got {other:?}"),
    }
}

#[tokio::test]
async fn a_loopback_receiver_is_reached_only_through_an_explicit_grant() {
    let receiver = Receiver::start(&[]);
    let port = receiver.port();
    let by_name = format!("http://receiver.test:{port}/hook");
    let by_ip = receiver.url("/hook");

    // Wildcards never open loopback, whatever the port or scheme they grant.
    for grants in [&["http://*:*"][..], &["http://*.test:*"]] {
        let err = get(&by_name, grants).await.unwrap_err();
        let r = refusal(&err);
        assert!(
            matches!(r, Refusal::Address { address, range, .. }
                if *address == ip("127.0.0.1") && range.contains("loopback")),
            "{r:?}"
        );
        let text = err.to_string();
        assert!(
            text.contains("receiver.test")
                && text.contains("127.0.0.1")
                && text.contains("loopback")
                && text.contains("hostile-notifier"),
            "{text}"
        );
    }
    let err = get(&by_ip, &["http://*:*"]).await.unwrap_err();
    assert!(matches!(refusal(&err), Refusal::Address { .. }), "{err}");

    // Granted https only: plain http is refused.
    let err = get(&by_ip, &[&receiver.authority()]).await.unwrap_err();
    assert!(matches!(refusal(&err), Refusal::PlainHttp { .. }), "{err}");
    assert!(
        err.to_string()
            .contains(&format!("`http://127.0.0.1:{port}`")),
        "{err}"
    );

    // Granted http without a port: port 80 only.
    let err = get(&by_ip, &["http://127.0.0.1"]).await.unwrap_err();
    assert!(
        matches!(&err, RuntimeError::Denied { capability: Capability::Host(h), .. }
            if *h == receiver.authority()),
        "{err:?}"
    );
    assert!(
        receiver.try_next().is_none(),
        "nothing reached the receiver"
    );

    // Explicit grants of the name, the address, the range: delivered.
    get(&by_name, &[&format!("http://receiver.test:{port}")])
        .await
        .expect("the granted name");
    assert_eq!(
        receiver.next().header("host"),
        Some(&*format!("receiver.test:{port}"))
    );
    get(&by_ip, &[&receiver.grant()])
        .await
        .expect("the granted address");
    receiver.next();
    get(&by_name, &["http://127.0.0.0/8:*"])
        .await
        .expect("the granted range");
    receiver.next();
}

#[tokio::test]
async fn metadata_and_private_addresses_are_refused_before_connecting() {
    for (host, address, range) in [
        ("metadata.test", "169.254.169.254", "cloud metadata"),
        ("internal.test", "10.0.0.1", "private"),
    ] {
        // `http://*` grants any host on port 80: still not these addresses.
        let err = get(&format!("http://{host}/latest/meta-data/"), &["http://*"])
            .await
            .unwrap_err();
        let r = refusal(&err);
        assert!(
            matches!(r, Refusal::Address { address: a, range: got, .. }
                if *a == ip(address) && got.contains(range)),
            "{r:?}"
        );
        // The address itself in the URL: refused without resolving anything.
        let err = get(&format!("http://{address}/"), &["http://*"])
            .await
            .unwrap_err();
        assert!(matches!(refusal(&err), Refusal::Address { .. }), "{err}");
    }
}

#[tokio::test]
async fn an_smtp_server_on_loopback_needs_an_explicit_grant() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.set_nonblocking(true).expect("nonblocking");
    let port = listener.local_addr().expect("addr").port();
    let plugins = plugin_dir(&["email"]);
    let grants = Grants::default().with_plugin(
        "email",
        PluginGrant {
            hosts: vec![format!("*:{port}")],
            ..PluginGrant::default()
        },
    );
    let rt = runtime_with(|c| c.resolver = Arc::new(resolver()));
    let set = load(&rt, plugins.path(), &grants);
    let err = set
        .notifier("email")
        .expect("email")
        .notify(Notification {
            event: "test".into(),
            config_json: json!({
                "host": "receiver.test", "port": port, "starttls": false,
                "from": "certctl@example.com",
            })
            .to_string(),
            recipient: "ops@example.com".into(),
            subject: "test".into(),
            ..Notification::default()
        })
        .await
        .unwrap_err();
    assert!(
        matches!(refusal(&err), Refusal::Address { range, .. } if range.contains("loopback")),
        "{err}"
    );
    assert!(listener.accept().is_err(), "no connection was made");
}
