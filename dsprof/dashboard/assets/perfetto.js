// "Open in Perfetto": hand a run's trace to the Perfetto UI with its documented postMessage
// handshake (https://perfetto.dev/docs/visualization/deep-linking-to-perfetto-ui): open the UI,
// send "PING" until it answers "PONG", then post {perfetto: {buffer, title, url}}. The trace
// comes from this dashboard (127.0.0.1), so it never passes through another server.
(function () {
  "use strict";
  document.addEventListener("click", function (event) {
    var button = event.target.closest ? event.target.closest("[data-perfetto-trace]") : null;
    if (!button) return;
    event.preventDefault();
    var origin = button.getAttribute("data-perfetto-origin");
    var title = button.getAttribute("data-perfetto-title");
    var status = function (text) { button.setAttribute("data-perfetto-status", text); };
    // opened inside the click, so popup blockers let it through
    var win = window.open(origin + "/#!/", "_blank");
    if (!win) { status("popup blocked"); return; }
    status("loading trace");
    fetch(button.getAttribute("data-perfetto-trace"))
      .then(function (r) {
        if (!r.ok) throw new Error("trace: HTTP " + r.status);
        return r.arrayBuffer();
      })
      .then(function (buffer) {
        status("waiting for Perfetto");
        var timer = null;
        var onMessage = function (e) {
          if (e.origin !== origin || e.data !== "PONG") return;
          window.clearInterval(timer);
          window.removeEventListener("message", onMessage);
          win.postMessage(
            { perfetto: { buffer: buffer, title: title, url: window.location.toString() } },
            origin
          );
          status("sent");
        };
        window.addEventListener("message", onMessage);
        timer = window.setInterval(function () {
          if (win.closed) { window.clearInterval(timer); status("closed"); return; }
          win.postMessage("PING", origin);
        }, 50);
      })
      .catch(function (err) { status("failed: " + err.message); });
  });
})();
