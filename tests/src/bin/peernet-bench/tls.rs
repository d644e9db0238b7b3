//! TLS material shared by the encrypted baselines: one self-signed
//! certificate for `localhost` (rcgen), which the client trusts as its only
//! root; rustls on the ring provider (the ring peernet-proto uses), TLS 1.3
//! only, no client authentication (as a user of these libraries would set
//! them up first).

use std::sync::Arc;

use rustls::crypto::ring::default_provider;
use rustls::pki_types::{CertificateDer, PrivatePkcs8KeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore, ServerConfig};

/// The name the certificate is issued for and the client asks for.
pub const SERVER_NAME: &str = "localhost";

/// A server and a client configuration that trust each other.
pub struct Tls {
    pub server: Arc<ServerConfig>,
    pub client: Arc<ClientConfig>,
}

impl Tls {
    /// A fresh self-signed certificate and both configurations around it.
    pub fn new() -> Tls {
        let ck = rcgen::generate_simple_self_signed(vec![SERVER_NAME.to_string()])
            .expect("self-signed certificate");
        let cert: CertificateDer<'static> = ck.cert.der().clone();
        let key = PrivatePkcs8KeyDer::from(ck.signing_key.serialize_der());
        let provider = Arc::new(default_provider());
        let server = ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .expect("TLS 1.3 on ring")
            .with_no_client_auth()
            .with_single_cert(vec![cert.clone()], key.into())
            .expect("server certificate");
        let mut roots = RootCertStore::empty();
        roots.add(cert).expect("trust the certificate");
        let client = ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .expect("TLS 1.3 on ring")
            .with_root_certificates(roots)
            .with_no_client_auth();
        Tls {
            server: Arc::new(server),
            client: Arc::new(client),
        }
    }

    /// The server's name as the client verifies it.
    pub fn server_name() -> ServerName<'static> {
        ServerName::try_from(SERVER_NAME).expect("valid DNS name")
    }
}
