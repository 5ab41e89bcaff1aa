//! The operator as a process (`artifortress-operator run …`), with its logs kept.

use std::sync::{Arc, Mutex};
use std::time::Duration;

pub struct Operator {
    child: tokio::process::Child,
    logs: Arc<Mutex<String>>,
}

impl Operator {
    /// Starts `artifortress-operator run` with these arguments (JSON logs).
    pub fn run(args: &[&str]) -> Operator {
        Operator::run_with_env(args, &[])
    }

    pub fn run_with_env(args: &[&str], env: &[(&str, &str)]) -> Operator {
        let mut command = tokio::process::Command::new(super::operator_bin());
        command.arg("run").args(args).envs(env.iter().copied());
        let (child, logs) = super::spawn_with_logs(&mut command);
        Operator { child, logs }
    }

    pub fn logs(&self) -> String {
        self.logs.lock().unwrap().clone()
    }

    pub fn leads(&self) -> bool {
        self.logs().contains("leading: controllers start")
    }

    /// The HTTP server's address, from the startup log line.
    pub fn addr(&self) -> String {
        let logs = self.logs();
        let line = logs.lines().find(|l| l.contains("HTTP server listening")).expect("the server started");
        let entry: serde_json::Value = serde_json::from_str(line).unwrap();
        entry["addr"].as_str().unwrap().to_string()
    }

    /// Waits for the process to exit on its own.
    pub async fn wait(&mut self) -> std::io::Result<std::process::ExitStatus> {
        self.child.wait().await
    }

    pub async fn kill(&mut self) {
        self.child.kill().await.unwrap();
    }

    /// SIGTERM, as the kubelet stops a pod; returns the exit status.
    pub async fn terminate(&mut self) -> std::process::ExitStatus {
        let pid = self.child.id().unwrap().to_string();
        std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        tokio::time::timeout(Duration::from_secs(20), self.child.wait()).await.expect("stops on SIGTERM").unwrap()
    }
}
