//! `file:///path`: backups in a local directory (the embedded default for local use).

use std::path::{Path, PathBuf};

use futures::StreamExt;
use tokio::io::AsyncWriteExt;

use super::{BackupStore, ByteStream, ObjectInfo, StoreError};

/// Marks files being written; they are renamed into place when complete and
/// never listed.
const PARTIAL_MARKER: &str = ".partial-";

pub struct FileStore {
    root: PathBuf,
}

impl FileStore {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        FileStore { root: root.into() }
    }

    pub fn from_url(url: &url::Url) -> Result<Self, StoreError> {
        let path = url.to_file_path().map_err(|()| StoreError::InvalidUrl {
            url: url.to_string(),
            reason: "a file store needs an absolute path, e.g. file:///var/backups/artifortress".to_string(),
        })?;
        Ok(FileStore::new(path))
    }

    fn path(&self, key: &str) -> Result<PathBuf, StoreError> {
        // Keys come from backup names; refuse anything that could leave the root.
        if key.is_empty() || key.starts_with('/') || key.split('/').any(|p| p == ".." || p == "." || p.is_empty()) {
            return Err(StoreError::InvalidUrl { url: self.url(), reason: format!("invalid object key {key:?}") });
        }
        Ok(self.root.join(key))
    }

    /// Every file under the root whose key starts with `prefix`, partial ones included.
    async fn walk(&self, prefix: &str) -> Result<Vec<ObjectInfo>, StoreError> {
        let mut out = Vec::new();
        let mut dirs = vec![self.root.clone()];
        while let Some(dir) = dirs.pop() {
            let mut entries = match tokio::fs::read_dir(&dir).await {
                Ok(entries) => entries,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(self.io("listing", prefix, e)),
            };
            while let Some(entry) = entries.next_entry().await.map_err(|e| self.io("listing", prefix, e))? {
                let meta = entry.metadata().await.map_err(|e| self.io("listing", prefix, e))?;
                if meta.is_dir() {
                    dirs.push(entry.path());
                } else {
                    let key = relative_key(&self.root, &entry.path());
                    if key.starts_with(prefix) {
                        let modified = meta.modified().ok().map(chrono::DateTime::<chrono::Utc>::from);
                        out.push(ObjectInfo { key, size: meta.len(), modified });
                    }
                }
            }
        }
        Ok(out)
    }

    fn io(&self, op: &'static str, key: &str, e: impl ToString) -> StoreError {
        StoreError::Io { store: self.url(), op, key: key.to_string(), message: e.to_string() }
    }
}

#[async_trait::async_trait]
impl BackupStore for FileStore {
    fn url(&self) -> String {
        format!("file://{}", self.root.display())
    }

    fn location(&self, key: &str) -> String {
        format!("file://{}", self.root.join(key).display())
    }

    async fn put_stream(&self, key: &str, mut body: ByteStream) -> Result<u64, StoreError> {
        let path = self.path(key)?;
        if let Some(parent) = path.parent() {
            tokio::fs::create_dir_all(parent).await.map_err(|e| self.io("creating directory for", key, e))?;
        }
        let tmp = PathBuf::from(format!("{}{PARTIAL_MARKER}{}", path.display(), std::process::id()));
        let result = async {
            let mut file = tokio::fs::File::create(&tmp).await.map_err(|e| self.io("creating", key, e))?;
            let mut written = 0u64;
            while let Some(chunk) = body.next().await {
                let chunk = chunk.map_err(|e| StoreError::Aborted {
                    store: self.url(),
                    key: key.to_string(),
                    cause: e.to_string(),
                })?;
                file.write_all(&chunk).await.map_err(|e| self.io("writing", key, e))?;
                written += chunk.len() as u64;
            }
            // Durable before it becomes visible under its real name.
            file.sync_all().await.map_err(|e| self.io("syncing", key, e))?;
            tokio::fs::rename(&tmp, &path).await.map_err(|e| self.io("renaming into place", key, e))?;
            Ok(written)
        }
        .await;
        if result.is_err() {
            let _ = tokio::fs::remove_file(&tmp).await;
        }
        result
    }

    async fn get_stream(&self, key: &str) -> Result<ByteStream, StoreError> {
        let path = self.path(key)?;
        let file = tokio::fs::File::open(&path).await.map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                StoreError::NotFound { store: self.url(), key: key.to_string() }
            } else {
                self.io("opening", key, e)
            }
        })?;
        Ok(Box::pin(tokio_util::io::ReaderStream::with_capacity(file, 1 << 20)))
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, StoreError> {
        let mut out: Vec<ObjectInfo> =
            self.walk(prefix).await?.into_iter().filter(|o| !o.key.contains(PARTIAL_MARKER)).collect();
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    async fn check(&self) -> Result<(), StoreError> {
        match tokio::fs::metadata(&self.root).await {
            Ok(meta) if meta.is_dir() => Ok(()),
            Ok(_) => Err(self.io("checking", "", "not a directory")),
            Err(e) => Err(self.io("checking", "", e)),
        }
    }

    async fn clean_incomplete(&self, prefix: &str, older_than: std::time::Duration) -> Result<usize, StoreError> {
        let mut removed = 0;
        for ObjectInfo { key, .. } in self.walk(prefix).await? {
            if !key.contains(PARTIAL_MARKER) {
                continue;
            }
            let path = self.root.join(&key);
            let modified = tokio::fs::metadata(&path).await.and_then(|m| m.modified());
            let age = modified.ok().and_then(|m| m.elapsed().ok()).unwrap_or_default();
            if age >= older_than {
                match tokio::fs::remove_file(&path).await {
                    Ok(()) => removed += 1,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(self.io("removing partial file", &key, e)),
                }
            }
        }
        Ok(removed)
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        match tokio::fs::remove_file(self.path(key)?).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(self.io("deleting", key, e)),
        }
    }
}

fn relative_key(root: &Path, path: &Path) -> String {
    let rel = path.strip_prefix(root).unwrap_or(path);
    rel.components().map(|c| c.as_os_str().to_string_lossy()).collect::<Vec<_>>().join("/")
}
