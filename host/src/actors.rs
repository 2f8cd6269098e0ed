//! actix actors: one per scheduler loop, one per configured issuer plus their registry.
//!
//! The database is the source of truth; actor state is a cache. Loops hold no job state
//! between ticks, so a restart loses nothing.

pub mod agent_health;
pub mod agent_hub;
pub mod agent_session;
pub mod api_call_retention;
pub mod crl_generation;
pub mod issuer_actor;
pub mod issuer_registry;
pub mod job_processor;
pub mod job_retry;
pub mod job_timeout;
pub mod notification_processor;
pub mod notification_retry;
pub mod renewal_check;
pub mod request_counts;
pub mod scheduler;
pub mod short_lived_expiry;
