//! Certificates from an ACME CA (RFC 8555) with the HTTP-01 challenge,
//! answered by the reverse proxy's HTTP listener.
//!
//! The HTTP client is ours rather than instant-acme's default one so that it
//! runs on the aws-lc-rs provider, can trust an extra root (a test CA such
//! as pebble, or a company CA such as step-ca), and has a request timeout.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::Request;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use instant_acme::{
    Account, AccountCredentials, AuthorizationStatus, BytesResponse, ChallengeType, HttpClient,
    Identifier, NewAccount, NewOrder, Order, OrderStatus,
};
use rustls::{ClientConfig, RootCertStore};
use tokio::io::AsyncWriteExt;
use tokio::time::Instant;

use crate::proxy::Http01Challenges;
use crate::tls::{self, CertPair, TlsError};

/// How an ACME CA is reached and which account is used there.
#[derive(Clone, Debug)]
pub struct AcmeOptions {
    /// Directory URL, e.g. `https://acme-v02.api.letsencrypt.org/directory`.
    pub directory_url: String,
    /// Registered as `mailto:` contact when the account is created.
    pub contact_email: Option<String>,
    /// PEM root(s) trusted for the directory's own HTTPS, besides the system roots.
    pub extra_root_pem: Option<String>,
    /// Account credentials (JSON, holds the account's private key): created
    /// with mode 0600 on first use, reused afterwards.
    pub account_file: PathBuf,
}

#[derive(thiserror::Error, Debug)]
pub enum AcmeError {
    #[error("{0:?} cannot be validated with HTTP-01 (a plain DNS name is needed)")]
    InvalidDomain(String),
    #[error("ACME HTTP client cannot be set up: {0}")]
    Client(String),
    #[error("ACME account file {path}: {source}")]
    AccountFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("ACME account file {path} holds no valid account credentials: {source}")]
    AccountFileFormat {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("ACME account file {path} belongs to directory {found}, not {expected}")]
    AccountDirectoryMismatch {
        path: PathBuf,
        found: String,
        expected: String,
    },
    #[error("ACME account: {0}")]
    Account(#[source] instant_acme::Error),
    #[error("ACME order: {0}")]
    Order(#[source] instant_acme::Error),
    #[error("ACME challenge: {0}")]
    Challenge(#[source] instant_acme::Error),
    #[error("ACME server offers no http-01 challenge for {0}")]
    NoHttp01Challenge(String),
    #[error("ACME validation of {domain} failed: {detail}")]
    ValidationFailed { domain: String, detail: String },
    #[error("ACME {step} did not complete within {secs} s")]
    Timeout { step: &'static str, secs: u64 },
    #[error("ACME finalize: certificate signing request cannot be built: {0}")]
    Csr(String),
    #[error("ACME finalize: {0}")]
    Finalize(#[source] instant_acme::Error),
    #[error("ACME certificate download: {0}")]
    Download(#[source] instant_acme::Error),
    #[error("ACME certificate download: the issued certificate is unusable: {0}")]
    Certificate(#[source] TlsError),
}

/// Limit for one HTTP exchange with the CA (response headers).
const HTTP_TIMEOUT: Duration = Duration::from_secs(30);
/// Limit for validation and for issuance, each.
const POLL_LIMIT: Duration = Duration::from_secs(60);
const POLL_FIRST_DELAY: Duration = Duration::from_millis(250);
const POLL_MAX_DELAY: Duration = Duration::from_secs(5);

/// Issues a certificate for `domain`: a new key, an order, the HTTP-01 key
/// authorization published in `challenges` (served by the proxy), polling
/// until the CA has validated, finalize with a CSR, download of the chain.
/// The published tokens are removed whatever the outcome, also when the
/// future is dropped.
pub async fn issue(
    opts: &AcmeOptions,
    domain: &str,
    challenges: &Http01Challenges,
) -> Result<CertPair, AcmeError> {
    let domain = checked_domain(domain)?;
    let http = AcmeHttp::new(opts.extra_root_pem.as_deref())?;
    let account = load_or_create_account(opts, &http).await?;
    tracing::info!(%domain, directory = %opts.directory_url, "requesting ACME certificate");

    let identifiers = [Identifier::Dns(domain.clone())];
    let new_order = NewOrder {
        identifiers: &identifiers,
    };
    let mut order = match account.new_order(&new_order).await {
        Ok(order) => order,
        // The CA forgot the account (pebble on restart, or a deactivated
        // account): register again once instead of failing forever.
        Err(e) if is_problem(&e, "accountDoesNotExist") => {
            tracing::warn!(directory = %opts.directory_url, "ACME account unknown to the CA, registering a new one");
            let account = create_account(opts, &http).await?;
            account
                .new_order(&new_order)
                .await
                .map_err(AcmeError::Order)?
        }
        Err(e) => return Err(AcmeError::Order(e)),
    };

    let mut published = PublishedTokens {
        challenges: challenges.clone(),
        tokens: Vec::new(),
    };
    let authorizations = order.authorizations().await.map_err(AcmeError::Order)?;
    for authz in &authorizations {
        match authz.status {
            // Reused authorization from an earlier order: nothing to prove.
            AuthorizationStatus::Valid => continue,
            AuthorizationStatus::Pending => {}
            other => {
                return Err(AcmeError::ValidationFailed {
                    domain,
                    detail: format!("authorization is {other:?}"),
                })
            }
        }
        let challenge = authz
            .challenges
            .iter()
            .find(|c| c.r#type == ChallengeType::Http01)
            .ok_or_else(|| AcmeError::NoHttp01Challenge(domain.clone()))?;
        let key_auth = order.key_authorization(challenge);
        published.publish(&challenge.token, key_auth.as_str());
        order
            .set_challenge_ready(&challenge.url)
            .await
            .map_err(AcmeError::Challenge)?;
    }

    wait_until_ready(&mut order, &domain).await?;

    let key = rcgen::KeyPair::generate().map_err(|e| AcmeError::Csr(e.to_string()))?;
    let csr = csr_der(&domain, &key)?;
    order.finalize(&csr).await.map_err(AcmeError::Finalize)?;
    let cert_pem = download(&mut order).await?;
    drop(published);

    let pair = CertPair {
        cert_pem,
        key_pem: key.serialize_pem(),
    };
    let info = tls::inspect(&pair, &domain).map_err(AcmeError::Certificate)?;
    tracing::info!(%domain, not_after = info.not_after, "ACME certificate issued");
    Ok(pair)
}

/// Removes published challenge tokens when dropped, so every way out of
/// [`issue`] (error, success, cancellation) cleans up.
struct PublishedTokens {
    challenges: Http01Challenges,
    tokens: Vec<String>,
}

impl PublishedTokens {
    fn publish(&mut self, token: &str, key_authorization: &str) {
        self.challenges.insert(token, key_authorization);
        self.tokens.push(token.to_owned());
    }
}

impl Drop for PublishedTokens {
    fn drop(&mut self) {
        for token in &self.tokens {
            self.challenges.remove(token);
        }
    }
}

fn checked_domain(domain: &str) -> Result<String, AcmeError> {
    let normalized = tls::normalize_domain(domain);
    let valid = !normalized.is_empty()
        && normalized.len() <= 253
        && normalized.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        })
        // An IPv4 address is not a DNS identifier.
        && normalized.parse::<std::net::Ipv4Addr>().is_err();
    if valid {
        Ok(normalized)
    } else {
        Err(AcmeError::InvalidDomain(domain.to_owned()))
    }
}

fn is_problem(error: &instant_acme::Error, kind: &str) -> bool {
    match error {
        instant_acme::Error::Api(problem) => {
            problem
                .r#type
                .as_deref()
                .and_then(|t| t.strip_prefix("urn:ietf:params:acme:error:"))
                == Some(kind)
        }
        _ => false,
    }
}

async fn wait_until_ready(order: &mut Order, domain: &str) -> Result<(), AcmeError> {
    let deadline = Instant::now() + POLL_LIMIT;
    let mut delay = POLL_FIRST_DELAY;
    loop {
        let status = order.refresh().await.map_err(AcmeError::Challenge)?.status;
        match status {
            OrderStatus::Ready => return Ok(()),
            OrderStatus::Invalid => return Err(validation_failure(order, domain).await),
            // Only reachable if the order was finalized by someone else;
            // without our CSR's key the certificate would be useless.
            OrderStatus::Valid => {
                return Err(AcmeError::ValidationFailed {
                    domain: domain.to_owned(),
                    detail: "order was finalized elsewhere".into(),
                })
            }
            OrderStatus::Pending | OrderStatus::Processing => {}
        }
        sleep_or_timeout(&mut delay, deadline, "challenge validation").await?;
    }
}

/// The CA's reason for an invalid order, taken from the failed challenge.
async fn validation_failure(order: &mut Order, domain: &str) -> AcmeError {
    let mut detail = order
        .state()
        .error
        .as_ref()
        .map(|problem| problem.to_string());
    if let Ok(authorizations) = order.authorizations().await {
        let failed = authorizations
            .iter()
            .flat_map(|a| a.challenges.iter())
            .find_map(|c| c.error.as_ref());
        if let Some(problem) = failed {
            detail = Some(problem.to_string());
        }
    }
    AcmeError::ValidationFailed {
        domain: domain.to_owned(),
        detail: detail.unwrap_or_else(|| "order became invalid".into()),
    }
}

async fn download(order: &mut Order) -> Result<String, AcmeError> {
    let deadline = Instant::now() + POLL_LIMIT;
    let mut delay = POLL_FIRST_DELAY;
    loop {
        if let Some(chain) = order.certificate().await.map_err(AcmeError::Download)? {
            return Ok(chain);
        }
        sleep_or_timeout(&mut delay, deadline, "certificate issuance").await?;
    }
}

async fn sleep_or_timeout(
    delay: &mut Duration,
    deadline: Instant,
    step: &'static str,
) -> Result<(), AcmeError> {
    if Instant::now() + *delay > deadline {
        return Err(AcmeError::Timeout {
            step,
            secs: POLL_LIMIT.as_secs(),
        });
    }
    tokio::time::sleep(*delay).await;
    *delay = (*delay * 2).min(POLL_MAX_DELAY);
    Ok(())
}

fn csr_der(domain: &str, key: &rcgen::KeyPair) -> Result<Vec<u8>, AcmeError> {
    let mut params = rcgen::CertificateParams::new(vec![domain.to_owned()])
        .map_err(|e| AcmeError::Csr(e.to_string()))?;
    // The CA takes the names from the SANs; rcgen's default CN
    // ("rcgen self signed cert") must not travel along.
    params.distinguished_name = rcgen::DistinguishedName::new();
    let csr = params
        .serialize_request(key)
        .map_err(|e| AcmeError::Csr(e.to_string()))?;
    Ok(csr.der().to_vec())
}

async fn load_or_create_account(opts: &AcmeOptions, http: &AcmeHttp) -> Result<Account, AcmeError> {
    let path = &opts.account_file;
    let bytes = match tokio::fs::read(path).await {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return create_account(opts, http).await;
        }
        Err(source) => {
            return Err(AcmeError::AccountFile {
                path: path.clone(),
                source,
            })
        }
    };
    let format_error = |source| AcmeError::AccountFileFormat {
        path: path.clone(),
        source,
    };
    // The credentials type is opaque; its `directory` field is read from
    // the JSON so that a file made for another CA is not silently used
    // against that other CA.
    let value: serde_json::Value = serde_json::from_slice(&bytes).map_err(format_error)?;
    if let Some(found) = value.get("directory").and_then(|d| d.as_str()) {
        if found != opts.directory_url {
            return Err(AcmeError::AccountDirectoryMismatch {
                path: path.clone(),
                found: found.to_owned(),
                expected: opts.directory_url.clone(),
            });
        }
    }
    let credentials: AccountCredentials = serde_json::from_value(value).map_err(format_error)?;
    Account::from_credentials_and_http(credentials, Box::new(http.clone()))
        .await
        .map_err(AcmeError::Account)
}

async fn create_account(opts: &AcmeOptions, http: &AcmeHttp) -> Result<Account, AcmeError> {
    let contact: Vec<String> = opts
        .contact_email
        .iter()
        .map(|email| format!("mailto:{email}"))
        .collect();
    let contact: Vec<&str> = contact.iter().map(String::as_str).collect();
    let (account, credentials) = Account::create_with_http(
        &NewAccount {
            contact: &contact,
            terms_of_service_agreed: true,
            only_return_existing: false,
        },
        &opts.directory_url,
        None,
        Box::new(http.clone()),
    )
    .await
    .map_err(AcmeError::Account)?;
    let json =
        serde_json::to_vec_pretty(&credentials).map_err(|source| AcmeError::AccountFileFormat {
            path: opts.account_file.clone(),
            source,
        })?;
    write_private_file(&opts.account_file, &json)
        .await
        .map_err(|source| AcmeError::AccountFile {
            path: opts.account_file.clone(),
            source,
        })?;
    tracing::info!(account = account.id(), file = %opts.account_file.display(), "ACME account registered");
    Ok(account)
}

/// Writes `bytes` to `path` with mode 0600, through a temporary file and a
/// rename so a crash never leaves half a key behind.
async fn write_private_file(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        tokio::fs::create_dir_all(dir).await?;
    }
    let mut tmp_name = path.as_os_str().to_owned();
    tmp_name.push(".tmp");
    let tmp = PathBuf::from(tmp_name);
    // A stale temp file from a crash may carry other permissions; mode()
    // only applies on creation.
    match tokio::fs::remove_file(&tmp).await {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let mut file = tokio::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .await?;
    file.write_all(bytes).await?;
    file.sync_all().await?;
    drop(file);
    tokio::fs::rename(&tmp, path).await
}

/// instant-acme's [`HttpClient`] over a hyper client that trusts the system
/// roots plus an optional extra root, with a per-request timeout.
#[derive(Clone)]
struct AcmeHttp {
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
}

impl AcmeHttp {
    fn new(extra_root_pem: Option<&str>) -> Result<Self, AcmeError> {
        let mut roots = RootCertStore::empty();
        let native = rustls_native_certs::load_native_certs();
        if !native.errors.is_empty() {
            tracing::debug!(errors = ?native.errors, "some system root certificates could not be loaded");
        }
        let (_added, _ignored) = roots.add_parsable_certificates(native.certs);
        if let Some(pem) = extra_root_pem {
            let extra = rustls_pemfile::certs(&mut pem.as_bytes())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| AcmeError::Client(format!("extra root PEM: {e}")))?;
            if extra.is_empty() {
                return Err(AcmeError::Client(
                    "extra root PEM holds no CERTIFICATE block".into(),
                ));
            }
            for cert in extra {
                roots
                    .add(cert)
                    .map_err(|e| AcmeError::Client(format!("extra root PEM: {e}")))?;
            }
        }
        if roots.is_empty() {
            return Err(AcmeError::Client(
                "no trusted root certificates (no system roots and no extra root)".into(),
            ));
        }
        let config = ClientConfig::builder_with_provider(tls::crypto_provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| AcmeError::Client(e.to_string()))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let mut http = HttpConnector::new();
        // The connector sees https:// URLs; TLS is layered on by hyper-rustls.
        http.enforce_http(false);
        http.set_connect_timeout(Some(Duration::from_secs(10)));
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(config)
            // RFC 8555 6.1: ACME is HTTPS only.
            .https_only()
            .enable_http1()
            .wrap_connector(http);
        Ok(Self {
            client: Client::builder(TokioExecutor::new()).build(https),
        })
    }
}

impl HttpClient for AcmeHttp {
    fn request(
        &self,
        req: Request<Full<Bytes>>,
    ) -> Pin<Box<dyn Future<Output = Result<BytesResponse, instant_acme::Error>> + Send>> {
        let response = self.client.request(req);
        Box::pin(async move {
            match tokio::time::timeout(HTTP_TIMEOUT, response).await {
                Ok(Ok(response)) => Ok(BytesResponse::from(response)),
                Ok(Err(e)) => Err(instant_acme::Error::Other(Box::new(e))),
                Err(_) => Err(instant_acme::Error::Str(
                    "ACME server did not answer within 30 s",
                )),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn domains_for_http01() {
        assert_eq!(checked_domain("Site.Test.").unwrap(), "site.test");
        assert!(checked_domain("*.site.test").is_err());
        assert!(checked_domain("").is_err());
        assert!(checked_domain("a..b").is_err());
        assert!(checked_domain("-a.b").is_err());
        assert!(checked_domain("127.0.0.1").is_err());
        assert!(checked_domain("a b.c").is_err());
    }

    #[tokio::test]
    async fn private_file_is_0600() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/account.json");
        write_private_file(&path, b"{}").await.unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        write_private_file(&path, b"{ }").await.unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"{ }");
    }
}
