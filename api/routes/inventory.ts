import type { FastifyPluginCallbackTypebox } from '@fastify/type-provider-typebox';
import type { RouteDeps } from '../deps';
import { needs } from '../plugins/auth';
import { problems } from '../problems';
import { findProduct, upsertProduct } from '../../store/products';
import { problemResponses } from '../schemas/common';
import { Product, ProductInput, SkuParams } from '../schemas/inventory';

export const inventoryRoutes: FastifyPluginCallbackTypebox<RouteDeps> = (app, { pool }, done) => {
  app.get(
    '/inventory/:sku',
    {
      schema: {
        operationId: 'getProduct',
        summary: 'A product with its stock',
        tags: ['inventory'],
        security: needs('orders:read'),
        params: SkuParams,
        response: { 200: Product, ...problemResponses(403, 404) },
      },
    },
    async (request) => {
      const product = await findProduct(pool, request.params.sku);
      if (!product) throw problems.productNotFound(request.params.sku);
      return product;
    },
  );

  app.put(
    '/inventory/:sku',
    {
      schema: {
        operationId: 'putProduct',
        summary: 'Create or replace a product (admin)',
        description: 'Sets name, price and available stock; units reserved by orders in progress are kept.',
        tags: ['inventory'],
        security: needs('catalog:write'),
        params: SkuParams,
        body: ProductInput,
        response: { 200: Product, ...problemResponses(403, 413, 415) },
      },
    },
    async (request) => upsertProduct(pool, request.params.sku, request.body),
  );
  done();
};
