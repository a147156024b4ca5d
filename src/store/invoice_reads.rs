//! Paid invoices read whole for recognised revenue: a million lines, handed over one invoice at
//! a time (never all held at once) and read the way each database hands them over fastest.
//! sqlx costs a few microseconds for each row it decodes, most of the report's time, so neither
//! backend reads them as rows: PostgreSQL writes them out with `COPY` ([`Dialect::copy_out`]),
//! and SQLite packs a page of them into one text (`group_concat`). Both come as records of the
//! same fields, which [`Assembler`] makes into invoices.

use std::collections::HashMap;

use tollgate_macros::sql_bounds;

use super::dialect::{Dialect, SqlStore};
use super::error::StoreError;
use crate::domain::{InvoiceService, ServiceLine};

/// Invoices read at once when they are packed into text.
const PAGE: i64 = 50_000;
/// What separates the fields of a packed invoice line (ASCII unit separator).
const FIELD: char = '\u{1f}';
/// What separates packed invoice lines (ASCII record separator).
const RECORD: char = '\u{1e}';

/// The fields of an invoice line as read, in order (an empty field is NULL; an invoice without
/// lines has one record with the line's fields empty).
const COLUMNS: &str = "i.id, l.position, i.currency, i.paid_at, i.amount_paid, i.tax, \
    i.price_id, l.price_id, l.amount - l.discount_amount, l.period_start, l.period_end";

/// Receives each invoice read.
pub type Visit<'v> = dyn FnMut(&InvoiceService) + Send + 'v;

fn malformed() -> StoreError {
    StoreError::other(anyhow::anyhow!(
        "an invoice line read for a report is malformed"
    ))
}

/// Sets `slot` to `text`, or to `None` when it is empty, reusing the text already there.
fn set_text(slot: &mut Option<String>, text: &str) {
    match (slot.as_mut(), text.is_empty()) {
        (_, true) => *slot = None,
        (Some(held), false) => {
            held.clear();
            held.push_str(text);
        }
        (None, false) => *slot = Some(text.to_owned()),
    }
}

/// Makes records of [`COLUMNS`] into invoices with their lines (in their positions' order) and
/// their refunds, and hands each to `visit` once it is whole. An invoice's records come one
/// after the other. The invoice handed over is one buffer, refilled: a million invoices cost
/// no allocation each.
struct Assembler<'r, 'v> {
    refunds: &'r HashMap<String, Vec<(i64, i64)>>,
    visit: &'r mut Visit<'v>,
    /// The invoice being read, if one is, its id and its lines' positions.
    invoice: InvoiceService,
    reading: bool,
    id: String,
    positions: Vec<i64>,
    /// Lines kept for reuse.
    spare: Vec<ServiceLine>,
}

impl<'r, 'v> Assembler<'r, 'v> {
    fn new(refunds: &'r HashMap<String, Vec<(i64, i64)>>, visit: &'r mut Visit<'v>) -> Self {
        Self {
            refunds,
            visit,
            invoice: InvoiceService {
                currency: String::new(),
                paid_at: 0,
                amount_paid: 0,
                tax: 0,
                price_id: None,
                lines: Vec::new(),
                refunds: Vec::new(),
            },
            reading: false,
            id: String::new(),
            positions: Vec::new(),
            spare: Vec::new(),
        }
    }

    /// Adds one record, split into its fields.
    fn record<'f>(&mut self, mut fields: impl Iterator<Item = &'f str>) -> Result<(), StoreError> {
        let mut next = || fields.next().ok_or_else(malformed);
        let number = |field: &str| field.parse::<i64>().map_err(|_| malformed());
        let [
            id,
            position,
            currency,
            paid_at,
            amount_paid,
            tax,
            main,
            price,
            amount,
            start,
            end,
        ] = [(); 11].map(|()| next());
        let id = id?;
        let (position, price, amount, start, end) = (position?, price?, amount?, start?, end?);
        let (currency, paid_at, amount_paid, tax, main) =
            (currency?, paid_at?, amount_paid?, tax?, main?);
        if fields.next().is_some() {
            return Err(malformed());
        }
        if !self.reading || id != self.id {
            self.hand_over();
            self.reading = true;
            self.id.clear();
            self.id.push_str(id);
            let invoice = &mut self.invoice;
            invoice.currency.clear();
            invoice.currency.push_str(currency);
            invoice.paid_at = number(paid_at)?;
            invoice.amount_paid = number(amount_paid)?;
            invoice.tax = number(tax)?;
            set_text(&mut invoice.price_id, main);
            invoice.refunds.clear();
            if let Some(refunds) = self.refunds.get(id) {
                invoice.refunds.extend_from_slice(refunds);
            }
        }
        if amount.is_empty() {
            return Ok(());
        }
        let mut line = self.spare.pop().unwrap_or(ServiceLine {
            price_id: None,
            amount: 0,
            period: None,
        });
        set_text(&mut line.price_id, price);
        line.amount = number(amount)?;
        line.period = match (start, end) {
            ("", _) | (_, "") => None,
            (start, end) => Some((number(start)?, number(end)?)),
        };
        self.invoice.lines.push(line);
        self.positions.push(number(position)?);
        Ok(())
    }

    /// Hands over the invoice read last, if any, its lines in their positions' order, and
    /// keeps its lines for reuse.
    fn hand_over(&mut self) {
        if !self.reading {
            return;
        }
        self.reading = false;
        let lines = &mut self.invoice.lines;
        if !self.positions.is_sorted() {
            let mut numbered: Vec<(i64, ServiceLine)> = self
                .positions
                .iter()
                .copied()
                .zip(lines.drain(..))
                .collect();
            numbered.sort_by_key(|(position, _)| *position);
            lines.extend(numbered.into_iter().map(|(_, line)| line));
        }
        self.positions.clear();
        (self.visit)(&self.invoice);
        self.spare.append(&mut self.invoice.lines);
    }

    /// Adds the records of one packed page (fields split by [`FIELD`], records by [`RECORD`]).
    fn packed(&mut self, packed: &str) -> Result<(), StoreError> {
        packed
            .split(RECORD)
            .try_for_each(|record| self.record(record.split(FIELD)))
    }

    /// Adds the whole records at the start of `chunk`, `COPY`'s text format (fields split by
    /// tabs, records ended by newlines, NULL empty), and returns how many bytes they took. A
    /// field with a backslash (`COPY`'s escapes) is refused, never misread: none of the fields
    /// read (ids, currency codes, numbers) may hold one.
    fn copied(&mut self, chunk: &[u8]) -> Result<usize, StoreError> {
        let mut used = 0;
        while let Some(length) = memchr::memchr(b'\n', &chunk[used..]) {
            let line = std::str::from_utf8(&chunk[used..used + length]).map_err(|_| malformed())?;
            if line.contains('\\') {
                return Err(malformed());
            }
            self.record(line.split('\t'))?;
            used += length + 1;
        }
        Ok(used)
    }
}

/// Parts a copied read is cut into, read side by side: the database's cost is mostly in
/// writing the rows out, one core a part.
const COPIED_PARTS: usize = 2;

/// One part of a copied read: its invoices, and the start of a record that has not come whole.
struct CopiedPart<'r, 'v> {
    invoices: Assembler<'r, 'v>,
    pending: Vec<u8>,
}

impl CopiedPart<'_, '_> {
    fn take(&mut self, chunk: &[u8]) -> Result<(), StoreError> {
        self.pending.extend_from_slice(chunk);
        let used = self.invoices.copied(&self.pending)?;
        self.pending.drain(..used);
        Ok(())
    }
}

#[sql_bounds]
impl<DB: Dialect> SqlStore<DB> {
    /// Hands each invoice paid before `before`, with its lines (in order) and `refunds`, to
    /// `visit`, in no particular order.
    pub(super) async fn read_invoice_services(
        &self,
        before: i64,
        refunds: &HashMap<String, Vec<(i64, i64)>>,
        visit: &mut Visit<'_>,
    ) -> Result<(), StoreError> {
        // The parts are read side by side on one task, so the visit is never called by two
        // at once; the lock only lets each part hold it.
        let shared = std::sync::Mutex::new(visit);
        let mut visits: Vec<_> = (0..COPIED_PARTS)
            .map(|_| {
                |invoice: &InvoiceService| {
                    let mut visit = shared
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner);
                    visit(invoice);
                }
            })
            .collect();
        // The join of the two primary keys hands over an invoice's lines together, unsorted:
        // the assembler puts them in order, so the database sorts nothing.
        let selects: Vec<String> = self
            .invoice_id_ranges()
            .await?
            .into_iter()
            .map(|range| {
                format!(
                    "SELECT {COLUMNS} FROM invoices i \
                     LEFT JOIN invoice_lines l ON l.invoice_id = i.id \
                     WHERE i.status = 'paid' AND i.paid_at < {before}{range} ORDER BY i.id"
                )
            })
            .collect();
        let mut parts: Vec<CopiedPart> = visits
            .iter_mut()
            .map(|visit| CopiedPart {
                invoices: Assembler::new(refunds, visit),
                pending: Vec::new(),
            })
            .collect();
        let copied = {
            let mut sinks: Vec<_> = parts
                .iter_mut()
                .map(|part| move |chunk: &[u8]| part.take(chunk))
                .collect();
            let copies: Option<Vec<_>> = sinks
                .iter_mut()
                .zip(&selects)
                .map(|(sink, select)| DB::copy_out(&self.pool, select, sink))
                .collect();
            match copies {
                Some(copies) => futures_util::future::try_join_all(copies)
                    .await
                    .map(|_| true)?,
                None => false,
            }
        };
        let Some(first) = parts.first_mut() else {
            return Ok(());
        };
        if !copied {
            self.read_packed_pages(before, &mut first.invoices).await?;
        }
        for part in &mut parts {
            // COPY's text ends every record with a newline.
            if !part.pending.is_empty() {
                return Err(malformed());
            }
            part.invoices.hand_over();
        }
        Ok(())
    }

    /// Conditions on `i.id` (each empty or starting with ` AND `) that cut the invoices into
    /// [`COPIED_PARTS`] ranges of about as many each, from the database's histogram of their
    /// ids; one range, all of them, where there is none. A bound is written into the SQL
    /// (`COPY` takes no parameters), so one that is not a plain id is not used.
    async fn invoice_id_ranges(&self) -> Result<Vec<String>, StoreError> {
        let all = vec![String::new()];
        let Some(histogram) = DB::COLUMN_HISTOGRAM else {
            return Ok(all);
        };
        let bounds: Vec<(String,)> = sqlx::query_as::<DB, (String,)>(histogram)
            .bind("invoices".to_owned())
            .bind("id".to_owned())
            .fetch_all(&self.pool)
            .await?;
        let plain =
            |id: &str| !id.is_empty() && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        let cuts: Vec<&str> = (1..COPIED_PARTS)
            .filter_map(|k| bounds.get(k * bounds.len() / COPIED_PARTS))
            .map(|(bound,)| bound.as_str())
            .collect();
        if cuts.len() + 1 != COPIED_PARTS || !cuts.iter().all(|cut| plain(cut)) {
            return Ok(all);
        }
        let mut ranges = Vec::new();
        let mut low: Option<&str> = None;
        for high in cuts.iter().copied().map(Some).chain([None]) {
            let mut range = String::new();
            if let Some(low) = low {
                range.push_str(&format!(" AND i.id >= '{low}'"));
            }
            if let Some(high) = high {
                range.push_str(&format!(" AND i.id < '{high}'"));
            }
            ranges.push(range);
            low = high;
        }
        Ok(ranges)
    }

    /// Reads invoices paid before `before` a page at a time, each page packed by the database
    /// into one text, the next read while the last is taken apart.
    async fn read_packed_pages(
        &self,
        before: i64,
        invoices: &mut Assembler<'_, '_>,
    ) -> Result<(), StoreError> {
        let sql = format!(
            "SELECT {aggregate}(x, $4 ORDER BY id, position) AS packed, MAX(id) AS last \
             FROM (SELECT i.id, COALESCE(l.position, 0) AS position, \
               i.id || $3 || COALESCE(CAST(l.position AS TEXT), '') || $3 || i.currency || $3 || \
               CAST(i.paid_at AS TEXT) || $3 || \
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
        let page = |after: String| {
            sqlx::query_as::<DB, (Option<String>, Option<String>)>(&sql)
                .bind(before)
                .bind(after)
                .bind(FIELD.to_string())
                .bind(RECORD.to_string())
                .bind(PAGE)
                .fetch_one(&self.pool)
        };
        let mut read = page(String::new()).await?;
        // The next page is asked for before this one is taken apart, so that the database
        // reads it meanwhile.
        while let (Some(packed), Some(last)) = read {
            let (next, taken) =
                futures_util::future::join(page(last), async { invoices.packed(&packed) }).await;
            taken?;
            read = next?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eur_invoice_of_two_lines() -> InvoiceService {
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
        }
    }

    fn usd_invoice_without_lines() -> InvoiceService {
        InvoiceService {
            currency: "usd".into(),
            paid_at: 200,
            amount_paid: 500,
            tax: 0,
            price_id: None,
            lines: Vec::new(),
            refunds: Vec::new(),
        }
    }

    fn refunds() -> HashMap<String, Vec<(i64, i64)>> {
        HashMap::from([("in_a".to_owned(), vec![(150, 300)])])
    }

    /// What `read` hands over, each invoice copied as it was when handed over.
    fn handed_over(
        read: impl FnOnce(&mut Assembler<'_, '_>) -> Result<(), StoreError>,
    ) -> Result<Vec<InvoiceService>, StoreError> {
        let refunds = refunds();
        let mut seen = Vec::new();
        let mut visit = |invoice: &InvoiceService| seen.push(invoice.clone());
        let mut invoices = Assembler::new(&refunds, &mut visit);
        read(&mut invoices)?;
        invoices.hand_over();
        Ok(seen)
    }

    #[test]
    fn packed_invoices_come_apart_into_their_lines_with_their_refunds() {
        let record = |fields: [&str; 11]| fields.join(&FIELD.to_string());
        let packed = [
            record([
                "in_a", "0", "eur", "100", "1190", "190", "price_m", "price_m", "750", "10", "20",
            ]),
            record([
                "in_a", "1", "eur", "100", "1190", "190", "price_m", "", "250", "", "",
            ]),
            record(["in_b", "", "usd", "200", "500", "0", "", "", "", "", ""]),
        ]
        .join(&RECORD.to_string());
        assert_eq!(
            handed_over(|invoices| invoices.packed(&packed)).unwrap(),
            [eur_invoice_of_two_lines(), usd_invoice_without_lines()]
        );
        // A text field holding a separator cannot be read back: refused, never misread.
        let broken = record(["in_c", "", "e\u{1f}ur", "1", "1", "0", "", "", "", "", ""]);
        assert!(handed_over(|invoices| invoices.packed(&broken)).is_err());
        assert!(handed_over(|invoices| invoices.packed("in_d\u{1f}\u{1f}eur")).is_err());
    }

    #[test]
    fn copied_records_split_anywhere_across_chunks_make_the_same_invoices_lines_in_order() {
        // The lines of in_a come in the order of their ids, not their positions; in_c reuses
        // the buffer in_a's two lines left and must not keep anything of them.
        let text = "in_a\t1\teur\t100\t1190\t190\tprice_m\t\t250\t\t\n\
                    in_a\t0\teur\t100\t1190\t190\tprice_m\tprice_m\t750\t10\t20\n\
                    in_b\t\tusd\t200\t500\t0\t\t\t\t\t\n\
                    in_c\t0\tusd\t300\t900\t0\t\tprice_y\t900\t30\t40\n";
        let in_c = InvoiceService {
            currency: "usd".into(),
            paid_at: 300,
            amount_paid: 900,
            tax: 0,
            price_id: None,
            lines: vec![ServiceLine {
                price_id: Some("price_y".into()),
                amount: 900,
                period: Some((30, 40)),
            }],
            refunds: Vec::new(),
        };
        for cut in 0..=text.len() {
            let mut pending = Vec::new();
            let seen = handed_over(|invoices| {
                for chunk in [&text.as_bytes()[..cut], &text.as_bytes()[cut..]] {
                    pending.extend_from_slice(chunk);
                    let used = invoices.copied(&pending)?;
                    pending.drain(..used);
                }
                Ok(())
            })
            .unwrap();
            assert!(pending.is_empty());
            assert_eq!(
                seen,
                [
                    eur_invoice_of_two_lines(),
                    usd_invoice_without_lines(),
                    in_c.clone()
                ],
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn a_copied_field_with_an_escape_or_a_record_with_a_field_too_many_is_refused() {
        for text in [
            "in_a\t\teu\\tr\t1\t1\t0\t\t\t\t\t\n",
            "in_a\t\teur\t1\t1\t0\t\t\t\t\t\t\n",
            "in_a\t\teur\tsoon\t1\t0\t\t\t\t\t\n",
        ] {
            let read = handed_over(|invoices| invoices.copied(text.as_bytes()).map(|_| ()));
            assert!(read.is_err(), "{text:?} was read");
        }
    }
}
