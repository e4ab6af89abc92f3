//! GA4GH Passports (v1.2): a token's `ga4gh_passport_v1` claim lists visas, each a JWT signed by
//! its visa issuer. A `ControlledAccessGrants` visa from an issuer this registry trusts grants
//! access to the dataset its `value` names, from when the grant was `asserted` until the visa's
//! `exp`. Anything else grants nothing: a visa that does not verify, has expired, comes from an
//! issuer not configured, is of another type, or carries `conditions` (the specification lets a
//! clearinghouse use a visa only when it understands all of its conditions, and this one
//! evaluates none). A bad visa never fails the token that carries it: it is left out, and why is
//! logged (without the visa).

use jsonwebtoken::{Algorithm, Validation};
use serde_json::{Map, Value};
use tracing::debug;

use crate::{keys::Keys, unix_now, AuthError, KeySource, ALGORITHMS};

/// The claim of a passport in an access token.
pub const PASSPORT_CLAIM: &str = "ga4gh_passport_v1";
/// The claim of a visa's assertion in a visa JWT.
pub const VISA_CLAIM: &str = "ga4gh_visa_v1";
/// The one visa type that grants access to a dataset.
pub const CONTROLLED_ACCESS_GRANTS: &str = "ControlledAccessGrants";

/// A visa issuer the registry trusts: its `iss` and where its public keys are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VisaIssuer {
    pub issuer: String,
    pub keys: KeySource,
}

impl std::str::FromStr for VisaIssuer {
    type Err = String;

    /// `ISSUER=KEYS`: the issuer's `iss`, then its JWKS file or URL.
    fn from_str(s: &str) -> Result<Self, String> {
        // the issuer is a URL with its own `=`s seldom, the JWKS path never starts with one:
        // split at the last `=`
        let (issuer, keys) = s
            .rsplit_once('=')
            .ok_or_else(|| format!("{s:?}: give ISSUER=JWKS (the visa issuer's iss, then its JWKS file or URL)"))?;
        if issuer.is_empty() {
            return Err(format!("{s:?}: the issuer (before =) is empty"));
        }
        Ok(VisaIssuer { issuer: issuer.to_owned(), keys: keys.parse()? })
    }
}

/// Access to one dataset that a visa grants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// The dataset's IRI (the visa's `value`).
    pub dataset: String,
    /// From when (unix seconds: the visa's `asserted`).
    pub from: u64,
    /// Until when (unix seconds: the visa's `exp`).
    pub until: u64,
    /// The visa's issuer.
    pub issuer: String,
    /// Who granted it (the visa's `source`, e.g. a data access committee).
    pub source: String,
}

impl Grant {
    /// Whether it grants access at `now` (unix seconds).
    pub fn valid_at(&self, now: u64) -> bool {
        self.from <= now && now < self.until
    }
}

/// The trusted visa issuers with their keys.
pub(crate) struct VisaIssuers {
    issuers: Vec<(String, Keys)>,
}

impl VisaIssuers {
    pub(crate) async fn load(issuers: &[VisaIssuer]) -> Result<Self, String> {
        let mut loaded = Vec::new();
        for i in issuers {
            let keys = Keys::load(i.keys.clone()).await.map_err(|e| format!("visa issuer {}: {e}", i.issuer))?;
            loaded.push((i.issuer.clone(), keys));
        }
        Ok(VisaIssuers { issuers: loaded })
    }

    /// The grants of a token's passport claim (none when it has none).
    pub(crate) async fn grants(&self, claims: &Map<String, Value>) -> Vec<Grant> {
        let Some(visas) = claims.get(PASSPORT_CLAIM).and_then(Value::as_array) else { return Vec::new() };
        let mut out = Vec::new();
        for (i, visa) in visas.iter().enumerate() {
            let Some(visa) = visa.as_str() else {
                debug!(visa = i, "passport visa left out: not a JWT string");
                continue;
            };
            match self.grant(visa).await {
                Ok(grant) => out.push(grant),
                Err(why) => debug!(visa = i, %why, "passport visa left out"),
            }
        }
        out
    }

    /// The grant of one visa, or why it grants nothing.
    async fn grant(&self, visa: &str) -> Result<Grant, String> {
        let header = jsonwebtoken::decode_header(visa).map_err(|_| "not a JWT".to_owned())?;
        if !ALGORITHMS.contains(&header.alg) {
            return Err(format!("signed with {:?}", header.alg));
        }
        // the issuer is read before the signature is checked only to find the keys to check it with
        let unverified: Map<String, Value> =
            jsonwebtoken::dangerous::insecure_decode_claims(visa).map_err(|_| "unreadable claims".to_owned())?;
        let issuer = unverified.get("iss").and_then(Value::as_str).ok_or("no iss")?;
        let (issuer, keys) =
            self.issuers.iter().find(|(iss, _)| iss == issuer).ok_or_else(|| format!("untrusted issuer {issuer}"))?;
        let key = keys.find(header.kid.as_deref(), header.alg).await.map_err(|e| match e {
            AuthError::Token(m) | AuthError::Unavailable(m) => m,
        })?;
        let claims = decode(visa, &key, header.alg, issuer)?;
        let assertion = claims.get(VISA_CLAIM).and_then(Value::as_object).ok_or("no ga4gh_visa_v1 claim")?;
        let kind = assertion.get("type").and_then(Value::as_str).unwrap_or_default();
        if kind != CONTROLLED_ACCESS_GRANTS {
            return Err(format!("type {kind:?} grants no access"));
        }
        if assertion.get("conditions").is_some_and(|c| !c.is_null()) {
            return Err("carries conditions, which this registry does not evaluate".to_owned());
        }
        let dataset = assertion.get("value").and_then(Value::as_str).filter(|v| !v.is_empty()).ok_or("no value")?;
        let from = assertion.get("asserted").and_then(Value::as_u64).ok_or("no asserted time")?;
        let source = assertion.get("source").and_then(Value::as_str).ok_or("no source")?;
        let until = claims.get("exp").and_then(Value::as_u64).ok_or("no exp")?;
        if until <= unix_now() {
            return Err("expired".to_owned());
        }
        Ok(Grant { dataset: dataset.to_owned(), from, until, issuer: issuer.clone(), source: source.to_owned() })
    }
}

fn decode(
    visa: &str,
    key: &jsonwebtoken::DecodingKey,
    alg: Algorithm,
    issuer: &str,
) -> Result<Map<String, Value>, String> {
    let mut validation = Validation::new(alg);
    validation.set_issuer(&[issuer]);
    // a visa is not addressed to one service: it has no audience to check
    validation.validate_aud = false;
    validation.set_required_spec_claims(&["exp", "iss"]);
    validation.leeway = 30;
    jsonwebtoken::decode::<Map<String, Value>>(visa, key, &validation)
        .map(|data| data.claims)
        .map_err(|e| format!("does not verify: {:?}", e.kind()))
}
