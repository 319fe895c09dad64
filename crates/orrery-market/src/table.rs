//! A plain-text table of ranked offers for terminals (the CLI's `orrery market offers`).

use crate::router::Ranked;

/// Longest explanation shown in the table's last column before it is cut with "…".
pub const MAX_WHY_CHARS: usize = 100;

/// Renders `ranked` as aligned columns: rank, provider, GPUs, region, GPU-hour price, job
/// cost, reputation, latency, challenge uptime, proven score, and the explanation.
pub fn format_table(ranked: &[Ranked]) -> String {
    let header = [
        "#",
        "provider",
        "gpus",
        "region",
        "per GPU-h",
        "job cost",
        "rep",
        "latency",
        "uptime",
        "proven",
        "why",
    ];
    let mut rows: Vec<Vec<String>> = vec![header.iter().map(|s| s.to_string()).collect()];
    for r in ranked {
        let o = &r.offer;
        let gpus = match &o.hardware.gpu {
            Some(g) => format!("{}× {} {}G", g.count, g.model.as_str(), g.vram_mib / 1024),
            None => format!("cpu {}c", o.hardware.cpu_cores),
        };
        let mut why = r.explanation.clone();
        if why.chars().count() > MAX_WHY_CHARS {
            why = why.chars().take(MAX_WHY_CHARS - 1).collect::<String>() + "…";
        }
        rows.push(vec![
            r.rank.to_string(),
            o.provider.to_string(),
            gpus,
            o.region.clone(),
            o.prices.gpu_hour.to_string(),
            r.cost.to_string(),
            r.breakdown.reputation_score.to_string(),
            o.latency_ms.map_or("-".into(), |l| format!("{l} ms")),
            o.uptime_bps.map_or("-".into(), bps_percent),
            o.proven_score_bps.map_or("-".into(), bps_percent),
            why,
        ]);
    }
    let cols = header.len();
    let widths: Vec<usize> = (0..cols)
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for row in rows {
        let cells: Vec<String> = row
            .iter()
            .enumerate()
            .map(|(c, s)| {
                if c + 1 == cols {
                    s.clone()
                } else {
                    format!("{s:<w$}", w = widths[c])
                }
            })
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}

fn bps_percent(bps: u32) -> String {
    format!("{}%", bps / 100)
}
