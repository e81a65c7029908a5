/** The dashboard's stylesheet, served as /assets/app.css (no inline styles: CSP style-src 'self'). */
export const STYLES_CSS = `
:root { --fg: #1d2939; --muted: #667085; --line: #e4e7ec; --bg: #fcfcfd; --accent: #1570ef; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: var(--fg); background: var(--bg); }
a { color: var(--accent); text-decoration: none; }
a:hover { text-decoration: underline; }
.top { display: flex; gap: 16px; align-items: center; padding: 10px 20px; border-bottom: 1px solid var(--line); background: #fff; }
.brand { font-weight: 700; font-size: 18px; color: var(--fg); }
.spacer { flex: 1; }
main { padding: 8px 20px 40px; max-width: 1280px; }
h1 { font-size: 20px; margin: 20px 0 10px; }
h2 { font-size: 15px; margin: 18px 0 8px; }
table { border-collapse: collapse; width: 100%; background: #fff; }
th, td { text-align: left; padding: 6px 8px; border-bottom: 1px solid var(--line); vertical-align: top; }
th { font-weight: 600; color: var(--muted); font-size: 12px; text-transform: uppercase; }
.mono, code, pre { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 12.5px; }
.muted { color: var(--muted); }
.error-text { color: #b42318; }
.notice { padding: 12px; }
button { font: inherit; padding: 4px 10px; border-radius: 6px; border: 1px solid var(--accent); background: var(--accent); color: #fff; cursor: pointer; }
button.secondary { background: #fff; color: var(--fg); border-color: #d0d5dd; }
button.danger { background: #d92d20; border-color: #d92d20; }
button:disabled { opacity: .5; cursor: default; }
input, select { font: inherit; padding: 3px 6px; border: 1px solid #d0d5dd; border-radius: 6px; }
.run-form { display: flex; flex-wrap: wrap; gap: 6px; align-items: center; }
.run-form label { color: var(--muted); }
.form-status { margin-left: 6px; }
.filters { display: flex; gap: 12px; margin: 8px 0; align-items: center; }
.token-form { display: flex; gap: 6px; align-items: center; }
.badge { display: inline-block; padding: 1px 8px; border-radius: 10px; font-size: 12px; border: 1px solid; }
.badge.st-succeeded { background: #d1fadf; border-color: #12b76a; color: #05603a; }
.badge.st-failed { background: #fee4e2; border-color: #d92d20; color: #912018; }
.badge.st-running, .badge.st-queued { background: #d1e9ff; border-color: #1570ef; color: #175cd3; }
.badge.st-retrying { background: #fef0c7; border-color: #dc6803; color: #93370d; }
.badge.st-interrupted { background: #fef0c7; border-color: #b54708; color: #93370d; }
.badge.st-skipped, .badge.st-cancelled, .badge.st-pending { background: #f2f4f7; border-color: #98a2b3; color: #344054; }
.cards { display: flex; flex-wrap: wrap; gap: 12px; }
.card { border: 1px solid var(--line); border-radius: 8px; padding: 4px 12px 10px; background: #fff; min-width: 260px; }
.facts { display: grid; grid-template-columns: max-content 1fr; gap: 2px 14px; }
.facts dt { color: var(--muted); }
.facts dd { margin: 0; }
.actions { display: flex; gap: 8px; align-items: center; }
.scroll { overflow-x: auto; background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 6px; }
.attempts { margin: 4px 0 0; padding-left: 16px; color: var(--muted); }
.source { background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 10px; overflow-x: auto; }
svg text { font: 12px system-ui, sans-serif; fill: var(--fg); }
svg .node-sub, svg .axis { fill: var(--muted); font-size: 11px; }
svg .edge { fill: none; stroke: #98a2b3; stroke-width: 1.5; }
svg .arrow { fill: #98a2b3; }
svg .dag-node { cursor: pointer; }
svg .node { stroke-width: 1.5; fill: #fff; stroke: #d0d5dd; }
svg .st-succeeded { fill: #d1fadf; stroke: #12b76a; }
svg .st-failed { fill: #fee4e2; stroke: #d92d20; }
svg .st-running, svg .st-queued { fill: #d1e9ff; stroke: #1570ef; }
svg .st-retrying, svg .st-interrupted { fill: #fef0c7; stroke: #dc6803; }
svg .st-skipped, svg .st-cancelled { fill: #f2f4f7; stroke: #475467; }
svg .st-pending, svg .st-none { fill: #fff; stroke: #d0d5dd; }
svg .wait { fill: #98a2b3; }
svg .att-succeeded { fill: #12b76a; }
svg .att-failed, svg .att-timed_out { fill: #d92d20; }
svg .att-running { fill: #1570ef; }
svg .att-cancelled, svg .att-lost { fill: #98a2b3; }
.log-panel { position: fixed; left: 0; right: 0; bottom: 0; height: 40vh; background: #101828; color: #f2f4f7; display: flex; flex-direction: column; border-top: 2px solid var(--accent); }
.log-panel[hidden] { display: none; }
.log-panel header { display: flex; gap: 12px; align-items: center; padding: 6px 12px; }
.log-panel h2 { margin: 0; font-size: 14px; }
.log-lines { flex: 1; overflow: auto; margin: 0; padding: 6px 12px; white-space: pre-wrap; word-break: break-word; }
.lvl-error, .lvl-stderr { color: #fda29b; }
.lvl-warn { color: #fec84b; }
.lvl-debug { color: #98a2b3; }
.pager { display: flex; gap: 16px; }
`;
