/** Larger files are refused: a pipeline is configuration, not data. */
export const MAX_PIPELINE_BYTES = 1024 * 1024;
/** Deeper nesting is refused before the document is composed, so nothing can overflow the stack. */
export const MAX_NESTING_DEPTH = 200;
/**
 * Alias uses (counting those reached through other aliases) allowed while building the value:
 * enough for sharing a few blocks, far too few for an exponential "billion laughs" expansion.
 */
export const MAX_ALIAS_COUNT = 100;
