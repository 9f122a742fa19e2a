// Refreshes the element marked data-refresh="<seconds>" in place by fetching this same page again.
// Without JavaScript the page refreshes itself through a <noscript> meta refresh instead.
(function () {
  "use strict";
  var live = document.querySelector("[data-refresh]");
  if (!live) { return; }
  var every = Math.max(1, Number(live.getAttribute("data-refresh")) || 5) * 1000;
  function busy() {
    var active = document.activeElement;
    return active && active.closest && active.closest("[data-refresh]") && /INPUT|TEXTAREA|SELECT/.test(active.tagName);
  }
  function tick() {
    if (document.hidden || busy()) { setTimeout(tick, every); return; }
    fetch(window.location.href, { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then(function (response) {
        if (response.redirected || !response.ok) { return null; }
        return response.text();
      })
      .then(function (text) {
        if (!text) { return; }
        var fresh = new DOMParser().parseFromString(text, "text/html").querySelector("[data-refresh]");
        var current = document.querySelector("[data-refresh]");
        if (fresh && current) { current.replaceWith(document.importNode(fresh, true)); }
      })
      .catch(function () { /* the receiver may be restarting: try again at the next tick */ })
      .then(function () { setTimeout(tick, every); });
  }
  setTimeout(tick, every);
})();
