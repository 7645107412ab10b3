//! rustls server configuration for `http.ssl`: certificate chain and key
//! from PEM files, ALPN `h2` + `http/1.1`, optional client certificates
//! verified against `root_ca`.

use std::sync::Arc;

use tokio_rustls::rustls::{self, pki_types, server::WebPkiClientVerifier, RootCertStore};
use tokio_rustls::TlsAcceptor;

use crate::config::SslConfig;
use pki_types::pem::PemObject;

/// Why TLS could not be set up (the messages name the key).
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A PEM file could not be read or parsed.
    #[error("`{key}` = {path}: {message}")]
    Pem {
        /// The config key.
        key: &'static str,
        /// The file.
        path: String,
        /// What went wrong.
        message: String,
    },
    /// rustls refused the configuration (e.g. key does not match the cert).
    #[error("http.ssl: {0}")]
    Rustls(#[from] rustls::Error),
    /// The client verifier could not be built.
    #[error("http.ssl.root_ca: {0}")]
    Verifier(String),
}

/// The acceptor for the HTTPS listener.
pub fn acceptor(ssl: &SslConfig) -> Result<TlsAcceptor, TlsError> {
    let pem = |key: &'static str, path: &str, e: pki_types::pem::Error| TlsError::Pem {
        key,
        path: path.to_owned(),
        message: e.to_string(),
    };
    let certs = pki_types::CertificateDer::pem_file_iter(&ssl.cert)
        .map_err(|e| pem("http.ssl.cert", &ssl.cert, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem("http.ssl.cert", &ssl.cert, e))?;
    if certs.is_empty() {
        return Err(TlsError::Pem {
            key: "http.ssl.cert",
            path: ssl.cert.clone(),
            message: "no certificate found".to_owned(),
        });
    }
    let key = pki_types::PrivateKeyDer::from_pem_file(&ssl.key)
        .map_err(|e| pem("http.ssl.key", &ssl.key, e))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()?;
    let wants_client = !ssl.root_ca.is_empty()
        && !matches!(
            ssl.client_auth_type.as_str(),
            "" | "no_client_cert" | "no_client_certs"
        );
    let builder = if wants_client {
        let mut roots = RootCertStore::empty();
        for cert in pki_types::CertificateDer::pem_file_iter(&ssl.root_ca)
            .map_err(|e| pem("http.ssl.root_ca", &ssl.root_ca, e))?
        {
            roots
                .add(cert.map_err(|e| pem("http.ssl.root_ca", &ssl.root_ca, e))?)
                .map_err(|e| TlsError::Verifier(e.to_string()))?;
        }
        let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
        let verifier = match ssl.client_auth_type.as_str() {
            "require_and_verify_client_cert" | "require_any_client_cert" => verifier,
            _ => verifier.allow_unauthenticated(),
        }
        .build()
        .map_err(|e| TlsError::Verifier(e.to_string()))?;
        builder.with_client_cert_verifier(verifier)
    } else {
        builder.with_no_client_auth()
    };
    let mut config = builder.with_single_cert(certs, key)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}
