//! The agent's persisted identity and memory of finished work, kept beside its keys (0600).
//!
//! Remembering finished deployment jobs makes redelivery harmless: a job the server offers
//! again (its completion report was lost) is reported, not deployed a second time.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::keystore::write_private;

/// What survives restarts.
#[derive(Debug, Default, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct State {
    /// Agent id from registration.
    pub agent_id: Option<String>,
    /// API key from registration.
    pub api_key: Option<String>,
    /// Deployment jobs this agent has carried out (id → done).
    #[serde(default)]
    pub deployed_jobs: BTreeSet<String>,
}

/// The state file.
#[derive(Debug, Clone)]
pub struct StateFile {
    path: PathBuf,
}

impl StateFile {
    /// `<key dir>/agent-state.json`.
    pub fn in_dir(dir: &Path) -> Self {
        Self {
            path: dir.join("agent-state.json"),
        }
    }

    /// Loads (empty when missing).
    pub fn load(&self) -> std::io::Result<State> {
        match std::fs::read(&self.path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("{}: {e}", self.path.display()),
                )
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(State::default()),
            Err(e) => Err(e),
        }
    }

    /// Saves atomically with mode 0600 (it holds the API key).
    pub fn save(&self, state: &State) -> std::io::Result<()> {
        let bytes =
            serde_json::to_vec_pretty(state).map_err(|e| std::io::Error::other(e.to_string()))?;
        write_private(&self.path, &bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let f = StateFile::in_dir(dir.path());
        assert_eq!(f.load().unwrap(), State::default());
        let mut s = State {
            agent_id: Some("ag-1".into()),
            api_key: Some("k".into()),
            ..State::default()
        };
        s.deployed_jobs.insert("job-1".into());
        f.save(&s).unwrap();
        assert_eq!(f.load().unwrap(), s);
    }
}
