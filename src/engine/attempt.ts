import type { Clock } from '../core/clock.js';
import { toWeftError, WeftError, type ErrorCode } from '../errors.js';

/** How one attempt ended, before anything is written. */
export type AttemptResult =
  | { state: 'succeeded'; value: unknown }
  | { state: 'failed' | 'timed_out' | 'cancelled'; error: WeftError };

export interface InvokeOptions {
  task: string;
  /** What timed out, for the message. Default `task "<task>"`. */
  label?: string;
  /** The code a timeout gets. Default TASK_TIMEOUT. */
  timeoutCode?: ErrorCode;
  clock: Clock;
  timeoutMs: number | null;
  /** The run's cancel signal: its reason says why (cancel, run timeout). */
  cancelSignal: AbortSignal;
  /** How long the handler may take to return once cancelled. */
  graceMs: number;
}

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return (
    value !== null &&
    (typeof value === 'object' || typeof value === 'function') &&
    typeof (value as { then?: unknown }).then === 'function'
  );
}

export function cancelError(reason: unknown): WeftError {
  if (reason instanceof WeftError) return reason;
  return new WeftError('TASK_CANCELLED', 'cancelled', { cause: reason });
}

/**
 * Calls a handler and decides how the attempt ended. The handler's promise is raced against the
 * attempt's deadline and the run's cancel signal: at the deadline the attempt is `timed_out` even
 * if the handler ignores its signal (it is not waited for), and on cancel the handler gets
 * `graceMs` to return before the attempt is `cancelled` regardless. A handler that returns a plain
 * value (not a promise) costs no timer, no race and no AbortController.
 */
export function invokeHandler(
  call: (signal: AbortSignal) => unknown,
  options: InvokeOptions,
): Promise<AttemptResult> | AttemptResult {
  const { cancelSignal, timeoutMs } = options;
  if (cancelSignal.aborted) return { state: 'cancelled', error: cancelError(cancelSignal.reason) };
  // Without a timeout the run's cancel signal is all the handler needs; with one, the attempt gets
  // its own signal, aborted by whichever comes first.
  let controller: AbortController | undefined;
  let forwardCancel: (() => void) | undefined;
  if (timeoutMs !== null) {
    const own = new AbortController();
    controller = own;
    forwardCancel = () => own.abort(cancelSignal.reason);
    cancelSignal.addEventListener('abort', forwardCancel, { once: true });
  }
  const signal = controller?.signal ?? cancelSignal;
  let value: unknown;
  try {
    value = call(signal);
  } catch (error) {
    if (forwardCancel) cancelSignal.removeEventListener('abort', forwardCancel);
    return failure(error, cancelSignal);
  }
  if (!isThenable(value)) {
    if (forwardCancel) cancelSignal.removeEventListener('abort', forwardCancel);
    return { state: 'succeeded', value };
  }
  return race(value, options, controller, forwardCancel);
}

function failure(error: unknown, cancelSignal: AbortSignal): AttemptResult {
  // A handler that throws after its run was cancelled most likely threw because of it.
  if (cancelSignal.aborted) return { state: 'cancelled', error: cancelError(cancelSignal.reason) };
  return { state: 'failed', error: toWeftError(error, 'HANDLER_FAILED') };
}

function race(
  promise: PromiseLike<unknown>,
  options: InvokeOptions,
  controller: AbortController | undefined,
  forwardCancel: (() => void) | undefined,
): Promise<AttemptResult> {
  const {
    clock,
    cancelSignal,
    timeoutMs,
    graceMs,
    task,
    label = `task "${task}"`,
    timeoutCode = 'TASK_TIMEOUT',
  } = options;
  return new Promise<AttemptResult>((resolve) => {
    let settled = false;
    const timers = new AbortController();
    const finish = (result: AttemptResult) => {
      if (settled) return;
      settled = true;
      timers.abort();
      if (forwardCancel) cancelSignal.removeEventListener('abort', forwardCancel);
      cancelSignal.removeEventListener('abort', onCancel);
      resolve(result);
    };
    const ignore = () => undefined;
    function onCancel(): void {
      clock
        .sleep(graceMs, timers.signal)
        .then(() => finish({ state: 'cancelled', error: cancelError(cancelSignal.reason) }), ignore);
    }
    promise.then(
      (value) => finish({ state: 'succeeded', value }),
      (error: unknown) => finish(failure(error, cancelSignal)),
    );
    if (timeoutMs !== null && controller) {
      clock.sleep(timeoutMs, timers.signal).then(() => {
        if (settled) return;
        const error = new WeftError(timeoutCode, `${label} timed out after ${timeoutMs}ms`);
        controller.abort(error);
        finish({ state: 'timed_out', error });
      }, ignore);
    }
    if (cancelSignal.aborted) onCancel();
    else cancelSignal.addEventListener('abort', onCancel, { once: true });
  });
}
