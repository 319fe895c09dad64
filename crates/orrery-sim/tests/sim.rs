//! The simulator on small networks: invariants, determinism, cheaters caught, bad scenarios
//! refused, plots drawn.

use orrery_sim::population::Kind;
use orrery_sim::{DemandShape, EmissionMode, Scenario, SimConfig, simulate, summary_json};

fn config(providers: u32, days: u32, seed: u64) -> SimConfig {
    SimConfig {
        providers,
        days,
        seed,
        demands: vec![DemandShape::Flat],
        emissions: vec![EmissionMode::Fixed],
    }
}

/// The default scenario with short jobs and many cheaters, so that a small run sees checks,
/// disputes and slashes.
fn busy_scenario() -> Scenario {
    let text = orrery_sim::DEFAULT_SCENARIO
        .replace("job_hours_mean = 48", "job_hours_mean = 12")
        .replace("wrong_output_share = 0.01", "wrong_output_share = 0.05")
        .replace("lazy_share = 0.01", "lazy_share = 0.05");
    Scenario::from_toml(&text).unwrap()
}

#[test]
fn the_default_scenario_is_valid() {
    let s = Scenario::default();
    assert_eq!(s.step_hours, 6);
    assert!(s.hardware.iter().any(|h| h.gpu_model.contains("4090")));
}

#[test]
fn a_small_signed_run_keeps_every_invariant_and_catches_cheaters() {
    let mut sc = busy_scenario();
    sc.sign_transactions = true;
    let (summary, _) = simulate(&sc, &config(2_000, 2, 7), &mut |_, _| {}).unwrap();
    let r = &summary.runs[0];
    assert!(
        r.refused.is_empty(),
        "refused transactions: {:?}",
        r.refused
    );
    assert_eq!(r.audits_passed, 3, "one audit per day and one at the end");
    assert!(r.leases.opened > 500, "{:?}", r.leases);
    assert!(r.leases.settled > 300, "{:?}", r.leases);
    assert!(r.leases.checked > 50, "{:?}", r.leases);
    assert!(
        r.leases.disputed > 0 && r.leases.slashes > 0,
        "{:?}",
        r.leases
    );
    assert_eq!(r.leases.timed_out, 0);
    assert!(r.supply.minted > 0.0 && r.supply.burned > 0.0);
    let caught: u64 = r
        .kinds
        .iter()
        .filter(|k| k.kind.commits_wrong_results())
        .map(|k| k.caught)
        .sum();
    assert!(caught > 0);
    let honest = r.kinds.iter().find(|k| k.kind == Kind::Honest).unwrap();
    assert_eq!(honest.caught, 0, "an honest provider is never slashed");
    let spoofed = r
        .kinds
        .iter()
        .find(|k| k.kind == Kind::SpoofedHardware)
        .unwrap();
    assert!(spoofed.providers > 0, "spoofers are drawn");
    assert!(r.challenges.passed > 100, "{:?}", r.challenges);
    assert!(
        spoofed.challenges_failed > 0 && spoofed.docked_usd > 0.0,
        "a spoofer misses its challenges and is docked: {spoofed:?}"
    );
    for k in r.kinds.iter().filter(|k| k.kind.answers_challenges()) {
        assert_eq!(
            k.challenges_failed, 0,
            "{:?} answer every challenge",
            k.kind
        );
    }
    assert_eq!(r.days.len(), 2);
}

#[test]
fn the_same_seed_gives_the_same_bytes_and_another_seed_does_not() {
    let sc = busy_scenario();
    let run = |seed| {
        summary_json(
            &simulate(&sc, &config(1_000, 1, seed), &mut |_, _| {})
                .unwrap()
                .0,
        )
    };
    let a = run(3);
    assert_eq!(a, run(3));
    assert_ne!(a, run(4));
}

#[test]
fn the_taper_mints_less_than_the_fixed_schedule_under_the_same_demand() {
    let sc = busy_scenario();
    let mut cfg = config(1_000, 1, 5);
    cfg.emissions = vec![EmissionMode::Fixed, EmissionMode::Taper];
    let (s, _) = simulate(&sc, &cfg, &mut |_, _| {}).unwrap();
    let (fixed, taper) = (&s.runs[0], &s.runs[1]);
    assert!(
        taper.supply.minted < fixed.supply.minted,
        "{} vs {}",
        taper.supply.minted,
        fixed.supply.minted
    );
    assert!(taper.refused.is_empty() && fixed.refused.is_empty());
}

fn refused(text: &str) -> String {
    Scenario::from_toml(text).unwrap_err().to_string()
}

#[test]
fn malformed_scenarios_are_refused_naming_the_key_and_the_reason() {
    let d = orrery_sim::DEFAULT_SCENARIO;
    let e = refused(&d.replace("step_hours = 6", "step_hours = 6\nstep_minutes = 5"));
    assert!(e.contains("unknown field `step_minutes`"), "{e}");
    let e = refused(&d.replace("usd_per_orr = 1.0", "usd_per_orr = \"one\""));
    assert!(
        e.contains("usd_per_orr") && e.contains("invalid type"),
        "{e}"
    );
    let e = refused(&d.replace("usd_per_orr = 1.0\n", ""));
    assert!(e.contains("missing field `usd_per_orr`"), "{e}");
    let e = refused(&d.replace("usd_per_kwh = 0.13", "usd_per_kwh = -0.13"));
    assert!(
        e.contains("`regions[0].usd_per_kwh`") && e.contains("positive"),
        "{e}"
    );
    let e = refused(&d.replace("share = 0.35", "share = 0.5"));
    assert!(
        e.contains("`hardware[*].share`") && e.contains("add up to 1"),
        "{e}"
    );
    let e = refused(&d.replace("step_hours = 6", "step_hours = 5"));
    assert!(e.contains("`step_hours`") && e.contains("divide 24"), "{e}");
    let e = refused(&d.replace("NVIDIA GeForce RTX 4090", "Imaginary GPU 9000"));
    assert!(
        e.contains("`hardware[0].gpu_model`") && e.contains("no cloud reference"),
        "{e}"
    );
    let e = refused("this is = not [toml");
    assert!(e.starts_with("scenario is not valid"), "{e}");
}

#[test]
fn plots_are_drawn_as_png_and_svg_with_content() {
    let sc = busy_scenario();
    let mut cfg = config(1_000, 2, 9);
    cfg.demands = DemandShape::ALL.to_vec();
    cfg.emissions = vec![EmissionMode::Fixed, EmissionMode::Taper];
    let (s, t) = simulate(&sc, &cfg, &mut |_, _| {}).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let files = orrery_sim::plots::write_all(dir.path(), &s, &t).unwrap();
    for name in [
        "supply",
        "emission",
        "earnings",
        "prices",
        "utilization",
        "cheaters",
        "performance",
    ] {
        let png = dir.path().join(format!("{name}.png"));
        let svg = dir.path().join(format!("{name}.svg"));
        assert!(files.contains(&png) && files.contains(&svg), "{name}");
        let bytes = std::fs::read(&png).unwrap();
        let decoder = png::Decoder::new(std::io::Cursor::new(&bytes));
        let mut reader = decoder.read_info().unwrap();
        let mut buf = vec![0; reader.output_buffer_size()];
        let info = reader.next_frame(&mut buf).unwrap();
        assert_eq!((info.width, info.height), (1200, 800), "{name}");
        // Not blank: many pixels differ from the white background.
        let pixels = &buf[..info.buffer_size()];
        let inked = pixels
            .chunks(3)
            .filter(|p| p.iter().any(|&c| c < 200))
            .count();
        assert!(inked > 5_000, "{name}: only {inked} inked pixels");
        let text = std::fs::read_to_string(&svg).unwrap();
        assert!(
            text.contains("<svg") && text.contains("day")
                || name == "earnings"
                || name == "performance",
            "{name}"
        );
        assert!(text.contains("<text"), "{name}: no text in the SVG");
    }
}
