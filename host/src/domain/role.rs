//! Roles of API keys and what each may do: the pure half of access control. The routes
//! declare what they require (`api::access`); this module decides whether a caller's role
//! meets it, so the decision is written once and unit-tested without HTTP.

use std::fmt;
use std::str::FromStr;

/// The role an API key carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// Read-only access to everything except secrets.
    Viewer,
    /// Runs the certificate lifecycle (certificates, jobs, targets, issuers, policies,
    /// profiles, notifications), but manages no keys, teams, owners, agents or plugins.
    Operator,
    /// Everything, including keys and plugins.
    Admin,
    /// An agent: only its own heartbeat, work, session, CSRs and job reports.
    Agent,
}

/// Every role, in the order the documentation lists them.
pub const ROLES: &[Role] = &[Role::Admin, Role::Operator, Role::Viewer, Role::Agent];

impl Role {
    /// Stored and served spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Admin => "admin",
            Role::Agent => "agent",
        }
    }

    /// Whether a caller with this role may call a route that requires `required`.
    /// The user roles form a ladder (viewer < operator < admin); the agent role is off the
    /// ladder: it satisfies only agent routes, and those also admit an admin (who may act
    /// for any agent, e.g. to unstick one).
    pub fn satisfies(self, required: Role) -> bool {
        match (self, required) {
            (Role::Agent, Role::Agent) => true,
            (Role::Agent, _) | (_, Role::Agent) => self == Role::Admin,
            (have, need) => have.rank() >= need.rank(),
        }
    }

    fn rank(self) -> u8 {
        match self {
            Role::Viewer => 1,
            Role::Operator => 2,
            Role::Admin => 3,
            Role::Agent => 0,
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A role name that is not one of [`ROLES`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown role \"{0}\" (allowed: admin, operator, viewer, agent)")]
pub struct UnknownRole(pub String);

impl FromStr for Role {
    type Err = UnknownRole;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "viewer" => Ok(Role::Viewer),
            "operator" => Ok(Role::Operator),
            "admin" => Ok(Role::Admin),
            "agent" => Ok(Role::Agent),
            _ => Err(UnknownRole(s.to_owned())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ladder_and_agent() {
        use Role::*;
        let table = [
            // (have, need, allowed)
            (Admin, Admin, true),
            (Admin, Operator, true),
            (Admin, Viewer, true),
            (Admin, Agent, true),
            (Operator, Admin, false),
            (Operator, Operator, true),
            (Operator, Viewer, true),
            (Operator, Agent, false),
            (Viewer, Operator, false),
            (Viewer, Viewer, true),
            (Viewer, Agent, false),
            (Agent, Viewer, false),
            (Agent, Operator, false),
            (Agent, Admin, false),
            (Agent, Agent, true),
        ];
        for (have, need, allowed) in table {
            assert_eq!(have.satisfies(need), allowed, "{have} for {need}");
        }
    }

    #[test]
    fn parses_case_insensitively_and_refuses_others() {
        assert_eq!("Operator".parse::<Role>(), Ok(Role::Operator));
        assert!("root".parse::<Role>().is_err());
        for r in ROLES {
            assert_eq!(r.as_str().parse::<Role>().as_ref(), Ok(r));
        }
    }
}
