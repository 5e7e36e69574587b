//! Headless Chromium for the browser tests: finding it, starting it in its own
//! process group, and killing that whole group when the test ends.
#![allow(dead_code, unreachable_pub, missing_docs)]

use std::path::{Path, PathBuf};
use std::process::Stdio;

/// Finds the browser, failing loudly when it is missing (`CLUSTERGO_CHROMIUM`
/// names another binary).
pub fn chromium_path() -> PathBuf {
    let name = std::env::var("CLUSTERGO_CHROMIUM").unwrap_or_else(|_| "chromium".to_owned());
    let candidate = PathBuf::from(&name);
    if candidate.is_absolute() && candidate.is_file() {
        return candidate;
    }
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(&name))
            .find(|p| p.is_file())
    });
    found.unwrap_or_else(|| {
        panic!(
            "`{name}` not found on PATH: this test needs a real browser. \
             Install it with `apt-get install -y chromium` (or set CLUSTERGO_CHROMIUM)."
        )
    })
}

/// Kills the browser's whole process group (renderer, GPU and zygote processes too).
pub struct KillGroup(pub Option<u32>);

impl Drop for KillGroup {
    fn drop(&mut self) {
        if let Some(pgid) = self.0 {
            let _ = std::process::Command::new("kill")
                .args(["-KILL", "--", &format!("-{pgid}")])
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// A headless Chromium command with a fresh profile under `profile` and the
/// switches that keep it quiet and offline; the caller adds its own and the URL.
pub fn command(profile: &Path) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(chromium_path());
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--disable-background-networking",
        "--disable-component-update",
        "--no-first-run",
        "--disable-sync",
        "--disable-dev-shm-usage",
    ])
    .arg(format!(
        "--user-data-dir={}",
        profile.join("profile").display()
    ))
    .stdin(Stdio::null())
    .process_group(0)
    .kill_on_drop(true);
    cmd
}
