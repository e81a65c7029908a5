/**
 * `FromSchema<S>`: the TypeScript type of the values a JSON Schema literal accepts, so a handler's
 * `run` is typed from the same `args` schema the engine validates with — one source of truth.
 *
 * Covered: `type` (one or a list), `enum`, `const`, objects (`properties`, `required`,
 * `additionalProperties`), arrays (`items`), `oneOf`/`anyOf`, `nullable`-style `type: [x, 'null']`,
 * nested to any depth. Not covered (the type widens to `unknown`): `$ref`, `allOf`, `if/then`,
 * `patternProperties`, `prefixItems`. Constraints such as `minimum` or `pattern` have no type and
 * are checked at run time only.
 */

type Schema = { readonly [key: string]: unknown };

/** Flattens intersections so editors show `{ a: string; b?: number }` rather than `A & B`. */
type Prettify<T> = { [K in keyof T]: T[K] } & {};

type Simplify<T> = T extends object ? (T extends readonly unknown[] ? T : Prettify<T>) : T;

export type FromSchema<S> = S extends boolean
  ? S extends true
    ? unknown
    : never
  : S extends { readonly const: infer C }
    ? Mutable<C>
    : S extends { readonly enum: readonly (infer E)[] }
      ? Mutable<E>
      : S extends { readonly oneOf: readonly (infer B)[] }
        ? FromBranches<B, S>
        : S extends { readonly anyOf: readonly (infer B)[] }
          ? FromBranches<B, S>
          : S extends { readonly type: infer T }
            ? FromTypes<T, S>
            : S extends { readonly properties: Schema }
              ? FromObject<S>
              : unknown;

/** `oneOf: [a, b]` is A | B; keywords beside the oneOf (a shared `type`) narrow each branch. */
type FromBranches<B, S> = B extends unknown ? FromSchema<Omit<S, 'oneOf' | 'anyOf'> & B> : never;

type FromTypes<T, S> = T extends readonly (infer Each)[] ? FromType<Each, S> : FromType<T, S>;

type FromType<T, S> = T extends 'string'
  ? string
  : T extends 'number' | 'integer'
    ? number
    : T extends 'boolean'
      ? boolean
      : T extends 'null'
        ? null
        : T extends 'array'
          ? FromArray<S>
          : T extends 'object'
            ? FromObject<S>
            : unknown;

type FromArray<S> = S extends { readonly items: infer I } ? FromSchema<I>[] : unknown[];

type PropertiesOf<S> = S extends { readonly properties: infer P extends Schema } ? P : Record<never, never>;
type RequiredOf<S> = S extends { readonly required: readonly (infer R extends string)[] } ? R : never;

type KnownProperties<S> = {
  -readonly [K in keyof PropertiesOf<S> & RequiredOf<S>]: FromSchema<PropertiesOf<S>[K]>;
} & {
  -readonly [K in Exclude<keyof PropertiesOf<S>, RequiredOf<S>>]?: FromSchema<PropertiesOf<S>[K]>;
} & {
  // A required name without a schema under `properties` is still there, of any JSON type.
  -readonly [K in Exclude<RequiredOf<S>, keyof PropertiesOf<S>>]: unknown;
};

/**
 * `additionalProperties: false` gives a closed object. Absent or `true`, other keys are allowed and
 * typed `unknown` (as JSON Schema says); a schema types them — an index signature must also admit
 * the known properties' types, hence the union.
 */
// no-redundant-type-constituents misreads the generic mapped type as covering the index signature.
/* eslint-disable @typescript-eslint/no-redundant-type-constituents */
type FromObject<S> = Prettify<
  S extends { readonly additionalProperties: false }
    ? KnownProperties<S>
    : S extends { readonly additionalProperties: infer A extends Schema }
      ? KnownProperties<S> & {
          [key: string]: FromSchema<A> | FromSchema<PropertiesOf<S>[keyof PropertiesOf<S>]> | undefined;
        }
      : KnownProperties<S> & { [key: string]: unknown }
>;
/* eslint-enable @typescript-eslint/no-redundant-type-constituents */

/** `as const` makes arrays readonly; a handler's arguments are its own to change. */
type Mutable<T> = T extends readonly (infer E)[]
  ? Mutable<E>[]
  : T extends object
    ? Simplify<{ -readonly [K in keyof T]: Mutable<T[K]> }>
    : T;
