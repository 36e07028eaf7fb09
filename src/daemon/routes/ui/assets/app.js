// authsome dashboard: the provider file picker, and live rows on the Requests page (server-sent events).
// Rows are built with textContent only: nothing from the log is parsed as HTML.
"use strict";
// The provider form: a chosen file's text goes into the definition field.
(function () {
  var file = document.getElementById("definition-file");
  var form = document.getElementById("register");
  if (!file || !form || !window.FileReader) return;
  file.addEventListener("change", function () {
    var f = file.files && file.files[0];
    if (!f) return;
    var r = new FileReader();
    r.onload = function () { form.elements.definition.value = String(r.result); };
    r.readAsText(f);
  });
})();
(function () {
  var table = document.getElementById("requests");
  if (!table || !window.EventSource) return;
  var src = table.getAttribute("data-events");
  if (!src) return;
  var body = table.tBodies[0];
  var status = document.getElementById("live");
  var es = new EventSource(src);
  function cell(tr, text, cls) {
    var td = document.createElement("td");
    td.textContent = text == null ? "" : String(text);
    if (cls) td.className = cls;
    tr.appendChild(td);
  }
  function pad(n) { return (n < 10 ? "0" : "") + n; }
  function when(ms) {
    var d = new Date(ms);
    return d.getUTCFullYear() + "-" + pad(d.getUTCMonth() + 1) + "-" + pad(d.getUTCDate()) +
      " " + pad(d.getUTCHours()) + ":" + pad(d.getUTCMinutes()) + ":" + pad(d.getUTCSeconds());
  }
  es.onopen = function () { if (status) status.textContent = "live"; };
  es.onerror = function () { if (status) status.textContent = "reconnecting…"; };
  es.addEventListener("entry", function (ev) {
    var e;
    try { e = JSON.parse(ev.data); } catch (_) { return; }
    var tr = document.createElement("tr");
    tr.className = "fresh" + (e.refused || e.tripwire ? " refused" : (e.redactions > 0 ? " redacted" : ""));
    tr.setAttribute("data-seq", String(e.seq));
    cell(tr, when(e.ts_ms), "mono");
    cell(tr, e.run || "");
    cell(tr, (e.provider || "") + (e.connection ? "/" + e.connection : ""));
    cell(tr, e.kind === "tunnel" ? "CONNECT" : (e.method || ""));
    cell(tr, e.host + ":" + e.port + (e.path || ""), "mono");
    cell(tr, e.status == null ? "" : e.status);
    cell(tr, e.injected ? "injected" : "");
    var notes = [];
    if (e.refused) notes.push("refused: " + e.refused);
    if (e.redactions > 0) notes.push("redacted ×" + e.redactions);
    if (e.tripwire) notes.push("tripwire");
    if (e.kind === "dropped") notes.push(e.dropped + " entries dropped");
    cell(tr, notes.join(", "));
    cell(tr, Math.round(e.duration_ms) + " ms", "mono");
    body.insertBefore(tr, body.firstChild);
    var empty = document.getElementById("empty");
    if (empty) empty.remove();
  });
})();
