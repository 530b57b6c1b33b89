//! The RPM a dom0 installs (`packaging/`, `cargo xtask dist`).
//!
//! - `rpm_installs_and_erases_cleanly`: builds the RPM through `cargo xtask dist` with the
//!   `dist-test` profile and xz level 1 (the same musl static binaries as `dist`, without its
//!   optimiser passes: `cargo xtask dist` builds the shipped ones), then reads its header (payload,
//!   `rpmlib()` requirements against rpm 4.11.3's list, files, owners, modes, scriptlets),
//!   installs it into a scratch root with `rpm --root`, runs its scriptlets against that root
//!   (with `systemctl --root` for the agent's links, and with a recording `systemctl` for what
//!   they ask of a running systemd), `systemd-analyze verify`s the agent's unit, runs the
//!   installed driver, mpathutil and agent, erases it and compares the root with what it was.
//! - `agent_unit_speaks_systemd_219`: every directive of the agent's unit is one a dom0's
//!   systemd 219 knows, with a value it takes; it never pulls xapi or multipathd in.
//! - `xapi_dropin_*`: the generated xapi drop-in on both `/etc/xapi.conf` variants.
//! - `multipath_dropin_speaks_both_daemons`: every keyword of the multipath drop-in is one both
//!   multipathd parsers know (0.4.9-xs, 0.9.4), each array entry names its seed and hwtable.
//!
//! The RPM test needs rpmbuild and rpm, the musl target and musl-gcc, python3, and root (rpm
//! installs files owned by root): `.ci/install.d/20-packaging.sh`. Without them it says why
//! and passes, except under CI (`CI` set), where that is a failure. Without systemd's tools
//! (`systemctl`, `systemd-analyze`) it checks the rest and says what it left out (under CI a
//! failure too).

#![allow(clippy::unwrap_used)] // Test code: a failed unwrap is a failed test.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn packaging(path: &str) -> PathBuf {
    workspace().join("packaging").join(path)
}

fn run(command: &mut Command) -> Output {
    let out = command
        .output()
        .unwrap_or_else(|e| panic!("{command:?}: {e}"));
    assert!(
        out.status.success(),
        "{command:?}: {}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn stdout(command: &mut Command) -> String {
    String::from_utf8(run(command).stdout).unwrap()
}

// The two `sm-plugins=` lines a dom0 may have in /etc/xapi.conf.
/// xen-api's `scripts/xapi.conf` (XenServer).
const XAPI_CONF_XENSERVER: &str = "# Whitelist of SM plugins\n\
sm-plugins=ext nfs iscsi lvmoiscsi dummy file hba rawhba udev iso lvm lvmohba lvmofcoe shm smb\n";
/// xcp-ng-rpms/xapi's `0001-xcp-ng-configure-xapi.conf-to-meet-our-needs.patch` (XCP-ng 8.3).
const XAPI_CONF_XCPNG: &str = "# Whitelist of SM plugins\n\
sm-plugins=ext nfs iscsi lvmoiscsi dummy file hba rawhba udev iso lvm lvmohba lvmofcoe shm smb cephfs glusterfs xfs zfs largeblock\n";
/// XCP-ng's sm-additional-drivers writes this drop-in from the xapi.conf line plus its types.
const ADDITIONAL_DRIVERS: &str = "# This overrides sm-plugins from xapi.conf to take additional storage drivers into account.\n\
sm-plugins=ext nfs iscsi lvmoiscsi dummy file hba rawhba udev iso lvm lvmohba lvmofcoe shm smb cephfs glusterfs xfs zfs largeblock ext4 xfs\n";

/// Runs `sm-rs-setup` (the packaged one, or the repository's) against a host root.
fn setup(script: &Path, root: &Path, arg: &str) -> Output {
    Command::new("sh")
        .arg(script)
        .arg(arg)
        .env("SM_RS_ROOT", root)
        .output()
        .unwrap()
}

/// The list xapi ends up with: every file it reads, in its order, the last `sm-plugins=`
/// line winning (`read_config_file`, `gen_list_option`); comments and quotes as it parses.
fn xapi_effective_list(root: &Path) -> Vec<String> {
    let mut files = vec![root.join("etc/xapi.conf")];
    let mut dropins: Vec<_> = fs::read_dir(root.join("etc/xapi.conf.d"))
        .map(|d| d.map(|e| e.unwrap().file_name()).collect())
        .unwrap_or_default();
    dropins.sort();
    files.extend(dropins.iter().map(|f| root.join("etc/xapi.conf.d").join(f)));
    let mut list = Vec::new();
    for file in files {
        let Ok(text) = fs::read_to_string(&file) else {
            continue;
        };
        for line in text.lines() {
            let line = line.split('#').next().unwrap();
            if let Some((key, value)) = line.split_once('=')
                && key.trim() == "sm-plugins"
            {
                let value = value.trim().trim_matches('"');
                list = value.split_whitespace().map(String::from).collect();
            }
        }
    }
    list
}

fn words(s: &str) -> Vec<String> {
    s.split_whitespace().map(String::from).collect()
}

fn dropin_root(xapi_conf: &str, dropins: &[(&str, &str)]) -> tempfile::TempDir {
    let root = tempfile::tempdir().unwrap();
    fs::create_dir_all(root.path().join("etc/xapi.conf.d")).unwrap();
    fs::write(root.path().join("etc/xapi.conf"), xapi_conf).unwrap();
    for (name, text) in dropins {
        fs::write(root.path().join("etc/xapi.conf.d").join(name), text).unwrap();
    }
    root
}

#[test]
fn xapi_dropin_keeps_xenserver_list_and_adds_ours() {
    let root = dropin_root(XAPI_CONF_XENSERVER, &[]);
    let out = setup(&packaging("sm-rs-setup"), root.path(), "xapi-dropin");
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        xapi_effective_list(root.path()),
        words(
            "ext nfs iscsi lvmoiscsi dummy file hba rawhba udev iso lvm lvmohba lvmofcoe shm smb lunoiscsi lunohba"
        )
    );
}

#[test]
fn xapi_dropin_keeps_xcpng_types_and_other_dropins() {
    // Before: XCP-ng's own types, and ext4 from another package's drop-in, which reads after
    // xapi.conf and so is what xapi serves today.
    let root = dropin_root(
        XAPI_CONF_XCPNG,
        &[("sm-additional-drivers.conf", ADDITIONAL_DRIVERS)],
    );
    let before = xapi_effective_list(root.path());
    let out = setup(&packaging("sm-rs-setup"), root.path(), "xapi-dropin");
    assert!(out.status.success(), "{out:?}");
    let after = xapi_effective_list(root.path());
    for t in &before {
        assert!(after.contains(t), "{t} lost: {after:?}");
    }
    for t in ["cephfs", "glusterfs", "xfs", "zfs", "largeblock", "ext4"] {
        assert!(after.contains(&t.to_string()), "{t} lost: {after:?}");
    }
    assert_eq!(&after[after.len() - 2..], ["lunoiscsi", "lunohba"]);
    // Written again (a trigger): the same file, not our types twice.
    let first = fs::read_to_string(root.path().join("etc/xapi.conf.d/zz-sm-rs.conf")).unwrap();
    assert!(
        setup(&packaging("sm-rs-setup"), root.path(), "xapi-dropin")
            .status
            .success()
    );
    let second = fs::read_to_string(root.path().join("etc/xapi.conf.d/zz-sm-rs.conf")).unwrap();
    assert_eq!(first, second);
    // No temporary file is left for xapi to read.
    let names: Vec<_> = fs::read_dir(root.path().join("etc/xapi.conf.d"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
}

#[test]
fn xapi_dropin_reads_lists_as_xapi_parses_them() {
    // Blanks around "=", a quoted value, a trailing comment, a commented-out line.
    let root = dropin_root(
        "#sm-plugins=nothing here\n  sm-plugins = \"ext nfs\"   # stock\n",
        &[("50-local.conf", "sm-plugins=ext nfs mine\t# local\n")],
    );
    assert!(
        setup(&packaging("sm-rs-setup"), root.path(), "xapi-dropin")
            .status
            .success()
    );
    assert_eq!(
        xapi_effective_list(root.path()),
        words("ext nfs mine lunoiscsi lunohba")
    );
}

#[test]
fn xapi_dropin_without_any_list_leaves_xapi_alone() {
    // Our two types alone would hide every stock SR type from xapi.
    let root = dropin_root("# no list\n", &[]);
    let out = setup(&packaging("sm-rs-setup"), root.path(), "xapi-dropin");
    assert!(out.status.success(), "{out:?}");
    assert!(!root.path().join("etc/xapi.conf.d/zz-sm-rs.conf").exists());
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("lunoiscsi lunohba"), "{said}");
}

// ---- the RPM ----

/// What rpm 4.11.3 (a dom0's) provides: `rpmlibProvides` in its `lib/rpmds.c`.
const RPMLIB_4_11: [(&str, &str); 16] = [
    ("VersionedDependencies", "3.0.3-1"),
    ("CompressedFileNames", "3.0.4-1"),
    ("PayloadIsBzip2", "3.0.5-1"),
    ("PayloadIsXz", "5.2-1"),
    ("PayloadIsLzma", "4.4.2-1"),
    ("PayloadFilesHavePrefix", "4.0-1"),
    ("ExplicitPackageProvide", "4.0-1"),
    ("HeaderLoadSortsTags", "4.0.1-1"),
    ("ScriptletInterpreterArgs", "4.0.3-1"),
    ("PartialHardlinkSets", "4.0.4-1"),
    ("ConcurrentAccess", "4.1-1"),
    ("BuiltinLuaScripts", "4.2.2-1"),
    ("FileDigests", "4.6.0-1"),
    ("FileCaps", "4.6.1-1"),
    ("ScriptletExpansion", "4.9.0-1"),
    ("TildeInVersions", "4.10.0-1"),
];

/// "4.6.0-1" as comparable numbers (these versions are plain dotted numbers).
fn version_key(v: &str) -> Vec<u64> {
    v.split(['.', '-']).map(|n| n.parse().unwrap()).collect()
}

fn tool(name: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {name}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// A part of the RPM test this machine cannot run: said, and a failure under CI, which
/// installs everything (`.ci/install.d/20-packaging.sh`).
fn skipped(what: &str) {
    let why = format!("{what}: skipped (.ci/install.d/20-packaging.sh installs what it needs)");
    assert!(std::env::var_os("CI").is_none(), "{why}");
    eprintln!("{why}");
}

fn missing_prerequisites() -> Vec<String> {
    let mut missing = Vec::new();
    for name in ["rpmbuild", "rpm", "musl-gcc", "python3", "ldd"] {
        if !tool(name) {
            missing.push(name.to_string());
        }
    }
    if !rustix::process::geteuid().is_root() {
        missing.push("root (rpm installs root-owned files)".into());
    }
    let targets = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output();
    if !targets
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("x86_64-unknown-linux-musl"))
    {
        missing.push("the x86_64-unknown-linux-musl target".into());
    }
    missing
}

/// Every path under `root` but the rpm database, with what it is: what "nothing is left"
/// compares.
fn tree(root: &Path) -> BTreeMap<PathBuf, String> {
    fn walk(root: &Path, dir: &Path, into: &mut BTreeMap<PathBuf, String>) {
        for entry in fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let rel = path.strip_prefix(root).unwrap().to_path_buf();
            if rel.starts_with("var/lib/rpm") || rel.starts_with("var/tmp") {
                continue;
            }
            let meta = fs::symlink_metadata(&path).unwrap();
            let what = if meta.is_symlink() {
                format!("link -> {}", fs::read_link(&path).unwrap().display())
            } else if meta.is_dir() {
                walk(root, &path, into);
                "dir".into()
            } else {
                format!(
                    "file {:o} {}",
                    meta.permissions().mode(),
                    String::from_utf8_lossy(&fs::read(&path).unwrap())
                )
            };
            into.insert(rel, what);
        }
    }
    let mut map = BTreeMap::new();
    walk(root, root, &mut map);
    map
}

fn driver_info_call() -> String {
    "<?xml version=\"1.0\"?><methodCall><methodName>sr_get_driver_info</methodName><params><param>\
     <value><struct><member><name>command</name><value>sr_get_driver_info</value></member>\
     <member><name>args</name><value><array><data/></array></value></member>\
     <member><name>device_config</name><value><struct/></value></member>\
     <member><name>host_ref</name><value>OpaqueRef:test</value></member></struct></value>\
     </param></params></methodCall>"
        .into()
}

#[test]
fn rpm_installs_and_erases_cleanly() {
    let missing = missing_prerequisites();
    if !missing.is_empty() {
        let why = format!(
            "the RPM test needs {} (.ci/install.d/20-packaging.sh)",
            missing.join(", ")
        );
        assert!(std::env::var_os("CI").is_none(), "{why}");
        eprintln!("skipped: {why}");
        return;
    }

    // ---- build ----
    let out = tempfile::tempdir().unwrap();
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let built = stdout(
        Command::new(cargo)
            .current_dir(workspace())
            .args(["run", "--quiet", "--locked", "-p", "xtask", "--"])
            .args(["dist", "--profile", "dist-test", "--xz", "1", "--out"])
            .arg(out.path()),
    );
    let rpm = PathBuf::from(built.lines().last().unwrap());
    assert!(rpm.starts_with(out.path()) && rpm.exists(), "{built}");
    let query = |format: &str| stdout(Command::new("rpm").args(["-qp", "--qf", format]).arg(&rpm));

    // ---- header: what a dom0's rpm 4.11 needs to read and install it ----
    assert_eq!(
        query("%{PAYLOADCOMPRESSOR} %{PAYLOADFORMAT}"),
        "xz cpio",
        "a dom0's rpm 4.11 reads gzip or xz payloads, never zstd"
    );
    // rpm 4.11 checks the header's SHA1 and the MD5 of header and payload (the SHA256 ones
    // came with rpm 4.14): both must be there, and right.
    let digests = stdout(Command::new("rpm").arg("-Kv").arg(&rpm));
    for digest in ["Header SHA1 digest: OK", "MD5 digest: OK"] {
        assert!(digests.contains(digest), "{digests}");
    }
    let requires = stdout(Command::new("rpm").args(["-qp", "--requires"]).arg(&rpm));
    let mut rpmlib_seen = 0;
    for line in requires.lines() {
        if let Some(rest) = line.strip_prefix("rpmlib(") {
            let (feature, version) = rest.split_once(") <= ").unwrap_or((rest, ""));
            let known = RPMLIB_4_11.iter().find(|(f, _)| *f == feature);
            let Some((_, provided)) = known else {
                panic!("{line}: rpm 4.11 does not know rpmlib({feature})");
            };
            assert!(
                version_key(version) <= version_key(provided),
                "{line}: rpm 4.11 provides {provided}"
            );
            rpmlib_seen += 1;
        } else {
            assert!(
                line == "sm" || line == "/bin/sh",
                "unexpected requirement {line:?} (static binaries need nothing)"
            );
        }
    }
    assert!(rpmlib_seen > 0, "{requires}");
    assert!(requires.lines().any(|l| l == "sm"), "{requires}");

    let files = query(
        "[%{FILEMODES:perms} %{FILEUSERNAME} %{FILEGROUPNAME} %{FILEFLAGS:fflags} %{FILENAMES} %{FILELINKTOS}\n]",
    );
    let files: Vec<&str> = files.lines().map(str::trim_end).collect();
    assert_eq!(
        files,
        [
            "-rw-r--r-- root root cn /etc/multipath/conf.d/00-sm-rs.conf",
            "-rw-r--r-- root root g /etc/xapi.conf.d/zz-sm-rs.conf",
            "lrwxrwxrwx root root  /opt/xensource/sm/LUNoHBASR LUNoISCSISR",
            "-rwxr-xr-x root root  /opt/xensource/sm/LUNoISCSISR",
            "-rw-r--r-- root root  /usr/lib/systemd/system/sm-mpath-agent.service",
            "drwxr-xr-x root root  /usr/libexec/sm-rs",
            "-rwxr-xr-x root root  /usr/libexec/sm-rs/sm-mpath-agent",
            "-rwxr-xr-x root root  /usr/libexec/sm-rs/sm-rs-setup",
            "lrwxrwxrwx root root  /usr/local/sbin/mpathutil ../../sbin/sm-rs-mpathutil",
            "-rwxr-xr-x root root  /usr/sbin/sm-rs-mpathutil",
        ],
        "files, modes, owners, flags (c = config, n = noreplace, g = ghost); no udev rule: \
         the agent reads the kernel's uevents itself (packaging/systemd/sm-mpath-agent.service)"
    );
    // Never stock sm's /sbin/mpathutil (= /usr/sbin/mpathutil on a dom0).
    assert!(
        !files
            .iter()
            .any(|l| l.contains(" /usr/sbin/mpathutil") || l.contains(" /sbin/mpathutil"))
    );

    let scripts = stdout(
        Command::new("rpm")
            .args(["-qp", "--scripts", "--triggers"])
            .arg(&rpm),
    );
    for trigger in ["-- xapi-core", "-- sm", "-- sm-additional-drivers"] {
        let at = scripts
            .find(&format!("triggerin scriptlet (using /bin/sh) {trigger}\n"))
            .unwrap_or_else(|| panic!("no trigger {trigger}:\n{scripts}"));
        assert!(
            scripts[at..].contains("sm-rs-setup xapi-dropin"),
            "{scripts}"
        );
    }
    for never in [
        "systemctl restart",
        "xe-toolstack-restart\n",
        "multipathd reconfigure\n",
    ] {
        assert!(!scripts.contains(never), "a scriptlet runs {never:?}");
    }

    // ---- a scratch dom0 root: stock sm, XCP-ng's xapi.conf, a LUN listed in wwids ----
    let root = tempfile::tempdir().unwrap();
    let r = root.path();
    for dir in [
        "opt/xensource/sm",
        "etc/xapi.conf.d",
        "etc/multipath/conf.d",
        "usr/local/sbin",
        "usr/sbin",
        "usr/libexec",
        "usr/lib/systemd/system",
        "etc/systemd/system/multi-user.target.wants",
        "run",
    ] {
        fs::create_dir_all(r.join(dir)).unwrap();
    }
    // systemd's own targets, as a dom0 has them: what `systemd-analyze verify` resolves the
    // unit's implicit dependencies and WantedBy= against.
    let targets = ["sysinit", "basic", "shutdown", "multi-user"].map(|t| {
        (
            Path::new("/usr/lib/systemd/system").join(format!("{t}.target")),
            r.join(format!("usr/lib/systemd/system/{t}.target")),
        )
    });
    let have_targets = targets.iter().all(|(host, _)| host.exists());
    // A dom0's multi-user.target wants other services too (systemctl removes a .wants folder
    // it empties).
    symlink(
        "/usr/lib/systemd/system/xapi.service",
        r.join("etc/systemd/system/multi-user.target.wants/xapi.service"),
    )
    .unwrap();
    if have_targets {
        for (host, scratch) in &targets {
            fs::copy(host, scratch).unwrap();
        }
    }
    fs::write(r.join("etc/xapi.conf"), XAPI_CONF_XCPNG).unwrap();
    fs::write(
        r.join("etc/xapi.conf.d/sm-additional-drivers.conf"),
        ADDITIONAL_DRIVERS,
    )
    .unwrap();
    fs::write(
        r.join("etc/multipath/conf.d/custom.conf"),
        "# Custom configuration for multipathd\n",
    )
    .unwrap();
    let wwids = "# Multipath wwids, Version : 1.0\n/3600a0b80000f1234000000005a1b2c3d/\n";
    fs::write(r.join("etc/multipath/wwids"), wwids).unwrap();

    // %pre refuses a host without stock sm, with a message that says so.
    let pre = query("%{PREIN}");
    let bare = tempfile::tempdir().unwrap();
    let refused = Command::new("sh")
        .args(["-c", &pre, "pre", "1"])
        .env("SM_RS_ROOT", bare.path())
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("stock storage manager"),
        "{refused:?}"
    );
    symlink("LVHDoISCSISR.py", r.join("opt/xensource/sm/LVMoISCSISR")).unwrap();
    let before = tree(r);
    let accepted = Command::new("sh")
        .args(["-c", &pre, "pre", "1"])
        .env("SM_RS_ROOT", r)
        .output()
        .unwrap();
    assert!(accepted.status.success(), "{accepted:?}");

    let rpm_root = |args: &[&str]| {
        run(Command::new("rpm")
            .arg("--root")
            .arg(r)
            .args(["--dbpath", "/var/lib/rpm"])
            .args(args))
    };
    rpm_root(&["--initdb"]);
    // --nodeps: the scratch root has no rpm database of stock sm; --noscripts: rpm would run
    // them chrooted in a root without a shell. They run below, against the root.
    rpm_root(&["-i", "--nodeps", "--noscripts", rpm.to_str().unwrap()]);

    // ---- what landed ----
    let driver = r.join("opt/xensource/sm/LUNoISCSISR");
    let meta = fs::metadata(&driver).unwrap();
    assert_eq!(
        (meta.mode() & 0o7777, meta.uid(), meta.gid()),
        (0o755, 0, 0)
    );
    assert_eq!(
        fs::read_to_string(r.join("etc/multipath/conf.d/00-sm-rs.conf")).unwrap(),
        fs::read_to_string(packaging("multipath/sm-rs.conf")).unwrap()
    );
    // multipathd reads conf.d in name order, a later file winning: ours comes before the
    // administrator's custom.conf.
    assert!("00-sm-rs.conf" < "custom.conf");
    let agent = r.join("usr/libexec/sm-rs/sm-mpath-agent");
    for binary in [&driver, &r.join("usr/sbin/sm-rs-mpathutil"), &agent] {
        let ldd = Command::new("ldd").arg(binary).output().unwrap();
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&ldd.stdout),
            String::from_utf8_lossy(&ldd.stderr)
        );
        assert!(
            said.contains("statically linked") || said.contains("not a dynamic executable"),
            "{}: {said}",
            binary.display()
        );
    }

    // %post: the xapi drop-in, and what to do next (never done behind the administrator).
    // An upgrade over an edited drop-in leaves rpm's .rpmnew in conf.d, where multipathd 0.4.9
    // would read it (any name containing ".conf"): %post moves it out.
    let rpmnew = r.join("etc/multipath/conf.d/00-sm-rs.conf.rpmnew");
    fs::write(&rpmnew, "# the new version\n").unwrap();
    // No systemd runs this root: the agent is enabled offline (systemctl --root), its link
    // made as on a dom0, and starts at the next boot.
    let scriptlet = |tag: &str, arg: &str, path: Option<&Path>| {
        let mut command = Command::new("sh");
        command
            .args(["-c", &query(&format!("%{{{tag}}}")), tag, arg])
            .env("SM_RS_ROOT", r);
        if let Some(stub) = path {
            let host = std::env::var("PATH").unwrap_or_default();
            command.env("PATH", format!("{}:{host}", stub.display()));
        }
        let out = command.output().unwrap();
        assert!(out.status.success(), "%{tag} {arg}: {out:?}");
        out
    };
    let post = scriptlet("POSTIN", "1", None);
    let said = String::from_utf8_lossy(&post.stdout);
    assert!(said.contains("xe-toolstack-restart"), "{said}");
    let wants = r.join("etc/systemd/system/multi-user.target.wants/sm-mpath-agent.service");
    let have_systemctl = tool("systemctl");
    if have_systemctl {
        assert_eq!(
            fs::read_link(&wants).unwrap(),
            Path::new("/usr/lib/systemd/system/sm-mpath-agent.service"),
            "{post:?}"
        );
        assert!(said.contains("starts at the next boot"), "{said}");
    } else {
        skipped("the agent's enablement link (no systemctl)");
    }
    assert!(
        !rpmnew.exists() && said.contains("00-sm-rs.conf.rpmnew"),
        "{said}"
    );
    fs::remove_file(r.join("etc/multipath/00-sm-rs.conf.rpmnew")).unwrap();
    let list = xapi_effective_list(r);
    for t in [
        "cephfs",
        "glusterfs",
        "xfs",
        "zfs",
        "largeblock",
        "ext4",
        "lunoiscsi",
        "lunohba",
    ] {
        assert!(list.contains(&t.to_string()), "{t} missing from {list:?}");
    }

    // The driver answers under both names, natively and as xapi's tracing mode runs it
    // (runpy.run_path on the file, as python3/packages/observer.py does).
    let call = driver_info_call();
    for (name, says) in [("LUNoISCSISR", "over iSCSI"), ("LUNoHBASR", "over HBA")] {
        let path = r.join("opt/xensource/sm").join(name);
        let native = stdout(Command::new(&path).arg(&call).env_clear());
        assert!(native.starts_with("<methodResponse><params>"), "{native}");
        assert!(native.contains(says), "{name}: {native}");
        let traced = stdout(
            Command::new("python3")
                .args([
                    "-c",
                    "import runpy, sys; sys.argv = sys.argv[1:]; runpy.run_path(sys.argv[0], run_name='__main__')",
                ])
                .arg(&path)
                .arg(&call)
                .env_clear(),
        );
        assert_eq!(traced, native, "{name} under runpy");
    }
    for mpathutil in ["usr/sbin/sm-rs-mpathutil", "usr/local/sbin/mpathutil"] {
        let help = stdout(Command::new(r.join(mpathutil)).arg("--help"));
        assert!(help.contains("status") && help.contains("list"), "{help}");
    }
    let help = stdout(Command::new(&agent).arg("--help").env_clear());
    for option in ["--uevents", "--reconcile", "--debounce", "--drain"] {
        assert!(help.contains(option), "{help}");
    }

    // ---- the agent's unit ----
    let unit = r.join("usr/lib/systemd/system/sm-mpath-agent.service");
    assert_eq!(
        fs::read_to_string(&unit).unwrap(),
        fs::read_to_string(packaging("systemd/sm-mpath-agent.service")).unwrap()
    );
    if tool("systemd-analyze") && have_targets {
        // In the scratch root: ExecStart= is the installed agent, WantedBy= the root's target.
        // Warnings (an unknown directive, a bad value) do not change the exit status: none
        // may be printed.
        let verify = Command::new("systemd-analyze")
            .arg(format!("--root={}", r.display()))
            .args(["verify", "sm-mpath-agent.service"])
            .output()
            .unwrap();
        assert!(
            verify.status.success() && verify.stderr.is_empty() && verify.stdout.is_empty(),
            "systemd-analyze verify: {verify:?}"
        );
    } else {
        skipped("systemd-analyze verify (systemd's tools and targets are not installed)");
    }

    // ---- what the scriptlets ask of a running systemd ----
    // A recording systemctl first in PATH, and the root marked as one systemd runs
    // (run/systemd/system, sd_booted()'s test): every call they make is listed, and only the
    // agent's unit is ever started, stopped or restarted.
    let stub = tempfile::tempdir().unwrap();
    let calls = stub.path().join("calls");
    fs::write(
        stub.path().join("systemctl"),
        format!("#!/bin/sh\necho \"$*\" >>{}\n", calls.display()),
    )
    .unwrap();
    fs::set_permissions(
        stub.path().join("systemctl"),
        fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    fs::create_dir_all(r.join("run/systemd/system")).unwrap();
    let asked = |tag: &str, arg: &str| -> Vec<String> {
        let _ = fs::remove_file(&calls);
        scriptlet(tag, arg, Some(stub.path()));
        fs::read_to_string(&calls)
            .unwrap_or_default()
            .lines()
            .map(String::from)
            .collect()
    };
    let unit_name = "sm-mpath-agent.service";
    // Install: enabled and started at once.
    assert_eq!(
        asked("POSTIN", "1"),
        [
            "daemon-reload".to_string(),
            format!("enable {unit_name}"),
            format!("start {unit_name}")
        ]
    );
    // Upgrade (new %post 2, old %preun 1, old %postun 1): the unit re-read, a running agent
    // restarted on the new binary, a stopped or disabled one left as the administrator set it.
    assert_eq!(asked("POSTIN", "2"), ["daemon-reload"]);
    assert!(asked("PREUN", "1").is_empty());
    assert_eq!(
        asked("POSTUN", "1"),
        [
            "daemon-reload".to_string(),
            format!("try-restart {unit_name}")
        ]
    );
    // Erase: stopped (it drains its writes), disabled, and the unit forgotten.
    assert_eq!(
        asked("PREUN", "0"),
        [format!("stop {unit_name}"), format!("disable {unit_name}")]
    );
    assert_eq!(asked("POSTUN", "0"), ["daemon-reload"]);
    fs::remove_dir_all(r.join("run/systemd")).unwrap();
    // The erase above (scripted, links untouched by the recorder) removed the xapi drop-in:
    // back to the installed state for the erase below.
    scriptlet("POSTIN", "1", None);

    // ---- erase ----
    // Refused while an SR is plugged: its PBD would be left with no driver to unplug it.
    fs::create_dir_all(r.join("run/sm-rs/sr")).unwrap();
    fs::write(
        r.join("run/sm-rs/sr/6a1b2c3d-0000-4000-8000-000000000001"),
        "{}",
    )
    .unwrap();
    let refused = Command::new("sh")
        .args(["-c", &query("%{PREUN}"), "preun", "0"])
        .env("SM_RS_ROOT", r)
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("6a1b2c3d-0000-4000-8000-000000000001"),
        "{refused:?}"
    );
    fs::remove_file(r.join("run/sm-rs/sr/6a1b2c3d-0000-4000-8000-000000000001")).unwrap();
    assert!(r.join("etc/xapi.conf.d/zz-sm-rs.conf").exists());
    let preun = scriptlet("PREUN", "0", None);
    assert!(String::from_utf8_lossy(&preun.stdout).contains("xe-toolstack-restart"));
    assert!(
        !have_systemctl || fs::symlink_metadata(&wants).is_err(),
        "the agent's enablement link is left: {preun:?}"
    );
    rpm_root(&["-e", "--nodeps", "--noscripts", "sm-rs"]);
    // %postun moves an edited drop-in rpm saved (.rpmsave) out of conf.d.
    let rpmsave = r.join("etc/multipath/conf.d/00-sm-rs.conf.rpmsave");
    fs::write(&rpmsave, "# edited\n").unwrap();
    scriptlet("POSTUN", "0", None);
    assert!(!rpmsave.exists());
    fs::remove_file(r.join("etc/multipath/00-sm-rs.conf.rpmsave")).unwrap();

    // The host as it was: stock's files, the other drop-ins and the wwids entries untouched;
    // nothing of ours left (files, the agent's unit and enablement link, drop-ins, folders).
    let after = tree(r);
    let diff: Vec<_> = before
        .iter()
        .filter(|(k, v)| after.get(*k) != Some(v))
        .map(|(k, _)| format!("changed or gone: {}", k.display()))
        .chain(
            after
                .iter()
                .filter(|(k, _)| !before.contains_key(*k))
                .map(|(k, v)| format!("left: {} ({v})", k.display())),
        )
        .collect();
    // `var` holds the rpm database rpm --root made.
    let diff: Vec<_> = diff
        .into_iter()
        .filter(|d| d != "left: var (dir)" && d != "left: var/lib (dir)")
        .collect();
    assert!(diff.is_empty(), "{diff:#?}");
    assert_eq!(
        fs::read_to_string(r.join("etc/multipath/wwids")).unwrap(),
        wwids
    );
}

// ---- the multipath drop-in ----

/// Keywords of the `defaults` section that both daemons' parsers know: the dom0's 0.4.9-136.xs8
/// (`libmultipath/dict.c` after the spec's patches) and 0.9.4 (Debian 12). Anything else is an
/// "invalid keyword" on one of them.
const DEFAULTS_BOTH: &[&str] = &[
    "alias_prefix",
    "all_tg_pt",
    "bindings_file",
    "checker",
    "checker_timeout",
    "config_dir",
    "deferred_remove",
    "delay_wait_checks",
    "delay_watch_checks",
    "detect_prio",
    "dev_loss_tmo",
    "disable_changed_wwids",
    "failback",
    "fast_io_fail_tmo",
    "features",
    "find_multipaths",
    "flush_on_last_del",
    "force_sync",
    "ghost_delay",
    "gid",
    "log_checker_err",
    "marginal_path_double_failed_time",
    "marginal_path_err_rate_threshold",
    "marginal_path_err_recheck_gap_time",
    "marginal_path_err_sample_time",
    "max_fds",
    "max_polling_interval",
    "max_sectors_kb",
    "missing_uev_wait_timeout",
    "mode",
    "multipath_dir",
    "no_path_retry",
    "path_checker",
    "path_grouping_policy",
    "path_selector",
    "pg_timeout",
    "polling_interval",
    "prio",
    "prio_args",
    "prkeys_file",
    "queue_without_daemon",
    "reassign_maps",
    "remove_retries",
    "reservation_key",
    "retain_attached_hw_handler",
    "retrigger_delay",
    "retrigger_tries",
    "rr_min_io",
    "rr_min_io_rq",
    "rr_weight",
    "skip_kpartx",
    "uid",
    "uid_attribute",
    "user_friendly_names",
    "verbosity",
    "wwids_file",
];
/// The same for a `device` entry.
const DEVICE_BOTH: &[&str] = &[
    "alias_prefix",
    "all_tg_pt",
    "checker",
    "deferred_remove",
    "delay_wait_checks",
    "delay_watch_checks",
    "detect_prio",
    "dev_loss_tmo",
    "failback",
    "fast_io_fail_tmo",
    "features",
    "flush_on_last_del",
    "ghost_delay",
    "hardware_handler",
    "marginal_path_double_failed_time",
    "marginal_path_err_rate_threshold",
    "marginal_path_err_recheck_gap_time",
    "marginal_path_err_sample_time",
    "max_sectors_kb",
    "no_path_retry",
    "path_checker",
    "path_grouping_policy",
    "path_selector",
    "pg_timeout",
    "prio",
    "prio_args",
    "product",
    "product_blacklist",
    "retain_attached_hw_handler",
    "revision",
    "rr_min_io",
    "rr_min_io_rq",
    "rr_weight",
    "skip_kpartx",
    "uid_attribute",
    "user_friendly_names",
    "vendor",
];

#[test]
fn multipath_dropin_speaks_both_daemons() {
    let text = fs::read_to_string(packaging("multipath/sm-rs.conf")).unwrap();
    let mut sections: Vec<String> = Vec::new();
    let mut comment = String::new();
    let mut devices = Vec::new();
    for (n, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if let Some(c) = line.strip_prefix('#') {
            comment.push_str(c);
            comment.push('\n');
            continue;
        }
        if line.is_empty() {
            continue;
        }
        let at = format!("line {}: {raw}", n + 1);
        if line == "}" {
            assert!(sections.pop().is_some(), "{at}");
            continue;
        }
        if let Some(name) = line.strip_suffix('{') {
            let name = name.trim().to_string();
            let parent = sections.last().map(String::as_str);
            match (parent, name.as_str()) {
                (None, "defaults" | "devices") => {}
                (Some("devices"), "device") => devices.push(std::mem::take(&mut comment)),
                _ => panic!("{at}: unexpected section"),
            }
            sections.push(name);
            comment.clear();
            continue;
        }
        let (keyword, value) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
        let value = value.trim().trim_matches('"');
        match sections.last().map(String::as_str) {
            Some("defaults") => assert!(DEFAULTS_BOTH.contains(&keyword), "{at}"),
            Some("device") => assert!(DEVICE_BOTH.contains(&keyword), "{at}"),
            _ => panic!("{at}: a setting outside defaults or a device"),
        }
        let allowed: &[&str] = match keyword {
            "failback" => &["manual", "immediate", "followover"],
            "no_path_retry" => &["fail", "queue"],
            "path_grouping_policy" => &["failover", "multibus", "group_by_serial", "group_by_prio"],
            "prio" => &["alua", "const"],
            "path_checker" => &["tur"],
            _ => &[],
        };
        if !allowed.is_empty() {
            assert!(
                allowed.contains(&value) || value.parse::<u32>().is_ok(),
                "{at}: a value both daemons take"
            );
        }
        comment.clear();
    }
    assert!(sections.is_empty(), "unclosed section");
    // The arrays of the seeds, each entry with its source and its hwtable comparison.
    assert_eq!(devices.len(), 3);
    for (entry, seed) in devices.iter().zip(["000_", "004_", "002_"]) {
        assert!(entry.contains(&format!("seeds/{seed}")), "{entry}");
        assert!(entry.contains("hwtable"), "{entry}");
    }
}

// ---- the agent's unit on a dom0's systemd 219 ----

/// Directives systemd 219 (CentOS 7, a dom0's) parses, by section: the ones a service like
/// ours could use, from 219's `src/core/load-fragment-gperf.gperf.m4` (the [Install] keys from
/// `src/shared/install.c`). Newer ones are an "unknown lvalue" there, ignored with a warning:
/// e.g. `Type=exec` (240), `ReadWritePaths=` (231), `StartLimitIntervalSec=` (230, [Unit]),
/// `ProtectSystem=strict` (232), `RuntimeDirectoryPreserve=` (235).
const SYSTEMD_219: &[(&str, &[&str])] = &[
    (
        "Unit",
        &[
            "Description",
            "Documentation",
            "Requires",
            "Requisite",
            "Wants",
            "BindsTo",
            "PartOf",
            "Conflicts",
            "Before",
            "After",
            "OnFailure",
            "RequiresMountsFor",
            "DefaultDependencies",
            "ConditionPathExists",
            "ConditionFileIsExecutable",
            "AssertPathExists",
        ],
    ),
    (
        "Service",
        &[
            "Type",
            "ExecStartPre",
            "ExecStart",
            "ExecStartPost",
            "ExecReload",
            "ExecStop",
            "ExecStopPost",
            "Restart",
            "RestartSec",
            "TimeoutSec",
            "TimeoutStartSec",
            "TimeoutStopSec",
            "WatchdogSec",
            "StartLimitInterval",
            "StartLimitBurst",
            "RemainAfterExit",
            "SuccessExitStatus",
            "RestartPreventExitStatus",
            "Environment",
            "EnvironmentFile",
            "StandardOutput",
            "StandardError",
            "SyslogIdentifier",
            "SyslogFacility",
            "KillMode",
            "KillSignal",
            "LimitNOFILE",
            "OOMScoreAdjust",
            "Nice",
            "PrivateTmp",
            "PrivateDevices",
            "ProtectSystem",
            "ProtectHome",
            "NoNewPrivileges",
            "ReadWriteDirectories",
            "ReadOnlyDirectories",
            "InaccessibleDirectories",
            "CapabilityBoundingSet",
        ],
    ),
    ("Install", &["WantedBy", "RequiredBy", "Alias", "Also"]),
];

/// Values 219 takes where later versions take more (`src/core/service.c`, `namespace.c`).
const SYSTEMD_219_VALUES: &[(&str, &[&str])] = &[
    (
        "Type",
        &["simple", "forking", "oneshot", "dbus", "notify", "idle"],
    ),
    (
        "Restart",
        &[
            "no",
            "on-success",
            "on-failure",
            "on-abnormal",
            "on-watchdog",
            "on-abort",
            "always",
        ],
    ),
    ("ProtectSystem", &["yes", "no", "full"]),
    ("ProtectHome", &["yes", "no", "read-only"]),
];

/// `[section] key=value` lines of a unit file, comments and blank lines left out.
fn unit_directives(text: &str) -> Vec<(String, String, String)> {
    let mut section = String::new();
    let mut out = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = name.to_string();
            continue;
        }
        let (key, value) = line
            .split_once('=')
            .unwrap_or_else(|| panic!("not a directive: {line}"));
        out.push((section.clone(), key.trim().into(), value.trim().into()));
    }
    out
}

#[test]
fn agent_unit_speaks_systemd_219() {
    let text = fs::read_to_string(packaging("systemd/sm-mpath-agent.service")).unwrap();
    let directives = unit_directives(&text);
    for (section, key, value) in &directives {
        let known = SYSTEMD_219
            .iter()
            .find(|(s, _)| s == section)
            .unwrap_or_else(|| panic!("[{section}]: not a section of a service in systemd 219"));
        assert!(
            known.1.contains(&key.as_str()),
            "[{section}] {key}=: systemd 219 does not know it"
        );
        if let Some((_, values)) = SYSTEMD_219_VALUES.iter().find(|(k, _)| k == key) {
            assert!(
                values.contains(&value.as_str()),
                "{key}={value}: systemd 219 takes {values:?}"
            );
        }
    }
    let get = |key: &str| -> Vec<&str> {
        directives
            .iter()
            .filter(|(_, k, _)| k == key)
            .flat_map(|(_, _, v)| v.split_whitespace())
            .collect()
    };
    assert_eq!(get("ExecStart"), ["/usr/libexec/sm-rs/sm-mpath-agent"]);
    assert_eq!(get("WantedBy"), ["multi-user.target"]);
    // Started after multipathd and xapi's initialisation (stopped before them), but it never
    // starts either: no Wants=, Requires=, BindsTo= or Requisite= at all (Wants= on
    // xapi-init-complete.target starts xapi through xapi-wait-init-complete.service).
    let after = get("After");
    for unit in ["multipathd.service", "xapi-init-complete.target"] {
        assert!(after.contains(&unit), "After= lacks {unit}: {after:?}");
    }
    for pull in ["Wants", "Requires", "BindsTo", "Requisite", "PartOf"] {
        assert!(get(pull).is_empty(), "{pull}= on {:?}", get(pull));
    }
    // It must survive xe-toolstack-restart, which restarts toolstack.target's members.
    assert!(!text.contains("toolstack.target"));
    // Its SIGTERM drain (5 s by default) fits in the stop timeout.
    let stop = get("TimeoutStopSec")[0].trim_end_matches('s');
    assert!(stop.parse::<u32>().unwrap() > 5, "TimeoutStopSec={stop}");
}
