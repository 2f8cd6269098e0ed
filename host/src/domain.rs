//! Entities, statuses and rules — pure types and functions, no I/O.
//!
//! Each plain resource is described once by a [`resource::ResourceSpec`] in its own module;
//! storage, handlers and the OpenAPI document are derived from those specs.

pub mod agent;
pub mod api_call;
pub mod audit;
pub mod certificate;
pub mod config_schema;
pub mod issuer;
pub mod job;
pub mod job_state;
pub mod key_rules;
pub mod listing;
pub mod notification;
pub mod order_poll;
pub mod owner;
pub mod policy;
pub mod policy_violation;
pub mod profile;
pub mod renewal;
pub mod renewal_policy;
pub mod resource;
pub mod revocation;
pub mod role;
pub mod target;
pub mod team;

use resource::ResourceSpec;

/// Every resource served by the generic REST handlers, in dependency order.
pub static RESOURCES: &[&ResourceSpec] = &[
    &team::SPEC,
    &owner::SPEC,
    &issuer::SPEC,
    &renewal_policy::SPEC,
    &profile::SPEC,
    &agent::SPEC,
    &target::SPEC,
    &certificate::SPEC,
    &job::SPEC,
    &policy::SPEC,
    &policy_violation::SPEC,
    &notification::SPEC,
    &api_call::SPEC,
    &audit::SPEC,
];

/// Finds a resource by its URL name (the form `references` uses).
pub fn resource(path: &str) -> Option<&'static ResourceSpec> {
    RESOURCES.iter().copied().find(|r| r.path == path)
}
