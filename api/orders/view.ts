import { isTerminal } from '../../contracts/index';
import type { ApiConfig } from '../config';
import type { OrderRow } from '../../store/order-views';
import type { OrderView } from '../schemas/orders';

export const orderPath = (orderId: string): string => `/orders/${orderId}`;

/** Deep link to the workflow in the Temporal Web UI. */
export function temporalUiLink(config: ApiConfig, workflowId: string): string {
  const namespace = encodeURIComponent(config.temporal.namespace);
  return `${config.temporalUiUrl}/namespaces/${namespace}/workflows/${encodeURIComponent(workflowId)}`;
}

export function toOrderView(row: OrderRow, config: ApiConfig): OrderView {
  const self = orderPath(row.id);
  return {
    orderId: row.id,
    status: row.status,
    customerId: row.customer_id,
    items: row.items,
    totalCents: row.total_cents,
    currency: row.currency,
    failureReason: row.failure_reason,
    payment: { status: row.payment_status ?? 'NONE' },
    shipment: {
      status: row.shipment_status ?? 'NONE',
      ...(row.tracking_number !== null ? { trackingNumber: row.tracking_number } : {}),
    },
    steps: row.steps,
    decisions: row.decisions,
    createdAt: row.created_at.toISOString(),
    updatedAt: row.updated_at.toISOString(),
    links: {
      self,
      temporalUi: temporalUiLink(config, row.workflow_id),
      // Only the actions that can still succeed are offered.
      ...(isTerminal(row.status) ? {} : { cancel: `${self}/cancel` }),
      ...(row.status === 'AWAITING_APPROVAL' ? { approve: `${self}/approve`, reject: `${self}/reject` } : {}),
    },
  };
}
