-- Asynchronous issuer orders (sqlite dialect; mirrors the other 0008_issuer_orders.sql).
--
-- An issuer that answers `pending(order-id)` leaves its order id on the job before the job
-- is rescheduled for polling, so a restarted server polls that order instead of ordering
-- again. placed_at starts the order's deadline; polls counts order-status calls (it picks
-- the backoff step).
ALTER TABLE jobs ADD COLUMN issuer_order_id TEXT;
ALTER TABLE jobs ADD COLUMN issuer_order_placed_at TEXT;
ALTER TABLE jobs ADD COLUMN issuer_order_polls INTEGER NOT NULL DEFAULT 0;
