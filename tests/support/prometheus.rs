//! A real Prometheus server (Debian's, `AF_TEST_PROMETHEUS`) evaluating the
//! chart's alert rules on figures it scrapes, every second, from a
//! `/metrics` endpoint the test serves out of the operator's own registry.

use std::time::Duration;

use artifortress_operator::metrics::Metrics;

/// Serves `metrics` at `http://<addr>/metrics` until the test ends.
pub async fn serve_metrics(metrics: std::sync::Arc<Metrics>) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let body = metrics.encode();
            tokio::spawn(async move {
                let mut request = [0u8; 4096];
                let _ = stream.read(&mut request).await;
                let head = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = stream.write_all(head.as_bytes()).await;
                let _ = stream.write_all(body.as_bytes()).await;
            });
        }
    });
    addr
}

pub struct Prometheus {
    pub addr: String,
    child: std::process::Child,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    /// Starts a server with these rules, scraping `target` every second.
    pub fn start(rules: &str, target: &str) -> Prometheus {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("rules.yaml"), rules).unwrap();
        let config = format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files: [rules.yaml]\n\
             scrape_configs:\n  - job_name: operator\n    static_configs:\n      - targets: ['{target}']\n"
        );
        std::fs::write(dir.path().join("prometheus.yml"), config).unwrap();
        let addr = format!("127.0.0.1:{}", super::physical::free_port());
        let child = std::process::Command::new(super::env("AF_TEST_PROMETHEUS"))
            .arg(format!("--config.file={}", dir.path().join("prometheus.yml").display()))
            .arg(format!("--storage.tsdb.path={}", dir.path().join("data").display()))
            .arg(format!("--web.listen-address={addr}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("prometheus.log")).unwrap())
            .spawn()
            .expect("start prometheus");
        Prometheus { addr, child, _dir: dir }
    }

    /// The alerts now (`/api/v1/alerts`): (name, state, installation label).
    pub async fn alerts(&self) -> Vec<(String, String, String)> {
        let (status, body) = super::http_get(&self.addr, "/api/v1/alerts", None).await;
        assert_eq!(status, 200, "{body}");
        let doc: serde_json::Value = serde_json::from_str(&body).unwrap();
        let label = |a: &serde_json::Value, k: &str| a["labels"][k].as_str().unwrap_or_default().to_string();
        let alerts = doc["data"]["alerts"].as_array().cloned().unwrap_or_default();
        alerts
            .iter()
            .map(|a| (label(a, "alertname"), a["state"].as_str().unwrap().to_string(), label(a, "installation")))
            .collect()
    }

    /// Waits until the server answers.
    pub async fn ready(&self) {
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(&self.addr).await.is_ok() {
                let (status, _) = super::http_get(&self.addr, "/-/ready", None).await;
                if status == 200 {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        panic!("prometheus on {} did not become ready", self.addr);
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
