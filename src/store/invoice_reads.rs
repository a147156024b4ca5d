//! Paid invoices read whole for recognised revenue: a million lines, read the way each database
//! reads them fastest (see [`Dialect::PACKS_LARGE_READS`]).

use std::collections::HashMap;

use sqlx::FromRow;
use tollgate_macros::sql_bounds;

use super::dialect::{Dialect, SqlStore};
use super::error::StoreError;
use crate::domain::{InvoiceService, ServiceLine};

#[derive(FromRow)]
struct ServiceLineRow {
    starts: bool,
    refunded: Option<String>,
    currency: String,
    paid_at: i64,
    amount_paid: i64,
    tax: i64,
    main_price: Option<String>,
    price_id: Option<String>,
    amount: Option<i64>,
    period_start: Option<i64>,
    period_end: Option<i64>,
}

/// Invoices read at once when they are packed into text.
const PAGE: i64 = 50_000;
/// What separates the fields of a packed invoice line (ASCII unit separator).
const FIELD: char = '\u{1f}';
/// What separates packed invoice lines (ASCII record separator).
const RECORD: char = '\u{1e}';

/// Appends the invoices of one packed page to `out`, in order, with their refunds: each record
/// is an invoice line (id, currency, paid at, amount paid, tax, main price, the line's price,
/// amount after discounts and period; the line's fields empty for an invoice without lines).
fn unpack_invoices(
    packed: &str,
    refunds: &mut HashMap<String, Vec<(i64, i64)>>,
    out: &mut Vec<InvoiceService>,
) -> Result<(), StoreError> {
    let malformed = || StoreError::other(anyhow::anyhow!("a packed invoice line is malformed"));
    let number = |field: &str| field.parse::<i64>().map_err(|_| malformed());
    let text = |field: &str| (!field.is_empty()).then(|| field.to_owned());
    let mut current = String::new();
    for record in packed.split(RECORD) {
        let fields: Vec<&str> = record.split(FIELD).collect();
        let [
            id,
            currency,
            paid_at,
            amount_paid,
            tax,
            main,
            price,
            amount,
            start,
            end,
        ] = fields[..]
        else {
            return Err(malformed());
        };
        if id != current {
            current.clear();
            current.push_str(id);
            out.push(InvoiceService {
                currency: currency.to_owned(),
                paid_at: number(paid_at)?,
                amount_paid: number(amount_paid)?,
                tax: number(tax)?,
                price_id: text(main),
                lines: Vec::new(),
                refunds: refunds.remove(id).unwrap_or_default(),
            });
        }
        if amount.is_empty() {
            continue;
        }
        let period = match (start, end) {
            ("", _) | (_, "") => None,
            (start, end) => Some((number(start)?, number(end)?)),
        };
        if let Some(invoice) = out.last_mut() {
            invoice.lines.push(ServiceLine {
                price_id: text(price),
                amount: number(amount)?,
                period,
            });
        }
    }
    Ok(())
}

#[sql_bounds]
impl<DB: Dialect> SqlStore<DB> {
    /// Invoices paid before `before` with their lines, read a page at a time, each page packed by
    /// the database into one text: a million lines read row by row cost sqlx several
    /// microseconds each on SQLite, most of the report's time.
    pub(super) async fn packed_invoice_services(
        &self,
        before: i64,
        mut refunds: HashMap<String, Vec<(i64, i64)>>,
    ) -> Result<Vec<InvoiceService>, StoreError> {
        let sql = format!(
            "SELECT {aggregate}(x, $4 ORDER BY id, position) AS packed, MAX(id) AS last \
             FROM (SELECT i.id, COALESCE(l.position, 0) AS position, \
               i.id || $3 || i.currency || $3 || CAST(i.paid_at AS TEXT) || $3 || \
               CAST(i.amount_paid AS TEXT) || $3 || CAST(i.tax AS TEXT) || $3 || \
               COALESCE(i.price_id, '') || $3 || COALESCE(l.price_id, '') || $3 || \
               COALESCE(CAST(l.amount - l.discount_amount AS TEXT), '') || $3 || \
               COALESCE(CAST(l.period_start AS TEXT), '') || $3 || \
               COALESCE(CAST(l.period_end AS TEXT), '') AS x \
               FROM (SELECT id, currency, paid_at, amount_paid, tax, price_id FROM invoices \
                 WHERE status = 'paid' AND paid_at < $1 AND id > $2 ORDER BY id LIMIT $5) i \
               LEFT JOIN invoice_lines l ON l.invoice_id = i.id) page",
            aggregate = DB::STRING_AGG,
        );
        let mut out: Vec<InvoiceService> = Vec::new();
        let mut after = String::new();
        loop {
            let (packed, last) = sqlx::query_as::<DB, (Option<String>, Option<String>)>(&sql)
                .bind(before)
                .bind(after.clone())
                .bind(FIELD.to_string())
                .bind(RECORD.to_string())
                .bind(PAGE)
                .fetch_one(&self.pool)
                .await?;
            let (Some(packed), Some(last)) = (packed, last) else {
                break;
            };
            unpack_invoices(&packed, &mut refunds, &mut out)?;
            after = last;
        }
        Ok(out)
    }

    /// Invoices paid before `before` with their lines, one row a line: an invoice's first line
    /// (or its only row, when it has none) starts it, and only refunded invoices carry their id.
    pub(super) async fn listed_invoice_services(
        &self,
        before: i64,
        mut refunds: HashMap<String, Vec<(i64, i64)>>,
    ) -> Result<Vec<InvoiceService>, StoreError> {
        let rows = sqlx::query_as::<DB, ServiceLineRow>(
            "SELECT (COALESCE(l.position, 0) = 0) AS starts, \
             CASE WHEN EXISTS (SELECT 1 FROM refunds r WHERE r.invoice_id = i.id) \
               THEN i.id END AS refunded, \
             i.currency, i.paid_at, i.amount_paid, i.tax, i.price_id AS main_price, \
             l.price_id, l.amount - l.discount_amount AS amount, l.period_start, l.period_end \
             FROM invoices i LEFT JOIN invoice_lines l ON l.invoice_id = i.id \
             WHERE i.status = 'paid' AND i.paid_at < $1 ORDER BY i.id, l.position",
        )
        .bind(before)
        .fetch_all(&self.pool)
        .await?;
        let mut out: Vec<InvoiceService> = Vec::new();
        for row in rows {
            if row.starts || out.is_empty() {
                out.push(InvoiceService {
                    currency: row.currency,
                    paid_at: row.paid_at,
                    amount_paid: row.amount_paid,
                    tax: row.tax,
                    price_id: row.main_price,
                    lines: Vec::new(),
                    refunds: row
                        .refunded
                        .and_then(|id| refunds.remove(&id))
                        .unwrap_or_default(),
                });
            }
            if let (Some(invoice), Some(amount)) = (out.last_mut(), row.amount) {
                invoice.lines.push(ServiceLine {
                    price_id: row.price_id,
                    amount,
                    period: row.period_start.zip(row.period_end),
                });
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packed_invoices_come_apart_into_their_lines_with_their_refunds() {
        let record = |fields: [&str; 10]| fields.join(&FIELD.to_string());
        let packed = [
            record([
                "in_a", "eur", "100", "1190", "190", "price_m", "price_m", "750", "10", "20",
            ]),
            record([
                "in_a", "eur", "100", "1190", "190", "price_m", "", "250", "", "",
            ]),
            record(["in_b", "usd", "200", "500", "0", "", "", "", "", ""]),
        ]
        .join(&RECORD.to_string());
        let mut refunds = HashMap::from([("in_a".to_owned(), vec![(150, 300)])]);
        let mut out = Vec::new();
        unpack_invoices(&packed, &mut refunds, &mut out).unwrap();
        assert_eq!(
            out,
            [
                InvoiceService {
                    currency: "eur".into(),
                    paid_at: 100,
                    amount_paid: 1_190,
                    tax: 190,
                    price_id: Some("price_m".into()),
                    lines: vec![
                        ServiceLine {
                            price_id: Some("price_m".into()),
                            amount: 750,
                            period: Some((10, 20)),
                        },
                        ServiceLine {
                            price_id: None,
                            amount: 250,
                            period: None,
                        },
                    ],
                    refunds: vec![(150, 300)],
                },
                InvoiceService {
                    currency: "usd".into(),
                    paid_at: 200,
                    amount_paid: 500,
                    tax: 0,
                    price_id: None,
                    lines: Vec::new(),
                    refunds: Vec::new(),
                },
            ]
        );
        // A text field holding a separator cannot be read back: refused, never misread.
        let broken = record(["in_c", "e\u{1f}ur", "1", "1", "0", "", "", "", "", ""]);
        assert!(unpack_invoices(&broken, &mut HashMap::new(), &mut Vec::new()).is_err());
        let short = "in_d\u{1f}eur";
        assert!(unpack_invoices(short, &mut HashMap::new(), &mut Vec::new()).is_err());
    }
}
