//! The issuer and notifier worlds load and answer.

use certctl_core::runtime::{Grants, IssueRequest, Order, RuntimeError};

use crate::support::{load, plugin_dir, runtime};

#[tokio::test]
async fn an_issuer_component_loads_and_runs() {
    let plugins = plugin_dir(&["issuer"]);
    let set = load(&runtime(), plugins.path(), &Grants::default());
    let issuer = set.issuer("issuer").expect("issuer");
    issuer.validate_config("{}").await.expect("valid");
    let order = issuer
        .issue(IssueRequest {
            common_name: "example.com".into(),
            config_json: "{}".into(),
            ..IssueRequest::default()
        })
        .await
        .expect("issue");
    assert_eq!(
        order,
        Order::Pending {
            order_id: "order-example.com".into()
        }
    );
    let Order::Issued(cert) = issuer.order_status("order-1", "{}").await.expect("status") else {
        panic!("expected a certificate");
    };
    assert!(cert.certificate_pem.contains("order-1"));
    let err = issuer.validate_config("[]").await.unwrap_err();
    assert!(matches!(err, RuntimeError::Connector { .. }), "{err:?}");
}

#[tokio::test]
async fn a_notifier_component_loads_and_validates_config() {
    let plugins = plugin_dir(&["hostile-notifier"]);
    let set = load(&runtime(), plugins.path(), &Grants::default());
    set.notifier("hostile-notifier")
        .expect("notifier")
        .validate_config("{}")
        .await
        .expect("valid");
}
