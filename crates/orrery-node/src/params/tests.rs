use super::*;
use regex::Regex;

fn code(r: Result<impl std::fmt::Debug, ApiError>) -> &'static str {
    r.expect_err("refused").code
}

#[test]
fn whole_numbers_are_ascii_digits_that_fit() {
    assert_eq!(parse_u64("height", "0").unwrap(), 0);
    assert_eq!(parse_u64("height", "007").unwrap(), 7);
    assert_eq!(
        parse_u64("height", &u64::MAX.to_string()).unwrap(),
        u64::MAX
    );
    for bad in [
        "",
        "+1",
        "-1",
        " 1",
        "1 ",
        "1.0",
        "1e3",
        "18446744073709551616",
        "١",
    ] {
        let e = parse_u64("height", bad).expect_err(bad);
        assert_eq!(e.code, "bad_number", "{bad:?}");
        assert!(
            e.message.starts_with("height must be a whole number"),
            "{}",
            e.message
        );
    }
}

#[test]
fn a_page_limit_out_of_range_is_refused_naming_the_bounds() {
    assert_eq!(page_limit(None).unwrap(), DEFAULT_PAGE_LIMIT as usize);
    assert_eq!(page_limit(Some("1")).unwrap(), 1);
    assert_eq!(page_limit(Some("500")).unwrap(), 500);
    for bad in [
        "0",
        "501",
        "2147483648",
        "99999999999999999999999",
        "-1",
        "abc",
        "",
    ] {
        let e = page_limit(Some(bad)).expect_err(bad);
        assert_eq!(e.code, "bad_query");
        assert_eq!(
            e.message,
            format!("limit must be a whole number from 1 to 500, got {bad:?}")
        );
    }
}

#[test]
fn series_points_out_of_range_are_refused_naming_the_bounds() {
    assert_eq!(series_points(None).unwrap(), DEFAULT_SERIES_POINTS);
    assert_eq!(series_points(Some("500")).unwrap(), 500);
    for bad in ["0", "501", "2147483648"] {
        let e = series_points(Some(bad)).expect_err(bad);
        assert_eq!(e.code, "bad_query");
        assert!(e.message.contains("from 1 to 500"), "{}", e.message);
    }
}

#[test]
fn positions_are_height_colon_index() {
    assert_eq!(parse_position("12:3").unwrap(), (12, 3));
    for bad in ["12", "12:", ":3", "a:b", "+1:2", "1:4294967296", "1:2:3"] {
        assert_eq!(code(parse_position(bad)), "bad_cursor", "{bad:?}");
    }
}

#[test]
fn lease_state_filters_and_orders_are_closed_lists() {
    assert_eq!(lease_state_filter(None).unwrap(), None);
    for s in LEASE_STATE_FILTERS {
        assert_eq!(lease_state_filter(Some(s)).unwrap().as_deref(), Some(s));
    }
    let e = lease_state_filter(Some("setled")).unwrap_err();
    assert_eq!(e.code, "bad_query");
    assert!(e.message.contains("awaiting_start"), "{}", e.message);
    assert_eq!(order(Some("desc")).unwrap(), Some(true));
    assert_eq!(order(Some("asc")).unwrap(), Some(false));
    assert_eq!(order(None).unwrap(), None);
    assert_eq!(code(order(Some("DESC"))), "bad_query");
}

#[test]
fn lease_state_filters_name_every_ledger_state() {
    use orrery_ledger::entries::LeaseState;
    use orrery_types::resources::Usage;
    let simple = [
        LeaseState::AwaitingStart,
        LeaseState::Running {
            started_at: 1,
            started_ms: 1,
        },
        LeaseState::Sealed {
            seal: Hash::ZERO,
            usage: Usage::default(),
            committed_at: 1,
            started_at: 1,
        },
        LeaseState::Committed {
            output: Hash::ZERO,
            checkpoint_root: Hash::ZERO,
            usage: Usage::default(),
            committed_at: 1,
            settle_at: 2,
            failure: None,
        },
    ];
    for state in simple {
        assert!(
            LEASE_STATE_FILTERS.contains(&state.name()),
            "{} is missing from LEASE_STATE_FILTERS",
            state.name()
        );
    }
}

/// Samples around each pattern's edges: what the parser accepts must be what the pattern
/// matches, both ways.
fn agree(pattern: &str, accepts: impl Fn(&str) -> bool, samples: &[&str]) {
    let re = Regex::new(pattern).expect("valid pattern");
    for s in samples {
        assert_eq!(
            re.is_match(s),
            accepts(s),
            "pattern {pattern} and the parser disagree on {s:?}"
        );
    }
}

#[test]
fn hash_and_account_patterns_match_what_the_parsers_accept() {
    let h = "ab".repeat(32);
    let hash_samples = [
        h.clone(),
        h.to_uppercase(),
        format!("0x{h}"),
        format!("0X{h}"),
        h[..63].to_string(),
        format!("{h}a"),
        format!(" {h}"),
        format!("{}g", &h[..63]),
        String::new(),
    ];
    let samples: Vec<&str> = hash_samples.iter().map(String::as_str).collect();
    agree(HASH_PARAM_PATTERN, |s| parse_hash(s).is_ok(), &samples);

    let a = "0123456789abcdef0123456789abcdef01234567";
    let account_samples = [
        format!("orr{a}"),
        format!("orr{}", a.to_uppercase()),
        format!("ORR{a}"),
        format!("orr{}", &a[..39]),
        format!("orr{a}0"),
        format!("orr0x{}", &a[..38]),
        a.to_string(),
    ];
    let samples: Vec<&str> = account_samples.iter().map(String::as_str).collect();
    agree(
        ACCOUNT_PARAM_PATTERN,
        |s| parse_account(s).is_ok(),
        &samples,
    );

    agree(
        PROVIDER_CURSOR_PATTERN,
        |s| parse_account(s).is_ok() || (s.len() <= 19 && parse_u64("cursor", s).is_ok()),
        &[
            &format!("orr{a}"),
            "0",
            "1234567890123456789",
            "",
            "-1",
            "orr",
        ],
    );
    agree(
        POSITION_PATTERN,
        |s| parse_position(s).is_ok(),
        &[
            "0:0",
            "1234567890123456789:123456789",
            "1:",
            ":1",
            "1:-1",
            " 1:1",
        ],
    );
}

#[test]
fn the_search_pattern_matches_what_the_search_understands() {
    let h = "cd".repeat(32);
    let a = "0123456789abcdef0123456789abcdef01234567";
    let understood = |s: &str| {
        let q = trim_search(s).to_ascii_lowercase();
        (q.len() <= 19 && parse_u64("q", &q).is_ok())
            || parse_hash(&q).is_ok()
            || (q.starts_with("orr") && parse_account(&q).is_ok())
    };
    let samples = [
        "12".to_string(),
        "  #12 ".to_string(),
        "##  12".to_string(),
        "\t12\n".to_string(),
        h.clone(),
        format!("0x{h}"),
        format!("0X{}", h.to_uppercase()),
        format!("orr{a}"),
        format!("ORR{a}"),
        format!(" # orr{a} "),
        "+12".to_string(),
        "1 2".to_string(),
        "12#".to_string(),
        "\u{a0}12".to_string(),
        "abc".to_string(),
        String::new(),
        h[..10].to_string(),
    ];
    let samples: Vec<&str> = samples.iter().map(String::as_str).collect();
    agree(&search_pattern(), understood, &samples);
}

#[test]
fn the_hex_body_pattern_matches_what_submission_decodes() {
    agree(
        &tx_hex_pattern(),
        |s| tx_from_hex(s.as_bytes()).is_ok(),
        &[
            "",
            "00ff",
            "0x00ff",
            " \n00FF\t",
            "0X00ff",
            "0",
            "zz",
            "00 ff",
            "\u{a0}00",
        ],
    );
}
