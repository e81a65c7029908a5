import { formatDuration } from '../../core/duration.js';
import { html, type SafeHtml } from '../html.js';

export function formatTime(iso: string | null | undefined): string {
  if (!iso) return '—';
  return iso
    .replace('T', ' ')
    .replace(/\.\d+Z$/, 'Z')
    .replace(/Z$/, ' UTC');
}

export function formatMs(ms: number | null | undefined): string {
  return ms === null || ms === undefined ? '—' : formatDuration(Math.max(0, ms));
}

export function stateBadge(state: string): SafeHtml {
  return html`<span class="badge st-${state}">${state}</span>`;
}

export function truncate(text: string, max: number): string {
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

export function pathSegment(value: string): string {
  return encodeURIComponent(value);
}
