//! A container's last lines of output: the engine's log stream (stdout and stderr, as the
//! engine interleaved them) cut into lines, within fixed bounds.
//!
//! The engine is asked for the last `tail` lines only, and whatever it sends is still bounded
//! here: at most `tail` lines of at most [`MAX_LINE_BYTES`] each are kept, newest last, so a
//! container that writes huge lines cannot make GRACE hold more than that — and no more bytes
//! than the call's response budget (`grace_executor::budget`): older lines are dropped first.

use bollard::container::LogOutput;
use bollard::query_parameters::LogsOptionsBuilder;
use futures_util::StreamExt;
use grace_executor::ExecError;

use crate::Docker;

/// The most lines one `logs` call may ask for.
pub const MAX_TAIL: u32 = 1_000;

/// Longer lines are cut here (Docker itself splits its log entries at 16 KiB).
pub(crate) const MAX_LINE_BYTES: usize = 16 * 1024;

/// The last `tail` lines container `id` (already checked) wrote to stdout and stderr.
pub(crate) async fn logs(docker: &Docker, id: &str, tail: u32) -> Result<Vec<String>, ExecError> {
    if tail > MAX_TAIL {
        return Err(ExecError::InvalidArgument(format!(
            "`{tail}` log lines is more than the limit of {MAX_TAIL}"
        )));
    }
    let what = format!("read the logs of container `{id}`");
    let engine = docker.engine(&what).await?;
    let options = LogsOptionsBuilder::default()
        .stdout(true)
        .stderr(true)
        .tail(&tail.to_string())
        .build();
    let collect = async {
        let budget =
            grace_executor::budget::response_cap(u64::from(MAX_TAIL) * MAX_LINE_BYTES as u64);
        let mut lines = Lines::new(tail).within(usize::try_from(budget).unwrap_or(usize::MAX));
        let mut stream = engine.logs(id, Some(options));
        while let Some(chunk) = stream.next().await {
            lines.push(&chunk?);
        }
        Ok(lines.finish())
    };
    docker
        .call(&what, docker.settings.call_timeout, collect)
        .await
}

/// Which stream a chunk came from: partial lines are completed within their own stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    Out,
    Err,
}

/// Cuts chunks into lines, keeping the newest `keep`.
#[derive(Debug)]
pub(crate) struct Lines {
    keep: usize,
    /// Most bytes of lines kept.
    max_bytes: usize,
    /// Bytes of the lines kept.
    bytes: usize,
    lines: std::collections::VecDeque<String>,
    /// A line started on stdout and not finished yet.
    out: Vec<u8>,
    /// A line started on stderr and not finished yet.
    err: Vec<u8>,
}

impl Lines {
    pub(crate) fn new(keep: u32) -> Lines {
        Lines {
            keep: usize::try_from(keep).unwrap_or(usize::MAX),
            max_bytes: usize::MAX,
            bytes: 0,
            lines: std::collections::VecDeque::new(),
            out: Vec::new(),
            err: Vec::new(),
        }
    }

    /// Keeps at most `max_bytes` of lines, the newest.
    pub(crate) fn within(mut self, max_bytes: usize) -> Lines {
        self.max_bytes = max_bytes;
        self
    }

    pub(crate) fn push(&mut self, chunk: &LogOutput) {
        let (source, bytes) = match chunk {
            LogOutput::StdErr { message } => (Source::Err, message),
            // A TTY container's output is one stream; stdin is never asked for.
            LogOutput::StdOut { message }
            | LogOutput::Console { message }
            | LogOutput::StdIn { message } => (Source::Out, message),
        };
        let mut rest: &[u8] = bytes;
        while let Some(newline) = rest.iter().position(|&b| b == b'\n') {
            self.extend(source, &rest[..newline]);
            let line = std::mem::take(self.pending(source));
            self.emit(&line);
            rest = &rest[newline + 1..];
        }
        self.extend(source, rest);
    }

    /// The lines, oldest first, with any unfinished line last.
    pub(crate) fn finish(mut self) -> Vec<String> {
        for source in [Source::Out, Source::Err] {
            let line = std::mem::take(self.pending(source));
            if !line.is_empty() {
                self.emit(&line);
            }
        }
        self.lines.into()
    }

    fn pending(&mut self, source: Source) -> &mut Vec<u8> {
        match source {
            Source::Out => &mut self.out,
            Source::Err => &mut self.err,
        }
    }

    /// Adds to the unfinished line, dropping what goes beyond [`MAX_LINE_BYTES`].
    fn extend(&mut self, source: Source, bytes: &[u8]) {
        let pending = self.pending(source);
        let room = MAX_LINE_BYTES.saturating_sub(pending.len());
        pending.extend_from_slice(&bytes[..bytes.len().min(room)]);
    }

    fn emit(&mut self, line: &[u8]) {
        if self.keep == 0 {
            return;
        }
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let line = String::from_utf8_lossy(line).into_owned();
        self.bytes = self.bytes.saturating_add(line.len());
        self.lines.push_back(line);
        while self.lines.len() > self.keep || (self.bytes > self.max_bytes && self.lines.len() > 1)
        {
            if let Some(old) = self.lines.pop_front() {
                self.bytes = self.bytes.saturating_sub(old.len());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn out(text: &str) -> LogOutput {
        LogOutput::StdOut {
            message: text.as_bytes().to_vec().into(),
        }
    }

    fn err(text: &str) -> LogOutput {
        LogOutput::StdErr {
            message: text.as_bytes().to_vec().into(),
        }
    }

    fn collect(keep: u32, chunks: &[LogOutput]) -> Vec<String> {
        let mut lines = Lines::new(keep);
        for chunk in chunks {
            lines.push(chunk);
        }
        lines.finish()
    }

    #[test]
    fn chunks_become_lines_in_order() {
        assert_eq!(
            collect(10, &[out("one\ntwo\n"), err("three\r\n"), out("four\n")]),
            ["one", "two", "three", "four"]
        );
    }

    #[test]
    fn partial_lines_are_completed_within_their_stream() {
        assert_eq!(
            collect(10, &[out("hel"), err("oops\n"), out("lo\n"), out("last")]),
            ["oops", "hello", "last"]
        );
    }

    #[test]
    fn only_the_newest_lines_are_kept() {
        assert_eq!(collect(2, &[out("1\n2\n3\n"), out("4\n")]), ["3", "4"]);
        let mut lines = Lines::new(10).within(5);
        lines.push(&out("one\ntwo\nthree\n"));
        assert_eq!(
            lines.finish(),
            ["three"],
            "older lines go past the byte budget"
        );
        assert!(collect(0, &[out("1\n")]).is_empty());
    }

    #[test]
    fn long_lines_are_cut() {
        let long = "x".repeat(MAX_LINE_BYTES * 2);
        let lines = collect(1, &[out(&long), out(&long), out("\n")]);
        assert_eq!(lines[0].len(), MAX_LINE_BYTES);
    }
}
