import { isScalar } from 'yaml';
import { isPlainObject, type JsonValue } from '../core/json.js';
import type { Diagnostic, DocPath } from '../errors.js';
import type { HandlerRegistry } from '../handlers/registry.js';
import { describeShellRefusal, scanShellTemplate } from '../handlers/shell-context.js';
import { hasExpression, parseTemplate } from '../pipeline/expressions.js';
import type { HookSpec } from '../pipeline/spec.js';
import { type CompileContext, pointIntoString, report } from './context.js';

const OPEN = '${{';

/**
 * Refuses an expression substituted into a shell script (a handler's `shellQuoted` argument, such
 * as shell's `command`) where no quoting keeps its value from being read as shell syntax: inside
 * backticks, arithmetic, `${ … }`, a here-document, a comment, and the like (see
 * handlers/shell-context.ts). The engine quotes by the same scan, so whatever passes here is
 * substituted byte for byte.
 */
export function checkShellSubstitutions(ctx: CompileContext, registry: HandlerRegistry): void {
  const { spec, names } = ctx;

  const checkWith = (handlerName: string, written: JsonValue | undefined, withPath: DocPath): void => {
    const keys = registry.get(handlerName)?.shellQuoted;
    if (!keys || keys.length === 0 || !isPlainObject(written)) return;
    for (const key of keys) {
      const template = Object.hasOwn(written, key) ? written[key] : undefined;
      if (typeof template === 'string') checkTemplate(ctx, template, [...withPath, key], key);
    }
  };

  const checkHooks = (hooks: HookSpec[] | undefined, base: DocPath): void => {
    hooks?.forEach((hook, i) => {
      if (typeof hook !== 'string') checkWith(hook.handler, hook.with, [...base, i, 'with']);
    });
  };

  for (const name of names) {
    const task = spec.tasks[name]!;
    checkWith(task.handler ?? name, task.with, ['tasks', name, 'with']);
    checkHooks(task.on_failure, ['tasks', name, 'on_failure']);
  }
  checkHooks(spec.defaults?.on_failure, ['defaults', 'on_failure']);
  for (const key of ['on_failure', 'on_success', 'on_recovery'] as const) checkHooks(spec[key], [key]);
}

function checkTemplate(ctx: CompileContext, template: string, path: DocPath, key: string): void {
  if (!hasExpression(template)) return;
  const { parts, errors } = parseTemplate(template);
  // Syntax errors are reported by checkExpressions; a string that is one whole expression is not
  // quoted at all (its value is the script, as the author asked).
  if (errors.length > 0 || (parts.length === 1 && parts[0]!.kind === 'expr')) return;
  const contexts = scanShellTemplate(parts);
  let hole = 0;
  for (const part of parts) {
    if (part.kind !== 'expr') continue;
    const context = contexts[hole++]!;
    if (context.kind !== 'refused') continue;
    const { where, advice } = describeShellRefusal(context.refusal);
    const diagnostic = report(
      ctx,
      path,
      'EXPRESSION_SHELL_CONTEXT',
      `\`\${{ ${part.source} }}\` in with.${key} is ${where}: no quoting keeps a value there from running as shell syntax`,
      {
        hint: `${advice}; an expression is substituted safely as its own word (or part of one), inside "…", or inside '…'`,
      },
    );
    pointAtOffset(ctx, diagnostic, path, template, part.offset);
  }
}

/**
 * Moves a diagnostic on a string to the expression at `offset`, also in a multi-line string:
 * the n-th `${{` of the value is the n-th `${{` of its text in the file (block scalars keep
 * expressions as written). When the counts differ (escapes spelling `$` another way), falls back
 * to pointIntoString, which handles one-line strings.
 */
function pointAtOffset(
  ctx: CompileContext,
  diagnostic: Diagnostic,
  path: DocPath,
  value: string,
  offset: number,
): void {
  const node = ctx.source.doc?.getIn(path, true);
  if (!isScalar(node) || node.value !== value || !node.range) return;
  const start = ctx.source.lineCounter.linePos(node.range[0]);
  // Only when the node found is the one the diagnostic points at (not the target of an alias).
  if (start.line !== diagnostic.line || start.col !== diagnostic.column) return;
  let raw = ctx.source.text.slice(node.range[0], node.range[1]);
  let rawStart = node.range[0];
  if (node.type === 'BLOCK_LITERAL' || node.type === 'BLOCK_FOLDED') {
    // The header (`|`, `>-`, a comment) is not part of the value.
    const body = raw.indexOf('\n') + 1;
    raw = raw.slice(body);
    rawStart += body;
  }
  const inValue = occurrences(value, OPEN);
  const inRaw = occurrences(raw, OPEN);
  const nth = inValue.indexOf(offset);
  if (nth < 0 || inValue.length !== inRaw.length) {
    pointIntoString(ctx, diagnostic, path, offset);
    return;
  }
  const at = ctx.source.lineCounter.linePos(rawStart + inRaw[nth]!);
  diagnostic.line = at.line;
  diagnostic.column = at.col;
}

function occurrences(text: string, needle: string): number[] {
  const found: number[] = [];
  for (let i = text.indexOf(needle); i >= 0; i = text.indexOf(needle, i + needle.length)) found.push(i);
  return found;
}
