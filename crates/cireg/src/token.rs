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
    /// Grant the researcher role (study-level data).
    #[arg(long)]
    researcher: bool,
    /// Grant the operator role (backups of the node).
    #[arg(long)]
    operator: bool,
    #[command(flatten)]
    claims: ClaimArgs,
    /// How long the token is valid, in seconds.
    #[arg(long, default_value_t = 3600)]
    ttl: u64,
}

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
    let token = DevToken {
        issuer: args.issuer,
        audience: args.audience,
        subject: args.subject,
        providers: args.providers,
        researcher: args.researcher,
        operator: args.operator,
        claims: args.claims.claims(),
        lifetime: Duration::from_secs(args.ttl),
        not_before: None,
    };
    println!("{}", key.mint(&token).map_err(anyhow::Error::msg)?);
    Ok(())
}
