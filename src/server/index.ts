/** The HTTP API and dashboard of `weft serve`. */
export { createHttpServer, type HttpServer, type HttpServerOptions } from './http-server.js';
export { checkBindSecurity, isLoopbackHost, API_TOKEN_ENV } from './bind-security.js';
export type { PipelineEntry, SchedulerView } from './pipelines.js';
export type { ServerLogger } from './context.js';
export { ROUTES, type Route, type Access } from './routes.js';
export { collectMetrics, renderMetrics } from './metrics.js';
