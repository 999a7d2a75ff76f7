// The console's live layer: one Server-Sent Events stream per page (/events) keeps the map, the fleet table, the
// counts and the alarm badge current; command forms post through fetch and show each post's reply as it arrives.
// Plain browser JavaScript, no library, nothing fetched from elsewhere.
"use strict";

(function () {
  const page = document.body.dataset.page;
  const $ = (sel, root) => (root || document).querySelector(sel);
  const $$ = (sel, root) => Array.from((root || document).querySelectorAll(sel));
  const esc = (s) => String(s == null ? "" : s).replace(/[&<>"']/g, (c) =>
    ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}[c]));

  // --- map: click a post to open its page ---
  const circles = {};
  $$("#map circle.post").forEach((c) => {
    circles[c.dataset.id] = c;
    c.addEventListener("click", () => { location.href = "/post/" + c.dataset.id; });
  });
  const rows = {};
  $$("#fleet-table tbody tr").forEach((r) => { rows[r.dataset.id] = r; });

  function describe(p) {
    if (p.look === "offline") return "offline";
    const bits = [];
    if (p.level != null) bits.push(p.level + " %");
    if (p.reason) bits.push(p.reason);
    if (p.faults.length) bits.push("faults: " + p.faults.join(", "));
    return bits.join(" · ") || p.look;
  }

  function updatePost(p) {
    const c = circles[p.id];
    if (c) {
      c.setAttribute("class", "post " + p.look);
      const t = c.querySelector("title");
      if (t) t.textContent = p.id + ": " + describe(p);
    }
    const r = rows[p.id];
    if (r) {
      r.dataset.look = p.look;
      const td = r.children;
      td[1].innerHTML = '<span class="chip ' + esc(p.look) + '">' + esc(p.look) + "</span>";
      td[2].textContent = p.level == null ? "-" : p.level + " %";
      td[3].textContent = p.reason || "-";
      td[4].textContent = p.faults.join(", ") || "-";
      if (p.energy_wh != null) td[7].textContent = (p.energy_wh / 1000).toFixed(1);
    }
    const look = $("#post-look");
    if (look && look.dataset.id === p.id) {
      look.innerHTML = '<span class="chip ' + esc(p.look) + '">' + esc(p.look) + "</span>";
      for (const k of ["level", "reason", "faults", "online"]) {
        const dd = $("#kv-" + k);
        const v = p[k];
        if (dd) dd.textContent = k === "faults" ? (p.faults.join(", ") || "-") :
          v === true ? "yes" : v === false ? "no" : v == null ? "-" : String(v);
      }
    }
  }

  // --- the live stream ---
  let reloadTimer = null;
  function softReload() {  // pages whose content is a list from the database re-render from the server
    if (reloadTimer) return;
    reloadTimer = setTimeout(() => { location.reload(); }, 600);
  }

  function connect() {
    const es = new EventSource("/events");
    const live = $("#live");
    es.addEventListener("hello", () => { if (live) live.classList.add("on"); });
    es.addEventListener("posts", (e) => { JSON.parse(e.data).forEach(updatePost); });
    es.addEventListener("counts", (e) => {
      const c = JSON.parse(e.data);
      for (const k in c) { const el = $("#count-" + k); if (el) el.textContent = c[k]; }
    });
    es.addEventListener("alarms", (e) => {
      const n = JSON.parse(e.data);
      const link = $('header nav a[href="/alarms"]');
      let b = $("#alarm-badge");
      if (n && !b && link) { link.insertAdjacentHTML("beforeend", ' <span class="badge" id="alarm-badge"></span>'); b = $("#alarm-badge"); }
      if (b) { if (n) b.textContent = n; else b.remove(); }
      if (page === "alarms") softReload();
    });
    es.onerror = () => { if (live) live.classList.remove("on"); };
    window.addEventListener("beforeunload", () => es.close());
  }
  if (document.body.dataset.role) connect();  // logged in (the login page has no stream)

  // --- fleet table: filters and sorting are the server's (a city does not fit in one page); a change reloads ---
  const filters = $("#fleet-filters");
  if (filters) {
    let typing = null;
    $$("select", filters).forEach((el) => el.addEventListener("change", () => filters.submit()));
    $("#f-text").addEventListener("input", () => { clearTimeout(typing); typing = setTimeout(() => filters.submit(), 600); });
  }

  // --- commands: post through fetch, then follow the command until every post answered ---
  function showResults(box, view) {
    const counts = view.counts;
    const lines = Object.keys(view.results).map((n) => {
      const r = view.results[n];
      const rep = r.reply || {};
      const detail = r.result === "error" ? (r.error || rep.error || "") :
        ["level", "until", "reason", "seconds"].filter((k) => k in rep).map((k) => k + "=" + rep[k]).join(" ");
      return '<tr data-node="' + esc(n) + '" class="r-' + esc(r.result) + '"><td>' + esc(n) + "</td><td><b>" +
        esc(r.result) + "</b></td><td>" + esc(detail) + "</td></tr>";
    });
    const pending = view.pending.map((n) => '<tr data-node="' + esc(n) + '"><td>' + esc(n) + "</td><td>waiting…</td><td></td></tr>");
    return { html: lines.concat(pending).join(""), counts };
  }

  function follow(id, onView) {
    const tick = () => fetch("/api/command/" + encodeURIComponent(id), {credentials: "same-origin"})
      .then((r) => r.json()).then((view) => { onView(view); if (!view.done) setTimeout(tick, 400); })
      .catch(() => setTimeout(tick, 1000));
    tick();
  }

  $$("form.cmd").forEach((form) => form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    if (form.dataset.confirm && !confirm(form.dataset.confirm)) return;
    const box = $("#cmd-reply");
    box.hidden = false;
    box.className = "reply";
    box.textContent = "sending…";
    fetch(form.action, {method: "POST", credentials: "same-origin", headers: {"X-Console-Fetch": "1"},
      body: new URLSearchParams(new FormData(form))})
      .then((r) => r.json().then((doc) => ({ok: r.ok, doc})))
      .then(({ok, doc}) => {
        if (!ok) { box.className = "reply error"; box.textContent = "refused: " + doc.error; return; }
        follow(doc.id, (view) => {
          const res = showResults(box, view);
          const bad = res.counts.error + res.counts.timeout + res.counts.offline;
          box.className = "reply" + (view.done ? (bad ? " error" : " ok") : "");
          box.innerHTML = "<div><b>" + esc(view.cmd) + "</b> " + (view.done ? "done" : "sent, waiting for the reply") +
            "</div><table class=\"data small\" id=\"reply-table\"><tbody>" + res.html + "</tbody></table>";
        });
      });
  }));

  // --- program push: the progress panel follows its command ---
  const push = $("#push-progress");
  if (push) {
    follow(push.dataset.command, (view) => {
      const res = showResults(push, view);
      const total = Object.keys(view.results).length + view.pending.length;
      const done = total - view.pending.length;
      $(".bar-fill", push).style.width = (total ? 100 * done / total : 100) + "%";
      $("#push-results tbody", push).innerHTML = res.html;
      $("p.muted", push).textContent = (view.done ? "done: " : "") + res.counts.ok + " ok, " + res.counts.error +
        " error, " + res.counts.timeout + " no reply, " + res.counts.offline + " offline, " + res.counts.pending + " waiting";
      push.dataset.done = view.done ? "1" : "";
    });
  }

  $$("form[data-confirm]:not(.cmd) button, button[data-confirm]").forEach((b) => b.addEventListener("click", (ev) => {
    const msg = b.dataset.confirm || b.form.dataset.confirm;
    if (msg && !confirm(msg)) ev.preventDefault();
  }));
})();
