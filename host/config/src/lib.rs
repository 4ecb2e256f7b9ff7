//! go2rtc-compatible configuration handling for camrouter.
//!
//! * [`load`]: collects the `-c/--config` sources (inline JSON/YAML, dotted
//!   overrides `a.b=c`, files) or searches `camrouter.yaml` / `go2rtc.yaml`,
//!   substitutes `${VAR}` / `${VAR:default}` variables (with systemd
//!   credentials support) and deep-merges everything into one JSON object.
//! * [`unknown_keys`]: finds misspelled / unknown config keys for warnings.
//! * [`set_stream`], [`remove_stream`], [`set_preload`], [`remove_preload`],
//!   [`set_entry`], [`remove_entry`]: comment-preserving edits of the config
//!   file text (used by the HTTP API). Every edit is verified by re-parsing.
//! * [`patch`]: go2rtc's `PATCH /api/config` (deep merge of a partial config).
//! * [`validate`]: checks a whole config posted to the API.
//! * [`write_atomic`]: tmp file + fsync + `.bak` backup + rename.

mod edit;
mod known;
mod load;
mod value;
mod vars;
mod write;
mod yaml;

pub use edit::{
    patch, remove_entry, remove_preload, remove_stream, set_entry, set_preload, set_stream,
    yaml_scalar,
};
pub use known::{unknown_keys, Known};
pub use load::{classify_arg, load, load_with, ConfigSource, Loaded, SourceKind, DEFAULT_FILES};
pub use value::{deep_merge, parse_yaml, validate};
pub use vars::substitute_vars;
pub use write::{write_atomic, BACKUPS};

/// Errors of this crate.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// Syntax error in a YAML (or JSON) source. `line`/`column` are 1-based;
    /// 0 means "unknown" and is omitted from the message.
    #[error("config: {file}{}: {message}", fmt_location(*line, *column))]
    Yaml {
        /// File path, or `-c #N` for inline sources, or `<text>` for API text.
        file: String,
        line: usize,
        column: usize,
        message: String,
    },
    /// A config file could not be read (e.g. a `-c` file that does not exist).
    #[error("config: {file}: {source}")]
    Read {
        file: String,
        #[source]
        source: std::io::Error,
    },
    /// The document parsed but its top level is not a mapping.
    #[error("config: {file}: top-level value must be a mapping")]
    NotMapping { file: String },
    /// A whole config given to the API is empty (no document, or only
    /// comments); it is refused so that a lost body cannot wipe the file.
    #[error("config: empty document (send the whole config; an empty mapping is `{{}}`)")]
    Empty,
    /// An edit could not be applied safely (the input is left untouched).
    #[error("config: {0}")]
    Edit(String),
}

fn fmt_location(line: usize, column: usize) -> String {
    if line == 0 {
        String::new()
    } else {
        format!(":{line}:{column}")
    }
}

/// Result alias of this crate.
pub type Result<T, E = ConfigError> = std::result::Result<T, E>;
