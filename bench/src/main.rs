//! `cargo run --release -p bench` — clustergo beside a raw tokio TCP baseline,
//! tonic and tarpc, in one process, on loopback, with ratios against raw.
//!
//! Layout: [`cli`] parses options; [`workload`] holds the workloads, their sizes and
//! the RPC drivers shared by all systems; [`systems`] has one module per system under
//! test; [`cpu`] reads `/proc` so each run shows how busy the rest of the machine
//! was; [`report`] turns runs into medians, ratios, a table or JSON lines;
//! [`memory`] measures RSS and bytes per link, stream, call and gate connection, and
//! [`scale`] how figures grow with the cluster (`--scale`), both in child processes
//! of this binary ([`child`]).

mod child;
mod cli;
mod cpu;
mod memory;
mod report;
mod scale;
mod systems;
mod workload;

/// Messages and the tonic service compiled from `proto/bench.proto` by `build.rs`.
#[allow(unreachable_pub, missing_docs, missing_debug_implementations)]
#[allow(clippy::all)]
mod proto {
    tonic::include_proto!("bench");
}

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::Duration;

use cpu::CpuSnap;
use report::Row;
use systems::Outcome;
use workload::Sizes;

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some(child::FLAG) {
        return child_main(&args[1..]).await;
    }
    let opts = match cli::parse(args) {
        Ok(Some(o)) => o,
        Ok(None) => {
            println!("{}", cli::USAGE);
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("bench: {e}\n\n{}", cli::USAGE);
            return ExitCode::from(2);
        }
    };
    let sizes = if opts.quick {
        Sizes::QUICK
    } else {
        Sizes::FULL
    };

    let header = format!(
        "machine: {} CPUs, {}\nrun: {} round(s), medians reported{}{}; sizes {:?}",
        cpu::nproc(),
        cpu::cpu_model(),
        opts.rounds,
        if opts.quick { ", --quick" } else { "" },
        opts.wait_idle
            .map(|p| format!(", each run after other CPU < {p}% (waiting up to 60 s)"))
            .unwrap_or_default(),
        sizes,
    );
    if opts.json {
        eprintln!("{header}");
    } else {
        println!("{header}");
    }

    // One row per (workload, metric, system), in report order.
    let mut rows: BTreeMap<(workload::Workload, usize, systems::System), Row> = BTreeMap::new();
    for &w in &opts.workloads {
        for (i, &m) in w.metrics().iter().enumerate() {
            for &s in opts.systems.iter().filter(|s| s.applies_to(w)) {
                rows.insert((w, i, s), Row::new(m, s));
            }
        }
    }

    let start = CpuSnap::now();
    let mut failed = false;
    for round in 1..=opts.rounds {
        for &w in &opts.workloads {
            for &s in opts.systems.iter().filter(|s| s.applies_to(w)) {
                let key = |i| (w, i, s);
                if rows[&key(0)].not_applicable.is_some() {
                    continue;
                }
                if let Some(pct) = opts.wait_idle {
                    let (waited, other) = cpu::wait_idle(pct, Duration::from_secs(60)).await;
                    if other >= pct {
                        eprintln!(
                            "(waited {waited:.0?} for other CPU < {pct}%; still {other:.0}%, \
                             running anyway)"
                        );
                    }
                }
                eprint!(
                    "round {round}/{} {:<16} {:<12}",
                    opts.rounds,
                    w.name(),
                    s.name()
                );
                match s.run(w, sizes).await {
                    Ok(Outcome::Done(run)) => {
                        for (name, v) in &run.values {
                            let i = w.metrics().iter().position(|m| m.name == *name);
                            let row = rows.get_mut(&key(i.expect("metric of this workload")));
                            let row = row.expect("row for every metric");
                            row.values.push(*v);
                            if let Some(cpu) = run.cpu {
                                row.other_cpu.push(cpu.other_pct);
                                row.own_cpu.push(cpu.own_pct);
                            }
                            eprint!("  {name} {v:.2} {}", row.metric.unit);
                        }
                        if let Some(note) = &run.note {
                            eprint!("  [{note}]");
                        }
                        match run.cpu {
                            Some(cpu) => eprintln!("  (other CPU {:.0}%)", cpu.other_pct),
                            None => eprintln!(),
                        }
                    }
                    Ok(Outcome::NotApplicable(why)) => {
                        eprintln!("  n/a: {why}");
                        for i in 0..w.metrics().len() {
                            rows.get_mut(&key(i)).expect("row").not_applicable = Some(why);
                        }
                    }
                    Err(e) => {
                        eprintln!("  FAILED: {e}");
                        failed = true;
                        for i in 0..w.metrics().len() {
                            rows.get_mut(&key(i)).expect("row").errors.push(e.clone());
                        }
                    }
                }
            }
        }
    }
    let rows: Vec<Row> = rows.into_values().collect();

    if rows.is_empty() {
        // --scale-only: no peer table.
    } else if opts.json {
        print!("{}", report::json_lines(&rows));
    } else {
        println!();
        print!("{}", report::table(&rows));
        println!(
            "\nvalue: median over rounds; spread: (max − min) / median over rounds; ×raw: value \
             / raw's value (for latency, lower is better). \"other CPU\": share of the whole \
             machine used by other processes while each run was timed (median/max over \
             rounds); \"own\": this process."
        );
    }
    if opts.scale {
        let sizes = if opts.quick {
            scale::ScaleSizes::QUICK
        } else {
            scale::ScaleSizes::FULL
        };
        let (series, errors) = scale::run(sizes).await;
        if opts.json {
            print!("{}", scale::json_lines(&series));
        } else {
            print!("\n{}", scale::table(&series));
        }
        failed |= !errors.is_empty();
    }
    if let (Some(a), Some(b)) = (start, CpuSnap::now()) {
        let u = a.until(&b);
        let line = format!(
            "whole run: machine {:.0}% busy, this process {:.0}%, other processes {:.0}%",
            u.machine_pct, u.own_pct, u.other_pct
        );
        if opts.json {
            eprintln!("{line}");
        } else {
            println!("{line}");
        }
    }
    if failed {
        eprintln!("bench: some runs failed (wrong or missing replies); see above");
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// The binary re-executed as a child process ([`child`]): `--child <what> ..`.
async fn child_main(args: &[String]) -> ExitCode {
    let result = match args.first().map(String::as_str) {
        Some("memory") => memory::child(&args[1..]).await,
        Some("link-ends") => memory::links::child(&args[1..]).await,
        Some("view-memory") => scale::membership::child_view_memory(&args[1..]).await,
        Some("mesh") => scale::mesh::child_mesh(&args[1..]).await,
        Some("proc") => scale::mesh::child_proc(&args[1..]).await,
        other => Err(format!("unknown child kind {other:?}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench child {args:?}: {e}");
            ExitCode::FAILURE
        }
    }
}
