//! Operator approval of jobs whose profile requires it: recording the approval and
//! asking whether a job has one. When the processor asks lives in `process`.

use super::{Pipeline, PipelineError};
use crate::domain::audit::Actor;
use crate::domain::job_state::JobEvent;
use crate::store::StoreError;
use crate::store::jobs::{self, Changes, Job};

impl Pipeline {
    pub(super) async fn approved(&self, job_id: &str) -> Result<bool, StoreError> {
        let mut sql = crate::store::sql::Sql::new(
            self.store.dialect(),
            "SELECT approved_by FROM jobs WHERE id = ",
        );
        sql.bind_text(job_id);
        let row = sql.query().fetch_optional(self.store.pool()).await?;
        Ok(match row {
            Some(r) => sqlx::Row::try_get::<Option<String>, _>(&r, 0)?.is_some(),
            None => false,
        })
    }

    /// Records an operator's approval so the processor does not ask again.
    pub async fn approve(
        &self,
        job_id: &str,
        actor: &Actor,
        reason: Option<String>,
    ) -> Result<Job, PipelineError> {
        let mut tx = self.store.begin_write().await.map_err(StoreError::from)?;
        let job = jobs::transition_in(
            &mut tx,
            &self.store,
            job_id,
            JobEvent::Approve,
            Changes {
                reason,
                ..Changes::default()
            },
            &self.now_text(),
            actor,
        )
        .await?;
        let mut sql =
            crate::store::sql::Sql::new(self.store.dialect(), "UPDATE jobs SET approved_by = ");
        sql.bind_text(actor.name.clone())
            .push(" WHERE id = ")
            .bind_text(job_id);
        sql.query()
            .execute(&mut *tx)
            .await
            .map_err(StoreError::from)?;
        tx.commit().await.map_err(StoreError::from)?;
        self.poke_processor();
        Ok(job)
    }
}
