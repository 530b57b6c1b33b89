//! `cargo xtask test`: the README's test command.
//!
//! 1. Provisions what the suite needs, once per machine, cached and under a lock (the
//!    `.ci/install.d/` scripts do the work, so CI and a person run the same steps): the venv with
//!    the official `XenAPI` binding; as root on Debian 12, the real-stack tools.
//! 2. Decides, before the run, which families of tests this machine cannot run, and leaves them
//!    out with a nextest filter, so that nextest counts them as skipped (a test that returns
//!    early would count as passed). `SM_RS_REALSTACK=require` (CI) makes a real-stack family
//!    that cannot run a failure instead.
//! 3. Runs `cargo nextest run --workspace --no-fail-fast` with the caller's extra arguments, and
//!    ends with one line per skipped family: which tests and why.
//!
//! The families, by naming convention:
//!
//! | tests | need |
//! |---|---|
//! | `tests/tests/realstack_*.rs` | qemu, and a cached guest image or root and the tools to build one |
//! | … of those, named `*dom0*` | also the dom0's multipathd sources: `../shared/dom0-multipathd` beside the project, or `SM_RS_DOM0_MULTIPATHD` |
//! | named `*stock_sm*` | an xcp-ng/sm checkout named by `SM_RS_STOCK_SM` |
//! | `tests/tests/xapi_python.rs` | the venv with `XenAPI` (made here; `SM_RS_PYTHON` names another Python) |
//! | `tests/tests/driver_python.rs` | `python3` |

use std::env;
use std::ffi::{OsStr, OsString};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};

/// The exit status by which an install script says "this machine cannot, and that is no
/// error" (its one line of stdout says why).
const CANNOT_HERE: i32 = 3;

pub fn run(args: Vec<OsString>) -> ExitCode {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap_or(Path::new("."))
        .to_path_buf();
    let mode = match RealStackMode::from_env() {
        Ok(mode) => mode,
        Err(e) => {
            eprintln!("xtask: {e}");
            return ExitCode::from(2);
        }
    };

    let mut run_env: Vec<(&str, OsString)> = Vec::new();
    let mut families = Vec::new();

    let (xenapi, python) = python_peers(&root, &mut run_env);
    families.push(Family {
        what: "the XenAPI peer tests (tests/tests/xapi_python.rs)",
        filter: "binary(=xapi_python)",
        verdict: xenapi,
    });
    families.push(Family {
        what: "the xmlrpc.client peer test (tests/tests/driver_python.rs)",
        filter: "binary(=driver_python)",
        verdict: python,
    });

    let realstack = real_stack(&root, mode);
    if realstack == Verdict::Runs {
        // This run decided the real stack works here: a test that finds otherwise fails with
        // its reason instead of passing as a silent skip.
        run_env.push(("SM_RS_REALSTACK", "require".into()));
        families.push(Family {
            what: "the real-stack tests on the dom0's multipathd 0.4.9-xs (realstack_*, named *dom0*)",
            filter: "binary(/^realstack_/) & test(/dom0/)",
            verdict: dom0_sources(&root, mode, &mut run_env),
        });
    } else {
        families.push(Family {
            what: "the real-stack tests (tests/tests/realstack_*.rs)",
            filter: "binary(/^realstack_/)",
            verdict: realstack,
        });
    }
    families.push(Family {
        what: "the RPM test (tests/tests/packaging_rpm.rs)",
        filter: "binary(=packaging_rpm)",
        verdict: packaging(&root),
    });
    families.push(Family {
        what: "the tests beside stock sm (named *stock_sm*)",
        filter: "test(/stock_sm/)",
        verdict: stock_sm(),
    });

    let left_out: Vec<&Family> = families
        .iter()
        .filter(|f| f.verdict != Verdict::Runs)
        .collect();
    let status = nextest(&root, &args, &left_out, &run_env);

    for family in &left_out {
        match &family.verdict {
            Verdict::Runs => {}
            Verdict::Skipped(why) => eprintln!("xtask: SKIPPED {}: {why}", family.what),
            Verdict::Failed(why) => eprintln!("xtask: FAILED {}: {why}", family.what),
        }
    }
    let failed = left_out
        .iter()
        .any(|f| matches!(f.verdict, Verdict::Failed(_)));
    match status {
        Ok(0) if failed => ExitCode::FAILURE,
        Ok(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        Err(e) => {
            eprintln!(
                "xtask: cannot run cargo nextest: {e} (install it: cargo install cargo-nextest --locked)"
            );
            ExitCode::FAILURE
        }
    }
}

/// A set of tests that needs something of the machine.
struct Family {
    what: &'static str,
    /// The nextest filterset that selects its tests.
    filter: &'static str,
    verdict: Verdict,
}

#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    Runs,
    /// Cannot run here, and need not: left out, counted as skipped.
    Skipped(String),
    /// Cannot run here but must: left out, and the command fails after the rest has run.
    Failed(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RealStackMode {
    Auto,
    Require,
    Off,
}

impl RealStackMode {
    fn from_env() -> Result<Self, String> {
        parse_mode(&env::var("SM_RS_REALSTACK").unwrap_or_default())
    }

    fn cannot(self, why: String) -> Verdict {
        match self {
            Self::Require => Verdict::Failed(format!("{why} (SM_RS_REALSTACK=require)")),
            Self::Auto | Self::Off => Verdict::Skipped(why),
        }
    }
}

/// The words of the harness's `SM_RS_REALSTACK` (`sm_testkit::realstack::Mode`).
fn parse_mode(value: &str) -> Result<RealStackMode, String> {
    match value.trim().to_ascii_lowercase().as_str() {
        "" | "auto" => Ok(RealStackMode::Auto),
        "require" | "required" | "1" | "yes" => Ok(RealStackMode::Require),
        "off" | "skip" | "0" | "no" => Ok(RealStackMode::Off),
        other => Err(format!(
            "SM_RS_REALSTACK={other:?}: use auto, require or off"
        )),
    }
}

/// The venv with `XenAPI` (made on first use) and `python3`, for the two peer-test binaries.
fn python_peers(root: &Path, run_env: &mut Vec<(&str, OsString)>) -> (Verdict, Verdict) {
    let xenapi = if env::var_os("SM_RS_PYTHON").is_some_and(|p| !p.is_empty()) {
        Verdict::Runs // the caller's own Python; the test says if it lacks XenAPI
    } else {
        match cache_home() {
            None => Verdict::Skipped("no HOME to keep the XenAPI venv in".into()),
            Some(cache) => {
                let venv = cache.join("sm-rs").join("py-xenapi");
                let python = venv.join("bin").join("python3");
                let ready = Command::new(&python)
                    .args(["-c", "import XenAPI"])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status()
                    .is_ok_and(|s| s.success());
                let verdict = if ready {
                    Verdict::Runs
                } else {
                    eprintln!(
                        "xtask: making the venv with the XenAPI binding in {} (once per machine)",
                        venv.display()
                    );
                    install(root, "30-python.sh", &[("SM_RS_PY_VENV", venv.as_os_str())])
                };
                if verdict == Verdict::Runs {
                    run_env.push(("SM_RS_PYTHON", python.into_os_string()));
                }
                verdict
            }
        }
    };
    // Checked after the venv script, which as root installs python3 where it lacks.
    let python = match find_program("python3") {
        Some(_) => Verdict::Runs,
        None => Verdict::Skipped("python3 is not installed".into()),
    };
    (xenapi, python)
}

/// Whether the real-stack tests can run here, after installing their tools as root.
fn real_stack(root: &Path, mode: RealStackMode) -> Verdict {
    if mode == RealStackMode::Off {
        return Verdict::Skipped("SM_RS_REALSTACK=off".into());
    }
    let mut check = real_stack_host();
    if check.is_err() && is_root() && tools_missing() {
        eprintln!(
            "xtask: installing the real-stack tools (.ci/install.d/40-realstack.sh; \
             SM_RS_REALSTACK=off skips them)"
        );
        match install(root, "40-realstack.sh", &[]) {
            Verdict::Runs => check = real_stack_host(),
            Verdict::Skipped(why) | Verdict::Failed(why) => return mode.cannot(why),
        }
    }
    match check {
        Ok(()) => Verdict::Runs,
        Err(why) if is_root() => mode.cannot(why),
        Err(why) => mode.cannot(format!(
            "{why}; run as root, `cargo xtask test` installs what they need on Debian 12"
        )),
    }
}

/// What the host lacks to run the real stack, as the harness's `check_host` sees it
/// (`tests/src/realstack/mod.rs`), except that any cached image counts: the harness, run with
/// `SM_RS_REALSTACK=require`, stays the judge of the one it needs.
fn real_stack_host() -> Result<(), String> {
    match env::var_os("SM_RS_REALSTACK_QEMU").filter(|q| !q.is_empty()) {
        Some(qemu) if !Path::new(&qemu).is_file() => {
            return Err(format!(
                "SM_RS_REALSTACK_QEMU={}: no such program",
                qemu.to_string_lossy()
            ));
        }
        Some(_) => {}
        None => {
            if find_program("qemu-system-x86_64").is_none() {
                return Err("qemu-system-x86_64 is not installed".into());
            }
        }
    }
    if image_cached() {
        return Ok(());
    }
    if !is_root() {
        return Err("no guest image is cached, and building one needs root".into());
    }
    if let Some(tool) = BUILD_TOOLS.iter().find(|t| find_program(t).is_none()) {
        return Err(format!(
            "{tool} is not installed (needed to build the guest image)"
        ));
    }
    if !Path::new("/bin/busybox").is_file() {
        return Err("busybox-static is not installed (needed for the guest's initrd)".into());
    }
    Ok(())
}

const BUILD_TOOLS: [&str; 7] = [
    "debootstrap",
    "mkfs.ext4",
    "cpio",
    "gzip",
    "apt-get",
    "dpkg-deb",
    "chroot",
];

fn tools_missing() -> bool {
    find_program("qemu-system-x86_64").is_none()
        || BUILD_TOOLS.iter().any(|t| find_program(t).is_none())
        || !Path::new("/bin/busybox").is_file()
}

/// A guest image in the harness's cache (`realstack::cache_dir`), whatever its inputs.
fn image_cached() -> bool {
    let cache = match env::var_os("SM_RS_REALSTACK_CACHE").filter(|d| !d.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => match cache_home() {
            Some(home) => home.join("sm-rs").join("realstack"),
            None => return false,
        },
    };
    fs::read_dir(cache.join("images"))
        .is_ok_and(|entries| entries.flatten().any(|e| e.path().join("READY").is_file()))
}

/// The dom0's multipathd sources, passed on to the tests as `SM_RS_DOM0_MULTIPATHD`.
fn dom0_sources(root: &Path, mode: RealStackMode, run_env: &mut Vec<(&str, OsString)>) -> Verdict {
    let dir = env::var_os("SM_RS_DOM0_MULTIPATHD")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| root.parent().unwrap_or(root).join("shared/dom0-multipathd"));
    if !dir.is_dir() {
        return mode.cannot(format!(
            "no dom0 multipathd sources at {} (../shared/dom0-multipathd beside the project, \
             or SM_RS_DOM0_MULTIPATHD)",
            dir.display()
        ));
    }
    let dir = fs::canonicalize(&dir).unwrap_or(dir);
    run_env.push(("SM_RS_DOM0_MULTIPATHD", dir.into_os_string()));
    Verdict::Runs
}

/// The RPM test builds static musl binaries and an RPM, and installs it as root into a
/// scratch root: rpmbuild, musl-gcc and the musl target, and systemd's tools for the agent's
/// unit, installed as root on first use.
fn packaging(root: &Path) -> Verdict {
    let lacking = || -> Vec<&str> {
        let mut lacking: Vec<&str> = [
            "rpmbuild",
            "rpm",
            "musl-gcc",
            "systemctl",
            "systemd-analyze",
        ]
        .into_iter()
        .filter(|tool| find_program(tool).is_none())
        .collect();
        let musl = Command::new("rustup")
            .args(["target", "list", "--installed"])
            .output()
            .is_ok_and(|o| {
                String::from_utf8_lossy(&o.stdout).contains("x86_64-unknown-linux-musl")
            });
        if !musl {
            lacking.push("the x86_64-unknown-linux-musl target");
        }
        lacking
    };
    if !is_root() {
        return Verdict::Skipped("it installs an RPM into a scratch root, which needs root".into());
    }
    if lacking().is_empty() {
        return Verdict::Runs;
    }
    eprintln!("xtask: installing the packaging tools (.ci/install.d/20-packaging.sh)");
    match install(root, "20-packaging.sh", &[]) {
        Verdict::Runs if lacking().is_empty() => Verdict::Runs,
        Verdict::Runs => Verdict::Skipped(format!("{} not installed", lacking().join(", "))),
        other => other,
    }
}

/// Stock sm is not ours to fetch: the tests beside it run when the caller names a checkout.
fn stock_sm() -> Verdict {
    match env::var_os("SM_RS_STOCK_SM").filter(|d| !d.is_empty()) {
        None => {
            Verdict::Skipped("SM_RS_STOCK_SM is not set (the path of an xcp-ng/sm checkout)".into())
        }
        Some(dir) if Path::new(&dir).join("drivers").is_dir() => Verdict::Runs,
        Some(dir) => Verdict::Failed(format!(
            "SM_RS_STOCK_SM={} is not an xcp-ng/sm checkout (no drivers/)",
            dir.to_string_lossy()
        )),
    }
}

/// Runs `.ci/install.d/<script>`: `Runs` when it made the machine ready, `Skipped` when it
/// says this machine cannot ([`CANNOT_HERE`]), `Failed` otherwise.
fn install(root: &Path, script: &str, vars: &[(&str, &OsStr)]) -> Verdict {
    let path = root.join(".ci/install.d").join(script);
    let output = Command::new("bash")
        .arg(&path)
        .envs(vars.iter().copied())
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output();
    let output = match output {
        Ok(output) => output,
        Err(e) => return Verdict::Failed(format!("cannot run {}: {e}", path.display())),
    };
    let said = String::from_utf8_lossy(&output.stdout);
    let said = said.trim();
    match output.status.code() {
        Some(0) => {
            if !said.is_empty() {
                eprintln!("{said}");
            }
            Verdict::Runs
        }
        Some(CANNOT_HERE) => Verdict::Skipped(said.lines().last().unwrap_or(script).to_owned()),
        _ => Verdict::Failed(format!(
            ".ci/install.d/{script} failed ({}){}{said}",
            output.status,
            if said.is_empty() { "" } else { ": " }
        )),
    }
}

/// `cargo nextest run --workspace --no-fail-fast ARGS…`, leaving out the families given.
fn nextest(
    root: &Path,
    args: &[OsString],
    left_out: &[&Family],
    run_env: &[(&str, OsString)],
) -> io::Result<i32> {
    // The caller's own choices win; what follows `--` is for the test binaries.
    let options = args.split(|a| a == "--").next().unwrap_or_default();
    let has = |names: &[&str]| {
        options.iter().any(|a| {
            let a = a.to_string_lossy();
            names.iter().any(|n| {
                a == *n || a.starts_with(&format!("{n}=")) || (n.len() == 2 && a.starts_with(n))
            })
        })
    };
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command.current_dir(root).args(["nextest", "run"]);
    if !has(&["-p", "--package", "--workspace", "--all"]) {
        command.arg("--workspace");
    }
    if !has(&["--fail-fast", "--no-fail-fast", "--max-fail"]) {
        command.arg("--no-fail-fast");
    }
    if !left_out.is_empty() {
        // Each family's tests are named with a test() predicate: a filter that leaves out a whole
        // binary by its name alone keeps nextest from listing it, and then from counting its
        // tests as skipped.
        let families = left_out
            .iter()
            .map(|f| format!("({})", f.filter))
            .collect::<Vec<_>>()
            .join(" | ");
        let ours = format!("not (({families}) & test(/.*/))");
        // Two -E are a union: the caller's own filters are combined with ours into one.
        let theirs = filtersets(options);
        let filter = if theirs.is_empty() {
            ours
        } else {
            let union = theirs
                .iter()
                .map(|f| format!("({f})"))
                .collect::<Vec<_>>()
                .join(" | ");
            format!("({union}) & {ours}")
        };
        command.arg("-E").arg(filter);
        // Nextest names each skipped test at the end, unless the caller chose tests (`-E`, a
        // name, a package), which would make every other test a skip to list.
        let chose = !theirs.is_empty()
            || options
                .iter()
                .any(|a| !a.to_string_lossy().starts_with('-'));
        if !chose && !has(&["--final-status-level"]) {
            command.arg("--final-status-level=skip");
        }
    }
    if left_out.is_empty() {
        command.args(args);
    } else {
        command.args(without_filtersets(args));
    }
    // What `cargo run` set for this program is not the caller's: passed on, it would make
    // build scripts that watch such variables (ring's) run again, and rebuild their crates.
    for (key, _) in env::vars_os() {
        let key = key.to_string_lossy();
        if key.starts_with("CARGO_PKG_")
            || key.starts_with("CARGO_MANIFEST_")
            || [
                "CARGO_CRATE_NAME",
                "CARGO_BIN_NAME",
                "CARGO_PRIMARY_PACKAGE",
            ]
            .contains(&&*key)
        {
            command.env_remove(&*key);
        }
    }
    command.envs(run_env.iter().map(|(k, v)| (k, v)));
    let shown: Vec<String> = command
        .get_args()
        .map(|a| {
            let a = a.to_string_lossy();
            if a.contains([' ', '(', '|', '&', '*']) {
                format!("'{a}'")
            } else {
                a.into_owned()
            }
        })
        .collect();
    eprintln!("xtask: cargo {}", shown.join(" "));
    Ok(command.status()?.code().unwrap_or(1))
}

const FILTERSET_FLAGS: [&str; 3] = ["-E", "--filterset", "--filter-expr"];

/// The caller's `-E EXPR`, `-EEXPR`, `--filterset EXPR`, `--filterset=EXPR` (before `--`).
fn filtersets(args: &[OsString]) -> Vec<String> {
    let mut found = Vec::new();
    let mut args = args.iter().map(|a| a.to_string_lossy());
    while let Some(arg) = args.next() {
        if FILTERSET_FLAGS.contains(&&*arg) {
            found.extend(args.next().map(|v| v.into_owned()));
        } else if let Some(value) = filterset_inline(&arg) {
            found.push(value.to_owned());
        }
    }
    found
}

fn filterset_inline(arg: &str) -> Option<&str> {
    arg.strip_prefix("--filterset=")
        .or_else(|| arg.strip_prefix("--filter-expr="))
        .or_else(|| arg.strip_prefix("-E").filter(|v| !v.is_empty()))
}

/// The caller's arguments less the filtersets, which [`filtersets`] took.
fn without_filtersets(args: &[OsString]) -> Vec<OsString> {
    let (before, after) = match args.iter().position(|a| a == "--") {
        Some(at) => args.split_at(at),
        None => (args, &[][..]),
    };
    let mut kept = Vec::new();
    let mut skip_value = false;
    for arg in before {
        let text = arg.to_string_lossy();
        if skip_value {
            skip_value = false;
        } else if FILTERSET_FLAGS.contains(&&*text) {
            skip_value = true;
        } else if filterset_inline(&text).is_none() {
            kept.push(arg.clone());
        }
    }
    kept.extend(after.iter().cloned());
    kept
}

/// `$XDG_CACHE_HOME`, else `~/.cache`: where the harness keeps its image too.
fn cache_home() -> Option<PathBuf> {
    env::var_os("XDG_CACHE_HOME")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .or_else(|| env::var_os("HOME").map(|h| Path::new(&h).join(".cache")))
}

fn is_root() -> bool {
    // The effective uid, second on the `Uid:` line; no libc for one number.
    fs::read_to_string("/proc/self/status").is_ok_and(|status| {
        status
            .lines()
            .find_map(|l| l.strip_prefix("Uid:"))
            .and_then(|ids| ids.split_whitespace().nth(1))
            == Some("0")
    })
}

/// Looks a program up on `PATH` and in the sbin directories a non-login shell may lack, as the
/// harness does.
fn find_program(name: &str) -> Option<PathBuf> {
    let path = env::var_os("PATH").unwrap_or_default();
    env::split_paths(&path)
        .chain(["/usr/local/sbin", "/usr/sbin", "/sbin", "/usr/bin", "/bin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<OsString> {
        list.iter().map(OsString::from).collect()
    }

    #[test]
    fn the_callers_filtersets_are_taken_in_every_spelling() {
        let given = args(&[
            "-E",
            "test(a)",
            "-Etest(b)",
            "--filterset",
            "test(c)",
            "--filterset=test(d)",
            "--filter-expr=test(e)",
            "--release",
            "name",
            "--",
            "-E",
            "--exact",
        ]);
        assert_eq!(
            filtersets(given.split(|a| a == "--").next().unwrap_or_default()),
            ["test(a)", "test(b)", "test(c)", "test(d)", "test(e)"]
        );
        assert_eq!(
            without_filtersets(&given),
            args(&["--release", "name", "--", "-E", "--exact"])
        );
    }

    #[test]
    fn realstack_modes_read_as_the_harness_reads_them() {
        for (value, mode) in [
            ("", RealStackMode::Auto),
            (" Require ", RealStackMode::Require),
            ("off", RealStackMode::Off),
        ] {
            assert_eq!(parse_mode(value), Ok(mode));
        }
        assert!(parse_mode("sometimes").is_err());
    }
}
