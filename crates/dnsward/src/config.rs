//! The configuration: one serde tree, `deny_unknown_fields` everywhere, validated at load.
//! Every key is documented in `dnsward.example.toml` (a test keeps the two in step).

use crate::stages::DgaConfig;
use dnsward_intel::IntelConfig;
use dnsward_policy::{ActionConfig, SinkholeConfig};
use dnsward_server::cache::CacheConfig;
use dnsward_server::upstream::UpstreamConfig;
use dnsward_server::ServerConfig;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub server: ServerConfig,
    pub upstream: UpstreamConfig,
    pub cache: CacheConfig,
    pub lists: ListsConfig,
    pub dga: DgaConfig,
    pub intel: IntelConfig,
    pub actions: ActionConfig,
    pub sinkhole: SinkholeConfig,
    pub admin: dnsward_admin::AdminConfig,
    pub sinkhole_server: dnsward_sinkhole::SinkholeConfig,
}

/// `[lists]`: allow- and denylist files (relative paths are relative to the config file).
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ListsConfig {
    /// Allowlists: a match here always wins over every other stage.
    pub allow: Vec<PathBuf>,
    /// Denylists: a match blocks with the `list` action.
    pub deny: Vec<PathBuf>,
    /// Denylists on trial (a new feed before it is trusted): a match is recorded as a `list`
    /// block with action `log` and the name is answered, unless another stage blocks it.
    pub trial: Vec<PathBuf>,
    /// Every this many seconds, the config file and every file it names that a reload reads
    /// (lists, IOC files, MMDBs, model, token file) are checked; a change is reloaded once it
    /// has stayed unchanged for one more interval. 0 = off (reload with SIGHUP or the API).
    pub auto_reload_secs: u64,
}

impl Default for ListsConfig {
    fn default() -> Self {
        ListsConfig {
            allow: Vec::new(),
            deny: Vec::new(),
            trial: Vec::new(),
            auto_reload_secs: 60,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("config file {path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

impl Config {
    /// Reads, parses and validates a config file; relative paths in it (lists, model, CA file,
    /// MMDBs, IOC files, event database, sinkhole certificate) are resolved against its folder.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let mut cfg = Config::parse(&text).map_err(|message| ConfigError::Parse {
            path: path.to_path_buf(),
            message,
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        for p in cfg
            .lists
            .allow
            .iter_mut()
            .chain(cfg.lists.deny.iter_mut())
            .chain(cfg.lists.trial.iter_mut())
            .chain(cfg.dga.model.iter_mut())
            .chain(cfg.upstream.ca_file.iter_mut())
            .chain(cfg.intel.asn_mmdb.iter_mut())
            .chain(cfg.intel.country_mmdb.iter_mut())
            .chain(cfg.intel.ioc_files.iter_mut())
            .chain(cfg.intel.ioc_trial_files.iter_mut())
            .chain(std::iter::once(&mut cfg.admin.db_path))
            .chain(cfg.admin.token_file.iter_mut())
            .chain(cfg.sinkhole_server.cert_file.iter_mut())
            .chain(cfg.sinkhole_server.key_file.iter_mut())
        {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        }
        let invalid = |message| ConfigError::Invalid {
            path: path.to_path_buf(),
            message,
        };
        cfg.admin.load_token_file().map_err(invalid)?;
        cfg.validate().map_err(invalid)?;
        Ok(cfg)
    }

    /// Parses TOML text. Errors carry the line, column and key.
    pub fn parse(text: &str) -> Result<Config, String> {
        toml::from_str(text).map_err(|e| e.to_string())
    }

    /// Checks values serde cannot; messages start with the key.
    pub fn validate(&self) -> Result<(), String> {
        self.server.validate()?;
        self.upstream.validate()?;
        self.cache.validate()?;
        self.dga.validate()?;
        self.admin.validate()?;
        self.sinkhole_server.validate()?;
        self.sinkhole.validate()?;
        self.actions.validate()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn example_config_documents_the_defaults() {
        let text = include_str!("../../../dnsward.example.toml");
        let cfg = Config::parse(text).expect("dnsward.example.toml parses");
        // IntelConfig has no PartialEq: compare the serialised trees.
        let as_toml = |c: &Config| toml::to_string(c).unwrap();
        assert_eq!(
            as_toml(&cfg),
            as_toml(&Config::default()),
            "dnsward.example.toml must show the built-in defaults"
        );
    }

    #[test]
    fn unknown_keys_are_rejected_with_their_name() {
        let err = Config::parse("[server]\nlisten = [\"127.0.0.1:53\"]\nlisen = 1\n").unwrap_err();
        assert!(err.contains("lisen"), "{err}");
        let err = Config::parse("[cache]\nmax_mib = \"lots\"\n").unwrap_err();
        assert!(err.contains("max_mib"), "{err}");
    }

    #[test]
    fn validation_names_the_key() {
        let mut cfg = Config::default();
        cfg.cache.min_ttl = 100;
        cfg.cache.max_ttl = 10;
        assert!(cfg.validate().unwrap_err().starts_with("cache.min_ttl"));
        let cfg = Config::parse("[upstream]\nservers = [\"dns.example\"]\n").unwrap();
        assert!(cfg
            .validate()
            .unwrap_err()
            .starts_with("upstream.servers[0]"));
    }

    #[test]
    fn escalation_settings_are_validated_by_key() {
        let err = |text: &str| Config::parse(text).unwrap().validate().unwrap_err();
        assert!(err("[dga.escalation]\nafter = 0\n").starts_with("dga.escalation.after"));
        assert!(err("[dga.escalation]\nthreshold = 1.5\n").starts_with("dga.escalation.threshold"));
        let e = err("[dga]\nthreshold = 0.9\n[dga.escalation]\nthreshold = 0.95\n");
        assert!(e.contains("above dga.threshold"), "{e}");
        assert!(err("[dga.escalation]\nhold_secs = 0\n").contains("hold_secs"));
        // Off: its other settings are not checked.
        Config::parse("[dga.escalation]\nenabled = false\nafter = 0\n")
            .unwrap()
            .validate()
            .unwrap();
        let cfg = Config::parse("[dga.escalation]\nexempt = [\"10.0.0.0/8\", \"192.0.2.1/32\"]\n")
            .unwrap();
        assert_eq!(cfg.dga.escalation.exempt.len(), 2);
    }

    #[test]
    fn relative_list_paths_follow_the_config_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dnsward.toml");
        std::fs::write(&path, "[lists]\ndeny = [\"deny.txt\"]\n").unwrap();
        let cfg = Config::load(&path).unwrap();
        assert_eq!(cfg.lists.deny, vec![dir.path().join("deny.txt")]);
        assert_eq!(
            cfg.admin.db_path,
            dir.path().join("dnsward-data/events.sqlite3"),
            "the event database follows the config file too"
        );
        let err = Config::load(&dir.path().join("missing.toml")).unwrap_err();
        assert!(err.to_string().contains("missing.toml"));
    }

    #[test]
    fn admin_token_file_is_read_relative_to_the_config() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("admin.token"), "0123456789abcdef0123\n").unwrap();
        let path = dir.path().join("dnsward.toml");
        std::fs::write(&path, "[admin]\ntoken_file = \"admin.token\"\n").unwrap();
        let cfg = Config::load(&path).unwrap();
        assert_eq!(cfg.admin.token.as_deref(), Some("0123456789abcdef0123"));
        std::fs::write(&path, "[admin]\ntoken_file = \"nope.token\"\n").unwrap();
        let err = Config::load(&path).unwrap_err().to_string();
        assert!(
            err.contains("admin.token_file") && err.contains("nope.token"),
            "{err}"
        );
    }
}
