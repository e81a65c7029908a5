import type { Options } from 'ajv';

/**
 * The options every ajv instance in weft is built with. Strict mode makes a schema with an unknown
 * keyword or format, a `required` naming nothing, or an ambiguous tuple a compile error instead of
 * a silently ignored rule — a typo such as `minimun` in a handler's `args` schema is reported by
 * `weft validate` rather than accepted. `$data` stays off (its default): schemas never take their
 * limits from the document being validated. `strictTypes` is off: a handler author's
 * `properties` without `type: object` is legal JSON Schema and not worth failing on.
 */
export const STRICT_AJV_OPTIONS = {
  strict: true,
  strictTypes: false,
  allErrors: true,
  $data: false,
} as const satisfies Options;
