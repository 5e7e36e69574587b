//! Command-line options, parsed by hand to keep the benchmark's build small.

use crate::systems::System;
use crate::workload::Workload;

pub(crate) const USAGE: &str = "\
usage: cargo run --release -p bench -- [options]

  --json                 one JSON object per line (per metric and system) on stdout
  --rounds N             runs per workload and system; medians are reported (default 3)
  --quick                small smoke run (a tenth of the work or less)
  --scale                also run the scale workloads (membership size, discovery
                         fan-out, full meshes in one and in several processes);
                         with --quick, small sizes only
  --scale-only           only the scale workloads
  --wait-idle PCT        before each run, wait (up to 60 s) until other processes use
                         less than PCT % of the machine over half a second
  --workloads a,b,..     only workloads whose name contains one of these
                         (rpc_inflight500 rpc_25tasks rpc_seq oneway_pb stream_64k harbor_rpc
                          stream_rpc memory)
  --systems a,b,..       only systems whose name contains one of these
                         (raw tonic tarpc clustergo clustergo-cb clustergo-tls clustergo-async);
                         a name after `=` (`--systems =clustergo`) matches only itself
  -h, --help             this text";

/// What the user asked for.
#[derive(Debug, Clone)]
pub(crate) struct Options {
    pub(crate) json: bool,
    pub(crate) rounds: usize,
    /// Wait before each run until other processes use less than this share (percent).
    pub(crate) wait_idle: Option<f64>,
    pub(crate) quick: bool,
    /// Run the scale workloads too.
    pub(crate) scale: bool,
    pub(crate) workloads: Vec<Workload>,
    pub(crate) systems: Vec<System>,
}

/// `Ok(None)` means help was asked for.
pub(crate) fn parse(args: impl IntoIterator<Item = String>) -> Result<Option<Options>, String> {
    let mut json = false;
    let mut quick = false;
    let mut scale = false;
    let mut scale_only = false;
    let mut rounds = 3;
    let mut wait_idle = None;
    let mut workloads: Vec<String> = Vec::new();
    let mut systems: Vec<String> = Vec::new();
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_owned(), Some(v.to_owned())),
            _ => (arg.clone(), None),
        };
        let mut value = || {
            inline
                .clone()
                .or_else(|| args.next())
                .ok_or_else(|| format!("{flag} needs a value"))
        };
        match flag.as_str() {
            "--json" => json = true,
            "--quick" => quick = true,
            "--scale" => scale = true,
            "--scale-only" => scale_only = true,
            "--rounds" => {
                let v = value()?;
                rounds = v
                    .parse()
                    .ok()
                    .filter(|&n| n > 0)
                    .ok_or_else(|| format!("--rounds: {v:?} is not a positive number"))?;
            }
            "--wait-idle" => {
                let v = value()?;
                wait_idle = Some(
                    v.parse::<f64>()
                        .ok()
                        .filter(|p| (0.0..=100.0).contains(p))
                        .ok_or_else(|| format!("--wait-idle: {v:?} is not a percentage"))?,
                );
            }
            "--workloads" => workloads.extend(split(&value()?)),
            "--systems" => systems.extend(split(&value()?)),
            "-h" | "--help" => return Ok(None),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    let mut workloads = select(&Workload::ALL, &workloads, |w| w.name(), "workload")?;
    if scale_only {
        workloads.clear();
    }
    let systems = select(&System::ALL, &systems, |s| s.name(), "system")?;
    Ok(Some(Options {
        json,
        rounds,
        wait_idle,
        quick,
        scale: scale || scale_only,
        workloads,
        systems,
    }))
}

fn split(list: &str) -> impl Iterator<Item = String> + '_ {
    list.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

/// Whether `name` is picked by `filter`: `=name` only by itself, else by a part.
fn matches(name: &str, filter: &str) -> bool {
    match filter.strip_prefix('=') {
        Some(exact) => name == exact,
        None => name.contains(filter),
    }
}

/// The items whose name matches one of `filters` (all of them if there is none).
fn select<T: Copy>(
    all: &[T],
    filters: &[String],
    name: impl Fn(T) -> &'static str,
    what: &str,
) -> Result<Vec<T>, String> {
    if let Some(f) = filters
        .iter()
        .find(|f| !all.iter().any(|&t| matches(name(t), f)))
    {
        return Err(format!("no {what} matches {f:?}"));
    }
    Ok(all
        .iter()
        .copied()
        .filter(|&t| filters.is_empty() || filters.iter().any(|f| matches(name(t), f)))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_owned).collect()
    }

    #[test]
    fn defaults() {
        let o = parse(args("")).unwrap().unwrap();
        assert!(!o.json && !o.quick && !o.scale);
        assert_eq!(o.rounds, 3);
        assert_eq!(o.workloads.len(), Workload::ALL.len());
        assert_eq!(o.systems.len(), System::ALL.len());
    }

    #[test]
    fn filters_and_values() {
        let o = parse(args(
            "--json --rounds=5 --workloads rpc_,oneway --systems raw",
        ))
        .unwrap()
        .unwrap();
        assert!(o.json);
        assert_eq!(o.rounds, 5);
        assert_eq!(
            o.workloads,
            [
                Workload::RpcInflight,
                Workload::RpcTasks,
                Workload::RpcSeq,
                Workload::Oneway
            ]
        );
        assert_eq!(o.systems, [System::Raw]);
        let o = parse(args("--systems =clustergo")).unwrap().unwrap();
        assert_eq!(o.systems, [System::Clustergo]);
    }

    #[test]
    fn scale_flags() {
        let o = parse(args("--quick --scale")).unwrap().unwrap();
        assert!(o.scale && o.quick);
        assert_eq!(o.workloads.len(), Workload::ALL.len(), "--scale adds");
        let o = parse(args("--scale-only")).unwrap().unwrap();
        assert!(o.scale && o.workloads.is_empty(), "--scale-only replaces");
    }

    #[test]
    fn errors() {
        assert!(parse(args("--rounds 0")).is_err());
        assert!(parse(args("--rounds")).is_err());
        assert!(parse(args("--wait-idle 150")).is_err());
        assert_eq!(
            parse(args("--wait-idle 20")).unwrap().unwrap().wait_idle,
            Some(20.0)
        );
        assert!(parse(args("--systems grpc")).is_err());
        assert!(parse(args("--bogus")).is_err());
        assert!(parse(args("--help")).unwrap().is_none());
    }
}
