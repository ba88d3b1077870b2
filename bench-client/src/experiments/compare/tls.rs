//! The TLS cells' certificate: a test CA and a server certificate for 127.0.0.1 it signed
//! (rcgen), made once per comparison as PEM files in the output directory's `tls/`
//! ([`TestPki::make`]). Gateways of TLS cells get `--tls-cert`/`--tls-key`
//! ([`TestPki::gateway_args`]); the client trusts the CA (`--ca`, [`TestPki::client`]).
//!
//! Depends on the plan and the engine's TLS config only.

use std::path::{Path, PathBuf};

use anyhow::Context as _;

use super::plan::Plan;
use crate::engine::config::TlsConfig;

/// The files of the test PKI (not Clone: dropping it removes the files).
#[derive(Debug)]
pub struct TestPki {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// The files go when the run does: the key is a throwaway, and a results folder that is
/// committed should not carry one.
impl Drop for TestPki {
    fn drop(&mut self) {
        for path in [&self.ca, &self.cert, &self.key] {
            let _ = std::fs::remove_file(path);
        }
        if let Some(dir) = self.key.parent() {
            let _ = std::fs::remove_dir(dir);
        }
    }
}

/// The name the certificate is for and the client checks (the gateways listen there).
pub const SERVER_NAME: &str = "127.0.0.1";

impl TestPki {
    /// Make a CA and a server certificate for [`SERVER_NAME`] and write them into `dir`.
    pub fn make(dir: &Path) -> anyhow::Result<TestPki> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let ca_key = rcgen::KeyPair::generate()?;
        let mut ca = rcgen::CertificateParams::new(Vec::<String>::new())?;
        ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(rcgen::DnType::CommonName, "bench-client compare test CA");
        let ca_cert = ca.self_signed(&ca_key)?;
        let key = rcgen::KeyPair::generate()?;
        let leaf = rcgen::CertificateParams::new(vec![SERVER_NAME.to_string()])?
            .signed_by(&key, &ca_cert, &ca_key)?;
        let pki = TestPki {
            ca: dir.join("ca.pem"),
            cert: dir.join("cert.pem"),
            key: dir.join("key.pem"),
        };
        for (path, pem) in [
            (&pki.ca, ca_cert.pem()),
            (&pki.cert, leaf.pem()),
            (&pki.key, key.serialize_pem()),
        ] {
            std::fs::write(path, pem).with_context(|| format!("writing {}", path.display()))?;
        }
        Ok(pki)
    }

    /// The gateway flags that serve the certificate.
    pub fn gateway_args(&self) -> Vec<String> {
        vec![
            "--tls-cert".into(),
            self.cert.display().to_string(),
            "--tls-key".into(),
            self.key.display().to_string(),
        ]
    }

    /// The client's TLS: trust the CA; `resume` as the cell asks.
    pub fn client(&self, resume: bool) -> TlsConfig {
        TlsConfig {
            server_name: SERVER_NAME.to_string(),
            ca: Some(self.ca.clone()),
            insecure: false,
            resume,
        }
    }
}

/// The test PKI in `out/tls/` when the plan has a TLS scenario.
pub fn pki_for(plan: &Plan, out: &Path) -> anyhow::Result<Option<TestPki>> {
    if plan.scenarios.iter().all(|s| s.tls.is_none()) {
        return Ok(None);
    }
    TestPki::make(&out.join("tls"))
        .map(Some)
        .context("making the TLS cells' test certificate")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn makes_pem_files_the_client_and_gateway_flags_point_at() {
        let dir = std::env::temp_dir().join(format!("compare-pki-{}", std::process::id()));
        let pki = TestPki::make(&dir).unwrap();
        for f in [&pki.ca, &pki.cert, &pki.key] {
            let pem = std::fs::read_to_string(f).unwrap();
            assert!(pem.starts_with("-----BEGIN "), "{}", f.display());
        }
        assert_eq!(pki.gateway_args()[1], pki.cert.display().to_string());
        let c = pki.client(false);
        assert_eq!(c.ca.as_deref(), Some(pki.ca.as_path()));
        assert!(!c.resume && !c.insecure);
        // Dropped with the run: no key left behind in a results folder.
        drop(pki);
        assert!(!dir.exists(), "{} left behind", dir.display());
    }
}
