//! Files in orch's own trees (the artifacts: logs, prompts, markers), written and read
//! without following a link. An agent can reach its attempt's artifacts directory
//! (its prompt is there), so it can plant `worker-1.log -> ~/.bashrc` or
//! `agent.log -> /etc/shadow`: a write would then clobber the link's target, and a read
//! would serve it to whoever looks at the logs. Here a write replaces whatever stands
//! at the path with a new regular file, and a read opens only a regular file, with no
//! link followed, inside the tree it belongs to.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// Why a file of orch's own tree was not read.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// Not a regular file inside the tree: a link, a pipe, a device, a directory, or a
    /// path that leaves the tree.
    #[error("{path} is not a regular file under {root}: {why}; orch reads only its own logs")]
    Refused {
        /// The file.
        path: PathBuf,
        /// The tree it should be in.
        root: PathBuf,
        /// What it is instead.
        why: String,
    },
    /// The file could not be opened or read.
    #[error("reading {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
}

/// Opens (creating or truncating) `path` for writing as a new regular file: whatever
/// stands there that is not one (a link, a pipe) is removed first, and the open
/// follows no link, so a link planted in between fails it instead of being written
/// through.
pub fn create(path: &Path) -> io::Result<File> {
    clear_non_file(path)?;
    OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .custom_flags(nix::libc::O_NOFOLLOW)
        .open(path)
}

/// Opens `path` for appending; it must be a regular file (no link is followed).
pub fn append(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .append(true)
        .custom_flags(nix::libc::O_NOFOLLOW)
        .open(path)
}

/// Writes `bytes` to `path` whole: into a new file beside it, then renamed over it, so
/// a link at `path` is replaced, never written through, and a reader never sees half.
pub fn write(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "a file name is needed"))?;
    let tmp = path.with_file_name(format!(".{}.tmp", name.to_string_lossy()));
    clear_non_file(&tmp)?;
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .custom_flags(nix::libc::O_NOFOLLOW)
        .open(&tmp)?;
    io::Write::write_all(&mut f, bytes)?;
    std::fs::rename(&tmp, path)
}

/// Makes `root/parts...` a chain of real directories: a link or file standing for one
/// of them (planted to send orch's writes elsewhere) is replaced by a directory.
pub fn real_dirs(root: &Path, parts: &[&str]) -> io::Result<PathBuf> {
    std::fs::create_dir_all(root)?;
    let mut at = root.to_path_buf();
    for p in parts {
        at.push(p);
        match at.symlink_metadata() {
            Ok(m) if m.is_dir() => continue,
            Ok(_) => std::fs::remove_file(&at)?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        match std::fs::create_dir(&at) {
            Err(e) if e.kind() != io::ErrorKind::AlreadyExists => return Err(e),
            _ => {}
        }
    }
    Ok(at)
}

/// Removes what stands at `path` unless it is a regular file (or nothing).
fn clear_non_file(path: &Path) -> io::Result<()> {
    match path.symlink_metadata() {
        Ok(m) if m.is_file() => Ok(()),
        Ok(m) if m.is_dir() => std::fs::remove_dir_all(path),
        Ok(_) => std::fs::remove_file(path),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// Opens `path` for reading if it is a regular file inside `root`: no component
/// between `root` and it is a link, and the file itself is opened without following
/// one (and without blocking on a planted pipe).
pub fn open_under(root: &Path, path: &Path) -> Result<File, FileError> {
    let refused = |why: &str| FileError::Refused {
        path: path.to_path_buf(),
        root: root.to_path_buf(),
        why: why.to_owned(),
    };
    let rel = path
        .strip_prefix(root)
        .map_err(|_| refused("it is outside that directory"))?;
    let mut at = root.to_path_buf();
    let parts: Vec<_> = rel.components().collect();
    for (i, c) in parts.iter().enumerate() {
        let std::path::Component::Normal(c) = c else {
            return Err(refused("its path climbs out with `..`"));
        };
        at.push(c);
        if i + 1 < parts.len() {
            let dir = at.symlink_metadata().map_err(|source| FileError::Io {
                path: at.clone(),
                source,
            })?;
            if !dir.is_dir() {
                return Err(refused(&format!("{} is a link", at.display())));
            }
        }
    }
    let f = OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK)
        .open(path)
        .map_err(|source| match source.raw_os_error() {
            Some(nix::libc::ELOOP) => refused("it is a symbolic link"),
            _ => FileError::Io {
                path: path.to_path_buf(),
                source,
            },
        })?;
    let meta = f.metadata().map_err(|source| FileError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    if !meta.is_file() {
        return Err(refused("it is not a regular file"));
    }
    Ok(f)
}

/// The bytes of the regular file `path` under `root` from offset `from` on, at most
/// `max` of them (a log being written may grow meanwhile).
pub fn read_under(root: &Path, path: &Path, from: u64, max: u64) -> Result<Vec<u8>, FileError> {
    let mut f = open_under(root, path)?;
    let io = |source| FileError::Io {
        path: path.to_path_buf(),
        source,
    };
    f.seek(SeekFrom::Start(from)).map_err(io)?;
    let mut out = Vec::new();
    f.take(max).read_to_end(&mut out).map_err(io)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_are_replaced_on_write_and_refused_on_read() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("artifacts");
        let dir = root.join("r/1/1");
        std::fs::create_dir_all(&dir).unwrap();
        let secret = d.path().join("secret");
        std::fs::write(&secret, "do not serve\n").unwrap();
        let log = dir.join("x.log");
        std::os::unix::fs::symlink(&secret, &log).unwrap();
        let e = open_under(&root, &log).unwrap_err().to_string();
        assert!(e.contains("symbolic link"), "{e}");
        // A write replaces the link and leaves its target alone.
        write(&log, b"ours\n").unwrap();
        assert_eq!(std::fs::read_to_string(&secret).unwrap(), "do not serve\n");
        assert_eq!(read_under(&root, &log, 0, 100).unwrap(), b"ours\n");
        std::os::unix::fs::symlink(&secret, dir.join("y.log")).unwrap();
        let mut f = create(&dir.join("y.log")).unwrap();
        io::Write::write_all(&mut f, b"gate\n").unwrap();
        assert_eq!(std::fs::read_to_string(&secret).unwrap(), "do not serve\n");
        // A linked directory on the way, a path outside the tree, a pipe: refused.
        std::os::unix::fs::symlink(d.path(), root.join("r/1/2")).unwrap();
        let e = open_under(&root, &root.join("r/1/2/secret")).unwrap_err();
        assert!(e.to_string().contains("is a link"), "{e}");
        assert!(open_under(&root, &secret).is_err());
        assert!(open_under(&root, &root.join("r/../../secret")).is_err());
        let fifo = dir.join("z.log");
        assert!(
            std::process::Command::new("mkfifo")
                .arg(&fifo)
                .status()
                .unwrap()
                .success()
        );
        let e = open_under(&root, &fifo).unwrap_err().to_string();
        assert!(e.contains("not a regular file"), "{e}");
        assert_eq!(read_under(&root, &log, 2, 2).unwrap(), b"rs");
    }
}
