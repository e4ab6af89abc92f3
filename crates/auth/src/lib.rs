#![doc = include_str!("../README.md")]

mod dev;
mod keys;
mod passport;

use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, Mutex},
    time::{SystemTime, UNIX_EPOCH},
};

use cireg_model::ProviderId;
use jsonwebtoken::{errors::ErrorKind, Algorithm, Validation};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

pub use dev::{DevKey, DevToken, DevVisa};
pub use keys::KeySource;
use keys::Keys;
use passport::VisaIssuers;
pub use passport::{Grant, VisaIssuer, CONTROLLED_ACCESS_GRANTS, PASSPORT_CLAIM, VISA_CLAIM};

/// The algorithms a token may be signed with.
pub const ALGORITHMS: [Algorithm; 2] = [Algorithm::RS256, Algorithm::ES256];

/// Which claims say what a caller may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims {
    /// The claim listing the providers the caller may publish for (a string, space- or
    /// comma-separated, or an array of strings).
    pub provider_claim: String,
    /// The claim listing the caller's roles (same forms; a dotted path such as
    /// `realm_access.roles` reaches into an object).
    pub role_claim: String,
    /// The role that makes a caller a researcher (may ask for access to datasets, and reads the
    /// studies of those it holds a permit for).
    pub researcher_role: String,
    /// The role that reads every study of the node (e.g. the staff of a provider's own node).
    pub all_studies_role: String,
    /// The role that makes a caller an operator of the node (may ask it for a backup).
    pub operator_role: String,
}

pub const DEFAULT_PROVIDER_CLAIM: &str = "cireg_providers";
pub const DEFAULT_ROLE_CLAIM: &str = "cireg_roles";
pub const DEFAULT_RESEARCHER_ROLE: &str = "researcher";
pub const DEFAULT_ALL_STUDIES_ROLE: &str = "cireg-all-studies";
pub const DEFAULT_OPERATOR_ROLE: &str = "cireg-operator";

impl Default for Claims {
    fn default() -> Self {
        Claims {
            provider_claim: DEFAULT_PROVIDER_CLAIM.into(),
            role_claim: DEFAULT_ROLE_CLAIM.into(),
            researcher_role: DEFAULT_RESEARCHER_ROLE.into(),
            all_studies_role: DEFAULT_ALL_STUDIES_ROLE.into(),
            operator_role: DEFAULT_OPERATOR_ROLE.into(),
        }
    }
}

/// How tokens are checked and read.
#[derive(Debug, Clone)]
pub struct AuthConfig {
    /// Where the identity provider's public keys are: a JWKS file or an http(s) URL.
    pub keys: KeySource,
    /// The `iss` every token must carry.
    pub issuer: String,
    /// A value the token's `aud` must hold.
    pub audience: String,
    pub claims: Claims,
    /// The visa issuers whose `ControlledAccessGrants` grant access to datasets.
    pub visa_issuers: Vec<VisaIssuer>,
}

/// A caller whose token verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The token's `sub` (empty when it has none): the key of per-caller limits.
    pub subject: String,
    /// The providers it may publish for.
    pub providers: Vec<ProviderId>,
    /// Whether it holds the researcher role.
    pub researcher: bool,
    /// Whether it may read every study of the node.
    pub all_studies: bool,
    /// Whether it operates the node.
    pub operator: bool,
    /// The datasets its passport's visas grant access to, each with its validity (checked where
    /// it is used: a grant expires while its token is remembered as verified).
    pub grants: Vec<Grant>,
}

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// The token is wrong (401): the message says why, without repeating it.
    #[error("{0}")]
    Token(String),
    /// The keys cannot be had now (503): the identity provider's JWKS URL does not answer.
    #[error("the token cannot be checked now: {0}")]
    Unavailable(String),
}

/// Checks tokens. Cheap to clone.
#[derive(Clone)]
pub struct Verifier {
    config: Arc<AuthConfig>,
    keys: Arc<Keys>,
    visas: Arc<VisaIssuers>,
    /// Tokens that verified, by their SHA-256, with their caller and `exp`: a client sends the
    /// same token with every request, and a signature check costs far more than a lookup.
    verified: Arc<Mutex<VerifiedTokens>>,
}

/// SHA-256 of a token → its caller, and until when (unix seconds) it is taken as verified.
type VerifiedTokens = HashMap<[u8; 32], (Caller, u64)>;

/// Most tokens remembered as verified; when full, the memory starts again.
const VERIFIED_TOKENS: usize = 10_000;
/// How long a verified token is taken without checking its signature again (its `exp` permitting):
/// a key the identity provider withdraws stops being trusted within this.
const VERIFIED_FOR: u64 = 300;

impl Verifier {
    /// Loads the keys once (a file is read, a URL fetched), so that a wrong configuration fails at
    /// start rather than on the first request.
    pub async fn new(config: AuthConfig) -> Result<Self, String> {
        if config.issuer.is_empty() || config.audience.is_empty() {
            return Err("a token issuer and audience must be configured with the keys".to_owned());
        }
        let keys = Keys::load(config.keys.clone()).await?;
        let visas = VisaIssuers::load(&config.visa_issuers).await?;
        Ok(Verifier {
            config: Arc::new(config),
            keys: Arc::new(keys),
            visas: Arc::new(visas),
            verified: Arc::default(),
        })
    }

    pub fn config(&self) -> &AuthConfig {
        &self.config
    }

    /// Verifies `token` (the part after `Bearer `) and reads its caller.
    pub async fn verify(&self, token: &str) -> Result<Caller, AuthError> {
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let now = unix_now();
        if let Some((caller, until)) = self.verified.lock().ok().and_then(|v| v.get(&digest).cloned()) {
            if now < until {
                return Ok(caller);
            }
        }
        let (caller, exp) = self.check(token).await?;
        if let Ok(mut verified) = self.verified.lock() {
            if verified.len() >= VERIFIED_TOKENS {
                verified.clear();
            }
            verified.insert(digest, (caller.clone(), exp.min(now + VERIFIED_FOR)));
        }
        Ok(caller)
    }

    /// The signature and claims check; the caller and the token's `exp`.
    async fn check(&self, token: &str) -> Result<(Caller, u64), AuthError> {
        let header = jsonwebtoken::decode_header(token)
            .map_err(|_| AuthError::Token("the bearer token is not a JWT (header.payload.signature)".to_owned()))?;
        if !ALGORITHMS.contains(&header.alg) {
            return Err(AuthError::Token(format!(
                "the token is signed with {:?}; this registry accepts RS256 and ES256",
                header.alg
            )));
        }
        let key = self.keys.find(header.kid.as_deref(), header.alg).await?;
        let mut validation = Validation::new(header.alg);
        validation.set_issuer(&[&self.config.issuer]);
        validation.set_audience(&[&self.config.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        validation.validate_nbf = true;
        validation.leeway = 30;
        let data = jsonwebtoken::decode::<Map<String, Value>>(token, &key, &validation)
            .map_err(|e| AuthError::Token(self.explain(e.kind())))?;
        let exp = data.claims.get("exp").and_then(Value::as_u64).unwrap_or_default();
        let mut caller = self.caller(&data.claims);
        caller.grants = self.visas.grants(&data.claims).await;
        Ok((caller, exp))
    }

    fn explain(&self, kind: &ErrorKind) -> String {
        match kind {
            ErrorKind::InvalidSignature => "the token's signature does not verify against this registry's keys".into(),
            ErrorKind::ExpiredSignature => "the token has expired".into(),
            ErrorKind::ImmatureSignature => "the token is not valid yet (nbf)".into(),
            ErrorKind::InvalidIssuer => format!("the token was not issued by {}", self.config.issuer),
            ErrorKind::InvalidAudience => {
                format!("the token is not meant for this registry (aud {})", self.config.audience)
            }
            ErrorKind::MissingRequiredClaim(claim) => format!("the token has no {claim} claim"),
            ErrorKind::InvalidAlgorithm => "the token's algorithm does not fit its key".into(),
            _ => "the token is malformed".into(),
        }
    }

    fn caller(&self, claims: &Map<String, Value>) -> Caller {
        let names = &self.config.claims;
        let providers =
            claim_values(claims, &names.provider_claim).iter().filter_map(|p| ProviderId::parse(p)).collect();
        let roles: HashSet<String> = claim_values(claims, &names.role_claim).into_iter().collect();
        Caller {
            subject: claims.get("sub").and_then(Value::as_str).unwrap_or_default().to_owned(),
            providers,
            researcher: roles.contains(&names.researcher_role),
            all_studies: roles.contains(&names.all_studies_role),
            operator: roles.contains(&names.operator_role),
            grants: Vec::new(),
        }
    }
}

/// Now, in Unix seconds: the clock tokens' `exp` and visas' grants are read against.
pub fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or_default()
}

/// The values of a claim: a string (split at spaces and commas) or an array of strings. `name`
/// is tried whole first (claim names may be URLs, with dots), then as a dotted path.
fn claim_values(claims: &Map<String, Value>, name: &str) -> Vec<String> {
    let value = claims.get(name).or_else(|| {
        let mut parts = name.split('.');
        let first = claims.get(parts.next()?)?;
        parts.try_fold(first, |v, part| v.get(part))
    });
    match value {
        Some(Value::String(s)) => s.split([' ', ',']).filter(|v| !v.is_empty()).map(str::to_owned).collect(),
        Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).map(str::to_owned).collect(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::time::Duration;

    use super::*;

    const ISSUER: &str = "https://login.example.eu/oidc/";
    const AUDIENCE: &str = "cireg";

    /// Roles in a nested claim, as Keycloak writes them.
    fn keycloak_like() -> Claims {
        Claims { role_claim: "realm_access.roles".into(), ..Claims::default() }
    }

    fn config(jwks: &std::path::Path) -> AuthConfig {
        AuthConfig {
            keys: KeySource::File(jwks.to_owned()),
            issuer: ISSUER.into(),
            audience: AUDIENCE.into(),
            claims: keycloak_like(),
            visa_issuers: Vec::new(),
        }
    }

    fn token() -> DevToken {
        DevToken {
            issuer: ISSUER.into(),
            audience: AUDIENCE.into(),
            subject: "alice@example.eu".into(),
            providers: vec!["hospital-a".into(), "hospital-b".into()],
            researcher: true,
            all_studies: false,
            operator: false,
            visas: Vec::new(),
            claims: keycloak_like(),
            lifetime: Duration::from_secs(300),
            not_before: None,
        }
    }

    #[tokio::test]
    async fn good_tokens_verify_and_bad_ones_say_why() {
        let dir = tempfile::tempdir().unwrap();
        let (key, created) = DevKey::load_or_create(&dir.path().join("key.pem")).unwrap();
        assert!(created);
        let jwks = dir.path().join("jwks.json");
        key.write_jwks(&jwks).unwrap();
        let verifier = Verifier::new(config(&jwks)).await.unwrap();

        let caller = verifier.verify(&key.mint(&token()).unwrap()).await.unwrap();
        assert_eq!(caller.subject, "alice@example.eu");
        assert_eq!(
            caller.providers,
            vec![ProviderId::parse("hospital-a").unwrap(), ProviderId::parse("hospital-b").unwrap()]
        );
        assert!(caller.researcher);
        assert!(!caller.operator, "a role the token does not hold");
        let operator = key.mint(&DevToken { researcher: false, operator: true, ..token() }).unwrap();
        let operator = verifier.verify(&operator).await.unwrap();
        assert!(operator.operator && !operator.researcher);

        let reason = |e: AuthError| match e {
            AuthError::Token(m) => m,
            other => panic!("{other}"),
        };
        let wrong_issuer = key.mint(&DevToken { issuer: "https://evil.example/".into(), ..token() }).unwrap();
        assert!(reason(verifier.verify(&wrong_issuer).await.unwrap_err()).contains("not issued by"));
        let wrong_audience = key.mint(&DevToken { audience: "other".into(), ..token() }).unwrap();
        assert!(reason(verifier.verify(&wrong_audience).await.unwrap_err()).contains("not meant for"));
        let (other_key, _) = DevKey::load_or_create(&dir.path().join("other.pem")).unwrap();
        // same kid, another key: the signature is what fails
        let forged = other_key.mint_with_kid(&token(), key.kid()).unwrap();
        assert!(reason(verifier.verify(&forged).await.unwrap_err()).contains("signature"));
        let unknown_kid = other_key.mint(&token()).unwrap();
        assert!(reason(verifier.verify(&unknown_kid).await.unwrap_err()).contains("key"));
        let expired = key.mint(&DevToken { lifetime: Duration::ZERO, not_before: None, ..token() }).unwrap();
        // exp = now, accepted within the leeway; a token that expired minutes ago is not
        assert!(verifier.verify(&expired).await.is_ok());
        let long_expired = key.mint_expired(&token(), Duration::from_secs(600)).unwrap();
        assert!(reason(verifier.verify(&long_expired).await.unwrap_err()).contains("expired"));
        let future = key.mint(&DevToken { not_before: Some(Duration::from_secs(600)), ..token() }).unwrap();
        assert!(reason(verifier.verify(&future).await.unwrap_err()).contains("not valid yet"));
        assert!(reason(verifier.verify("not-a-token").await.unwrap_err()).contains("not a JWT"));
        // a tampered payload (claims edited, signature kept)
        let good = key.mint(&token()).unwrap();
        let mut parts: Vec<&str> = good.split('.').collect();
        let other = key.mint(&DevToken { researcher: false, ..token() }).unwrap();
        parts[1] = other.split('.').nth(1).unwrap();
        let tampered = parts.join(".");
        assert!(reason(verifier.verify(&tampered).await.unwrap_err()).contains("signature"));
        // no error ever repeats the token
        for t in [&wrong_issuer, &forged, &long_expired, &tampered] {
            let message = reason(verifier.verify(t).await.unwrap_err());
            assert!(!message.contains(t.as_str()) && !message.contains(t.split('.').nth(1).unwrap()));
        }
    }

    #[tokio::test]
    async fn visas_of_trusted_issuers_grant_their_datasets_and_nothing_else_does() {
        let dir = tempfile::tempdir().unwrap();
        let (key, _) = DevKey::load_or_create(&dir.path().join("key.pem")).unwrap();
        let (dac, _) = DevKey::load_or_create(&dir.path().join("dac.pem")).unwrap();
        let (rogue, _) = DevKey::load_or_create(&dir.path().join("rogue.pem")).unwrap();
        let jwks = dir.path().join("jwks.json");
        key.write_jwks(&jwks).unwrap();
        let dac_jwks = dir.path().join("dac.json");
        dac.write_jwks(&dac_jwks).unwrap();
        let dac_iss = "https://dac.example.eu/";
        let issuer: VisaIssuer = format!("{dac_iss}={}", dac_jwks.display()).parse().unwrap();
        assert_eq!(issuer.issuer, dac_iss);
        let verifier = Verifier::new(AuthConfig { visa_issuers: vec![issuer], ..config(&jwks) }).await.unwrap();
        let visa = |n: &str| DevVisa {
            asserted_ago: Duration::from_secs(60),
            ..DevVisa::grant(
                dac_iss,
                "alice@example.eu",
                &format!("https://r.example/datasets/p/{n}"),
                "https://dac.example.eu/committee",
                Duration::from_secs(3600),
            )
        };
        let visas = vec![
            dac.mint_visa(&visa("granted")).unwrap(),
            // the same visa signed by a key the issuer does not have
            rogue.mint_visa_with_kid(&visa("forged"), dac.kid()).unwrap(),
            // an issuer not configured
            rogue.mint_visa(&DevVisa { issuer: "https://rogue.example/".into(), ..visa("untrusted") }).unwrap(),
            dac.mint_visa(&DevVisa { expired_ago: Some(Duration::from_secs(600)), ..visa("expired") }).unwrap(),
            dac.mint_visa(&DevVisa { kind: "AffiliationAndRole".into(), ..visa("affiliation") }).unwrap(),
            dac.mint_visa(&DevVisa { conditions: Some(serde_json::json!([[{"type": "x"}]])), ..visa("conditional") })
                .unwrap(),
            "not-a-jwt".into(),
        ];
        let passport = key.mint(&DevToken { visas, ..token() }).unwrap();
        let caller = verifier.verify(&passport).await.unwrap();
        let granted: Vec<&str> = caller.grants.iter().map(|g| g.dataset.as_str()).collect();
        assert_eq!(granted, ["https://r.example/datasets/p/granted"]);
        let g = &caller.grants[0];
        let now = unix_now();
        assert!(g.valid_at(now) && !g.valid_at(g.until) && !g.valid_at(g.from - 1));
        assert_eq!((g.issuer.as_str(), g.source.as_str()), (dac_iss, "https://dac.example.eu/committee"));
        // a visa of the token issuer itself is not trusted unless configured
        let own = key.mint_visa(&DevVisa { issuer: ISSUER.into(), ..visa("own") }).unwrap();
        let passport = key.mint(&DevToken { visas: vec![own], ..token() }).unwrap();
        assert!(verifier.verify(&passport).await.unwrap().grants.is_empty());
        assert!("no-equals-sign".parse::<VisaIssuer>().is_err());
    }

    #[test]
    fn claims_are_strings_arrays_or_dotted_paths() {
        let claims: Map<String, Value> = serde_json::from_str(
            r#"{"a": "x y,z", "b": ["p", 3, "q"], "realm_access": {"roles": ["r"]}, "https://x.eu/roles": "u"}"#,
        )
        .unwrap();
        assert_eq!(claim_values(&claims, "a"), ["x", "y", "z"]);
        assert_eq!(claim_values(&claims, "b"), ["p", "q"]);
        assert_eq!(claim_values(&claims, "realm_access.roles"), ["r"]);
        assert_eq!(claim_values(&claims, "https://x.eu/roles"), ["u"]);
        assert!(claim_values(&claims, "missing").is_empty());
    }
}
