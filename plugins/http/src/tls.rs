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

#[cfg(test)]
mod tests {
    use super::*;

    fn ssl(dir: &std::path::Path, cert: &str, key: &str) -> SslConfig {
        std::fs::write(dir.join("cert.pem"), cert).expect("write");
        std::fs::write(dir.join("key.pem"), key).expect("write");
        SslConfig {
            cert: dir.join("cert.pem").display().to_string(),
            key: dir.join("key.pem").display().to_string(),
            ..SslConfig::default()
        }
    }

    #[test]
    fn a_matching_pair_loads_and_offers_h2() {
        let dir = tempfile::tempdir().expect("tempdir");
        let pair = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).expect("cert");
        let mut config = ssl(dir.path(), &pair.cert.pem(), &pair.key_pair.serialize_pem());
        assert!(acceptor(&config).is_ok());
        // Client certificates against a CA bundle.
        std::fs::write(dir.path().join("ca.pem"), pair.cert.pem()).expect("write");
        config.root_ca = dir.path().join("ca.pem").display().to_string();
        config.client_auth_type = "require_and_verify_client_cert".to_owned();
        assert!(acceptor(&config).is_ok());
    }

    #[test]
    fn mismatched_or_garbage_pem_is_an_error_naming_the_key() {
        let dir = tempfile::tempdir().expect("tempdir");
        let a = rcgen::generate_simple_self_signed(vec!["a".to_owned()]).expect("cert");
        let b = rcgen::generate_simple_self_signed(vec!["b".to_owned()]).expect("cert");
        let config = ssl(dir.path(), &a.cert.pem(), &b.key_pair.serialize_pem());
        assert!(acceptor(&config).is_err());
        let config = ssl(dir.path(), "not a pem", &a.key_pair.serialize_pem());
        let err = acceptor(&config).err().expect("garbage cert").to_string();
        assert!(err.contains("http.ssl.cert"), "{err}");
        let config = ssl(dir.path(), &a.cert.pem(), "nope");
        let err = acceptor(&config).err().expect("garbage key").to_string();
        assert!(err.contains("http.ssl.key"), "{err}");
    }
}
