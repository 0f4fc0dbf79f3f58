//! `calgate.toml` and the `CALGATE_*` environment: the settings of `calgate serve` (and the
//! data location every command uses). Precedence: command-line flags, then the environment,
//! then the file, then the defaults. Every key is documented in the README.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// The file's shape (every key optional).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    data_dir: Option<PathBuf>,
    database: Option<String>,
    #[serde(default)]
    server: ServerFile,
    #[serde(default)]
    sync: SyncFile,
    #[serde(default)]
    log: LogFile,
    #[serde(default)]
    notifications: NotificationsFile,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct NotificationsFile {
    public_url: Option<String>,
    safety_net_minutes: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ServerFile {
    listen: Option<String>,
    public_url: Option<String>,
    history_days: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct SyncFile {
    cadence_seconds: Option<u64>,
    jitter_seconds: Option<u64>,
    concurrency: Option<usize>,
    days_back: Option<u32>,
    days_ahead: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct LogFile {
    format: Option<String>,
    level: Option<String>,
}

/// How log lines look.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum LogFormat {
    Text,
    Json,
}

/// The resolved settings.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    /// The store's location (a data directory or a URL), if the file or environment names one.
    pub location: Option<String>,
    pub listen: SocketAddr,
    /// Where the host application reaches calgate (feed URLs); default `http://LISTEN`.
    pub public_url: Option<String>,
    pub cadence: Duration,
    pub jitter: Duration,
    pub concurrency: usize,
    pub days_back: u32,
    pub days_ahead: u32,
    pub log_format: LogFormat,
    pub log_level: String,
    /// Where Microsoft reaches `calgate serve` for change notifications (`None`: polling only).
    pub notifications_url: Option<String>,
    /// How often a notified mailbox is still polled, as a safety net.
    pub safety_net: Duration,
    /// Days the change log is kept: each event's history (console, `events --explain`) and
    /// what webhooks can still deliver.
    pub history_days: u32,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            location: None,
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            public_url: None,
            cadence: Duration::from_secs(300),
            jitter: Duration::from_secs(30),
            concurrency: calgate_sync::DEFAULT_CONCURRENCY,
            days_back: calgate_sync::DEFAULT_DAYS_BACK,
            days_ahead: calgate_sync::DEFAULT_DAYS_AHEAD,
            log_format: LogFormat::Text,
            log_level: "info".to_owned(),
            notifications_url: None,
            safety_net: Duration::from_secs(3600),
            history_days: 7,
        }
    }
}

fn bad(what: &str, why: impl std::fmt::Display) -> anyhow::Error {
    anyhow::anyhow!("{what}: {why}")
}

impl Config {
    /// The defaults, then `file` (when given; a missing or malformed one is an error), then the
    /// `CALGATE_*` environment.
    pub(crate) fn load(file: Option<&Path>) -> anyhow::Result<Config> {
        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
        Config::load_with(file, &env)
    }

    pub(crate) fn load_with(
        file: Option<&Path>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> anyhow::Result<Config> {
        let mut c = Config::default();
        if let Some(path) = file {
            let text = std::fs::read_to_string(path).map_err(|e| {
                bad(
                    &format!("cannot read the configuration file {}", path.display()),
                    e,
                )
            })?;
            let f: File = toml::from_str(&text).map_err(|e| {
                let first = e.message().lines().next().unwrap_or("").to_owned();
                let at = e
                    .span()
                    .map(|s| {
                        let line = text[..s.start.min(text.len())].lines().count().max(1);
                        format!(" (line {line})")
                    })
                    .unwrap_or_default();
                bad(
                    &format!("the configuration file {} is not valid{at}", path.display()),
                    format!("{first} — see the README's configuration keys"),
                )
            })?;
            c.apply_file(f, path)?;
        }
        c.apply_env(env)?;
        c.check()?;
        Ok(c)
    }

    fn apply_file(&mut self, f: File, path: &Path) -> anyhow::Result<()> {
        let what = |key: &str| format!("{} ({key})", path.display());
        if f.data_dir.is_some() && f.database.is_some() {
            return Err(bad(
                &format!("the configuration file {}", path.display()),
                "give data_dir or database, not both",
            ));
        }
        if let Some(d) = f.data_dir {
            // Relative to the file's directory.
            let d = match path.parent() {
                Some(p) if d.is_relative() && !p.as_os_str().is_empty() => p.join(d),
                _ => d,
            };
            self.location = Some(d.display().to_string());
        }
        if let Some(u) = f.database {
            self.location = Some(u);
        }
        if let Some(l) = f.server.listen {
            self.listen = l.parse().map_err(|e| bad(&what("server.listen"), e))?;
        }
        self.public_url = f.server.public_url.or(self.public_url.take());
        self.history_days = f.server.history_days.unwrap_or(self.history_days);
        if let Some(v) = f.sync.cadence_seconds {
            self.cadence = Duration::from_secs(v);
        }
        if let Some(v) = f.sync.jitter_seconds {
            self.jitter = Duration::from_secs(v);
        }
        self.concurrency = f.sync.concurrency.unwrap_or(self.concurrency);
        self.days_back = f.sync.days_back.unwrap_or(self.days_back);
        self.days_ahead = f.sync.days_ahead.unwrap_or(self.days_ahead);
        if let Some(v) = f.log.format {
            self.log_format = parse_format(&v).map_err(|e| bad(&what("log.format"), e))?;
        }
        self.log_level = f.log.level.unwrap_or(self.log_level.clone());
        self.notifications_url = f.notifications.public_url.or(self.notifications_url.take());
        if let Some(v) = f.notifications.safety_net_minutes {
            self.safety_net = Duration::from_secs(v.saturating_mul(60));
        }
        Ok(())
    }

    fn apply_env(&mut self, env: &dyn Fn(&str) -> Option<String>) -> anyhow::Result<()> {
        let num = |k: &str| -> anyhow::Result<Option<u64>> {
            env(k)
                .map(|v| v.trim().parse::<u64>().map_err(|e| bad(k, e)))
                .transpose()
        };
        if let Some(d) = env("CALGATE_DATABASE") {
            self.location = Some(d);
        } else if let Some(d) = env("CALGATE_DATA_DIR") {
            self.location = Some(d);
        }
        if let Some(l) = env("CALGATE_LISTEN") {
            self.listen = l.trim().parse().map_err(|e| bad("CALGATE_LISTEN", e))?;
        }
        if let Some(u) = env("CALGATE_PUBLIC_URL") {
            self.public_url = Some(u);
        }
        if let Some(v) = num("CALGATE_HISTORY_DAYS")? {
            self.history_days = u32::try_from(v).unwrap_or(u32::MAX);
        }
        if let Some(v) = num("CALGATE_SYNC_CADENCE_SECONDS")? {
            self.cadence = Duration::from_secs(v);
        }
        if let Some(v) = num("CALGATE_SYNC_JITTER_SECONDS")? {
            self.jitter = Duration::from_secs(v);
        }
        if let Some(v) = num("CALGATE_SYNC_CONCURRENCY")? {
            self.concurrency = usize::try_from(v).unwrap_or(usize::MAX);
        }
        if let Some(v) = num("CALGATE_SYNC_DAYS_BACK")? {
            self.days_back = u32::try_from(v).unwrap_or(u32::MAX);
        }
        if let Some(v) = num("CALGATE_SYNC_DAYS_AHEAD")? {
            self.days_ahead = u32::try_from(v).unwrap_or(u32::MAX);
        }
        if let Some(v) = env("CALGATE_LOG_FORMAT") {
            self.log_format = parse_format(&v).map_err(|e| bad("CALGATE_LOG_FORMAT", e))?;
        }
        if let Some(v) = env("CALGATE_LOG_LEVEL") {
            self.log_level = v;
        }
        if let Some(u) = env("CALGATE_NOTIFICATIONS_PUBLIC_URL") {
            self.notifications_url = Some(u);
        }
        if let Some(v) = num("CALGATE_NOTIFICATIONS_SAFETY_NET_MINUTES")? {
            self.safety_net = Duration::from_secs(v.saturating_mul(60));
        }
        Ok(())
    }

    fn check(&self) -> anyhow::Result<()> {
        if self.cadence < Duration::from_secs(10) || self.cadence > Duration::from_secs(86_400) {
            return Err(anyhow::anyhow!(
                "the sync cadence must be between 10 seconds and 1 day (sync.cadence_seconds / CALGATE_SYNC_CADENCE_SECONDS), not {} s",
                self.cadence.as_secs()
            ));
        }
        if self.jitter > self.cadence / 2 {
            return Err(anyhow::anyhow!(
                "the sync jitter ({} s) must be at most half the cadence ({} s)",
                self.jitter.as_secs(),
                self.cadence.as_secs()
            ));
        }
        if !(1..=3650).contains(&self.history_days) {
            return Err(anyhow::anyhow!(
                "server.history_days (CALGATE_HISTORY_DAYS) must be between 1 and 3650, not {}",
                self.history_days
            ));
        }
        if self.concurrency == 0 || self.concurrency > 1024 {
            return Err(anyhow::anyhow!(
                "sync.concurrency must be between 1 and 1024, not {}",
                self.concurrency
            ));
        }
        calgate_sync::WindowConfig::new(self.days_back, self.days_ahead)
            .map_err(|e| anyhow::anyhow!("{e} (sync.days_back, sync.days_ahead)"))?;
        if let Some(u) = &self.public_url {
            calgate_graph::validate_endpoint("public_url", u).map_err(|_| {
                anyhow::anyhow!(
                    "server.public_url '{u}' is not an http(s) URL (https, or http to this machine)"
                )
            })?;
        }
        if let Some(u) = &self.notifications_url {
            calgate_graph::validate_endpoint("notifications.public_url", u).map_err(|_| {
                anyhow::anyhow!(
                    "notifications.public_url '{u}' is not a URL Microsoft can call: give the https URL at which Graph reaches calgate serve (http only to this machine, for the simulator)"
                )
            })?;
        }
        if self.safety_net < Duration::from_secs(60)
            || self.safety_net > Duration::from_secs(86_400)
        {
            return Err(anyhow::anyhow!(
                "notifications.safety_net_minutes must be between 1 and 1440, not {}",
                self.safety_net.as_secs() / 60
            ));
        }
        Ok(())
    }

    /// The URL feeds are served at: `public_url`, else `http://LISTEN`.
    pub(crate) fn public_url(&self) -> String {
        self.public_url
            .clone()
            .unwrap_or_else(|| format!("http://{}", self.listen))
            .trim_end_matches('/')
            .to_owned()
    }
}

fn parse_format(v: &str) -> Result<LogFormat, String> {
    match v.trim().to_ascii_lowercase().as_str() {
        "text" => Ok(LogFormat::Text),
        "json" => Ok(LogFormat::Json),
        other => Err(format!("unknown log format '{other}' (text or json)")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(text: &str) -> tempfile::NamedTempFile {
        let f = tempfile::NamedTempFile::new().unwrap_or_else(|_| std::process::abort());
        let _ = std::fs::write(f.path(), text);
        f
    }

    #[test]
    fn file_then_environment_then_checks() {
        let f = write(
            "data_dir = \"data\"\n[server]\nlisten = \"127.0.0.1:9090\"\n[sync]\ncadence_seconds = 120\njitter_seconds = 10\n[log]\nformat = \"json\"\n",
        );
        let none = |_: &str| None;
        let c = Config::load_with(Some(f.path()), &none).unwrap_or_default();
        assert_eq!(c.listen.port(), 9090);
        assert_eq!(c.cadence, Duration::from_secs(120));
        assert_eq!(c.log_format, LogFormat::Json);
        assert!(c.location.as_deref().is_some_and(|l| l.ends_with("data")));
        let env = |k: &str| (k == "CALGATE_SYNC_CADENCE_SECONDS").then(|| "60".to_owned());
        let c = Config::load_with(Some(f.path()), &env).unwrap_or_default();
        assert_eq!(c.cadence, Duration::from_secs(60), "the environment wins");

        for (text, needle) in [
            ("[server]\nlisten = 5\n", "not valid (line 2)"),
            ("[sync]\ncadence = 5\n", "unknown field"),
            ("[sync]\ncadence_seconds = 1\n", "between 10 seconds"),
            ("[log]\nformat = \"xml\"\n", "unknown log format"),
            ("[server]\nlisten = \"nowhere\"\n", "server.listen"),
            ("data_dir = \"a\"\ndatabase = \"sqlite://b\"\n", "not both"),
        ] {
            let f = write(text);
            let e = Config::load_with(Some(f.path()), &none)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(e.contains(needle), "{text:?}: {e}");
            assert!(!e.contains('\n'), "one line: {e}");
        }
        let e = Config::load_with(Some(Path::new("/nonexistent/calgate.toml")), &none)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("cannot read the configuration file"), "{e}");
    }
}
