/* seaport dashboard: filters the aggregate rows embedded in the page and draws them with ECharts.
 *
 * dashboards/dashboard.py inlines this file after Apache ECharts and a
 * JSON script element (id "seaport-data") holding {version, timezone, tables}; each table
 * is {columns, rows}. Text from the data reaches the page only through textContent, <option> text
 * and ECharts (canvas, and tooltips that ECharts escapes): never through innerHTML.
 *
 * window.seaportDashboard exposes the current figures and the chart instances (for tests).
 */
(function () {
  "use strict";

  const FONT = '"Noto Sans CJK SC", "Noto Sans SC", "Source Han Sans SC", "PingFang SC", "Microsoft YaHei", system-ui, sans-serif';
  const OTHER = "(other)";
  const TOP = 15;
  const BLUE = "#3b7dd8";
  const GREY = "#9aa5b1";
  const data = JSON.parse(document.getElementById("seaport-data").textContent);

  // -- the rows, as objects ------------------------------------------------------------------------
  const T = {};
  for (const [name, table] of Object.entries(data.tables)) {
    T[name] = table.rows.map((row) => {
      const o = {};
      table.columns.forEach((c, i) => { o[c] = row[i]; });
      if (o.hour != null && o.day === undefined) o.day = o.hour.slice(0, 10);
      return o;
    });
  }
  const rowsOf = (name) => T[name] || [];

  /* Daily rows where the daily table has the day, else the day's hourly rows: a daily table added
   * later may hold only the days rebuilt since. */
  function perDay(daily, hourly) {
    const days = new Set(rowsOf(daily).map((r) => r.day));
    return rowsOf(daily).concat(rowsOf(hourly).filter((r) => !days.has(r.day)));
  }
  const pageViews = perDay("page_views_daily", "page_views_hourly");
  const clicks = perDay("clicks_daily", "clicks_hourly");

  // -- small helpers --------------------------------------------------------------------------------
  const num = (v) => (typeof v === "number" && isFinite(v) ? v : 0);
  const fmt = (v, digits) => (v == null || !isFinite(v) ? "–"
    : v.toLocaleString("en-US", { maximumFractionDigits: digits == null ? 0 : digits }));
  const label = (v) => (v == null ? "(unknown)" : v === "" ? "(empty)" : String(v));
  const keyOf = (v) => JSON.stringify(v === undefined ? null : v);  // <select> values: null and "" stay apart

  function el(tag, attrs, text) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
    if (text != null) e.textContent = text;
    return e;
  }

  /* Per key: `fields` summed, how many cells (rows) were added up (visitors of more than one cell
   * are a sum, shown with Σ), and the views-weighted average duration where rows have one. */
  function group(rows, keyFn, fields) {
    const out = new Map();
    for (const r of rows) {
      const k = keyFn(r);
      let g = out.get(k);
      if (!g) {
        g = { key: k, cells: 0, durationWeight: 0, durationSum: 0 };
        for (const f of fields) g[f] = 0;
        out.set(k, g);
      }
      g.cells += 1;
      for (const f of fields) g[f] += num(r[f]);
      if (r.avg_duration_ms != null && r.views) {
        g.durationSum += r.avg_duration_ms * r.views;
        g.durationWeight += r.views;
      }
    }
    return Array.from(out.values());
  }
  const byValue = (field) => (a, b) => b[field] - a[field] || String(a.key).localeCompare(String(b.key));
  const visitorsText = (g) => (g.cells > 1 ? "Σ " : "") + fmt(g.visitors);

  function dayRange(from, to) {
    const out = [];
    if (!from || !to) return out;
    const d = new Date(from + "T00:00:00Z");
    const end = new Date(to + "T00:00:00Z");
    while (d <= end && out.length < 3660) {
      out.push(d.toISOString().slice(0, 10));
      d.setUTCDate(d.getUTCDate() + 1);
    }
    return out;
  }
  const addDays = (day, n) => {
    const d = new Date(day + "T00:00:00Z");
    d.setUTCDate(d.getUTCDate() + n);
    return d.toISOString().slice(0, 10);
  };

  // -- controls ---------------------------------------------------------------------------------
  const dated = ["page_views_hourly", "page_views_daily", "clicks_hourly", "clicks_daily", "devices_daily",
    "audience_daily", "sessions_daily"].flatMap((t) => rowsOf(t).map((r) => r.day)).filter((d) => d);
  if (!dated.length) dated.push(...rowsOf("retention_weekly").map((r) => r.cohort_week).filter((d) => d));
  const first = dated.length ? dated.reduce((a, b) => (a < b ? a : b)) : "";
  const last = dated.length ? dated.reduce((a, b) => (a > b ? a : b)) : "";
  const DEFAULTS = { from: first, to: last, page: "", device: "", os: "" };
  const state = Object.assign({}, DEFAULTS);
  const controls = {};
  for (const id of Object.keys(DEFAULTS)) controls[id] = document.getElementById(id);

  function fillSelect(select, values) {
    const seen = new Map();
    for (const v of values) seen.set(keyOf(v), v);
    const sorted = Array.from(seen.values()).sort((a, b) =>
      (a === OTHER) - (b === OTHER) || label(a).localeCompare(label(b)));
    for (const v of sorted) select.add(new Option(label(v), keyOf(v)));
    select.disabled = sorted.length === 0;
  }
  fillSelect(controls.page, ["page_views_hourly", "page_views_daily", "clicks_hourly", "clicks_daily"]
    .flatMap((t) => rowsOf(t).map((r) => r.page)));
  fillSelect(controls.device, rowsOf("devices_daily").map((r) => r.device_model));
  fillSelect(controls.os, rowsOf("devices_daily").map((r) => r.os));
  for (const id of ["from", "to"]) {
    controls[id].min = first;
    controls[id].max = last;
    controls[id].disabled = !first;
  }

  // filters from the address (#from=…&page=…), so a reload keeps them
  const hash = new URLSearchParams(location.hash.slice(1));
  for (const id of Object.keys(DEFAULTS)) if (hash.has(id)) state[id] = hash.get(id);

  function readControls(changed) {
    for (const id of Object.keys(DEFAULTS)) state[id] = controls[id].value;
    if (!state.from) state.from = first;
    if (!state.to) state.to = last;
    if (state.from > state.to) {  // the other end follows the one just picked
      if (changed === "to") state.from = state.to;
      else state.to = state.from;
    }
  }
  function writeControls() {
    for (const id of Object.keys(DEFAULTS)) controls[id].value = state[id];
    state.page = controls.page.value;  // a page no longer in the data falls back to "all"
    state.device = controls.device.value;
    state.os = controls.os.value;
    const changed = Object.keys(DEFAULTS).filter((id) => state[id] !== DEFAULTS[id]);
    const hashText = changed.map((id) => encodeURIComponent(id) + "=" + encodeURIComponent(state[id])).join("&");
    try {
      history.replaceState(null, "", hashText ? "#" + hashText : location.pathname + location.search);
    } catch (e) { /* some browsers refuse it on file:// pages: the filters just are not kept */ }
  }

  const inRange = (day) => day >= state.from && day <= state.to;
  const matches = (selected, v) => selected === "" || selected === keyOf(v);
  const pageRows = (rows) => rows.filter((r) => inRange(r.day) && matches(state.page, r.page));

  // -- charts -----------------------------------------------------------------------------------
  const charts = {};
  const figures = {};

  function chartIn(container, name, tall) {
    if (!charts[name]) {
      const div = el("div", { class: tall ? "chart tall" : "chart", "data-chart": name });
      container.appendChild(div);
      charts[name] = echarts.init(div, null, { renderer: "canvas" });
    }
    return charts[name];
  }

  function draw(name, option) {
    const chart = charts[name];
    const empty = option.series.every((s) => !s.data || s.data.length === 0);
    const base = {
      textStyle: { fontFamily: FONT },
      tooltip: { trigger: "axis", confine: true },
      animation: false,
    };
    if (empty) {
      option.title = { text: "所选范围无数据 nothing in this selection", left: "center", top: "middle",
        textStyle: { fontFamily: FONT, fontSize: 14, color: GREY, fontWeight: "normal" } };
    }
    chart.setOption(Object.assign(base, option), true);
  }

  /* Horizontal bars of [{key, value, label}], the largest on top; (other) in grey. */
  function barOption(items, valueName) {
    const shown = items.slice(0, TOP).reverse();
    return {
      grid: { left: 8, right: 48, top: 28, bottom: 8, containLabel: true },
      tooltip: { trigger: "axis", axisPointer: { type: "shadow" }, confine: true },
      xAxis: { type: "value", name: valueName, nameTextStyle: { align: "right" } },
      yAxis: { type: "category", data: shown.map((i) => i.label),
        axisLabel: { width: 190, overflow: "truncate", fontFamily: FONT } },
      series: [{
        type: "bar", name: valueName, barMaxWidth: 18,
        label: { show: true, position: "right", formatter: (p) => fmt(p.value) },
        data: shown.map((i) => ({ value: i.value, itemStyle: { color: i.key === OTHER ? GREY : BLUE } })),
      }],
    };
  }

  function table(container, columns, rows) {
    const old = container.querySelector("table");
    if (old) old.remove();
    if (!rows.length) return;
    const t = el("table");
    const head = el("tr");
    for (const c of columns) head.appendChild(el("th", {}, c));
    t.appendChild(head);
    for (const row of rows.slice(0, 500)) {  // the charts show the top; the table a long list, not all of it
      const tr = el("tr");
      for (const v of row) {
        const numeric = typeof v === "number" || /^(Σ )?[\d,.]+%?$/.test(v);
        tr.appendChild(el("td", numeric ? { class: "n" } : {}, typeof v === "number" ? fmt(v, 2) : v));
      }
      t.appendChild(tr);
    }
    container.appendChild(t);
  }

  function filtersNote(section, applies) {
    const note = section.querySelector(".filters-note");
    if (!note) return;
    const names = { page: "page", device: "device model", os: "OS" };
    const ignored = Object.keys(names).filter((f) => state[f] !== "" && !applies.includes(f));
    note.hidden = ignored.length === 0;
    note.textContent = ignored.length
      ? "筛选不适用 The " + ignored.map((f) => names[f]).join(" and ") + " filter does not apply here: this table is not split by it."
      : "";
  }

  /* Each panel: its section, or nothing when Python said "no data yet" (no .body). */
  function panel(id, applies, render) {
    const section = document.getElementById(id);
    const body = section && section.querySelector(".body");
    if (!body) return;
    filtersNote(section, applies);
    render(body);
  }

  // -- panels -----------------------------------------------------------------------------------
  function traffic(body) {
    const oneDay = state.from === state.to;
    const hourly = oneDay && rowsOf("page_views_hourly").some((r) => r.day === state.from);
    const rows = hourly
      ? rowsOf("page_views_hourly").filter((r) => r.day === state.from && matches(state.page, r.page))
      : pageRows(pageViews);
    // every hour of the day (a half-hour zone labels hours :30: those labels come from the rows)
    const buckets = hourly
      ? Array.from(new Set(Array.from({ length: 24 }, (_, h) => state.from + " " + String(h).padStart(2, "0") + ":00")
        .concat(rowsOf("page_views_hourly").filter((r) => r.day === state.from).map((r) => r.hour)))).sort()
      : dayRange(state.from, state.to);
    const groups = new Map(group(rows, (r) => (hourly ? r.hour : r.day), ["views", "visitors"]).map((g) => [g.key, g]));
    const points = buckets.map((b) => groups.get(b) || { key: b, views: 0, visitors: 0, cells: 0 });
    // Distinct visitors only where a bucket is one cell (one page, and its day or hour row): they
    // cannot be added across pages or hours, so other buckets have none (a gap), never a sum.
    const visitors = points.map((p) => (p.cells <= 1 ? p.visitors : null));
    const anyVisitors = visitors.some((v) => v != null);
    figures.traffic = { grain: hourly ? "hour" : "day", labels: buckets, views: points.map((p) => p.views), visitors };
    chartIn(body, "traffic");
    let hint = body.querySelector(".hint");
    if (!hint) hint = body.appendChild(el("p", { class: "note hint" }));
    hint.textContent = visitors.every((v) => v != null) ? ""
      : "访客 Visitors are shown only where one page's " + (hourly ? "hour" : "day") + " row holds them: pick one page"
        + (hourly ? "." : "; days that only page_views_hourly has stay blank (hours cannot be added up).");
    draw("traffic", {
      legend: { top: 0 },
      grid: { left: 8, right: 8, top: 36, bottom: 8, containLabel: true },
      xAxis: { type: "category", data: hourly ? buckets.map((b) => b.slice(11)) : buckets },
      yAxis: [{ type: "value", name: "浏览量 views (Σ)", nameTextStyle: { align: "left" } },
        { type: "value", name: "访客 visitors", nameTextStyle: { align: "right" }, splitLine: { show: false } }],
      series: rows.length ? [
        { type: "bar", name: "浏览量 views (Σ)", barMaxWidth: 48, data: figures.traffic.views, itemStyle: { color: BLUE } },
      ].concat(anyVisitors ? [
        { type: "line", name: "访客 visitors (distinct)", yAxisIndex: 1, data: visitors, connectNulls: false, itemStyle: { color: "#e8743b" } },
      ] : []) : [{ type: "bar", data: [] }],
    });
  }

  function pages(body) {
    const groups = group(pageRows(pageViews), (r) => r.page, ["views", "visitors"]).sort(byValue("views"));
    figures.pages = groups.map((g) => ({
      page: g.key, views: g.views, visitors: g.visitors, visitorsSummed: g.cells > 1,
      avgDurationS: g.durationWeight ? g.durationSum / g.durationWeight / 1000 : null,
    }));
    chartIn(body, "pages");
    draw("pages", barOption(groups.map((g) => ({ key: g.key, label: label(g.key), value: g.views })), "浏览量 views"));
    table(body, ["页面 page", "浏览量 views", "访客 visitors", "平均停留 avg time on page (s, ≈)"],
      figures.pages.map((p) => [label(p.page), p.views, (p.visitorsSummed ? "Σ " : "") + fmt(p.visitors),
        p.avgDurationS == null ? "–" : fmt(p.avgDurationS, 1)]));
  }

  function clicksPanel(body) {
    const onePage = state.page !== "";
    const groups = group(pageRows(clicks), (r) => keyOf([r.page, r.element]), ["clicks", "visitors"]).sort(byValue("clicks"));
    figures.clicks = groups.map((g) => {
      const [page, element] = JSON.parse(g.key);
      return { page, element, clicks: g.clicks, visitors: g.visitors, visitorsSummed: g.cells > 1 };
    });
    chartIn(body, "clicks");
    draw("clicks", barOption(figures.clicks.map((c) => ({
      key: c.element === OTHER ? OTHER : c.element,
      label: onePage ? label(c.element) : label(c.element) + " · " + label(c.page),
      value: c.clicks,
    })), "点击 clicks"));
    table(body, ["页面 page", "元素 element", "点击 clicks", "访客 visitors"],
      figures.clicks.map((c, i) => [label(c.page), label(c.element), c.clicks, visitorsText(groups[i])]));
  }

  function funnel(body) {
    const views = new Map(group(pageRows(pageViews), (r) => r.page, ["views"]).map((g) => [g.key, g.views]));
    const clicked = new Map(group(pageRows(clicks), (r) => r.page, ["clicks"]).map((g) => [g.key, g.clicks]));
    const pagesSeen = Array.from(new Set([...views.keys(), ...clicked.keys()]));
    figures.funnel = pagesSeen.map((p) => ({ page: p, views: views.get(p) || 0, clicks: clicked.get(p) || 0 }))
      .sort((a, b) => b.views - a.views || b.clicks - a.clicks || label(a.page).localeCompare(label(b.page)));
    const shown = figures.funnel.slice(0, 10);
    chartIn(body, "funnel");
    draw("funnel", {
      legend: { top: 0 },
      grid: { left: 8, right: 8, top: 36, bottom: 8, containLabel: true },
      tooltip: { trigger: "axis", axisPointer: { type: "shadow" }, confine: true },
      xAxis: { type: "category", data: shown.map((f) => label(f.page)), axisLabel: { width: 110, overflow: "truncate", interval: 0, rotate: 20, fontFamily: FONT } },
      yAxis: { type: "value" },
      series: shown.length ? [
        { type: "bar", name: "浏览 page views", data: shown.map((f) => f.views), itemStyle: { color: BLUE } },
        { type: "bar", name: "点击 clicks", data: shown.map((f) => f.clicks), itemStyle: { color: "#2fa37a" } },
      ] : [{ type: "bar", data: [] }],
    });
    table(body, ["页面 page", "浏览 views", "点击 clicks", "clicks per 100 views"],
      figures.funnel.map((f) => [label(f.page), f.views, f.clicks, f.views ? fmt((100 * f.clicks) / f.views, 1) : "–"]));
  }

  function devices(body) {
    const rows = rowsOf("devices_daily").filter((r) => inRange(r.day) && matches(state.device, r.device_model) && matches(state.os, r.os));
    const osLabel = (r) => (r.os === OTHER ? OTHER : (label(r.os) + " " + (r.os_version_major == null ? "" : r.os_version_major)).trim());
    const byOs = group(rows, osLabel, ["events", "visitors"]).sort(byValue("events"));
    const byModel = group(rows, (r) => r.device_model, ["events", "visitors"]).sort(byValue("events"));
    figures.os = byOs.map((g) => ({ os: g.key, events: g.events, visitors: g.visitors }));
    figures.models = byModel.map((g) => ({ model: g.key, events: g.events, visitors: g.visitors }));
    let grid = body.querySelector(".subgrid");
    if (!grid) {
      grid = body.appendChild(el("div", { class: "subgrid" }));
      for (const [name, title] of [["os", "操作系统 OS (events Σ)"], ["models", "设备型号 device models (events Σ)"]]) {
        const box = el("div", { "data-box": name });
        box.appendChild(el("h3", {}, title));
        grid.appendChild(box);
        chartIn(box, name);
      }
    }
    draw("os", barOption(byOs.map((g) => ({ key: g.key, label: g.key, value: g.events })), "事件 events"));
    draw("models", barOption(byModel.map((g) => ({ key: g.key, label: label(g.key), value: g.events })), "事件 events"));
  }

  const AUDIENCE = [["gender", "性别 gender"], ["country", "国家 country"], ["city", "城市 city"], ["language", "语言 language"]];
  function audience(body) {
    const rows = rowsOf("audience_daily").filter((r) => inRange(r.day));
    let grid = body.querySelector(".subgrid");
    if (!grid) {
      grid = body.appendChild(el("div", { class: "subgrid" }));
      for (const [dim, title] of AUDIENCE) {
        const box = el("div");
        box.appendChild(el("h3", {}, title + " (visitors Σ)"));
        grid.appendChild(box);
        chartIn(box, "audience-" + dim);
      }
    }
    figures.audience = {};
    for (const [dim] of AUDIENCE) {
      const groups = group(rows, (r) => r[dim], ["visitors"]).sort(byValue("visitors"));
      figures.audience[dim] = groups.map((g) => ({ value: g.key, visitors: g.visitors }));
      draw("audience-" + dim, barOption(groups.map((g) => ({ key: g.key, label: label(g.key), value: g.visitors })), "访客 visitors Σ"));
    }
  }

  function sessions(body) {
    const rows = rowsOf("sessions_daily").filter((r) => inRange(r.day));
    const byDay = new Map(rows.map((r) => [r.day, r]));
    const days = dayRange(state.from, state.to);
    let total = 0, durSum = 0, durWeight = 0, bounceSum = 0, bounceWeight = 0;
    for (const r of rows) {
      total += num(r.sessions);
      if (r.avg_session_duration_ms != null) { durSum += r.avg_session_duration_ms * num(r.sessions); durWeight += num(r.sessions); }
      if (r.bounce_rate != null) { bounceSum += r.bounce_rate * num(r.sessions); bounceWeight += num(r.sessions); }
    }
    figures.sessions = {
      days,
      sessions: days.map((d) => num((byDay.get(d) || {}).sessions)),
      bounceRate: days.map((d) => { const r = byDay.get(d); return r && r.bounce_rate != null ? r.bounce_rate : null; }),
      total,
      avgDurationS: durWeight ? durSum / durWeight / 1000 : null,
      bounceRateAll: bounceWeight ? bounceSum / bounceWeight : null,
    };
    chartIn(body, "sessions");
    draw("sessions", {
      legend: { top: 0 },
      grid: { left: 8, right: 8, top: 36, bottom: 8, containLabel: true },
      xAxis: { type: "category", data: days },
      yAxis: [{ type: "value", name: "会话 sessions", nameTextStyle: { align: "left" } },
        { type: "value", name: "跳出率 bounce %", max: 100, nameTextStyle: { align: "right" }, splitLine: { show: false } }],
      series: rows.length ? [
        { type: "bar", name: "会话 sessions (Σ)", barMaxWidth: 48, data: figures.sessions.sessions, itemStyle: { color: BLUE } },
        { type: "line", name: "跳出率 bounce rate %", yAxisIndex: 1, connectNulls: false, itemStyle: { color: "#c0392b" },
          data: figures.sessions.bounceRate.map((b) => (b == null ? null : Math.round(1000 * b) / 10)) },
      ] : [{ type: "bar", data: [] }],
    });
    table(body, ["日期 day", "会话 sessions", "平均时长 avg duration (s)", "跳出率 bounce rate (%)"],
      rows.map((r) => [r.day, num(r.sessions), r.avg_session_duration_ms == null ? "–" : fmt(r.avg_session_duration_ms / 1000, 1),
        r.bounce_rate == null ? "–" : fmt(100 * r.bounce_rate, 1)]));
  }

  function retention(body) {
    // whole cohorts, those with a week of activity (cohort week + N weeks) in the range
    const active = (r) => {
      const start = addDays(r.cohort_week, 7 * num(r.weeks_since));
      return start <= state.to && addDays(start, 6) >= state.from;
    };
    const shown = new Set(rowsOf("retention_weekly").filter(active).map((r) => r.cohort_week));
    const rows = rowsOf("retention_weekly").filter((r) => shown.has(r.cohort_week));
    const cohorts = Array.from(new Set(rows.map((r) => r.cohort_week))).sort();
    const weeks = rows.length ? Math.max(...rows.map((r) => num(r.weeks_since))) : 0;
    const base = new Map(rows.filter((r) => r.weeks_since === 0).map((r) => [r.cohort_week, num(r.visitors)]));
    figures.retention = rows.map((r) => ({ cohortWeek: r.cohort_week, weeksSince: r.weeks_since, visitors: r.visitors }));
    chartIn(body, "retention", true);
    const top = rows.length ? Math.max(...rows.map((r) => num(r.visitors))) : 1;
    draw("retention", {
      tooltip: { trigger: "item", confine: true,
        formatter: (p) => {
          const [w, c, v] = p.data;
          const b = base.get(cohorts[c]);
          return cohorts[c] + " + " + w + " wk: " + fmt(v) + (b ? " (" + fmt((100 * v) / b, 1) + "% of week 0)" : "");
        } },
      grid: { left: 8, right: 8, top: 30, bottom: 60, containLabel: true },
      xAxis: { type: "category", name: "周后 weeks since", data: Array.from({ length: weeks + 1 }, (_, i) => String(i)) },
      yAxis: { type: "category", name: "首周 cohort week", data: cohorts, inverse: true },
      visualMap: { min: 0, max: top, calculable: false, orient: "horizontal", left: "center", bottom: 0,
        inRange: { color: ["#eef4fc", "#1f5fb4"] }, textStyle: { fontFamily: FONT } },
      series: [{
        type: "heatmap", name: "访客 visitors",
        label: { show: true, formatter: (p) => fmt(p.data[2]) },
        data: rows.map((r) => [num(r.weeks_since), cohorts.indexOf(r.cohort_week), num(r.visitors)]),
      }],
    });
  }

  function quality(body) {
    if (figures.quality) return;  // not filtered by the controls: drawn once
    const runs = rowsOf("ingest_runs");
    // a column this warehouse's ingest_runs lacks (an older one) reads as null: shown as "–"
    const sum = (f) => (runs.some((r) => r[f] != null) ? runs.reduce((s, r) => s + num(r[f]), 0) : null);
    const lastRun = runs.reduce((a, r) => ((r.finished_at || r.started_at || "") > ((a && (a.finished_at || a.started_at)) || "") ? r : a), null);
    const eventsIn = sum("valid");
    const suppressed = rowsOf("suppressed_cells");
    figures.quality = {
      runs: runs.length,
      eventsIn,
      messages: sum("messages"),
      deadletters: sum("deadletters"),
      duplicates: sum("duplicates"),
      tooLate: sum("too_late"),
      erasures: rowsOf("erasure_log").length,
      lastRun: lastRun ? lastRun.finished_at || lastRun.started_at : null,
      policyVersion: lastRun ? lastRun.policy_version : null,
      suppressed: suppressed.map((s) => ({ table: s.table_name, cells: s.cells, events: s.events,
        share: s.events != null && eventsIn ? s.events / eventsIn : null })),
      deadletterReasons: rowsOf("deadletter_counts").map((d) => ({ topic: d.source_topic, reason: d.reason, messages: d.messages })),
    };
    const q = figures.quality;
    const cards = el("div", { class: "cards" });
    const card = (title, value) => { const c = el("div", { class: "card" }); c.appendChild(el("b", {}, value)); c.appendChild(el("span", {}, title)); cards.appendChild(c); };
    if (runs.length) {
      card("收到事件 events in (Σ valid)", fmt(q.eventsIn));
      card("读取消息 messages read", fmt(q.messages));
      card("死信 dead letters", fmt(q.deadletters));
      card("重复 duplicates", fmt(q.duplicates));
      card("过晚 too late", fmt(q.tooLate));
      card("运行 ingest runs", fmt(q.runs));
      card("最近运行 last run (" + data.timezone + ")", q.lastRun || "–");
      card("策略版本 policy version (last run)", q.policyVersion || "–");
    }
    if (data.tables.erasure_log) card("删除请求 erasure requests handled", fmt(q.erasures));
    body.appendChild(cards.childElementCount ? cards : el("p", { class: "empty" }, "ingest runs: no data yet"));

    const grid = el("div", { class: "subgrid" });
    body.appendChild(grid);  // before the charts: ECharts measures its container
    const dead = el("div");
    dead.appendChild(el("h3", {}, "死信原因 dead letters by reason"));
    if (q.deadletterReasons.length) {
      const items = q.deadletterReasons.map((d) => ({ key: d.reason, label: label(d.reason) + " · " + label(d.topic), value: num(d.messages) }))
        .sort((a, b) => b.value - a.value);
      grid.appendChild(dead);
      chartIn(dead, "deadletters");
      draw("deadletters", barOption(items, "消息 messages"));
    } else {
      dead.appendChild(el("p", { class: "empty" }, data.tables.deadletter_counts ? "none 无" : "no data yet"));
      grid.appendChild(dead);
    }
    const supp = el("div");
    supp.appendChild(el("h3", {}, "抑制单元 cells suppressed below k"));
    if (q.suppressed.length) {
      const noEvents = q.suppressed.every((s) => s.events == null);
      table(supp, ["table", "cells", "events in them", "share of events in"],
        q.suppressed.map((s) => [s.table, num(s.cells), s.events == null ? "–" : s.events,
          s.share == null ? "–" : fmt(100 * s.share, 2) + "%"]));
      supp.appendChild(el("p", { class: "note" }, noEvents
        ? "This warehouse's suppressed_cells has no events column (an older warehouse): only cell counts."
        : "Share = events in the table's suppressed cells / events in (Σ ingest_runs.valid). Rolled-up (other) rows publish some of them again."));
    } else {
      supp.appendChild(el("p", { class: "empty" }, "no data yet"));
    }
    grid.appendChild(supp);
  }

  function kpis() {
    const box = document.getElementById("kpis");
    box.textContent = "";
    const views = pageRows(pageViews).reduce((s, r) => s + num(r.views), 0);
    const clickCount = pageRows(clicks).reduce((s, r) => s + num(r.clicks), 0);
    figures.kpis = { views, clicks: clickCount };
    const items = [];
    if (pageViews.length) items.push(["浏览量 page views (Σ)", fmt(views)]);
    if (clicks.length) items.push(["点击 clicks (Σ)", fmt(clickCount)]);
    if (figures.sessions) {
      figures.kpis.sessions = figures.sessions.total;
      items.push(["会话 sessions (Σ)", fmt(figures.sessions.total)]);
      items.push(["平均会话 avg session (s)", fmt(figures.sessions.avgDurationS, 1)]);
      items.push(["跳出率 bounce rate", figures.sessions.bounceRateAll == null ? "–" : fmt(100 * figures.sessions.bounceRateAll, 1) + "%"]);
    }
    for (const [title, value] of items) {
      const c = el("div", { class: "card" });
      c.appendChild(el("b", {}, value));
      c.appendChild(el("span", {}, title));
      box.appendChild(c);
    }
  }

  function redraw() {
    panel("traffic", ["page"], traffic);
    panel("pages", ["page"], pages);
    panel("clicks", ["page"], clicksPanel);
    panel("funnel", ["page"], funnel);
    panel("devices", ["device", "os"], devices);
    panel("audience", [], audience);
    panel("sessions", [], sessions);
    panel("retention", [], retention);
    panel("quality", ["page", "device", "os"], quality);
    kpis();
    window.seaportDashboard.state = Object.assign({}, state);
    window.seaportDashboard.redraws += 1;
  }

  window.seaportDashboard = { version: data.version, figures, charts, state, redraws: 0 };
  writeControls();
  redraw();
  Object.values(charts).forEach((c) => c.resize());  // the grids settled after the first charts were made
  for (const id of Object.keys(DEFAULTS)) {
    controls[id].addEventListener("change", () => { readControls(id); writeControls(); redraw(); });
  }
  document.getElementById("reset").addEventListener("click", () => {
    Object.assign(state, DEFAULTS);
    writeControls();
    redraw();
  });
  window.addEventListener("resize", () => Object.values(charts).forEach((c) => c.resize()));

  // Served by `seaport dashboard --serve`: reload when a new build of the data exists.
  if (/^https?:$/.test(location.protocol)) {
    setInterval(() => {
      fetch("/version", { cache: "no-store" })
        .then((r) => (r.ok ? r.text() : ""))
        .then((v) => { if (v && v.trim() !== data.version) location.reload(); })
        .catch(() => {});
    }, 5000);
  }
})();
