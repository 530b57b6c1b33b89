//! The main job on the embedded simulated default: the reference scenario of `seeds/000_*`
//! — a dual-controller ALUA array whose controller is pulled and pushed back — as a pool
//! administrator lives it with sm-rs: enable multipathing, create the SR, start the path
//! agent, attach a VDI, pull a controller and watch the PBD's path count follow by itself
//! (no `xe sr-update`), push it back, detach, unplug. Each step is shown as the `xe` command
//! (or `mpathutil`, `systemctl`) it stands for, then what the host and xapi show.
//!
//! Everything but the storage is real code: xapi is the simulator (`sm-testkit`), which runs
//! the sm-rs driver exactly as xapi's sm_exec does; the array, the host's disks, multipathd
//! and the kernel's uevents are simulated; `mpathutil` is the real CLI and `sm-mpath-agent`
//! the real agent. The driver, the agent and the stand-in programs are this very
//! executable, installed under their names (argv[0] picks).

use mpathutil::cli::{Context, run};
use mpathutil::{Config, HostRoot};
use sm_plugin::agent::metrics::DEFAULT_FILE as METRICS_FILE;
use sm_testkit::agent_lab::relay_path;
use sm_testkit::agent_lab::uevents::Relay;
use sm_testkit::host_sim::relay;
use sm_testkit::lab::{Lab, LabSpec};
use sm_testkit::multipathd_sim::ReplyStyle;
use sm_testkit::scenarios::{SEED_WWID, seed_fabric};
use std::io::{Write, stdout};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};
use xenapi::Ref;

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().collect();
    let name = argv
        .first()
        .map(|a| a.rsplit('/').next().unwrap_or(a).to_string())
        .unwrap_or_default();
    if name == "LUNoHBASR" || name == "LUNoISCSISR" {
        return sm_plugin::driver_main();
    }
    if name == AGENT {
        return sm_plugin::agent::cli::main(argv);
    }
    if relay::is_standin(&name) {
        return relay::main(argv);
    }
    match demo() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sm-demo: {e}");
            ExitCode::FAILURE
        }
    }
}

type Result<T = ()> = std::result::Result<T, Box<dyn std::error::Error>>;

const AGENT: &str = "sm-mpath-agent";

/// The path agent of the demo's host, run as its service would be; stopped (SIGTERM) when
/// dropped.
struct Agent {
    child: Child,
    log: PathBuf,
    relay: Relay,
}

impl Agent {
    /// Starts this executable as `sm-mpath-agent` for host 0 of `lab`, its uevents from a
    /// relay the demo feeds as the kernel would; waits until its API answers.
    fn start(lab: &Lab, me: &Path) -> Result<Self> {
        let host = lab.host(0);
        let root = host.sim.root();
        std::fs::create_dir_all(root.join("etc"))?;
        std::fs::write(
            root.join("etc/xensource-inventory"),
            format!("INSTALLATION_UUID='{}'\n", host.uuid),
        )?;
        let exe = lab.dir.join(AGENT);
        std::os::unix::fs::symlink(me, &exe)?;
        let log = lab.dir.join("sm-mpath-agent.log");
        let relay = relay_path(root);
        let child = Command::new(&exe)
            .arg("--foreground")
            .arg(format!("--uevents=unix:{}", relay.display()))
            .env_clear()
            .env("SM_RS_ROOT", root)
            .env("MULTIPATH_SOCKET_NAME", host.sim.socket_name())
            .env(
                "SM_RS_XAPI",
                format!("unix:{}", lab.dir.join("xapi.sock").display()),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log)?)
            .spawn()?;
        let mut agent = Self {
            child,
            log,
            relay: Relay::new(&relay)?,
        };
        let socket = mpathutil::agent::socket_path(&HostRoot::new(root));
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let health = mpathutil::agent::call(&socket, "health", Duration::from_secs(5));
            if health.is_ok_and(|h| h["counters"]["passes"].as_u64() >= Some(1)) {
                return Ok(agent);
            }
            if let Some(status) = agent.child.try_wait()? {
                return Err(format!("the agent exited ({status}): {}", agent.log_text()).into());
            }
            if Instant::now() > deadline {
                return Err(format!("the agent did not answer: {}", agent.log_text()).into());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits (up to 10 s) until the agent reports that the LUN's PBD holds `value`: its
    /// API and its metrics are refreshed at the end of the pass that wrote it.
    fn wait_reported(&self, root: &Path, value: &str) -> Result {
        let socket = mpathutil::agent::socket_path(&HostRoot::new(root));
        let metrics = root.join(METRICS_FILE.trim_start_matches('/'));
        let active = value
            .trim_start_matches('[')
            .split(',')
            .next()
            .unwrap_or("?");
        let start = Instant::now();
        loop {
            let status = mpathutil::agent::call(&socket, "status", Duration::from_secs(5))?;
            let in_metrics = std::fs::read_to_string(&metrics).is_ok_and(|m| {
                m.lines().any(|l| {
                    l.starts_with("sm_rs_lun_paths_active{") && l.ends_with(&format!(" {active}"))
                })
            });
            if status["luns"][0]["published"] == value && in_metrics {
                return Ok(());
            }
            if start.elapsed() > Duration::from_secs(10) {
                return Err(format!("the agent does not report {value}: {status}").into());
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGTERM, as systemd stops it.
    fn stop(&mut self) {
        if let Ok(pid) = i32::try_from(self.child.id())
            && let Some(pid) = rustix::process::Pid::from_raw(pid)
        {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        }
        let _ = self.child.wait();
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            self.stop();
        }
    }
}

/// Waits (up to 10 s) until the PBD's `key` holds `want`; how long that took.
fn wait_key(
    lab: &Lab,
    sr: &Ref<xenapi::refs::Sr>,
    key: &str,
    want: Option<&str>,
) -> Result<Duration> {
    let start = Instant::now();
    loop {
        if lab.pbd_other_config(0, sr).get(key).map(String::as_str) == want {
            return Ok(start.elapsed());
        }
        if start.elapsed() > Duration::from_secs(10) {
            return Err(format!("the agent did not set {key} to {want:?} within 10 s").into());
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

struct Show<'a> {
    lab: &'a Lab,
    out: std::io::StdoutLock<'static>,
}

impl Show<'_> {
    fn step(&mut self, n: u32, title: &str) -> Result {
        writeln!(self.out, "\n[{n}] {title}")?;
        Ok(())
    }

    fn cmd(&mut self, command: &str) -> Result {
        writeln!(self.out, "    # {command}")?;
        Ok(())
    }

    fn say(&mut self, text: &str) -> Result {
        for line in text.lines() {
            writeln!(self.out, "      {line}")?;
        }
        Ok(())
    }

    fn mpathutil(&mut self, args: &[&str]) -> Result {
        self.cmd(&format!("mpathutil {}", args.join(" ")))?;
        let sim = &self.lab.host(0).sim;
        let ctx = Context {
            multipathd: Config::for_socket(sim.socket_name()),
            root: HostRoot::new(sim.root()),
            pretty_json: true,
        };
        let (mut text, mut err) = (Vec::new(), Vec::new());
        let code = run(
            std::iter::once("mpathutil").chain(args.iter().copied()),
            &ctx,
            &mut text,
            &mut err,
        );
        let text = String::from_utf8_lossy(&text);
        if text.trim().is_empty() {
            self.say("(nothing: no multipath map on this host)")?;
        } else {
            self.say(&text)?;
        }
        if code != 0 {
            return Err(
                format!("mpathutil exited {code}: {}", String::from_utf8_lossy(&err)).into(),
            );
        }
        Ok(())
    }

    /// The LUN's lines of the agent's metrics file, as node_exporter's textfile collector
    /// reads them (the health line of its present state only).
    fn metrics(&mut self) -> Result {
        self.cmd(&format!(
            "grep -E '^sm_rs_lun_(paths_active|paths_max|health)' {METRICS_FILE} | grep -v ' 0$'"
        ))?;
        let file = self
            .lab
            .host(0)
            .sim
            .root()
            .join(METRICS_FILE.trim_start_matches('/'));
        let text = std::fs::read_to_string(file)?;
        let lines: Vec<&str> = text
            .lines()
            .filter(|l| {
                [
                    "sm_rs_lun_paths_active{",
                    "sm_rs_lun_paths_max{",
                    "sm_rs_lun_health{",
                ]
                .iter()
                .any(|p| l.starts_with(p))
                    && !l.ends_with(" 0")
            })
            .collect();
        self.say(&lines.join("\n"))
    }

    fn pbd_keys(&mut self, pbd_uuid: &str, sr: &Ref<xenapi::refs::Sr>) -> Result {
        self.cmd(&format!(
            "xe pbd-param-get uuid={pbd_uuid} param-name=other-config"
        ))?;
        let keys = self.lab.pbd_other_config(0, sr);
        let text = if keys.is_empty() {
            "(empty)".to_string()
        } else {
            keys.iter()
                .map(|(k, v)| format!("{k}: {v}"))
                .collect::<Vec<_>>()
                .join("; ")
        };
        self.say(&text)
    }
}

fn demo() -> Result {
    let me = std::env::current_exe()?;
    let lab = Lab::start(LabSpec {
        hosts: 1,
        fabric: Box::new(|| seed_fabric().0),
        driver: me.clone(),
        standins: me.clone(),
        style: ReplyStyle::V0_9_8,
        env: Vec::new(),
    })?;
    let host = lab.host(0);
    let mut show = Show {
        lab: &lab,
        out: stdout().lock(),
    };
    writeln!(
        show.out,
        "sm-rs demo: the seed scenario (seeds/000_*) on the simulated default\n  \
         pool:    one host ({}) on a simulated xapi, which runs the sm-rs driver as xapi does\n  \
         driver:  installed as LUNoHBASR (SR type lunohba, a VDI per LUN)\n  \
         storage: Intel Multi-Flex, SCM1 active/optimized (ALUA prio 50), SCM2 standby (prio 1),\n           \
         one 100 GiB LUN ({SEED_WWID}) over an mptsas SAS HBA\n  \
         multipathd: simulated (speaks 0.9.8), find_multipaths strict, maps only for LUNs in use\n  \
         agent:   sm-mpath-agent, fed the kernel's uevents; node_exporter's textfile directory exists",
        host.name
    )?;

    show.step(1, "Enable multipathing on the host")?;
    show.cmd(&format!(
        "xe host-param-set uuid={} other-config:multipathing=true other-config:multipathhandle=dmp",
        host.uuid
    ))?;
    lab.host_config(
        0,
        &[
            ("multipathing", Some("true")),
            ("multipathhandle", Some("dmp")),
        ],
    )?;

    show.step(
        2,
        "Create the SR (xapi runs sr_create, then plugs the PBD: sr_attach)",
    )?;
    show.cmd("xe sr-create type=lunohba shared=true name-label=\"Seed array\"")?;
    let sr = lab.create_sr("lunohba", "Seed array", &[])?;
    let sr_uuid = lab.xapi.db().srs[sr.as_str()].uuid.clone();
    let pbd = lab.pbd(0, &sr);
    let pbd_uuid = lab.xapi.db().pbds[pbd.as_str()].uuid.clone();
    show.say(&sr_uuid)?;
    show.cmd(&format!(
        "xe vdi-list sr-uuid={sr_uuid} managed=false params=uuid,name-label,location"
    ))?;
    let listed = lab
        .vdi_of(&sr, SEED_WWID)
        .ok_or("the SR has no VDI for the seed LUN")?;
    let listed_uuid = lab.xapi.db().vdis[&listed].uuid.clone();
    show.say("(LUNs are listed unclaimed: no VM can use one until it is claimed)")?;
    show.cmd(&format!(
        "xe vdi-introduce sr-uuid={sr_uuid} uuid={listed_uuid} type=user location={SEED_WWID} sm-config:SCSIid={SEED_WWID}"
    ))?;
    let vdi = lab.claim(&sr, SEED_WWID)?;
    for (_, uuid, location) in lab.vdis(&sr) {
        let label = lab
            .xapi
            .db()
            .vdis
            .values()
            .find(|v| v.uuid == uuid)
            .map(|v| v.name_label.clone())
            .unwrap_or_default();
        show.say(&format!("{uuid}  {label}  location={location}"))?;
    }
    show.pbd_keys(&pbd_uuid, &sr)?;
    show.mpathutil(&["list"])?;
    show.say("(the LUN is not in use: it has no device-mapper map)")?;

    show.step(
        3,
        "Start the path agent (it keeps the PBD's path counts true by itself)",
    )?;
    show.cmd("systemctl start sm-mpath-agent")?;
    let metrics_dir = host.sim.root().join(
        Path::new(METRICS_FILE.trim_start_matches('/'))
            .parent()
            .ok_or("a metrics directory")?,
    );
    std::fs::create_dir_all(metrics_dir)?;
    let mut agent = Agent::start(&lab, &me)?;
    show.mpathutil(&["agent"])?;

    show.step(
        4,
        "Attach the VDI: a VM's disk is plugged (vdi_attach, vdi_activate)",
    )?;
    show.cmd("xe vbd-plug uuid=<vbd of the VDI>")?;
    let attached = lab.attach(0, &vdi)?;
    show.say(&format!(
        "device handed to xapi: {}",
        attached.get("params").cloned().unwrap_or_default()
    ))?;
    let key = format!("mpath-{SEED_WWID}");
    wait_key(&lab, &sr, &key, Some("[2, 2]"))?;
    show.say("(the driver kicked the agent, which published the count: one writer)")?;
    show.mpathutil(&["status"])?;
    show.pbd_keys(&pbd_uuid, &sr)?;

    let array = sm_testkit::fabric::ArrayId(0);
    let driver_runs = lab.xapi.driver_calls().len();
    show.step(
        5,
        "Pull out SCM2 (the standby controller): the count follows, no sr-update",
    )?;
    let (_, events) = agent
        .relay
        .change(&host.sim, |f| f.pull_controller(array, "SCM2"));
    let took = wait_key(&lab, &sr, &key, Some("[1, 2]"))?;
    show.say(&format!(
        "(the kernel sent {events} uevents; the agent had [1, 2] in xapi {} ms later, \
         its debounce of 200 ms included)",
        took.as_millis()
    ))?;
    agent.wait_reported(host.sim.root(), "[1, 2]")?;
    show.mpathutil(&["status"])?;
    show.pbd_keys(&pbd_uuid, &sr)?;
    show.mpathutil(&["agent"])?;
    show.metrics()?;

    show.step(6, "Push SCM2 back in: the count follows again")?;
    let (_, events) = agent
        .relay
        .change(&host.sim, |f| drop(f.push_controller(array, "SCM2")));
    let took = wait_key(&lab, &sr, &key, Some("[2, 2]"))?;
    show.say(&format!(
        "(the kernel sent {events} uevents; [2, 2] in xapi {} ms later)",
        took.as_millis()
    ))?;
    agent.wait_reported(host.sim.root(), "[2, 2]")?;
    show.mpathutil(&["count"])?;
    show.pbd_keys(&pbd_uuid, &sr)?;
    show.metrics()?;
    if lab.xapi.driver_calls().len() != driver_runs {
        return Err(
            "a driver call ran during the pull and push: the agent alone should have".into(),
        );
    }

    show.step(
        7,
        "Detach the VDI (vdi_deactivate, vdi_detach): its map goes",
    )?;
    show.cmd("xe vbd-unplug uuid=<vbd of the VDI>")?;
    lab.detach(0, &vdi)?;
    wait_key(&lab, &sr, &key, None)?;
    show.mpathutil(&["list"])?;
    show.pbd_keys(&pbd_uuid, &sr)?;

    show.step(8, "Unplug the SR from the host (sr_detach)")?;
    show.cmd(&format!("xe pbd-unplug uuid={pbd_uuid}"))?;
    lab.unplug(0, &sr)?;
    show.pbd_keys(&pbd_uuid, &sr)?;

    show.cmd("systemctl stop sm-mpath-agent; grep 'PATH HAS' /var/log/SMlog")?;
    agent.stop();
    let transitions: Vec<String> = agent
        .log_text()
        .lines()
        .filter(|l| l.contains("PATH HAS"))
        .map(str::to_string)
        .collect();
    show.say(&transitions.join("\n"))?;

    let calls: Vec<String> = lab
        .xapi
        .driver_calls()
        .iter()
        .map(|c| c.command.clone())
        .collect();
    let smlog = std::fs::read_to_string(host.sim.root().join("var/log/SMlog")).unwrap_or_default();
    writeln!(
        show.out,
        "\nThe driver runs xapi made, in order: {}\n\
         The driver wrote {} lines to the host's SMlog. `cargo xtask test` tests all of this \
         (the driver: `cargo xtask test -E 'binary(/driver_/)'`; the agent: \
         `cargo xtask test -E 'binary(/agent_/)'`).",
        calls.join(", "),
        smlog.lines().count()
    )?;
    Ok(())
}
