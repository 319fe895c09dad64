use super::*;

fn sh(script: &str) -> Vec<OsString> {
    vec!["-c".into(), script.into()]
}

fn poll_until(s: &mut Supervisor, n: usize) -> Vec<Incident> {
    let start = Instant::now();
    let mut seen = Vec::new();
    while seen.len() < n {
        assert!(start.elapsed() < Duration::from_secs(20), "only {seen:?}");
        seen.extend(s.poll());
        std::thread::sleep(Duration::from_millis(20));
    }
    seen
}

fn wait_for_lines(s: &Supervisor, name: &str, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let log = std::fs::read_to_string(s.log_path(name)).unwrap_or_default();
        if log.lines().count() >= n {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{name} logged {log:?}, not {n} lines"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_killed_process_is_restarted_and_reported_with_its_log_kept() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Supervisor::with_program(dir.path(), "sh".into()).unwrap();
    s.start("validator-1", sh("echo started; exec sleep 30"))
        .unwrap();
    let pids: BTreeMap<String, u32> =
        serde_json::from_slice(&std::fs::read(dir.path().join("processes.json")).unwrap()).unwrap();
    let first = pids["validator-1"];
    // Kill it only once it has logged: a SIGKILL that lands before `sh` runs `echo` leaves
    // one line in the log, not two (this raced on a loaded CI machine).
    wait_for_lines(&s, "validator-1", 1);
    Command::new("kill")
        .args(["-9", &first.to_string()])
        .status()
        .unwrap();
    let seen = poll_until(&mut s, 1);
    assert_eq!(seen[0].process, "validator-1");
    assert!(seen[0].what.contains("signal: 9"), "{}", seen[0]);
    assert_eq!(seen[0].action, "restarted");
    assert!(s.pids().contains_key("validator-1"));
    let pids: BTreeMap<String, u32> =
        serde_json::from_slice(&std::fs::read(dir.path().join("processes.json")).unwrap()).unwrap();
    assert_ne!(pids["validator-1"], first, "the new process id is written");
    // Its log is appended across the restart.
    wait_for_lines(&s, "validator-1", 2);
    assert_eq!(s.incidents().len(), 1);
}

#[test]
fn a_process_that_keeps_dying_is_left_down_after_the_restart_limit() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Supervisor::with_program(dir.path(), "sh".into()).unwrap();
    s.start("provider-0", sh("exit 3")).unwrap();
    let seen = poll_until(&mut s, MAX_RESTARTS as usize + 1);
    assert!(
        seen[..MAX_RESTARTS as usize]
            .iter()
            .all(|i| i.action == "restarted")
    );
    let last = &seen[MAX_RESTARTS as usize];
    assert!(last.what.contains("exit status: 3"), "{last}");
    assert!(last.action.contains("left down"), "{last}");
    assert!(!s.pids().contains_key("provider-0"));
    std::thread::sleep(Duration::from_millis(100));
    assert!(s.poll().is_empty(), "nothing more once left down");
}

#[test]
fn stopping_interrupts_every_process() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Supervisor::with_program(dir.path(), "sh".into()).unwrap();
    s.start(
        "a",
        sh("trap 'echo bye; exit 0' INT; while true; do sleep 0.05; done"),
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let t0 = Instant::now();
    s.stop_all();
    assert!(
        t0.elapsed() < STOP_GRACE,
        "stopped by SIGINT, not by the grace period"
    );
    assert!(!s.pids().contains_key("a"));
    assert!(
        std::fs::read_to_string(s.log_path("a"))
            .unwrap()
            .contains("bye")
    );
}
