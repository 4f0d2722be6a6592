//! The captured serial console: the last [`KEEP`] bytes in memory, searchable while they
//! arrive.

use std::io::{Read, Write};
use std::sync::{Condvar, Mutex};
use std::time::Duration;

/// How much console output stays in memory (a whole Debian boot is well under this).
pub(crate) const KEEP: usize = 1 << 20;

#[derive(Default)]
struct Buf {
    data: Vec<u8>,
    /// Bytes dropped from the front so far.
    dropped: u64,
    /// QEMU closed its end (it exited).
    closed: bool,
}

#[derive(Default)]
pub(crate) struct Console {
    buf: Mutex<Buf>,
    grown: Condvar,
}

/// How a [`Console::wait_for`] ended without a match.
pub(crate) enum WaitEnd {
    /// The stream ended (QEMU exited).
    Closed,
    /// The `stop` callback said so.
    Stopped,
}

impl Console {
    /// Reads `pipe` to its end, keeping what comes (and copying it to stdout with `echo`).
    pub(crate) fn read_from(&self, mut pipe: impl Read, echo: bool) {
        let mut chunk = [0u8; 8192];
        loop {
            let n = match pipe.read(&mut chunk) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            if echo {
                let mut out = std::io::stdout().lock();
                let _ = out.write_all(&chunk[..n]).and_then(|()| out.flush());
            }
            self.push(&chunk[..n]);
        }
        self.buf.lock().unwrap().closed = true;
        self.grown.notify_all();
    }

    pub(crate) fn push(&self, bytes: &[u8]) {
        let mut b = self.buf.lock().unwrap();
        b.data.extend_from_slice(bytes);
        if b.data.len() > KEEP {
            let cut = b.data.len() - KEEP / 2;
            b.data.drain(..cut);
            b.dropped += cut as u64;
        }
        drop(b);
        self.grown.notify_all();
    }

    /// Everything kept, cleaned up for reading (see [`clean`]).
    pub(crate) fn text(&self) -> String {
        clean(&self.buf.lock().unwrap().data)
    }

    /// The last `lines` non-empty lines, cleaned up.
    pub(crate) fn tail(&self, lines: usize) -> String {
        let text = self.text();
        let all: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// Waits until `pattern` is in what was kept (from the start of the boot, not only
    /// from now on), the stream ends, or `stop` returns true (it is called every
    /// `poll` while waiting).
    pub(crate) fn wait_for(
        &self,
        pattern: &[u8],
        poll: Duration,
        mut stop: impl FnMut() -> bool,
    ) -> Result<(), WaitEnd> {
        // Absolute offset from which the pattern may still start.
        let mut from: u64 = 0;
        loop {
            {
                let b = self.buf.lock().unwrap();
                let start = from.saturating_sub(b.dropped) as usize;
                if find(&b.data[start.min(b.data.len())..], pattern) {
                    return Ok(());
                }
                let overlap = (pattern.len() as u64).saturating_sub(1);
                from = (b.dropped + b.data.len() as u64).saturating_sub(overlap);
                if b.closed {
                    return Err(WaitEnd::Closed);
                }
                let _unlocked_on_return = self.grown.wait_timeout(b, poll).unwrap();
            }
            // Unlocked: `stop` may read the console (to report its tail).
            if stop() {
                return Err(WaitEnd::Stopped);
            }
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || hay.windows(needle.len()).any(|w| w == needle)
}

/// Console bytes as text a terminal can show safely: ANSI escape sequences (cursor
/// moves, screen clears, colours) and carriage returns removed, other control
/// characters dropped, invalid UTF-8 replaced.
pub(crate) fn clean(bytes: &[u8]) -> String {
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            0x1b => {
                i += 1;
                match bytes.get(i) {
                    // CSI: parameters and intermediates, then one final byte 0x40..=0x7e.
                    Some(b'[') => {
                        i += 1;
                        while i < bytes.len() && !(0x40..=0x7e).contains(&bytes[i]) {
                            i += 1;
                        }
                        i += 1;
                    }
                    // OSC: up to BEL or ESC \.
                    Some(b']') => {
                        while i < bytes.len() && bytes[i] != 0x07 && bytes[i] != 0x1b {
                            i += 1;
                        }
                        i += if bytes.get(i) == Some(&0x1b) { 2 } else { 1 };
                    }
                    // Two-byte sequences (ESC c, ESC 7, ESC ( B, ...).
                    Some(b'(' | b')') => i += 2,
                    Some(_) => i += 1,
                    None => {}
                }
            }
            b'\n' | b'\t' => {
                out.push(bytes[i]);
                i += 1;
            }
            c if c < 0x20 || c == 0x7f => i += 1,
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn clean_strips_escapes_and_carriage_returns() {
        let raw = b"\x1b[2J\x1b[01;01H\x1b[=3hBdsDxe: loading\r\n\x1b[1m\x1b[33mMapping\x1b[0m table\r\n\x1b]0;title\x07ok\x1b(B\x08!";
        assert_eq!(clean(raw), "BdsDxe: loading\nMapping table\nok!");
    }

    #[test]
    fn tail_keeps_the_last_lines() {
        let c = Console::default();
        c.push(b"one\r\ntwo\r\n\r\nthree\r\nfour");
        assert_eq!(c.tail(2), "three\nfour");
        assert_eq!(c.tail(10), "one\ntwo\nthree\nfour");
    }

    #[test]
    fn wait_finds_patterns_split_across_chunks_and_old_output() {
        let c = Arc::new(Console::default());
        c.push(b"early login");
        assert!(
            c.wait_for(b"login", Duration::from_millis(10), || true)
                .is_ok()
        );
        let writer = Arc::clone(&c);
        let t = std::thread::spawn(move || {
            for chunk in [&b"deb"[..], b"ian log", b"in: "] {
                std::thread::sleep(Duration::from_millis(30));
                writer.push(chunk);
            }
        });
        assert!(
            c.wait_for(b"debian login:", Duration::from_millis(10), || false)
                .is_ok()
        );
        t.join().unwrap();
        let mut calls = 0;
        let r = c.wait_for(b"never", Duration::from_millis(1), || {
            calls += 1;
            calls > 3
        });
        assert!(matches!(r, Err(WaitEnd::Stopped)));
        c.read_from(&b"the end"[..], false);
        assert!(matches!(
            c.wait_for(b"never", Duration::from_millis(1), || false),
            Err(WaitEnd::Closed)
        ));
    }

    #[test]
    fn memory_is_bounded() {
        let c = Console::default();
        for _ in 0..300 {
            c.push(&[b'x'; 10_000]);
        }
        c.push(b"MARK");
        assert!(c.buf.lock().unwrap().data.len() <= KEEP);
        assert!(
            c.wait_for(b"MARK", Duration::from_millis(1), || true)
                .is_ok()
        );
    }
}
