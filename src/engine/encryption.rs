//! Client-side encryption of what a backup stores, in the age format
//! (age-encryption.org/v1): the compressed bytes are encrypted in 64 KiB
//! chunks, each one authenticated, so an object is encrypted as it uploads
//! and decrypted as it downloads. Any age implementation opens a backup
//! without the operator (`age -d -i key.txt dump.zst.age | zstd -d`).
//!
//! Two modes. Public keys (the default): backups are encrypted to X25519
//! recipients (`age1…`), so the backup side holds nothing that decrypts, and
//! only what restores holds the identities (`AGE-SECRET-KEY-1…`). A
//! passphrase (scrypt), for small setups where one secret is simpler; the
//! backup side then holds what decrypts too.
//!
//! Nothing here logs or displays a secret: identities show as their public key.

use std::io::{self, Read, Write};
use std::path::Path;
use std::sync::{Arc, Mutex};

use age::secrecy::ExposeSecret;
pub use age::secrecy::SecretString;
use bytes::Bytes;

pub use artifortress_formats::manifest::Encryption;

use super::EngineError;

/// What every age file starts with; tells an encrypted object from a zstd one.
pub const AGE_MAGIC: &[u8] = b"age-encryption.org/v1\n";

/// Where the operator's Jobs find the identities (the text of an identity
/// file) and the passphrase: environment from Secrets, never arguments.
pub const IDENTITIES_ENV: &str = "ARTIFORTRESS_AGE_IDENTITIES";
pub const PASSPHRASE_ENV: &str = "ARTIFORTRESS_BACKUP_PASSPHRASE";

/// The reason a restore or drill reports when no configured key opens its backup.
pub const KEY_UNAVAILABLE: &str = "KeyUnavailable";

/// The value of [`Encryption::format`].
pub const FORMAT: &str = "age";

/// What new backups are encrypted to.
#[derive(Clone)]
pub enum Sealing {
    Recipients(Vec<age::x25519::Recipient>),
    Passphrase(Arc<SecretString>),
}

impl std::fmt::Debug for Sealing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Sealing::Recipients(r) => write!(f, "Sealing::Recipients({})", r.len()),
            Sealing::Passphrase(_) => f.write_str("Sealing::Passphrase(…)"),
        }
    }
}

impl Sealing {
    /// Recipients from `age1…` strings and recipients files (one per line, `#`
    /// comments, as `age-keygen -y` writes them), or a passphrase: one of the
    /// two kinds at most.
    pub fn load(
        recipients: &[String],
        recipient_files: &[&Path],
        passphrase: Option<SecretString>,
    ) -> Result<Option<Sealing>, EngineError> {
        let mut keys = Vec::new();
        for r in recipients {
            keys.push(parse_recipient(r, "--encrypt-to")?);
        }
        for file in recipient_files {
            for line in key_lines(&read_key_file(file, "recipients")?) {
                keys.push(parse_recipient(line, &file.display().to_string())?);
            }
        }
        match (keys.is_empty(), passphrase) {
            (true, None) => Ok(None),
            (false, None) => Ok(Some(Sealing::Recipients(keys))),
            (true, Some(passphrase)) => Ok(Some(Sealing::Passphrase(Arc::new(passphrase)))),
            (false, Some(_)) => Err(EngineError::Config(
                "a backup is encrypted either to recipients or with a passphrase, not both: age allows a passphrase only alone"
                    .into(),
            )),
        }
    }

    /// What a manifest records: the recipients (public), or that a passphrase was used.
    pub fn describe(&self) -> Encryption {
        match self {
            Sealing::Recipients(keys) => Encryption {
                format: FORMAT.into(),
                recipients: keys.iter().map(ToString::to_string).collect(),
                passphrase: false,
            },
            Sealing::Passphrase(_) => Encryption { format: FORMAT.into(), recipients: Vec::new(), passphrase: true },
        }
    }

    /// A streaming encryptor for one object.
    pub fn sealer(&self) -> io::Result<Sealer> {
        let encryptor = match self {
            Sealing::Recipients(keys) => age::Encryptor::with_recipients(keys.iter().map(|k| k as &dyn age::Recipient))
                .map_err(io::Error::other)?,
            Sealing::Passphrase(p) => {
                age::Encryptor::with_user_passphrase(SecretString::from(p.expose_secret().to_string()))
            }
        };
        let out = Drain::default();
        let writer = encryptor.wrap_output(out.clone())?;
        Ok(Sealer { writer, out })
    }

    /// One whole object, encrypted (WAL segments, small files).
    pub fn seal_all(&self, plain: &[u8]) -> io::Result<Vec<u8>> {
        let mut sealer = self.sealer()?;
        let mut sealed = sealer.seal(plain)?.to_vec();
        sealed.extend_from_slice(&sealer.finish()?);
        Ok(sealed)
    }
}

/// Encrypts one object as its bytes pass: each call returns what is ready.
pub struct Sealer {
    writer: age::stream::StreamWriter<Drain>,
    out: Drain,
}

impl Sealer {
    pub fn seal(&mut self, plain: &[u8]) -> io::Result<Bytes> {
        self.writer.write_all(plain)?;
        Ok(self.out.take())
    }

    /// The last chunk; without it the object does not decrypt.
    pub fn finish(self) -> io::Result<Bytes> {
        let out = self.out.clone();
        self.writer.finish()?;
        Ok(out.take())
    }
}

/// Where the encryptor writes; drained after every call.
#[derive(Clone, Default)]
struct Drain(Arc<Mutex<Vec<u8>>>);

impl Drain {
    fn take(&self) -> Bytes {
        Bytes::from(std::mem::take(&mut *self.0.lock().unwrap()))
    }
}

impl Write for Drain {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// What restores may open backups with: identities and a passphrase.
#[derive(Clone, Default)]
pub struct Keyring {
    identities: Vec<age::x25519::Identity>,
    passphrase: Option<Arc<SecretString>>,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Keyring({:?}, passphrase: {})", self.public_keys(), self.passphrase.is_some())
    }
}

impl Keyring {
    /// Identities from identity files and from `inline` text (what a Secret
    /// holds: `AGE-SECRET-KEY-1…` lines, as `age-keygen` writes them; several
    /// keys allowed) with where it came from, and a passphrase.
    pub fn load(
        identity_files: &[&Path],
        inline: Option<(&str, &str)>,
        passphrase: Option<SecretString>,
    ) -> Result<Keyring, EngineError> {
        let mut keyring = Keyring { identities: Vec::new(), passphrase: passphrase.map(Arc::new) };
        for file in identity_files {
            keyring.add_identities(&read_key_file(file, "identity")?, &file.display().to_string())?;
        }
        if let Some((text, from)) = inline {
            keyring.add_identities(text, from)?;
        }
        Ok(keyring)
    }

    fn add_identities(&mut self, text: &str, from: &str) -> Result<(), EngineError> {
        for line in key_lines(text) {
            // The parse error would not name the line; the line itself is secret.
            self.identities.push(line.parse::<age::x25519::Identity>().map_err(|_| {
                EngineError::Config(format!(
                    "{from} holds a line that is not an age identity (AGE-SECRET-KEY-1…); create one with age-keygen"
                ))
            })?);
        }
        Ok(())
    }

    pub fn is_empty(&self) -> bool {
        self.identities.is_empty() && self.passphrase.is_none()
    }

    /// The public keys of the identities (safe to show).
    pub fn public_keys(&self) -> Vec<String> {
        self.identities.iter().map(|i| i.to_public().to_string()).collect()
    }

    /// Whether this keyring opens what was encrypted as `encryption` says; an
    /// error naming the recipients (reason `KeyUnavailable`) when not, before
    /// anything is downloaded or touched.
    pub fn check(&self, encryption: &Encryption, what: &str) -> Result<(), EngineError> {
        if encryption.format != FORMAT {
            return Err(EngineError::Config(format!(
                "{what} is encrypted in format {:?}, which this version does not read (it reads {FORMAT:?})",
                encryption.format
            )));
        }
        if encryption.passphrase {
            if self.passphrase.is_some() {
                return Ok(());
            }
            return Err(EngineError::refused(
                KEY_UNAVAILABLE,
                format!(
                    "{what} is encrypted with a passphrase and none is configured: give the passphrase file (--passphrase-file, or the passphrase Secret)"
                ),
            ));
        }
        let ours = self.public_keys();
        if encryption.recipients.iter().any(|r| ours.contains(r)) {
            return Ok(());
        }
        let configured = if ours.is_empty() {
            "no identity is configured".to_string()
        } else {
            format!("the configured identities are for {}", ours.join(", "))
        };
        Err(EngineError::refused(
            KEY_UNAVAILABLE,
            format!(
                "{what} is encrypted to {}; {configured}: give the identity of one of those recipients (--identity FILE, or the identity Secret)",
                encryption.recipients.join(", ")
            ),
        ))
    }

    /// The plaintext of an age stream read from `sealed`.
    pub fn open<R: Read + Send + 'static>(&self, sealed: R) -> io::Result<Box<dyn Read + Send>> {
        let decryptor = age::Decryptor::new(sealed).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        let reader = if decryptor.is_scrypt() {
            let Some(p) = &self.passphrase else {
                return Err(io::Error::new(
                    io::ErrorKind::PermissionDenied,
                    "encrypted with a passphrase, and none is configured",
                ));
            };
            let identity = age::scrypt::Identity::new(SecretString::from(p.expose_secret().to_string()));
            decryptor.decrypt(std::iter::once(&identity as &dyn age::Identity))
        } else {
            decryptor.decrypt(self.identities.iter().map(|i| i as &dyn age::Identity))
        };
        let reader = reader.map_err(|e| io::Error::new(io::ErrorKind::PermissionDenied, e))?;
        Ok(Box::new(reader))
    }

    /// One whole object: decrypted when it is an age file, as it is otherwise.
    pub fn open_all(&self, stored: Vec<u8>) -> io::Result<Vec<u8>> {
        if !stored.starts_with(AGE_MAGIC) {
            return Ok(stored);
        }
        let mut plain = Vec::new();
        self.open(io::Cursor::new(stored))?.read_to_end(&mut plain)?;
        Ok(plain)
    }
}

fn parse_recipient(text: &str, from: &str) -> Result<age::x25519::Recipient, EngineError> {
    text.trim().parse().map_err(|e| {
        EngineError::Config(format!(
            "{from}: {:?} is not an age recipient (age1…): {e}; age-keygen -y KEYFILE prints one",
            text.trim()
        ))
    })
}

/// The lines of a key file that hold a key.
fn key_lines(text: &str) -> impl Iterator<Item = &str> {
    text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#'))
}

fn read_key_file(path: &Path, kind: &str) -> Result<String, EngineError> {
    std::fs::read_to_string(path)
        .map_err(|e| EngineError::Config(format!("reading the {kind} file {}: {e}", path.display())))
}

/// A passphrase file's first line.
pub fn read_passphrase(path: &Path) -> Result<SecretString, EngineError> {
    let text = read_key_file(path, "passphrase")?;
    let line = text.lines().next().unwrap_or("").to_string();
    if line.is_empty() {
        return Err(EngineError::Config(format!("the passphrase file {} is empty", path.display())));
    }
    Ok(SecretString::from(line))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keypair() -> (age::x25519::Identity, String) {
        let identity = age::x25519::Identity::generate();
        let public = identity.to_public().to_string();
        (identity, public)
    }

    #[test]
    fn what_is_sealed_in_pieces_opens_whole_and_only_with_its_key() {
        let (identity, public) = keypair();
        let sealing = Sealing::Recipients(vec![public.parse().unwrap()]);
        let plain: Vec<u8> = (0..300_000u32).flat_map(|i| i.to_le_bytes()).collect();
        let mut sealer = sealing.sealer().unwrap();
        let mut sealed = Vec::new();
        for piece in plain.chunks(70_001) {
            sealed.extend_from_slice(&sealer.seal(piece).unwrap());
        }
        sealed.extend_from_slice(&sealer.finish().unwrap());
        assert!(sealed.starts_with(AGE_MAGIC));
        let ours = Keyring { identities: vec![identity], passphrase: None };
        assert_eq!(ours.open_all(sealed.clone()).unwrap(), plain);
        let theirs = Keyring { identities: vec![keypair().0], passphrase: None };
        assert_eq!(theirs.open_all(sealed.clone()).unwrap_err().kind(), io::ErrorKind::PermissionDenied);
        // A flipped byte in the payload is an error, never wrong bytes.
        let mut tampered = sealed;
        let at = tampered.len() - 100;
        tampered[at] ^= 1;
        assert!(ours.open_all(tampered).is_err());
    }

    #[test]
    fn the_check_names_the_recipients_when_no_identity_matches() {
        let (identity, public) = keypair();
        let encryption = Sealing::Recipients(vec![public.parse().unwrap()]).describe();
        assert!(Keyring { identities: vec![identity], passphrase: None }.check(&encryption, "backup b").is_ok());
        let (other, other_public) = keypair();
        let err = Keyring { identities: vec![other], passphrase: None }.check(&encryption, "backup b").unwrap_err();
        let EngineError::Refused { reason, message } = err else { panic!("{err}") };
        assert_eq!(reason, "KeyUnavailable");
        assert!(message.contains(&public) && message.contains(&other_public), "{message}");
        assert!(!message.contains("AGE-SECRET-KEY"), "{message}");
        let none = Keyring::default().check(&encryption, "backup b").unwrap_err();
        assert!(none.to_string().contains("no identity is configured"), "{none}");
    }

    #[test]
    fn a_passphrase_opens_what_it_sealed() {
        let sealing = Sealing::Passphrase(Arc::new(SecretString::from("correct horse".to_string())));
        let sealed = sealing.seal_all(b"one segment").unwrap();
        let keys = Keyring {
            identities: Vec::new(),
            passphrase: Some(Arc::new(SecretString::from("correct horse".to_string()))),
        };
        keys.check(&sealing.describe(), "x").unwrap();
        assert_eq!(keys.open_all(sealed.clone()).unwrap(), b"one segment");
        assert!(Keyring::default().check(&sealing.describe(), "x").is_err());
        assert!(Keyring::default().open_all(sealed).is_err());
        // What is not an age file passes as it is (unencrypted objects).
        assert_eq!(Keyring::default().open_all(b"plain".to_vec()).unwrap(), b"plain");
    }
}
