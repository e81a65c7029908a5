import type { AnyHandler } from '../handlers/types.js';
import { evaluateInterventionsHandler } from './evaluate-interventions.js';
import { fetchInteractionsHandler } from './fetch-interactions.js';
import { refreshMaterializedViewsHandler } from './refresh-views.js';
import { runCausalAnalysisHandler } from './run-causal-analysis.js';
import { storeMetricsHandler } from './store-metrics.js';
import { updateGraphIncrementalHandler } from './update-graph.js';

export {
  closeOrganismConnections,
  getPool,
  getRedis,
  DEFAULT_DATABASE_URL,
  DEFAULT_REDIS_URL,
} from './connections.js';
export { migrateOrganism, ensureOrganismSchema, type MigrateResult, type MetricsStorage } from './migrate.js';
export { ORGANISM_MIGRATIONS, type OrganismMigration } from './migrations/index.js';
export {
  analyseOrganism,
  analysisToMetricRows,
  pairSubject,
  PERSON_METRICS,
  type AnalyseInput,
  type AnalysisEdge,
  type AnalysisDaily,
  type AnalysisOptions,
  type OrganismAnalysis,
  type PersonMetrics,
  type PairInfluence,
  type MetricRow,
} from './analyse.js';
export { grangerInfluence, residualSumOfSquares, type GrangerResult } from './granger.js';
export { localClustering } from './clustering.js';
export { emitInteractions, type EmitOptions, type EmitResult } from './emit.js';
export { parseInteraction, parseTimestamp, type Interaction } from './interaction.js';
export {
  fetchInteractions,
  fetchInteractionsHandler,
  type FetchInteractionsArgs,
  type InteractionBatch,
} from './fetch-interactions.js';
export {
  updateGraphIncremental,
  updateGraphIncrementalHandler,
  type UpdateGraphArgs,
  type UpdateGraphResult,
} from './update-graph.js';
export { refreshMaterializedViewsHandler, quoteViewName, ORGANISM_VIEWS } from './refresh-views.js';
export {
  runCausalAnalysis,
  runCausalAnalysisHandler,
  type RunCausalAnalysisArgs,
  type RunCausalAnalysisResult,
} from './run-causal-analysis.js';
export {
  storeMetrics,
  storeMetricsHandler,
  type StoreMetricsArgs,
  type StoreMetricsResult,
} from './store-metrics.js';
export {
  evaluateInterventions,
  evaluateInterventionsHandler,
  type EvaluateInterventionsArgs,
  type EvaluateInterventionsResult,
  type InterventionRule,
} from './evaluate-interventions.js';

/** Every Causal Organism handler, for the CLI's registry. */
export const organismHandlers: AnyHandler[] = [
  fetchInteractionsHandler,
  updateGraphIncrementalHandler,
  refreshMaterializedViewsHandler,
  runCausalAnalysisHandler,
  storeMetricsHandler,
  evaluateInterventionsHandler,
];
