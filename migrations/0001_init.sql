-- Catalog and stock. `available` is what can still be reserved; `reserved` is held by
-- orders in progress. Neither can go below zero, whatever the load.
CREATE TABLE products (
  sku         text PRIMARY KEY CHECK (length(sku) BETWEEN 1 AND 64),
  name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
  price_cents bigint NOT NULL CHECK (price_cents >= 0),
  available   integer NOT NULL CHECK (available >= 0),
  reserved    integer NOT NULL DEFAULT 0 CHECK (reserved >= 0),
  updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE orders (
  id               uuid PRIMARY KEY,
  workflow_id      text NOT NULL UNIQUE,
  customer_id      text NOT NULL CHECK (length(customer_id) BETWEEN 1 AND 64),
  status           text NOT NULL CHECK (status IN ('PENDING', 'AWAITING_APPROVAL', 'COMPENSATING',
                     'REQUIRES_ATTENTION', 'COMPLETED', 'FAILED', 'CANCELLED')),
  failure_reason   text CHECK (failure_reason IN ('insufficient_stock', 'payment_declined',
                     'shipping_unavailable', 'approval_rejected', 'approval_timeout', 'step_timeout',
                     'fraud_suspected')),
  total_cents      bigint NOT NULL CHECK (total_cents >= 0),
  currency         text NOT NULL DEFAULT 'USD',
  shipping_address jsonb NOT NULL,
  correlation_id   text,
  -- Last outbox sequence number used for this order: events are numbered 1, 2, 3, …
  -- under this row's lock, so an order's events commit in sequence order.
  event_seq        integer NOT NULL DEFAULT 0,
  created_at       timestamptz NOT NULL DEFAULT now(),
  updated_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX orders_created_idx  ON orders (created_at DESC, id DESC);
CREATE INDEX orders_customer_idx ON orders (customer_id, created_at DESC, id DESC);
CREATE INDEX orders_status_idx   ON orders (status, created_at DESC, id DESC);

CREATE TABLE order_items (
  order_id         uuid NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
  line             integer NOT NULL,
  sku              text NOT NULL REFERENCES products (sku),
  quantity         integer NOT NULL CHECK (quantity BETWEEN 1 AND 1000),
  unit_price_cents bigint NOT NULL CHECK (unit_price_cents >= 0),
  PRIMARY KEY (order_id, line),
  UNIQUE (order_id, sku)
);

-- The saga's steps as the API shows them.
CREATE TABLE order_steps (
  order_id   uuid NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
  position   integer NOT NULL,
  name       text NOT NULL,
  status     text NOT NULL CHECK (status IN ('PENDING', 'RUNNING', 'COMPLETED', 'FAILED',
               'COMPENSATING', 'COMPENSATED', 'SKIPPED')),
  attempts   integer NOT NULL DEFAULT 0,
  updated_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (order_id, name)
);

CREATE TABLE inventory_reservations (
  order_id uuid NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
  sku      text NOT NULL REFERENCES products (sku),
  quantity integer NOT NULL CHECK (quantity > 0),
  status   text NOT NULL CHECK (status IN ('RESERVED', 'RELEASED', 'CONSUMED')),
  updated_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (order_id, sku)
);

CREATE TABLE payments (
  order_id      uuid PRIMARY KEY REFERENCES orders (id) ON DELETE CASCADE,
  status        text NOT NULL CHECK (status IN ('CAPTURED', 'DECLINED', 'REFUNDED')),
  amount_cents  bigint NOT NULL CHECK (amount_cents >= 0),
  provider_ref  text,
  created_at    timestamptz NOT NULL DEFAULT now(),
  updated_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE shipments (
  order_id        uuid PRIMARY KEY REFERENCES orders (id) ON DELETE CASCADE,
  status          text NOT NULL CHECK (status IN ('CREATED', 'CANCELLED')),
  carrier         text NOT NULL,
  tracking_number text NOT NULL,
  created_at      timestamptz NOT NULL DEFAULT now(),
  updated_at      timestamptz NOT NULL DEFAULT now()
);

-- Transactional outbox. `body` is the exact JSON message published to NATS.
CREATE TABLE outbox (
  position       bigserial PRIMARY KEY,
  id             uuid NOT NULL UNIQUE,
  aggregate_type text NOT NULL,
  aggregate_id   uuid NOT NULL,
  sequence       integer NOT NULL CHECK (sequence >= 1),
  type           text NOT NULL,
  subject        text NOT NULL,
  body           jsonb NOT NULL,
  occurred_at    timestamptz NOT NULL DEFAULT now(),
  txid           xid8 NOT NULL DEFAULT pg_current_xact_id(),
  published_at   timestamptz,
  attempts       integer NOT NULL DEFAULT 0,
  last_error     text,
  next_attempt_at timestamptz,
  parked_at      timestamptz,
  UNIQUE (aggregate_id, sequence)
);
CREATE INDEX outbox_pending_idx ON outbox (position) WHERE published_at IS NULL;
CREATE INDEX outbox_published_idx ON outbox (published_at) WHERE published_at IS NOT NULL;

CREATE FUNCTION outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('outbox', '');
  RETURN NULL;
END $$;
CREATE TRIGGER outbox_notify AFTER INSERT ON outbox
  FOR EACH STATEMENT EXECUTE FUNCTION outbox_notify();

-- Per-step activity ledger: one row per (workflow id, step), written in the step's own
-- transaction. A retried or duplicated activity finds the row and returns `result`.
CREATE TABLE activity_ledger (
  idempotency_key text PRIMARY KEY,
  workflow_id     text NOT NULL,
  step            text NOT NULL,
  result          jsonb,
  created_at      timestamptz NOT NULL DEFAULT now(),
  UNIQUE (workflow_id, step)
);

-- HTTP Idempotency-Key records, scoped to the caller.
CREATE TABLE http_idempotency_keys (
  scope            text NOT NULL,
  key              text NOT NULL,
  fingerprint      text NOT NULL,
  order_id         uuid NOT NULL,
  state            text NOT NULL CHECK (state IN ('IN_FLIGHT', 'DONE')),
  response_status  integer,
  response_body    jsonb,
  locked_until     timestamptz,
  created_at       timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (scope, key)
);
CREATE INDEX http_idempotency_keys_created_idx ON http_idempotency_keys (created_at);

-- The simulated payment gateway and carrier keep their own idempotency records, as a
-- real provider does on its side. They are adapters' state, not business rows.
CREATE TABLE simulated_provider_requests (
  provider        text NOT NULL,
  idempotency_key text NOT NULL,
  calls           integer NOT NULL DEFAULT 0,
  request         jsonb,
  response        jsonb,
  PRIMARY KEY (provider, idempotency_key)
);
