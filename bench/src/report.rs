//! Collecting runs into rows, medians and ratios; printing a table or JSON lines.

use std::fmt::Write as _;

use serde::Serialize;

use crate::systems::System;
use crate::workload::Metric;

/// Everything measured for one metric on one system, over all rounds.
#[derive(Debug)]
pub(crate) struct Row {
    pub(crate) metric: Metric,
    pub(crate) system: System,
    pub(crate) values: Vec<f64>,
    /// Other processes' share of the machine during each timed run, in percent.
    pub(crate) other_cpu: Vec<f64>,
    /// This process's share of the machine during each timed run, in percent.
    pub(crate) own_cpu: Vec<f64>,
    pub(crate) not_applicable: Option<&'static str>,
    pub(crate) errors: Vec<String>,
}

impl Row {
    pub(crate) fn new(metric: Metric, system: System) -> Self {
        Self {
            metric,
            system,
            values: Vec::new(),
            other_cpu: Vec::new(),
            own_cpu: Vec::new(),
            not_applicable: None,
            errors: Vec::new(),
        }
    }

    /// Whether anything was recorded: a system may leave some metrics of a workload
    /// out (the memory workload measures links, streams.. on clustergo only).
    pub(crate) fn measured(&self) -> bool {
        !self.values.is_empty() || !self.errors.is_empty() || self.not_applicable.is_some()
    }

    /// The median over rounds; `None` if any round failed or none ran.
    pub(crate) fn value(&self) -> Option<f64> {
        if self.errors.is_empty() {
            median(&self.values)
        } else {
            None
        }
    }
}

/// The median (mean of the middle two for an even count).
pub(crate) fn median(v: &[f64]) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let n = s.len();
    Some(if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    })
}

/// `(max − min) / median` over the rounds, in percent: how much the rounds disagree.
pub(crate) fn spread(v: &[f64]) -> Option<f64> {
    let lo = v.iter().copied().reduce(f64::min)?;
    let hi = max(v)?;
    let m = median(v)?;
    (v.len() > 1 && m > 0.0).then(|| (hi - lo) / m * 100.0)
}

fn max(v: &[f64]) -> Option<f64> {
    v.iter().copied().reduce(f64::max)
}

/// A row's value divided by raw's for the same metric.
fn ratio(rows: &[Row], row: &Row) -> Option<f64> {
    let raw = rows
        .iter()
        .find(|r| r.metric.name == row.metric.name && r.system == System::Raw)?
        .value()?;
    Some(row.value()? / raw)
}

/// A row's value divided by the value of its `relative_to` metric, same system.
fn relative(rows: &[Row], row: &Row) -> Option<(&'static str, f64)> {
    let other = row.metric.relative_to?;
    let base = rows
        .iter()
        .find(|r| r.metric.name == other && r.system == row.system)?
        .value()?;
    Some((other, row.value()? / base))
}

/// The DESIGN.md target for clustergo rows, as text.
fn target_text(row: &Row) -> Option<String> {
    if !matches!(row.system, System::Clustergo | System::ClustergoCallback) {
        return None;
    }
    let m = row.metric;
    let mut parts = Vec::new();
    if let Some(t) = m.target_ratio {
        let op = if m.higher_is_better { "≥" } else { "≤" };
        parts.push(format!("{op}{t}×raw"));
    }
    if let Some(a) = m.target_abs {
        let op = if m.higher_is_better { "≥" } else { "≤" };
        parts.push(format!("{op}{} {}", human(a, m.unit), m.unit));
    }
    (!parts.is_empty()).then(|| parts.join(", "))
}

/// Whether a clustergo row meets its target; `None` if there is none or no value.
fn meets_target(rows: &[Row], row: &Row) -> Option<bool> {
    target_text(row)?;
    let m = row.metric;
    let v = row.value()?;
    let mut ok = true;
    if let Some(t) = m.target_ratio {
        let r = ratio(rows, row)?;
        ok &= if m.higher_is_better { r >= t } else { r <= t };
    }
    if let Some(a) = m.target_abs {
        ok &= if m.higher_is_better { v >= a } else { v <= a };
    }
    Some(ok)
}

/// A value with a k/M suffix for rates, fixed decimals otherwise.
fn human(v: f64, unit: &str) -> String {
    match unit {
        "calls/s" | "msgs/s" if v >= 1e6 => format!("{:.2} M", v / 1e6),
        "calls/s" | "msgs/s" if v >= 1e3 => format!("{:.1} k", v / 1e3),
        "calls/s" | "msgs/s" => format!("{v:.0}"),
        "µs" | "MB" => format!("{v:.1}"),
        "B" => format!("{v:.0}"),
        _ => format!("{v:.2}"),
    }
}

fn pct(v: Option<f64>) -> String {
    v.map_or_else(|| "-".to_owned(), |p| format!("{p:.0}%"))
}

/// The human-readable table.
pub(crate) fn table(rows: &[Row]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<20} {:<12} {:>10} {:<8} {:>6} {:>6}  {:<26} {:>17}  {:>5}",
        "metric",
        "system",
        "value",
        "unit",
        "spread",
        "×raw",
        "target / compared",
        "other CPU med/max",
        "own"
    );
    for row in rows.iter().filter(|r| r.measured()) {
        let (value, unit) = match (row.value(), row.not_applicable) {
            (Some(v), _) => (human(v, row.metric.unit), row.metric.unit.to_owned()),
            (None, Some(why)) => ("n/a".to_owned(), format!("({why})")),
            (None, None) if !row.errors.is_empty() => {
                ("FAILED".to_owned(), format!("({})", row.errors[0]))
            }
            (None, None) => ("-".to_owned(), String::new()),
        };
        if row.value().is_none() {
            let _ = writeln!(
                out,
                "{:<20} {:<12} {:>10} {}",
                row.metric.name,
                row.system.name(),
                value,
                unit
            );
            continue;
        }
        let ratio = ratio(rows, row).map_or_else(|| "-".to_owned(), |r| format!("{r:.3}"));
        let target = match (
            target_text(row),
            meets_target(rows, row),
            relative(rows, row),
        ) {
            (Some(t), Some(true), _) => format!("{t} ok"),
            (Some(t), Some(false), _) => format!("{t} MISS"),
            (Some(t), None, _) => t,
            (None, _, Some((other, r))) => format!("{r:.3}× {other}"),
            (None, _, None) => String::new(),
        };
        let cpu = format!(
            "{}/{}",
            pct(median(&row.other_cpu)),
            pct(max(&row.other_cpu))
        );
        let _ = writeln!(
            out,
            "{:<20} {:<12} {:>10} {:<8} {:>6} {:>6}  {:<26} {:>17}  {:>5}",
            row.metric.name,
            row.system.name(),
            value,
            unit,
            spread(&row.values).map_or_else(|| "-".to_owned(), |p| format!("{p:.0}%")),
            ratio,
            target,
            cpu,
            pct(median(&row.own_cpu)),
        );
    }
    out
}

/// One JSON line; fields in this order.
#[derive(Debug, Serialize)]
struct JsonRow<'a> {
    workload: &'static str,
    system: &'static str,
    /// Median over rounds; `null` if n/a or failed.
    value: Option<f64>,
    unit: &'static str,
    ratio_vs_raw: Option<f64>,
    /// Value over the `relative_to` metric's value (same system), where there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    relative_to: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ratio_vs_relative: Option<f64>,
    higher_is_better: bool,
    /// Every round's value.
    rounds: &'a [f64],
    /// `(max − min) / median` over the rounds, in percent.
    spread_pct: Option<f64>,
    other_cpu_pct: Option<f64>,
    /// Other processes' share during each round, in the order of `rounds`.
    rounds_other_cpu_pct: &'a [f64],
    other_cpu_pct_max: Option<f64>,
    own_cpu_pct: Option<f64>,
    target: Option<String>,
    meets_target: Option<bool>,
    note: Option<String>,
}

/// One JSON object per row.
pub(crate) fn json_lines(rows: &[Row]) -> String {
    let mut out = String::new();
    for row in rows.iter().filter(|r| r.measured()) {
        let note = row
            .not_applicable
            .map(|w| format!("n/a: {w}"))
            .or_else(|| row.errors.first().map(|e| format!("failed: {e}")));
        let line = JsonRow {
            workload: row.metric.name,
            system: row.system.name(),
            value: row.value(),
            unit: row.metric.unit,
            ratio_vs_raw: ratio(rows, row),
            relative_to: row.metric.relative_to,
            ratio_vs_relative: relative(rows, row).map(|(_, r)| r),
            higher_is_better: row.metric.higher_is_better,
            rounds: &row.values,
            spread_pct: spread(&row.values),
            other_cpu_pct: median(&row.other_cpu),
            rounds_other_cpu_pct: &row.other_cpu,
            other_cpu_pct_max: max(&row.other_cpu),
            own_cpu_pct: median(&row.own_cpu),
            target: target_text(row),
            meets_target: meets_target(rows, row),
            note,
        };
        let obj = serde_json::to_string(&line).expect("plain data serializes");
        let _ = writeln!(out, "{obj}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workload::Workload;

    #[test]
    fn medians() {
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(spread(&[90.0, 100.0, 110.0]), Some(20.0));
        assert_eq!(spread(&[100.0]), None);
    }

    #[test]
    fn ratios_and_targets() {
        let m = Workload::RpcInflight.metrics()[0];
        let mut raw = Row::new(m, System::Raw);
        raw.values = vec![100.0, 100.0, 100.0];
        let mut cg = Row::new(m, System::Clustergo);
        cg.values = vec![60.0, 80.0, 75.0];
        let rows = vec![raw, cg];
        assert_eq!(ratio(&rows, &rows[1]), Some(0.75));
        assert_eq!(meets_target(&rows, &rows[1]), Some(true));
        assert_eq!(meets_target(&rows, &rows[0]), None);

        let lat = Workload::RpcSeq.metrics()[0];
        let mut raw = Row::new(lat, System::Raw);
        raw.values = vec![10.0];
        let mut cg = Row::new(lat, System::Clustergo);
        cg.values = vec![14.0];
        let rows = vec![raw, cg];
        assert_eq!(meets_target(&rows, &rows[1]), Some(false));
    }

    #[test]
    fn humane_numbers() {
        assert_eq!(human(1_380_000.0, "calls/s"), "1.38 M");
        assert_eq!(human(55_000.0, "calls/s"), "55.0 k");
        assert_eq!(human(13.54, "µs"), "13.5");
        assert_eq!(human(2.1, "GB/s"), "2.10");
    }
}
