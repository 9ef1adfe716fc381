//! The cluster CA and the certificates made from it, the admin kubeconfig and the join token.
//! Owned by the API work stream.
//!
//! Layout under `<data-dir>/tls/`: `ca.crt`/`ca.key` (made once, at first start, and kept: every other
//! credential chains to it), `server.crt`/`server.key` (the API server's serving certificate, re-issued at
//! every start because its names depend on flags), `admin.crt`/`admin.key` (CN=admin, O=system:masters, for
//! the kubeconfig), `kubelet-client.crt`/`.key` (what the API server presents to node agents when it proxies
//! logs and exec) and `node-<name>.crt`/`.key` (a node agent's serving certificate, also its client
//! certificate: CN `system:node:<name>`, O `system:nodes`, the identity NodeRestriction confines). A node's
//! kubeconfig is written to `<data-dir>/nodes/<name>/kubeconfig.yaml`. Keys are ECDSA P-256.

use std::io::Write as _;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use sha2::{Digest, Sha256};

/// Errors while making or loading the cluster's credentials.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("making a certificate: {0}")]
    Rcgen(#[from] rcgen::Error),
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> PkiError + '_ {
    move |source| PkiError::Io { path: path.to_path_buf(), source }
}

/// A certificate and its private key, both PEM.
#[derive(Debug, Clone)]
pub struct CertPair {
    pub cert_pem: String,
    pub key_pem: String,
}

/// The cluster CA: its PEM and the means to sign with it.
pub struct ClusterCa {
    /// PEM of the CA certificate (what clients trust, what `/cacerts` serves).
    pub cert_pem: String,
    key_pem: String,
}

impl std::fmt::Debug for ClusterCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterCa").field("cert_pem", &self.cert_pem).finish_non_exhaustive()
    }
}

/// The CA's parameters. They are rebuilt identically when the CA is loaded from disk, because rcgen's
/// issuer needs only the subject, key usages and key-identifier method besides the key.
fn ca_params() -> Result<CertificateParams, PkiError> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "flotilla-ca");
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    set_validity(&mut params, 20);
    Ok(params)
}

/// Validity from the start of last year to `years` later: generous about clock skew between machines.
fn set_validity(params: &mut CertificateParams, years: i32) {
    let year = i32::from(jiff::Zoned::now().year());
    params.not_before = rcgen::date_time_ymd(year - 1, 1, 1);
    params.not_after = rcgen::date_time_ymd(year + years, 1, 1);
}

impl ClusterCa {
    /// Loads the CA from `tls_dir`, making it first if it does not exist yet.
    pub fn load_or_create(tls_dir: &Path) -> Result<Self, PkiError> {
        std::fs::create_dir_all(tls_dir).map_err(io_err(tls_dir))?;
        let cert_path = tls_dir.join("ca.crt");
        let key_path = tls_dir.join("ca.key");
        if cert_path.exists() && key_path.exists() {
            let cert_pem = std::fs::read_to_string(&cert_path).map_err(io_err(&cert_path))?;
            let key_pem = std::fs::read_to_string(&key_path).map_err(io_err(&key_path))?;
            KeyPair::from_pem(&key_pem)
                .map_err(|err| PkiError::Invalid { path: key_path.clone(), message: err.to_string() })?;
            return Ok(Self { cert_pem, key_pem });
        }
        let key = KeyPair::generate()?;
        let cert = ca_params()?.self_signed(&key)?;
        let ca = Self { cert_pem: cert.pem(), key_pem: key.serialize_pem() };
        write_private(&key_path, &ca.key_pem)?;
        write_file(&cert_path, &ca.cert_pem)?;
        Ok(ca)
    }

    fn issuer(&self) -> Result<Issuer<'static, KeyPair>, PkiError> {
        Ok(Issuer::new(ca_params()?, KeyPair::from_pem(&self.key_pem)?))
    }

    /// The SHA-256 of the CA PEM, hex: what a k3s-style join token pins.
    pub fn hash_hex(&self) -> String {
        hex(&Sha256::digest(self.cert_pem.as_bytes()))
    }

    /// Issues a certificate for `common_name` (organisation `org`) with the given DNS names and IPs, for
    /// server and/or client authentication.
    pub fn issue(
        &self,
        common_name: &str,
        org: Option<&str>,
        dns_names: &[String],
        ips: &[IpAddr],
        server: bool,
        client: bool,
    ) -> Result<CertPair, PkiError> {
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, common_name);
        if let Some(org) = org {
            dn.push(DnType::OrganizationName, org);
        }
        params.distinguished_name = dn;
        for name in dns_names {
            params.subject_alt_names.push(SanType::DnsName(name.clone().try_into()?));
        }
        for ip in ips {
            params.subject_alt_names.push(SanType::IpAddress(*ip));
        }
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
        if server {
            params.extended_key_usages.push(ExtendedKeyUsagePurpose::ServerAuth);
        }
        if client {
            params.extended_key_usages.push(ExtendedKeyUsagePurpose::ClientAuth);
        }
        params.use_authority_key_identifier_extension = true;
        set_validity(&mut params, 10);
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &self.issuer()?)?;
        Ok(CertPair { cert_pem: cert.pem(), key_pem: key.serialize_pem() })
    }
}

/// Everything the server keeps under `<data-dir>/tls/` and beside it.
#[derive(Debug)]
pub struct ServerCredentials {
    pub ca: std::sync::Arc<ClusterCa>,
    pub server: CertPair,
    pub admin: CertPair,
    pub kubelet_client: CertPair,
    /// The secret part of the join token, also accepted as an admin bearer token.
    pub token_secret: String,
}

/// Loads or makes every credential the server needs and writes `<data-dir>/token`. `server_names` and
/// `server_ips` are the serving certificate's subject alternative names.
pub fn server_credentials(
    data_dir: &Path,
    server_names: &[String],
    server_ips: &[IpAddr],
) -> Result<ServerCredentials, PkiError> {
    let tls_dir = data_dir.join("tls");
    let ca = ClusterCa::load_or_create(&tls_dir)?;
    let server = ca.issue("kube-apiserver", None, server_names, server_ips, true, false)?;
    write_pair(&tls_dir, "server", &server)?;
    let admin =
        load_or_issue(&tls_dir, "admin", || ca.issue("system:admin", Some("system:masters"), &[], &[], false, true))?;
    let kubelet_client = load_or_issue(&tls_dir, "kubelet-client", || {
        ca.issue("system:apiserver", Some("system:masters"), &[], &[], false, true)
    })?;
    let token_path = data_dir.join("token");
    let expected_prefix = format!("K10{}", ca.hash_hex());
    let token_secret = match std::fs::read_to_string(&token_path) {
        Ok(text) => match text.trim().rsplit_once("::server:") {
            Some((prefix, secret)) if prefix == expected_prefix && !secret.is_empty() => secret.to_string(),
            _ => new_secret(),
        },
        Err(_) => new_secret(),
    };
    write_private(&token_path, &format!("{expected_prefix}::server:{token_secret}\n"))?;
    Ok(ServerCredentials { ca: std::sync::Arc::new(ca), server, admin, kubelet_client, token_secret })
}

/// Issues a node agent's certificate (serving on the kubelet port, and a client certificate too): SANs
/// the node IP, 127.0.0.1, the node name and localhost.
pub fn node_credentials(
    ca: &ClusterCa,
    data_dir: &Path,
    node_name: &str,
    node_ip: IpAddr,
) -> Result<CertPair, PkiError> {
    let mut ips = vec![node_ip];
    let loopback: IpAddr = [127, 0, 0, 1].into();
    if node_ip != loopback {
        ips.push(loopback);
    }
    let names = vec![node_name.to_string(), "localhost".to_string()];
    let pair = ca.issue(&format!("system:node:{node_name}"), Some("system:nodes"), &names, &ips, true, true)?;
    write_pair(&data_dir.join("tls"), &format!("node-{node_name}"), &pair)?;
    Ok(pair)
}

fn load_or_issue(
    tls_dir: &Path,
    name: &str,
    issue: impl FnOnce() -> Result<CertPair, PkiError>,
) -> Result<CertPair, PkiError> {
    let cert_path = tls_dir.join(format!("{name}.crt"));
    let key_path = tls_dir.join(format!("{name}.key"));
    if let (Ok(cert_pem), Ok(key_pem)) = (std::fs::read_to_string(&cert_path), std::fs::read_to_string(&key_path)) {
        return Ok(CertPair { cert_pem, key_pem });
    }
    let pair = issue()?;
    write_pair(tls_dir, name, &pair)?;
    Ok(pair)
}

fn write_pair(tls_dir: &Path, name: &str, pair: &CertPair) -> Result<(), PkiError> {
    write_private(&tls_dir.join(format!("{name}.key")), &pair.key_pem)?;
    write_file(&tls_dir.join(format!("{name}.crt")), &pair.cert_pem)
}

fn new_secret() -> String {
    let bytes: [u8; 16] = rand::random();
    hex(&bytes)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Writes a file atomically (temp file, fsync, rename).
pub fn write_file(path: &Path, contents: &str) -> Result<(), PkiError> {
    write_with_mode(path, contents, 0o644)
}

/// Writes a file readable only by its owner (keys, tokens, kubeconfigs).
pub fn write_private(path: &Path, contents: &str) -> Result<(), PkiError> {
    write_with_mode(path, contents, 0o600)
}

fn write_with_mode(path: &Path, contents: &str, mode: u32) -> Result<(), PkiError> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)
        .map_err(io_err(&tmp))?;
    file.write_all(contents.as_bytes()).map_err(io_err(&tmp))?;
    file.sync_all().map_err(io_err(&tmp))?;
    std::fs::rename(&tmp, path).map_err(io_err(path))
}

/// The admin kubeconfig: CA, admin client certificate and key embedded.
pub fn admin_kubeconfig(server_url: &str, ca_pem: &str, admin: &CertPair) -> String {
    kubeconfig(server_url, ca_pem, "admin", admin)
}

/// Where a node's kubeconfig is kept: `<data-dir>/nodes/<name>/kubeconfig.yaml`.
pub fn node_kubeconfig_path(data_dir: &Path, node_name: &str) -> PathBuf {
    data_dir.join("nodes").join(node_name).join("kubeconfig.yaml")
}

/// Issues node credentials for `node_name` (as [`node_credentials`]) and writes the node's kubeconfig
/// (user `system:node:<name>`, group `system:nodes`: what NodeRestriction confines to its own node) at
/// [`node_kubeconfig_path`]. Returns the credentials and the kubeconfig's path.
pub fn write_node_kubeconfig(
    ca: &ClusterCa,
    data_dir: &Path,
    server_url: &str,
    node_name: &str,
    node_ip: IpAddr,
) -> Result<(CertPair, PathBuf), PkiError> {
    let pair = node_credentials(ca, data_dir, node_name, node_ip)?;
    let path = node_kubeconfig_path(data_dir, node_name);
    let dir = path.parent().expect("the path has a parent");
    std::fs::create_dir_all(dir).map_err(io_err(dir))?;
    write_private(&path, &kubeconfig(server_url, &ca.cert_pem, &format!("system:node:{node_name}"), &pair))?;
    Ok((pair, path))
}

/// A kubeconfig for one user: CA, client certificate and key embedded; one cluster and context named
/// `flotilla`.
pub fn kubeconfig(server_url: &str, ca_pem: &str, user: &str, pair: &CertPair) -> String {
    use base64::Engine as _;
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s.as_bytes());
    format!(
        "apiVersion: v1
kind: Config
clusters:
- name: flotilla
  cluster:
    server: {server_url}
    certificate-authority-data: {ca}
users:
- name: {user}
  user:
    client-certificate-data: {cert}
    client-key-data: {key}
contexts:
- name: flotilla
  context:
    cluster: flotilla
    user: {user}
current-context: flotilla
preferences: {{}}
",
        ca = b64(ca_pem),
        cert = b64(&pair.cert_pem),
        key = b64(&pair.key_pem),
    )
}
