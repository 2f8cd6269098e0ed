//! One actor per configured issuer. It owns the issuer's connector, bounds how many calls run
//! at once, and isolates failures: a connector that panics fails only the call in hand and is
//! replaced by a freshly built one. The actor itself keeps running, because stopping it would
//! make its supervisor drop every other call still in flight on this issuer; should it stop
//! for another reason, the supervisor restarts it with a fresh connector too.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use actix::prelude::*;
use futures_util::FutureExt as _;
use tokio::sync::Semaphore;

use crate::issuer::{
    ConnectorContext, ConnectorError, ConnectorTypes, IssuanceRequest, IssuerConnector,
    OrderOutcome, RenewalWindow,
};

/// What the actor is built from (kept to rebuild the connector on restart).
#[derive(Debug, Clone)]
pub struct IssuerSpec {
    /// `iss-…`.
    pub id: String,
    /// Connector type.
    pub issuer_type: String,
    /// Connector config.
    pub config: serde_json::Value,
}

/// The actor.
pub struct IssuerActor {
    spec: IssuerSpec,
    types: ConnectorTypes,
    ctx: ConnectorContext,
    connector: Result<Arc<dyn IssuerConnector>, ConnectorError>,
    permits: Arc<Semaphore>,
    restarts: u64,
}

/// Calls allowed at once per issuer.
pub const DEFAULT_CONCURRENCY: usize = 8;

impl IssuerActor {
    /// Builds the actor and its connector (a config error is kept and reported per call).
    pub fn new(spec: IssuerSpec, types: ConnectorTypes, ctx: ConnectorContext) -> Self {
        let connector = types.build(&spec.issuer_type, &spec.config, &ctx);
        if let Err(e) = &connector {
            tracing::warn!(issuer_id = %spec.id, error = %e, "issuer connector could not be built");
        }
        Self {
            spec,
            types,
            ctx,
            connector,
            permits: Arc::new(Semaphore::new(DEFAULT_CONCURRENCY)),
            restarts: 0,
        }
    }
}

impl IssuerActor {
    /// Whether the connector was built (a config or plugin error is kept per call otherwise).
    pub fn has_connector(&self) -> bool {
        self.connector.is_ok()
    }
}

impl Actor for IssuerActor {
    type Context = Context<Self>;
}

impl IssuerActor {
    /// Replaces the connector with a freshly built one (after a crash or a restart).
    fn rebuild_connector(&mut self) {
        self.restarts += 1;
        tracing::warn!(issuer_id = %self.spec.id, restarts = self.restarts, "restarting issuer connector");
        self.connector = self
            .types
            .build(&self.spec.issuer_type, &self.spec.config, &self.ctx);
    }
}

impl Supervised for IssuerActor {
    fn restarting(&mut self, _ctx: &mut Context<Self>) {
        self.rebuild_connector();
    }
}

/// Which connector call to make.
#[derive(Debug, Clone)]
pub enum IssuerCall {
    /// New certificate.
    Issue(IssuanceRequest),
    /// Renewal.
    Renew(IssuanceRequest),
    /// Poll a pending asynchronous order (never orders again).
    OrderStatus(String),
}

/// Runs a connector call.
#[derive(Message)]
#[rtype(result = "Result<OrderOutcome, ConnectorError>")]
pub struct Call(pub IssuerCall);

impl Handler<Call> for IssuerActor {
    type Result = ResponseActFuture<Self, Result<OrderOutcome, ConnectorError>>;

    fn handle(&mut self, msg: Call, _ctx: &mut Context<Self>) -> Self::Result {
        let connector = match &self.connector {
            Ok(c) => c.clone(),
            Err(e) => {
                let e = e.clone();
                return Box::pin(async move { Err(e) }.into_actor(self));
            }
        };
        let used = connector.clone();
        let permits = self.permits.clone();
        let issuer_id = self.spec.id.clone();
        let fut = async move {
            let _permit = permits
                .acquire_owned()
                .await
                .map_err(|_| ConnectorError::Unavailable("issuer shutting down".into()))?;
            let call = async {
                match &msg.0 {
                    IssuerCall::Issue(req) => connector.place_order(req).await,
                    IssuerCall::Renew(req) => connector.place_renewal_order(req).await,
                    IssuerCall::OrderStatus(order_id) => connector
                        .order_status(order_id)
                        .await
                        .map(|issued| match issued {
                            Some(result) => OrderOutcome::Issued(result),
                            None => OrderOutcome::Pending(order_id.clone()),
                        }),
                }
            };
            match AssertUnwindSafe(call).catch_unwind().await {
                Ok(result) => result,
                Err(panic) => {
                    let text = panic
                        .downcast_ref::<&str>()
                        .map(|s| (*s).to_owned())
                        .or_else(|| panic.downcast_ref::<String>().cloned())
                        .unwrap_or_else(|| "unknown panic".into());
                    tracing::error!(%issuer_id, panic = %text, "issuer connector panicked");
                    Err(ConnectorError::Crashed(format!(
                        "panic in issuer {issuer_id}: {text}"
                    )))
                }
            }
        };
        Box::pin(fut.into_actor(self).map(move |result, act, _ctx| {
            // Later calls get a new connector; calls in flight keep the one they hold. (Not
            // `ctx.stop()`: the supervisor's restart would drop those calls unanswered.)
            if matches!(result, Err(ConnectorError::Crashed(_)))
                && act.connector.as_ref().is_ok_and(|c| Arc::ptr_eq(c, &used))
            {
                act.rebuild_connector();
            }
            result
        }))
    }
}

/// The issuer's CA chain (PEM).
#[derive(Message)]
#[rtype(result = "Result<String, ConnectorError>")]
pub struct CaChain;

impl Handler<CaChain> for IssuerActor {
    type Result = Result<String, ConnectorError>;
    fn handle(&mut self, _: CaChain, _ctx: &mut Context<Self>) -> Self::Result {
        self.connector.as_ref().map_err(Clone::clone)?.ca_chain()
    }
}

/// How often the actor was restarted after a crash (for tests and metrics).
#[derive(Message)]
#[rtype(result = "u64")]
pub struct Restarts;

impl Handler<Restarts> for IssuerActor {
    type Result = u64;
    fn handle(&mut self, _: Restarts, _ctx: &mut Context<Self>) -> u64 {
        self.restarts
    }
}

/// What the issuer offers for revocation: its capabilities and the CA that signs its CRLs
/// and OCSP responder certificates (see [`IssuerConnector::revocation_ca`]).
#[derive(Message)]
#[rtype(result = "Result<RevocationSupport, ConnectorError>")]
pub struct GetRevocationSupport;

/// Answer to [`GetRevocationSupport`].
#[derive(Clone)]
pub struct RevocationSupport {
    /// CRL/OCSP flags.
    pub capabilities: crate::issuer::Capabilities,
    /// The signing CA, when certctl publishes revocation status for this issuer.
    pub ca: Option<Arc<crate::pki::local_ca::LocalCa>>,
}

impl Handler<GetRevocationSupport> for IssuerActor {
    type Result = Result<RevocationSupport, ConnectorError>;
    fn handle(&mut self, _: GetRevocationSupport, _ctx: &mut Context<Self>) -> Self::Result {
        let connector = self.connector.as_ref().map_err(Clone::clone)?;
        Ok(RevocationSupport {
            capabilities: connector.capabilities(),
            ca: connector.revocation_ca(),
        })
    }
}

/// Tells the CA that a serial is revoked (best-effort; certctl's own record is what counts).
/// Runs under the issuer's concurrency bound; a panicking connector fails only this call.
#[derive(Message)]
#[rtype(result = "Result<(), ConnectorError>")]
pub struct Revoke {
    /// Lower-case hex serial.
    pub serial_hex: String,
    /// RFC 5280 reason name.
    pub reason: String,
}

impl IssuerActor {
    /// Runs one connector call that needs no restart bookkeeping under the issuer's
    /// concurrency bound; a panicking connector fails only this call.
    fn bounded<T, F, Fut>(
        &self,
        what: &'static str,
        call: F,
    ) -> ResponseFuture<Result<T, ConnectorError>>
    where
        T: 'static,
        F: FnOnce(Arc<dyn IssuerConnector>) -> Fut + 'static,
        Fut: Future<Output = Result<T, ConnectorError>> + 'static,
    {
        let connector = self.connector.clone();
        let permits = self.permits.clone();
        Box::pin(async move {
            let connector = connector?;
            let _permit = permits
                .acquire_owned()
                .await
                .map_err(|_| ConnectorError::Unavailable("issuer shutting down".into()))?;
            AssertUnwindSafe(call(connector))
                .catch_unwind()
                .await
                .unwrap_or_else(|_| Err(ConnectorError::Crashed(format!("panic in {what}"))))
        })
    }
}

impl Handler<Revoke> for IssuerActor {
    type Result = ResponseFuture<Result<(), ConnectorError>>;
    fn handle(&mut self, msg: Revoke, _ctx: &mut Context<Self>) -> Self::Result {
        self.bounded("revoke", move |connector| async move {
            connector.revoke(&msg.serial_hex, &msg.reason).await
        })
    }
}

/// Asks the CA for its suggested renewal window of a certificate (leaf DER); see
/// [`IssuerConnector::renewal_window`]. Runs under the issuer's concurrency bound; a
/// panicking connector fails only this call.
#[derive(Message)]
#[rtype(result = "Result<Option<RenewalWindow>, ConnectorError>")]
pub struct GetRenewalWindow {
    /// Leaf certificate, DER.
    pub cert_der: Vec<u8>,
}

impl Handler<GetRenewalWindow> for IssuerActor {
    type Result = ResponseFuture<Result<Option<RenewalWindow>, ConnectorError>>;
    fn handle(&mut self, msg: GetRenewalWindow, _ctx: &mut Context<Self>) -> Self::Result {
        self.bounded("renewal_window", move |connector| async move {
            connector.renewal_window(&msg.cert_der).await
        })
    }
}
