//! `cargo xtask dist`: the static binaries and the RPM a dom0 installs.
//!
//! 1. builds `sm-driver`, `mpathutil` and `sm-mpath-agent` for `x86_64-unknown-linux-musl`
//!    with the `dist` profile (a dom0 has glibc 2.17: a gnu build of this machine's would not
//!    start there);
//! 2. checks that each is static (no ELF program interpreter);
//! 3. appends to the driver the entry xapi's tracing mode runs (see [`TRACING_ENTRY`]);
//! 4. runs `rpmbuild` on `packaging/sm-rs.spec` with everything staged as its sources;
//! 5. prints where the RPM is, and its size and each binary's.
//!
//! `--profile` builds with another cargo profile (the packaging test uses `dist-test`, which
//! is `dist` without the optimiser's cost); `--out` says where the RPM goes (default
//! `target/dist`); `--xz LEVEL` the payload's xz level (default 6, what ships; the test takes 1,
//! still an xz payload: on the `dist-test` binaries, 24 MB, xz -6 took 88 s of CPU on this busy
//! machine and xz -1 5.5 s).

use std::error::Error;
use std::fs;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

type Result<T> = std::result::Result<T, Box<dyn Error>>;

pub const TARGET: &str = "x86_64-unknown-linux-musl";
/// The binaries the RPM ships: (package, binary).
const BINARIES: [(&str, &str); 3] = [
    ("sm-plugin", "sm-driver"),
    ("mpathutil", "mpathutil"),
    ("sm-plugin", "sm-mpath-agent"),
];

/// With the "smapi" observer on, xapi runs `python3 -m observer <driver> <methodCall>`, and
/// the observer hands the driver's file to `runpy.run_path`, which cannot run a native
/// program (xapi `python3/packages/observer.py`). A zip archive is read from its end, and
/// runpy runs the `__main__.py` of a file that is a zip archive: appended to the driver,
/// this entry runs the driver itself, as a child, so the observer's span covers the call and
/// the driver's stdout (the RPC response) and exit status pass through. Without the
/// observer, the kernel loads the ELF and never reads the appended bytes: the normal mode
/// pays nothing.
pub const TRACING_ENTRY: &str = r#"# sm-rs: xapi's tracing mode ("smapi" observer) runs this file with Python's runpy;
# it runs the native driver, which is the same file, with the same argv.
import subprocess
import sys

sys.exit(subprocess.call(sys.argv))
"#;

const USAGE: &str = "usage: cargo xtask dist [--profile PROFILE] [--out DIR] [--xz LEVEL]

Builds sm-driver, mpathutil and sm-mpath-agent for x86_64-unknown-linux-musl (static) with the cargo profile
PROFILE (default: dist), then the RPM from packaging/sm-rs.spec with rpmbuild, into DIR
(default: target/dist). Needs the musl target (rustup target add x86_64-unknown-linux-musl),
musl-gcc and rpmbuild (Debian: musl-tools, rpm); .ci/install.d/20-packaging.sh installs them.";

struct Options {
    profile: String,
    xz_level: u8,
    out: Option<PathBuf>,
}

fn parse(mut args: impl Iterator<Item = String>) -> Result<Option<Options>> {
    let mut options = Options {
        profile: "dist".into(),
        xz_level: 6,
        out: None,
    };
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--profile" => options.profile = args.next().ok_or("--profile needs a value")?,
            "--xz" => {
                options.xz_level = args
                    .next()
                    .and_then(|l| l.parse().ok())
                    .filter(|l| (0..=9).contains(l))
                    .ok_or("--xz needs a level, 0 to 9")?;
            }
            "--out" => options.out = Some(args.next().ok_or("--out needs a value")?.into()),
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(None);
            }
            other => return Err(format!("unknown argument {other:?}\n{USAGE}").into()),
        }
    }
    Ok(Some(options))
}

pub fn run(args: impl Iterator<Item = String>) -> Result<()> {
    let Some(options) = parse(args)? else {
        return Ok(());
    };
    let workspace = workspace_root();
    let target_dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace.join("target"));
    let out = options
        .out
        .clone()
        .unwrap_or_else(|| target_dir.join("dist"));

    build(&workspace, &options.profile)?;
    let built = target_dir.join(TARGET).join(&options.profile);
    for (_, bin) in BINARIES {
        let path = built.join(bin);
        if !is_static(&path)? {
            return Err(format!(
                "{} needs a dynamic loader: a dom0 (glibc 2.17) could not start it",
                path.display()
            )
            .into());
        }
    }

    let topdir = out.join("rpmbuild");
    if topdir.exists() {
        fs::remove_dir_all(&topdir)?;
    }
    let sources = topdir.join("SOURCES");
    fs::create_dir_all(&sources)?;
    let driver = sources.join("sm-driver");
    fs::copy(built.join("sm-driver"), &driver)?;
    append_tracing_entry(&driver)?;
    fs::copy(built.join("mpathutil"), sources.join("mpathutil"))?;
    fs::copy(built.join("sm-mpath-agent"), sources.join("sm-mpath-agent"))?;
    let packaging = workspace.join("packaging");
    fs::copy(packaging.join("sm-rs-setup"), sources.join("sm-rs-setup"))?;
    fs::copy(
        packaging.join("systemd/sm-mpath-agent.service"),
        sources.join("sm-mpath-agent.service"),
    )?;
    fs::copy(
        packaging.join("multipath/sm-rs.conf"),
        sources.join("00-sm-rs.conf"),
    )?;

    let rpm = rpmbuild(
        &packaging.join("sm-rs.spec"),
        &topdir,
        &out,
        options.xz_level,
    )?;
    println!("{}", rpm.display());
    eprintln!(
        "sm-rs RPM: {} ({} bytes); sm-driver {} bytes (with its tracing entry {} bytes), mpathutil {} bytes, sm-mpath-agent {} bytes, profile {}",
        rpm.display(),
        size(&rpm)?,
        size(&built.join("sm-driver"))?,
        size(&driver)?,
        size(&built.join("mpathutil"))?,
        size(&built.join("sm-mpath-agent"))?,
        options.profile,
    );
    Ok(())
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

fn size(path: &Path) -> Result<u64> {
    Ok(fs::metadata(path)?.len())
}

fn run_checked(command: &mut Command, what: &str, hint: &str) -> Result<()> {
    let status = command.status().map_err(|e| {
        format!(
            "{what}: cannot run {:?}: {e}. {hint}",
            command.get_program()
        )
    })?;
    if !status.success() {
        return Err(format!("{what} failed ({status}). {hint}").into());
    }
    Ok(())
}

fn build(workspace: &Path, profile: &str) -> Result<()> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command.current_dir(workspace).args([
        "build",
        "--locked",
        "--profile",
        profile,
        "--target",
        TARGET,
    ]);
    for (package, bin) in BINARIES {
        command.args(["-p", package, "--bin", bin]);
    }
    run_checked(
        &mut command,
        "cargo build",
        "The musl target and musl-gcc are needed: rustup target add x86_64-unknown-linux-musl; \
         apt-get install musl-tools (.ci/install.d/20-packaging.sh).",
    )
}

/// An ELF file with no program interpreter (`PT_INTERP`) is started by the kernel alone:
/// static, or static-pie as musl builds are.
pub fn is_static(path: &Path) -> Result<bool> {
    const PT_INTERP: u32 = 3;
    let mut file = fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut header = [0u8; 64];
    file.read_exact(&mut header)?;
    if &header[..4] != b"\x7fELF" || header[4] != 2 || header[5] != 1 {
        return Err(format!("{} is not a 64-bit little-endian ELF file", path.display()).into());
    }
    let u16_at = |b: &[u8], at: usize| u16::from_le_bytes([b[at], b[at + 1]]);
    let phoff = u64::from_le_bytes(header[32..40].try_into()?);
    let phentsize = u64::from(u16_at(&header, 54));
    let phnum = u64::from(u16_at(&header, 56));
    let mut entry = vec![0u8; usize::try_from(phentsize)?];
    for i in 0..phnum {
        file.seek(SeekFrom::Start(phoff + i * phentsize))?;
        file.read_exact(&mut entry)?;
        if u32::from_le_bytes(entry[..4].try_into()?) == PT_INTERP {
            return Ok(false);
        }
    }
    Ok(true)
}

fn append_tracing_entry(driver: &Path) -> Result<()> {
    let mut file = fs::OpenOptions::new().read(true).write(true).open(driver)?;
    file.seek(SeekFrom::End(0))?;
    let mut zip = zip::ZipWriter::new(file);
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Stored)
        .unix_permissions(0o644);
    zip.start_file("__main__.py", options)?;
    zip.write_all(TRACING_ENTRY.as_bytes())?;
    zip.finish()?;
    Ok(())
}

fn rpmbuild(spec: &Path, topdir: &Path, out: &Path, xz_level: u8) -> Result<PathBuf> {
    let version = env!("CARGO_PKG_VERSION");
    let define = |name: &str, value: &Path| format!("{name} {}", value.display());
    let mut command = Command::new("rpmbuild");
    command
        .arg("-bb")
        .args(["--target", "x86_64-linux", "--nodeps", "--quiet"])
        .args(["--define", &define("_topdir", topdir)])
        .args(["--define", &define("_sourcedir", &topdir.join("SOURCES"))])
        .args(["--define", &format!("sm_rs_version {version}")])
        .args(["--define", &format!("sm_rs_xz_level {xz_level}")])
        .arg(spec);
    run_checked(
        &mut command,
        "rpmbuild",
        "rpmbuild is in Debian's rpm package (.ci/install.d/20-packaging.sh).",
    )?;
    let name = format!("sm-rs-{version}-1.x86_64.rpm");
    let built = topdir.join("RPMS/x86_64").join(&name);
    let rpm = out.join(&name);
    fs::copy(&built, &rpm).map_err(|e| format!("{}: {e}", built.display()))?;
    Ok(rpm)
}
