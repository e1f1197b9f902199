//! A log file with a size cap: past the cap it keeps the head and the tail, marks the
//! cut, and keeps accepting bytes so the child is never blocked on a full pipe.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, Write};
use std::path::Path;

/// The tail kept in memory for the report's last lines, regardless of the cap.
const TAIL_LINES_BYTES: usize = 16 * 1024;

/// A capped log being written.
#[derive(Debug)]
pub(crate) struct CappedLog {
    file: File,
    /// Bytes written to the file's head so far.
    head_written: u64,
    /// Bytes allowed in the head: half the cap.
    head_cap: u64,
    /// The last bytes past the head, up to the other half of the cap.
    tail: VecDeque<u8>,
    tail_cap: usize,
    /// Everything seen.
    seen: u64,
    /// The last few KiB of output, for the report's tail lines.
    recent: VecDeque<u8>,
}

impl CappedLog {
    pub(crate) fn create(path: &Path, cap: u64) -> io::Result<CappedLog> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let cap = cap.max(2);
        Ok(CappedLog {
            file: crate::files::create(path)?,
            head_written: 0,
            head_cap: cap / 2,
            tail: VecDeque::new(),
            tail_cap: (cap - cap / 2) as usize,
            seen: 0,
            // Grown as output comes: most commands print little, and 64 agents at
            // once would hold 1 MB of empty tails.
            recent: VecDeque::new(),
        })
    }

    /// Writes a line of orch's own at the top of the log (what ran), kept out of the
    /// output's tail lines.
    pub(crate) fn preamble(&mut self, line: &str) -> io::Result<()> {
        let bytes = strip_ansi(line.as_bytes()).into_owned();
        self.file.write_all(&bytes)?;
        self.head_written += bytes.len() as u64;
        self.seen += bytes.len() as u64;
        Ok(())
    }

    /// Writes `bytes` (whole lines), without terminal escape sequences: colours and
    /// cursor moves are noise in a stored log.
    pub(crate) fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        let clean = strip_ansi(bytes);
        self.write_plain(&clean)
    }

    fn write_plain(&mut self, mut bytes: &[u8]) -> io::Result<()> {
        self.seen += bytes.len() as u64;
        push_bounded(&mut self.recent, bytes, TAIL_LINES_BYTES);
        let room = self.head_cap.saturating_sub(self.head_written) as usize;
        if room > 0 {
            let n = room.min(bytes.len());
            self.file.write_all(&bytes[..n])?;
            self.head_written += n as u64;
            bytes = &bytes[n..];
        }
        if !bytes.is_empty() {
            push_bounded(&mut self.tail, bytes, self.tail_cap);
        }
        Ok(())
    }

    /// Writes the tail (with a cut marker if bytes were dropped) and flushes.
    /// Returns (bytes seen, whether anything was cut).
    pub(crate) fn finish(mut self) -> io::Result<(u64, bool, Vec<u8>)> {
        let kept = self.head_written + self.tail.len() as u64;
        let cut = self.seen - kept;
        if cut > 0 {
            write!(
                self.file,
                "\n[orch: {cut} bytes of output cut here; the log keeps its first and last bytes]\n"
            )?;
        }
        let (a, b) = self.tail.as_slices();
        self.file.write_all(a)?;
        self.file.write_all(b)?;
        self.file.flush()?;
        Ok((self.seen, cut > 0, self.recent.into_iter().collect()))
    }
}

/// `bytes` without ANSI escape sequences (CSI `ESC [ … final`, OSC `ESC ] … BEL`
/// or `ESC \\`, charset `ESC ( x`, and two-byte `ESC x`).
pub(crate) fn strip_ansi(bytes: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    if !bytes.contains(&0x1b) {
        return std::borrow::Cow::Borrowed(bytes);
    }
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != 0x1b {
            out.push(bytes[i]);
            i += 1;
            continue;
        }
        match bytes.get(i + 1) {
            Some(b'[') => {
                i += 2;
                while i < bytes.len() && !(0x40..=0x7e).contains(&bytes[i]) {
                    i += 1;
                }
                i += 1;
            }
            Some(b']') => {
                i += 2;
                while i < bytes.len()
                    && bytes[i] != 0x07
                    && !(bytes[i] == 0x1b && bytes.get(i + 1) == Some(&b'\\'))
                {
                    i += 1;
                }
                i += if bytes.get(i) == Some(&0x07) { 1 } else { 2 };
            }
            // Character set designations: `ESC ( B`.
            Some(b'(' | b')' | b'*' | b'+') => i += 3,
            Some(_) => i += 2,
            None => i += 1,
        }
    }
    std::borrow::Cow::Owned(out)
}

fn push_bounded(buf: &mut VecDeque<u8>, bytes: &[u8], cap: usize) {
    if bytes.len() >= cap {
        buf.clear();
        buf.extend(&bytes[bytes.len() - cap..]);
        return;
    }
    let overflow = (buf.len() + bytes.len()).saturating_sub(cap);
    buf.drain(..overflow);
    buf.extend(bytes);
}

/// The last `n` lines of `bytes`, lossily decoded.
pub(crate) fn last_lines(bytes: &[u8], n: usize) -> Vec<String> {
    let text = String::from_utf8_lossy(bytes);
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..]
        .iter()
        .map(|l| l.to_string())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_head_and_tail_and_marks_the_cut() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.log");
        let mut log = CappedLog::create(&p, 10).unwrap();
        for chunk in [&b"abc"[..], b"defgh", b"ijklmnop", b"qrstuvwxyz"] {
            log.write(chunk).unwrap();
        }
        let (seen, cut, recent) = log.finish().unwrap();
        assert_eq!((seen, cut), (26, true));
        assert_eq!(recent, b"abcdefghijklmnopqrstuvwxyz");
        let text = std::fs::read_to_string(&p).unwrap();
        assert_eq!(
            text,
            "abcde\n[orch: 16 bytes of output cut here; the log keeps its first and last bytes]\nvwxyz"
        );
    }

    #[test]
    fn escape_sequences_are_stripped() {
        let s = strip_ansi(b"\x1b[1;31mred\x1b[0m and \x1b]0;title\x07plain\x1b(B\n");
        assert_eq!(&*s, b"red and plain\n");
        assert!(matches!(strip_ansi(b"none"), std::borrow::Cow::Borrowed(_)));
    }

    #[test]
    fn under_the_cap_nothing_is_cut() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.log");
        let mut log = CappedLog::create(&p, 100).unwrap();
        log.write(b"hello\nworld\n").unwrap();
        assert!(!log.finish().unwrap().1);
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "hello\nworld\n");
        assert_eq!(last_lines(b"a\nb\nc\n", 2), vec!["b", "c"]);
    }
}
