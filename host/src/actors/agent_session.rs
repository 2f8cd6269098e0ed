//! One actor per connected agent: owns the agent-initiated WebSocket, pushes a nudge when the
//! agent has work, pings to detect dead peers, and records every sign of life as a heartbeat.
//! The server never dials out; an agent without a session simply polls.

use std::time::{Duration, Instant};

use actix::prelude::*;
use actix_ws::{AggregatedMessage, Session};
use serde_json::json;

use super::agent_hub::{AgentHub, Join, Leave};
use crate::pipeline::Pipeline;
use crate::store::agents::{self, Heartbeat};
use crate::store::api_keys;

/// Ping interval, and how long a silent peer is tolerated.
const PING_EVERY: Duration = Duration::from_secs(20);
const SILENCE_LIMIT: Duration = Duration::from_secs(60);

/// The session actor.
pub struct AgentSession {
    agent_id: String,
    session: Session,
    hub: Addr<AgentHub>,
    pipeline: std::sync::Arc<Pipeline>,
    last_seen: Instant,
    /// The key the session was opened with: re-checked every ping, so an expired key's
    /// session ends too (revocation closes it at once through the hub).
    key_id: Option<String>,
    /// Why the server is closing the session, sent in the close frame.
    closing: Option<actix_ws::CloseReason>,
}

impl AgentSession {
    /// A session for `agent_id` over `session`.
    pub fn new(
        agent_id: String,
        session: Session,
        hub: Addr<AgentHub>,
        pipeline: std::sync::Arc<Pipeline>,
        key_id: Option<String>,
    ) -> Self {
        Self {
            agent_id,
            session,
            hub,
            pipeline,
            last_seen: Instant::now(),
            key_id,
            closing: None,
        }
    }

    /// Ends the session because its credentials no longer hold (close code 1008).
    fn end_for_policy(&mut self, ctx: &mut Context<Self>, why: &str) {
        tracing::info!(agent_id = %self.agent_id, reason = why, "closing agent session");
        self.closing = Some(actix_ws::CloseReason {
            code: actix_ws::CloseCode::Policy,
            description: Some(why.to_owned()),
        });
        ctx.stop();
    }

    fn recheck_key(&mut self, ctx: &mut Context<Self>) {
        let Some(key_id) = self.key_id.clone() else {
            return;
        };
        let (store, now) = (self.pipeline.store.clone(), self.pipeline.clock.now_text());
        ctx.spawn(
            async move { api_keys::get(&store, &key_id).await }
                .into_actor(self)
                .map(move |key, act, ctx| match key {
                    Ok(Some(k)) if k.revoked_at.is_some() => {
                        act.end_for_policy(ctx, "API key revoked")
                    }
                    Ok(Some(k)) if k.expires_at.as_deref().is_some_and(|e| e <= now.as_str()) => {
                        act.end_for_policy(ctx, "API key expired")
                    }
                    Ok(None) => act.end_for_policy(ctx, "API key no longer exists"),
                    // A database hiccup is no reason to drop a healthy agent.
                    _ => {}
                }),
        );
    }

    fn send_text(&self, ctx: &mut Context<Self>, text: String) {
        let mut session = self.session.clone();
        ctx.spawn(
            async move { session.text(text).await.is_ok() }
                .into_actor(self)
                .map(|ok, _act, ctx| {
                    if !ok {
                        ctx.stop();
                    }
                }),
        );
    }

    fn touch(&mut self, ctx: &mut Context<Self>) {
        self.last_seen = Instant::now();
        let (store, now, id) = (
            self.pipeline.store.clone(),
            self.pipeline.clock.now_text(),
            self.agent_id.clone(),
        );
        ctx.spawn(
            async move {
                if let Err(e) = agents::heartbeat(&store, &id, &Heartbeat::default(), &now).await {
                    tracing::warn!(agent_id = %id, error = %e, "session heartbeat not recorded");
                }
            }
            .into_actor(self),
        );
    }
}

impl Actor for AgentSession {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        tracing::info!(agent_id = %self.agent_id, "agent session opened");
        self.hub.do_send(Join {
            agent_id: self.agent_id.clone(),
            session: ctx.address(),
        });
        self.touch(ctx);
        // Work may have queued while the agent was away.
        self.send_text(ctx, json!({"type": "work"}).to_string());
        ctx.run_interval(PING_EVERY, |act, ctx| {
            act.recheck_key(ctx);
            if act.last_seen.elapsed() > SILENCE_LIMIT {
                tracing::info!(agent_id = %act.agent_id, "agent session silent; closing");
                ctx.stop();
                return;
            }
            let mut session = act.session.clone();
            ctx.spawn(
                async move { session.ping(b"certctl").await.is_ok() }
                    .into_actor(act)
                    .map(|ok, _, ctx| {
                        if !ok {
                            ctx.stop();
                        }
                    }),
            );
        });
    }

    fn stopped(&mut self, ctx: &mut Context<Self>) {
        tracing::info!(agent_id = %self.agent_id, "agent session closed");
        self.hub.do_send(Leave {
            agent_id: self.agent_id.clone(),
            session: ctx.address(),
        });
        let session = self.session.clone();
        let reason = self.closing.take();
        actix::spawn(async move {
            let _ = session.close(reason).await;
        });
    }
}

/// The agent's credentials died (key revoked, agent retired): close the session now.
#[derive(Message)]
#[rtype(result = "()")]
pub struct CredentialsRevoked(pub &'static str);

impl Handler<CredentialsRevoked> for AgentSession {
    type Result = ();
    fn handle(&mut self, msg: CredentialsRevoked, ctx: &mut Context<Self>) {
        self.end_for_policy(ctx, msg.0);
    }
}

/// A key was revoked or rotated: the session closes if it was opened with that key.
#[derive(Message)]
#[rtype(result = "()")]
pub struct KeyRevoked {
    /// The key (`key-…`).
    pub key_id: String,
    /// Sent in the close frame.
    pub reason: &'static str,
}

impl Handler<KeyRevoked> for AgentSession {
    type Result = ();
    fn handle(&mut self, msg: KeyRevoked, ctx: &mut Context<Self>) {
        if self.key_id.as_deref() == Some(msg.key_id.as_str()) {
            self.end_for_policy(ctx, msg.reason);
        }
    }
}

/// Tell the agent to fetch its work now.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Nudge;

impl Handler<Nudge> for AgentSession {
    type Result = ();
    fn handle(&mut self, _: Nudge, ctx: &mut Context<Self>) {
        self.send_text(ctx, json!({"type": "work"}).to_string());
    }
}

impl StreamHandler<Result<AggregatedMessage, actix_ws::ProtocolError>> for AgentSession {
    fn handle(
        &mut self,
        msg: Result<AggregatedMessage, actix_ws::ProtocolError>,
        ctx: &mut Context<Self>,
    ) {
        match msg {
            Ok(AggregatedMessage::Ping(bytes)) => {
                self.touch(ctx);
                let mut session = self.session.clone();
                ctx.spawn(
                    async move { session.pong(&bytes).await.is_ok() }
                        .into_actor(self)
                        .map(|ok, _, ctx| {
                            if !ok {
                                ctx.stop();
                            }
                        }),
                );
            }
            Ok(AggregatedMessage::Pong(_))
            | Ok(AggregatedMessage::Text(_))
            | Ok(AggregatedMessage::Binary(_)) => self.touch(ctx),
            Ok(AggregatedMessage::Close(_)) => ctx.stop(),
            Err(e) => {
                tracing::warn!(agent_id = %self.agent_id, error = %e, "agent session protocol error");
                ctx.stop();
            }
        }
    }

    fn finished(&mut self, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}
