//! Connecting to NATS: credentials (user and password, nkey, or a credentials file) and TLS.

use std::{path::PathBuf, time::Duration};

use anyhow::Context;

/// How to reach NATS.
#[derive(clap::Args, Clone, Debug, Default)]
pub struct NatsArgs {
    /// NATS user name (with --nats-password).
    #[arg(long, env = "CIREG_NATS_USER")]
    pub nats_user: Option<String>,
    /// NATS password; prefer the environment variable to the command line, where other users of
    /// the machine can see it.
    #[arg(long, env = "CIREG_NATS_PASSWORD", hide_env_values = true, requires = "nats_user")]
    pub nats_password: Option<String>,
    /// File holding an nkey seed (`SU…`) to authenticate with.
    #[arg(long, env = "CIREG_NATS_NKEY")]
    pub nats_nkey: Option<PathBuf>,
    /// NATS credentials file (user JWT and nkey seed, as `nsc` writes them).
    #[arg(long, env = "CIREG_NATS_CREDS")]
    pub nats_creds: Option<PathBuf>,
    /// CA certificate (PEM) that signed the NATS server's certificate.
    #[arg(long, env = "CIREG_NATS_TLS_CA")]
    pub nats_tls_ca: Option<PathBuf>,
    /// Client certificate (PEM), for NATS servers that verify their clients.
    #[arg(long, env = "CIREG_NATS_TLS_CERT", requires = "nats_tls_key")]
    pub nats_tls_cert: Option<PathBuf>,
    /// The client certificate's private key (PEM).
    #[arg(long, env = "CIREG_NATS_TLS_KEY", requires = "nats_tls_cert")]
    pub nats_tls_key: Option<PathBuf>,
    /// Refuse to talk to NATS without TLS (also implied by a tls:// URL).
    #[arg(long, env = "CIREG_NATS_TLS_REQUIRED")]
    pub nats_tls_required: bool,
}

impl NatsArgs {
    /// Connects to `url` as `name`. `inbox_prefix`: where replies come (a provider's NATS user
    /// may only receive replies under its own prefix, `_INBOX.<provider>`).
    pub async fn connect(
        &self,
        url: &str,
        name: &str,
        inbox_prefix: Option<String>,
    ) -> anyhow::Result<async_nats::Client> {
        let mut options = async_nats::ConnectOptions::new()
            .name(name)
            .retry_on_initial_connect()
            .connection_timeout(Duration::from_secs(5));
        if let (Some(user), Some(password)) = (&self.nats_user, &self.nats_password) {
            options = options.user_and_password(user.clone(), password.clone());
        }
        if let Some(path) = &self.nats_nkey {
            let seed =
                std::fs::read_to_string(path).with_context(|| format!("reading the nkey seed {}", path.display()))?;
            options = options.nkey(seed.trim().to_owned());
        }
        if let Some(path) = &self.nats_creds {
            options = options
                .credentials_file(path)
                .await
                .with_context(|| format!("reading the NATS credentials {}", path.display()))?;
        }
        if let Some(ca) = &self.nats_tls_ca {
            options = options.add_root_certificates(ca.clone());
        }
        if let (Some(cert), Some(key)) = (&self.nats_tls_cert, &self.nats_tls_key) {
            options = options.add_client_certificate(cert.clone(), key.clone());
        }
        if self.nats_tls_required || url.starts_with("tls://") {
            options = options.require_tls(true);
        }
        if let Some(prefix) = inbox_prefix {
            options = options.custom_inbox_prefix(prefix);
        }
        // a cluster's servers, comma-separated: the client starts with any that answers (it then
        // learns the others from the cluster, and moves to one when its server goes away)
        let servers: Vec<&str> = url.split(',').map(str::trim).filter(|s| !s.is_empty()).collect();
        options.connect(servers).await.with_context(|| format!("connecting to NATS at {}", redacted(url)))
    }
}

/// `url` (or a comma-separated list of them) with any password in it replaced, for messages and
/// logs.
pub fn redacted(url: &str) -> String {
    if url.contains(',') {
        return url.split(',').map(|u| redacted(u.trim())).collect::<Vec<_>>().join(",");
    }
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        Ok(_) => url.to_owned(),
        // unparsable: show the host part only, whatever precedes an '@' may be a secret
        Err(_) => url.rsplit('@').next().unwrap_or_default().to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_show() {
        assert_eq!(redacted("nats://cireg:s3cret@nats.example.eu:4222"), "nats://cireg:***@nats.example.eu:4222");
        assert_eq!(redacted("nats://127.0.0.1:4222"), "nats://127.0.0.1:4222");
        assert!(!redacted("nats://u:s3cret@[bad").contains("s3cret"));
        assert_eq!(redacted("nats://a:x@n1:4222, nats://a:y@n2:4222"), "nats://a:***@n1:4222,nats://a:***@n2:4222");
    }
}
