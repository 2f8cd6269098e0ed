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
}

impl AgentSession {
    /// A session for `agent_id` over `session`.
    pub fn new(
        agent_id: String,
        session: Session,
        hub: Addr<AgentHub>,
        pipeline: std::sync::Arc<Pipeline>,
    ) -> Self {
        Self {
            agent_id,
            session,
            hub,
            pipeline,
            last_seen: Instant::now(),
        }
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
        actix::spawn(async move {
            let _ = session.close(None).await;
        });
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
