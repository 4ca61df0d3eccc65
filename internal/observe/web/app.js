// edgelink status page: polls /api/v1/status every second and updates the
// link cards in place. No framework; no build step.
"use strict";

(function () {
  const { $, esc, fmtCount, fmtBytes, clock } = window.edgelink;
  const HISTORY = 120; // samples kept for the chart (two minutes)
  const history = new Map(); // link name -> [{rps, backlog}]
  let timer = null;

  function fmtSeconds(s) {
    if (!s || s <= 0) return "0s";
    if (s < 1) return Math.round(s * 1000) + "ms";
    if (s < 60) return s.toFixed(1) + "s";
    if (s < 3600) return Math.floor(s / 60) + "m" + String(Math.floor(s % 60)).padStart(2, "0") + "s";
    if (s < 86400) return Math.floor(s / 3600) + "h" + String(Math.floor((s % 3600) / 60)).padStart(2, "0") + "m";
    return Math.floor(s / 86400) + "d" + Math.floor((s % 86400) / 3600) + "h";
  }

  async function poll() {
    clearTimeout(timer);
    try {
      const st = await window.edgelink.getJSON("/api/v1/status");
      if (!st) return; // polling resumes after signing in
      render(st);
      window.edgelink.banner("");
    } catch (e) {
      window.edgelink.banner("Cannot reach the agent: " + e.message + ". Retrying…");
    }
    timer = setTimeout(poll, 1000);
  }

  let lastStatusTime = 0;

  function render(st) {
    lastStatusTime = new Date(st.time).getTime();
    window.edgelink.showContent();
    $("#site").textContent = st.site ? "site " + st.site : "";
    $("#version").textContent = st.version || "";
    const ready = $("#ready");
    ready.textContent = st.ready ? "ready" : "not ready";
    ready.className = "badge " + (st.ready ? "ok" : "bad");
    ready.title = st.reason || "";
    $("#updated").textContent = "updated " + clock(st.time);
    renderFleet(st);

    const container = $("#links");
    const seen = new Set();
    for (const l of st.links) {
      seen.add(l.name);
      let card = container.querySelector('article.link[data-link="' + CSS.escape(l.name) + '"]');
      if (!card || !card.dataset.live) {
        const fresh = createCard(l.name);
        if (card) card.replaceWith(fresh); else container.appendChild(fresh);
        card = fresh;
      }
      updateCard(card, l, st.controls, st.time);
    }
    for (const card of container.querySelectorAll("article.link")) {
      if (!seen.has(card.dataset.link)) card.remove();
    }
    for (const p of container.querySelectorAll("p.empty")) p.remove();
    if (st.links.length === 0) container.insertAdjacentHTML("beforeend", '<p class="empty">No links are configured.</p>');
  }

  // renderFleet shows the agent's connection to the fleet and, when the
  // server knows one, a link to the fleet page.
  function renderFleet(st) {
    const f = st.fleet;
    const el = $("#fleet");
    el.hidden = !f;
    if (f) {
      let text = "fleet " + f.cluster;
      if (f.last_error) {
        text += ": not reporting (" + f.last_error + ")";
        el.classList.add("bad");
      } else {
        text += f.last_published ? ": reported " + clock(f.last_published) : ": connecting";
        el.classList.remove("bad");
      }
      if (f.managed) text += " · revision " + f.config.applied_revision;
      el.textContent = text;
      el.title = f.config && f.config.refused_reason ? "refused revision " + f.config.refused_revision + ": " + f.config.refused_reason : "";
    }
    const a = $("#fleet-link");
    a.hidden = !st.fleet_url;
    if (st.fleet_url) a.href = st.fleet_url;
  }

  function createCard(name) {
    const card = document.createElement("article");
    card.className = "link";
    card.dataset.link = name;
    card.dataset.live = "1";
    card.innerHTML =
      '<div class="link-head"><h2></h2><span class="route"></span>' +
      '<span class="state" data-field="state"></span><span class="meta" data-field="since"></span>' +
      '<span class="grow"></span>' +
      '<span class="controls" data-field="controls" hidden>' +
      '<button type="button" class="danger" data-action="cut">Cut link</button>' +
      '<button type="button" class="primary" data-action="restore">Restore link</button>' +
      '<button type="button" class="danger" data-action="kill-agent" hidden>Kill agent</button>' +
      '<button type="button" class="primary" data-action="start-agent" hidden>Start agent</button></span></div>' +
      '<div class="note-line" data-field="note" hidden></div>' +
      '<div class="error-line" data-field="error" hidden></div>' +
      '<div class="stats" data-field="stats"></div>' +
      '<div class="chart"><svg viewBox="0 0 600 64" preserveAspectRatio="none" aria-label="throughput and backlog, last two minutes">' +
      '<polyline data-field="line-backlog" fill="none" stroke="#b45309" stroke-width="1.5" vector-effect="non-scaling-stroke"></polyline>' +
      '<polyline data-field="line-rate" fill="none" stroke="#0f766e" stroke-width="1.5" vector-effect="non-scaling-stroke"></polyline></svg>' +
      '<div class="legend"><span><i class="l-rate"></i><span data-field="legend-rate">records/s</span></span>' +
      '<span><i class="l-backlog"></i><span data-field="legend-backlog">backlog</span></span><span data-field="legend-window"></span></div></div>' +
      '<div class="agents" data-field="agents" hidden></div>' +
      '<div class="cols"><div><h3>Topics</h3><table><thead><tr><th>source</th><th>destination</th><th class="n">part.</th>' +
      '<th class="n">prio</th><th class="n">replicated</th><th class="n">backlog</th><th>progress</th></tr></thead>' +
      '<tbody data-field="topics"></tbody></table></div>' +
      '<div><h3>Recent events</h3><ol class="events" data-field="events"></ol></div></div>';
    $("h2", card).textContent = name;
    $(".l-rate", card).style.background = "#0f766e";
    $(".l-backlog", card).style.background = "#b45309";
    return card;
  }

  function setHTML(el, html) {
    if (el.dataset.html !== html) {
      el.innerHTML = html;
      el.dataset.html = html;
    }
  }

  // bundleStats shows where a link carried in bundles stands: the last
  // export and the last receipt acknowledged at the site.
  function bundleStats(bd) {
    const e = bd.last_export, r = bd.last_receipt;
    return stat("Last export", e ? "bundle " + e.sequence : "none",
        e ? fmtCount(e.records) + " records · " + fmtBytes(e.bytes) + " · " + new Date(e.at).toLocaleString() + (e.complete ? "" : " · cut short") : "no bundle exported yet", "bundle-export") +
      stat("Last receipt", r ? "bundle " + r.sequence : "none",
        r ? "imported " + new Date(r.imported).toLocaleString() + " · acknowledged " + new Date(r.acked).toLocaleString() : "nothing acknowledged yet", "bundle-receipt", e && (!r || r.sequence < e.sequence));
  }

  // diodeStats shows one end of a link through a data diode: what went
  // through, whether the sender is heard, and the ranges missing.
  function diodeStats(d) {
    const heard = d.role === "receiver" ? (d.silent ? "sender silent" : "sender heard") : "sending";
    const traffic = fmtCount(d.datagrams) + " datagrams · " + fmtBytes(d.bytes) +
      (d.role === "receiver" ? " · " + fmtCount(d.recovered) + " rebuilt · " + fmtCount(d.forged) + " forged" : " · " + fmtCount(d.repeats) + " repeats");
    let out = stat("Diode " + d.role, heard, traffic, "diode", d.role === "receiver" && d.silent);
    if (d.role === "receiver") {
      const gaps = d.gaps || [];
      out += stat("Gaps", gaps.length + " open · " + fmtCount(d.gaps_lost) + " lost",
        gaps.length ? gaps.slice(0, 3).map((g) => g.topic + "[" + g.partition + "] " + g.from + ".." + g.to).join(", ") : "waiting up to " + fmtSeconds(d.repair_window_seconds) + " for repeats",
        "diode-gaps", gaps.length > 0 || d.gaps_lost > 0);
    }
    return out;
  }

  // groupStats shows where a link's consumer group sync stands.
  function groupStats(g) {
    return stat("Consumer groups", fmtCount(g.synced) + " / " + fmtCount(g.selected) + " synced",
      g.last_error ? g.last_error : fmtCount(g.active) + " active at the destination · " + fmtCount(g.pending) + " waiting · " +
        (g.last_sync ? "synced " + new Date(g.last_sync).toLocaleTimeString() : "not synced yet"),
      "groups", !!g.last_error);
  }

  function stat(label, value, sub, field, warn) {
    return '<div class="stat"><div class="label">' + esc(label) + '</div><div class="value' + (warn ? " warn" : "") + '"' +
      (field ? ' data-field="' + field + '"' : "") + ">" + esc(value) + '</div><div class="sub">' + esc(sub) + "</div></div>";
  }

  function updateCard(card, l, controls, time) {
    card.dataset.state = l.state;
    $(".route", card).textContent = l.from && l.to ? l.from + " → " + l.to : "";
    const state = $('[data-field="state"]', card);
    state.textContent = l.state;
    state.className = "state state-" + l.state;
    $('[data-field="since"]', card).textContent = "for " + fmtSeconds(l.state_seconds);

    // The agent actions exist when the status says whether the other
    // agent is killed; one of their two buttons shows at a time.
    const agentControls = typeof l.agent_killed === "boolean";
    const ctl = $('[data-field="controls"]', card);
    ctl.hidden = !controls && !agentControls;
    $('[data-action="cut"]', card).hidden = !controls;
    $('[data-action="restore"]', card).hidden = !controls;
    if (controls) {
      $('[data-action="cut"]', card).disabled = !!l.link_cut;
      $('[data-action="restore"]', card).disabled = !l.link_cut;
    }
    const kill = $('[data-action="kill-agent"]', card), start = $('[data-action="start-agent"]', card);
    kill.hidden = !agentControls || l.agent_killed;
    start.hidden = !agentControls || !l.agent_killed;
    if (!kill.dataset.busy) kill.disabled = false;
    if (!start.dataset.busy) start.disabled = false;
    const err = $('[data-field="error"]', card);
    const note = $('[data-field="note"]', card);
    const notes = [];
    if (l.link_cut) {
      notes.push("The network under this link is cut. The edge keeps writing; the backlog grows until the link is restored.");
    } else if (l.backlog.estimated && (l.state === "live" || l.state === "catching-up")) {
      notes.push("No progress for " + fmtSeconds(secondsSince(l.backlog.measured_at)) + ": waiting on the destination.");
    }
    if (l.agent_killed) notes.push(takeoverNote(l.sharing));
    const noteText = notes.join(" ");
    note.hidden = !noteText;
    note.textContent = noteText;
    const showErr = l.last_error && l.state !== "live" && l.state !== "catching-up";
    err.hidden = !showErr;
    err.textContent = showErr ? "last error: " + l.last_error : "";
    err.title = l.last_error || "";

    const b = l.backlog;
    const wireRatio = l.bytes > 0 ? Math.round((100 * l.wire_bytes) / l.bytes) + "% of payload" : "bytes sent";
    const lossy = l.lost_records + l.skipped_records;
    setHTML($('[data-field="stats"]', card),
      stat("Replicated", fmtCount(l.records), "records · " + fmtBytes(l.bytes), "records") +
      stat("Throughput", fmtCount(l.records_per_second) + "/s", fmtBytes(l.bytes_per_second) + "/s", "rate") +
      stat("Lag", fmtCount(b.records), "records · " + fmtSeconds(b.age_seconds) + " behind" + (b.estimated ? " · growing at the source" : ""), "backlog", b.estimated) +
      stat("Drain ETA", b.records > 0 && b.drain_eta_seconds > 0 ? fmtSeconds(b.drain_eta_seconds) : "—",
        b.records > 0 ? "≈ " + fmtBytes(b.bytes) + " to send" : "up to date", "eta") +
      stat("On the wire", fmtBytes(l.wire_bytes), wireRatio, "wire") +
      stat("Transactions", fmtCount(l.transactions), l.partitions + " partitions", "transactions") +
      stat("Lost · skipped", fmtCount(l.lost_records) + " · " + fmtCount(l.skipped_records),
        l.skipped_loops > 0 ? fmtCount(l.skipped_loops) + " loop records" : "by retention · refused", "lost", lossy > 0) +
      (l.bytes_in > l.bytes ? stat("Transforms", Math.round((100 * (l.bytes_in - l.bytes)) / l.bytes_in) + "% saved",
        fmtBytes(l.bytes_in) + " → " + fmtBytes(l.bytes) + " · " + fmtCount(l.filtered_records) + " filtered" +
        (l.late_records ? " · " + fmtCount(l.late_records) + " late" : ""), "transforms") : "") +
      (l.bundles ? bundleStats(l.bundles) : "") +
      (l.diode ? diodeStats(l.diode) : "") +
      (l.groups ? groupStats(l.groups) : ""));

    let h = history.get(l.name);
    if (!h) history.set(l.name, (h = []));
    h.push({ rps: l.records_per_second, backlog: b.records, time: time });
    if (h.length > HISTORY) h.shift();
    drawLine($('[data-field="line-rate"]', card), h.map((p) => p.rps));
    drawLine($('[data-field="line-backlog"]', card), h.map((p) => p.backlog));
    $('[data-field="legend-rate"]', card).textContent = "records/s (max " + fmtCount(Math.max(...h.map((p) => p.rps))) + ")";
    $('[data-field="legend-backlog"]', card).textContent = "backlog (max " + fmtCount(Math.max(...h.map((p) => p.backlog))) + ")";
    $('[data-field="legend-window"]', card).textContent = "since " + clock(h[0].time) + " (at most 2 minutes)";

    setHTML($('[data-field="topics"]', card), l.topics.length === 0
      ? '<tr><td colspan="7" class="meta">no topics replicated yet</td></tr>'
      : l.topics.map((t) => {
        const total = t.records + t.backlog_records;
        const pct = total > 0 ? Math.round((100 * t.records) / total) : 100;
        return '<tr data-topic="' + esc(t.source) + '"><td class="topic" title="' + esc(t.source) + '">' + esc(t.source) +
          '</td><td class="topic" title="' + esc(t.destination) + '">' + esc(t.destination) + '</td><td class="n">' + t.partitions +
          '</td><td class="n">' + t.priority + '</td><td class="n">' + fmtCount(t.records) + '</td><td class="n">' +
          fmtCount(t.backlog_records) + '</td><td><svg class="bar" viewBox="0 0 100 6" preserveAspectRatio="none">' +
          '<rect width="100" height="6" fill="#e5e7eb"></rect><rect width="' + pct + '" height="6" fill="#0f766e"></rect></svg> ' +
          pct + "%</td></tr>";
      }).join(""));

    renderAgents($('[data-field="agents"]', card), l.sharing);

    setHTML($('[data-field="events"]', card), l.events.length === 0
      ? '<li class="meta">nothing yet</li>'
      : l.events.slice(0, 30).map((e) =>
        '<li><time datetime="' + esc(e.time) + '">' + clock(e.time) + '</time><span class="kind kind-' + esc(e.kind) + '">' +
        esc(e.kind) + '</span><span class="msg">' + esc(e.message) + "</span></li>").join(""));
  }

  // takeoverNote says where the killed agent's slots are.
  function takeoverNote(sh) {
    if (sh && sh.agents.length > 1) {
      return "The other agent is killed. Its group counts it until its session times out; then this agent takes its slots over and catches up on their backlog.";
    }
    if (sh && sh.held.length === sh.slot_count) {
      return "The other agent is killed: this agent took all " + sh.slot_count + " slots over. Start it again to share the link.";
    }
    return "The other agent is killed: its slots are moving to this agent.";
  }

  // renderAgents shows how the agents share the link: who owns which
  // slots and how many partitions, and the slots in motion (no owner yet,
  // or given to this agent but not open here yet).
  function renderAgents(el, sh) {
    el.hidden = !sh;
    if (!sh) return;
    const held = new Set(sh.held);
    const self = sh.agents.find((a) => a.self);
    const mine = (s) => self && s.owner === self.instance;
    const moving = sh.slots.filter((s) => !s.owner || (mine(s) && !held.has(s.slot))).map((s) => s.slot);
    const strip = sh.slots.map((s) => {
      let cls = "other", who = "owned by " + s.owner;
      if (!s.owner) {
        cls = "moving"; who = "in motion";
      } else if (mine(s)) {
        cls = held.has(s.slot) ? "self" : "moving";
        who = held.has(s.slot) ? "held by this agent" : "opening on this agent";
      }
      const parts = s.partitions.length ? s.partitions.join(", ") : "no partitions";
      return '<span class="slot slot-' + cls + '" data-slot="' + s.slot + '" title="slot ' + s.slot + ": " + esc(who) + " · " +
        esc(parts) + '">' + s.slot + "</span>";
    }).join("");
    const rows = sh.agents.slice().sort((a, b) => Number(b.self) - Number(a.self)).map((a) =>
      '<tr data-agent="' + esc(a.instance) + '" data-self="' + a.self + '"><td class="agent">' + esc(a.instance) +
      (a.self ? ' <span class="you">this agent</span>' : "") + '</td><td class="meta">' + esc(a.host) + " · pid " + a.pid +
      '</td><td class="n" data-field="agent-slots">' + (a.slots.length ? a.slots.join(",") : "none") +
      '</td><td class="n" data-field="agent-partitions">' + a.partitions + "</td></tr>").join("");
    setHTML(el,
      '<div class="agents-head"><h3>Agents</h3><span class="meta">generation ' + sh.generation + " · " + sh.slot_count +
      ' slots</span><span class="slots">' + strip + '</span><span class="meta" data-field="moving">' +
      (moving.length ? "in motion: slot " + moving.join(", ") : "no slot in motion") + "</span></div>" +
      '<table><thead><tr><th>agent</th><th>host</th><th class="n">slots</th><th class="n">partitions</th></tr></thead>' +
      '<tbody data-field="agent-rows">' + rows + "</tbody></table>");
  }

  // secondsSince is the time from an ISO timestamp to the status's time.
  function secondsSince(iso) {
    if (!iso) return 0;
    return Math.max(0, (lastStatusTime - new Date(iso).getTime()) / 1000);
  }

  function drawLine(el, values) {
    const max = Math.max(1, ...values);
    const n = values.length;
    const pts = values.map((v, i) => {
      // The chart spans what the page has seen, up to HISTORY samples.
      const x = n <= 1 ? 600 : (600 * i) / (n - 1);
      const y = 62 - (60 * v) / max;
      return x.toFixed(1) + "," + y.toFixed(1);
    });
    el.setAttribute("points", pts.join(" "));
  }

  async function control(name, action, button) {
    button.disabled = true;
    button.dataset.busy = "1"; // killing an agent waits for it to stop
    try {
      const res = await fetch("/api/v1/links/" + encodeURIComponent(name) + "/" + action, { method: "POST", headers: window.edgelink.headers() });
      if (!res.ok) {
        const body = await res.json().catch(() => ({}));
        window.edgelink.banner(action + " failed: " + (body.error || res.status));
      }
    } catch (e) {
      window.edgelink.banner(action + " failed: " + e.message);
    }
    delete button.dataset.busy;
    poll();
  }

  document.addEventListener("DOMContentLoaded", () => {
    $("#links").addEventListener("click", (ev) => {
      const button = ev.target.closest("button[data-action]");
      if (!button) return;
      const card = button.closest("article.link");
      control(card.dataset.link, button.dataset.action, button);
    });
    window.edgelink.start({
      content: "#links",
      poll,
      signedOut() {
        clearTimeout(timer);
        $("#ready").textContent = "";
        $("#updated").textContent = "";
      },
    });
  });
})();
