export { createPostgresTaskQueue, type PostgresQueueOptions } from './queue/index.js';
