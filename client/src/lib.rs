//! tapflow client library: the `tapflow` command's subcommands, filters and output formats.

pub mod agg;
pub mod anon;
pub mod bins;
pub mod cli;
pub mod commands;
pub mod convert;
pub mod fields;
pub mod filter;
mod foreign;
pub mod format;
pub mod hist;
pub mod plot;
pub mod read;
pub mod report;
pub mod services;
pub mod sort;
pub mod source;
pub mod timerange;
pub mod top;

use std::ffi::OsString;
use std::fmt;
use std::io::{self, Write};

use clap::Parser;

/// A failure to report as `tapflow: MSG` with exit status `code`.
#[derive(Debug, PartialEq, Eq)]
pub struct Failure {
    pub code: i32,
    pub msg: String,
}

impl Failure {
    /// Bad input: usage, filter, file, record format (exit 2).
    pub fn bad(msg: impl Into<String>) -> Failure {
        Failure {
            code: 2,
            msg: msg.into(),
        }
    }

    /// A runtime I/O error (exit 1).
    pub fn io(msg: impl Into<String>) -> Failure {
        Failure {
            code: 1,
            msg: msg.into(),
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.msg)
    }
}

/// Prints `tapflow: MSG` on stderr, ignoring a closed stderr.
pub fn report(msg: impl fmt::Display) {
    let _ = writeln!(io::stderr().lock(), "tapflow: {msg}");
}

/// Runs the command line `args` (program name first) and returns the exit status.
pub fn run<I, T>(args: I) -> i32
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let args: Vec<OsString> = args.into_iter().map(Into::into).collect();
    let cli = match cli::Cli::try_parse_from(&args) {
        Ok(c) => c,
        Err(e) => {
            // Help and version go to stdout with status 0; usage errors to stderr with 2.
            let _ = e.print();
            return e.exit_code();
        }
    };
    // clap does not say whether trailing words came after `--`; `read` needs to know.
    let dashdash = args.iter().any(|a| a == "--");
    let result = match cli.command {
        cli::Command::Read(a) => read::run(&a, dashdash),
        cli::Command::Agg(a) => agg::run(&a, dashdash),
        cli::Command::Sort(a) => sort::run(&a, dashdash),
        cli::Command::Bins(a) => commands::run_bins(&a, dashdash),
        cli::Command::Hist(a) => commands::run_hist(&a, dashdash),
        cli::Command::Report(a) => commands::run_report(&a, dashdash),
        cli::Command::Anon(a) => commands::run_anon(&a, dashdash),
        cli::Command::Top(a) => top::run(&a, dashdash),
        cli::Command::Plot(a) => plot::run(&a, dashdash),
        cli::Command::Convert(a) => convert::run(&a, dashdash),
    };
    match result {
        Ok(()) => 0,
        Err(f) => {
            // An empty message: the errors were reported as they happened.
            if !f.msg.is_empty() {
                report(&f);
            }
            f.code
        }
    }
}
