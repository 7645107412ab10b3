//! The `http` section, with RoadRunner's keys and (code, not docs) defaults.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use rr_config::ConfigError;
use rr_pool::PoolConfig;
use serde::Deserialize;

/// `max_request_size` used when the key is 0 or absent, in MB (RoadRunner
/// substitutes 1000 although its docs say "0 = no limit").
pub const DEFAULT_MAX_REQUEST_SIZE_MB: u64 = 1000;

/// Middleware names RoadRunner knows; others are only warned about.
pub const KNOWN_MIDDLEWARE: &[&str] = &[
    "headers",
    "gzip",
    "static",
    "sendfile",
    "http_metrics",
    "proxy_ip_parser",
    "otel",
];

/// The `http` section.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct HttpConfig {
    /// `host:port` of the plain listener; empty = none.
    pub address: String,
    /// The plugin's worker pool.
    pub pool: PoolConfig,
    /// Body limit in MB; 0 means [`DEFAULT_MAX_REQUEST_SIZE_MB`].
    pub max_request_size: u64,
    /// Never parse urlencoded/multipart bodies; pass the bytes.
    pub raw_body: bool,
    /// Status for server-side failures (worker error, no worker, crash).
    pub internal_error_code: u16,
    /// Log every request at info level with the full access-log fields.
    pub access_logs: bool,
    /// CIDRs whose forwarding headers `proxy_ip_parser` trusts.
    pub trusted_subnets: Vec<String>,
    /// Headers `proxy_ip_parser` reads, in order (empty = built-in chain).
    pub trusted_headers: Vec<String>,
    /// Multipart upload handling.
    pub uploads: UploadsConfig,
    /// The `headers` middleware.
    pub headers: Option<HeadersConfig>,
    /// The `static` middleware.
    #[serde(rename = "static")]
    pub static_files: Option<StaticConfig>,
    /// HTTPS listener.
    pub ssl: Option<SslConfig>,
    /// HTTP/2 options.
    pub http2: Http2Config,
    /// FastCGI listener (not supported; only checked).
    pub fcgi: Option<FcgiConfig>,
    /// Middleware names, applied as RoadRunner v5 does: the last listed runs first.
    pub middleware: Vec<String>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            address: String::new(),
            pool: PoolConfig::default(),
            max_request_size: 0,
            raw_body: false,
            internal_error_code: 500,
            access_logs: false,
            trusted_subnets: Vec::new(),
            trusted_headers: Vec::new(),
            uploads: UploadsConfig::default(),
            headers: None,
            static_files: None,
            ssl: None,
            http2: Http2Config::default(),
            fcgi: None,
            middleware: Vec::new(),
        }
    }
}

/// `http.uploads`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct UploadsConfig {
    /// Directory for temp files; empty = the OS temp dir.
    pub dir: String,
    /// Extensions (with the dot) refused with error 8.
    pub forbid: Vec<String>,
    /// When non-empty, only these extensions are accepted.
    pub allow: Vec<String>,
}

/// `http.headers`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct HeadersConfig {
    /// Added to every request before PHP sees it.
    pub request: BTreeMap<String, String>,
    /// Set on every response.
    pub response: BTreeMap<String, String>,
    /// CORS handling.
    pub cors: Option<CorsConfig>,
}

/// `http.headers.cors`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct CorsConfig {
    /// Comma-separated origins, `*` for any; empty = any.
    pub allowed_origin: String,
    /// A regular expression for origins; when set, `allowed_origin` is
    /// ignored (rs/cors' `AllowOriginFunc`).
    pub allowed_origin_regex: String,
    /// `allowed_origin_regex`, compiled by [`HttpConfig::validate`].
    #[serde(skip)]
    pub origin_regex: Option<regex::Regex>,
    /// Comma-separated request headers allowed in preflights, `*` for any;
    /// empty = `Origin, Accept, Content-Type, X-Requested-With`.
    pub allowed_headers: String,
    /// Comma-separated methods allowed in preflights.
    pub allowed_methods: String,
    /// Sends `Access-Control-Allow-Credentials: true`.
    pub allow_credentials: Option<bool>,
    /// Comma-separated response headers exposed to scripts.
    pub exposed_headers: String,
    /// Preflight cache lifetime in seconds.
    pub max_age: u64,
    /// Status of a successful preflight.
    pub options_success_status: u16,
}

impl Default for CorsConfig {
    fn default() -> Self {
        CorsConfig {
            allowed_origin: String::new(),
            allowed_origin_regex: String::new(),
            origin_regex: None,
            allowed_headers: String::new(),
            allowed_methods: String::new(),
            allow_credentials: None,
            exposed_headers: String::new(),
            max_age: 0,
            options_success_status: 200,
        }
    }
}

/// `http.static`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct StaticConfig {
    /// Root directory.
    pub dir: String,
    /// Extensions never served (the request goes to PHP).
    pub forbid: Vec<String>,
    /// When non-empty, only these extensions are served.
    pub allow: Vec<String>,
    /// Send an `ETag`.
    pub calculate_etag: bool,
    /// Weak ETag from size and mtime instead of a content checksum.
    pub weak: bool,
    /// Headers added to the request (kept for compatibility).
    pub request: BTreeMap<String, String>,
    /// Headers set on every static response.
    pub response: BTreeMap<String, String>,
}

impl Default for StaticConfig {
    fn default() -> Self {
        StaticConfig {
            dir: ".".to_owned(),
            forbid: Vec::new(),
            allow: Vec::new(),
            calculate_etag: false,
            weak: false,
            request: BTreeMap::new(),
            response: BTreeMap::new(),
        }
    }
}

/// `http.ssl`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct SslConfig {
    /// `host:port` of the HTTPS listener.
    pub address: String,
    /// Redirect plain HTTP to HTTPS (308) with HSTS.
    pub redirect: bool,
    /// PEM certificate chain.
    pub cert: String,
    /// PEM private key.
    pub key: String,
    /// PEM CA bundle for client certificates.
    pub root_ca: String,
    /// Client certificate policy when `root_ca` is set.
    pub client_auth_type: String,
    /// ACME (not supported; only checked).
    pub acme: Option<serde_json::Value>,
}

impl Default for SslConfig {
    fn default() -> Self {
        SslConfig {
            address: "127.0.0.1:443".to_owned(),
            redirect: false,
            cert: String::new(),
            key: String::new(),
            root_ca: String::new(),
            client_auth_type: "no_client_cert".to_owned(),
            acme: None,
        }
    }
}

/// `http.http2`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct Http2Config {
    /// Cleartext HTTP/2 (prior knowledge) on `address`.
    pub h2c: bool,
    /// Streams per connection.
    pub max_concurrent_streams: u32,
}

impl Default for Http2Config {
    fn default() -> Self {
        Http2Config {
            h2c: false,
            max_concurrent_streams: 128,
        }
    }
}

/// `http.fcgi`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct FcgiConfig {
    /// `tcp://host:port` or `unix://path`.
    pub address: String,
}

/// A parsed `trusted_subnets` entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subnet {
    /// Network address.
    pub addr: IpAddr,
    /// Prefix length.
    pub prefix: u8,
}

impl Subnet {
    /// Parses `10.0.0.0/8` or `::1/128`.
    pub fn parse(text: &str) -> Option<Subnet> {
        let (addr, prefix) = text.trim().split_once('/')?;
        let addr: IpAddr = addr.parse().ok()?;
        let prefix: u8 = prefix.parse().ok()?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        (prefix <= max).then_some(Subnet { addr, prefix })
    }

    /// Whether `ip` is inside (an IPv4-mapped IPv6 address counts as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// The section after defaults and checks, ready to serve.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The section as written (with defaults).
    pub raw: HttpConfig,
    /// Body limit in bytes.
    pub max_request_bytes: u64,
    /// Upload directory, absolute.
    pub uploads_dir: PathBuf,
    /// Lower-cased forbidden upload extensions.
    pub uploads_forbid: Vec<String>,
    /// Lower-cased allowed upload extensions.
    pub uploads_allow: Vec<String>,
    /// Parsed trusted subnets.
    pub trusted_subnets: Vec<Subnet>,
    /// TLS, when `ssl` has a cert or key.
    pub tls: Option<SslConfig>,
    /// uid and gid of `server.user`: upload temp files are handed to the
    /// user the workers run as, or PHP could not read them.
    pub upload_owner: Option<(u32, u32)>,
}

/// Normalises a Go-style listen address (`:8080` = every interface).
pub fn listen_address(address: &str) -> String {
    if address.starts_with(':') {
        format!("0.0.0.0{address}")
    } else {
        address.to_owned()
    }
}

fn lower(list: &[String]) -> Vec<String> {
    list.iter()
        .filter(|e| !e.is_empty())
        .map(|e| e.to_lowercase())
        .collect()
}

impl HttpConfig {
    /// Applies defaults and checks the section; errors name the key.
    pub fn validate(mut self) -> Result<Settings, ConfigError> {
        if self.max_request_size == 0 {
            self.max_request_size = DEFAULT_MAX_REQUEST_SIZE_MB;
        }
        if self.internal_error_code == 0 {
            self.internal_error_code = 500;
        }
        if !(100..=599).contains(&self.internal_error_code) {
            return Err(ConfigError::invalid(
                "http.internal_error_code",
                format!("{} is not an HTTP status code", self.internal_error_code),
            ));
        }
        if !self.address.is_empty() && !self.address.contains(':') {
            return Err(ConfigError::invalid(
                "http.address",
                "malformed http server address",
            ));
        }
        let tls = self
            .ssl
            .clone()
            .filter(|s| !s.cert.is_empty() || !s.key.is_empty() || s.acme.is_some());
        if let Some(ssl) = &tls {
            if ssl.acme.is_some() {
                return Err(ConfigError::invalid(
                    "http.ssl.acme",
                    "ACME certificates are not supported by rr; provide ssl.cert and ssl.key",
                ));
            }
            if ssl.address.is_empty() || !ssl.address.contains(':') {
                return Err(ConfigError::invalid(
                    "http.ssl.address",
                    "malformed https server address",
                ));
            }
            check_file("http.ssl.key", "key", &ssl.key)?;
            check_file("http.ssl.cert", "cert", &ssl.cert)?;
            if !ssl.root_ca.is_empty() {
                check_file("http.ssl.root_ca", "root ca", &ssl.root_ca)?;
            }
            if !matches!(
                ssl.client_auth_type.as_str(),
                "" | "no_client_cert"
                    | "no_client_certs"
                    | "request_client_cert"
                    | "require_any_client_cert"
                    | "verify_client_cert_if_given"
                    | "require_and_verify_client_cert"
            ) {
                return Err(ConfigError::invalid(
                    "http.ssl.client_auth_type",
                    format!("unknown client auth type '{}'", ssl.client_auth_type),
                ));
            }
        }
        if let Some(cors) = self.headers.as_mut().and_then(|h| h.cors.as_mut()) {
            if !cors.allowed_origin_regex.is_empty() {
                cors.origin_regex =
                    Some(regex::Regex::new(&cors.allowed_origin_regex).map_err(|e| {
                        ConfigError::invalid(
                            "http.headers.cors.allowed_origin_regex",
                            e.to_string(),
                        )
                    })?);
            }
        }
        let fcgi = self.fcgi.as_ref().is_some_and(|f| !f.address.is_empty());
        if self.address.is_empty() && tls.is_none() {
            return Err(if fcgi {
                ConfigError::invalid("http.fcgi.address", "FastCGI is not supported by rr")
            } else {
                ConfigError::invalid(
                    "http",
                    "unable to run http service, no method has been specified (http, https, http/2 or FastCGI)",
                )
            });
        }
        if self.ssl.as_ref().is_some_and(|s| s.redirect) && self.address.is_empty() {
            return Err(ConfigError::missing(
                "http.address",
                "ssl.redirect needs a plain http address to redirect from",
            ));
        }
        let trusted_subnets = self
            .trusted_subnets
            .iter()
            .enumerate()
            .map(|(i, s)| {
                Subnet::parse(s).ok_or_else(|| {
                    ConfigError::invalid(
                        format!("http.trusted_subnets[{i}]"),
                        format!("invalid CIDR address: {s}"),
                    )
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        if let Some(files) = &self.static_files {
            let dir = Path::new(&files.dir);
            if !dir.is_dir() {
                return Err(ConfigError::invalid(
                    "http.static.dir",
                    format!("root directory '{}' does not exists", files.dir),
                ));
            }
        }
        let uploads_dir = if self.uploads.dir.is_empty() {
            std::env::temp_dir()
        } else {
            std::path::absolute(&self.uploads.dir).map_err(|e| {
                ConfigError::invalid("http.uploads.dir", format!("{}: {e}", self.uploads.dir))
            })?
        };
        Ok(Settings {
            max_request_bytes: self.max_request_size.saturating_mul(1024 * 1024),
            uploads_forbid: lower(&self.uploads.forbid),
            uploads_allow: lower(&self.uploads.allow),
            uploads_dir,
            trusted_subnets,
            tls,
            upload_owner: None,
            raw: self,
        })
    }
}

fn check_file(key: &str, what: &str, path: &str) -> Result<(), ConfigError> {
    if path.is_empty() {
        return Err(ConfigError::missing(
            key,
            format!("{what} file is required"),
        ));
    }
    if !Path::new(path).exists() {
        return Err(ConfigError::invalid(
            key,
            format!("{what} file '{path}' does not exists"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(yaml: &str) -> Result<Settings, ConfigError> {
        let config: HttpConfig =
            rr_config::Config::from_yaml_str_with_env(yaml, &[], &|_| None)?.section("http")?;
        config.validate()
    }

    #[test]
    fn defaults_match_roadrunner() {
        let s = settings("version: '3'\nhttp:\n  address: 127.0.0.1:8080\n").expect("valid");
        assert_eq!(s.max_request_bytes, 1000 * 1024 * 1024);
        assert_eq!(s.raw.internal_error_code, 500);
        assert!(!s.raw.raw_body && !s.raw.access_logs);
        assert_eq!(s.raw.http2.max_concurrent_streams, 128);
        assert!(!s.raw.http2.h2c);
        assert!(s.tls.is_none());
        assert_eq!(s.uploads_dir, std::env::temp_dir());
        assert_eq!(SslConfig::default().address, "127.0.0.1:443");
    }

    #[test]
    fn errors_name_the_key() {
        let cases = [
            ("http:\n  address: 8080\n", "`http.address`", "malformed http server address"),
            ("http:\n  max_request_size: 1\n", "`http`", "no method has been specified"),
            ("http:\n  address: :1\n  trusted_subnets: [10.0.0.0/8, nope]\n", "`http.trusted_subnets[1]`", "invalid CIDR"),
            ("http:\n  address: :1\n  ssl:\n    cert: /nonexistent.crt\n    key: /nonexistent.key\n", "`http.ssl.key`", "key file '/nonexistent.key' does not exists"),
            ("http:\n  address: :1\n  static:\n    dir: /nonexistent-dir\n", "`http.static.dir`", "root directory '/nonexistent-dir' does not exists"),
            ("http:\n  address: :1\n  internal_error_code: 42\n", "`http.internal_error_code`", "not an HTTP status"),
            ("http:\n  address: :1\n  pool:\n    num_workers: x\n", "`http.pool.num_workers`", ""),
            ("http:\n  fcgi:\n    address: tcp://127.0.0.1:9000\n", "`http.fcgi.address`", "FastCGI"),
            ("http:\n  address: :1\n  headers:\n    cors:\n      allowed_origin_regex: '(['\n", "`http.headers.cors.allowed_origin_regex`", "regex"),
        ];
        for (yaml, key, text) in cases {
            let err = settings(&format!("version: '3'\n{yaml}")).expect_err(yaml);
            let message = err.to_string();
            assert!(
                message.contains(key) && message.contains(text),
                "{yaml}: {message}"
            );
        }
    }

    #[test]
    fn cert_file_must_exist() {
        let dir = tempfile::tempdir().expect("tempdir");
        let key = dir.path().join("k.pem");
        std::fs::write(&key, "x").expect("write");
        let yaml = format!(
            "version: '3'\nhttp:\n  ssl:\n    address: 127.0.0.1:8443\n    key: {}\n    cert: {}/c.pem\n",
            key.display(),
            dir.path().display()
        );
        let err = settings(&yaml).expect_err("cert missing").to_string();
        assert!(
            err.contains("`http.ssl.cert`") && err.contains("cert file"),
            "{err}"
        );
    }

    #[test]
    fn subnets_match_v4_v6_and_mapped() {
        let net = Subnet::parse("10.0.0.0/8").expect("cidr");
        assert!(net.contains("10.1.2.3".parse().expect("ip")));
        assert!(net.contains("::ffff:10.1.2.3".parse().expect("ip")));
        assert!(!net.contains("11.0.0.1".parse().expect("ip")));
        let v6 = Subnet::parse("fd00::/8").expect("cidr");
        assert!(v6.contains("fd12::1".parse().expect("ip")));
        assert!(Subnet::parse("0.0.0.0/0")
            .expect("cidr")
            .contains("1.2.3.4".parse().expect("ip")));
        assert!(Subnet::parse("10.0.0.0/33").is_none());
    }
}
