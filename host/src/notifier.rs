//! The notifier-connector contract. Channels (email, webhook, Slack, …) are served by
//! notifier connectors registered by channel name; a notification for a channel without a
//! notifier stays queued (visible in the API inbox) until one is configured.
//!
//! [`channels`] reads the channels from the environment, [`wasm`] delivers them through
//! notifier plugins, [`digest`] builds and sends the HTML digest, and
//! [`NotificationService::setup`] wires the three together at start.

pub mod channels;
pub mod digest;
pub mod wasm;

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use actix::Addr;
use futures_util::future::BoxFuture;
use serde_json::{Value, json};

use crate::actors::scheduler::{LoopActor, Poke};
use crate::clock::Clock;
use crate::plugins::PluginRegistry;
use crate::store::Store;
use crate::store::notifications::Notification;
use channels::{Channel, ChannelError, NotificationSettings};
use digest::DigestService;
use wasm::WasmNotifier;

/// Sends notifications on one channel.
pub trait Notifier: Send + Sync + 'static {
    /// Delivers one notification; an error is retried with backoff, then dead-lettered.
    fn send<'a>(&'a self, notification: &'a Notification) -> BoxFuture<'a, Result<(), String>>;
}

/// Notifiers by channel name.
#[derive(Clone, Default)]
pub struct Notifiers {
    by_channel: HashMap<String, Arc<dyn Notifier>>,
}

impl std::fmt::Debug for Notifiers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.by_channel.keys()).finish()
    }
}

impl Notifiers {
    /// Registers the notifier of a channel.
    pub fn register(&mut self, channel: &str, notifier: Arc<dyn Notifier>) {
        self.by_channel.insert(channel.to_owned(), notifier);
    }

    /// The notifier of a channel.
    pub fn get(&self, channel: &str) -> Option<Arc<dyn Notifier>> {
        self.by_channel.get(channel).cloned()
    }
}

/// The configured channels, their notifiers and the digest: what the API and the
/// notification loops share (`web::Data<NotificationService>`).
#[derive(Debug)]
pub struct NotificationService {
    /// Configured channels (configs hold secrets; serve [`Channel::redacted_config`]).
    pub channels: Vec<Channel>,
    /// Notifiers by channel.
    pub notifiers: Notifiers,
    /// The digest.
    pub digest: Arc<DigestService>,
    /// Deliveries in flight at once per processor tick.
    pub concurrency: usize,
    processor: OnceLock<Addr<LoopActor>>,
}

impl NotificationService {
    /// Reads the channels, checks each against its plugin (`validate-config`) and builds
    /// the notifiers; sets the store's routing. Fails on any unusable channel.
    pub async fn setup(
        settings: &NotificationSettings,
        plugins: Arc<PluginRegistry>,
        store: &Store,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, ChannelError> {
        let channels = settings.channels()?;
        let routing = settings.routing(&channels)?;
        channels::validate(&channels, plugins.current().as_deref()).await?;
        let mut notifiers = Notifiers::default();
        let mut email = None;
        for channel in &channels {
            let notifier = Arc::new(WasmNotifier::new(
                plugins.clone(),
                channel.name.clone(),
                &channel.config,
                store.clone(),
                clock.clone(),
            ));
            if channel.name == "email" {
                email = Some(notifier.clone());
            }
            notifiers.register(&channel.name, notifier);
            tracing::info!(channel = %channel.name, hosts = ?channel.hosts, "notification channel configured");
        }
        store.set_notification_routing(routing);
        let digest = Arc::new(DigestService::new(
            store.clone(),
            clock,
            email,
            settings.digest_recipients(),
        ));
        Ok(Self {
            channels,
            notifiers,
            digest,
            concurrency: settings.notification_concurrency.max(1),
            processor: OnceLock::new(),
        })
    }

    /// Remembers the notification processor loop, so a requeue can run it at once.
    pub fn set_processor(&self, addr: Addr<LoopActor>) {
        let _ = self.processor.set(addr);
    }

    /// Runs the notification processor now (no-op before the loops start).
    pub fn poke_processor(&self) {
        if let Some(addr) = self.processor.get() {
            addr.do_send(Poke);
        }
    }

    /// The body of `GET /api/v1/notifiers`: every configured channel, secrets redacted.
    pub fn listing(&self, routing: &crate::store::notifications::Routing) -> Value {
        let data: Vec<Value> = self
            .channels
            .iter()
            .map(|c| {
                let types: Vec<&str> = crate::domain::notification::TYPES
                    .iter()
                    .copied()
                    .filter(|t| routing.resolve(t, &[], "").contains(&c.name))
                    .collect();
                json!({
                    "channel": c.name,
                    "plugin": c.name,
                    "enabled_by": c.enabled_by,
                    "config": c.redacted_config(),
                    "granted_hosts": c.hosts,
                    "types": types,
                })
            })
            .collect();
        json!({
            "total": data.len(),
            "page": 1,
            "per_page": data.len(),
            "data": data,
            "routes": routing.by_type,
            "digest": {"can_send": self.digest.can_send()},
        })
    }
}
