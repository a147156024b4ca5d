//! Gift subscriptions: a reader buys months of a plan for someone else through Checkout (a
//! one-off payment); tollgate makes a code the buyer's site reveals to them, and whoever redeems
//! it first gets a grant of the plan's entitlements for those months.
//!
//! A code is random (128 bits). Until it is redeemed it is kept sealed (AES-256-GCM under the
//! operator's `gift_code_key`, bound to its gift's id), so that the buyer can see it again; from
//! redemption on only its SHA-256 is kept, as it is from the start for lookups.

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use base64::Engine;
use chrono::{DateTime, Utc};
use rand::RngCore;

use super::{GrantId, PlanId, ReaderId};

prefixed_id!(
    /// The identifier of a gift subscription: `gsub_` and a time-ordered UUID.
    GiftSubscriptionId,
    "gsub_"
);

secret_code!(
    /// A gift subscription's code: `gsc_` and 32 hex digits (128 random bits).
    SubscriptionCode,
    "gsc_"
);

/// Seals codes at rest and opens them again: AES-256-GCM with a random 96-bit nonce, the gift's
/// id as associated data (a sealed code moved to another row does not open).
pub struct CodeSealer(LessSafeKey);

impl CodeSealer {
    /// The sealer of a key written as base64 of 32 bytes; `None` for anything else.
    pub fn from_base64(key: &str) -> Option<Self> {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(key.trim())
            .ok()?;
        if bytes.len() != 32 {
            return None;
        }
        let key = UnboundKey::new(&AES_256_GCM, &bytes).ok()?;
        Some(Self(LessSafeKey::new(key)))
    }

    /// `code` sealed for the gift `id`: the nonce, then the ciphertext and its tag.
    pub fn seal(&self, id: &GiftSubscriptionId, code: &SubscriptionCode) -> Vec<u8> {
        let mut nonce = [0_u8; NONCE_LEN];
        rand::rng().fill_bytes(&mut nonce);
        let mut sealed = code.expose().as_bytes().to_vec();
        // Sealing fails only for inputs far beyond a code's size; an empty seal opens to
        // nothing, which a reveal reports.
        if self
            .0
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(id.as_str().as_bytes()),
                &mut sealed,
            )
            .is_err()
        {
            sealed.clear();
        }
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        out
    }

    /// The code `sealed` holds for the gift `id`; `None` when it was sealed under another key,
    /// for another gift, or changed.
    pub fn open(&self, id: &GiftSubscriptionId, sealed: &[u8]) -> Option<SubscriptionCode> {
        if sealed.len() <= NONCE_LEN {
            return None;
        }
        let (nonce, ciphertext) = sealed.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
        let mut buffer = ciphertext.to_vec();
        let plain = self
            .0
            .open_in_place(nonce, Aad::from(id.as_str().as_bytes()), &mut buffer)
            .ok()?;
        SubscriptionCode::parse(std::str::from_utf8(plain).ok()?)
    }
}

/// A gift bought: what a completed Checkout Session in payment mode for a gift says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GiftPurchase {
    /// The Checkout Session (`cs_...`): a purchase is recorded once per session.
    pub checkout_session: String,
    /// Who bought it.
    pub buyer: ReaderId,
    /// The plan given.
    pub plan_id: PlanId,
    /// Months of it bought, as the session's metadata says (the plan's offer when bought).
    pub months: Option<u32>,
    /// What was paid, in minor units, when Stripe says.
    pub amount_total: Option<i64>,
    /// The tax in it, when Stripe says.
    pub amount_tax: Option<i64>,
    /// In which currency.
    pub currency: Option<String>,
    /// When it was paid (the event's time).
    pub purchased_at: DateTime<Utc>,
    /// The code made for it, sealed; filled in before the purchase is stored.
    pub issued: Option<IssuedCode>,
}

/// A code made for a purchase, as it is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedCode {
    /// The gift's id, which the seal is bound to.
    pub id: GiftSubscriptionId,
    /// The code's SHA-256.
    pub hash: [u8; 32],
    /// The code, sealed.
    pub sealed: Vec<u8>,
    /// Months of the plan it gives.
    pub months: u32,
    /// When it can no longer be redeemed.
    pub expires_at: DateTime<Utc>,
}

named_enum! {
    /// Where a gift subscription stands.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
    #[serde(rename_all = "snake_case")]
    pub enum GiftSubscriptionStatus ("gift subscription status") {
        /// Bought and not redeemed yet.
        Unredeemed = "unredeemed",
        /// Redeemed: a grant was made.
        Redeemed = "redeemed",
        /// Never redeemed before its code expired.
        Expired = "expired",
    }
}

/// A stored gift subscription, without its code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GiftSubscription {
    /// Its id.
    pub id: GiftSubscriptionId,
    /// Who bought it.
    pub buyer: ReaderId,
    /// The plan given.
    pub plan_id: PlanId,
    /// Months of the plan it gives.
    pub months: u32,
    /// What was paid, in minor units.
    pub amount_total: Option<i64>,
    /// In which currency.
    pub currency: Option<String>,
    /// When it was bought.
    pub purchased_at: DateTime<Utc>,
    /// When its code stops being redeemable.
    pub expires_at: DateTime<Utc>,
    /// Who redeemed it, and when, and the grant it made.
    pub redeemed: Option<(ReaderId, DateTime<Utc>, GrantId)>,
}

impl GiftSubscription {
    /// Where it stands at `now`.
    pub fn status(&self, now: DateTime<Utc>) -> GiftSubscriptionStatus {
        if self.redeemed.is_some() {
            GiftSubscriptionStatus::Redeemed
        } else if now >= self.expires_at {
            GiftSubscriptionStatus::Expired
        } else {
            GiftSubscriptionStatus::Unredeemed
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

    #[test]
    fn a_sealed_code_opens_only_under_its_key_for_its_gift() {
        let sealer = CodeSealer::from_base64(KEY).unwrap();
        let (id, other) = (
            GiftSubscriptionId::generate(),
            GiftSubscriptionId::generate(),
        );
        let code = SubscriptionCode::generate();
        let sealed = sealer.seal(&id, &code);
        assert!(
            !sealed
                .windows(code.expose().len())
                .any(|w| w == code.expose().as_bytes())
        );
        assert_eq!(sealer.open(&id, &sealed).unwrap().expose(), code.expose());
        // Another gift's id, another key, or a changed byte: nothing.
        assert!(sealer.open(&other, &sealed).is_none());
        let other_key =
            CodeSealer::from_base64(&base64::engine::general_purpose::STANDARD.encode([7_u8; 32]))
                .unwrap();
        assert!(other_key.open(&id, &sealed).is_none());
        let mut changed = sealed.clone();
        *changed.last_mut().unwrap() ^= 1;
        assert!(sealer.open(&id, &changed).is_none());
        assert!(sealer.open(&id, &sealed[..NONCE_LEN]).is_none());
        // Two seals of one code differ (fresh nonces).
        assert_ne!(sealer.seal(&id, &code), sealed);
    }

    #[test]
    fn keys_must_be_32_bytes_of_base64_and_codes_have_one_form() {
        assert!(CodeSealer::from_base64("c2hvcnQ=").is_none());
        assert!(CodeSealer::from_base64("not base64!").is_none());
        let code = SubscriptionCode::generate();
        assert!(SubscriptionCode::is_well_formed(code.expose()));
        assert_eq!(code.expose().len(), 36);
        for bad in [
            "",
            "gsc_",
            "gc_0123456789abcdef0123456789abcdef",
            "gsc_0123456789ABCDEF0123456789abcdef",
        ] {
            assert!(!SubscriptionCode::is_well_formed(bad), "{bad:?}");
        }
        assert_eq!(format!("{code:?}"), "SubscriptionCode(REDACTED)");
    }
}
