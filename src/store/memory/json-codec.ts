/**
 * Moved to src/store/json-codec.ts. This re-export stays only for postgres/queue.ts, which is being
 * edited by someone else; delete it once that file imports '../json-codec.js'.
 */
export { cloneJson, hashPlanText, parseJsonColumn, parseParams, parsePlan, toDict } from '../json-codec.js';
