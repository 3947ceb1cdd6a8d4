-- Whether the order waits for approval is decided once, by the API, from the total; it is
-- stored with the order instead of being read back from the approval step's row.
ALTER TABLE orders ADD COLUMN requires_approval boolean NOT NULL DEFAULT false;

UPDATE orders o SET requires_approval = true
 WHERE EXISTS (SELECT 1 FROM order_steps s
                WHERE s.order_id = o.id AND s.name = 'approval' AND s.status <> 'SKIPPED');
