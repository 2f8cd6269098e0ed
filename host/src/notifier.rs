//! The notifier-connector contract. Channels (email, webhook, Slack, …) are served by
//! notifier connectors registered by channel name; a notification for a channel without a
//! notifier stays queued (visible in the API inbox) until one is configured.

use std::collections::HashMap;
use std::sync::Arc;

use futures_util::future::BoxFuture;

use crate::store::notifications::Notification;

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
