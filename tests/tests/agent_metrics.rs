//! The agent's Prometheus metrics file, as node_exporter's textfile collector reads it:
//! strictly well-formed text format after every pass, following a controller pulled and
//! pushed back; not written (and no directory made) where no collector directory exists.
#![allow(clippy::unwrap_used)] // Test code: a failed unwrap is a failed test.

mod common;

use common::*;
use sm_plugin::agent::metrics::DEFAULT_FILE;
use sm_testkit::agent_lab::tap::XapiTap;
use sm_testkit::agent_lab::{AgentProc, wait_until};
use sm_testkit::multipathd_sim::ReplyStyle;
use sm_testkit::scenarios::seed_fabric;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// One series: its name and labels, as `name{k="v",…}` with the labels sorted.
type Series = String;

/// Parses the text exposition format (0.0.4) strictly, as far as what we write goes:
/// every family has one `# HELP` and one `# TYPE` (gauge or counter) before its samples
/// and its samples together; names and label names are valid; label values are quoted
/// with only `\\`, `\"` and `\n` escaped; values are numbers; no series twice; counters
/// (and only they) end in `_total`; every name is ours (`sm_rs_`). Panics with the line.
fn parse_exposition(text: &str) -> BTreeMap<Series, f64> {
    assert!(text.ends_with('\n'), "the file ends with a newline");
    let name_ok = |n: &str| {
        let mut chars = n.chars();
        chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
    };
    let label_ok = |n: &str| name_ok(n) && !n.contains(':') && !n.starts_with("__");
    let mut series = BTreeMap::new();
    let mut families: BTreeMap<String, String> = BTreeMap::new();
    let mut current: Option<(String, Option<String>)> = None;
    let mut closed = BTreeSet::new();
    for (i, line) in text.lines().enumerate() {
        let at = format!("line {}: {line:?}", i + 1);
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').expect(&at);
            assert!(name_ok(name) && name.starts_with("sm_rs_"), "{at}");
            assert!(!help.trim().is_empty(), "{at}: a HELP says something");
            if let Some((previous, _)) = current.take() {
                closed.insert(previous);
            }
            assert!(
                !closed.contains(name) && !families.contains_key(name),
                "{at}: a family once"
            );
            current = Some((name.to_string(), None));
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect(&at);
            let (family, seen) = current.as_mut().expect(&at);
            assert_eq!(name, family, "{at}: TYPE follows its HELP");
            assert!(seen.is_none(), "{at}: one TYPE");
            assert!(matches!(kind, "gauge" | "counter"), "{at}");
            assert_eq!(
                kind == "counter",
                name.ends_with("_total"),
                "{at}: counters, and only they, end in _total"
            );
            *seen = Some(kind.to_string());
            families.insert(name.to_string(), kind.to_string());
            continue;
        }
        assert!(!line.starts_with('#') && !line.is_empty(), "{at}");
        let (head, value) = line.rsplit_once(' ').expect(&at);
        let value: f64 = value.parse().expect(&at);
        let (name, labels) = match head.split_once('{') {
            None => (head, BTreeMap::new()),
            Some((name, rest)) => {
                let body = rest.strip_suffix('}').expect(&at);
                let mut labels = BTreeMap::new();
                let mut chars = body.chars().peekable();
                while chars.peek().is_some() {
                    let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
                    assert!(label_ok(&key), "{at}: label name {key:?}");
                    assert_eq!(chars.next(), Some('"'), "{at}");
                    let mut value = String::new();
                    loop {
                        match chars.next().expect(&at) {
                            '"' => break,
                            '\\' => match chars.next().expect(&at) {
                                '\\' => value.push('\\'),
                                '"' => value.push('"'),
                                'n' => value.push('\n'),
                                other => panic!("{at}: escape \\{other}"),
                            },
                            '\n' => panic!("{at}"),
                            c => value.push(c),
                        }
                    }
                    assert!(labels.insert(key, value).is_none(), "{at}: a label twice");
                    match chars.next() {
                        None => break,
                        Some(',') => {}
                        Some(c) => panic!("{at}: {c:?} after a label"),
                    }
                }
                (name, labels)
            }
        };
        let (family, kind) = current.as_ref().expect(&at);
        assert_eq!(name, family, "{at}: a sample of the family above");
        assert!(kind.is_some(), "{at}: after its TYPE");
        let key = format!(
            "{name}{{{}}}",
            labels
                .iter()
                .map(|(k, v)| format!("{k}={v:?}"))
                .collect::<Vec<_>>()
                .join(",")
        );
        assert!(series.insert(key, value).is_none(), "{at}: a series twice");
    }
    series
}

fn read(file: &Path) -> BTreeMap<Series, f64> {
    parse_exposition(&std::fs::read_to_string(file).unwrap_or_else(|_| "\n".into()))
}

/// The value of the series whose key holds every one of `parts`.
fn value(metrics: &BTreeMap<Series, f64>, parts: &[&str]) -> Option<f64> {
    let found: Vec<f64> = metrics
        .iter()
        .filter(|(k, _)| parts.iter().all(|p| k.contains(p)))
        .map(|(_, v)| *v)
        .collect();
    assert!(found.len() <= 1, "{parts:?} names one series: {found:?}");
    found.first().copied()
}

#[test]
fn the_metrics_follow_a_pulled_controller_and_parse_strictly() {
    let lab = lab_with(1, || seed_fabric().0, ReplyStyle::V0_9_8);
    multipath_on(&lab, 0);
    let sr = lab.create_sr("lunohba", "Seed", &[]).unwrap();
    let sr_uuid = lab.xapi.db().srs[sr.as_str()].uuid.clone();
    let root = lab.host(0).sim.root().to_path_buf();
    let file = root.join(DEFAULT_FILE.trim_start_matches('/'));
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    let tap = XapiTap::in_front_of(&lab).unwrap();
    // The default file, under the host root.
    let agent = AgentProc::start(&lab, 0, &tap, &[]);
    wait_until("the first metrics", || file.exists());
    let m = read(&file);
    assert!(value(&m, &["sm_rs_agent_passes_total{}"]) >= Some(1.0));
    assert_eq!(value(&m, &["sm_rs_agent_xapi_reachable{}"]), Some(1.0));
    assert!(value(&m, &["sm_rs_agent_info{", &lab.host(0).uuid]).is_some());
    assert_eq!(
        value(&m, &["sm_rs_lun_paths_active{"]),
        None,
        "no LUN in use yet"
    );

    let vdi = lab.claim(&sr, SEED).unwrap();
    lab.attach(0, &vdi).unwrap();
    let lun = [format!("scsi_id={SEED:?}"), format!("sr={sr_uuid:?}")];
    let of = |name: &str| {
        let m = read(&file);
        let mut parts = vec![name];
        parts.extend(lun.iter().map(String::as_str));
        value(&m, &parts)
    };
    wait_until("[2, 2] in the metrics", || {
        of("sm_rs_lun_paths_active{") == Some(2.0)
    });
    let m = read(&file);
    assert_eq!(of("sm_rs_lun_paths_max{"), Some(2.0));
    assert_eq!(of("sm_rs_lun_paths_present{"), Some(2.0));
    assert_eq!(value(&m, &["sm_rs_lun_health{", "state=\"ok\""]), Some(1.0));
    assert_eq!(
        value(&m, &["sm_rs_lun_health{", "state=\"degraded\""]),
        Some(0.0)
    );
    let paths: Vec<_> = m
        .iter()
        .filter(|(k, v)| k.starts_with("sm_rs_path_state{") && **v == 1.0)
        .collect();
    assert_eq!(paths.len(), 2, "one state per path: {paths:?}");
    assert_eq!(of("sm_rs_lun_path_flaps_total{"), Some(0.0));
    assert_eq!(value(&m, &["sm_rs_agent_pending_writes{}"]), Some(0.0));

    // Pull the standby controller: [1, 2], degraded, one path flapped.
    let relay = agent.relay();
    relay.change(&lab.host(0).sim, |f| {
        f.pull_controller(seed_fabric().1, "SCM2")
    });
    wait_until("[1, 2] in the metrics", || {
        of("sm_rs_lun_paths_active{") == Some(1.0)
    });
    let m = read(&file);
    assert_eq!(of("sm_rs_lun_paths_max{"), Some(2.0));
    assert_eq!(
        value(&m, &["sm_rs_lun_health{", "state=\"degraded\""]),
        Some(1.0)
    );
    assert_eq!(of("sm_rs_lun_path_flaps_total{"), Some(1.0));
    assert!(value(&m, &["sm_rs_agent_uevents_total{}"]) >= Some(1.0));
    assert!(value(&m, &["sm_rs_agent_xapi_writes_total{}"]) >= Some(2.0));
    assert_eq!(
        lab.pbd_other_config(0, &sr)
            .get(&format!("mpath-{SEED}"))
            .map(String::as_str),
        Some("[1, 2]"),
        "the metrics follow what xapi was given"
    );

    // Push it back: [2, 2] again; the counters keep their counts.
    relay.change(&lab.host(0).sim, |f| {
        drop(f.push_controller(seed_fabric().1, "SCM2"))
    });
    wait_until("[2, 2] again", || {
        of("sm_rs_lun_paths_active{") == Some(2.0)
    });
    let m = read(&file);
    assert_eq!(value(&m, &["sm_rs_lun_health{", "state=\"ok\""]), Some(1.0));
    assert_eq!(of("sm_rs_lun_path_flaps_total{"), Some(1.0));
    let last = value(&m, &["sm_rs_agent_last_pass_timestamp_seconds{}"]).unwrap();
    let started = value(&m, &["sm_rs_agent_start_time_seconds{}"]).unwrap();
    assert!(last >= started && started > 1.0e9, "{started} {last}");

    // Released: its series go.
    lab.detach(0, &vdi).unwrap();
    wait_until("the LUN's series gone", || {
        of("sm_rs_lun_publish_pending{").is_none() && of("sm_rs_lun_paths_active{").is_none()
    });
    // Only the file: its temporary name never stays.
    let names: Vec<_> = std::fs::read_dir(file.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, [file.file_name().unwrap()], "{names:?}");
}

#[test]
fn no_collector_directory_no_file_and_an_empty_flag_turns_metrics_off() {
    let lab = seed_lab();
    multipath_on(&lab, 0);
    let tap = XapiTap::in_front_of(&lab).unwrap();
    let root = lab.host(0).sim.root().to_path_buf();
    let agent = AgentProc::start(&lab, 0, &tap, &[]);
    agent.kick_passes(2);
    let dir = root.join(DEFAULT_FILE.trim_start_matches('/'));
    assert!(!dir.parent().unwrap().exists(), "no directory made");
    assert!(
        agent.log().contains("metrics not written"),
        "{}",
        agent.log()
    );
    drop(agent);

    // Off: nothing, even where the directory is.
    std::fs::create_dir_all(dir.parent().unwrap()).unwrap();
    let agent = AgentProc::start(&lab, 0, &tap, &["--metrics-file="]);
    agent.kick_passes(2);
    assert!(!dir.exists());
    drop(agent);

    // Elsewhere: any path, under the host root.
    let agent = AgentProc::start(&lab, 0, &tap, &["--metrics-file=/srv/metrics/agent.prom"]);
    agent.kick_passes(2);
    std::fs::create_dir_all(root.join("srv/metrics")).unwrap();
    agent.kick_passes(2);
    let m = read(&root.join("srv/metrics/agent.prom"));
    assert!(
        value(&m, &["sm_rs_agent_passes_total{}"]) >= Some(3.0),
        "{m:?}"
    );
}
