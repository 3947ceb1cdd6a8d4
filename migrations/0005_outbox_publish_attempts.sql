-- Exactly once without a time limit (see relay/relay.ts, point 4). Before the relay first
-- publishes a row it records when, and the stream's last sequence it knew then: should the
-- PubAck be lost and the row stay unmarked past the stream's duplicate window, the relay
-- looks for the row's Nats-Msg-Id on the stream after that sequence instead of publishing
-- it again blind. Both stay NULL until a first attempt.
ALTER TABLE outbox
  ADD COLUMN publish_attempted_at timestamptz,
  ADD COLUMN publish_floor_seq    bigint;

-- Rows still unpublished now may have been sent by a relay of the previous version, which
-- recorded nothing: count them as attempted when they occurred, from the stream's start.
UPDATE outbox SET publish_attempted_at = occurred_at, publish_floor_seq = 0
 WHERE published_at IS NULL;
