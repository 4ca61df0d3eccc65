// What the agent's status page and the fleet page share: the bearer token
// kept in the browser tab (sessionStorage), the sign-in form, the banner,
// escaping and number formats. No framework; no build step.
"use strict";

window.edgelink = (function () {
  const TOKEN_KEY = "edgelink.token";
  const $ = (sel, root) => (root || document).querySelector(sel);
  let page = null; // what start was given

  function headers() {
    const h = { Accept: "application/json" };
    const t = sessionStorage.getItem(TOKEN_KEY);
    if (t) h.Authorization = "Bearer " + t;
    return h;
  }

  // showLogin replaces the page's content with the sign-in form; the page
  // stops polling (its signedOut hook).
  function showLogin(message) {
    $("#login").hidden = false;
    $(page.content).hidden = true;
    $("#signout").hidden = true;
    if (page.signedOut) page.signedOut();
    const err = $("#login-error");
    err.hidden = !message;
    err.textContent = message || "";
    $("#token").focus();
  }

  // showContent hides the sign-in form once the API answered.
  function showContent() {
    $("#login").hidden = true;
    $(page.content).hidden = false;
    $("#signout").hidden = !sessionStorage.getItem(TOKEN_KEY);
  }

  // getJSON fetches an API path with the token. Without the right token it
  // forgets the token, shows the sign-in form and returns null; another
  // error answer throws with the API's message.
  async function getJSON(path) {
    const res = await fetch(path, { headers: headers(), cache: "no-store" });
    if (res.status === 401) {
      const had = sessionStorage.getItem(TOKEN_KEY);
      sessionStorage.removeItem(TOKEN_KEY);
      showLogin(had ? "That token was not accepted." : "");
      return null;
    }
    if (!res.ok) {
      const body = await res.json().catch(() => ({}));
      throw new Error(body.error || path + " answered " + res.status);
    }
    return res.json();
  }

  function banner(message) {
    const b = $("#banner");
    b.hidden = !message;
    b.textContent = message || "";
  }

  // start wires the sign-in form and starts the page: opts.content is the
  // selector of what the form stands in for, opts.poll starts polling,
  // opts.signedOut stops it. A page served without the token it needs
  // asks for one first.
  function start(opts) {
    page = opts;
    $("#login").addEventListener("submit", (ev) => {
      ev.preventDefault();
      sessionStorage.setItem(TOKEN_KEY, $("#token").value.trim());
      $("#token").value = "";
      opts.poll();
    });
    $("#signout").addEventListener("click", () => {
      sessionStorage.removeItem(TOKEN_KEY);
      showLogin("");
    });
    if (document.body.dataset.authorized === "false" && !sessionStorage.getItem(TOKEN_KEY)) {
      showLogin("");
      return;
    }
    opts.poll();
  }

  const esc = (s) => String(s).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
  // The formatters are made once: a table of 1,000 rows formats thousands
  // of numbers and times.
  const countFormat = new Intl.NumberFormat("en-US", { maximumFractionDigits: 0 });
  const clockFormat = new Intl.DateTimeFormat("en-GB", { hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false });
  const fmtCount = (n) => countFormat.format(Math.round(n));
  function fmtBytes(n) {
    if (n < 1024) return n + " B";
    const units = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    let v = n / 1024, i = 0;
    while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
    return v.toFixed(1) + " " + units[i];
  }
  const clock = (iso) => clockFormat.format(new Date(iso));

  return { $, headers, getJSON, showContent, banner, start, esc, fmtCount, fmtBytes, clock };
})();
