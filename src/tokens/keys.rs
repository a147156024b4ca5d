//! Signing keys: generating them, reading an operator's PEM file, and their public JWK, whose
//! RFC 7638 thumbprint is the key id.

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair};
use chrono::{DateTime, Utc};
use jsonwebtoken::jwk::{Jwk, PublicKeyUse, ThumbprintHash};
use jsonwebtoken::{Algorithm, EncodingKey};
use secrecy::ExposeSecret;

use crate::config::SigningAlgorithm;
use crate::store::StoredSigningKey;

/// Why a key cannot be made or read.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The system's random generator failed.
    #[error("could not generate a key")]
    Generate,
    /// The PEM is not an unencrypted PKCS#8 Ed25519 or P-256 private key.
    #[error("not an unencrypted PKCS#8 Ed25519 or P-256 private key in PEM")]
    Unsupported,
    /// The public half could not be derived.
    #[error("could not derive the public key: {0}")]
    Public(#[from] jsonwebtoken::errors::Error),
}

/// The private key parsed once, as aws-lc-rs signs with it. jsonwebtoken's `encode` parses the
/// key again for every token, which for Ed25519 derives the public key (a second scalar
/// multiplication as costly as the signature) each time.
enum KeyPair {
    Ed25519(Ed25519KeyPair),
    Es256(EcdsaKeyPair),
}

/// A private key ready to sign, with its public JWK.
pub struct SigningKey {
    /// The key id: the JWK thumbprint (RFC 7638, SHA-256).
    pub kid: String,
    /// EdDSA or ES256.
    pub algorithm: Algorithm,
    /// The private key, for jsonwebtoken.
    pub encoding: EncodingKey,
    /// The public key as published in the JWKS.
    pub jwk: Jwk,
    /// The private key as PKCS#8 PEM, for storing.
    pem: secrecy::SecretString,
    /// The private key as it signs.
    pair: KeyPair,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// A fresh key.
    pub fn generate(algorithm: SigningAlgorithm) -> Result<Self, KeyError> {
        let rng = SystemRandom::new();
        let (der, algorithm) = match algorithm {
            // PKCS#8 v1 (private key only), the form `openssl genpkey` writes and jsonwebtoken
            // reads.
            SigningAlgorithm::EdDsa => (
                Ed25519KeyPair::generate_pkcs8v1(&rng).map_err(|_| KeyError::Generate)?,
                Algorithm::EdDSA,
            ),
            SigningAlgorithm::Es256 => (
                EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
                    .map_err(|_| KeyError::Generate)?,
                Algorithm::ES256,
            ),
        };
        Self::from_der(der.as_ref(), algorithm)
    }

    /// Reads an unencrypted PKCS#8 private key in PEM, Ed25519 or P-256.
    pub fn from_pem(pem: &str) -> Result<Self, KeyError> {
        let block = pem::parse(pem).map_err(|_| KeyError::Unsupported)?;
        if block.tag() != "PRIVATE KEY" {
            return Err(KeyError::Unsupported);
        }
        let der = block.contents();
        if Ed25519KeyPair::from_pkcs8_maybe_unchecked(der).is_ok() {
            Self::from_der(der, Algorithm::EdDSA)
        } else if EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der).is_ok() {
            Self::from_der(der, Algorithm::ES256)
        } else {
            Err(KeyError::Unsupported)
        }
    }

    /// Rebuilds a key stored in the database.
    pub fn from_stored(stored: &StoredSigningKey) -> Result<Self, KeyError> {
        let key = Self::from_pem(stored.private_key_pem.expose_secret())?;
        if key.kid != stored.kid {
            return Err(KeyError::Unsupported);
        }
        Ok(key)
    }

    fn from_der(der: &[u8], algorithm: Algorithm) -> Result<Self, KeyError> {
        let encoding = match algorithm {
            Algorithm::EdDSA => EncodingKey::from_ed_der(der),
            _ => EncodingKey::from_ec_der(der),
        };
        let mut jwk = Jwk::from_encoding_key(&encoding, algorithm)?;
        let kid = jwk.thumbprint(ThumbprintHash::SHA256)?;
        jwk.common.key_id = Some(kid.clone());
        jwk.common.public_key_use = Some(PublicKeyUse::Signature);
        let pem = pem::encode(&pem::Pem::new("PRIVATE KEY", der.to_vec()));
        let pair = match algorithm {
            Algorithm::EdDSA => KeyPair::Ed25519(
                Ed25519KeyPair::from_pkcs8_maybe_unchecked(der)
                    .map_err(|_| KeyError::Unsupported)?,
            ),
            _ => KeyPair::Es256(
                EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der)
                    .map_err(|_| KeyError::Unsupported)?,
            ),
        };
        Ok(Self {
            kid,
            algorithm,
            encoding,
            jwk,
            pem: pem.into(),
            pair,
        })
    }

    /// A compact JWS of `claims` under `encoded_header` (the header's JSON in base64url), as
    /// jsonwebtoken's `encode` makes it, signed with the key parsed once.
    pub fn sign_jws(
        &self,
        encoded_header: &str,
        claims: &impl serde::Serialize,
    ) -> Result<String, jsonwebtoken::errors::Error> {
        use base64::Engine;
        use base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let claims = serde_json::to_vec(claims)?;
        let mut token = String::with_capacity(encoded_header.len() + claims.len() * 4 / 3 + 100);
        token.push_str(encoded_header);
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(claims, &mut token);
        let signature = match &self.pair {
            KeyPair::Ed25519(pair) => pair.sign(token.as_bytes()).as_ref().to_vec(),
            KeyPair::Es256(pair) => pair
                .sign(&SystemRandom::new(), token.as_bytes())
                .map_err(|_| {
                    jsonwebtoken::errors::ErrorKind::Signing("ECDSA signing failed".into())
                })?
                .as_ref()
                .to_vec(),
        };
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(signature, &mut token);
        Ok(token)
    }

    /// The key as the database keeps it.
    pub fn to_stored(&self, created_at: DateTime<Utc>) -> Result<StoredSigningKey, KeyError> {
        Ok(StoredSigningKey {
            kid: self.kid.clone(),
            algorithm: algorithm_name(self.algorithm).to_owned(),
            private_key_pem: self.pem.clone(),
            public_jwk: serde_json::to_string(&self.jwk)
                .map_err(|e| KeyError::Public(jsonwebtoken::errors::Error::from(e)))?,
            created_at,
            retired_at: None,
        })
    }
}

/// The `alg` name of an algorithm tollgate signs with.
pub fn algorithm_name(algorithm: Algorithm) -> &'static str {
    match algorithm {
        Algorithm::EdDSA => "EdDSA",
        _ => "ES256",
    }
}

#[cfg(test)]
mod tests {
    use jsonwebtoken::jwk::AlgorithmParameters;

    use super::*;

    #[test]
    fn a_token_signed_with_the_parsed_key_is_what_jsonwebtoken_makes_and_verifies() {
        use jsonwebtoken::{DecodingKey, Header, Validation};
        for algorithm in [SigningAlgorithm::EdDsa, SigningAlgorithm::Es256] {
            let key = SigningKey::generate(algorithm).unwrap();
            let mut header = Header::new(key.algorithm);
            header.kid = Some(key.kid.clone());
            let claims = serde_json::json!({ "sub": "reader-1", "exp": 4_102_444_800_i64 });
            let reference = jsonwebtoken::encode(&header, &claims, &key.encoding).unwrap();
            let (encoded_header, _) = reference.split_once('.').unwrap();
            let token = key.sign_jws(encoded_header, &claims).unwrap();
            // Same header and claims as jsonwebtoken's own; Ed25519 signs deterministically.
            let signed = |t: &str| t.rsplit_once('.').unwrap().0.to_owned();
            assert_eq!(signed(&token), signed(&reference), "{algorithm:?}");
            if key.algorithm == Algorithm::EdDSA {
                assert_eq!(token, reference);
            }
            let decoding = DecodingKey::from_jwk(&key.jwk).unwrap();
            let mut validation = Validation::new(key.algorithm);
            validation.validate_aud = false;
            let verified =
                jsonwebtoken::decode::<serde_json::Value>(&token, &decoding, &validation).unwrap();
            assert_eq!(verified.claims, claims);
            assert_eq!(verified.header.kid.as_deref(), Some(key.kid.as_str()));
        }
    }

    #[test]
    fn a_generated_ed25519_key_survives_pem_and_its_kid_is_its_thumbprint() {
        let key = SigningKey::generate(SigningAlgorithm::EdDsa).unwrap();
        assert_eq!(key.algorithm, Algorithm::EdDSA);
        assert!(matches!(
            key.jwk.algorithm,
            AlgorithmParameters::OctetKeyPair(_)
        ));
        let stored = key.to_stored(Utc::now()).unwrap();
        assert!(
            stored
                .private_key_pem
                .expose_secret()
                .starts_with("-----BEGIN PRIVATE KEY-----")
        );
        let back = SigningKey::from_stored(&stored).unwrap();
        assert_eq!(back.kid, key.kid);
        assert_eq!(back.kid.len(), 43, "base64url of a SHA-256 digest");
        assert!(
            !stored.public_jwk.contains("\"d\""),
            "{}",
            stored.public_jwk
        );
    }

    #[test]
    fn a_generated_p256_key_is_an_es256_key_with_both_coordinates() {
        let key = SigningKey::generate(SigningAlgorithm::Es256).unwrap();
        assert_eq!(key.algorithm, Algorithm::ES256);
        let AlgorithmParameters::EllipticCurve(ec) = &key.jwk.algorithm else {
            panic!("not an EC key: {:?}", key.jwk.algorithm);
        };
        assert!(!ec.x.is_empty() && !ec.y.is_empty());
        let pem = key.to_stored(Utc::now()).unwrap().private_key_pem;
        assert_eq!(
            SigningKey::from_pem(pem.expose_secret()).unwrap().kid,
            key.kid
        );
    }

    #[test]
    fn an_openssl_ed25519_pem_is_read() {
        // `openssl genpkey -algorithm ed25519`: a throwaway key made for this test.
        let pem = "-----BEGIN PRIVATE KEY-----\n\
                   MC4CAQAwBQYDK2VwBCIEIDqzXkq4T4ihdMqGb0Z3uP1nYVzDXZa0tOQP0VqG9Ewi\n\
                   -----END PRIVATE KEY-----\n";
        let key = SigningKey::from_pem(pem).unwrap();
        assert_eq!(key.algorithm, Algorithm::EdDSA);
    }

    #[test]
    fn anything_else_is_refused() {
        for pem in [
            "",
            "not a pem",
            "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEAGb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE=\n-----END PUBLIC KEY-----\n",
            "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
        ] {
            assert!(SigningKey::from_pem(pem).is_err(), "{pem}");
        }
    }
}
