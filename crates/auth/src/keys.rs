//! The identity provider's public keys (a JWKS), from a file or a URL. A URL's keys are fetched
//! again when a token names a key the registry does not know (the provider rotated its keys) and
//! when they are older than [`MAX_AGE`], never more often than every [`MIN_REFETCH`].

use std::{
    path::PathBuf,
    time::{Duration, Instant},
};

use jsonwebtoken::{
    jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, PublicKeyUse},
    Algorithm, DecodingKey,
};
use serde_json::Value;
use tokio::sync::RwLock;
use tracing::{info, warn};

use crate::AuthError;

const MAX_AGE: Duration = Duration::from_secs(600);
const MIN_REFETCH: Duration = Duration::from_secs(30);

/// Where the keys are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    File(PathBuf),
    Url(String),
}

impl std::str::FromStr for KeySource {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        if s.starts_with("https://") || s.starts_with("http://") {
            Ok(KeySource::Url(s.to_owned()))
        } else if s.is_empty() {
            Err("empty: give a JWKS file or an https:// URL".to_owned())
        } else {
            Ok(KeySource::File(PathBuf::from(s)))
        }
    }
}

impl std::fmt::Display for KeySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeySource::File(p) => write!(f, "{}", p.display()),
            KeySource::Url(u) => f.write_str(u),
        }
    }
}

enum Refetch {
    Fetched,
    Failed(String),
    /// Tried too recently.
    NotNow,
}

struct Key {
    kid: Option<String>,
    alg: Algorithm,
    key: DecodingKey,
}

struct Loaded {
    keys: Vec<Key>,
    /// When `keys` were fetched.
    at: Instant,
    /// When a fetch was last tried.
    tried: Instant,
}

pub(crate) struct Keys {
    source: KeySource,
    http: reqwest::Client,
    loaded: RwLock<Loaded>,
    /// [`MIN_REFETCH`], shorter in tests.
    min_refetch: Duration,
}

impl Keys {
    pub(crate) async fn load(source: KeySource) -> Result<Self, String> {
        let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().map_err(|e| e.to_string())?;
        let keys = fetch(&source, &http).await?;
        if keys.is_empty() {
            return Err(format!("{source}: no RS256 or ES256 signing key in the JWKS"));
        }
        info!(keys = keys.len(), source = %source, "loaded the token keys");
        Ok(Keys {
            source,
            http,
            loaded: RwLock::new(Loaded { keys, at: Instant::now(), tried: Instant::now() }),
            min_refetch: MIN_REFETCH,
        })
    }

    /// The key a token's header names.
    pub(crate) async fn find(&self, kid: Option<&str>, alg: Algorithm) -> Result<DecodingKey, AuthError> {
        let is_url = matches!(self.source, KeySource::Url(_));
        if is_url && self.loaded.read().await.at.elapsed() > MAX_AGE {
            self.refetch().await;
        }
        if let Some(key) = self.lookup(kid, alg).await {
            return Ok(key);
        }
        // an unknown key: the identity provider may have rotated its keys
        if is_url {
            match self.refetch().await {
                Refetch::Fetched => {
                    if let Some(key) = self.lookup(kid, alg).await {
                        return Ok(key);
                    }
                }
                // the token may well be good: say the keys cannot be had, not that it is wrong
                Refetch::Failed(reason) => return Err(AuthError::Unavailable(reason)),
                Refetch::NotNow => {}
            }
        }
        Err(AuthError::Token(match kid {
            Some(_) => format!("the token's key (its kid) is not one of this registry's {alg:?} keys"),
            None => format!("the token names no key (kid) and this registry has no single {alg:?} key"),
        }))
    }

    async fn lookup(&self, kid: Option<&str>, alg: Algorithm) -> Option<DecodingKey> {
        let loaded = self.loaded.read().await;
        let mut fitting = loaded.keys.iter().filter(|k| k.alg == alg);
        match kid {
            Some(kid) => fitting.find(|k| k.kid.as_deref() == Some(kid)).map(|k| k.key.clone()),
            None => {
                let first = fitting.next()?;
                fitting.next().is_none().then(|| first.key.clone())
            }
        }
    }

    /// Fetches the keys again unless that was tried less than [`MIN_REFETCH`] ago (tokens naming
    /// unknown keys must not make the registry hammer the identity provider). Other requests keep
    /// verifying with the keys loaded before while it fetches.
    async fn refetch(&self) -> Refetch {
        {
            let mut loaded = self.loaded.write().await;
            if loaded.tried.elapsed() < self.min_refetch {
                return Refetch::NotNow;
            }
            loaded.tried = Instant::now();
        }
        let reason = match fetch(&self.source, &self.http).await {
            Ok(keys) if !keys.is_empty() => {
                let mut loaded = self.loaded.write().await;
                loaded.keys = keys;
                loaded.at = Instant::now();
                return Refetch::Fetched;
            }
            Ok(_) => format!("{}: the JWKS holds no usable key now", self.source),
            Err(e) => e,
        };
        warn!(error = %reason, "cannot refresh the token keys; keeping the keys loaded before");
        Refetch::Failed(reason)
    }
}

async fn fetch(source: &KeySource, http: &reqwest::Client) -> Result<Vec<Key>, String> {
    let bytes = match source {
        KeySource::File(path) => tokio::fs::read(path).await.map_err(|e| format!("{}: {e}", path.display()))?,
        KeySource::Url(url) => {
            let response = http.get(url).send().await.map_err(|e| format!("{url}: {e}"))?;
            if !response.status().is_success() {
                return Err(format!("{url}: HTTP {}", response.status()));
            }
            response.bytes().await.map_err(|e| format!("{url}: {e}"))?.to_vec()
        }
    };
    parse_jwks(&bytes).map_err(|e| format!("{source}: {e}"))
}

/// The signing keys of a JWKS this registry can use; keys of other kinds (encryption keys,
/// other algorithms) are skipped, as a JWKS may well hold them.
fn parse_jwks(bytes: &[u8]) -> Result<Vec<Key>, String> {
    let set: Value = serde_json::from_slice(bytes).map_err(|e| format!("not a JWKS (JSON): {e}"))?;
    let entries = set.get("keys").and_then(Value::as_array).ok_or("not a JWKS: no \"keys\" array")?;
    let mut keys = Vec::new();
    for entry in entries {
        let Ok(jwk) = serde_json::from_value::<Jwk>(entry.clone()) else { continue };
        if matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption)) {
            continue;
        }
        let alg = match (&jwk.common.key_algorithm, &jwk.algorithm) {
            (Some(KeyAlgorithm::RS256), AlgorithmParameters::RSA(_)) | (None, AlgorithmParameters::RSA(_)) => {
                Algorithm::RS256
            }
            (Some(KeyAlgorithm::ES256), AlgorithmParameters::EllipticCurve(p))
            | (None, AlgorithmParameters::EllipticCurve(p))
                if p.curve == EllipticCurve::P256 =>
            {
                Algorithm::ES256
            }
            _ => continue,
        };
        let Ok(key) = DecodingKey::from_jwk(&jwk) else { continue };
        keys.push(Key { kid: jwk.common.key_id.clone(), alg, key });
    }
    Ok(keys)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::sync::{
        atomic::{AtomicUsize, Ordering},
        Arc, Mutex,
    };

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    /// Serves whatever `body` holds as the JWKS, over plain HTTP/1.1 on loopback; counts requests.
    async fn jwks_server(body: Arc<Mutex<String>>, served: Arc<AtomicUsize>) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let mut request = Vec::new();
                let mut buf = [0u8; 1024];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match socket.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                served.fetch_add(1, Ordering::SeqCst);
                let body = body.lock().unwrap().clone();
                let response = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = socket.write_all(response.as_bytes()).await;
            }
        });
        format!("http://{addr}/jwks")
    }

    #[tokio::test]
    async fn a_url_is_fetched_again_when_a_token_names_a_new_key() {
        let dir = tempfile::tempdir().unwrap();
        let (first, _) = crate::DevKey::load_or_create(&dir.path().join("1.pem")).unwrap();
        let (second, _) = crate::DevKey::load_or_create(&dir.path().join("2.pem")).unwrap();
        let body = Arc::new(Mutex::new(first.jwks_json().unwrap()));
        let served = Arc::new(AtomicUsize::new(0));
        let url = jwks_server(body.clone(), served.clone()).await;
        let mut keys = Keys::load(url.parse().unwrap()).await.unwrap();
        assert_eq!(served.load(Ordering::SeqCst), 1);
        assert!(keys.find(Some(first.kid()), Algorithm::ES256).await.is_ok());
        // the identity provider rotates its key
        *body.lock().unwrap() = second.jwks_json().unwrap();
        // not fetched again within the minimum interval: the unknown key is refused
        assert!(keys.find(Some(second.kid()), Algorithm::ES256).await.is_err());
        assert_eq!(served.load(Ordering::SeqCst), 1);
        keys.min_refetch = Duration::ZERO;
        assert!(keys.find(Some(second.kid()), Algorithm::ES256).await.is_ok());
        assert_eq!(served.load(Ordering::SeqCst), 2);
        // a key still unknown after fetching is refused
        assert!(matches!(keys.find(Some("nope"), Algorithm::ES256).await, Err(AuthError::Token(_))));
        // keys that cannot be had: the token cannot be checked now (503), which is not its fault
        *body.lock().unwrap() = "<html>maintenance</html>".to_owned();
        assert!(matches!(keys.find(Some("rotated-again"), Algorithm::ES256).await, Err(AuthError::Unavailable(_))));
        assert!(keys.find(Some(second.kid()), Algorithm::ES256).await.is_ok(), "the keys loaded before still work");
    }

    #[test]
    fn only_usable_signing_keys_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        let (key, _) = crate::DevKey::load_or_create(&dir.path().join("k.pem")).unwrap();
        let mut set: Value = serde_json::from_str(&key.jwks_json().unwrap()).unwrap();
        let good = set["keys"][0].clone();
        let mut enc = good.clone();
        enc["use"] = "enc".into();
        enc["kid"] = "enc".into();
        let keys = set["keys"].as_array_mut().unwrap();
        keys.push(enc);
        keys.push(serde_json::json!({"kty": "oct", "k": "c2VjcmV0", "kid": "hmac"}));
        keys.push(serde_json::json!({"kty": "weird"}));
        let parsed = parse_jwks(&serde_json::to_vec(&set).unwrap()).unwrap();
        assert_eq!(parsed.len(), 1);
        assert_eq!(parsed[0].kid.as_deref(), Some(key.kid()));
        assert_eq!(parsed[0].alg, Algorithm::ES256);
        assert!(parse_jwks(b"{}").err().unwrap().contains("keys"));
        assert!(parse_jwks(b"nope").is_err());
    }
}
