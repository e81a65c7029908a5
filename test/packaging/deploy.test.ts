import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parse } from 'yaml';
import { describe, expect, it } from 'vitest';

const ROOT = resolve(import.meta.dirname, '..', '..');
const read = (file: string) => readFileSync(join(ROOT, file), 'utf8');

interface Service {
  image?: string;
  build?: string;
  command?: string[];
  healthcheck?: { test: string[] };
  depends_on?: Record<string, { condition: string }>;
  environment?: Record<string, string>;
}

// No Docker engine here: the files are checked for structure, and the image's entry point is run
// directly from the repository (the image's /app is this folder's dist/, bin/ and node_modules/).
describe('compose.yaml', () => {
  const compose = parse(read('compose.yaml'), { merge: true }) as { services: Record<string, Service> };
  const services = compose.services;

  it('has PostgreSQL, Redis, a scheduler on the PostgreSQL store and two workers', () => {
    expect(Object.keys(services).sort()).toEqual(['postgres', 'redis', 'scheduler', 'worker-1', 'worker-2']);
    expect(services.postgres?.image).toMatch(/^postgres:\d+/);
    expect(services.redis?.image).toMatch(/^redis:\d+/);
    const serve = services.scheduler!.command!;
    expect(serve[0]).toBe('serve');
    expect(serve[serve.indexOf('--store') + 1]).toMatch(/^postgres:\/\/weft:.*@postgres:5432\/weft$/);
    for (const name of ['worker-1', 'worker-2']) {
      expect(services[name]?.command?.[0]).toBe('worker');
      expect(services[name]?.build).toBe('.');
    }
    expect(services.scheduler?.environment?.WEFT_STORE).toMatch(/^postgres:\/\//);
  });

  it('health-checks the databases and the scheduler, and starts each service after what it needs is healthy', () => {
    expect(services.postgres?.healthcheck?.test.join(' ')).toContain('pg_isready');
    expect(services.redis?.healthcheck?.test).toEqual(['CMD', 'redis-cli', 'ping']);
    expect(services.scheduler?.healthcheck?.test).toEqual(['CMD', 'node', '/app/bin/weft.js', 'check']);
    for (const name of ['scheduler', 'worker-1', 'worker-2']) {
      const deps = services[name]!.depends_on!;
      expect(deps.postgres?.condition, name).toBe('service_healthy');
      expect(deps.redis?.condition, name).toBe('service_healthy');
    }
    // Every service_healthy dependency has a healthcheck to satisfy it.
    for (const [name, service] of Object.entries(services)) {
      for (const [dep, { condition }] of Object.entries(service.depends_on ?? {})) {
        expect(services[dep], `${name} depends on ${dep}`).toBeDefined();
        if (condition === 'service_healthy')
          expect(services[dep]?.healthcheck, `${dep} healthcheck`).toBeDefined();
      }
    }
  });
});

describe('Dockerfile', () => {
  const text = read('Dockerfile');
  const instructions = text
    .replace(/\\\n/g, ' ')
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line && !line.startsWith('#'));
  const runtime = instructions.slice(instructions.findLastIndex((i) => i.startsWith('FROM ')));

  it('is multi-stage on node:20-slim, builds with npm ci, prunes dev dependencies and runs as `node`', () => {
    expect(instructions.filter((i) => i.startsWith('FROM '))).toEqual([
      'FROM node:20-slim AS build',
      'FROM node:20-slim',
    ]);
    expect(text).toMatch(/RUN npm ci /);
    expect(text).toMatch(/npm run build && npm prune --omit=dev/);
    expect(runtime).toContain('USER node');
    expect(runtime.some((i) => i.startsWith('HEALTHCHECK') && i.includes('"check"'))).toBe(true);
  });

  it('copies only files that exist and that .dockerignore lets through', () => {
    const ignored = read('.dockerignore')
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l && !l.startsWith('#'));
    const sources = instructions
      .filter((i) => i.startsWith('COPY ') && !i.includes('--from='))
      .flatMap((i) => i.split(/\s+/).slice(1, -1));
    expect(sources.length).toBeGreaterThan(5);
    for (const source of sources) {
      expect(existsSync(join(ROOT, source)), source).toBe(true);
      expect(ignored, source).not.toContain(source);
    }
  });

  it('has an ENTRYPOINT that works when run directly', () => {
    const entry = runtime.find((i) => i.startsWith('ENTRYPOINT '))!;
    const argv = JSON.parse(entry.slice('ENTRYPOINT '.length)) as string[];
    expect(argv).toEqual(['node', '/app/bin/weft.js']);
    const script = argv[1]!.replace(/^\/app\//, `${ROOT}/`);
    const result = spawnSync(process.execPath, [script, '--help'], {
      encoding: 'utf8',
      env: { ...process.env, NO_COLOR: '1' },
    });
    expect(result.status).toBe(0);
    expect(result.stdout).toContain('Usage: weft');
    expect(result.stdout).toContain('serve');
  });
});

describe('deploy/weft.service', () => {
  const unit = read('deploy/weft.service');

  it('runs weft serve as an unprivileged user, restarting on failure, stopping gracefully', () => {
    const sections = [...unit.matchAll(/^\[(\w+)\]$/gm)].map((m) => m[1]);
    expect(sections).toEqual(['Unit', 'Service', 'Install']);
    const value = (key: string) => new RegExp(`^${key}=(.*)$`, 'm').exec(unit)?.[1];
    expect(value('ExecStart')).toMatch(/bin\/weft\.js serve/);
    expect(value('User')).toBe('weft');
    expect(value('Restart')).toBe('on-failure');
    expect(value('KillSignal')).toBe('SIGTERM');
    expect(Number(value('TimeoutStopSec'))).toBeGreaterThan(30);
    expect(value('WantedBy')).toBe('multi-user.target');
  });
});
