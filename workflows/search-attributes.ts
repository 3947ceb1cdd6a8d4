import { defineSearchAttributeKey, SearchAttributeType } from '@temporalio/common';

/** Typed keys for the search attributes the saga keeps current (see contracts.ts). */
export const OrderIdKey = defineSearchAttributeKey('OrderId', SearchAttributeType.KEYWORD);
export const CustomerIdKey = defineSearchAttributeKey('CustomerId', SearchAttributeType.KEYWORD);
export const OrderStatusKey = defineSearchAttributeKey('OrderStatus', SearchAttributeType.KEYWORD);
export const OrderTotalCentsKey = defineSearchAttributeKey('OrderTotalCents', SearchAttributeType.INT);
