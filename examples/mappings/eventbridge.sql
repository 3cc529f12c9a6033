-- The table examples/mappings/eventbridge.toml loads: one row per OrderPlaced event.
CREATE SCHEMA IF NOT EXISTS shop;
CREATE TABLE shop.orders (
  order_id       text NOT NULL,
  amount         numeric(12,2) NOT NULL,
  currency       text,
  customer_id    text,
  customer_email text NOT NULL,        -- an AES-256-SIV token (context "email"), never the address
  items          jsonb,
  placed_at      timestamptz NOT NULL, -- the EventBridge event's `time`
  event_id       uuid,                 -- the EventBridge event's `id`
  received_at    timestamptz NOT NULL DEFAULT now()
);
-- `key = ["order_id"]` needs a unique index on exactly that column.
CREATE UNIQUE INDEX orders_order_id ON shop.orders (order_id);
