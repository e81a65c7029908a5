import { createHash } from 'node:crypto';
import { existsSync, statSync, watch, type FSWatcher } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import type { Plan } from '../compile/plan.js';
import type { Diagnostic } from '../errors.js';
import type { HandlerRegistry } from '../handlers/registry.js';
import { findPipelineFiles } from '../project/discover.js';
import { loadPipelineText } from '../project/load-pipeline.js';
import type { SchedulerLogListener } from './events.js';
import type { PipelineSource } from './pipeline-source.js';

/**
 * The pipelines of a folder, kept current while `weft serve` runs: a change on disk (fs.watch,
 * debounced) re-reads the folder; a changed file is validated again and replaces its previous
 * version only when valid. An invalid edit is reported and the previous version keeps running; a
 * removed file is dropped (so its pipeline is unscheduled).
 */

export interface FileLoad {
  file: string;
  /** The `name:` in the file, when it could be read. */
  pipeline: string | null;
  plan: Plan | null;
  diagnostics: Diagnostic[];
  /** A problem beyond the diagnostics (a pipeline name used twice); null when none. */
  problem: string | null;
}

export interface PipelineWatcherOptions {
  /** Folders (searched recursively) or files. */
  paths: readonly string[];
  cwd: string;
  registry: HandlerRegistry;
  /** Changes within this long are read once. Default 250 ms. */
  debounceMs?: number;
  onLog?: SchedulerLogListener;
}

export interface PipelineWatcher extends PipelineSource {
  /** Reads every file now and reports each (the first call is the start-up validation). */
  load(): Promise<FileLoad[]>;
  /** Starts watching the paths for changes. */
  watch(): void;
  close(): void;
}

interface Known {
  plan: Plan;
  /** sha256 of the text last read, valid or not: an unchanged file is not reported twice. */
  textHash: string;
}

export function createPipelineWatcher(options: PipelineWatcherOptions): PipelineWatcher {
  const debounceMs = options.debounceMs ?? 250;
  const known = new Map<string, Known>();
  /** Hash of the last text read per file, including invalid versions. */
  const seenText = new Map<string, string>();
  const listeners = new Set<() => void>();
  const watchers: FSWatcher[] = [];
  let timer: NodeJS.Timeout | undefined;
  let reading: Promise<unknown> = Promise.resolve();
  let loadedOnce = false;
  let closed = false;
  const log: SchedulerLogListener = (event, at) => options.onLog?.(event, at);

  function listFiles(): string[] {
    const present = options.paths.filter((p) => existsSync(resolve(options.cwd, p)));
    return present.length === 0 ? [] : findPipelineFiles(present, options.cwd);
  }

  async function readAll(): Promise<{ loads: FileLoad[]; changed: boolean }> {
    const files = listFiles();
    const loads: FileLoad[] = [];
    let changed = false;
    const now = Date.now();
    for (const file of [...known.keys()]) {
      if (files.includes(file)) continue;
      const gone = known.get(file)!;
      known.delete(file);
      seenText.delete(file);
      changed = true;
      log({ type: 'file:removed', file, pipeline: gone.plan.name }, now);
    }
    for (const file of files) {
      let text: string;
      try {
        text = await readFile(resolve(options.cwd, file), 'utf8');
      } catch {
        // Removed between listing and reading: the next change event sees it gone.
        continue;
      }
      const textHash = createHash('sha256').update(text).digest('hex');
      const previous = known.get(file);
      if (loadedOnce && seenText.get(file) === textHash) {
        loads.push({
          file,
          pipeline: previous?.plan.name ?? null,
          plan: previous?.plan ?? null,
          diagnostics: [],
          problem: null,
        });
        continue;
      }
      seenText.set(file, textHash);
      const loaded = loadPipelineText(file, text, { registry: options.registry });
      let problem: string | null = null;
      if (loaded.plan) {
        const name = loaded.plan.name;
        const other = [...known].find(([f, k]) => f !== file && k.plan.name === name);
        if (other) problem = `pipeline name "${name}" is used by ${other[0]} already`;
      }
      loads.push({
        file,
        pipeline: loaded.spec?.name ?? null,
        plan: problem === null ? loaded.plan : null,
        diagnostics: loaded.diagnostics,
        problem,
      });
      if (loaded.plan && problem === null) {
        known.set(file, { plan: loaded.plan, textHash });
        changed = true;
        if (loadedOnce || previous)
          log({ type: previous ? 'file:reloaded' : 'file:loaded', file, pipeline: loaded.plan.name }, now);
      } else if (loadedOnce) {
        log(
          {
            type: 'file:invalid',
            file,
            message: problem ?? 'the file is not a valid pipeline',
            diagnostics: loaded.diagnostics.filter((d) => d.severity === 'error'),
            kept: previous !== undefined,
          },
          now,
        );
      }
    }
    loadedOnce = true;
    return { loads, changed };
  }

  function schedule(): void {
    if (closed) return;
    clearTimeout(timer);
    timer = setTimeout(() => {
      reading = reading.then(async () => {
        if (closed) return;
        const { changed } = await readAll();
        if (changed) for (const listener of listeners) listener();
      });
    }, debounceMs);
  }

  return {
    current: () => [...known.values()].map((k) => k.plan).sort((a, b) => (a.name < b.name ? -1 : 1)),
    subscribe(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    async load() {
      const run = reading.then(() => readAll());
      reading = run.catch(() => undefined);
      return (await run).loads;
    },
    watch() {
      const dirs = new Set<string>();
      for (const path of options.paths) {
        const absolute = resolve(options.cwd, path);
        if (!existsSync(absolute)) continue;
        dirs.add(statSync(absolute).isDirectory() ? absolute : dirname(absolute));
      }
      for (const dir of dirs) {
        const watcher = watch(dir, { recursive: true }, () => schedule());
        // A folder that disappears must not bring the server down; the next read finds it gone.
        watcher.on('error', () => undefined);
        watchers.push(watcher);
      }
    },
    close() {
      closed = true;
      clearTimeout(timer);
      for (const watcher of watchers) watcher.close();
      watchers.length = 0;
      listeners.clear();
    },
  };
}
