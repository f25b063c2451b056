use thiserror::Error;

/// Errors from opening the store or starting the admin server.
#[derive(Debug, Error)]
pub enum AdminError {
    #[error("{0}")]
    Config(String),
    #[error("admin.db_path: {path}: {source}")]
    Db {
        path: String,
        #[source]
        source: rusqlite::Error,
    },
    #[error("admin.db_path: {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("admin.listen: cannot bind {addr}: {source}")]
    Bind {
        addr: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("{what}: {source}")]
    Output {
        what: String,
        #[source]
        source: std::io::Error,
    },
}
