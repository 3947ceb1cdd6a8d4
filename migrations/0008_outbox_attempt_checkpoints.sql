-- Exactly once without a write before every publish (relay/relay.ts, point 4). Instead of
-- recording each row's attempt before sending it, a relay keeps one checkpoint per partition
-- it holds: every attempt to publish a row of the partition that is neither marked nor
-- recorded on the row itself happened after `attempts_since` (the database's clock), and a
-- copy it stored has a stream sequence above `attempts_floor_seq`. A relay sets it when it
-- begins a tenure (after copying the previous holder's checkpoint onto that partition's
-- pending rows) and moves it forward in the statement that marks its published rows. NULL:
-- no such attempt exists (never used, or given back by a relay that had marked or recorded
-- everything it sent).
ALTER TABLE outbox_partitions
  ADD COLUMN attempts_since     timestamptz,
  ADD COLUMN attempts_floor_seq bigint;
