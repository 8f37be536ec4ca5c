// Live log viewer for the run page.
// Protocol (console/consumers.py): the socket first sends {"type":"snapshot","log","status"} — the whole log
// stored so far, read after joining the live group — then {"type":"log","lines"} and {"type":"status",...}.
// The server drops live lines already contained in the snapshot, so replacing the text with the snapshot and
// appending live lines leaves no gaps or duplicates. A reconnect starts again from a fresh snapshot.
(function () {
  "use strict";
  var pre = document.getElementById("log");
  if (!pre) { return; }
  var state = document.getElementById("log-state");
  var follow = document.getElementById("log-follow");
  var pauseBtn = document.getElementById("log-pause");
  var paused = false;
  var pending = [];
  var finished = pre.dataset.terminal === "1";
  var TERMINAL = ["succeeded", "failed", "timed_out", "cancelled"];
  var retryDelay = 1000;

  function lineNode(line) {
    var frag = document.createDocumentFragment();
    var m = /^(\d{4}-\d\d-\d\dT(\d\d:\d\d:\d\d)(?:\.\d+)?(?:Z|[+-]\d\d:\d\d)) (.*)$/.exec(line);
    if (m) {
      var ts = document.createElement("span");
      ts.className = "ts";
      ts.title = m[1];
      ts.textContent = m[2] + " ";
      frag.appendChild(ts);
      frag.appendChild(document.createTextNode(m[3] + "\n"));
    } else {
      frag.appendChild(document.createTextNode(line + "\n"));
    }
    return frag;
  }

  function render(lines, replace) {
    if (replace) { pre.textContent = ""; }
    var frag = document.createDocumentFragment();
    lines.forEach(function (l) { frag.appendChild(lineNode(l)); });
    pre.appendChild(frag);
    if (follow.checked && !paused) { pre.scrollTop = pre.scrollHeight; }
  }

  function splitLines(text) {
    if (!text) { return []; }
    var lines = text.split("\n");
    if (lines[lines.length - 1] === "") { lines.pop(); }
    return lines;
  }

  function append(lines) {
    if (paused) { pending = pending.concat(lines); return; }
    render(lines, false);
  }

  function setStatus(msg) {
    var badge = document.getElementById("run-status");
    if (badge && msg.status) {
      badge.className = "badge s-" + msg.status;
      badge.dataset.runStatus = msg.status;
      badge.textContent = msg.status.replace("_", " ");
    }
    document.body.dispatchEvent(new CustomEvent("run-status-changed", { detail: msg }));
    if (TERMINAL.indexOf(msg.status) >= 0) {
      finished = true;
      state.textContent = "Finished: " + msg.status.replace("_", " ") + " — stored log";
      var cancel = document.getElementById("cancel-form");
      if (cancel) { cancel.hidden = true; }
    } else {
      state.textContent = "Live: " + msg.status;
    }
  }

  render(splitLines(pre.textContent), true);

  pauseBtn.addEventListener("click", function () {
    paused = !paused;
    pauseBtn.setAttribute("aria-pressed", paused ? "true" : "false");
    pauseBtn.textContent = paused ? "Resume" : "Pause";
    if (!paused && pending.length) { var p = pending; pending = []; render(p, false); }
  });

  function connect() {
    var scheme = location.protocol === "https:" ? "wss://" : "ws://";
    var ws = new WebSocket(scheme + location.host + pre.dataset.wsPath);
    var opened = false;
    ws.onopen = function () { opened = true; retryDelay = 1000; };
    ws.onmessage = function (e) {
      var msg = JSON.parse(e.data);
      if (msg.type === "snapshot") {
        pending = [];
        render(splitLines(msg.log), true);
        setStatus(msg.status);
      } else if (msg.type === "log") {
        append(msg.lines);
      } else if (msg.type === "status") {
        setStatus(msg);
      }
    };
    ws.onclose = function (e) {
      if (finished) { return; }
      if (!opened) {
        state.textContent = "Live log unavailable (connection refused)";
      } else {
        state.textContent = "Disconnected; reconnecting…";
      }
      if (e.code === 4403 || e.code === 4404) { return; }
      setTimeout(connect, retryDelay);
      retryDelay = Math.min(retryDelay * 2, 15000);
    };
  }
  connect();
})();
