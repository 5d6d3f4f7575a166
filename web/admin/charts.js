// Dashboard charts through uPlot (web/vendor, from npm): a time axis, a labelled value axis
// with its unit, a tooltip that follows the cursor, and the chosen time range.
"use strict";

(function (A) {
  const KINDS = {
    viewers: { label: "Viewers", unit: "", integer: true },
    cpu: { label: "CPU", unit: "%" },
    memory: { label: "Memory", unit: "%" },
    disk: { label: "Disk", unit: "%" },
  };
  const HEIGHT = 170;
  const instances = {};
  const lastData = {};

  function range() {
    return Number(A.$("chart-range").value) || 86400;
  }

  function format(kind, value) {
    if (value === null || value === undefined) return "—";
    const spec = KINDS[kind];
    const number = spec.integer ? String(Math.round(value)) : value.toFixed(1);
    return spec.unit ? number + " " + spec.unit : number;
  }

  /** Shows the time and value under the cursor in a box inside the plot. */
  function tooltip(kind) {
    let box;
    return {
      hooks: {
        init: (u) => {
          box = A.el("div", { className: "chart-tip", "aria-hidden": "true" });
          box.hidden = true;
          u.over.append(box);
        },
        setCursor: (u) => {
          const i = u.cursor.idx;
          if (i === null || i === undefined || u.data[1][i] === undefined) {
            box.hidden = true;
            return;
          }
          box.textContent = new Date(u.data[0][i] * 1000).toLocaleString() + " · " +
            format(kind, u.data[1][i]);
          box.hidden = false;
          const left = Math.min(u.cursor.left + 8, u.over.clientWidth - box.offsetWidth - 2);
          box.style.left = Math.max(0, left) + "px";
          box.style.top = Math.max(0, u.cursor.top - box.offsetHeight - 6) + "px";
        },
      },
    };
  }

  function options(kind, width) {
    const spec = KINDS[kind];
    const axis = { stroke: "#b4b4c6", grid: { stroke: "#2e2e3c", width: 1 },
      ticks: { stroke: "#2e2e3c", width: 1 }, font: "11px system-ui, sans-serif",
      labelFont: "12px system-ui, sans-serif" };
    return {
      width, height: HEIGHT,
      legend: { show: false },
      cursor: { y: false, points: { size: 6 } },
      plugins: [tooltip(kind)],
      scales: {
        x: { time: true, range: () => { const now = Date.now() / 1000; return [now - range(), now]; } },
        y: { range: (u, min, max) => [0, Math.max(spec.unit === "%" ? 100 : 1, max * 1.1)] },
      },
      series: [{}, { label: spec.label, stroke: "#ef233c", width: 2,
        fill: "rgba(239, 35, 60, 0.12)", points: { show: true, size: 4 } }],
      axes: [
        { ...axis, label: "Time (local)", labelSize: 18 },
        { ...axis, label: spec.unit ? `${spec.label} (${spec.unit})` : spec.label, labelSize: 18,
          size: 44, values: (u, ticks) => ticks.map((v) => spec.integer && v % 1 ? "" : String(v)) },
      ],
    };
  }

  function summary(kind, points) {
    if (!points.length) return "No samples yet.";
    const values = points.map((p) => p.value);
    return `Now ${format(kind, values[values.length - 1])}, highest ` +
      `${format(kind, Math.max(...values))} over ${values.length} sample${values.length === 1 ? "" : "s"}.`;
  }

  /** Draws ``points`` ([{time, value}]) into the chart named ``kind``. */
  function render(kind, points) {
    lastData[kind] = points;
    const since = Date.now() / 1000 - range();
    const shown = points.map((p) => [new Date(p.time).getTime() / 1000, p.value])
      .filter(([t]) => t >= since);
    const data = [shown.map(([t]) => t), shown.map(([, v]) => v)];
    const holder = A.$("chart-" + kind);
    const figure = holder.closest("figure");
    figure.querySelector(".chart-summary").textContent = summary(kind,
      points.filter((p) => new Date(p.time).getTime() / 1000 >= since));
    holder.setAttribute("role", "img");
    holder.setAttribute("aria-label", `${KINDS[kind].label} over time: ` +
      figure.querySelector(".chart-summary").textContent);
    const width = Math.max(200, holder.clientWidth);
    if (instances[kind]) {
      instances[kind].setData(data);
      if (Math.abs(instances[kind].width - width) > 2) {
        instances[kind].setSize({ width, height: HEIGHT });
      }
    } else {
      instances[kind] = new uPlot(options(kind, width), data, holder);
    }
  }

  function rerender() {
    Object.keys(lastData).forEach((kind) => render(kind, lastData[kind]));
  }

  document.addEventListener("DOMContentLoaded", () => {
    A.$("chart-range").addEventListener("change", rerender);
    let pending = null;
    window.addEventListener("resize", () => {
      clearTimeout(pending);
      pending = setTimeout(rerender, 150);
    });
  });

  A.charts = { render, instances, rerender };
})(window.OwncastAdmin);
