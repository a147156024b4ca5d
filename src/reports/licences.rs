//! The licence usage report librarians ask for before they renew: per licence and month, the
//! readers holding a seat, the readers (and devices) who opened articles under it, and the
//! articles they opened (each reader's article once a month). Its inputs are the licence's own
//! monthly rows, kept apart from the meter's, so pruning unlocks never changes a past report.

use std::collections::HashMap;

use serde::Serialize;

use super::periods::Period;
pub use crate::domain::report_inputs::{LicenceEntry, Openings};

/// What the report is computed from.
#[derive(Debug, Default)]
pub struct Inputs {
    /// Every licence.
    pub licences: Vec<LicenceEntry>,
    /// Members at some time in each month, by month label and licence id.
    pub members: HashMap<(String, String), u64>,
    /// Openings, by month label and licence id.
    pub openings: HashMap<(String, String), Openings>,
}

/// One row: a licence in one month.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LicenceUsageRow {
    /// `2026-11`.
    pub month: String,
    /// The licence.
    pub licence_id: String,
    /// Its name.
    pub name: String,
    /// Readers who held a seat at some time in the month.
    pub members: u64,
    /// Readers and devices who opened articles under it.
    pub readers: u64,
    /// Articles opened under it.
    pub articles_opened: u64,
}

/// A row for each licence in each month in which it was in force (and not deleted) or was used,
/// by month and then licence id.
pub fn report(inputs: &Inputs, months: &[Period]) -> Vec<LicenceUsageRow> {
    let mut licences: Vec<&LicenceEntry> = inputs.licences.iter().collect();
    licences.sort_by(|a, b| a.id.cmp(&b.id));
    let mut rows = Vec::new();
    for month in months {
        for licence in &licences {
            let key = (month.label.clone(), licence.id.clone());
            let members = inputs.members.get(&key).copied().unwrap_or(0);
            let openings = inputs.openings.get(&key).copied().unwrap_or_default();
            let in_force = licence.starts_at < month.ends
                && month.starts < licence.expires_at
                && licence.deleted_at.is_none_or(|at| at > month.starts);
            if in_force || members > 0 || openings.articles > 0 {
                rows.push(LicenceUsageRow {
                    month: month.label.clone(),
                    licence_id: licence.id.clone(),
                    name: licence.name.clone(),
                    members,
                    readers: openings.readers,
                    articles_opened: openings.articles,
                });
            }
        }
    }
    rows
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, NaiveDate, Utc};

    use super::*;
    use crate::reports::periods::months;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().to_utc()
    }

    fn entry(id: &str, starts: &str, expires: &str, deleted: Option<&str>) -> LicenceEntry {
        LicenceEntry {
            id: id.into(),
            name: format!("Licence {id}"),
            starts_at: at(starts),
            expires_at: at(expires),
            deleted_at: deleted.map(at),
        }
    }

    #[test]
    fn each_licence_has_a_row_for_each_month_it_was_in_force_or_used() {
        let months = months(
            NaiveDate::from_ymd_opt(2026, 10, 1).unwrap(),
            NaiveDate::from_ymd_opt(2026, 12, 1).unwrap(),
            chrono_tz::UTC,
        )
        .unwrap();
        let mut inputs = Inputs {
            licences: vec![
                entry(
                    "lic_b",
                    "2026-11-15T00:00:00Z",
                    "2027-11-15T00:00:00Z",
                    None,
                ),
                entry(
                    "lic_a",
                    "2026-01-01T00:00:00Z",
                    "2027-01-01T00:00:00Z",
                    Some("2026-11-10T00:00:00Z"),
                ),
            ],
            ..Inputs::default()
        };
        inputs.members.insert(("2026-11".into(), "lic_b".into()), 4);
        inputs.openings.insert(
            ("2026-11".into(), "lic_b".into()),
            Openings {
                readers: 3,
                articles: 7,
            },
        );
        let rows = report(&inputs, &months);
        let summary: Vec<(&str, &str, u64, u64, u64)> = rows
            .iter()
            .map(|r| {
                (
                    r.month.as_str(),
                    r.licence_id.as_str(),
                    r.members,
                    r.readers,
                    r.articles_opened,
                )
            })
            .collect();
        assert_eq!(
            summary,
            [
                // lic_a is in force in October and until its deletion in November; lic_b from
                // mid-November on.
                ("2026-10", "lic_a", 0, 0, 0),
                ("2026-11", "lic_a", 0, 0, 0),
                ("2026-11", "lic_b", 4, 3, 7),
                ("2026-12", "lic_b", 0, 0, 0),
            ]
        );
        assert_eq!(rows[2].name, "Licence lic_b");
    }
}
