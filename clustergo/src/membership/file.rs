//! Static membership from a JSON or TOML file.
//!
//! JSON: `{"members": [{"logic": "1.1.1", "net": "127.0.0.1:9001", "export": false}]}`
//! or a bare array. TOML: `[[members]]` tables with the same keys. `available`
//! defaults to true, `export` to false. [`FileMembership::reload`] re-reads the file
//! and publishes the difference.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::Mutex;
use serde::Deserialize;
use tokio::sync::mpsc;

use super::{BoxFuture, Member, MemberSet, Membership, MembershipChange, MembershipError};

/// Membership read from a file.
#[derive(Debug, Clone)]
pub struct FileMembership {
    path: PathBuf,
    shared: Arc<Mutex<Shared>>,
}

#[derive(Debug, Default)]
struct Shared {
    set: MemberSet,
    subscribers: Vec<mpsc::UnboundedSender<MembershipChange>>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum FileFormat {
    Table { members: Vec<Member> },
    List(Vec<Member>),
}

impl FileMembership {
    /// Membership from `path` (`.toml` is read as TOML, anything else as JSON).
    /// The file is read on [`Membership::subscribe`] and on [`reload`](Self::reload).
    pub fn new(path: impl AsRef<Path>) -> Self {
        Self {
            path: path.as_ref().to_owned(),
            shared: Arc::default(),
        }
    }

    /// Parses member-file text; `toml` selects the format.
    pub fn parse(text: &str, toml: bool) -> Result<Vec<Member>, MembershipError> {
        let parsed: FileFormat = if toml {
            toml::from_str(text).map_err(|e| MembershipError::Invalid(e.to_string()))?
        } else {
            serde_json::from_str(text).map_err(|e| MembershipError::Invalid(e.to_string()))?
        };
        Ok(match parsed {
            FileFormat::Table { members } | FileFormat::List(members) => members,
        })
    }

    fn read(&self) -> Result<Vec<Member>, MembershipError> {
        let text = std::fs::read_to_string(&self.path).map_err(|e| {
            MembershipError::Invalid(format!("cannot read {}: {e}", self.path.display()))
        })?;
        let toml = self.path.extension().is_some_and(|e| e == "toml");
        Self::parse(&text, toml)
            .map_err(|e| MembershipError::Invalid(format!("{}: {e}", self.path.display())))
    }

    /// Re-reads the file and publishes what changed. A file that no longer parses is
    /// an error and changes nothing.
    pub fn reload(&self) -> Result<MembershipChange, MembershipError> {
        let members = self.read()?;
        let mut shared = self.shared.lock();
        let change = shared.set.apply_snapshot(members);
        if !change.is_empty() {
            shared
                .subscribers
                .retain(|tx| tx.send(change.clone()).is_ok());
        }
        Ok(change)
    }
}

impl Membership for FileMembership {
    fn subscribe(
        &self,
    ) -> BoxFuture<'_, Result<mpsc::UnboundedReceiver<MembershipChange>, MembershipError>> {
        Box::pin(async move {
            let members = self.read()?;
            let (tx, rx) = mpsc::unbounded_channel();
            let mut shared = self.shared.lock();
            shared.set.apply_snapshot(members);
            let _ = tx.send(shared.set.as_initial_change());
            shared.subscribers.push(tx);
            Ok(rx)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_json_and_toml() {
        let json = r#"{"members":[{"logic":"1.1.1","net":"127.0.0.1:9001"},
                                  {"logic":"1.255.1","net":"127.0.0.1:9002","export":true,"available":false}]}"#;
        let a = FileMembership::parse(json, false).unwrap();
        assert_eq!(a.len(), 2);
        assert!(a[1].export && !a[1].available);
        let bare = r#"[{"logic":"1.1.1","net":"127.0.0.1:9001"}]"#;
        assert_eq!(FileMembership::parse(bare, false).unwrap().len(), 1);
        let toml = "[[members]]\nlogic = \"1.1.1\"\nnet = \"127.0.0.1:9001\"\nexport = true\n";
        let t = FileMembership::parse(toml, true).unwrap();
        assert!(t[0].export);
    }

    #[test]
    fn bad_files_are_clear_errors() {
        for (text, toml) in [
            (r#"[{"logic":"0.1.1","net":"127.0.0.1:1"}]"#, false),
            (r#"[{"logic":"1.1.1","net":"nowhere"}]"#, false),
            ("{", false),
            ("members = 3", true),
        ] {
            let err = FileMembership::parse(text, toml).unwrap_err();
            assert!(matches!(err, MembershipError::Invalid(_)), "{text}: {err}");
        }
    }

    #[tokio::test]
    async fn reload_publishes_diff() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("members.json");
        std::fs::write(&path, r#"[{"logic":"1.1.1","net":"127.0.0.1:9001"}]"#).unwrap();
        let fm = FileMembership::new(&path);
        let mut rx = fm.subscribe().await.unwrap();
        assert_eq!(rx.recv().await.unwrap().added.len(), 1);
        std::fs::write(&path, r#"[{"logic":"1.1.2","net":"127.0.0.1:9002"}]"#).unwrap();
        fm.reload().unwrap();
        let change = rx.recv().await.unwrap();
        assert_eq!(change.added.len(), 1);
        assert_eq!(change.removed.len(), 1);
        std::fs::write(&path, "not json").unwrap();
        assert!(fm.reload().is_err());
        assert!(
            FileMembership::new(dir.path().join("missing.json"))
                .subscribe()
                .await
                .is_err()
        );
    }
}
