//! The gift report: per month, the links readers made, the people those links opened articles
//! for, and how many of them subscribed within 30 days of their first gift: what gifting brings.

use serde::Serialize;

use super::periods::Period;
pub use crate::domain::report_inputs::{GiftActivity, GiftRecipient};

/// One month of gifting.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GiftRow {
    /// `2026-11`.
    pub month: String,
    /// Links made.
    pub links_created: u64,
    /// Link and recipient pairs first opened in the month.
    pub redemptions: u64,
    /// Different recipients (readers and devices) those were.
    pub recipients: u64,
    /// Readers whose first gift ever fell in the month and who subscribed within 30 days of it.
    pub subscribed_within_30_days: u64,
}

/// A row for every month, in order.
pub fn report(activity: &GiftActivity, months: &[Period]) -> Vec<GiftRow> {
    months
        .iter()
        .map(|month| {
            let within =
                |at: &chrono::DateTime<chrono::Utc>| month.starts <= *at && *at < month.ends;
            let redemptions: Vec<&(String, chrono::DateTime<chrono::Utc>)> = activity
                .redemptions
                .iter()
                .filter(|(_, at)| within(at))
                .collect();
            let mut recipients: Vec<&str> =
                redemptions.iter().map(|(who, _)| who.as_str()).collect();
            recipients.sort_unstable();
            recipients.dedup();
            GiftRow {
                month: month.label.clone(),
                links_created: count(activity.links.iter().filter(|at| within(at))),
                redemptions: redemptions.len() as u64,
                recipients: recipients.len() as u64,
                subscribed_within_30_days: count(
                    activity
                        .first_gifts
                        .iter()
                        .filter(|first| first.subscribed_within_30_days && within(&first.first_at)),
                ),
            }
        })
        .collect()
}

fn count<T>(items: impl Iterator<Item = T>) -> u64 {
    items.count() as u64
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, NaiveDate, Utc};

    use super::*;
    use crate::reports::periods::months;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().to_utc()
    }

    #[test]
    fn each_month_counts_links_redemptions_recipients_and_conversions() {
        let months = months(
            NaiveDate::from_ymd_opt(2026, 11, 1).unwrap(),
            NaiveDate::from_ymd_opt(2026, 12, 1).unwrap(),
            chrono_tz::UTC,
        )
        .unwrap();
        let activity = GiftActivity {
            links: vec![
                at("2026-11-02T00:00:00Z"),
                at("2026-11-30T23:59:59Z"),
                at("2026-12-01T00:00:00Z"),
            ],
            redemptions: vec![
                ("registered:ben".into(), at("2026-11-03T00:00:00Z")),
                ("registered:ben".into(), at("2026-11-04T00:00:00Z")),
                ("anonymous:d-1".into(), at("2026-11-05T00:00:00Z")),
                ("registered:cy".into(), at("2026-12-02T00:00:00Z")),
            ],
            first_gifts: vec![
                GiftRecipient {
                    first_at: at("2026-11-03T00:00:00Z"),
                    subscribed_within_30_days: true,
                },
                GiftRecipient {
                    first_at: at("2026-11-05T00:00:00Z"),
                    subscribed_within_30_days: false,
                },
                GiftRecipient {
                    first_at: at("2026-12-02T00:00:00Z"),
                    subscribed_within_30_days: false,
                },
            ],
        };
        let rows = report(&activity, &months);
        let summary: Vec<(&str, u64, u64, u64, u64)> = rows
            .iter()
            .map(|r| {
                (
                    r.month.as_str(),
                    r.links_created,
                    r.redemptions,
                    r.recipients,
                    r.subscribed_within_30_days,
                )
            })
            .collect();
        assert_eq!(summary, [("2026-11", 2, 3, 2, 1), ("2026-12", 1, 1, 1, 0)]);
    }
}
