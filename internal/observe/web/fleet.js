// edgelink fleet page: loads the fleet once, then polls
// /api/v1/fleet?since=<seq> every 2 s and merges the sites that changed.
// The table is built with one innerHTML when the rows shown or their order
// change, and row by row otherwise; a poll that changed nothing renders
// nothing. No framework; no build step.
"use strict";

(function () {
  const { $, esc, fmtCount, fmtBytes, clock } = window.edgelink;
  const POLL_MS = 2000;
  // Every RESYNC polls the page loads the fleet whole again, in case a site
  // left it while another joined (the count alone would not tell).
  const RESYNC = 150;

  const sites = new Map(); // name -> site, as the API last sent it
  let seq = 0; // the seq of the last answer: ask for what changed after it
  let polls = 0;
  let serverTime = Date.now(); // the fleet service's clock at the last answer
  let timer = null;
  let rowsKey = null; // the names shown, in order: a change rebuilds the table
  let labelsKey = null; // the label options shown
  const view = { q: "", label: "", filter: "", sort: "site", dir: 1 };
  let open = null; // the site whose detail is open
  let states = []; // site states, worst first (from the page)
  let firstPainted = false;

  // fmtDuration writes seconds humanely: "45 s", "12 min", "5 h 12 min",
  // "3 d 4 h".
  function fmtDuration(s) {
    if (s == null) return "—";
    s = Math.max(0, Math.round(s));
    if (s < 60) return s + " s";
    const m = Math.floor(s / 60);
    if (m < 10) return m + " min" + (s % 60 ? " " + (s % 60) + " s" : "");
    if (m < 60) return m + " min";
    const h = Math.floor(m / 60);
    if (h < 24) return h + " h" + (m % 60 ? " " + (m % 60) + " min" : "");
    const d = Math.floor(h / 24);
    return d + " d" + (h % 24 ? " " + (h % 24) + " h" : "");
  }

  function fmtLoss(s) {
    if (s == null) return "—";
    return s <= 0 ? "losing data now" : fmtDuration(s);
  }

  const dayFormat = new Intl.DateTimeFormat("en-GB", { day: "numeric", month: "short" });

  // fmtSeen writes a time as a clock time today, else with its date.
  function fmtSeen(iso) {
    if (!iso || iso.startsWith("0001-")) return "never";
    const day = dayFormat.format(new Date(iso));
    return day === dayFormat.format(serverTime) ? clock(iso) : day + " " + clock(iso);
  }

  const silentFor = (s) => Math.max(0, (serverTime - new Date(s.last_seen).getTime()) / 1000);
  const isRefused = (s) => s.config.refused_revision > 0 && s.config.refused_revision >= s.config.desired_revision;
  const isPending = (s) => s.config.managed && s.config.applied_revision < s.config.desired_revision &&
    s.config.refused_revision < s.config.desired_revision;

  function matches(s) {
    if (view.q && !s.site.toLowerCase().includes(view.q)) return false;
    if (view.label) {
      const i = view.label.indexOf("=");
      if ((s.labels || {})[view.label.slice(0, i)] !== view.label.slice(i + 1)) return false;
    }
    switch (view.filter) {
      case "": return true;
      case "stale": return s.stale;
      case "refused": return isRefused(s);
      case "pending": return isPending(s);
      default: return s.state === view.filter;
    }
  }

  // Sort keys; sites without a value (no data loss in sight) sort last
  // in either direction.
  const keys = {
    site: (s) => s.site,
    state: (s) => states.indexOf(s.state),
    lag: (s) => s.lag_records,
    loss: (s) => s.data_loss_in_seconds,
    seen: (s) => Date.parse(s.last_seen),
    version: (s) => s.version,
    config: (s) => (isRefused(s) ? 0 : isPending(s) ? 1 : 2) * 1e12 + s.config.applied_revision,
  };

  function compare(a, b) {
    const ka = keys[view.sort](a), kb = keys[view.sort](b);
    if (ka !== kb) {
      if (ka == null) return 1;
      if (kb == null) return -1;
      return (ka < kb ? -1 : 1) * view.dir;
    }
    return a.site < b.site ? -1 : a.site > b.site ? 1 : 0;
  }

  function configCell(c) {
    let h = '<span class="rev">' + c.applied_revision + " / " + c.desired_revision + "</span>";
    if (c.refused_revision > 0) {
      h += ' <span class="tag tag-refused" title="' + esc(c.refused_reason || "") + '">refused ' + c.refused_revision +
        (c.reverted ? " (reverted)" : "") + "</span>";
    }
    if (!c.managed) h += ' <span class="tag">local</span>';
    return h;
  }

  function rowHTML(s) {
    const loss = s.data_loss_in_seconds;
    const soon = loss != null && loss < 86400;
    const labels = Object.keys(s.labels || {}).sort().map((k) => esc(k) + "=" + esc(s.labels[k])).join(" · ");
    return '<tr data-site="' + esc(s.site) + '" data-state="' + esc(s.state) + '" class="' + (s.stale ? "stale" : "") +
      (s.site === open ? " selected" : "") + '"><td class="site"><span class="name">' + esc(s.site) + "</span>" +
      (s.stale ? ' <span class="silent" data-seen="' + esc(s.last_seen) + '">silent ' + fmtDuration(silentFor(s)) + "</span>" : "") +
      (labels ? ' <span class="labels">' + labels + "</span>" : "") +
      '</td><td><span class="state state-' + esc(s.state) + '">' + esc(s.state) + "</span></td>" +
      '<td class="n" data-field="lag">' + fmtCount(s.lag_records) +
      (s.lag_records > 0 && s.lag_seconds >= 1 ? ' <span class="meta">· ' + fmtDuration(s.lag_seconds) + "</span>" : "") +
      '</td><td class="n' + (soon ? " warn" : "") + '" data-field="loss">' + fmtLoss(loss) +
      '</td><td data-field="seen" title="' + esc(s.last_seen) + '">' + fmtSeen(s.last_seen) +
      '</td><td data-field="version">' + esc(s.version || "—") + '</td><td data-field="config">' + configCell(s.config) + "</td></tr>";
  }

  const rowTemplate = document.createElement("template");

  // renderRows shows the sites that pass the filters, in order. changed
  // names the sites a poll changed; null rebuilds everything.
  function renderRows(changed) {
    const list = [];
    for (const s of sites.values()) if (matches(s)) list.push(s);
    list.sort(compare);
    const key = list.map((s) => s.site).join("\n");
    const tbody = $("#sites tbody");
    if (changed === null || key !== rowsKey) {
      tbody.innerHTML = list.map(rowHTML).join("");
      rowsKey = key;
    } else if (changed.size > 0) {
      const byName = new Map();
      for (const tr of tbody.rows) byName.set(tr.dataset.site, tr);
      for (const name of changed) {
        const tr = byName.get(name);
        if (!tr) continue;
        rowTemplate.innerHTML = rowHTML(sites.get(name));
        tr.replaceWith(rowTemplate.content.firstElementChild);
      }
    }
    // Silent badges count on between polls that do not change their site.
    for (const b of tbody.querySelectorAll(".silent")) {
      b.textContent = "silent " + fmtDuration(Math.max(0, (serverTime - new Date(b.dataset.seen).getTime()) / 1000));
    }
    $("#shown").textContent = list.length === sites.size ? fmtCount(sites.size) + " sites"
      : fmtCount(list.length) + " of " + fmtCount(sites.size) + " sites";
    for (const th of $("#sites thead").querySelectorAll("th[data-sort]")) {
      th.className = (th.classList.contains("n") ? "n " : "") + (th.dataset.sort === view.sort ? (view.dir > 0 ? "asc" : "desc") : "");
    }
    if (!firstPainted) {
      // The first rows on screen, for the page's tests: a task queued in
      // the frame that paints them runs after the paint.
      firstPainted = true;
      requestAnimationFrame(() => setTimeout(() => { window.__fleetFirstPaint = performance.now(); }));
    }
  }

  function renderSummary(f) {
    const sum = f.summary;
    $("#totals").textContent = fmtCount(sum.sites) + " sites · " + fmtCount(sum.agents) + " agents · " +
      fmtCount(sum.links) + " links · lag " + fmtCount(sum.lag_records) + " records" +
      (sum.lost_records > 0 ? " · " + fmtCount(sum.lost_records) + " lost" : "");
    $("#updated").textContent = "updated " + clock(f.time);
    $("#loading").hidden = f.loaded;
    const counts = { stale: sum.stale, refused: sum.refused, pending: sum.pending };
    for (const st of states) counts[st] = sum.by_state[st] || 0;
    for (const [name, n] of Object.entries(counts)) {
      const b = $("#count-" + name);
      $(".n", b).textContent = fmtCount(n);
      b.classList.toggle("zero", n === 0);
      b.classList.toggle("active", view.filter === name);
    }
    setHTML($("#closest"), sum.closest_to_loss.length === 0
      ? '<li class="meta">no site is losing ground</li>'
      : sum.closest_to_loss.map((e) => '<li data-site="' + esc(e.site) + '"><a href="#">' + esc(e.site) +
        '</a><span class="' + (e.data_loss_in_seconds < 86400 ? "warn" : "") + '">' + fmtLoss(e.data_loss_in_seconds) +
        "</span></li>").join(""));
    const versions = Object.entries(sum.versions).sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1));
    const most = Math.max(1, ...versions.map((v) => v[1]));
    setHTML($("#versions"), versions.length === 0 ? '<p class="meta">no agent reports yet</p>'
      : versions.map(([v, n]) => '<div class="vbar" data-version="' + esc(v) + '"><span class="vname">' + esc(v || "unknown") +
        '</span><svg class="vtrack" viewBox="0 0 100 8" preserveAspectRatio="none"><rect class="vbg" width="100" height="8"></rect>' +
        '<rect class="vfill" width="' + Math.max(1, Math.round((100 * n) / most)) + '" height="8"></rect></svg><span class="n">' +
        fmtCount(n) + "</span></div>").join(""));
  }

  function setHTML(el, html) {
    if (el.dataset.html !== html) {
      el.innerHTML = html;
      el.dataset.html = html;
    }
  }

  // renderLabels offers the labels present in the fleet.
  function renderLabels() {
    const set = new Set();
    for (const s of sites.values()) for (const [k, v] of Object.entries(s.labels || {})) set.add(k + "=" + v);
    const list = [...set].sort();
    const key = list.join("\n");
    if (key === labelsKey) return;
    labelsKey = key;
    const sel = $("#label-filter");
    sel.innerHTML = '<option value="">all labels</option>' + list.map((l) => '<option value="' + esc(l) + '">' + esc(l) + "</option>").join("");
    if (view.label && !set.has(view.label)) view.label = "";
    sel.value = view.label;
  }

  async function poll() {
    clearTimeout(timer);
    try {
      if (++polls % RESYNC === 0) seq = 0;
      const f = await window.edgelink.getJSON("/api/v1/fleet" + (seq > 0 ? "?since=" + seq : ""));
      if (!f) return; // polling resumes after signing in
      window.edgelink.showContent();
      const full = f.since === 0;
      if (full) sites.clear();
      const changed = new Set();
      for (const s of f.sites) {
        sites.set(s.site, s);
        changed.add(s.site);
      }
      seq = f.seq;
      serverTime = new Date(f.time).getTime();
      if (!full && sites.size !== f.summary.sites) {
        seq = 0; // a site left the fleet: load it whole
        timer = setTimeout(poll, 0);
        return;
      }
      renderSummary(f);
      if (full || changed.size > 0) renderLabels();
      renderRows(full ? null : changed);
      if (open && changed.has(open)) loadDetail(open);
      window.edgelink.banner("");
    } catch (e) {
      window.edgelink.banner("Cannot reach the fleet service: " + e.message + ". Retrying…");
    }
    timer = setTimeout(poll, POLL_MS);
  }

  // Detail panel.

  function table(head, rows, empty) {
    if (rows.length === 0) return '<p class="meta">' + empty + "</p>";
    return "<table><thead><tr>" + head.map((h) => "<th" + (h.startsWith("#") ? ' class="n">' + h.slice(1) : ">" + h) + "</th>").join("") +
      "</tr></thead><tbody>" + rows.join("") + "</tbody></table>";
  }

  function linkRows(links) {
    return links.map((l) => '<tr data-link="' + esc(l.name) + '"><td>' + esc(l.name) + '<div class="meta">' + esc(l.from) + " → " + esc(l.to) +
      '</div></td><td><span class="state state-' + esc(l.state) + '">' + esc(l.state) + '</span></td><td class="n">' +
      fmtCount(l.lag_records) + (l.lag_estimated ? "*" : "") + '<div class="meta">' + fmtDuration(l.lag_seconds) + " behind</div></td>" +
      '<td class="n">' + (l.drain_seconds > 0 ? fmtDuration(l.drain_seconds) : "—") + '</td><td class="n' +
      (l.data_loss_in_seconds != null && l.data_loss_in_seconds < 86400 ? " warn" : "") + '">' + fmtLoss(l.data_loss_in_seconds) +
      '</td><td class="n">' + fmtCount(l.records_per_second) + "/s<div class=\"meta\">" + fmtBytes(l.bytes_per_second) + "/s</div></td>" +
      '<td class="n">' + (l.budget_bytes_per_second > 0 ? fmtBytes(l.budget_bytes_per_second) + "/s" : "unlimited") +
      '</td><td class="n">' + l.slot_count + " slots · " + l.agents + " agent" + (l.agents === 1 ? "" : "s") +
      '<div class="meta">' + l.partitions + " partitions</div></td><td class=\"n\">" + fmtCount(l.lost_records) + "</td></tr>" +
      (l.last_error ? '<tr class="error-row"><td colspan="9">last error: ' + esc(l.last_error) + "</td></tr>" : ""));
  }

  function agentRows(agents) {
    return agents.map((a) => '<tr data-agent="' + esc(a.instance) + '"><td class="agent">' + esc(a.instance) + '</td><td>' + esc(a.host) +
      " · pid " + a.pid + "</td><td>" + esc(a.version) + "</td><td>" + fmtSeen(a.started_at) + "</td><td>" + fmtSeen(a.last_seen) +
      "</td><td>" + (a.stopping ? "stopping" : a.ready ? "ready" : "not ready") + "</td></tr>");
  }

  function configHTML(c) {
    const rows = [
      ["managed", c.managed ? "yes: takes signed revisions from the fleet" : "no: runs its local file"],
      ["applied", c.applied_revision + (c.applied_by ? " · signed by " + c.applied_by : "") + (c.applied_at ? " · " + fmtSeen(c.applied_at) : "")],
      ["last good", String(c.good_revision || 0)],
      ["desired", String(c.desired_revision)],
    ];
    if (c.refused_revision > 0) rows.push(["refused", c.refused_revision + (c.reverted ? " (reverted)" : "") + ": " + (c.refused_reason || "")]);
    return '<dl class="config">' + rows.map(([k, v]) => '<dt>' + k + '</dt><dd data-field="config-' + k.replace(" ", "-") + '"' +
      (k === "refused" ? ' class="bad-text"' : "") + ">" + esc(v) + "</dd>").join("") + "</dl>";
  }

  function eventsHTML(events) {
    if (events.length === 0) return '<p class="meta">nothing recent</p>';
    return '<ol class="events">' + events.map((e) => '<li><time datetime="' + esc(e.time) + '">' + clock(e.time) +
      '</time><span class="kind kind-' + esc(e.kind) + '">' + esc(e.kind) + '</span><span class="msg">' +
      (e.link ? "<b>" + esc(e.link) + "</b> " : "") + esc(e.message) + "</span></li>").join("") + "</ol>";
  }

  function historyHTML(hist) {
    if (hist.length === 0) return '<p class="meta">no configuration history</p>';
    return '<ol class="events">' + hist.map((h) => '<li><time datetime="' + esc(h.time) + '">' + fmtSeen(h.time) +
      '</time><span class="kind kind-' + esc(h.kind) + '">' + esc(h.kind) + '</span><span class="msg">revision ' + h.revision +
      (h.by ? " · " + esc(h.by) : "") + (h.reason ? ": " + esc(h.reason) : "") + (h.note ? " · " + esc(h.note) : "") +
      "</span></li>").join("") + "</ol>";
  }

  function renderDetail(d) {
    const skew = d.clock_skew_seconds;
    $("#detail").innerHTML =
      '<div class="detail-head"><h2>' + esc(d.site) + '</h2><span class="state state-' + esc(d.state) + '">' + esc(d.state) + "</span>" +
      (d.stale ? '<span class="silent">silent ' + fmtDuration(silentFor(d)) + "</span>" : "") +
      '<span class="grow"></span><button type="button" class="close" data-action="close" aria-label="close">×</button></div>' +
      '<p class="meta">' + Object.keys(d.labels || {}).sort().map((k) => esc(k) + "=" + esc(d.labels[k])).join(" · ") +
      (d.version ? " · " + esc(d.version) : "") + " · last seen " + fmtSeen(d.last_seen) +
      (skew != null && Math.abs(skew) >= 1 ? " · clock " + (skew > 0 ? "ahead " : "behind ") + fmtDuration(Math.abs(skew)) : "") +
      (d.certificate_expiry ? " · certificates until " + esc(d.certificate_expiry.slice(0, 10)) : "") + "</p>" +
      (d.last_error ? '<div class="error-line">last error: ' + esc(d.last_error) + "</div>" : "") +
      "<h3>Links</h3>" + '<div data-field="links">' + table(["link", "state", "#lag", "#drain", "#until data loss", "#rate", "#budget",
        "#slots · agents", "#lost"], linkRows(d.links), "no links") + "</div>" +
      "<h3>Agents</h3>" + '<div data-field="agents">' + table(["agent", "host", "version", "started", "last seen", ""], agentRows(d.agents), "no agents") + "</div>" +
      "<h3>Configuration</h3>" + configHTML(d.config) +
      '<h3>Recent events</h3><div data-field="events">' + eventsHTML(d.events) + "</div>" +
      '<h3>Configuration history</h3><div data-field="history">' + historyHTML(d.history) + "</div>";
  }

  async function loadDetail(name) {
    try {
      const d = await window.edgelink.getJSON("/api/v1/fleet/sites/" + encodeURIComponent(name));
      if (d && open === name) renderDetail(d);
    } catch (e) {
      if (open === name) $("#detail").innerHTML = '<div class="detail-head"><h2>' + esc(name) +
        '</h2><span class="grow"></span><button type="button" class="close" data-action="close" aria-label="close">×</button></div>' +
        '<p class="bad-text">' + esc(e.message) + "</p>";
    }
  }

  function openDetail(name) {
    open = name;
    const panel = $("#detail");
    panel.hidden = false;
    panel.dataset.site = name;
    for (const tr of $("#sites tbody").querySelectorAll("tr.selected")) tr.classList.remove("selected");
    const tr = $('#sites tbody tr[data-site="' + CSS.escape(name) + '"]');
    if (tr) tr.classList.add("selected");
    loadDetail(name);
  }

  function closeDetail() {
    open = null;
    const panel = $("#detail");
    panel.hidden = true;
    panel.innerHTML = "";
    delete panel.dataset.site;
    for (const tr of $("#sites tbody").querySelectorAll("tr.selected")) tr.classList.remove("selected");
  }

  function setFilter(value) {
    view.filter = value;
    $("#state-filter").value = value;
    for (const b of $("#counts").querySelectorAll("button[data-filter]")) b.classList.toggle("active", b.dataset.filter === value);
    renderRows(null);
  }

  document.addEventListener("DOMContentLoaded", () => {
    states = [...document.querySelectorAll("[data-count-state]")].map((b) => b.dataset.countState);
    $("#search").addEventListener("input", (ev) => {
      view.q = ev.target.value.trim().toLowerCase();
      renderRows(null);
    });
    $("#label-filter").addEventListener("change", (ev) => {
      view.label = ev.target.value;
      renderRows(null);
    });
    $("#state-filter").addEventListener("change", (ev) => setFilter(ev.target.value));
    $("#counts").addEventListener("click", (ev) => {
      const b = ev.target.closest("button[data-filter]");
      if (b) setFilter(view.filter === b.dataset.filter ? "" : b.dataset.filter);
    });
    $("#sites thead").addEventListener("click", (ev) => {
      const th = ev.target.closest("th[data-sort]");
      if (!th) return;
      if (view.sort === th.dataset.sort) view.dir = -view.dir;
      else { view.sort = th.dataset.sort; view.dir = 1; }
      renderRows(null);
    });
    $("#sites tbody").addEventListener("click", (ev) => {
      const tr = ev.target.closest("tr[data-site]");
      if (tr) openDetail(tr.dataset.site);
    });
    $("#closest").addEventListener("click", (ev) => {
      const li = ev.target.closest("li[data-site]");
      if (!li) return;
      ev.preventDefault();
      openDetail(li.dataset.site);
    });
    $("#detail").addEventListener("click", (ev) => {
      if (ev.target.closest('[data-action="close"]')) closeDetail();
    });
    document.addEventListener("keydown", (ev) => {
      if (ev.key === "Escape" && open) closeDetail();
    });
    window.edgelink.start({
      content: "#fleet",
      poll() {
        seq = 0;
        poll();
      },
      signedOut() {
        clearTimeout(timer);
        $("#updated").textContent = "";
        $("#totals").textContent = "";
      },
    });
  });
})();
