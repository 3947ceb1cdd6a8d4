-- The relay skips events of an order with an earlier row that is waiting to retry or parked.
-- Without this index that check scans the whole pending backlog (1.6 s a batch on a fresh
-- backlog without planner statistics, measured by npm run bench); with it, 9.5 ms.
CREATE INDEX outbox_blocked_idx ON outbox (aggregate_id, sequence)
  WHERE published_at IS NULL AND (parked_at IS NOT NULL OR next_attempt_at IS NOT NULL);
