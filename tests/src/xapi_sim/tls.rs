//! The simulator's certificate: self-signed, as xapi makes its own on first boot, served
//! over TLS 1.2 only, as xapi's stunnel does.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use xenapi::Fingerprint;

#[derive(Clone, Debug)]
pub struct SelfSignedCert {
    pub cert_pem: String,
    /// Kept out of Debug output by [`SelfSignedCert`]'s users; it is a test key.
    key_pem: String,
}

impl SelfSignedCert {
    /// A new certificate for these names (DNS names or IP addresses).
    pub fn generate(names: &[&str]) -> std::io::Result<SelfSignedCert> {
        let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let made = rcgen::generate_simple_self_signed(names).map_err(std::io::Error::other)?;
        Ok(SelfSignedCert {
            cert_pem: made.cert.pem(),
            key_pem: made.key_pair.serialize_pem(),
        })
    }

    /// The certificate kept in `dir` (`xapi-sim.pem`, `xapi-sim.key`), made there if absent,
    /// so a restarted simulator keeps its fingerprint.
    pub fn load_or_create(dir: &Path, names: &[&str]) -> std::io::Result<SelfSignedCert> {
        let (cert_path, key_path) = (dir.join("xapi-sim.pem"), dir.join("xapi-sim.key"));
        if let (Ok(cert_pem), Ok(key_pem)) = (
            std::fs::read_to_string(&cert_path),
            std::fs::read_to_string(&key_path),
        ) {
            let loaded = SelfSignedCert { cert_pem, key_pem };
            loaded.der()?;
            return Ok(loaded);
        }
        let made = SelfSignedCert::generate(names)?;
        std::fs::write(&cert_path, &made.cert_pem)?;
        std::fs::write(&key_path, &made.key_pem)?;
        Ok(made)
    }

    fn der(&self) -> std::io::Result<(CertificateDer<'static>, PrivateKeyDer<'static>)> {
        let bad = |e: rustls::pki_types::pem::Error| {
            std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string())
        };
        let cert = CertificateDer::from_pem_slice(self.cert_pem.as_bytes()).map_err(bad)?;
        let key = PrivateKeyDer::from_pem_slice(self.key_pem.as_bytes()).map_err(bad)?;
        Ok((cert, key))
    }

    /// What a client pins: the SHA-256 of the certificate's DER form.
    pub fn fingerprint(&self) -> std::io::Result<Fingerprint> {
        Ok(Fingerprint::of(self.der()?.0.as_ref()))
    }

    pub(crate) fn acceptor(&self) -> std::io::Result<tokio_rustls::TlsAcceptor> {
        let (cert, key) = self.der()?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS12])
            .map_err(std::io::Error::other)?
            .with_no_client_auth()
            .with_single_cert(vec![cert], key)
            .map_err(std::io::Error::other)?;
        Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
    }
}
