// Starts the admin page: tabs from the address's #fragment, the settings sections, the
// dashboard refresh. Runs after admin.js, charts.js, editors.js, settings.js, recordings.js.
"use strict";

(function (A) {
  const LOADERS = { dashboard: A.loadDashboard, chat: A.loadChat,
    integrations: A.loadIntegrations, logs: A.loadLogs, recordings: A.recordings.load };

  function showTab() {
    const name = (location.hash || "#dashboard").slice(1);
    if (!document.getElementById(name) || !document.getElementById(name).matches(".panel")) return;
    document.querySelectorAll(".panel").forEach((panel) => { panel.hidden = panel.id !== name; });
    document.querySelectorAll("#tabs a").forEach((a) => {
      const active = a.getAttribute("href") === "#" + name;
      a.classList.toggle("active", active);
      if (active) a.setAttribute("aria-current", "page");
      else a.removeAttribute("aria-current");
    });
    if (LOADERS[name]) LOADERS[name]().catch((e) => A.toast(e.message));
  }

  document.addEventListener("DOMContentLoaded", async () => {
    A.wireIntegrations();
    A.recordings.wire();
    A.$("disconnect").addEventListener("click", async () => {
      try {
        A.toast((await A.api("disconnect", {})).message);
        A.loadDashboard();
      } catch (e) { A.toast(e.message); }
    });
    const reloadLogs = () => A.loadLogs().catch((e) => A.toast(e.message));
    A.$("log-level").addEventListener("change", reloadLogs);
    A.$("refresh-logs").addEventListener("click", reloadLogs);
    window.addEventListener("hashchange", showTab);
    showTab();
    try {
      await A.settings.build();
      document.body.dataset.ready = "true";
    } catch (e) {
      A.toast(e.message);
    }
    setInterval(() => {
      if (!A.$("dashboard").hidden) A.loadDashboard().catch(() => {});
    }, 10000);
  });
})(window.OwncastAdmin);
