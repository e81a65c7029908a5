/**
 * The dashboard's one script, served as /assets/app.js (a string here so that `tsc` ships it; no
 * build step). Vanilla JS: it never builds HTML from data — text goes in through textContent, and
 * the only markup it inserts is the server's own escaped fragments.
 */
export const APP_JS = String.raw`'use strict';
(function () {
  var TOKEN_KEY = 'weft.token';
  var REFRESH_MS = 2000;
  var view = document.getElementById('view');
  var statusEl = document.getElementById('status');
  var tokenForm = document.getElementById('token-form');
  var tokenInput = document.getElementById('token-input');
  var logPanel = document.getElementById('log-panel');
  var logLines = document.getElementById('log-lines');
  var logTitle = document.getElementById('log-title');
  var logState = document.getElementById('log-state');
  var logAbort = null;
  var refreshTimer = null;

  function token() {
    try { return localStorage.getItem(TOKEN_KEY) || ''; } catch (e) { return ''; }
  }
  function setStatus(text, isError) {
    statusEl.textContent = text || '';
    statusEl.className = 'status' + (isError ? ' error-text' : '');
  }
  function askToken(message) {
    tokenForm.hidden = false;
    setStatus(message || 'This server needs an API token.', true);
    tokenInput.focus();
  }
  function api(path, options) {
    options = options || {};
    var headers = options.headers || {};
    var t = token();
    if (t) headers['Authorization'] = 'Bearer ' + t;
    if (options.body !== undefined) headers['Content-Type'] = 'application/json';
    return fetch(path, { method: options.method || 'GET', headers: headers, body: options.body, signal: options.signal, credentials: 'omit' })
      .then(function (res) {
        if (res.status === 401) { askToken('The API token is missing or wrong.'); throw new Error('unauthorized'); }
        return res;
      });
  }
  function apiJson(path, options) {
    return api(path, options).then(function (res) {
      return res.json().then(function (body) {
        if (!res.ok) throw new Error(body && body.error ? body.error.message : 'HTTP ' + res.status);
        return body;
      });
    });
  }

  // ---- the view: a server-rendered fragment, refreshed while runs are going ----
  function isEditing() {
    var a = document.activeElement;
    return !!(a && view.contains(a) && (a.tagName === 'INPUT' || a.tagName === 'SELECT' || a.tagName === 'TEXTAREA'));
  }
  function loadFragment() {
    var url = view.getAttribute('data-fragment');
    if (!url) return Promise.resolve();
    return api(url).then(function (res) {
      if (!res.ok) {
        return res.json().then(function (body) {
          view.textContent = '';
          var p = document.createElement('p');
          p.className = 'notice error-text';
          p.textContent = body && body.error ? body.error.message : 'HTTP ' + res.status;
          view.appendChild(p);
        });
      }
      return res.text().then(function (markup) {
        if (isEditing()) return;
        // Markup from our own server, every value in it escaped there (see src/server/html.ts).
        view.innerHTML = markup;
        setStatus('');
      });
    }).catch(function (e) { if (e.message !== 'unauthorized') setStatus('Could not refresh: ' + e.message, true); })
      .then(scheduleRefresh);
  }
  function scheduleRefresh() {
    clearTimeout(refreshTimer);
    var fragment = view.querySelector('.fragment');
    if (fragment && fragment.getAttribute('data-active') === 'true') refreshTimer = setTimeout(loadFragment, REFRESH_MS);
  }

  // ---- actions ----
  function paramValue(input) {
    var type = input.getAttribute('data-type');
    if (type === 'boolean') return input.type === 'checkbox' ? input.checked : input.value === 'true';
    var text = input.value;
    if (type === 'integer' || type === 'number') return text.trim() === '' ? undefined : Number(text);
    if (type === 'object' || type === 'array') return text.trim() === '' ? undefined : JSON.parse(text);
    return text === '' && !input.required ? undefined : text;
  }
  function formStatus(form, text, isError) {
    var el = form.querySelector('.form-status');
    if (el) { el.textContent = text; el.className = 'form-status' + (isError ? ' error-text' : ''); }
  }
  function waitForRun(requestId, form, started) {
    return apiJson('/api/requests/' + encodeURIComponent(requestId)).then(function (body) {
      var r = body.request;
      if (r.run_id) { window.location.href = '/runs/' + encodeURIComponent(r.run_id); return; }
      if (r.state === 'failed') { formStatus(form, 'Failed: ' + (r.error ? r.error.message : 'unknown error'), true); return; }
      if (Date.now() - started > 60000) { formStatus(form, 'Still waiting for a scheduler to pick it up (' + requestId + ')', true); return; }
      formStatus(form, 'Requested, waiting for the scheduler…');
      return new Promise(function (resolve) { setTimeout(resolve, 400); }).then(function () { return waitForRun(requestId, form, started); });
    });
  }
  function submitRun(form) {
    var params = {};
    try {
      form.querySelectorAll('[data-param]').forEach(function (input) {
        var value = paramValue(input);
        if (value !== undefined) params[input.getAttribute('data-param')] = value;
      });
    } catch (e) { formStatus(form, 'Invalid JSON in a param: ' + e.message, true); return; }
    var name = form.getAttribute('data-pipeline');
    formStatus(form, 'Requesting…');
    apiJson('/api/pipelines/' + encodeURIComponent(name) + '/runs', { method: 'POST', body: JSON.stringify({ params: params }) })
      .then(function (body) { return waitForRun(body.request.id, form, Date.now()); })
      .catch(function (e) { formStatus(form, e.message, true); });
  }
  function runAction(button) {
    var action = button.getAttribute('data-action');
    var id = button.getAttribute('data-run');
    var holder = button.closest('.actions') || button.parentNode;
    button.disabled = true;
    apiJson('/api/runs/' + encodeURIComponent(id) + '/' + action, { method: 'POST', body: '{}' })
      .then(function () { return loadFragment(); })
      .catch(function (e) { formStatus(holder, e.message, true); button.disabled = false; });
  }

  // ---- the log viewer: what is stored, then following over SSE while the run goes on ----
  function appendLine(line) {
    var span = document.createElement('span');
    span.className = 'log-line lvl-' + String(line.level).replace(/[^a-z]/g, '');
    var where = line.task ? line.task + (line.attempt ? '#' + line.attempt : '') : 'run';
    span.textContent = line.ts + ' ' + where + ' ' + line.message + '\n';
    logLines.appendChild(span);
    logLines.scrollTop = logLines.scrollHeight;
  }
  function closeLog() {
    if (logAbort) logAbort.abort();
    logAbort = null;
    logPanel.hidden = true;
  }
  function fetchAll(runId, task, after, signal) {
    var q = '?after=' + after + (task ? '&task=' + encodeURIComponent(task) : '');
    return apiJson('/api/runs/' + encodeURIComponent(runId) + '/logs' + q, { signal: signal }).then(function (body) {
      body.lines.forEach(appendLine);
      if (body.more) return fetchAll(runId, task, body.next_after, signal);
      return body;
    });
  }
  function follow(runId, task, after, signal) {
    var q = '?after=' + after + (task ? '&task=' + encodeURIComponent(task) : '');
    // fetch rather than EventSource: EventSource cannot send the Authorization header.
    return api('/api/runs/' + encodeURIComponent(runId) + '/logs/stream' + q, { signal: signal, headers: { Accept: 'text/event-stream' } })
      .then(function (res) {
        if (!res.ok || !res.body) throw new Error('HTTP ' + res.status);
        var reader = res.body.getReader();
        var decoder = new TextDecoder();
        var buffer = '';
        function pump() {
          return reader.read().then(function (chunk) {
            if (chunk.done) return;
            buffer += decoder.decode(chunk.value, { stream: true });
            var parts = buffer.split('\n\n');
            buffer = parts.pop();
            parts.forEach(function (block) {
              var event = 'message', data = '';
              block.split('\n').forEach(function (l) {
                if (l.indexOf('event:') === 0) event = l.slice(6).trim();
                else if (l.indexOf('data:') === 0) data += l.slice(5).trim();
              });
              if (!data) return;
              var payload = JSON.parse(data);
              if (event === 'log') appendLine(payload);
              if (event === 'end') { logState.textContent = 'run ' + payload.state; loadFragment(); }
            });
            return pump();
          });
        }
        logState.textContent = 'following…';
        return pump();
      });
  }
  function openLog(runId, task) {
    if (logAbort) logAbort.abort();
    var controller = new AbortController();
    logAbort = controller;
    logPanel.hidden = false;
    logLines.textContent = '';
    logTitle.textContent = task ? 'Log of ' + task : 'Log of the run';
    logState.textContent = 'loading…';
    fetchAll(runId, task, 0, controller.signal).then(function (body) {
      var active = ['queued', 'running', 'retrying'].indexOf(body.run_state) !== -1;
      logState.textContent = active ? '' : 'run ' + body.run_state;
      if (active) return follow(runId, task, body.next_after, controller.signal);
    }).catch(function (e) { if (e.name !== 'AbortError') logState.textContent = 'error: ' + e.message; });
  }

  // ---- wiring ----
  document.addEventListener('submit', function (event) {
    var form = event.target;
    if (form === tokenForm) {
      event.preventDefault();
      try { localStorage.setItem(TOKEN_KEY, tokenInput.value.trim()); } catch (e) { /* private mode */ }
      tokenInput.value = '';
      tokenForm.hidden = true;
      setStatus('');
      loadFragment();
    } else if (form.classList && form.classList.contains('run-form')) {
      event.preventDefault();
      submitRun(form);
    }
  });
  document.addEventListener('click', function (event) {
    var target = event.target.closest ? event.target : event.target.parentNode;
    if (target.closest('#token-button')) { tokenForm.hidden = !tokenForm.hidden; return; }
    if (target.closest('#log-close')) { closeLog(); return; }
    var action = target.closest('[data-action]');
    if (action) { runAction(action); return; }
    var logButton = target.closest('[data-log-task]');
    var node = target.closest('.dag-node');
    var run = target.closest('.run');
    if (logButton) openLog(logButton.getAttribute('data-run'), logButton.getAttribute('data-log-task'));
    else if (node && run) openLog(run.getAttribute('data-run-id'), node.getAttribute('data-task'));
  });
  if (view.getAttribute('data-server-rendered') === 'true') scheduleRefresh();
  else loadFragment();
})();
`;
