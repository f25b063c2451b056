//! Reload on change (`[lists] auto_reload_secs`): feeds are usually refreshed by a cron job
//! that rewrites a list file, and a resolver that keeps serving yesterday's list until someone
//! sends SIGHUP is what the stale-list warnings exist for. The config file and every file it
//! names that a reload re-reads are checked (modification time and size) on an interval.
//!
//! A changed file is reloaded only once it has stayed unchanged for a whole interval, so a feed
//! that is still being written is not read half-way. A change that fails to load (a broken
//! list, a config error) keeps the running policy, as a SIGHUP would, and is not retried until
//! the files change again.

use crate::Config;
use std::path::PathBuf;
use std::time::SystemTime;

/// Every file named in `cfg` that a reload re-reads: lists, trial lists, IOC files, MMDBs, the
/// model file and the admin token file. (The config file itself is stamped apart, before it is
/// read.)
pub fn watched_files(cfg: &Config) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = cfg
        .lists
        .allow
        .iter()
        .chain(&cfg.lists.deny)
        .chain(&cfg.lists.trial)
        .chain(&cfg.intel.ioc_files)
        .chain(&cfg.intel.ioc_trial_files)
        .chain(&cfg.intel.asn_mmdb)
        .chain(&cfg.intel.country_mmdb)
        .chain(&cfg.dga.model)
        .chain(&cfg.admin.token_file)
        .cloned()
        .collect();
    files.dedup();
    files
}

/// Modification time and size of each file (`None`: missing or unreadable metadata).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FileStamps(Vec<(PathBuf, Option<(SystemTime, u64)>)>);

impl FileStamps {
    pub fn take(files: &[PathBuf]) -> Self {
        FileStamps(
            files
                .iter()
                .map(|p| {
                    let stamp = std::fs::metadata(p)
                        .ok()
                        .and_then(|m| Some((m.modified().ok()?, m.len())));
                    (p.clone(), stamp)
                })
                .collect(),
        )
    }

    /// Joins stamps taken at different moments (the config file's before it is read).
    pub fn join(mut self, other: FileStamps) -> Self {
        self.0.extend(other.0);
        self
    }

    pub fn files(&self) -> Vec<PathBuf> {
        self.0.iter().map(|(p, _)| p.clone()).collect()
    }

    /// The files whose stamp differs from `before` (or that only one of the two has).
    pub fn changed_since(&self, before: &FileStamps) -> Vec<PathBuf> {
        let mut out: Vec<PathBuf> = self
            .0
            .iter()
            .filter(|entry| !before.0.contains(entry))
            .map(|(p, _)| p.clone())
            .collect();
        out.extend(
            before
                .0
                .iter()
                .filter(|(p, _)| !self.0.iter().any(|(q, _)| q == p))
                .map(|(p, _)| p.clone()),
        );
        out
    }
}

/// What one check of the files decided.
#[derive(Debug, PartialEq, Eq)]
pub enum Tick {
    /// Nothing changed since the running policy was loaded (or the change already failed).
    Unchanged,
    /// Something changed; wait one more interval in case it is still being written.
    Settling,
    /// Changed, and unchanged for a whole interval since: reload.
    Reload,
}

/// The decision of the watcher, apart from the clock and the file system (unit-tested).
#[derive(Debug, Default)]
pub struct Debounce {
    /// Stamps seen at the previous check, when they differed from the loaded ones.
    pending: Option<FileStamps>,
    /// Stamps of a state that failed to load: not retried until the files change again.
    failed: Option<FileStamps>,
}

impl Debounce {
    /// `loaded`: the stamps the running policy was loaded from; `now`: this check's.
    pub fn tick(&mut self, loaded: &FileStamps, now: FileStamps) -> Tick {
        if *loaded == now || self.failed.as_ref() == Some(&now) {
            self.pending = None;
            return Tick::Unchanged;
        }
        if self.pending.as_ref() == Some(&now) {
            self.pending = None;
            return Tick::Reload;
        }
        self.pending = Some(now);
        Tick::Settling
    }

    /// The reload of `now` failed: keep the running policy and wait for the next change.
    pub fn failed(&mut self, now: FileStamps) {
        self.failed = Some(now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn stamps(entries: &[(&str, u64, u64)]) -> FileStamps {
        FileStamps(
            entries
                .iter()
                .map(|(p, t, len)| {
                    let t = SystemTime::UNIX_EPOCH + Duration::from_secs(*t);
                    (PathBuf::from(p), Some((t, *len)))
                })
                .collect(),
        )
    }

    #[test]
    fn a_change_reloads_once_it_has_stayed_unchanged_for_an_interval() {
        let loaded = stamps(&[("deny.txt", 100, 10)]);
        let mut d = Debounce::default();
        assert_eq!(d.tick(&loaded, loaded.clone()), Tick::Unchanged);
        // A feed being written: it grows between two checks, so nothing is read yet.
        assert_eq!(
            d.tick(&loaded, stamps(&[("deny.txt", 160, 4)])),
            Tick::Settling
        );
        assert_eq!(
            d.tick(&loaded, stamps(&[("deny.txt", 161, 9)])),
            Tick::Settling
        );
        assert_eq!(
            d.tick(&loaded, stamps(&[("deny.txt", 161, 9)])),
            Tick::Reload
        );
        // Put back as it was before anything was read: nothing to do.
        let mut d = Debounce::default();
        assert_eq!(
            d.tick(&loaded, stamps(&[("deny.txt", 160, 4)])),
            Tick::Settling
        );
        assert_eq!(d.tick(&loaded, loaded.clone()), Tick::Unchanged);
        assert_eq!(d.tick(&loaded, loaded.clone()), Tick::Unchanged);
    }

    #[test]
    fn a_change_that_failed_to_load_waits_for_the_next_change() {
        let loaded = stamps(&[("dnsward.toml", 1, 5), ("deny.txt", 1, 10)]);
        let broken = stamps(&[("dnsward.toml", 1, 5), ("deny.txt", 50, 0)]);
        let mut d = Debounce::default();
        assert_eq!(d.tick(&loaded, broken.clone()), Tick::Settling);
        assert_eq!(d.tick(&loaded, broken.clone()), Tick::Reload);
        d.failed(broken.clone());
        for _ in 0..3 {
            assert_eq!(d.tick(&loaded, broken.clone()), Tick::Unchanged);
        }
        let fixed = stamps(&[("dnsward.toml", 1, 5), ("deny.txt", 60, 12)]);
        assert_eq!(d.tick(&loaded, fixed.clone()), Tick::Settling);
        assert_eq!(d.tick(&loaded, fixed), Tick::Reload);
    }

    #[test]
    fn changed_files_are_named() {
        let before = stamps(&[("a", 1, 1), ("b", 1, 1)]);
        let after = stamps(&[("a", 1, 1), ("b", 2, 1), ("c", 1, 1)]);
        assert_eq!(
            after.changed_since(&before),
            vec![PathBuf::from("b"), PathBuf::from("c")]
        );
        assert_eq!(
            before.changed_since(&after),
            vec![PathBuf::from("b"), PathBuf::from("c")]
        );
    }

    #[test]
    fn a_missing_file_has_no_stamp_and_its_return_is_a_change() {
        let dir = tempfile::tempdir().unwrap();
        let list = dir.path().join("deny.txt");
        let gone = FileStamps::take(std::slice::from_ref(&list));
        std::fs::write(&list, "bad.test\n").unwrap();
        let back = FileStamps::take(std::slice::from_ref(&list));
        assert_ne!(gone, back);
        assert_eq!(back.changed_since(&gone), vec![list]);
    }

    #[test]
    fn every_file_a_reload_reads_is_watched() {
        let cfg = Config::parse(
            "[lists]\nallow = [\"a\"]\ndeny = [\"d\"]\ntrial = [\"t\"]\n\
             [intel]\nioc_files = [\"i\"]\nioc_trial_files = [\"it\"]\nasn_mmdb = \"asn\"\n\
             country_mmdb = \"cc\"\n[dga]\nmodel = \"m.onnx\"\n",
        )
        .unwrap();
        let files = watched_files(&cfg);
        let names: Vec<&str> = files.iter().map(|p| p.to_str().unwrap()).collect();
        assert_eq!(names, ["a", "d", "t", "i", "it", "asn", "cc", "m.onnx"]);
    }
}
