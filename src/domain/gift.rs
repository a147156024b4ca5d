//! Gift articles: a reader entitled to articles shares one with a link whose code opens that
//! article, and only that one, for a bounded number of people, for a while. Codes are random
//! (128 bits) and kept only as their SHA-256.

use chrono::{DateTime, Utc};

use super::{ArticleId, ReaderId};

prefixed_id!(
    /// The identifier of a gift link: `gft_` and a time-ordered UUID.
    GiftId,
    "gft_"
);

secret_code!(
    /// A gift link's secret code: `gc_` and 32 hex digits (128 random bits). Shown once, to the
    /// giver; stored as its hash.
    GiftCode,
    "gc_"
);

/// A stored gift link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GiftLink {
    /// Its id.
    pub id: GiftId,
    /// Who shared it.
    pub giver: ReaderId,
    /// The one article it opens.
    pub article: ArticleId,
    /// When it was made.
    pub created_at: DateTime<Utc>,
    /// When it stops opening the article.
    pub expires_at: DateTime<Utc>,
    /// When the giver revoked it, if they did.
    pub revoked_at: Option<DateTime<Utc>>,
    /// How many different people it opens the article for.
    pub max_recipients: u32,
    /// How many it has opened it for.
    pub recipients: u32,
}

/// Why a gift code given with an access question did not open the article.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum GiftStatus {
    /// No gift link has this code.
    Unknown,
    /// The link opens another article.
    OtherArticle,
    /// The link has expired.
    Expired,
    /// The giver revoked the link.
    Revoked,
    /// The link has opened the article for as many people as it may.
    RecipientsExhausted,
}

impl GiftLink {
    /// Why the link cannot open `article` at `now`, if it cannot; a link that has reached its
    /// recipients may still open it again for one of them, which the store decides.
    pub fn refusal(&self, article: &ArticleId, now: DateTime<Utc>) -> Option<GiftStatus> {
        if self.revoked_at.is_some() {
            Some(GiftStatus::Revoked)
        } else if now >= self.expires_at {
            Some(GiftStatus::Expired)
        } else if &self.article != article {
            Some(GiftStatus::OtherArticle)
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(secs, 0).unwrap()
    }

    #[test]
    fn codes_are_random_well_formed_and_never_printed() {
        let (a, b) = (GiftCode::generate(), GiftCode::generate());
        assert_ne!(a.expose(), b.expose());
        assert!(GiftCode::is_well_formed(a.expose()));
        assert_eq!(a.hash(), GiftCode::hash_of(a.expose()));
        assert_ne!(a.hash(), b.hash());
        assert!(!format!("{a:?}").contains(a.expose()));
        for bad in [
            "",
            "gc_",
            "gc_XYZ",
            "gc_0123456789abcdef0123456789ABCDEF",
            "0123456789abcdef0123456789abcdef",
        ] {
            assert!(!GiftCode::is_well_formed(bad), "{bad:?}");
        }
    }

    #[test]
    fn a_link_opens_its_own_article_until_it_expires_or_is_revoked() {
        let link = GiftLink {
            id: GiftId::generate(),
            giver: ReaderId::parse("ana").unwrap(),
            article: ArticleId::parse("a1").unwrap(),
            created_at: at(0),
            expires_at: at(100),
            revoked_at: None,
            max_recipients: 10,
            recipients: 0,
        };
        let a1 = ArticleId::parse("a1").unwrap();
        assert_eq!(link.refusal(&a1, at(50)), None);
        assert_eq!(
            link.refusal(&ArticleId::parse("a2").unwrap(), at(50)),
            Some(GiftStatus::OtherArticle)
        );
        assert_eq!(link.refusal(&a1, at(100)), Some(GiftStatus::Expired));
        let revoked = GiftLink {
            revoked_at: Some(at(10)),
            ..link
        };
        assert_eq!(revoked.refusal(&a1, at(50)), Some(GiftStatus::Revoked));
    }
}
