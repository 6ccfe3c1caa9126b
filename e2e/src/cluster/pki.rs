//! The cluster's certificates and the admin kubeconfig.
//!
//! One CA signs everything (as KWOK and kubeadm's simplest layouts do): the apiserver's serving certificate, an
//! admin client certificate in `system:masters` used by every component and by the harness, the front-proxy
//! client certificate the aggregator presents to extension API servers (our metrics adapter), and a separate key
//! pair for service-account tokens. All keys are ECDSA P-256 (rcgen's default), which kube-apiserver accepts for
//! serving, client and service-account keys. Files are written once per cluster directory and reused by `up`
//! after a crash, so a kubeconfig handed out earlier stays valid.

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose, SanType,
};

/// Why certificates could not be produced.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    /// Key or certificate generation failed.
    #[error("generating {what}")]
    Generate {
        /// Which file.
        what: &'static str,
        /// The cause.
        #[source]
        source: rcgen::Error,
    },
    /// A file could not be written or read.
    #[error("writing {path}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

/// Paths of every PKI file of a cluster.
#[derive(Debug, Clone)]
pub(crate) struct Pki {
    /// The directory.
    pub dir: PathBuf,
}

impl Pki {
    /// The PKI layout under `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// A file in the PKI directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    #[cfg(test)]
    /// CA certificate.
    pub(crate) fn ca_crt(&self) -> PathBuf {
        self.path("ca.crt")
    }

    /// True when every file exists (a previous `up` made them).
    pub fn exists(&self) -> bool {
        [
            "ca.crt",
            "ca.key",
            "apiserver.crt",
            "apiserver.key",
            "admin.crt",
            "admin.key",
            "front-proxy-client.crt",
            "front-proxy-client.key",
            "sa.key",
            "sa.pub",
        ]
        .iter()
        .all(|f| self.path(f).is_file())
    }

    /// Generates every certificate and key unless they already exist.
    pub fn ensure(&self) -> Result<(), PkiError> {
        if self.exists() {
            return Ok(());
        }
        std::fs::create_dir_all(&self.dir).map_err(|source| PkiError::Io {
            path: self.dir.clone(),
            source,
        })?;
        let generate = |what: &'static str| move |source| PkiError::Generate { what, source };

        let ca_key = KeyPair::generate().map_err(generate("ca.key"))?;
        let mut ca_params = CertificateParams::default();
        ca_params.distinguished_name = name("autoscale-harness-ca", None);
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca = CertifiedIssuer::self_signed(ca_params, ca_key).map_err(generate("ca.crt"))?;
        self.write("ca.crt", &ca.pem())?;
        self.write("ca.key", &ca.key().serialize_pem())?;

        let mut server = CertificateParams::default();
        server.distinguished_name = name("kube-apiserver", None);
        server.subject_alt_names = vec![
            SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)),
            SanType::IpAddress(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1))),
        ];
        for dns in [
            "localhost",
            "kubernetes",
            "kubernetes.default",
            "kubernetes.default.svc",
            "kubernetes.default.svc.cluster.local",
        ] {
            server.subject_alt_names.push(SanType::DnsName(
                dns.try_into().map_err(generate("apiserver SAN"))?,
            ));
        }
        server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        self.leaf("apiserver", server, &ca)?;

        let mut admin = CertificateParams::default();
        admin.distinguished_name = name("admin", Some("system:masters"));
        admin.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        self.leaf("admin", admin, &ca)?;

        let mut proxy = CertificateParams::default();
        proxy.distinguished_name = name("front-proxy-client", None);
        proxy.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        self.leaf("front-proxy-client", proxy, &ca)?;

        let sa = KeyPair::generate().map_err(generate("sa.key"))?;
        self.write("sa.key", &sa.serialize_pem())?;
        self.write("sa.pub", &sa.public_key_pem())?;
        Ok(())
    }

    fn leaf(
        &self,
        stem: &'static str,
        params: CertificateParams,
        ca: &CertifiedIssuer<'_, KeyPair>,
    ) -> Result<(), PkiError> {
        let key =
            KeyPair::generate().map_err(|source| PkiError::Generate { what: stem, source })?;
        let cert = params
            .signed_by(&key, ca)
            .map_err(|source| PkiError::Generate { what: stem, source })?;
        self.write(&format!("{stem}.crt"), &cert.pem())?;
        self.write(&format!("{stem}.key"), &key.serialize_pem())
    }

    fn write(&self, file: &str, contents: &str) -> Result<(), PkiError> {
        let path = self.path(file);
        std::fs::write(&path, contents).map_err(|source| PkiError::Io { path, source })
    }

    /// Writes a kubeconfig for `server` that authenticates with the admin certificate (embedded, so the file can
    /// be copied anywhere).
    pub(crate) fn write_kubeconfig(
        &self,
        path: &Path,
        server: &str,
        cluster_name: &str,
    ) -> Result<(), PkiError> {
        let read = |file: &str| {
            let path = self.path(file);
            std::fs::read(&path).map_err(|source| PkiError::Io { path, source })
        };
        let b64 = |bytes: Vec<u8>| base64_encode(&bytes);
        let yaml = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: {cluster_name}\n  cluster:\n    server: {server}\n    \
             certificate-authority-data: {ca}\nusers:\n- name: admin\n  user:\n    client-certificate-data: {cert}\n    \
             client-key-data: {key}\ncontexts:\n- name: {cluster_name}\n  context:\n    cluster: {cluster_name}\n    \
             user: admin\n    namespace: default\ncurrent-context: {cluster_name}\n",
            ca = b64(read("ca.crt")?),
            cert = b64(read("admin.crt")?),
            key = b64(read("admin.key")?),
        );
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|source| PkiError::Io {
                path: parent.to_path_buf(),
                source,
            })?;
        }
        std::fs::write(path, yaml).map_err(|source| PkiError::Io {
            path: path.to_path_buf(),
            source,
        })
    }
}

fn name(common_name: &str, organization: Option<&str>) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    if let Some(o) = organization {
        dn.push(DnType::OrganizationName, o);
    }
    dn
}

/// Standard base64 with padding (kubeconfig `*-data` fields).
fn base64_encode(bytes: &[u8]) -> String {
    const TABLE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = (u32::from(chunk[0]) << 16)
            | (u32::from(*chunk.get(1).unwrap_or(&0)) << 8)
            | u32::from(*chunk.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(TABLE[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc4648_vectors() {
        for (input, expected) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64_encode(input.as_bytes()), expected);
        }
    }

    #[test]
    fn pki_files_are_generated_once_and_kubeconfig_embeds_them() {
        let dir = std::env::temp_dir().join(format!("pki-test-{}", std::process::id()));
        let pki = Pki::new(&dir);
        pki.ensure().expect("generated");
        assert!(pki.exists());
        let ca_before = std::fs::read(pki.ca_crt()).expect("ca");
        pki.ensure().expect("kept");
        assert_eq!(
            std::fs::read(pki.ca_crt()).expect("ca"),
            ca_before,
            "reused, not regenerated"
        );
        let kubeconfig = dir.join("kubeconfig");
        pki.write_kubeconfig(&kubeconfig, "https://127.0.0.1:6443", "local")
            .expect("written");
        let text = std::fs::read_to_string(&kubeconfig).expect("read");
        assert!(text.contains("server: https://127.0.0.1:6443"));
        assert!(text.contains(&base64_encode(&ca_before)));
        let pem = std::fs::read_to_string(dir.join("admin.crt")).expect("admin");
        assert!(pem.starts_with("-----BEGIN CERTIFICATE-----"));
        std::fs::remove_dir_all(dir).ok();
    }
}
