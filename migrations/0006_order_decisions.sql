-- Who approved, rejected or cancelled an order, and when (CONTRACT §2, GET /orders/:id
-- `decisions`): one row per request the API accepted. `principal` is the caller's id (an API
-- key's id, a JWT's sub, `static` for API_TOKENS, `anonymous` without auth), never a token.
-- A client retry of the same request (same X-Request-Id) is recorded once.
CREATE TABLE order_decisions (
  id          bigserial PRIMARY KEY,
  order_id    uuid NOT NULL REFERENCES orders (id),
  action      text NOT NULL CHECK (action IN ('approve', 'reject', 'cancel')),
  principal   text NOT NULL CHECK (length(principal) BETWEEN 1 AND 255),
  request_id  text NOT NULL,
  decided_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
  UNIQUE (order_id, action, request_id)
);
CREATE INDEX order_decisions_order_idx ON order_decisions (order_id, decided_at, id);
