//! The main job on the embedded simulated default: the reference scenario of `seeds/000_*`
//! — a dual-controller ALUA array whose controller is pulled and pushed back — as a pool
//! administrator lives it with sm-rs: enable multipathing, create the SR, attach a VDI,
//! pull a controller, look at the paths, push it back, detach, unplug. Each step is shown
//! as the `xe` command (or `mpathutil`) it stands for, then what the host and xapi show.
//!
//! Everything but the storage is real code: xapi is the simulator (`sm-testkit`), which runs
//! the sm-rs driver exactly as xapi's sm_exec does; the array, the host's disks and
//! multipathd are simulated; `mpathutil` is the real CLI. The driver and the stand-in
//! programs are this very executable, installed under their names (argv[0] picks).

use mpathutil::cli::{Context, run};
use mpathutil::{Config, HostRoot};
use sm_testkit::host_sim::relay;
use sm_testkit::lab::{Lab, LabSpec};
use sm_testkit::multipathd_sim::ReplyStyle;
use sm_testkit::scenarios::{SEED_WWID, seed_fabric};
use std::io::{Write, stdout};
use std::process::ExitCode;
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
        standins: me,
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
         multipathd: simulated (speaks 0.9.8), find_multipaths strict, maps only for LUNs in use",
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
        "Attach the VDI: a VM's disk is plugged (vdi_attach, vdi_activate)",
    )?;
    show.cmd("xe vbd-plug uuid=<vbd of the VDI>")?;
    let attached = lab.attach(0, &vdi)?;
    show.say(&format!(
        "device handed to xapi: {}",
        attached.get("params").cloned().unwrap_or_default()
    ))?;
    show.mpathutil(&["status"])?;
    show.pbd_keys(&pbd_uuid, &sr)?;

    let array = sm_testkit::fabric::ArrayId(0);
    show.step(4, "Pull out SCM2 (the standby controller)")?;
    host.sim.fabric(|f| f.pull_controller(array, "SCM2"));
    show.mpathutil(&["status"])?;
    show.cmd(&format!(
        "xe sr-update uuid={sr_uuid}   (refreshes this host's path counts now)"
    ))?;
    lab.block_on(lab.session.call_void("SR.update", vec![(&sr).into()]))?;
    show.pbd_keys(&pbd_uuid, &sr)?;
    show.mpathutil(&["count"])?;

    show.step(5, "Push SCM2 back in")?;
    host.sim.fabric(|f| drop(f.push_controller(array, "SCM2")));
    show.mpathutil(&["status"])?;
    show.cmd(&format!("xe sr-update uuid={sr_uuid}"))?;
    lab.block_on(lab.session.call_void("SR.update", vec![(&sr).into()]))?;
    show.pbd_keys(&pbd_uuid, &sr)?;

    show.step(
        6,
        "Detach the VDI (vdi_deactivate, vdi_detach): its map goes",
    )?;
    show.cmd("xe vbd-unplug uuid=<vbd of the VDI>")?;
    lab.detach(0, &vdi)?;
    show.mpathutil(&["list"])?;
    show.pbd_keys(&pbd_uuid, &sr)?;

    show.step(7, "Unplug the SR from the host (sr_detach)")?;
    show.cmd(&format!("xe pbd-unplug uuid={pbd_uuid}"))?;
    lab.unplug(0, &sr)?;
    show.pbd_keys(&pbd_uuid, &sr)?;

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
         The driver wrote {} lines to the host's SMlog. `cargo nextest run -E 'binary(/driver_/)'` tests all of this.",
        calls.join(", "),
        smlog.lines().count()
    )?;
    Ok(())
}
