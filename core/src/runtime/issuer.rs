//! Calling issuer plugins (world `issuer`).

use std::fmt;
use std::future::Future;
use std::sync::Arc;

use serde::Serialize;

use super::bindings::{issuer, types};
use super::error::RuntimeError;
use super::host::HostState;
use super::{Inner, LoadedPlugin, LoadedWorld};

/// A certificate order.
#[derive(Debug, Clone, Default)]
pub struct IssueRequest {
    /// PKCS#10 request, PEM.
    pub csr_pem: String,
    /// Subject common name.
    pub common_name: String,
    /// DNS names, IP addresses, e-mail addresses.
    pub sans: Vec<String>,
    /// Requested lifetime in days.
    pub validity_days: Option<u32>,
    /// The issuer's configuration object, JSON.
    pub config_json: String,
}

/// A certificate an issuer produced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IssuedCertificate {
    /// The leaf, PEM.
    pub certificate_pem: String,
    /// Intermediates, PEM.
    pub chain_pem: String,
    /// Serial, lower-case hex.
    pub serial: String,
}

/// The state of an order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Order {
    /// Issued.
    Issued(IssuedCertificate),
    /// Pending; poll with this order id.
    Pending {
        /// The issuer's order id.
        order_id: String,
    },
}

/// A revocation.
#[derive(Debug, Clone, Default)]
pub struct RevokeRequest {
    /// Serial, lower-case hex.
    pub serial: String,
    /// RFC 5280 reason code.
    pub reason: u8,
    /// The issuer's configuration object, JSON.
    pub config_json: String,
}

/// A loaded issuer plugin. Cheap to clone; each call gets a fresh instance.
#[derive(Clone)]
pub struct IssuerPlugin {
    runtime: Arc<Inner>,
    plugin: Arc<LoadedPlugin>,
}

impl fmt::Debug for IssuerPlugin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IssuerPlugin")
            .field("id", &self.plugin.id)
            .finish()
    }
}

fn order(order: types::Order) -> Order {
    match order {
        types::Order::Issued(c) => Order::Issued(IssuedCertificate {
            certificate_pem: c.certificate_pem,
            chain_pem: c.chain_pem,
            serial: c.serial,
        }),
        types::Order::Pending(order_id) => Order::Pending { order_id },
    }
}

impl IssuerPlugin {
    pub(crate) fn new(runtime: Arc<Inner>, plugin: Arc<LoadedPlugin>) -> Self {
        Self { runtime, plugin }
    }

    /// The plugin id.
    pub fn id(&self) -> &str {
        &self.plugin.id
    }

    fn pre(&self) -> issuer::IssuerPre<HostState> {
        match &self.plugin.world {
            LoadedWorld::Issuer(pre) => pre.clone(),
            _ => unreachable!("an IssuerPlugin always wraps an issuer component"),
        }
    }

    /// Checks an issuer configuration (WIT `validate-config`).
    pub fn validate_config(
        &self,
        config_json: impl Into<String>,
    ) -> impl Future<Output = Result<(), RuntimeError>> + Send + 'static {
        let pre = self.pre();
        let config_json = config_json.into();
        self.runtime.call(self.plugin.clone(), move |store| {
            Box::pin(async move {
                let world = pre.instantiate_async(&mut *store).await?;
                world.call_validate_config(&mut *store, &config_json).await
            })
        })
    }

    /// Submits an order (WIT `issue`).
    pub fn issue(
        &self,
        request: IssueRequest,
    ) -> impl Future<Output = Result<Order, RuntimeError>> + Send + 'static {
        let pre = self.pre();
        let request = types::IssueRequest {
            csr_pem: request.csr_pem,
            common_name: request.common_name,
            sans: request.sans,
            validity_days: request.validity_days,
            config_json: request.config_json,
        };
        self.runtime.call(self.plugin.clone(), move |store| {
            Box::pin(async move {
                let world = pre.instantiate_async(&mut *store).await?;
                Ok(world.call_issue(&mut *store, &request).await?.map(order))
            })
        })
    }

    /// Polls a pending order (WIT `order-status`).
    pub fn order_status(
        &self,
        order_id: impl Into<String>,
        config_json: impl Into<String>,
    ) -> impl Future<Output = Result<Order, RuntimeError>> + Send + 'static {
        let pre = self.pre();
        let (order_id, config_json) = (order_id.into(), config_json.into());
        self.runtime.call(self.plugin.clone(), move |store| {
            Box::pin(async move {
                let world = pre.instantiate_async(&mut *store).await?;
                Ok(world
                    .call_order_status(&mut *store, &order_id, &config_json)
                    .await?
                    .map(order))
            })
        })
    }

    /// Revokes a certificate (WIT `revoke`).
    pub fn revoke(
        &self,
        request: RevokeRequest,
    ) -> impl Future<Output = Result<(), RuntimeError>> + Send + 'static {
        let pre = self.pre();
        let request = types::RevokeRequest {
            serial: request.serial,
            reason: request.reason,
            config_json: request.config_json,
        };
        self.runtime.call(self.plugin.clone(), move |store| {
            Box::pin(async move {
                let world = pre.instantiate_async(&mut *store).await?;
                world.call_revoke(&mut *store, &request).await
            })
        })
    }
}
