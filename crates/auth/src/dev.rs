//! Development tokens: a local signing key (P-256, made on first use, or an RSA or P-256 PKCS#8
//! PEM key you bring), its public JWKS for `cireg serve --jwks`, and tokens signed with it. For the
//! demo and tests only: production tokens come from the federation's identity provider.

use std::{path::Path, time::Duration};

use jsonwebtoken::{
    jwk::{Jwk, JwkSet, PublicKeyUse, ThumbprintHash},
    Algorithm, EncodingKey, Header,
};
use p256::{elliptic_curve::Generate, pkcs8::EncodePrivateKey};
use serde_json::{Map, Value};

use crate::unix_now;

/// A local signing key.
pub struct DevKey {
    key: EncodingKey,
    alg: Algorithm,
    jwk: Jwk,
}

/// What a development token says.
#[derive(Debug, Clone)]
pub struct DevToken {
    pub issuer: String,
    pub audience: String,
    pub subject: String,
    /// Written to the provider claim as an array (left out when empty).
    pub providers: Vec<String>,
    /// Whether the role claim holds the researcher role.
    pub researcher: bool,
    /// Whether the role claim holds the role that reads every study.
    pub all_studies: bool,
    /// Whether the role claim holds the operator role.
    pub operator: bool,
    /// Signed visas ([`DevKey::mint_visa`]) for the token's `ga4gh_passport_v1` claim (left out
    /// when empty).
    pub visas: Vec<String>,
    /// The claim names (a dotted role claim, `realm_access.roles`, is written as nested objects).
    pub claims: crate::Claims,
    /// `exp` is this long after now.
    pub lifetime: Duration,
    /// `nbf`, this long after now (none: no `nbf`).
    pub not_before: Option<Duration>,
}

/// What a development visa says: a GA4GH `ControlledAccessGrants` (or another type, for tests).
#[derive(Debug, Clone)]
pub struct DevVisa {
    /// The visa issuer (`iss`).
    pub issuer: String,
    /// Whom it is about (`sub`).
    pub subject: String,
    /// The visa type (`ControlledAccessGrants` grants access).
    pub kind: String,
    /// The dataset's IRI.
    pub value: String,
    /// Who decided (e.g. a data access committee's URL).
    pub source: String,
    /// When the grant was made: this long before now.
    pub asserted_ago: Duration,
    /// `exp` is this long after now (zero with `expired_ago`: in the past).
    pub lifetime: Duration,
    /// `exp` this long before now instead (an expired visa).
    pub expired_ago: Option<Duration>,
    /// The visa's `conditions`, if any.
    pub conditions: Option<Value>,
}

impl DevVisa {
    /// A `ControlledAccessGrants` visa of `issuer` granting `subject` the dataset of IRI `dataset`,
    /// decided by `source`, asserted now and valid for `lifetime`, without conditions.
    pub fn grant(issuer: &str, subject: &str, dataset: &str, source: &str, lifetime: Duration) -> Self {
        DevVisa {
            issuer: issuer.to_owned(),
            subject: subject.to_owned(),
            kind: crate::CONTROLLED_ACCESS_GRANTS.to_owned(),
            value: dataset.to_owned(),
            source: source.to_owned(),
            asserted_ago: Duration::ZERO,
            lifetime,
            expired_ago: None,
            conditions: None,
        }
    }
}

impl DevKey {
    /// Loads the PKCS#8 PEM P-256 key at `path` (it signs ES256), or makes a new
    /// P-256 key there (readable by its owner only). The flag says whether it was made.
    pub fn load_or_create(path: &Path) -> Result<(DevKey, bool), String> {
        let created = !path.exists();
        if created {
            let secret = p256::SecretKey::try_generate().map_err(|e| format!("generating a key: {e}"))?;
            let pem = secret.to_pkcs8_pem(Default::default()).map_err(|e| format!("encoding the key: {e}"))?;
            write_private(path, pem.as_bytes()).map_err(|e| format!("{}: {e}", path.display()))?;
        }
        let pem = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
        // RSA keys are refused: signing with one would be a private-key operation of the `rsa`
        // crate, whose timing leaks the key (RUSTSEC-2023-0071); cireg only verifies RSA
        // signatures (public-key operations, which do not leak), and signs with P-256
        let key = match EncodingKey::from_ec_pem(&pem) {
            Ok(key) => key,
            Err(_) if EncodingKey::from_rsa_pem(&pem).is_ok() => {
                return Err(format!(
                    "{}: an RSA key; cireg signs development tokens with P-256 keys only (ES256): \
                     leave --key out to make one, or use `openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256`",
                    path.display()
                ))
            }
            Err(_) => return Err(format!("{}: not a P-256 private key in PEM (PKCS#8)", path.display())),
        };
        let alg = Algorithm::ES256;
        let mut jwk = Jwk::from_encoding_key(&key, alg).map_err(|e| format!("{}: {e}", path.display()))?;
        let kid = jwk.thumbprint(ThumbprintHash::SHA256).map_err(|e| e.to_string())?;
        jwk.common.key_id = Some(kid);
        jwk.common.public_key_use = Some(PublicKeyUse::Signature);
        Ok((DevKey { key, alg, jwk }, created))
    }

    /// The key's id: its RFC 7638 thumbprint.
    pub fn kid(&self) -> &str {
        self.jwk.common.key_id.as_deref().unwrap_or_default()
    }

    /// The public key as a JWKS document, for `cireg serve --jwks`.
    pub fn jwks_json(&self) -> Result<String, String> {
        serde_json::to_string_pretty(&JwkSet { keys: vec![self.jwk.clone()] }).map_err(|e| e.to_string())
    }

    /// Writes [`DevKey::jwks_json`] to `path`.
    pub fn write_jwks(&self, path: &Path) -> Result<(), String> {
        std::fs::write(path, self.jwks_json()?).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// A signed token.
    pub fn mint(&self, token: &DevToken) -> Result<String, String> {
        self.mint_with_kid(token, self.kid())
    }

    /// A signed token whose header names `kid` (tests use it to claim another key's id).
    pub fn mint_with_kid(&self, token: &DevToken, kid: &str) -> Result<String, String> {
        self.sign(claims(token), kid)
    }

    /// A token that expired `ago` (tests of expiry).
    pub fn mint_expired(&self, token: &DevToken, ago: Duration) -> Result<String, String> {
        let mut c = claims(token);
        c.insert("exp".into(), Value::from(unix_now().saturating_sub(ago.as_secs())));
        self.sign(c, self.kid())
    }

    /// A signed GA4GH visa.
    pub fn mint_visa(&self, visa: &DevVisa) -> Result<String, String> {
        self.mint_visa_with_kid(visa, self.kid())
    }

    /// A signed GA4GH visa whose header names `kid` (a forgery, in tests).
    pub fn mint_visa_with_kid(&self, visa: &DevVisa, kid: &str) -> Result<String, String> {
        let now = unix_now();
        let mut assertion = Map::new();
        assertion.insert("type".into(), visa.kind.clone().into());
        assertion.insert("asserted".into(), now.saturating_sub(visa.asserted_ago.as_secs()).into());
        assertion.insert("value".into(), visa.value.clone().into());
        assertion.insert("source".into(), visa.source.clone().into());
        assertion.insert("by".into(), "dac".into());
        if let Some(conditions) = &visa.conditions {
            assertion.insert("conditions".into(), conditions.clone());
        }
        let exp = match visa.expired_ago {
            Some(ago) => now.saturating_sub(ago.as_secs()),
            None => now + visa.lifetime.as_secs(),
        };
        let mut c = Map::new();
        c.insert("iss".into(), visa.issuer.clone().into());
        c.insert("sub".into(), visa.subject.clone().into());
        c.insert("iat".into(), now.into());
        c.insert("exp".into(), exp.into());
        c.insert(crate::VISA_CLAIM.into(), Value::Object(assertion));
        self.sign(c, kid)
    }

    fn sign(&self, claims: Map<String, Value>, kid: &str) -> Result<String, String> {
        let mut header = Header::new(self.alg);
        header.kid = Some(kid.to_owned());
        jsonwebtoken::encode(&header, &claims, &self.key).map_err(|e| e.to_string())
    }
}

fn claims(token: &DevToken) -> Map<String, Value> {
    let now = unix_now();
    let mut c = Map::new();
    c.insert("iss".into(), token.issuer.clone().into());
    c.insert("aud".into(), token.audience.clone().into());
    c.insert("sub".into(), token.subject.clone().into());
    c.insert("iat".into(), now.into());
    c.insert("exp".into(), (now + token.lifetime.as_secs()).into());
    if let Some(nbf) = token.not_before {
        c.insert("nbf".into(), (now + nbf.as_secs()).into());
    }
    if !token.providers.is_empty() {
        insert_path(&mut c, &token.claims.provider_claim, Value::from(token.providers.clone()));
    }
    let roles: Vec<String> = [
        (token.researcher, &token.claims.researcher_role),
        (token.all_studies, &token.claims.all_studies_role),
        (token.operator, &token.claims.operator_role),
    ]
    .into_iter()
    .filter(|(held, _)| *held)
    .map(|(_, role)| role.clone())
    .collect();
    if !roles.is_empty() {
        insert_path(&mut c, &token.claims.role_claim, Value::from(roles));
    }
    if !token.visas.is_empty() {
        c.insert(crate::PASSPORT_CLAIM.into(), Value::from(token.visas.clone()));
    }
    c
}

/// Inserts `value` at a dotted claim name (nested objects), or at the name itself when it looks
/// like a URL.
fn insert_path(claims: &mut Map<String, Value>, name: &str, value: Value) {
    if name.contains("://") || !name.contains('.') {
        claims.insert(name.to_owned(), value);
        return;
    }
    let mut parts: Vec<&str> = name.split('.').collect();
    let last = parts.pop().unwrap_or(name);
    let mut at = claims;
    for part in parts {
        let entry = at.entry(part.to_owned()).or_insert_with(|| Value::Object(Map::new()));
        if !entry.is_object() {
            *entry = Value::Object(Map::new());
        }
        let Value::Object(next) = entry else { return };
        at = next;
    }
    at.insert(last.to_owned(), value);
}

#[cfg(unix)]
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::{io::Write, os::unix::fs::OpenOptionsExt};
    let mut file = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)?;
    file.write_all(bytes)
}

#[cfg(not(unix))]
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    std::fs::write(path, bytes)
}
