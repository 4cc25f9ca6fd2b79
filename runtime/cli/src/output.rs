//! Standard output that survives its reader going away.
//!
//! `std::println!` panics when stdout is a closed pipe (`grace playbook list | head -1`), and a
//! panic is an ugly message and exit code 101 for what is a normal end. Every command prints
//! through the `print!`/`println!` macros of `main.rs`, which call [`write`]: a broken pipe ends
//! the process at once with success (the reader has what it wanted), any other output error ends
//! it with exit code 3 and a message on stderr.

use std::io::Write as _;

/// Writes `args` to stdout, then a newline if `newline`; see the module comment for errors.
pub fn write(args: std::fmt::Arguments<'_>, newline: bool) {
    let mut out = std::io::stdout().lock();
    let written = out.write_fmt(args).and_then(|()| {
        if newline {
            out.write_all(b"\n")
        } else {
            Ok(())
        }
    });
    if let Err(e) = written {
        ended(&e);
    }
}

/// Flushes stdout before the process exits normally, with the same handling of errors.
pub fn flush() {
    if let Err(e) = std::io::stdout().lock().flush() {
        ended(&e);
    }
}

fn ended(e: &std::io::Error) -> ! {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        std::process::exit(0);
    }
    // Nothing more can be said on stdout; stderr may still be there.
    let _ = writeln!(
        std::io::stderr(),
        "error: cannot write to standard output: {e}"
    );
    std::process::exit(3);
}
