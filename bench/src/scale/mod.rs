//! Scale workloads (`--scale`): how figures grow with the size of the cluster.
//!
//! Each figure is a [`Series`]: one value per size along its own axis (members,
//! subscribers, nodes, processes), printed as one line of a small table.
//! [`membership`]: applying a snapshot and one change to a node's view,
//! `get_addr_by_type`, the view's memory; [`discovery`]: one change reaching every
//! subscriber of a discovery server; [`mesh`]: nodes in one process sending to each
//! other (full mesh), and nodes in separate processes on loopback.
//!
//! `--quick` runs small sizes only (a few seconds in all), for the CI smoke run.

pub(crate) mod discovery;
pub(crate) mod membership;
pub(crate) mod mesh;

use std::fmt::Write as _;
use std::time::Duration;

use serde::Serialize;

/// One figure at each size.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Series {
    pub(crate) name: &'static str,
    pub(crate) unit: &'static str,
    /// What the sizes count (members, subscribers, ..).
    pub(crate) axis: &'static str,
    pub(crate) points: Vec<(usize, f64)>,
    /// What the figure includes, or why a size is missing.
    pub(crate) note: Option<String>,
    /// Sizes that failed, with the error; the other sizes are still reported.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) failed: Vec<String>,
}

impl Series {
    fn new(name: &'static str, unit: &'static str, axis: &'static str) -> Self {
        Self {
            name,
            unit,
            axis,
            points: Vec::new(),
            note: None,
            failed: Vec::new(),
        }
    }
}

/// The sizes each scale workload runs at.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ScaleSizes {
    pub(crate) members: &'static [usize],
    /// `get_addr_by_type` calls timed per size.
    pub(crate) lookups: usize,
    pub(crate) subscribers: &'static [usize],
    /// Changes published per subscriber count (the median is reported).
    pub(crate) changes: usize,
    pub(crate) mesh_nodes: &'static [usize],
    /// One-way messages sent in all per mesh run.
    pub(crate) mesh_msgs: usize,
    pub(crate) processes: &'static [usize],
}

impl ScaleSizes {
    pub(crate) const FULL: ScaleSizes = ScaleSizes {
        members: &[1, 10, 100, 1000, 10_000],
        lookups: 1_000_000,
        subscribers: &[1, 10, 100, 1000],
        changes: 7,
        mesh_nodes: &[2, 10, 64, 100],
        mesh_msgs: 1_000_000,
        processes: &[2, 4, 8],
    };

    /// A few seconds in all.
    pub(crate) const QUICK: ScaleSizes = ScaleSizes {
        members: &[1, 10, 100, 1000],
        lookups: 100_000,
        subscribers: &[1, 10],
        changes: 3,
        mesh_nodes: &[2, 4],
        mesh_msgs: 20_000,
        processes: &[2],
    };
}

/// Runs every scale workload; a failed one is reported and the others still run.
pub(crate) async fn run(s: ScaleSizes) -> (Vec<Series>, Vec<String>) {
    let mut out = Vec::new();
    let mut errors = Vec::new();
    let mut take = |name: &str, r: Result<Vec<Series>, String>| match r {
        Ok(v) => {
            for f in v.iter().flat_map(|s| &s.failed) {
                eprintln!("scale {name}: FAILED: {f}");
                errors.push(format!("{name}: {f}"));
            }
            out.extend(v);
        }
        Err(e) => {
            eprintln!("scale {name}: FAILED: {e}");
            errors.push(format!("{name}: {e}"));
        }
    };
    eprintln!("scale: membership view at {:?} members", s.members);
    take("membership", membership::run(s).await);
    eprintln!(
        "scale: discovery fan-out to {:?} subscribers",
        s.subscribers
    );
    take("discovery", discovery::run(s).await);
    eprintln!(
        "scale: full mesh of {:?} nodes in one process",
        s.mesh_nodes
    );
    take("mesh", mesh::run_in_process(s).await);
    eprintln!("scale: {:?} processes on loopback", s.processes);
    take("processes", mesh::run_processes(s).await);
    (out, errors)
}

/// The median of `v` (sorted in place); 0 if empty.
pub(crate) fn median(v: &mut [f64]) -> f64 {
    crate::report::median(v).unwrap_or(0.0)
}

/// Seconds to the series' unit.
pub(crate) fn in_unit(d: Duration, unit: &str) -> f64 {
    match unit {
        "ns" => d.as_secs_f64() * 1e9,
        "µs" => d.as_secs_f64() * 1e6,
        "ms" => d.as_secs_f64() * 1e3,
        _ => d.as_secs_f64(),
    }
}

/// The table: one line per series, one `size: value` cell per point.
pub(crate) fn table(series: &[Series]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<42} {:<6} {:<12} values by size",
        "scale figure", "unit", "size is"
    );
    for s in series {
        let cells: Vec<String> = s
            .points
            .iter()
            .map(|&(n, v)| format!("{n}: {}", human(v)))
            .collect();
        let _ = writeln!(
            out,
            "{:<42} {:<6} {:<12} {}",
            s.name,
            s.unit,
            s.axis,
            cells.join("  ")
        );
    }
    let notes: Vec<String> = series
        .iter()
        .flat_map(|s| {
            let failed = s.failed.iter().map(|f| format!("FAILED {f}"));
            s.note
                .iter()
                .cloned()
                .chain(failed)
                .map(|n| format!("  {}: {n}", s.name))
        })
        .collect();
    if !notes.is_empty() {
        let _ = writeln!(out, "notes:\n{}", notes.join("\n"));
    }
    out
}

/// Three significant digits or so, with k/M for big values.
fn human(v: f64) -> String {
    if v >= 1e6 {
        format!("{:.2}M", v / 1e6)
    } else if v >= 1e4 {
        format!("{:.1}k", v / 1e3)
    } else if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// One JSON object per series.
pub(crate) fn json_lines(series: &[Series]) -> String {
    let mut out = String::new();
    for s in series {
        let obj = serde_json::to_string(s).expect("plain data serializes");
        let _ = writeln!(out, "{obj}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_lines_and_numbers() {
        let cases = [
            (1_234_567.0, "1.23M"),
            (45_600.0, "45.6k"),
            (512.4, "512"),
            (12.34, "12.3"),
            (0.456, "0.46"),
        ];
        for (v, want) in cases {
            assert_eq!(human(v), want);
        }
        let mut s = Series::new("membership: apply one change", "µs", "members");
        s.points = vec![(1, 0.5), (10_000, 812.0)];
        s.note = Some("rebuilds the indexes".into());
        let t = table(&[s.clone()]);
        assert!(t.contains("1: 0.50  10000: 812"), "{t}");
        assert!(
            t.contains("notes:\n  membership: apply one change: rebuilds"),
            "{t}"
        );
        assert!(json_lines(&[s]).contains("\"points\":[[1,0.5],[10000,812.0]]"));
    }

    #[test]
    fn units() {
        let d = Duration::from_micros(1500);
        assert_eq!(in_unit(d, "ms"), 1.5);
        assert_eq!(in_unit(d, "µs"), 1500.0);
        assert!((in_unit(d, "ns") - 1.5e6).abs() < 1e-6);
    }
}
