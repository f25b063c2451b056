use std::path::PathBuf;

/// Errors raised while loading the intelligence sources. Every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum IntelError {
    #[error("cannot open {kind} MMDB {path}: {source}")]
    Mmdb {
        kind: &'static str,
        path: PathBuf,
        #[source]
        source: maxminddb::MaxMindDbError,
    },
    #[error("{kind} MMDB {path} does not look like an {kind} database: {reason}")]
    MmdbLayout {
        kind: &'static str,
        path: PathBuf,
        reason: String,
    },
    #[error("cannot read list file {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}:{line}: {msg}")]
    Parse {
        path: String,
        line: usize,
        msg: String,
    },
    #[error("invalid config: {0}")]
    Config(String),
    /// A stored answer-history snapshot that cannot be read (nothing of it is used).
    #[error("answer-history snapshot: {0}")]
    Snapshot(String),
}
