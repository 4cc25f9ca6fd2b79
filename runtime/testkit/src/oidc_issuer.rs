//! `TestIssuer`: a local OpenID Connect issuer for tests of sign-in by OIDC. A loopback HTTP
//! server publishes a discovery document and a JWKS of keys generated in the test (ES256 and
//! RS256, with aws-lc-rs), and the test signs tokens with them (jsonwebtoken).
//!
//! What it does not exercise: a real identity provider's login, consent and device flows (the
//! server under test only ever sees the tokens they end with), and HTTPS (GRACE fetches keys over
//! plain HTTP from loopback only).

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

/// A key the test signs with, and its public half as a JWK.
#[derive(Clone)]
pub struct IssuerKey {
    /// Its `kid`.
    pub kid: String,
    /// Its algorithm.
    pub alg: Algorithm,
    encoding: EncodingKey,
    /// The public key as the JWKS lists it.
    pub jwk: Value,
}

impl IssuerKey {
    /// A new P-256 key for ES256.
    pub fn es256(kid: &str) -> IssuerKey {
        use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _};
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .unwrap_or_else(|e| panic!("cannot generate a P-256 key: {e}"));
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref())
            .unwrap_or_else(|e| panic!("cannot read the P-256 key: {e}"));
        // Uncompressed point: 0x04, then x and y, 32 bytes each.
        let point = pair.public_key().as_ref();
        let jwk = json!({
            "kty": "EC", "crv": "P-256", "use": "sig", "alg": "ES256", "kid": kid,
            "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
            "y": URL_SAFE_NO_PAD.encode(&point[33..65]),
        });
        IssuerKey {
            kid: kid.to_owned(),
            alg: Algorithm::ES256,
            encoding: EncodingKey::from_ec_der(pkcs8.as_ref()),
            jwk,
        }
    }

    /// A new 2048-bit RSA key for RS256.
    pub fn rs256(kid: &str) -> IssuerKey {
        use aws_lc_rs::encoding::AsDer as _;
        use aws_lc_rs::rsa::{KeyPair, KeySize};
        use aws_lc_rs::signature::KeyPair as _;
        let pair = KeyPair::generate(KeySize::Rsa2048)
            .unwrap_or_else(|e| panic!("cannot generate an RSA key: {e}"));
        let pkcs8 = pair
            .as_der()
            .unwrap_or_else(|e| panic!("cannot encode the RSA key: {e}"));
        let pem = format!(
            "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
            base64::engine::general_purpose::STANDARD.encode(pkcs8.as_ref())
        );
        let public = pair.public_key();
        let jwk = json!({
            "kty": "RSA", "use": "sig", "alg": "RS256", "kid": kid,
            "n": URL_SAFE_NO_PAD.encode(public.modulus().big_endian_without_leading_zero()),
            "e": URL_SAFE_NO_PAD.encode(public.exponent().big_endian_without_leading_zero()),
        });
        IssuerKey {
            kid: kid.to_owned(),
            alg: Algorithm::RS256,
            encoding: EncodingKey::from_rsa_pem(pem.as_bytes())
                .unwrap_or_else(|e| panic!("cannot read the RSA key: {e}")),
            jwk,
        }
    }
}

/// A loopback OIDC issuer: `/.well-known/openid-configuration` and `/jwks`.
pub struct TestIssuer {
    url: String,
    jwks: Arc<Mutex<String>>,
    jwks_requests: Arc<AtomicUsize>,
}

/// Seconds since the epoch.
pub fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl TestIssuer {
    /// Starts it on a free loopback port, publishing `keys`.
    pub fn start(keys: &[&IssuerKey]) -> TestIssuer {
        let listener = TcpListener::bind("127.0.0.1:0")
            .unwrap_or_else(|e| panic!("cannot bind a loopback port: {e}"));
        let port = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("no local address: {e}"))
            .port();
        let url = format!("http://127.0.0.1:{port}");
        let jwks = Arc::new(Mutex::new(String::new()));
        let jwks_requests = Arc::new(AtomicUsize::new(0));
        let issuer = TestIssuer {
            url: url.clone(),
            jwks: Arc::clone(&jwks),
            jwks_requests: Arc::clone(&jwks_requests),
        };
        issuer.publish(keys);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let Some(path) = request_path(&mut stream) else {
                    continue;
                };
                let (status, body) = match path.as_str() {
                    "/.well-known/openid-configuration" => (
                        "200 OK",
                        json!({ "issuer": url, "jwks_uri": format!("{url}/jwks") }).to_string(),
                    ),
                    "/jwks" => {
                        jwks_requests.fetch_add(1, Ordering::SeqCst);
                        let body = jwks.lock().unwrap_or_else(|e| e.into_inner()).clone();
                        ("200 OK", body)
                    }
                    _ => ("404 Not Found", "{}".to_owned()),
                };
                let response = format!(
                    "HTTP/1.1 {status}\r\ncontent-type: application/json\r\n\
                     content-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(response.as_bytes());
            }
        });
        issuer
    }

    /// Its issuer URL (`iss`), `http://127.0.0.1:<port>`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Its JWKS URL.
    pub fn jwks_url(&self) -> String {
        format!("{}/jwks", self.url)
    }

    /// Publishes exactly these keys from now on (a key rotation).
    pub fn publish(&self, keys: &[&IssuerKey]) {
        let set = json!({ "keys": keys.iter().map(|k| k.jwk.clone()).collect::<Vec<_>>() });
        self.publish_raw(set.to_string());
    }

    /// Publishes this body as the JWKS.
    pub fn publish_raw(&self, body: String) {
        *self.jwks.lock().unwrap_or_else(|e| e.into_inner()) = body;
    }

    /// How many times the JWKS was fetched.
    pub fn jwks_requests(&self) -> usize {
        self.jwks_requests.load(Ordering::SeqCst)
    }

    /// Claims of a token for `sub` and audience `aud`, valid for five minutes, granting
    /// `scope` (the OAuth `scope` claim, space-separated).
    pub fn claims(&self, sub: &str, aud: &str, scope: &str) -> Value {
        let now = now_secs();
        json!({
            "iss": self.url, "sub": sub, "aud": aud, "scope": scope,
            "iat": now, "nbf": now, "exp": now + 300,
        })
    }

    /// A token with these claims signed by `key`, naming its `kid`.
    pub fn sign(key: &IssuerKey, claims: &Value) -> String {
        let mut header = Header::new(key.alg);
        header.kid = Some(key.kid.clone());
        jsonwebtoken::encode(&header, claims, &key.encoding)
            .unwrap_or_else(|e| panic!("cannot sign a token: {e}"))
    }

    /// An unsigned token (`alg: none`) with these claims, naming `kid`.
    pub fn unsigned(kid: &str, claims: &Value) -> String {
        let header = json!({ "alg": "none", "typ": "JWT", "kid": kid });
        format!(
            "{}.{}.",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        )
    }
}

/// The path of one request (its headers read and ignored); `None` if the client went away.
fn request_path(stream: &mut TcpStream) -> Option<String> {
    let mut reader = BufReader::new(stream.try_clone().ok()?);
    let mut first = String::new();
    if reader.read_line(&mut first).ok()? == 0 {
        return None;
    }
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).ok()? == 0 || line.trim_end().is_empty() {
            break;
        }
    }
    first.split_whitespace().nth(1).map(str::to_owned)
}
