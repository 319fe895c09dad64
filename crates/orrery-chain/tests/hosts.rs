//! Validators on separate hosts: four validator processes, each in its own network namespace
//! with its own address on a private bridge (the project's own test hosts, made with `ip netns`
//! and veth pairs on this machine), on the production entry point (tokio, authenticated p2p).
//! One host's link is cut and restored: the others go on finalizing, and the host catches up.
//!
//! Needs root (to make namespaces); without it the test says so and does nothing.

mod common;

use std::io::{BufRead as _, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const VALIDATORS: usize = 4;
/// The private subnet the test hosts live on; nothing outside this machine is reached.
const SUBNET: &str = "10.213.77";
const P2P_PORT: u16 = 7600;
/// Set on the child processes: the path of the validator config to run.
const CHILD_ENV: &str = "ORRERY_HOSTS_TEST_CONFIG";

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("ip: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// The namespaces, bridge and validator processes of one run; removed on drop.
struct Hosts {
    tag: String,
    children: Vec<Child>,
}

impl Hosts {
    fn hub(&self) -> String {
        format!("{}hub", self.tag)
    }
    fn host(&self, i: usize) -> String {
        format!("{}h{i}", self.tag)
    }
    /// The bridge side of host `i`'s cable.
    fn port(&self, i: usize) -> String {
        format!("{}p{i}", self.tag)
    }

    fn create() -> Result<Hosts, String> {
        let hosts = Hosts {
            tag: format!("orr{}", std::process::id() % 100_000),
            children: Vec::new(),
        };
        let hub = hosts.hub();
        ip(&["netns", "add", &hub])?;
        ip(&["-n", &hub, "link", "add", "br0", "type", "bridge"])?;
        ip(&["-n", &hub, "link", "set", "br0", "up"])?;
        for i in 0..VALIDATORS {
            let (host, port) = (hosts.host(i), hosts.port(i));
            let nic = format!("{}n{i}", hosts.tag);
            ip(&["netns", "add", &host])?;
            ip(&["link", "add", &nic, "type", "veth", "peer", "name", &port])?;
            ip(&["link", "set", &nic, "netns", &host])?;
            ip(&["link", "set", &port, "netns", &hub])?;
            let addr = format!("{SUBNET}.{}/24", i + 1);
            ip(&["-n", &host, "addr", "add", &addr, "dev", &nic])?;
            ip(&["-n", &host, "link", "set", &nic, "up"])?;
            ip(&["-n", &host, "link", "set", "lo", "up"])?;
            ip(&["-n", &hub, "link", "set", &port, "master", "br0"])?;
            ip(&["-n", &hub, "link", "set", &port, "up"])?;
        }
        Ok(hosts)
    }

    fn set_link(&self, i: usize, up: bool) {
        let state = if up { "up" } else { "down" };
        ip(&["-n", &self.hub(), "link", "set", &self.port(i), state]).unwrap();
    }
}

impl Drop for Hosts {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        for i in 0..VALIDATORS {
            let _ = ip(&["netns", "del", &self.host(i)]);
        }
        let _ = ip(&["netns", "del", &self.hub()]);
    }
}

/// The last height each validator printed.
type Heights = Arc<Mutex<Vec<u64>>>;

fn wait_until(what: &str, heights: &Heights, limit: Duration, done: impl Fn(&[u64]) -> bool) {
    let deadline = Instant::now() + limit;
    loop {
        let now = heights.lock().unwrap().clone();
        if done(&now) {
            return;
        }
        assert!(Instant::now() < deadline, "{what}: heights {now:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn validators_on_separate_hosts_survive_a_cut_link() {
    if std::env::var_os(CHILD_ENV).is_some() {
        return;
    }
    let hosts = match Hosts::create() {
        Ok(h) => h,
        Err(e) => {
            eprintln!(
                "SKIPPED validators_on_separate_hosts_survive_a_cut_link: cannot make test \
                 hosts with `ip netns` (needs root): {e}"
            );
            return;
        }
    };
    let mut hosts = hosts;
    let dir = tempfile::tempdir().unwrap();
    let mut net = common::devnet(VALIDATORS, 31, dir.path(), 2);
    let addrs: Vec<std::net::SocketAddr> = (0..VALIDATORS)
        .map(|i| format!("{SUBNET}.{}:{P2P_PORT}", i + 1).parse().unwrap())
        .collect();
    for config in &mut net.configs {
        for (peer, addr) in config.peers.iter_mut().zip(&addrs) {
            peer.address = *addr;
        }
    }
    let heights: Heights = Arc::new(Mutex::new(vec![0; VALIDATORS]));
    let exe = std::env::current_exe().unwrap();
    for (i, config) in net.configs.iter_mut().enumerate() {
        config.listen = addrs[i];
        let path = dir.path().join(format!("validator-{i}.toml"));
        std::fs::write(&path, config.to_toml().unwrap()).unwrap();
        let mut child = Command::new("ip")
            .args(["netns", "exec", &hosts.host(i)])
            .arg(&exe)
            .args(["run_one_validator", "--exact", "--ignored", "--nocapture"])
            .env(CHILD_ENV, &path)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let h = heights.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(height) = line.strip_prefix("HEIGHT ") {
                    h.lock().unwrap()[i] = height.trim().parse().unwrap_or(0);
                }
            }
        });
        hosts.children.push(child);
    }

    wait_until(
        "the hosts start finalizing",
        &heights,
        Duration::from_secs(120),
        |h| h.iter().all(|x| *x >= 3),
    );
    // Cut host 3's cable: the other three (a quorum) go on; host 3 stands still.
    hosts.set_link(3, false);
    std::thread::sleep(Duration::from_secs(3));
    let cut_at = heights.lock().unwrap()[3];
    let others = heights.lock().unwrap()[..3].iter().copied().max().unwrap();
    wait_until(
        "the chain goes on without host 3",
        &heights,
        Duration::from_secs(60),
        |h| h[..3].iter().all(|x| *x >= others + 5),
    );
    assert!(
        heights.lock().unwrap()[3] <= cut_at + 1,
        "a cut-off host cannot finalize: {:?}",
        heights.lock().unwrap()
    );
    // Restore it: it catches up with the others and the chain goes on with it.
    hosts.set_link(3, true);
    let target = heights.lock().unwrap()[..3].iter().copied().max().unwrap() + 3;
    wait_until(
        "host 3 catches up",
        &heights,
        Duration::from_secs(120),
        |h| h.iter().all(|x| *x >= target),
    );
}

/// A child of the test above: runs the validator named by [`CHILD_ENV`] in this process (inside
/// its namespace) and prints its height as it finalizes.
#[test]
#[ignore = "run by validators_on_separate_hosts_survive_a_cut_link inside a test host"]
fn run_one_validator() {
    use commonware_runtime::{Clock as _, Runner as _, Supervisor as _, tokio};
    let Some(path) = std::env::var_os(CHILD_ENV) else {
        return;
    };
    let text = std::fs::read_to_string(&path).unwrap();
    let config = orrery_chain::ValidatorConfig::from_toml(&text).unwrap();
    let storage = config.data_dir.join("consensus");
    tokio::Runner::new(tokio::Config::new().with_storage_directory(storage)).start(
        |context| async move {
            let handle = orrery_chain::start(context.child("validator"), config)
                .await
                .unwrap();
            loop {
                println!("HEIGHT {}", handle.status().height);
                context.sleep(Duration::from_millis(200)).await;
            }
        },
    );
}
