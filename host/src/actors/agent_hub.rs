//! The agent hub: which agents have a live session right now. The pipeline tells the hub
//! when an agent has new work; the hub pushes a nudge down that agent's session(s), and the
//! agent fetches the work over HTTP at once instead of waiting for its next poll.

use std::collections::HashMap;

use actix::prelude::*;

use super::agent_session::{AgentSession, CredentialsRevoked, KeyRevoked, Nudge};

/// The hub actor.
#[derive(Debug, Default)]
pub struct AgentHub {
    sessions: HashMap<String, Vec<Addr<AgentSession>>>,
}

impl Actor for AgentHub {
    type Context = Context<Self>;
}

/// A session opened.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Join {
    /// Agent.
    pub agent_id: String,
    /// Its session actor.
    pub session: Addr<AgentSession>,
}

impl Handler<Join> for AgentHub {
    type Result = ();
    fn handle(&mut self, msg: Join, _: &mut Context<Self>) {
        let list = self.sessions.entry(msg.agent_id).or_default();
        list.retain(Addr::connected);
        list.push(msg.session);
    }
}

/// A session closed.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Leave {
    /// Agent.
    pub agent_id: String,
    /// Its session actor.
    pub session: Addr<AgentSession>,
}

impl Handler<Leave> for AgentHub {
    type Result = ();
    fn handle(&mut self, msg: Leave, _: &mut Context<Self>) {
        if let Some(list) = self.sessions.get_mut(&msg.agent_id) {
            list.retain(|a| a != &msg.session && a.connected());
            if list.is_empty() {
                self.sessions.remove(&msg.agent_id);
            }
        }
    }
}

/// The agent has actionable work.
#[derive(Message)]
#[rtype(result = "()")]
pub struct WorkFor(pub String);

impl Handler<WorkFor> for AgentHub {
    type Result = ();
    fn handle(&mut self, msg: WorkFor, _: &mut Context<Self>) {
        if let Some(list) = self.sessions.get(&msg.0) {
            for s in list {
                s.do_send(Nudge);
            }
        }
    }
}

/// The agent's keys were revoked or the agent retired: close its sessions now.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Disconnect {
    /// Agent.
    pub agent_id: String,
    /// Sent to the agent in the close frame.
    pub reason: &'static str,
}

impl Handler<Disconnect> for AgentHub {
    type Result = ();
    fn handle(&mut self, msg: Disconnect, _: &mut Context<Self>) {
        if let Some(list) = self.sessions.remove(&msg.agent_id) {
            for s in list {
                s.do_send(CredentialsRevoked(msg.reason));
            }
        }
    }
}

/// A user key was revoked or its secret replaced: close every session opened with it (an
/// admin may open any agent's session). Agent keys go by [`Disconnect`].
#[derive(Message)]
#[rtype(result = "()")]
pub struct DisconnectKey {
    /// The key (`key-…`).
    pub key_id: String,
    /// Sent to the agent in the close frame.
    pub reason: &'static str,
}

impl Handler<DisconnectKey> for AgentHub {
    type Result = ();
    fn handle(&mut self, msg: DisconnectKey, _: &mut Context<Self>) {
        // Revocations are rare and sessions few; each session knows its own key.
        for s in self.sessions.values().flatten() {
            s.do_send(KeyRevoked {
                key_id: msg.key_id.clone(),
                reason: msg.reason,
            });
        }
    }
}

/// Number of agents with a live session (for tests and metrics).
#[derive(Message)]
#[rtype(result = "usize")]
pub struct Connected;

impl Handler<Connected> for AgentHub {
    type Result = usize;
    fn handle(&mut self, _: Connected, _: &mut Context<Self>) -> usize {
        self.sessions
            .values()
            .filter(|l| l.iter().any(Addr::connected))
            .count()
    }
}
