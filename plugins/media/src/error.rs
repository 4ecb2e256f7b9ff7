//! Crate-wide error type. Every parser returns these instead of panicking,
//! because all input comes from an untrusted child process.

/// Errors produced by the parsers and demuxers in this crate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The input ended before a structure was complete.
    #[error("unexpected end of data while reading {0}")]
    Truncated(&'static str),
    /// A field holds a value the specification forbids.
    #[error("invalid {what}: {reason}")]
    Invalid {
        /// Which structure was being parsed.
        what: &'static str,
        /// Why it was rejected.
        reason: String,
    },
    /// The input is well-formed but uses a feature this crate does not handle.
    #[error("unsupported {what}: {detail}")]
    Unsupported {
        /// Which structure was being parsed.
        what: &'static str,
        /// What exactly is unsupported.
        detail: String,
    },
    /// Format autodetection gave up.
    #[error("unknown stream format (first bytes: {first_bytes_hex})")]
    UnknownFormat {
        /// Hex dump of the first bytes, to put into logs.
        first_bytes_hex: String,
    },
}

impl Error {
    pub(crate) fn invalid(what: &'static str, reason: impl Into<String>) -> Self {
        Error::Invalid {
            what,
            reason: reason.into(),
        }
    }

    pub(crate) fn unsupported(what: &'static str, detail: impl Into<String>) -> Self {
        Error::Unsupported {
            what,
            detail: detail.into(),
        }
    }
}

/// Shorthand used throughout the crate.
pub type Result<T> = std::result::Result<T, Error>;

/// Lowercase hex of up to `max` bytes, for error messages.
pub(crate) fn hex_prefix(data: &[u8], max: usize) -> String {
    let mut s = String::new();
    for b in data.iter().take(max) {
        s.push_str(&format!("{b:02x}"));
    }
    s
}
