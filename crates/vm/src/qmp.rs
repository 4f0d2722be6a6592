//! A minimal QMP client: one connection per command, over QEMU's unix socket.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use serde_json::Value;

/// Runs one QMP command (`{"execute": command}`) and returns its `return` value.
/// QEMU handles one client at a time; a connection is made, negotiated and closed per call.
pub(crate) fn execute(socket: &Path, command: &str, timeout: Duration) -> Result<Value, String> {
    let stream = UnixStream::connect(socket)
        .map_err(|e| format!("cannot connect to {}: {e}", socket.display()))?;
    stream
        .set_read_timeout(Some(timeout))
        .and_then(|()| stream.set_write_timeout(Some(timeout)))
        .map_err(|e| e.to_string())?;
    let mut writer = stream.try_clone().map_err(|e| e.to_string())?;
    let mut reader = BufReader::new(stream);
    // The greeting: {"QMP": {...}}.
    let greeting = read_message(&mut reader)?.ok_or("QEMU closed the QMP socket")?;
    if greeting.get("QMP").is_none() {
        return Err(format!("unexpected QMP greeting {greeting}"));
    }
    request(&mut reader, &mut writer, "qmp_capabilities")?
        .ok_or("QEMU closed the QMP socket during negotiation")?;
    match request(&mut reader, &mut writer, command)? {
        Some(v) => Ok(v),
        // `quit` may close the socket before QEMU answers.
        None if command == "quit" => Ok(Value::Null),
        None => Err(format!(
            "QEMU closed the QMP socket before answering `{command}`"
        )),
    }
}

fn request(
    reader: &mut impl BufRead,
    writer: &mut impl Write,
    command: &str,
) -> Result<Option<Value>, String> {
    let msg = serde_json::json!({ "execute": command });
    writer
        .write_all(format!("{msg}\r\n").as_bytes())
        .map_err(|e| format!("writing `{command}`: {e}"))?;
    loop {
        let Some(reply) = read_message(reader)? else {
            return Ok(None);
        };
        if let Some(ret) = reply.get("return") {
            return Ok(Some(ret.clone()));
        }
        if let Some(err) = reply.get("error") {
            return Err(format!("`{command}` failed: {err}"));
        }
        // An asynchronous event ({"event": ...}): not the answer.
    }
}

fn read_message(reader: &mut impl BufRead) -> Result<Option<Value>, String> {
    let mut line = String::new();
    match reader.read_line(&mut line) {
        Ok(0) => Ok(None),
        Ok(_) => serde_json::from_str(&line)
            .map(Some)
            .map_err(|e| format!("bad QMP message {line:?}: {e}")),
        Err(e)
            if e.kind() == std::io::ErrorKind::UnexpectedEof
                || e.kind() == std::io::ErrorKind::ConnectionReset =>
        {
            Ok(None)
        }
        Err(e) => Err(format!("reading from QMP: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixListener;

    #[test]
    fn negotiates_skips_events_and_returns_the_answer() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("qmp");
        let listener = UnixListener::bind(&path).unwrap();
        let server = std::thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            let mut w = stream.try_clone().unwrap();
            let mut r = BufReader::new(stream);
            w.write_all(b"{\"QMP\": {\"version\": {}, \"capabilities\": []}}\r\n")
                .unwrap();
            let mut seen = Vec::new();
            for answer in [
                "{\"return\": {}}\r\n",
                "{\"event\": \"POWERDOWN\", \"timestamp\": {}}\r\n{\"return\": {\"status\": \"running\"}}\r\n",
            ] {
                let mut line = String::new();
                r.read_line(&mut line).unwrap();
                seen.push(line);
                w.write_all(answer.as_bytes()).unwrap();
            }
            seen
        });
        let v = execute(&path, "query-status", Duration::from_secs(5)).unwrap();
        assert_eq!(v["status"], "running");
        let seen = server.join().unwrap();
        assert!(seen[0].contains("qmp_capabilities") && seen[1].contains("query-status"));
    }
}
