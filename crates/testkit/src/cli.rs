//! A runner for the `calgate` binary. Only the calgate crate's tests know its path
//! (`env!("CARGO_BIN_EXE_calgate")`), so the caller passes it in.

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};

/// Variables of the caller's environment a run must not see.
const CLEAN_ENV: [&str; 3] = ["CALGATE_MASTER_KEY", "CALGATE_DATA_DIR", "RUST_LOG"];

/// The `calgate` binary at a path.
#[derive(Debug, Clone, Copy)]
pub struct Cli {
    bin: &'static str,
}

impl Cli {
    /// `bin`: e.g. `env!("CARGO_BIN_EXE_calgate")`.
    pub const fn new(bin: &'static str) -> Cli {
        Cli { bin }
    }

    /// The binary's path.
    pub fn bin(&self) -> &'static str {
        self.bin
    }

    /// `calgate --data-dir DIR ARGS` with a clean environment (no `CALGATE_MASTER_KEY`,
    /// `CALGATE_DATA_DIR`, `RUST_LOG`) and stdin null.
    pub fn command(&self, dir: &Path, args: &[&str]) -> Command {
        let mut cmd = Command::new(self.bin);
        cmd.arg("--data-dir").arg(dir).args(args);
        for k in CLEAN_ENV {
            cmd.env_remove(k);
        }
        cmd.stdin(Stdio::null());
        cmd
    }

    /// Runs [`Cli::command`] plus `envs` to the end.
    pub fn run(&self, dir: &Path, args: &[&str], envs: &[(&str, &str)]) -> Output {
        let mut cmd = self.command(dir, args);
        for (k, v) in envs {
            cmd.env(k, v);
        }
        cmd.output().expect("calgate runs")
    }

    /// [`Cli::run`] off the async runtime (an in-process simulator keeps serving meanwhile).
    pub async fn run_async(&self, dir: &Path, args: &[&str], envs: &[(&str, &str)]) -> Output {
        let cli = *self;
        let dir = dir.to_path_buf();
        let args: Vec<String> = args.iter().map(|s| (*s).to_owned()).collect();
        let envs: Vec<(String, String)> = envs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        tokio::task::spawn_blocking(move || {
            let a: Vec<&str> = args.iter().map(String::as_str).collect();
            let e: Vec<(&str, &str)> = envs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            cli.run(&dir, &a, &e)
        })
        .await
        .expect("calgate run task")
    }

    /// `calgate connection add NAME` to the simulator's tenant `tenant` as `client_id` with
    /// `secret` (passed through the environment); asserts success and that no output shows
    /// the secret.
    pub async fn add_sim_connection(
        &self,
        dir: &Path,
        sim: &calgate_sim::SimHandle,
        name: &str,
        tenant: &str,
        client_id: &str,
        secret: &str,
    ) {
        let graph = format!("{}/v1.0", sim.base_url);
        let o = self
            .run_async(
                dir,
                &[
                    "connection",
                    "add",
                    name,
                    "--tenant",
                    tenant,
                    "--client-id",
                    client_id,
                    "--client-secret-env",
                    "CG_TEST_SECRET",
                    "--authority",
                    &sim.base_url,
                    "--graph-url",
                    &graph,
                ],
                &[("CG_TEST_SECRET", secret)],
            )
            .await;
        assert_exit(&o, 0);
        assert!(!stdout(&o).contains(secret) && !stderr(&o).contains(secret));
    }

    /// Starts [`Cli::command`] with stdout and stderr piped, not waiting for it.
    pub fn spawn(&self, dir: &Path, args: &[&str]) -> Child {
        self.command(dir, args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("calgate starts")
    }
}

/// A fresh temp data dir (`calgate-cli-…`, removed when dropped).
pub fn data_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("calgate-cli-")
        .tempdir()
        .expect("temp data dir")
}

/// A run's stdout, lossily decoded.
pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// A run's stderr, lossily decoded.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Asserts a run's exit code, showing its stdout and stderr otherwise.
#[track_caller]
pub fn assert_exit(o: &Output, code: i32) {
    assert_eq!(
        o.status.code(),
        Some(code),
        "stdout:\n{}\nstderr:\n{}",
        stdout(o),
        stderr(o)
    );
}
