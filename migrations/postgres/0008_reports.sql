-- What finance reports need from invoices: the tax and discounts they carry, and the price of
-- their largest line, which names the plan the invoice's revenue belongs to.
ALTER TABLE invoices ADD COLUMN tax BIGINT NOT NULL DEFAULT 0;
ALTER TABLE invoices ADD COLUMN discount BIGINT NOT NULL DEFAULT 0;
ALTER TABLE invoices ADD COLUMN price_id TEXT;
UPDATE invoices SET price_id = (
    SELECT l.price_id FROM invoice_lines l
    WHERE l.invoice_id = invoices.id AND l.price_id IS NOT NULL
    ORDER BY l.amount DESC, l.position LIMIT 1
);
-- MRR reads the paid invoices of subscriptions that ever had a discount, from these two.
CREATE INDEX invoices_discounted ON invoices (subscription_id) WHERE discount > 0;
CREATE INDEX invoices_paid_by_subscription ON invoices (subscription_id, paid_at, subtotal, discount)
    WHERE status = 'paid';
-- Revenue reads paid invoices by time: this index holds all it needs, so the table is not read.
CREATE INDEX invoices_paid_revenue ON invoices (paid_at, currency, price_id, amount_paid, tax)
    WHERE status = 'paid';
