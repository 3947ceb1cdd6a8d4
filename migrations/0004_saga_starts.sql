-- DB-first acceptance: an order is accepted when its row, its OrderCreated event, its
-- Idempotency-Key response and this start request commit together. The saga is started
-- from here: by the API right after the commit, and by the starter for whatever is left.
-- The row goes once Temporal has the run (its input holds the payment token, kept no longer
-- than that).
CREATE TABLE saga_starts (
  order_id        uuid PRIMARY KEY REFERENCES orders (id),
  input           jsonb NOT NULL,
  requested_at    timestamptz NOT NULL DEFAULT now(),
  -- The starter leaves a fresh request to the API's own attempt for a moment.
  next_attempt_at timestamptz NOT NULL,
  attempts        integer NOT NULL DEFAULT 0,
  last_error      text
);
CREATE INDEX saga_starts_due_idx ON saga_starts (next_attempt_at);

-- Only the request holding an Idempotency-Key's lock records its response: a request whose
-- lock lapsed and was taken over must not overwrite the new holder's answer.
ALTER TABLE http_idempotency_keys ADD COLUMN lock_token uuid;
