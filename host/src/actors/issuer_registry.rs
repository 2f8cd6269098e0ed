//! Maps issuer id → issuer actor. Rebuilt from the database at start, whenever issuers
//! change through the API and after a plugin reload, so configuration changes apply
//! without a restart: a changed issuer gets a new actor (in-flight calls finish on the old
//! one), and an issuer whose connector could not be built (say its plugin was not loaded
//! yet) gets another try.

use std::collections::HashMap;
use std::sync::Arc;

use actix::prelude::*;
use sqlx::Row as _;

use super::issuer_actor::{IssuerActor, IssuerSpec};
use crate::issuer::{ConnectorContext, ConnectorTypes};
use crate::secrets::{ConfigOwner, ConfigSecrets};
use crate::store::{Store, StoreError};

/// The registry actor.
pub struct IssuerRegistry {
    store: Store,
    types: ConnectorTypes,
    ctx: ConnectorContext,
    secrets: Arc<ConfigSecrets>,
    actors: HashMap<String, Running>,
}

/// A started issuer actor and what it was built from.
struct Running {
    /// Type and config it was built from.
    fingerprint: String,
    /// Whether its connector was built (a failed one is retried at the next rebuild).
    built: bool,
    addr: Addr<IssuerActor>,
}

impl IssuerRegistry {
    /// An empty registry; send [`Rebuild`] to load issuers. Configs are read as stored
    /// in clear until [`IssuerRegistry::with_secrets`] gives it the server's key.
    pub fn new(store: Store, types: ConnectorTypes, ctx: ConnectorContext) -> Self {
        Self {
            store,
            types,
            ctx,
            secrets: Arc::new(ConfigSecrets::clear()),
            actors: HashMap::new(),
        }
    }

    /// Opens encrypted config secrets with `secrets` before connectors are built.
    pub fn with_secrets(mut self, secrets: Arc<ConfigSecrets>) -> Self {
        self.secrets = secrets;
        self
    }
}

impl Actor for IssuerRegistry {
    type Context = Context<Self>;
}

async fn load(store: &Store, secrets: &ConfigSecrets) -> Result<Vec<IssuerSpec>, StoreError> {
    let rows = sqlx::query("SELECT id, type, config, enabled FROM issuers")
        .fetch_all(store.pool())
        .await?;
    let mut out = Vec::new();
    for row in rows {
        let enabled = match row.try_get::<bool, _>(3) {
            Ok(b) => b,
            Err(_) => row.try_get::<i64, _>(3)? != 0,
        };
        if !enabled {
            continue;
        }
        let config: String = row.try_get(2)?;
        let id: String = row.try_get(0)?;
        let stored: serde_json::Value = serde_json::from_str(&config)
            .map_err(|e| StoreError::Corrupt(format!("issuer config: {e}")))?;
        let owner = ConfigOwner {
            resource: crate::domain::issuer::SPEC.singular,
            id: &id,
        };
        let config = match secrets.reveal_value(owner, &stored) {
            Ok(config) => config,
            Err(e) => {
                // One unreadable issuer must not stop the others; its jobs fail with NoIssuer.
                tracing::error!(issuer_id = %id, error = %e, "issuer config secrets do not decrypt; issuer not started");
                continue;
            }
        };
        out.push(IssuerSpec {
            id,
            issuer_type: row.try_get(1)?,
            config,
        });
    }
    Ok(out)
}

/// Reloads issuers from the database; answers how many are active.
#[derive(Message)]
#[rtype(result = "Result<usize, StoreError>")]
pub struct Rebuild;

impl Handler<Rebuild> for IssuerRegistry {
    type Result = ResponseActFuture<Self, Result<usize, StoreError>>;

    fn handle(&mut self, _: Rebuild, _ctx: &mut Context<Self>) -> Self::Result {
        let (store, secrets) = (self.store.clone(), self.secrets.clone());
        Box::pin(async move { load(&store, &secrets).await }.into_actor(self).map(|loaded, act, _ctx| {
            let specs = loaded?;
            let mut next = HashMap::new();
            for spec in specs {
                let fingerprint = format!("{}|{}", spec.issuer_type, spec.config);
                match act.actors.remove(&spec.id) {
                    Some(running)
                        if running.fingerprint == fingerprint
                            && running.built
                            && running.addr.connected() =>
                    {
                        next.insert(spec.id.clone(), running);
                    }
                    _ => {
                        tracing::info!(issuer_id = %spec.id, issuer_type = %spec.issuer_type, "starting issuer actor");
                        let id = spec.id.clone();
                        let actor = IssuerActor::new(spec, act.types.clone(), act.ctx.clone());
                        let built = actor.has_connector();
                        let addr = Supervisor::start(move |_| actor);
                        next.insert(id, Running { fingerprint, built, addr });
                    }
                }
            }
            for id in act.actors.keys() {
                tracing::info!(issuer_id = %id, "issuer removed or disabled; its actor stops");
            }
            act.actors = next;
            Ok(act.actors.len())
        }))
    }
}

/// The actor of an issuer, if it is configured and enabled.
#[derive(Message)]
#[rtype(result = "Option<Addr<IssuerActor>>")]
pub struct Lookup(pub String);

impl Handler<Lookup> for IssuerRegistry {
    type Result = Option<Addr<IssuerActor>>;
    fn handle(&mut self, msg: Lookup, _ctx: &mut Context<Self>) -> Self::Result {
        self.actors.get(&msg.0).map(|r| r.addr.clone())
    }
}
