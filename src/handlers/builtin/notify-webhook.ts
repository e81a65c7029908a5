import type { JsonObject, JsonValue } from '../../core/json.js';
import type { Handler, HandlerContext, HookInfo } from '../types.js';
import { durationSchema } from './arg-schemas.js';
import { createOutboundPolicy } from './outbound-guard.js';
import { parseHttpUrl, sendRequest, statusError } from './http-support.js';
import { requireDuration } from './sleep.js';

export interface NotifyWebhookArgs {
  url: string;
  text?: string;
  extra?: JsonObject;
  timeout?: string | number;
  /** Internal hosts allowed on purpose: names, addresses or CIDRs. */
  allow_hosts?: string[];
}

export const DEFAULT_WEBHOOK_TIMEOUT_MS = 10_000;
/** Lines of a multi-line error (a command's stderr tail) quoted under the summary. */
const DETAIL_MAX_CHARS = 1500;

export const notifyWebhookHandler: Handler<NotifyWebhookArgs> = {
  name: 'notify.webhook',
  description:
    'Posts a JSON message about the run to a webhook (Slack incoming-webhook compatible: { text, … }). ' +
    'As a hook, the text summarises what happened.',
  args: {
    type: 'object',
    description: 'Where to post and what to say.',
    properties: {
      url: {
        type: 'string',
        minLength: 1,
        description: 'The webhook URL (http: or https:), usually from a secret environment variable.',
        examples: ['${{ env.SLACK_WEBHOOK_URL }}'],
      },
      text: {
        type: 'string',
        description:
          'The message. Default: a one-line summary of the hook event (or of the run, outside hooks).',
        examples: ['nightly export done: ${{ tasks.export.output.stdout }}'],
      },
      extra: {
        type: 'object',
        description:
          'More fields merged into the posted JSON, last (e.g. Slack channel, username, icon_emoji, blocks).',
        examples: [{ username: 'weft', icon_emoji: ':robot_face:' }],
      },
      allow_hosts: {
        type: 'array',
        description:
          'Hosts this task may reach although they are loopback, private, link-local or otherwise internal ' +
          '(refused by default): host names, IP addresses or CIDRs. Redirects are checked against it too.',
        examples: [['127.0.0.1'], ['10.0.0.0/8', 'metrics.internal']],
        items: { type: 'string', minLength: 1 },
      },
      timeout: durationSchema('Gives up on the post after this long (a retryable failure). Default "10s".', [
        '10s',
      ]),
    },
    required: ['url'],
    additionalProperties: false,
  },
  describe: (args, ctx) => {
    let url: string;
    try {
      url = new URL(args.url).host;
    } catch {
      url = args.url;
    }
    return `post a message about pipeline ${ctx.pipeline} to ${url}`;
  },
  run: async (args, ctx) => {
    const url = parseHttpUrl(args.url);
    const timeoutMs =
      args.timeout === undefined ? DEFAULT_WEBHOOK_TIMEOUT_MS : requireDuration(args.timeout, 'timeout');
    // The text and extra fields may quote anything (an error, an env value): the run's secrets
    // are masked in every string of the payload before it leaves.
    const payload = maskStrings(buildWebhookPayload(ctx, args.text, args.extra), ctx.mask);
    // The path of a webhook URL is its secret (Slack's are): name only the host in messages.
    const label = `webhook POST ${url.origin}`;
    const { response, text } = await sendRequest({
      url,
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(payload),
      timeoutMs,
      signal: ctx.signal,
      label,
      policy: createOutboundPolicy(args.allow_hosts),
    });
    if (!response.ok) throw statusError(label, response, text);
    ctx.log.info(`${label} answered ${response.status}`);
    return { status: response.status };
  },
};

/** The posted JSON: Slack's `text`, structured fields for other receivers, then `extra`. */
export function buildWebhookPayload(ctx: HandlerContext, text?: string, extra?: JsonObject): JsonObject {
  const hook = ctx.hook;
  const payload: JsonObject = {
    text: text ?? summarise(ctx),
    pipeline: ctx.pipeline,
    run_id: ctx.run.id,
    event: hook?.event ?? null,
    state: hook?.runState ?? null,
    task: hook ? hook.task : ctx.task,
    error: hook?.error ? ({ ...hook.error } as JsonObject) : null,
    scheduled_for: ctx.run.scheduledFor,
  };
  if (hook?.attempts !== undefined) payload.attempts = hook.attempts;
  if (hook && hook.consecutiveFailures > 0) payload.consecutive_failures = hook.consecutiveFailures;
  return { ...payload, ...(extra as Record<string, JsonValue> | undefined) };
}

/**
 * One readable line, e.g.
 * `:x: pipeline *etl* run r_1 failed: task "load" failed after 4 attempts: connection refused`,
 * followed by the rest of a multi-line error (a command's stderr) in a code block.
 */
export function summarise(ctx: HandlerContext): string {
  const hook = ctx.hook;
  const run = `pipeline *${slackEscape(ctx.pipeline)}* run ${slackEscape(ctx.run.id)}`;
  if (!hook) return `:information_source: ${run}, task "${slackEscape(ctx.task)}"`;
  const [firstLine, detail] = splitError(hook);
  const taskPart = hook.task === null ? '' : taskFailure(hook);
  const streak =
    hook.consecutiveFailures > 1 ? ` (${ordinal(hook.consecutiveFailures)} failure in a row)` : '';
  let line: string;
  switch (hook.event) {
    case 'task_failure':
      line = `:x: ${run}: ${taskPart || 'a task failed'}${firstLine ? `: ${firstLine}` : ''}`;
      break;
    case 'run_failure': {
      const why = [taskPart, firstLine].filter((part) => part !== '').join(': ');
      line = `:x: ${run} failed${why ? `: ${why}` : ''}${streak}`;
      break;
    }
    case 'run_success':
      line = `:white_check_mark: ${run} succeeded`;
      break;
    case 'run_recovery': {
      const before = hook.consecutiveFailures;
      line = `:large_green_circle: ${run} succeeded again${
        before > 0 ? ` after ${before} failed run${before === 1 ? '' : 's'}` : ''
      }`;
      break;
    }
  }
  return detail ? `${line}\n\`\`\`\n${detail}\n\`\`\`` : line;
}

function taskFailure(hook: HookInfo): string {
  const attempts = hook.attempts;
  const after = attempts !== undefined && attempts > 1 ? ` after ${attempts} attempts` : '';
  return `task "${slackEscape(hook.task ?? '')}" failed${after}`;
}

/** The error's first line for the summary, and the rest (capped) for a code block. */
function splitError(hook: HookInfo): [string, string] {
  const message = hook.error?.message ?? '';
  const newline = message.indexOf('\n');
  if (newline === -1) return [slackEscape(message.trim()), ''];
  let detail = message.slice(newline + 1).trimEnd();
  if (detail.length > DETAIL_MAX_CHARS) detail = `…${detail.slice(-DETAIL_MAX_CHARS)}`;
  return [slackEscape(message.slice(0, newline).trim()), slackEscape(detail.replaceAll('```', "'''"))];
}

/** Slack reads &, < and > as markup; anything from a user or an error must not be. */
function slackEscape(text: string): string {
  return text.replaceAll('&', '&amp;').replaceAll('<', '&lt;').replaceAll('>', '&gt;');
}

function ordinal(n: number): string {
  const tens = n % 100;
  if (tens >= 11 && tens <= 13) return `${n}th`;
  return `${n}${['th', 'st', 'nd', 'rd'][n % 10] ?? 'th'}`;
}

function maskStrings<T extends JsonValue>(value: T, mask: ((text: string) => string) | undefined): T {
  if (!mask) return value;
  if (typeof value === 'string') return mask(value) as T;
  if (Array.isArray(value)) return value.map((item) => maskStrings(item, mask)) as T;
  if (value !== null && typeof value === 'object') {
    const out: JsonObject = {};
    for (const [key, item] of Object.entries(value)) {
      // Keys too: a param or an output may be keyed by a secret.
      Object.defineProperty(out, mask(key), {
        value: maskStrings(item, mask),
        enumerable: true,
        writable: true,
        configurable: true,
      });
    }
    return out as T;
  }
  return value;
}
