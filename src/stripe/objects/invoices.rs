//! Invoices with their lines, and the invoice payments that settle them.

use serde_json::Value;

use super::ObjectError;
use super::fields::{id, int, list, text, time};
use crate::domain::{Invoice, InvoiceLine, InvoicePayment, InvoiceStatus, StripePriceId};

/// An invoice snapshot with its lines.
pub fn invoice(object: &Value) -> Result<Invoice, ObjectError> {
    let status = text(object, "/status").ok_or(ObjectError::Missing("status"))?;
    let status = status
        .parse::<InvoiceStatus>()
        .map_err(|_| ObjectError::UnknownStatus {
            kind: "invoice status",
            value: status,
        })?;
    let currency = text(object, "/currency").ok_or(ObjectError::Missing("currency"))?;
    let lines = list(object, "/lines/data")
        .iter()
        .map(|line| invoice_line(line, &currency))
        .collect::<Result<_, _>>()?;
    Ok(Invoice {
        id: text(object, "/id").ok_or(ObjectError::Missing("id"))?,
        customer_id: id(object, "/customer"),
        subscription_id: id(object, "/parent/subscription_details/subscription")
            .or_else(|| id(object, "/subscription")),
        status,
        amount_due: int(object, "/amount_due").unwrap_or(0),
        amount_paid: int(object, "/amount_paid").unwrap_or(0),
        subtotal: int(object, "/subtotal").unwrap_or(0),
        total: int(object, "/total").unwrap_or(0),
        tax: invoice_tax(object),
        discount: sum_of(object, "/total_discount_amounts"),
        period_start: time(object, "/period_start"),
        period_end: time(object, "/period_end"),
        created: time(object, "/created"),
        paid_at: time(object, "/status_transitions/paid_at"),
        billing_reason: text(object, "/billing_reason"),
        charge_id: id(object, "/charge"),
        payment_intent_id: id(object, "/payment_intent"),
        currency,
        lines,
    })
}

/// The tax on an invoice: `total_taxes` (basil and later), `total_tax_amounts` or `tax` before.
fn invoice_tax(object: &Value) -> i64 {
    if object.get("total_taxes").is_some_and(Value::is_array) {
        sum_of(object, "/total_taxes")
    } else if object.get("total_tax_amounts").is_some_and(Value::is_array) {
        sum_of(object, "/total_tax_amounts")
    } else {
        int(object, "/tax").unwrap_or(0)
    }
}

/// The sum of the `amount`s of the objects listed at `pointer`.
fn sum_of(object: &Value, pointer: &str) -> i64 {
    list(object, pointer)
        .iter()
        .filter_map(|entry| int(entry, "/amount"))
        .sum()
}

fn invoice_line(line: &Value, currency: &str) -> Result<InvoiceLine, ObjectError> {
    let item_details = "/parent/subscription_item_details";
    Ok(InvoiceLine {
        id: text(line, "/id").ok_or(ObjectError::Missing("lines.data[].id"))?,
        price: id(line, "/pricing/price_details/price")
            .or_else(|| id(line, "/price"))
            .or_else(|| id(line, "/plan"))
            .and_then(|p| StripePriceId::parse(&p)),
        subscription_item: id(line, &format!("{item_details}/subscription_item"))
            .or_else(|| id(line, "/subscription_item")),
        amount: int(line, "/amount").ok_or(ObjectError::Missing("lines.data[].amount"))?,
        discount_amount: sum_of(line, "/discount_amounts"),
        currency: text(line, "/currency").unwrap_or_else(|| currency.to_owned()),
        quantity: int(line, "/quantity"),
        period_start: time(line, "/period/start"),
        period_end: time(line, "/period/end"),
        proration: line
            .pointer(&format!("{item_details}/proration"))
            .or_else(|| line.get("proration"))
            .and_then(Value::as_bool)
            .unwrap_or(false),
        description: text(line, "/description"),
    })
}

/// A payment that settled an invoice.
pub fn invoice_payment(object: &Value) -> Result<InvoicePayment, ObjectError> {
    Ok(InvoicePayment {
        id: text(object, "/id").ok_or(ObjectError::Missing("id"))?,
        invoice_id: id(object, "/invoice").ok_or(ObjectError::Missing("invoice"))?,
        payment_intent_id: id(object, "/payment/payment_intent"),
        charge_id: id(object, "/payment/charge"),
        amount_paid: int(object, "/amount_paid"),
        currency: text(object, "/currency"),
        status: text(object, "/status"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Change;
    use crate::stripe::objects::changes;
    use crate::stripe::objects::fixtures::{fixture, only};

    #[test]
    fn invoices_of_both_shapes_name_their_subscription_and_line_prices() {
        let Change::Invoice(current) = only(changes("invoice.paid", &fixture("invoice")).unwrap())
        else {
            panic!("not an invoice");
        };
        assert_eq!(
            current.subscription_id.as_deref(),
            Some("sub_1TPeerSubscr0001")
        );
        assert_eq!(current.status, InvoiceStatus::Paid);
        assert_eq!(
            current.lines[0].price.as_ref().unwrap().as_str(),
            "price_1TPeerMonthly01"
        );
        assert_eq!(
            current.lines[0].subscription_item.as_deref(),
            Some("si_TPeerItem0001")
        );
        assert_eq!(current.lines[0].amount, 999);

        let Change::Invoice(legacy) =
            only(changes("invoice.paid", &fixture("legacy_invoice")).unwrap())
        else {
            panic!("not an invoice");
        };
        assert_eq!(
            legacy.subscription_id.as_deref(),
            Some("sub_1LegacySubscr007")
        );
        assert_eq!(legacy.charge_id.as_deref(), Some("ch_1LegacyCharge0007"));
        assert_eq!(
            legacy.lines[0].price.as_ref().unwrap().as_str(),
            "plan_LegacyYearly07"
        );
        assert_eq!(legacy.amount_paid, 9900);
        assert_eq!(legacy.currency, "usd");
    }

    #[test]
    fn an_invoice_payment_links_by_intent() {
        let Change::InvoicePayment(payment) =
            only(changes("invoice_payment.paid", &fixture("invoice_payment")).unwrap())
        else {
            panic!("not an invoice payment");
        };
        assert_eq!(payment.invoice_id, "in_1TPeerInvoice001");
        assert_eq!(
            payment.payment_intent_id.as_deref(),
            Some("pi_3TPeerPayment001")
        );
    }
}
