import type { CliContext, CommonOptions } from '../context.js';
import type { CliIO } from '../io.js';

/** What main() hands every command's registration. */
export interface CommandDeps {
  io: CliIO;
  context: (options: CommonOptions) => CliContext;
  setExitCode: (code: number) => void;
}
