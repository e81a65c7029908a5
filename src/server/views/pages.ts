import { RUN_STATES, type RunState } from '../../core/states.js';
import type { ServerContext } from '../context.js';
import { html, type SafeHtml } from '../html.js';
import {
  isActive,
  listPipelines,
  pipelineDetail,
  requireRun,
  runDetail,
  runJson,
  type PipelineSummary,
  type RunJson,
} from '../queries.js';
import { htmlReply, type Reply } from '../reply.js';
import { formatMs, formatTime, pathSegment, stateBadge, truncate } from './format.js';
import { renderDagSvg, renderDurationChart, renderTimelineSvg } from './svg.js';

/**
 * The server-rendered views. Each is a fragment put in the page shell; `data-active` tells the
 * script to refresh it every 2 s while something is going on.
 */

export interface ViewQuery {
  pipeline: string | undefined;
  state: RunState | undefined;
  offset: number;
}

const PAGE_SIZE = 25;

function fragment(active: boolean, body: SafeHtml): Reply {
  return htmlReply(
    html`<div class="fragment" data-active="${active ? 'true' : 'false'}">${body}</div>`.value,
  );
}

function runLink(id: string): SafeHtml {
  return html`<a class="mono" href="/runs/${pathSegment(id)}">${id}</a>`;
}

function pipelineLink(name: string): SafeHtml {
  return html`<a href="/pipelines/${pathSegment(name)}">${name}</a>`;
}

function scheduleCell(p: PipelineSummary): SafeHtml {
  const s = p.schedule;
  if (!s) return html`<span class="muted">manual</span>`;
  const next = s.scheduler_next_fire ?? s.next_fires[0] ?? null;
  return html`<span title="${s.cron}">${s.description}</span> <span class="muted">(${s.timezone})</span
    ><br /><span class="muted">next: ${formatTime(next)}</span>`;
}

export function runForm(p: Pick<PipelineSummary, 'name' | 'valid' | 'params'>): SafeHtml {
  if (!p.valid) return html`<span class="muted">fix errors to run</span>`;
  const fields = p.params.map((param) => {
    const id = `param-${p.name}-${param.name}`;
    const value =
      param.default === null || param.default === undefined
        ? ''
        : typeof param.default === 'string'
          ? param.default
          : JSON.stringify(param.default);
    let input: SafeHtml;
    if (param.enum) {
      input = html`<select id="${id}" data-param="${param.name}" data-type="${param.type}">
        ${param.enum.map((option) => {
          const text = typeof option === 'string' ? option : JSON.stringify(option);
          return html`<option value="${text}" ${text === value ? html` selected` : null}>${text}</option>`;
        })}
      </select>`;
    } else if (param.type === 'boolean') {
      input = html`<input
        type="checkbox"
        id="${id}"
        data-param="${param.name}"
        data-type="boolean"
        ${param.default === true ? html` checked` : null}
      />`;
    } else {
      input = html`<input
        id="${id}"
        data-param="${param.name}"
        data-type="${param.type}"
        value="${value}"
        ${param.required ? html` required` : null}
        placeholder="${param.type}"
      />`;
    }
    return html`<label for="${id}" title="${param.description ?? ''}">${param.name}</label>${input}`;
  });
  return html`<form class="run-form" data-pipeline="${p.name}">
    ${fields}<button type="submit" class="run-now">Run now</button
    ><span class="form-status" role="status"></span>
  </form>`;
}

function runsTable(runs: readonly RunJson[], showPipeline: boolean): SafeHtml {
  if (runs.length === 0) return html`<p class="muted">No runs.</p>`;
  return html`<table class="runs">
    <thead>
      <tr>
        <th>Run</th>
        ${showPipeline ? html`<th>Pipeline</th>` : null}
        <th>State</th>
        <th>Trigger</th>
        <th>Created</th>
        <th>Duration</th>
        <th>Error</th>
      </tr>
    </thead>
    <tbody>
      ${runs.map(
        (r) =>
          html`<tr class="row-${r.state}">
            <td>${runLink(r.id)}</td>
            ${showPipeline ? html`<td>${pipelineLink(r.pipeline)}</td>` : null}
            <td>${stateBadge(r.state)}</td>
            <td>${r.trigger}</td>
            <td>${formatTime(r.created_at)}</td>
            <td>${formatMs(r.duration_ms)}</td>
            <td class="error-text">${r.error ? truncate(`${r.error.code}: ${r.error.message}`, 120) : ''}</td>
          </tr>`,
      )}
    </tbody>
  </table>`;
}

export async function renderHomeView(ctx: ServerContext, query: ViewQuery): Promise<Reply> {
  const pipelines = await listPipelines(ctx);
  const rows = await ctx.store.listRuns({
    ...(query.pipeline ? { pipeline: query.pipeline } : {}),
    ...(query.state ? { states: [query.state] } : {}),
    limit: PAGE_SIZE + 1,
    offset: query.offset,
  });
  const runs = rows.slice(0, PAGE_SIZE).map((r) => runJson(ctx, r));
  const active =
    runs.some((r) => isActive(r.state)) ||
    pipelines.some((p) => p.last_run !== null && isActive(p.last_run.state));
  const pageLink = (offset: number) => {
    const params = new URLSearchParams();
    if (query.pipeline) params.set('pipeline', query.pipeline);
    if (query.state) params.set('state', query.state);
    if (offset > 0) params.set('offset', String(offset));
    const text = params.toString();
    return text ? `/?${text}` : '/';
  };
  const names = pipelines.map((p) => p.name);
  return fragment(
    active,
    html`<h1>Pipelines</h1>
      ${pipelines.length === 0 ? html`<p class="muted">No pipelines found.</p>` : null}
      <table class="pipelines">
        <thead>
          <tr>
            <th>Pipeline</th>
            <th>Schedule</th>
            <th>Last run</th>
            <th>Run</th>
          </tr>
        </thead>
        <tbody>
          ${pipelines.map(
            (p) =>
              html`<tr>
                <td>
                  ${pipelineLink(p.name)}${p.description
                    ? html`<div class="muted">${p.description}</div>`
                    : null}
                  <div class="muted mono">${p.file}</div>
                  ${p.valid
                    ? null
                    : html`<div class="error-text">
                        ${p.error_count} error(s):
                        ${p.errors[0]
                          ? `${p.errors[0].line}:${p.errors[0].column} ${p.errors[0].message}`
                          : ''}
                      </div>`}
                </td>
                <td>${scheduleCell(p)}</td>
                <td>
                  ${p.last_run
                    ? html`${stateBadge(p.last_run.state)} ${runLink(p.last_run.id)}
                        <div class="muted">
                          ${formatTime(p.last_run.created_at)} · ${formatMs(p.last_run.duration_ms)}
                        </div>`
                    : html`<span class="muted">never</span>`}
                </td>
                <td>${runForm(p)}</td>
              </tr>`,
          )}
        </tbody>
      </table>
      <h1>Runs</h1>
      <form class="filters" method="get" action="/">
        <label
          >Pipeline
          <select name="pipeline">
            <option value="">all</option>
            ${names.map(
              (n) =>
                html`<option value="${n}" ${n === query.pipeline ? html` selected` : null}>${n}</option>`,
            )}
          </select></label
        >
        <label
          >State
          <select name="state">
            <option value="">all</option>
            ${RUN_STATES.map(
              (s) => html`<option value="${s}" ${s === query.state ? html` selected` : null}>${s}</option>`,
            )}
          </select></label
        >
        <button type="submit" class="secondary">Filter</button>
      </form>
      ${runsTable(runs, true)}
      <p class="pager">
        ${query.offset > 0
          ? html`<a href="${pageLink(Math.max(0, query.offset - PAGE_SIZE))}">← newer</a>`
          : null}
        ${rows.length > PAGE_SIZE ? html`<a href="${pageLink(query.offset + PAGE_SIZE)}">older →</a>` : null}
      </p>`,
  );
}

export async function renderPipelineView(ctx: ServerContext, name: string): Promise<Reply> {
  const p = await pipelineDetail(ctx, name);
  const active = p.recent_runs.some((r) => isActive(r.state));
  const s = p.schedule;
  return fragment(
    active,
    html`<h1>${p.name}</h1>
      ${p.description ? html`<p>${p.description}</p>` : null}
      <p class="muted mono">${p.file}</p>
      <section class="cards">
        <div class="card">
          <h2>Schedule</h2>
          ${s
            ? html`<p><span class="mono">${s.cron}</span> — ${s.description} (${s.timezone})</p>
                <ol class="fires">
                  ${s.next_fires.map(
                    (f, i) =>
                      html`<li>
                        ${formatTime(f)}${s.dst_notes[i]
                          ? html` <span class="muted">(${s.dst_notes[i]})</span>`
                          : null}
                      </li>`,
                  )}
                </ol>`
            : html`<p class="muted">No schedule: runs only when asked.</p>`}
        </div>
        <div class="card">
          <h2>Run</h2>
          ${runForm(p)}
        </div>
        <div class="card">
          <h2>Recent durations</h2>
          ${renderDurationChart(p.recent_runs)}
        </div>
      </section>
      ${p.all_errors.length > 0
        ? html`<h2>Errors</h2>
            <ul class="errors">
              ${p.all_errors.map(
                (d) =>
                  html`<li>
                    <span class="mono">${d.file}:${d.line}:${d.column}</span>
                    <b>${d.code}</b> ${d.message}${d.hint
                      ? html` <span class="muted">(${d.hint})</span>`
                      : null}
                  </li>`,
              )}
            </ul>`
        : null}
      ${p.graph
        ? html`<h2>Graph</h2>
            <div class="scroll">${renderDagSvg(p.graph)}</div>`
        : null}
      <h2>Recent runs</h2>
      ${runsTable(p.recent_runs, false)}
      <p><a href="/?pipeline=${encodeURIComponent(p.name)}">all runs of ${p.name} →</a></p>
      <h2>Source</h2>
      <pre class="source">${p.source ?? '(unreadable)'}</pre>`,
  );
}

export async function renderRunView(ctx: ServerContext, id: string): Promise<Reply> {
  const run = await requireRun(ctx, id);
  const detail = await runDetail(ctx, run);
  const r = detail.run;
  const states: Record<string, string> = Object.create(null) as Record<string, string>;
  for (const t of detail.tasks) states[t.task] = t.state;
  const canCancel = !detail.finished;
  const canResume = r.state === 'failed' || r.state === 'cancelled' || r.state === 'interrupted';
  return fragment(
    isActive(r.state),
    html`<div class="run" data-run-id="${r.id}" data-run-state="${r.state}">
      <h1>Run <span class="mono">${r.id}</span> ${stateBadge(r.state)}</h1>
      <dl class="facts">
        <dt>Pipeline</dt>
        <dd>${pipelineLink(r.pipeline)}</dd>
        <dt>Trigger</dt>
        <dd>${r.trigger}${r.scheduled_for ? ` for ${formatTime(r.scheduled_for)}` : ''}</dd>
        <dt>Attempt</dt>
        <dd>${r.attempt}</dd>
        <dt>Created</dt>
        <dd>${formatTime(r.created_at)}</dd>
        <dt>Started</dt>
        <dd>${formatTime(r.started_at)}</dd>
        <dt>Finished</dt>
        <dd>${formatTime(r.finished_at)}</dd>
        <dt>Duration</dt>
        <dd>${formatMs(r.duration_ms)}</dd>
        <dt>Params</dt>
        <dd><code>${JSON.stringify(r.params)}</code></dd>
        ${r.error
          ? html`<dt>Error</dt>
              <dd class="error-text">${r.error.code}: ${r.error.message}</dd>`
          : null}
        ${r.cancel_requested && !detail.finished
          ? html`<dt>Cancel</dt>
              <dd>requested</dd>`
          : null}
      </dl>
      <p class="actions">
        ${canCancel
          ? html`<button type="button" class="danger" data-action="cancel" data-run="${r.id}">Cancel</button>`
          : null}
        ${canResume
          ? html`<button type="button" data-action="resume" data-run="${r.id}">Resume</button>`
          : null}
        <button type="button" class="secondary" data-log-task="" data-run="${r.id}">Whole run log</button>
        <span class="form-status" role="status"></span>
      </p>
      <h2>Graph</h2>
      <div class="scroll">${renderDagSvg(detail.graph, states)}</div>
      <h2>Timeline</h2>
      <div class="scroll">${renderTimelineSvg(r, detail.tasks, ctx.now())}</div>
      <h2>Tasks</h2>
      <table class="tasks">
        <thead>
          <tr>
            <th>Task</th>
            <th>Handler</th>
            <th>State</th>
            <th>Attempts</th>
            <th>Duration</th>
            <th>Error or reason</th>
            <th></th>
          </tr>
        </thead>
        <tbody>
          ${detail.tasks.map(
            (t) =>
              html`<tr class="task-row" data-task-row="${t.task}">
                <td class="mono">${t.task}</td>
                <td class="mono">${t.handler ?? ''}</td>
                <td>${stateBadge(t.state)}</td>
                <td>${t.attempts}</td>
                <td>${formatMs(t.duration_ms)}</td>
                <td class="error-text">
                  ${t.error ? `${t.error.code}: ${t.error.message}` : (t.reason ?? '')}${t.attempt_history
                    .length > 1
                    ? html`<ul class="attempts">
                        ${t.attempt_history.map(
                          (a) =>
                            html`<li>
                              #${a.attempt}
                              ${a.state}${a.delay_ms > 0 ? ` after ${formatMs(a.delay_ms)}` : ''}${a.error
                                ? ` — ${a.error.message}`
                                : ''}
                            </li>`,
                        )}
                      </ul>`
                    : null}
                </td>
                <td>
                  <button type="button" class="secondary" data-log-task="${t.task}" data-run="${r.id}">
                    Log
                  </button>
                </td>
              </tr>`,
          )}
        </tbody>
      </table>
    </div>`,
  );
}
