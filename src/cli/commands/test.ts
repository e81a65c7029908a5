import type { Command } from 'commander';
import { UsageError } from '../../errors.js';
import type { CommonOptions } from '../context.js';
import { formatOption, withProjectOptions } from '../options.js';
import type { CommandDeps } from './types.js';
import { findTestFiles } from '../../testing/find-test-files.js';
import { renderTestResults, type TestFormat } from '../../testing/report.js';
import { runTestFile, type TestFileResult } from '../../testing/run-test-file.js';
import type { CliContext } from '../context.js';

import { TEST_FORMATS } from '../../testing/report.js';

export function registerTestCommand(program: Command, deps: CommandDeps): void {
  withProjectOptions(
    program
      .command('test')
      .description('run the pipeline tests (*.test.yaml) in memory, with handlers mocked or stubbed')
      .argument('[paths...]', 'test files or folders (default: pipelines/)')
      .addOption(formatOption(TEST_FORMATS, 'text')),
  ).action(async (paths: string[], options: TestOptions & CommonOptions) =>
    deps.setExitCode(await testCommand(deps.context(options), paths, options)),
  );
}

export interface TestOptions {
  format: TestFormat;
}

/**
 * `weft test [PATH...]`: runs the declarative pipeline tests (`*.test.yaml`) in memory, with every
 * handler not mocked stubbed. Exit 0 when every case passed, 1 otherwise, 2 when there is nothing to run.
 */
export async function testCommand(ctx: CliContext, paths: string[], options: TestOptions): Promise<number> {
  const targets = paths.length > 0 ? paths : [await ctx.pipelinesDir()];
  const files = findTestFiles(targets, ctx.cwd);
  if (files.length === 0) {
    throw new UsageError(`no test files (*.test.yaml) found in ${targets.join(', ')}`, {
      hint: 'write one beside the pipeline, e.g. pipelines/hello.test.yaml (weft init shows an example)',
    });
  }
  const registry = await ctx.registry();
  const results: TestFileResult[] = [];
  for (const file of files) results.push(await runTestFile(file, { registry, cwd: ctx.cwd }));
  ctx.io.stdout(renderTestResults(results, options.format, ctx.io.colors));
  return results.every((r) => r.passed) ? 0 : 1;
}
