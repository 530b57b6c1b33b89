//! The guest image: built on first use by `tests/realstack/build-image.sh`, cached by a hash of
//! everything in `tests/realstack/` (the builder and the guest files it installs), our
//! multipath.conf drop-in, and the sources of the dom0's multipathd when they are there
//! ([`dom0_sources`]), so a change to any of them gives a new image and an unchanged tree
//! never rebuilds.
//!
//! Layout under the cache directory:
//!
//! ```text
//! lock                      held while checking or building: parallel tests build once
//! images/<hash>/            vmlinux (PVH), vmlinuz, initrd.img, rootfs.ext4, kernel-version, READY
//! images/<hash>.log         the builder's output
//! debootstrap-<key>/        the builder's own cache of the Debian tree, and kernel/ its .deb
//! dom0-multipathd-<key>/    the builder's cache of the dom0 multipathd 0.4.9-xs, built
//! ```

use std::fs::{self, File};
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use sha2::{Digest, Sha256};

use super::error::{Error, Result};
use super::process;

/// A built guest image; qemu boots it with `snapshot=on`, so it is never written.
#[derive(Debug, Clone)]
pub struct Image {
    pub dir: PathBuf,
}

impl Image {
    /// The kernel to boot: the uncompressed PVH one when the build could extract it (boots
    /// about 7 s faster under emulation), else the bzImage.
    pub fn kernel(&self) -> PathBuf {
        let pvh = self.dir.join("vmlinux");
        if pvh.is_file() {
            pvh
        } else {
            self.dir.join("vmlinuz")
        }
    }
    pub fn initrd(&self) -> PathBuf {
        self.dir.join("initrd.img")
    }
    pub fn rootfs(&self) -> PathBuf {
        self.dir.join("rootfs.ext4")
    }
    pub fn kernel_version(&self) -> String {
        fs::read_to_string(self.dir.join("kernel-version"))
            .map(|s| s.trim().to_string())
            .unwrap_or_default()
    }
    /// The multipathd versions the image carries (`smrs.daemon=` names).
    pub fn daemons(&self) -> Vec<String> {
        fs::read_to_string(self.dir.join("daemons"))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }
}

/// Where the builder and the guest files live in the source tree.
pub fn inputs_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("realstack")
}

/// Our multipath.conf drop-in, which the guest of the dom0 daemon boots with.
fn drop_in() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../packaging/multipath/sm-rs.conf")
}

/// The sources of the dom0's multipathd 0.4.9-136.xs8: `SM_RS_DOM0_MULTIPATHD` if set, else
/// `<project root>/../shared/dom0-multipathd` (they are not in the repository: a plain clone
/// has none, and its 0.4.9 tests skip). `Err` says why there are none.
pub fn dom0_sources() -> std::result::Result<PathBuf, String> {
    let dir = match std::env::var_os("SM_RS_DOM0_MULTIPATHD").filter(|d| !d.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/dom0-multipathd"),
    };
    if dir.join("device-mapper-multipath.spec").is_file() {
        Ok(dir.canonicalize().unwrap_or(dir))
    } else {
        Err(format!(
            "no sources of the dom0 multipathd 0.4.9-xs in {} (the project's \
             ../shared/dom0-multipathd, or SM_RS_DOM0_MULTIPATHD)",
            dir.display()
        ))
    }
}

/// The image's key: the builder's inputs, the drop-in, and the dom0 sources if any.
pub fn image_hash() -> Result<String> {
    let mut hasher = Sha256::new();
    hasher.update(inputs_hash(&inputs_dir())?.as_bytes());
    hash_file(&mut hasher, "drop-in", &drop_in())?;
    if let Ok(dom0) = dom0_sources() {
        hasher.update(b"\0dom0\0");
        hasher.update(inputs_hash(&dom0)?.as_bytes());
    }
    let digest = hasher.finalize();
    Ok(digest.iter().take(8).map(|b| format!("{b:02x}")).collect())
}

/// Bumped when the harness changes what it expects of an image without a file in
/// `tests/realstack/` changing.
const FORMAT: &str = "sm-rs realstack image v1";

/// Images kept in the cache: the current one and a few others, so that two checkouts with
/// different guest files (two branches on one machine) do not rebuild each other's image.
const KEEP_IMAGES: usize = 3;

/// A cold build takes about a minute; a slow mirror can take much longer.
const BUILD_TIMEOUT: Duration = Duration::from_secs(20 * 60);

/// The image for the current inputs, built if the cache does not have it. Also returns how
/// long the build took when this call built it.
pub fn ensure(cache: &Path) -> Result<(Image, Option<Duration>)> {
    let inputs = inputs_dir();
    let hash = image_hash()?;
    let images = cache.join("images");
    fs::create_dir_all(&images)
        .map_err(|e| Error::io(format!("creating {}", images.display()), e))?;
    let lock_path = cache.join("lock");
    let lock = File::create(&lock_path)
        .map_err(|e| Error::io(format!("creating {}", lock_path.display()), e))?;
    lock.lock()
        .map_err(|e| Error::io(format!("locking {}", lock_path.display()), e))?;

    let image = Image {
        dir: images.join(&hash),
    };
    let ready = image.dir.join("READY");
    if ready.exists() {
        // the mtime of READY is the image's last use: the cache keeps the most recent ones
        let _ = File::options()
            .append(true)
            .open(&ready)
            .and_then(|f| f.set_modified(SystemTime::now()));
        return Ok((image, None));
    }

    let started = Instant::now();
    let staging = images.join(format!("{hash}.building"));
    let log_path = images.join(format!("{hash}.log"));
    build(&inputs.join("build-image.sh"), cache, &staging, &log_path)?;
    fs::write(staging.join("READY"), format!("{FORMAT}\ninputs {hash}\n"))
        .map_err(|e| Error::io("marking the image ready", e))?;
    let _ = fs::remove_dir_all(&image.dir);
    fs::rename(&staging, &image.dir)
        .map_err(|e| Error::io(format!("moving the image into {}", image.dir.display()), e))?;
    prune(&images, KEEP_IMAGES);
    Ok((image, Some(started.elapsed())))
}

fn build(script: &Path, cache: &Path, out: &Path, log_path: &Path) -> Result<()> {
    let log = File::create(log_path)
        .map_err(|e| Error::io(format!("creating {}", log_path.display()), e))?;
    let log_err = log
        .try_clone()
        .map_err(|e| Error::io("duplicating the build log", e))?;
    let mut command = Command::new("bash");
    match dom0_sources() {
        Ok(dir) => command.env("SM_RS_DOM0_MULTIPATHD_SRC", dir),
        Err(_) => command.env_remove("SM_RS_DOM0_MULTIPATHD_SRC"),
    };
    let mut child = process::spawn_tied(
        command
            .arg(script)
            .arg(cache)
            .arg(out)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err),
    )
    .map_err(|e| Error::io(format!("running {}", script.display()), e))?;
    let started = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if started.elapsed() > BUILD_TIMEOUT => {
                process::kill_and_reap(&mut child);
                return Err(Error::Build(format!(
                    "no image after {} s; log {}:\n{}",
                    BUILD_TIMEOUT.as_secs(),
                    log_path.display(),
                    tail(log_path, 30)
                )));
            }
            Ok(None) => thread::sleep(Duration::from_millis(200)),
            Err(e) => return Err(Error::io("waiting for the image build", e)),
        }
    };
    if !status.success() {
        return Err(Error::Build(format!(
            "{} {status}; log {}:\n{}",
            script.display(),
            log_path.display(),
            tail(log_path, 30)
        )));
    }
    Ok(())
}

/// The last `lines` lines of a text file, for error messages.
pub fn tail(path: &Path, lines: usize) -> String {
    let text = fs::read(path).unwrap_or_default();
    let text = String::from_utf8_lossy(&text);
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Deletes all but the `keep` most recently used images (and their logs).
fn prune(images: &Path, keep: usize) {
    let Ok(entries) = fs::read_dir(images) else {
        return;
    };
    let mut ready: Vec<(SystemTime, PathBuf)> = entries
        .flatten()
        .map(|e| e.path())
        .filter_map(|dir| {
            let used = fs::metadata(dir.join("READY"))
                .and_then(|m| m.modified())
                .ok()?;
            Some((used, dir))
        })
        .collect();
    ready.sort_by_key(|(used, _)| std::cmp::Reverse(*used));
    for (_, dir) in ready.into_iter().skip(keep) {
        let _ = fs::remove_dir_all(&dir);
        let _ = fs::remove_file(dir.with_extension("log"));
    }
}

/// A hash of every file under `dir` (relative path, executable bit, contents), in a fixed
/// order. Editor and Python byte-code droppings are left out: they do not change the image.
pub fn inputs_hash(dir: &Path) -> Result<String> {
    let mut files = Vec::new();
    collect_files(dir, dir, &mut files)?;
    files.sort();
    let mut hasher = Sha256::new();
    hasher.update(FORMAT.as_bytes());
    for rel in files {
        hash_file(&mut hasher, &rel, &dir.join(&rel))?;
    }
    let digest = hasher.finalize();
    Ok(digest.iter().take(8).map(|b| format!("{b:02x}")).collect())
}

/// Feeds one file (name, executable bit, contents) to `hasher`.
fn hash_file(hasher: &mut Sha256, rel: &str, path: &Path) -> Result<()> {
    let meta =
        fs::metadata(path).map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
    let mut content = Vec::new();
    File::open(path)
        .and_then(|mut f| f.read_to_end(&mut content))
        .map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
    let executable = meta.permissions().mode() & 0o111 != 0;
    hasher.update(format!("\0{rel}\0{executable}\0{}\0", content.len()).as_bytes());
    hasher.update(&content);
    Ok(())
}

fn collect_files(root: &Path, dir: &Path, out: &mut Vec<String>) -> Result<()> {
    let entries =
        fs::read_dir(dir).map_err(|e| Error::io(format!("listing {}", dir.display()), e))?;
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(format!("listing {}", dir.display()), e))?;
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if name == "__pycache__"
            || name.ends_with(".pyc")
            || name.ends_with('~')
            || name.ends_with(".swp")
        {
            continue;
        }
        if path.is_dir() {
            collect_files(root, &path, out)?;
        } else {
            let rel = path.strip_prefix(root).unwrap_or(&path);
            out.push(rel.to_string_lossy().into_owned());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, rel: &str, text: &str) {
        let path = dir.join(rel);
        fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        fs::write(path, text).expect("write");
    }

    #[test]
    fn the_hash_follows_content_names_and_modes_but_not_droppings() {
        let dir = tempfile::tempdir().expect("temp dir");
        write(dir.path(), "build-image.sh", "echo build");
        write(dir.path(), "guest/init", "echo init");
        let first = inputs_hash(dir.path()).expect("hash");
        assert_eq!(first, inputs_hash(dir.path()).expect("hash"), "stable");

        write(
            dir.path(),
            "guest/__pycache__/agent.cpython-311.pyc",
            "junk",
        );
        write(dir.path(), "guest/init~", "junk");
        assert_eq!(
            first,
            inputs_hash(dir.path()).expect("hash"),
            "droppings ignored"
        );

        write(dir.path(), "guest/init", "echo init2");
        let edited = inputs_hash(dir.path()).expect("hash");
        assert_ne!(first, edited, "content counts");

        let init = dir.path().join("guest/init");
        fs::set_permissions(&init, fs::Permissions::from_mode(0o755)).expect("chmod");
        assert_ne!(
            edited,
            inputs_hash(dir.path()).expect("hash"),
            "mode counts"
        );
    }

    #[test]
    fn the_source_tree_has_the_builder_and_the_guest_files() {
        let dir = inputs_dir();
        for file in [
            "build-image.sh",
            "guest/init",
            "guest/agent",
            "guest/io-check",
            "guest/paths",
        ] {
            assert!(
                dir.join(file).is_file(),
                "{file} missing in {}",
                dir.display()
            );
        }
    }

    #[test]
    fn prune_keeps_the_most_recently_used() {
        let dir = tempfile::tempdir().expect("temp dir");
        for (i, name) in ["a", "b", "c"].iter().enumerate() {
            write(dir.path(), &format!("{name}/READY"), "x");
            let when = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000 + i as u64);
            File::options()
                .append(true)
                .open(dir.path().join(name).join("READY"))
                .and_then(|f| f.set_modified(when))
                .expect("set mtime");
        }
        prune(dir.path(), 2);
        assert!(!dir.path().join("a").exists());
        assert!(dir.path().join("b").exists() && dir.path().join("c").exists());
    }
}
