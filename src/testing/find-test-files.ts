import { findFiles } from '../project/discover.js';

const TEST_FILE = /\.test\.ya?ml$/;

export function isTestFile(path: string): boolean {
  return TEST_FILE.test(path);
}

/** Expands files and folders into the `*.test.yaml` files they hold (folders recursively, sorted). */
export function findTestFiles(paths: readonly string[], cwd: string): string[] {
  return findFiles(paths, cwd, isTestFile);
}
