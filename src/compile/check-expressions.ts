import type { JsonValue } from '../core/json.js';
import type { DocPath } from '../errors.js';
import {
  EXPRESSION_ROOTS,
  parseCondition,
  referencesOf,
  scanTemplates,
  type Expr,
  type Reference,
} from '../pipeline/expressions.js';
import type { HookSpec } from '../pipeline/spec.js';
import { suggest } from '../pipeline/suggest.js';
import type { Dependencies } from './check-dependencies.js';
import { type CompileContext, didYouMean, pointIntoString, report } from './context.js';
import { isUpstream } from './dag.js';

/**
 * Who is reading: a task (its `with`, `when` and its own on_failure hooks) may read only tasks
 * upstream of it; pipeline hooks run after everything and may read any task. Hooks under
 * `defaults` belong to every task, so only names are checked there; a task that is not
 * downstream of what they read fails with EXPRESSION_FAILED at run time.
 */
type Reader = { kind: 'task'; task: number; hook: boolean } | { kind: 'defaults' } | { kind: 'pipeline' };

/**
 * Names of members every JavaScript object inherits. Expressions read own data only, so a path
 * through one of these can never succeed; it is almost always an attempt to reach a prototype.
 */
const PROTOTYPE_MEMBERS = new Set([
  '__proto__',
  'prototype',
  'constructor',
  'toString',
  'toLocaleString',
  'valueOf',
  'hasOwnProperty',
  'isPrototypeOf',
  'propertyIsEnumerable',
  '__defineGetter__',
  '__defineSetter__',
  '__lookupGetter__',
  '__lookupSetter__',
]);

/** Every path an expression reads, with its segments. */
function pathsOf(expr: Expr): Extract<Expr, { kind: 'path' }>[] {
  const found: Extract<Expr, { kind: 'path' }>[] = [];
  const stack: Expr[] = [expr];
  while (stack.length > 0) {
    const node = stack.pop()!;
    if (node.kind === 'path') found.push(node);
    else if (node.kind === 'not') stack.push(node.operand);
    else if (node.kind === 'compare' || node.kind === 'logical') stack.push(node.right, node.left);
  }
  return found.sort((a, b) => a.offset - b.offset);
}

/** The string at `path` inside `value`, or undefined. */
function stringAt(value: JsonValue | undefined, path: DocPath): string | undefined {
  let current: unknown = value;
  for (const segment of path) {
    if (current === null || typeof current !== 'object') return undefined;
    current = Object.hasOwn(current, segment) ? (current as Record<string, unknown>)[segment] : undefined;
  }
  return typeof current === 'string' ? current : undefined;
}

/** Checks every expression in `with`, `when` and hooks: syntax, and that each name exists and is readable. */
export function checkExpressions(ctx: CompileContext, deps: Dependencies): void {
  const { spec, names, indexOf } = ctx;
  const paramNames = Object.keys(spec.params ?? {});
  const ancestors = new Map<number, Set<number>>();

  const checkReference = (ref: Reference, path: DocPath, reader: Reader): void => {
    const flag = (code: Parameters<typeof report>[2], message: string, hint?: string) =>
      pointIntoString(ctx, report(ctx, path, code, message, { hint }), path, ref.offset);

    switch (ref.root) {
      case 'env':
      case 'run':
        return;
      case 'params':
        if (ref.name !== null && !Object.hasOwn(spec.params ?? {}, ref.name)) {
          const close = suggest(ref.name, paramNames);
          flag(
            'EXPRESSION_UNKNOWN_PARAM',
            `unknown param "${ref.name}" in \`${ref.text}\``,
            close
              ? didYouMean(close)
              : `declare it under \`params:\` (declared: ${paramNames.join(', ') || 'none'})`,
          );
        }
        return;
      case 'tasks': {
        if (ref.name === null) return;
        const index = indexOf.get(ref.name);
        if (index === undefined) {
          flag(
            'EXPRESSION_UNKNOWN_TASK',
            `unknown task "${ref.name}" in \`${ref.text}\``,
            didYouMean(suggest(ref.name, names)),
          );
          return;
        }
        if (reader.kind !== 'task') return;
        const reading = `tasks.${ref.name}.${ref.field ?? 'output'}`;
        const me = names[reader.task]!;
        if (index === reader.task) {
          if (!reader.hook)
            flag(
              'EXPRESSION_NOT_UPSTREAM',
              `task "${me}" uses ${reading}, its own result, which does not exist before it runs`,
            );
          return;
        }
        if (!isUpstream(deps.upstream, index, reader.task, ancestors)) {
          flag(
            'EXPRESSION_NOT_UPSTREAM',
            `task "${me}" uses ${reading} but does not depend on "${ref.name}"; add depends_on: [${ref.name}]`,
          );
        }
        return;
      }
      default: {
        const close = suggest(ref.root, EXPRESSION_ROOTS);
        flag(
          'EXPRESSION_UNKNOWN_ROOT',
          `unknown name "${ref.root}" in \`${ref.text}\`: expressions read ${EXPRESSION_ROOTS.join(', ')}`,
          close ? didYouMean(close) : undefined,
        );
      }
    }
  };

  const checkPrototypeMembers = (expr: Expr, path: DocPath, text: string | undefined): boolean => {
    let found = false;
    for (const node of pathsOf(expr)) {
      const member = node.segments.find(
        (s): s is string => typeof s === 'string' && PROTOTYPE_MEMBERS.has(s),
      );
      if (member === undefined) continue;
      found = true;
      // Point at the member itself when it can be found in the text of the path.
      const at = text?.slice(node.offset, node.end).indexOf(member) ?? -1;
      pointIntoString(
        ctx,
        report(
          ctx,
          path,
          'EXPRESSION_SYNTAX',
          `invalid expression: \`${text?.slice(node.offset, node.end) ?? member}\` reads "${member}", a member every JavaScript object inherits; expressions read only the data itself`,
          { hint: 'expressions cannot reach prototypes or methods: read a key the value really has' },
        ),
        path,
        at >= 0 ? node.offset + at : node.offset,
      );
    }
    return found;
  };

  const checkExpr = (expr: Expr, path: DocPath, reader: Reader, text: string | undefined) => {
    if (checkPrototypeMembers(expr, path, text)) return;
    for (const ref of referencesOf(expr)) checkReference(ref, path, reader);
  };

  const syntax = (path: DocPath, offset: number, message: string) =>
    pointIntoString(
      ctx,
      report(ctx, path, 'EXPRESSION_SYNTAX', `invalid expression: ${message}`),
      path,
      offset,
    );

  const checkValue = (value: JsonValue | undefined, base: DocPath, reader: Reader) => {
    if (value === undefined || value === null) return;
    const { expressions, errors } = scanTemplates(value);
    for (const error of errors) syntax([...base, ...error.path], error.offset, error.message);
    for (const site of expressions)
      checkExpr(site.expr, [...base, ...site.path], reader, stringAt(value, site.path));
  };

  const checkHooks = (hooks: HookSpec[] | undefined, base: DocPath, reader: Reader) => {
    hooks?.forEach((hook, i) => {
      if (typeof hook !== 'string') checkValue(hook.with, [...base, i, 'with'], reader);
    });
  };

  names.forEach((name, task) => {
    const written = spec.tasks[name]!;
    const reader: Reader = { kind: 'task', task, hook: false };
    checkValue(written.with, ['tasks', name, 'with'], reader);
    if (typeof written.when === 'string') {
      const path: DocPath = ['tasks', name, 'when'];
      const { expr, errors } = parseCondition(written.when);
      for (const error of errors) syntax(path, error.offset, error.message);
      if (expr) checkExpr(expr, path, reader, written.when);
    }
    checkHooks(written.on_failure, ['tasks', name, 'on_failure'], { kind: 'task', task, hook: true });
  });
  checkHooks(spec.defaults?.on_failure, ['defaults', 'on_failure'], { kind: 'defaults' });
  for (const key of ['on_failure', 'on_success', 'on_recovery'] as const) {
    checkHooks(spec[key], [key], { kind: 'pipeline' });
  }
}
