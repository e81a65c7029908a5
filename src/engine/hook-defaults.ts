/**
 * A hook without a `timeout` may run this long. The compiler applies it; the engine applies it too,
 * to plans stored before hooks had timeouts.
 */
export const DEFAULT_HOOK_TIMEOUT_MS = 5 * 60_000;
