// Heartbeats for server-measured active time (marlin/review/activity.py). While this page is
// visible, focused and its user did something in the last minute (a key, the mouse, a scroll,
// input, a touch), it tells the server every few seconds that they are working; the server
// stamps each heartbeat with its own clock and counts the time between heartbeats that are
// close together. The page sends no time of its own: there is nothing here to inflate.
// What the page works on comes from the #activity element's data-* attributes.
(function () {
  "use strict";
  const el = document.getElementById("activity");
  if (!el) return;
  const IDLE_MS = 60000;
  const everyMs = (parseInt(el.dataset.interval, 10) || 15) * 1000;
  const body = { work: el.dataset.work };
  if (el.dataset.comparison) body.comparison = el.dataset.comparison;
  if (el.dataset.judgment) body.judgment_id = parseInt(el.dataset.judgment, 10);
  let lastActivity = Date.now();
  let lastSent = 0;
  let closed = false;
  // The first heartbeat goes with the login (it opens the work after the server's checks);
  // later ones carry the page's ticket, which only counts time on work already open.
  let withTicket = false;

  function csrf() {
    const input = document.querySelector("input[name=csrfmiddlewaretoken]");
    if (input) return input.value;
    const m = document.cookie.match(/(?:^|; )csrftoken=([^;]+)/);
    return m ? decodeURIComponent(m[1]) : "";
  }
  function recentlyActive() { return Date.now() - lastActivity < IDLE_MS; }
  function active() {
    return document.visibilityState === "visible" && document.hasFocus() && recentlyActive();
  }
  async function send() {
    lastSent = Date.now();
    const headers = { "Content-Type": "application/json", "X-CSRFToken": csrf() };
    const ticketed = withTicket && !!el.dataset.ticket;
    if (ticketed) headers["X-Heartbeat-Ticket"] = el.dataset.ticket;
    try {
      const r = await fetch(el.dataset.url, {
        method: "POST", body: JSON.stringify(body), keepalive: true, credentials: "same-origin", headers,
      });
      if (r.status === 204) withTicket = true;
      // The ticket found no open work (submitted, or sent back and not reopened yet): the
      // login decides, at once.
      else if (ticketed) { withTicket = false; send(); }
      // 409: the work was submitted (here or in another tab); its time is no longer counted.
      else if (r.status === 409) closed = true;
    } catch (err) {
      // Offline: the next heartbeat tries again; a gap over a minute is simply not counted.
    }
  }
  ["keydown", "mousemove", "mousedown", "wheel", "scroll", "input", "touchstart", "focus"].forEach((ev) =>
    window.addEventListener(ev, () => { lastActivity = Date.now(); }, { passive: true, capture: true }));
  setInterval(() => { if (!closed && active() && Date.now() - lastSent >= everyMs) send(); }, 1000);
  // Leaving the tab closes the current stretch of work where it ended.
  document.addEventListener("visibilitychange", () => {
    if (!closed && document.visibilityState === "hidden" && recentlyActive()) send();
  });
  if (active()) send(); // the server records this as the opening of the work
})();
