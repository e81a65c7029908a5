import type { ErrorObject } from 'ajv/dist/2020.js';

/**
 * ajv reports, for a failed oneOf/anyOf, every branch's failure plus the combinator's own error,
 * and for if/then an extra "must match then schema". Keep only what helps: for a combinator, the
 * errors of the branch that fits the value's type (or one type error when none does).
 * Branches are told apart by schema path, which holds for what ajv inlines: a branch that is a
 * `$ref` to a schema holding a `$ref` of its own is compiled apart, its paths restart at `#/`, and
 * its errors are left uncollapsed. (The pipeline schema uses `type: [a, b]`, not oneOf/anyOf.)
 */
export function collapseErrors(errors: readonly ErrorObject[]): ErrorObject[] {
  let list = errors.filter((e) => e.keyword !== 'if' && e.keyword !== 'propertyNames');
  // A combinator that matched several branches has nothing to collapse and stays as it is.
  const kept = new Set<ErrorObject>();
  for (;;) {
    const index = list.findIndex((e) => (e.keyword === 'oneOf' || e.keyword === 'anyOf') && !kept.has(e));
    if (index === -1) return list;
    // ajv pushes a combinator's error right after its branches' errors, so the run of errors just
    // before it that sit inside its value and do not come from a sibling keyword are its branches'.
    const outer = list[index]!;
    const parentPath = outer.schemaPath.slice(0, outer.schemaPath.lastIndexOf('/'));
    let start = index;
    while (start > 0) {
      const previous = list[start - 1]!;
      if (!isInsideInstance(previous.instancePath, outer.instancePath)) break;
      // A sibling keyword of the combinator in the same schema object; paths into $defs are
      // the targets of a $ref inside a branch (ajv restarts schemaPath at a ref's target).
      const next = previous.schemaPath.slice(parentPath.length + 1).split('/')[0];
      const fromSibling =
        previous.schemaPath.startsWith(parentPath + '/') &&
        !previous.schemaPath.startsWith(outer.schemaPath + '/') &&
        next !== '$defs' &&
        next !== 'definitions';
      if (fromSibling) break;
      start -= 1;
    }
    const branchErrors = list.slice(start, index);
    const picked = pickBranch(outer, branchErrors);
    if (picked.includes(outer)) kept.add(outer);
    list = [...list.slice(0, start), ...picked, ...list.slice(index + 1)];
  }
}

function isInsideInstance(path: string, parent: string): boolean {
  return path === parent || path.startsWith(parent + '/');
}

function pickBranch(outer: ErrorObject, branchErrors: ErrorObject[]): ErrorObject[] {
  const branches = (outer.parentSchema?.[outer.keyword] as unknown[] | undefined) ?? [];
  const byBranch = new Map<number, ErrorObject[]>();
  branches.forEach((branch, i) => {
    const prefix = `${outer.schemaPath}/${i}/`;
    const ref =
      typeof branch === 'object' && branch !== null ? (branch as { $ref?: unknown }).$ref : undefined;
    const refPrefix = typeof ref === 'string' ? `${ref}/` : undefined;
    byBranch.set(
      i,
      branchErrors.filter(
        (e) =>
          e.schemaPath.startsWith(prefix) || (refPrefix !== undefined && e.schemaPath.startsWith(refPrefix)),
      ),
    );
  });
  if (branchErrors.length === 0) return [outer];
  const typeMismatch = (errors: ErrorObject[]) =>
    errors.some((e) => e.keyword === 'type' && e.instancePath === outer.instancePath);
  const applicable = [...byBranch.values()].filter((errors) => errors.length > 0 && !typeMismatch(errors));
  if (applicable.length > 0) {
    return applicable.reduce((best, errors) => (errors.length < best.length ? errors : best));
  }
  const types = new Set<string>();
  for (const errors of byBranch.values()) {
    for (const e of errors) {
      if (e.keyword !== 'type' || e.instancePath !== outer.instancePath) continue;
      const declared = (e.params as { type?: string | string[] }).type;
      for (const type of Array.isArray(declared) ? declared : [declared ?? '']) if (type) types.add(type);
    }
  }
  if (types.size === 0) return [outer];
  return [
    { ...outer, keyword: 'type', params: { type: [...types] }, message: `must be ${[...types].join(',')}` },
  ];
}
