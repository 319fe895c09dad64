//! Plots of a simulation, each as PNG and SVG (plotters; text in DejaVu Sans, embedded).
//!
//! - `supply`: minted, burned and net supply over time under each demand shape;
//! - `emission`: net supply under the fixed schedule against the tapered emission;
//! - `earnings`: per machine kind, an honest provider's income per GPU-hour owned against its
//!   electricity, as a function of utilization, with the simulated utilization marked;
//! - `prices`: the agreed price per machine kind as a share of the cloud reference, per day;
//! - `utilization`: per machine kind, per day, under each demand shape;
//! - `cheaters`: each provider kind's cumulative profit per provider under each demand shape;
//! - `performance`: block execution and state-root time, and router query time, as the
//!   network grows (from the timings; the one plot that differs between runs).

use crate::population::Kind;
use crate::summary::{DemandShape, EmissionMode, RunSummary, Summary, Timings};
use plotters::coord::Shift;
use plotters::prelude::*;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// Why plots could not be written.
#[derive(Debug, thiserror::Error)]
#[error("cannot draw plot {plot}: {reason}")]
pub struct PlotError {
    plot: String,
    reason: String,
}

const FONT: &str = "sans-serif";
const SIZE: (u32, u32) = (1200, 800);
const PALETTE: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(255, 127, 14),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(23, 190, 207),
];

fn register_font() -> Result<(), String> {
    static DONE: OnceLock<Result<(), String>> = OnceLock::new();
    DONE.get_or_init(|| {
        plotters::style::register_font(FONT, FontStyle::Normal, dejavu::sans::regular())
            .map_err(|_| "the embedded DejaVu Sans font does not load".to_string())
    })
    .clone()
}

type Res = Result<(), String>;

fn err<E: std::fmt::Debug>(e: E) -> String {
    format!("{e:?}")
}

macro_rules! render {
    ($dir:expr, $name:expr, $out:expr, |$root:ident| $body:expr) => {{
        let png = $dir.join(format!("{}.png", $name));
        let svg = $dir.join(format!("{}.svg", $name));
        let wrap = |reason: String| PlotError {
            plot: $name.to_string(),
            reason,
        };
        {
            let $root = BitMapBackend::new(&png, SIZE).into_drawing_area();
            $root.fill(&WHITE).map_err(err).map_err(wrap)?;
            $body.map_err(wrap)?;
            $root.present().map_err(err).map_err(wrap)?;
        }
        {
            let $root = SVGBackend::new(&svg, SIZE).into_drawing_area();
            $root.fill(&WHITE).map_err(err).map_err(wrap)?;
            $body.map_err(wrap)?;
            $root.present().map_err(err).map_err(wrap)?;
        }
        $out.push(png);
        $out.push(svg);
    }};
}

/// Write every plot the summary (and timings) allow into `dir`; returns the files written.
pub fn write_all(dir: &Path, s: &Summary, t: &Timings) -> Result<Vec<PathBuf>, PlotError> {
    register_font().map_err(|reason| PlotError {
        plot: "font".into(),
        reason,
    })?;
    std::fs::create_dir_all(dir).map_err(|e| PlotError {
        plot: dir.display().to_string(),
        reason: e.to_string(),
    })?;
    let mut out = Vec::new();
    render!(dir, "supply", out, |root| supply(&root, s));
    if has(s, EmissionMode::Taper) && has(s, EmissionMode::Fixed) {
        render!(dir, "emission", out, |root| emission(&root, s));
    }
    render!(dir, "earnings", out, |root| earnings(&root, s));
    render!(dir, "prices", out, |root| prices(&root, s));
    render!(dir, "utilization", out, |root| utilization(&root, s));
    render!(dir, "cheaters", out, |root| cheaters(&root, s));
    if !t.runs.is_empty() {
        render!(dir, "performance", out, |root| performance(&root, t));
    }
    Ok(out)
}

fn has(s: &Summary, e: EmissionMode) -> bool {
    s.runs.iter().any(|r| r.emission == e)
}

/// The runs of one emission rule, fixed first if present.
fn runs_of(s: &Summary, e: EmissionMode) -> Vec<&RunSummary> {
    s.runs.iter().filter(|r| r.emission == e).collect()
}

fn main_emission(s: &Summary) -> EmissionMode {
    if has(s, EmissionMode::Fixed) {
        EmissionMode::Fixed
    } else {
        EmissionMode::Taper
    }
}

/// The run the single-scenario plots read: flat demand if run, else the first.
fn main_run(s: &Summary) -> Option<&RunSummary> {
    let e = main_emission(s);
    s.runs
        .iter()
        .find(|r| r.emission == e && r.demand == DemandShape::Flat)
        .or_else(|| s.runs.first())
}

fn grid<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    title: &str,
    n: usize,
) -> Result<Vec<DrawingArea<DB, Shift>>, String> {
    let root = root.titled(title, (FONT, 26).into_font()).map_err(err)?;
    let (rows, cols) = match n {
        0 | 1 => (1, 1),
        2 => (1, 2),
        3 | 4 => (2, 2),
        _ => (2, 3),
    };
    Ok(root.split_evenly((rows, cols)))
}

fn bounds(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for v in values.filter(|v| v.is_finite()) {
        lo = lo.min(v);
        hi = hi.max(v);
    }
    if !lo.is_finite() {
        return (0.0, 1.0);
    }
    let lo = lo.min(0.0);
    let pad = ((hi - lo) * 0.08).max(1e-9);
    (lo, hi + pad)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Sty {
    Solid,
    Dashed,
    Dots,
}

struct Line<'a> {
    label: &'a str,
    points: Vec<(f64, f64)>,
    color: RGBColor,
    style: Sty,
}

fn panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    caption: &str,
    x_desc: &str,
    y_desc: &str,
    lines: &[Line<'_>],
    x_range: Option<(f64, f64)>,
) -> Res {
    let (x_lo, x_hi) = x_range.unwrap_or_else(|| {
        let (lo, hi) = bounds(lines.iter().flat_map(|l| l.points.iter().map(|p| p.0)));
        (lo.max(0.0), hi)
    });
    let (y_lo, y_hi) = bounds(lines.iter().flat_map(|l| l.points.iter().map(|p| p.1)));
    let mut chart = ChartBuilder::on(area)
        .caption(caption, (FONT, 20).into_font())
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(x_lo..x_hi, y_lo..y_hi)
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc(x_desc)
        .y_desc(y_desc)
        .label_style((FONT, 14).into_font())
        .axis_desc_style((FONT, 15).into_font())
        .x_labels(8)
        .x_label_formatter(&|v| short(*v))
        .y_label_formatter(&|v| short(*v))
        .draw()
        .map_err(err)?;
    for l in lines {
        let style = ShapeStyle::from(&l.color).stroke_width(2);
        let color = l.color;
        if l.style == Sty::Dots {
            chart
                .draw_series(
                    l.points
                        .iter()
                        .map(|&(x, y)| Circle::new((x, y), 3, ShapeStyle::from(&color).filled())),
                )
                .map_err(err)?
                .label(l.label)
                .legend(move |(x, y)| {
                    Circle::new((x + 10, y), 4, ShapeStyle::from(&color).filled())
                });
        } else if l.style == Sty::Dashed {
            chart
                .draw_series(DashedLineSeries::new(l.points.clone(), 8, 5, style))
                .map_err(err)?
                .label(l.label)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
        } else {
            chart
                .draw_series(LineSeries::new(l.points.clone(), style))
                .map_err(err)?
                .label(l.label)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
        }
    }
    if lines.iter().any(|l| !l.label.is_empty()) {
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .label_font((FONT, 14).into_font())
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()
            .map_err(err)?;
    }
    Ok(())
}

/// Axis numbers that fit: 1.2M, 35k, 0.25.
fn short(v: f64) -> String {
    let a = v.abs();
    if a >= 1e9 {
        format!("{:.1}G", v / 1e9)
    } else if a >= 1e6 {
        format!("{:.1}M", v / 1e6)
    } else if a >= 1e4 {
        format!("{:.0}k", v / 1e3)
    } else if a >= 100.0 || a == 0.0 {
        format!("{v:.0}")
    } else if a >= 1.0 {
        format!("{v:.1}")
    } else if a >= 0.1 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

fn days_of(r: &RunSummary, f: impl Fn(&crate::summary::DayRow) -> f64) -> Vec<(f64, f64)> {
    let mut v = vec![(0.0, 0.0)];
    v.extend(r.days.iter().map(|d| (f64::from(d.day), f(d))));
    v
}

fn supply<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, s: &Summary) -> Res {
    let e = main_emission(s);
    let runs = runs_of(s, e);
    let title = format!(
        "Supply under each demand shape ({} emission; {} providers, seed {})",
        e.name(),
        s.providers,
        s.seed
    );
    let areas = grid(root, &title, runs.len())?;
    for (area, r) in areas.iter().zip(&runs) {
        let lines = [
            Line {
                label: "minted",
                points: days_of(r, |d| d.minted),
                color: PALETTE[0],
                style: Sty::Solid,
            },
            Line {
                label: "burned",
                points: days_of(r, |d| d.burned),
                color: PALETTE[1],
                style: Sty::Solid,
            },
            Line {
                label: "net (minted - burned)",
                points: days_of(r, |d| d.net),
                color: RGBColor(0, 0, 0),
                style: Sty::Dashed,
            },
        ];
        panel(
            area,
            &format!("{} demand", r.demand.name()),
            "day",
            "ORR since genesis",
            &lines,
            None,
        )?;
    }
    Ok(())
}

fn emission<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, s: &Summary) -> Res {
    let fixed = runs_of(s, EmissionMode::Fixed);
    let areas = grid(
        root,
        "Net supply: fixed emission against emission tapered by burned fees",
        fixed.len(),
    )?;
    for (area, f) in areas.iter().zip(&fixed) {
        let taper = s
            .runs
            .iter()
            .find(|r| r.emission == EmissionMode::Taper && r.demand == f.demand);
        let mut lines = vec![Line {
            label: "net, fixed schedule",
            points: days_of(f, |d| d.net),
            color: PALETTE[0],
            style: Sty::Solid,
        }];
        if let Some(t) = taper {
            lines.push(Line {
                label: "net, tapered (emission_taper_bps = 10000)",
                points: days_of(t, |d| d.net),
                color: PALETTE[1],
                style: Sty::Dashed,
            });
            lines.push(Line {
                label: "minted, tapered",
                points: days_of(t, |d| d.minted),
                color: PALETTE[2],
                style: Sty::Dashed,
            });
        }
        panel(
            area,
            &format!("{} demand", f.demand.name()),
            "day",
            "ORR since genesis",
            &lines,
            None,
        )?;
    }
    Ok(())
}

fn earnings<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, s: &Summary) -> Res {
    let Some(r) = main_run(s) else { return Ok(()) };
    let title = format!(
        "Honest provider: income per GPU-hour owned vs electricity ({} demand, {} emission)",
        r.demand.name(),
        r.emission.name()
    );
    let areas = grid(root, &title, r.classes.len())?;
    for (area, c) in areas.iter().zip(&r.classes) {
        let us: Vec<f64> = (0..=20).map(|i| f64::from(i) / 20.0).collect();
        let income = c.lease_income_per_busy_unit_hour + c.emission_per_busy_unit_hour;
        let unit = if c.gpus > 0 { "GPU" } else { "core" };
        let lines = [
            Line {
                label: "income (lease + emission)",
                points: us.iter().map(|&u| (u * 100.0, u * income)).collect(),
                color: PALETTE[2],
                style: Sty::Solid,
            },
            Line {
                label: "lease income only",
                points: us
                    .iter()
                    .map(|&u| (u * 100.0, u * c.lease_income_per_busy_unit_hour))
                    .collect(),
                color: PALETTE[0],
                style: Sty::Dashed,
            },
            Line {
                label: "electricity",
                points: us
                    .iter()
                    .map(|&u| {
                        (
                            u * 100.0,
                            u * c.electricity_load_per_unit_hour
                                + (1.0 - u) * c.electricity_idle_per_unit_hour,
                        )
                    })
                    .collect(),
                color: PALETTE[1],
                style: Sty::Solid,
            },
            Line {
                label: "simulated utilization",
                points: vec![
                    (c.utilization * 100.0, 0.0),
                    (
                        c.utilization * 100.0,
                        c.utilization * income.max(c.electricity_load_per_unit_hour),
                    ),
                ],
                color: RGBColor(120, 120, 120),
                style: Sty::Dashed,
            },
        ];
        let be = c
            .break_even_utilization
            .map_or("never".to_string(), |u| format!("{:.0}%", u * 100.0));
        panel(
            area,
            &format!("{} (break-even {be})", c.name),
            "utilization %",
            &format!("USD per {unit}-hour owned"),
            &lines,
            Some((0.0, 100.0)),
        )?;
    }
    Ok(())
}

fn prices<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, s: &Summary) -> Res {
    let Some(r) = main_run(s) else { return Ok(()) };
    let title = format!(
        "Agreed price / cloud reference price, per machine kind ({} demand; requesters pay at most {:.0}%)",
        r.demand.name(),
        s.scenario.demand.max_price_share * 100.0
    );
    let areas = grid(root, &title, 1)?;
    let lines: Vec<Line<'_>> = r
        .classes
        .iter()
        .enumerate()
        .map(|(c, class)| Line {
            label: class.name.as_str(),
            points: r
                .days
                .iter()
                .filter_map(|d| d.price_share[c].map(|p| (f64::from(d.day), p)))
                .collect(),
            color: PALETTE[c % PALETTE.len()],
            style: Sty::Solid,
        })
        .collect();
    panel(
        &areas[0],
        "",
        "day",
        "share of the cloud reference",
        &lines,
        None,
    )
}

fn utilization<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, s: &Summary) -> Res {
    let runs = runs_of(s, main_emission(s));
    let areas = grid(root, "Utilization per machine kind", runs.len())?;
    for (area, r) in areas.iter().zip(&runs) {
        let lines: Vec<Line<'_>> = r
            .classes
            .iter()
            .enumerate()
            .map(|(c, class)| Line {
                label: class.name.as_str(),
                points: days_of(r, |d| d.utilization[c])
                    .into_iter()
                    .skip(1)
                    .collect(),
                color: PALETTE[c % PALETTE.len()],
                style: Sty::Solid,
            })
            .collect();
        panel(
            area,
            &format!("{} demand", r.demand.name()),
            "day",
            "busy share of machines",
            &lines,
            None,
        )?;
    }
    Ok(())
}

fn cheaters<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, s: &Summary) -> Res {
    let runs = runs_of(s, main_emission(s));
    let areas = grid(
        root,
        "Cumulative profit per provider by kind (income - electricity - slashed and docked stake - self-dealing)",
        runs.len(),
    )?;
    for (area, r) in areas.iter().zip(&runs) {
        let mut lines: Vec<Line<'_>> = Kind::ALL
            .iter()
            .map(|k| Line {
                label: k.name(),
                points: days_of(r, |d| d.profit_per_provider[k.idx()]),
                color: PALETTE[k.idx() % PALETTE.len()],
                style: if *k == Kind::Honest {
                    Sty::Solid
                } else {
                    Sty::Dashed
                },
            })
            .collect();
        // The fix for wash trading: the same demand with emission for checked work only.
        let checked = s
            .runs
            .iter()
            .find(|c| c.emission == EmissionMode::Checked && c.demand == r.demand);
        if let Some(c) = checked.filter(|_| r.emission != EmissionMode::Checked) {
            let w = Kind::WashTrader;
            lines.push(Line {
                label: "wash_trader, emission for checked work only",
                points: days_of(c, |d| d.profit_per_provider[w.idx()]),
                color: PALETTE[Kind::ALL.len()],
                style: Sty::Dots,
            });
        }
        panel(
            area,
            &format!("{} demand", r.demand.name()),
            "day",
            "USD per provider",
            &lines,
            None,
        )?;
    }
    Ok(())
}

fn performance<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, t: &Timings) -> Res {
    let run = &t.runs[0];
    let areas = grid(
        root,
        &format!(
            "Cost as the network grows (run {}; wall clock, this machine)",
            run.run
        ),
        2,
    )?;
    let blocks: Vec<&crate::summary::BlockTiming> =
        run.blocks.iter().filter(|b| b.txs > 0).collect();
    let per_tx = |b: &crate::summary::BlockTiming| b.execute_ms * 1e3 / b.txs.max(1) as f64;
    let exec: Vec<(f64, f64)> = blocks
        .iter()
        .map(|b| (b.providers as f64, b.execute_ms))
        .collect();
    let commit: Vec<(f64, f64)> = blocks
        .iter()
        .map(|b| (b.providers as f64, b.commit_ms))
        .collect();
    let tx: Vec<(f64, f64)> = blocks
        .iter()
        .map(|b| (b.providers as f64, per_tx(b)))
        .collect();
    panel(
        &areas[0],
        "ledger: per block (ms) and per transaction (us)",
        "providers registered",
        "ms per block / us per tx",
        &[
            Line {
                label: "execute_block, ms",
                points: exec,
                color: PALETTE[0],
                style: Sty::Dots,
            },
            Line {
                label: "state root (commit), ms",
                points: commit,
                color: PALETTE[1],
                style: Sty::Dots,
            },
            Line {
                label: "execute per transaction, us",
                points: tx,
                color: PALETTE[2],
                style: Sty::Dots,
            },
        ],
        None,
    )?;
    let growth: Vec<(f64, f64)> = run
        .router_growth
        .iter()
        .map(|r| (r.offers as f64, r.median_us))
        .collect();
    let steps: Vec<(f64, f64)> = run
        .router
        .iter()
        .filter(|r| r.queries > 0)
        .map(|r| (r.offers as f64, r.median_us))
        .collect();
    let p99: Vec<(f64, f64)> = run
        .router
        .iter()
        .filter(|r| r.queries > 0)
        .map(|r| (r.offers as f64, r.p99_us))
        .collect();
    panel(
        &areas[1],
        "router: query time",
        "idle offers in the index",
        "us per query",
        &[
            Line {
                label: "median, probe per machine kind while registering",
                points: growth,
                color: PALETTE[0],
                style: Sty::Solid,
            },
            Line {
                label: "median per step, real orders",
                points: steps,
                color: PALETTE[3],
                style: Sty::Dots,
            },
            Line {
                label: "p99 per step",
                points: p99,
                color: PALETTE[1],
                style: Sty::Dots,
            },
        ],
        None,
    )
}
