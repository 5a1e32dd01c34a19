//! systemd's journal export format (`journalctl -o export`): entries of `FIELD=value` lines ended by
//! an empty line; a field holding binary data or newlines is written as `FIELD\n`, a little-endian
//! u64 length, the bytes and `\n`.

use std::io::BufRead;

/// One journal entry: the fields the agent uses.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct JournalEntry {
    pub message: String,
    /// `__REALTIME_TIMESTAMP` in nanoseconds (microseconds in the journal).
    pub ts_ns: Option<i64>,
    pub cursor: Option<String>,
    pub unit: Option<String>,
    pub priority: Option<u8>,
}

/// The keyword Promtail's `__journal_priority_keyword` gives a syslog priority.
pub fn priority_keyword(p: u8) -> &'static str {
    match p {
        0 => "emerg",
        1 => "alert",
        2 => "crit",
        3 => "error",
        4 => "warning",
        5 => "notice",
        6 => "info",
        _ => "debug",
    }
}

/// Reads the next entry; `Ok(None)` at the end of input. A truncated last entry (input ended
/// without its empty line) is returned as it is.
pub fn next_entry<R: BufRead>(r: &mut R) -> std::io::Result<Option<JournalEntry>> {
    let mut e = JournalEntry::default();
    let mut any = false;
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = r.read_until(b'\n', &mut line)?;
        if n == 0 {
            return Ok(any.then_some(e));
        }
        if line.last() == Some(&b'\n') {
            line.pop();
        }
        if line.is_empty() {
            if any {
                return Ok(Some(e));
            }
            continue;
        }
        any = true;
        let (name, value) = match line.iter().position(|&b| b == b'=') {
            Some(i) => (
                String::from_utf8_lossy(&line[..i]).into_owned(),
                line[i + 1..].to_vec(),
            ),
            None => {
                // Binary form: the name alone, then a length and the data.
                let name = String::from_utf8_lossy(&line).into_owned();
                let mut len = [0u8; 8];
                r.read_exact(&mut len)?;
                let len = u64::from_le_bytes(len);
                if len > 64 << 20 {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        format!("journal field {name} claims {len} bytes"),
                    ));
                }
                let mut data = vec![0u8; len as usize];
                r.read_exact(&mut data)?;
                let mut nl = [0u8; 1];
                r.read_exact(&mut nl)?;
                (name, data)
            }
        };
        let text = || String::from_utf8_lossy(&value).into_owned();
        match name.as_str() {
            "MESSAGE" => e.message = text(),
            "__REALTIME_TIMESTAMP" => {
                e.ts_ns = text()
                    .parse::<i64>()
                    .ok()
                    .and_then(|us| us.checked_mul(1000))
            }
            "__CURSOR" => e.cursor = Some(text()),
            "_SYSTEMD_UNIT" => e.unit = Some(text()),
            "PRIORITY" => e.priority = text().parse().ok(),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_and_binary_fields() {
        let mut input = Vec::new();
        input.extend_from_slice(b"__CURSOR=s=1;i=1\n__REALTIME_TIMESTAMP=1700000000123456\nPRIORITY=3\n_SYSTEMD_UNIT=nginx.service\nMESSAGE=hello\n\n");
        input.extend_from_slice(
            b"__CURSOR=s=1;i=2\n__REALTIME_TIMESTAMP=1700000000200000\nMESSAGE\n",
        );
        input.extend_from_slice(&11u64.to_le_bytes());
        input.extend_from_slice(b"two\nlines\0!\n\n");
        let mut r = std::io::Cursor::new(input);
        let a = next_entry(&mut r).unwrap().unwrap();
        assert_eq!(a.message, "hello");
        assert_eq!(a.ts_ns, Some(1_700_000_000_123_456_000));
        assert_eq!(a.unit.as_deref(), Some("nginx.service"));
        assert_eq!(a.priority.map(priority_keyword), Some("error"));
        assert_eq!(a.cursor.as_deref(), Some("s=1;i=1"));
        let b = next_entry(&mut r).unwrap().unwrap();
        assert_eq!(b.message, "two\nlines\0!");
        assert_eq!(b.cursor.as_deref(), Some("s=1;i=2"));
        assert!(next_entry(&mut r).unwrap().is_none());
    }
}
