import { html, trusted } from '../html.js';

/**
 * The page around every view. Loads no data by itself when a token is required: the script asks
 * for the token once (kept in localStorage) and fetches `fragmentUrl` with it.
 */
export function renderShell(options: { fragmentUrl: string | null; content: string | null }): string {
  const content = options.content === null ? html`<p class="notice">Loading…</p>` : trusted(options.content);
  return html`<!doctype html>
    <html lang="en">
      <head>
        <meta charset="utf-8" />
        <meta name="viewport" content="width=device-width, initial-scale=1" />
        <meta name="referrer" content="no-referrer" />
        <title>weft</title>
        <link rel="stylesheet" href="/assets/app.css" />
        <script src="/assets/app.js" defer></script>
      </head>
      <body>
        <header class="top">
          <a class="brand" href="/">weft</a>
          <nav><a href="/">Pipelines &amp; runs</a></nav>
          <span class="spacer"></span>
          <span id="status" class="status" role="status"></span>
          <button type="button" id="token-button" class="secondary">API token</button>
          <form id="token-form" class="token-form" hidden>
            <label>API token <input type="password" id="token-input" autocomplete="off" required /></label>
            <button type="submit">Save</button>
          </form>
        </header>
        <main
          id="view"
          data-fragment="${options.fragmentUrl ?? ''}"
          data-server-rendered="${options.content === null ? 'false' : 'true'}"
        >
          ${content}
        </main>
        <section id="log-panel" class="log-panel" hidden>
          <header>
            <h2 id="log-title">Log</h2>
            <span id="log-state" class="muted"></span
            ><button type="button" id="log-close" class="secondary">Close</button>
          </header>
          <pre id="log-lines" class="log-lines"></pre>
        </section>
      </body>
    </html> `.value;
}
