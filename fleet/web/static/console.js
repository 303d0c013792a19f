// posfleet console: the little script the pages use (served by us; no other script runs).
// 1. [data-live=URL]: poll URL (the JSON API, with the session cookie) every
//    data-every seconds and write each value into [data-field="a.b"] as text.
// 2. form[data-confirm]: ask before posting (pause/cancel a rollout, disable a user).
"use strict";
(function () {
  function pick(obj, path) {
    return path.split(".").reduce(function (o, k) { return o == null ? o : o[k]; }, obj);
  }
  function paint(root, doc) {
    root.querySelectorAll("[data-field]").forEach(function (el) {
      var v = pick(doc, el.getAttribute("data-field"));
      if (v === undefined || v === null) { v = ""; }
      el.textContent = String(v);
      if (el.hasAttribute("data-badge")) { el.className = "badge " + String(v).replace(/[^a-z-]/g, ""); }
    });
    root.querySelectorAll("[data-width]").forEach(function (el) {
      var num = Number(pick(doc, el.getAttribute("data-width")) || 0);
      var den = Number(pick(doc, el.getAttribute("data-of")) || 0);
      el.style.width = den > 0 ? (100 * num / den).toFixed(1) + "%" : "0";
    });
  }
  function live(root) {
    var url = root.getAttribute("data-live");
    var every = 1000 * Number(root.getAttribute("data-every") || 2);
    var stamp = root.querySelector("[data-updated]");
    function tick() {
      fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then(function (r) { return r.ok ? r.json() : Promise.reject(r.status); })
        .then(function (doc) {
          paint(root, doc);
          if (stamp) { stamp.textContent = new Date().toISOString().slice(11, 19) + " UTC"; }
          if (!doc.over) { setTimeout(tick, every); }
        })
        .catch(function () { setTimeout(tick, every * 2); });
    }
    setTimeout(tick, every);
  }
  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-live]").forEach(live);
    document.querySelectorAll("form[data-confirm]").forEach(function (form) {
      form.addEventListener("submit", function (ev) {
        if (!window.confirm(form.getAttribute("data-confirm"))) { ev.preventDefault(); }
      });
    });
  });
})();
