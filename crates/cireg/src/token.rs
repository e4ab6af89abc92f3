//! `cireg token`: development bearer tokens, signed with a local key. Real deployments configure
//! the identity provider's keys (`serve --jwks https://…/jwks`) and never use this.

use std::{path::PathBuf, time::Duration};

use anyhow::Context;
use cireg_auth::{DevKey, DevToken};

#[derive(clap::Args)]
pub struct TokenArgs {
    /// The signing key (PKCS#8 PEM, P-256: it signs ES256; RSA keys are refused); a new one is made
    /// here when the file does not exist.
    #[arg(long, default_value = "cireg-dev-key.pem")]
    key: PathBuf,
    /// Also write the key's public JWKS here (for `cireg serve --jwks`).
    #[arg(long)]
    jwks: Option<PathBuf>,
    /// The token's issuer (must match `serve --token-issuer`).
    #[arg(long, env = "CIREG_TOKEN_ISSUER", default_value = "urn:cireg:dev-issuer")]
    issuer: String,
    /// The token's audience (must match `serve --token-audience`).
    #[arg(long, env = "CIREG_TOKEN_AUDIENCE", default_value = "cireg")]
    audience: String,
    /// The token's subject (who the caller is; the key of its rate limit).
    #[arg(long, default_value = "dev-user")]
    subject: String,
    /// A provider the token may publish for (repeat for several).
    #[arg(long = "provider")]
    providers: Vec<String>,
    /// Grant the researcher role (asks for access; reads the studies of the datasets it holds a
    /// permit or a visa for).
    #[arg(long)]
    researcher: bool,
    /// Grant the role that reads every study of the node.
    #[arg(long)]
    all_studies: bool,
    /// Put a GA4GH Passport visa in the token granting access to this dataset (its IRI; repeat
    /// for several), signed with the same key as issuer `--visa-issuer` (for `serve --visa-issuer
    /// ISSUER=JWKS` with this key's JWKS).
    #[arg(long = "visa", value_name = "DATASET_IRI")]
    visas: Vec<String>,
    /// The issuer of the visas of `--visa`.
    #[arg(long, default_value = DEV_VISA_ISSUER)]
    visa_issuer: String,
    /// Grant the operator role (backups of the node).
    #[arg(long)]
    operator: bool,
    #[command(flatten)]
    claims: ClaimArgs,
    /// How long the token is valid, in seconds.
    #[arg(long, default_value_t = 3600)]
    ttl: u64,
}

/// The visa issuer `cireg token --visa` names by default (and the demo trusts).
pub const DEV_VISA_ISSUER: &str = "urn:cireg:dev-visa-issuer";

/// Which claims say what a caller may do (the same for `serve` and `token`).
#[derive(clap::Args)]
pub struct ClaimArgs {
    /// The claim naming the providers a caller may publish for.
    #[arg(long, env = "CIREG_PROVIDER_CLAIM", default_value = cireg_auth::DEFAULT_PROVIDER_CLAIM)]
    provider_claim: String,
    /// The claim naming the caller's roles (a dotted path reaches into objects:
    /// `realm_access.roles`; LS-AAI: `eduperson_entitlement`).
    #[arg(long, env = "CIREG_ROLE_CLAIM", default_value = cireg_auth::DEFAULT_ROLE_CLAIM)]
    role_claim: String,
    /// The role (a value of the role claim) that lets a caller read study-level data.
    #[arg(long, env = "CIREG_RESEARCHER_ROLE", default_value = cireg_auth::DEFAULT_RESEARCHER_ROLE)]
    researcher_role: String,
    /// The role that lets a caller read every study of the node (e.g. a provider's own staff at
    /// its own node).
    #[arg(long, env = "CIREG_ALL_STUDIES_ROLE", default_value = cireg_auth::DEFAULT_ALL_STUDIES_ROLE)]
    all_studies_role: String,
    /// The role that lets a caller operate the node (ask it for a backup).
    #[arg(long, env = "CIREG_OPERATOR_ROLE", default_value = cireg_auth::DEFAULT_OPERATOR_ROLE)]
    operator_role: String,
}

impl ClaimArgs {
    pub fn claims(&self) -> cireg_auth::Claims {
        cireg_auth::Claims {
            provider_claim: self.provider_claim.clone(),
            role_claim: self.role_claim.clone(),
            researcher_role: self.researcher_role.clone(),
            all_studies_role: self.all_studies_role.clone(),
            operator_role: self.operator_role.clone(),
        }
    }
}

pub fn token(args: TokenArgs) -> anyhow::Result<()> {
    let (key, created) = DevKey::load_or_create(&args.key).map_err(anyhow::Error::msg)?;
    if created {
        eprintln!("made a new signing key {} (development only)", args.key.display());
    }
    if let Some(path) = &args.jwks {
        key.write_jwks(path).map_err(anyhow::Error::msg).context("writing the JWKS")?;
        eprintln!("wrote its public key to {} (cireg serve --jwks {})", path.display(), path.display());
    }
    let lifetime = Duration::from_secs(args.ttl);
    let visas = args
        .visas
        .iter()
        .map(|dataset| {
            let committee = "urn:cireg:dev-access-committee";
            let visa = cireg_auth::DevVisa::grant(&args.visa_issuer, &args.subject, dataset, committee, lifetime);
            key.mint_visa(&visa).map_err(anyhow::Error::msg)
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let token = DevToken {
        issuer: args.issuer,
        audience: args.audience,
        subject: args.subject,
        providers: args.providers,
        researcher: args.researcher,
        all_studies: args.all_studies,
        operator: args.operator,
        visas,
        claims: args.claims.claims(),
        lifetime,
        not_before: None,
    };
    println!("{}", key.mint(&token).map_err(anyhow::Error::msg)?);
    Ok(())
}
